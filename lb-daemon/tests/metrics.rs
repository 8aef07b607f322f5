//! `/metrics`: the counters add up to the requests sent, and the text parses as
//! OpenMetrics (Python's `prometheus_client` parser, installed by `.ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Daemon, base_config, call};

/// Sum of the samples of `metric` whose line contains every one of `labels`.
fn sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn counters_add_up_to_the_requests_sent_and_the_text_is_openmetrics() {
    let daemon = Daemon::start(&base_config(3));
    for i in 0..120 {
        assert_eq!(daemon.home(Some(&format!("m{i}"))).0, 200);
    }
    let (status, _) = call("GET", &daemon.url("/nope"), None);
    assert_eq!(status, 404);
    let (status, text) = call("GET", &daemon.url("/metrics"), None);
    assert_eq!(status, 200);
    assert_eq!(
        sum(&text, "lb_requests_total", &["class=\"2xx\""]),
        120.0,
        "{text}"
    );
    assert_eq!(sum(&text, "lb_requests_total", &["class=\"4xx\""]), 1.0);
    assert_eq!(sum(&text, "lb_request_duration_seconds_count", &[]), 121.0);
    // Plain HTTP/1.1 requests (the lean path) are timed in every stage.
    for stage in [
        "request_head",
        "upstream_connection",
        "response_head",
        "response_body",
    ] {
        let label = format!("stage=\"{stage}\"");
        assert_eq!(
            sum(&text, "lb_request_stage_seconds_count", &[&label]),
            121.0,
            "{stage}: {text}"
        );
        assert!(
            sum(&text, "lb_request_stage_seconds_sum", &[&label]) > 0.0,
            "{stage}"
        );
    }
    assert_eq!(sum(&text, "lb_replica_up", &[]), 3.0);
    assert_eq!(sum(&text, "lb_ring_nodes", &[]), 3.0);
    for replica in ["server1", "server2", "server3"] {
        assert!(
            sum(
                &text,
                "lb_requests_total",
                &[&format!("replica=\"{replica}\"")]
            ) > 0.0,
            "{replica} got nothing"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );

    let parse = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                 families = list(text_string_to_metric_families(sys.stdin.read()))\nprint(len(families))";
    let out = Command::new("python3")
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No module named") {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "pip install prometheus-client"
        );
        eprintln!("skipped the OpenMetrics parse: prometheus_client is not installed");
        return;
    }
    assert!(
        out.status.success(),
        "not OpenMetrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // Families without samples yet (failures, admin calls) may be left out.
    assert!(families >= 7, "{families} metric families");
}

#[test]
fn the_access_log_has_a_line_per_request_in_text_and_in_json() {
    for (format, lean) in [("text", true), ("text", false), ("json", true)] {
        let config = format!(
            "{}\n[log]\naccess = true\nformat = \"{format}\"\n[server]\nlean_http1 = {lean}\n",
            base_config(2)
        );
        let daemon = Daemon::start(&config);
        let (status, replica) = daemon.home(Some("user-7"));
        assert_eq!(status, 200);
        let replica = replica.unwrap();
        let line = common::wait_for(std::time::Duration::from_secs(5), || {
            let log = daemon.log.lock().unwrap();
            log.iter()
                .find(|l| l.contains("access") && l.contains("/home"))
                .cloned()
        })
        .unwrap_or_else(|| panic!("no access line ({format}, lean {lean})"));
        for field in [
            "method",
            "path",
            "key_hash",
            "replica",
            "status",
            "duration_ms",
            "bytes",
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        assert!(line.contains(&replica) && line.contains("200"), "{line}");
        if format == "json" {
            let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            assert_eq!(value["target"], "access", "{line}");
            assert_eq!(value["fields"]["status"], 200, "{line}");
            assert_eq!(value["fields"]["path"], "/home", "{line}");
        }
    }
}

#[test]
fn healthz_and_the_healthcheck_command_tell_whether_the_daemon_serves() {
    let port = common::free_port();
    let config = base_config(1).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let mut daemon = Daemon::start(&config);
    let (status, body) = call("GET", &daemon.url("/healthz"), None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (_, metrics) = call("GET", &daemon.url("/metrics"), None);
    let build = format!(
        "lb_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&build), "{build} missing");
    let healthcheck = |config: &std::path::Path| {
        Command::new(common::binary("lb-daemon"))
            .args(["healthcheck", "--config"])
            .arg(config)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(healthcheck(&daemon.config), Some(0));
    assert!(daemon.terminate().success());
    assert_eq!(
        healthcheck(&daemon.config),
        Some(1),
        "a stopped daemon is unhealthy"
    );
}
