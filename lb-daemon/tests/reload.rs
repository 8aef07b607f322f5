//! SIGHUP: a valid config is applied live; an invalid one is rejected with the reason
//! and the running config stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, agent, base_config, header, signal, wait_for};
use lb_daemon::config::Config;

/// The replica that serves `/home?user=<user>` (no key header).
fn served_for_user(daemon: &Daemon, user: &str) -> String {
    let resp = agent()
        .get(&daemon.url(&format!("/home?user={user}")))
        .call()
        .unwrap();
    header(&resp, "x-lb-replica").unwrap()
}

#[test]
fn sighup_applies_a_valid_config_and_rejects_an_invalid_one() {
    let config = base_config(3);
    let daemon = Daemon::start(&config);
    // Keyed by header only: the same user spreads over replicas (random keys).
    let spread: std::collections::HashSet<String> =
        (0..40).map(|_| served_for_user(&daemon, "alice")).collect();
    assert!(spread.len() > 1, "{spread:?}");

    std::fs::write(
        &daemon.config,
        config.replacen(
            "replicas = 3\n",
            "replicas = 3\nkey = [\"query:user\"]\n",
            1,
        ),
    )
    .unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_contains("config reloaded")
            .then_some(()))
        .is_some()
    );
    let pinned: std::collections::HashSet<String> =
        (0..40).map(|_| served_for_user(&daemon, "alice")).collect();
    assert_eq!(
        pinned.len(),
        1,
        "after reload the query parameter is the key: {pinned:?}"
    );

    std::fs::write(&daemon.config, "replicas = \"many\"\n").unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_contains("config reload rejected")
            .then_some(()))
        .is_some()
    );
    assert!(
        daemon.log_contains("replicas"),
        "the rejection names the key"
    );
    let still: std::collections::HashSet<String> =
        (0..20).map(|_| served_for_user(&daemon, "alice")).collect();
    assert_eq!(still, pinned, "the running config stayed");
    assert_eq!(daemon.home(Some("k")).0, 200);
}

/// A change of each key in the README's config reference: `(section, lines)`;
/// `pem` holds a certificate and its key for the TLS keys.
fn change_of(key: &str, pem: &(String, String)) -> Option<(&'static str, String)> {
    let (cert, key_file) = pem;
    let tls = format!("cert = {cert:?}\nkey = {key_file:?}");
    match key {
        "tls.cert" | "tls.key" => return Some(("tls", tls)),
        "admin.tls.cert" | "admin.tls.key" => {
            return Some((
                "admin",
                format!("listen = \"127.0.0.1:5997\"\n[admin.tls]\n{tls}"),
            ));
        }
        _ => {}
    }
    let (section, line) = match key {
        "listen" => ("", "listen = \"127.0.0.1:5999\""),
        "workers" => ("", "workers = 7"),
        "replicas" => ("", "replicas = 5"),
        "hash" => ("", "hash = \"md5\""),
        "points_per_weight" => ("", "points_per_weight = 100"),
        "key" => ("", "key = [\"path\"]"),
        "algorithm" => ("", "algorithm = \"maglev\""),
        "maglev_table_size" => ("", "algorithm = \"maglev\"\nmaglev_table_size = 251"),
        "balance_factor" => ("", "balance_factor = 1.5"),
        "keyless" => ("", "keyless = \"least_requests\""),
        "state_file" => ("", "state_file = \"/tmp/lb-state.json\""),
        "admin.max_per_call" => ("admin", "max_per_call = 3"),
        "admin.max_body_bytes" => ("admin", "max_body_bytes = 1000"),
        "admin.listen" => ("admin", "listen = \"127.0.0.1:5998\""),
        "admin.token" => ("admin", "token = \"0123456789abcdef-token\""),
        "admin.drain_timeout_ms" => ("admin", "drain_timeout_ms = 5"),
        "heartbeat.path" => ("heartbeat", "path = \"/up\""),
        "heartbeat.interval_ms" => ("heartbeat", "interval_ms = 2000"),
        "heartbeat.timeout_ms" => ("heartbeat", "timeout_ms = 100"),
        "heartbeat.rise" => ("heartbeat", "rise = 5"),
        "heartbeat.fall" => ("heartbeat", "fall = 5"),
        "runtime.kind" => ("runtime", "kind = \"docker\""),
        "runtime.command" => ("runtime", "command = [\"/bin/false\"]"),
        "runtime.ready_timeout_ms" => (
            "runtime",
            "command = [\"/bin/true\"]\nready_timeout_ms = 100",
        ),
        "runtime.stop_timeout_ms" => (
            "runtime",
            "command = [\"/bin/true\"]\nstop_timeout_ms = 100",
        ),
        "runtime.image" => ("runtime", "kind = \"docker\"\nimage = \"x:1\""),
        "runtime.network" => ("runtime", "kind = \"docker\"\nnetwork = \"n2\""),
        "runtime.name_prefix" => ("runtime", "kind = \"docker\"\nname_prefix = \"p-\""),
        "runtime.owner" => ("runtime", "kind = \"docker\"\nowner = \"o2\""),
        "runtime.port" => ("runtime", "kind = \"docker\"\nport = 9000"),
        "runtime.address" => ("runtime", "kind = \"docker\"\naddress = \"alias\""),
        "runtime.constraints" => (
            "runtime",
            "kind = \"swarm\"\nconstraints = [\"node.role == worker\"]",
        ),
        "runtime.stop_on_shutdown" => ("runtime", "kind = \"docker\"\nstop_on_shutdown = true"),
        "runtime.memory_mb" => ("runtime", "kind = \"docker\"\nmemory_mb = 64"),
        "runtime.cpus" => ("runtime", "kind = \"docker\"\ncpus = 0.5"),
        "runtime.env" => ("runtime", "kind = \"docker\"\nenv = { A = \"1\" }"),
        "runtime.replica_env" => (
            "runtime",
            "kind = \"docker\"\nreplica_env = { s1 = { A = \"1\" } }",
        ),
        "runtime.replicas" => (
            "runtime",
            "kind = \"static\"\nreplicas = [{ name = \"a\", address = \"127.0.0.1:9\" }]",
        ),
        "respawn.naming" => ("respawn", "naming = \"fresh\""),
        "respawn.backoff_initial_ms" => ("respawn", "backoff_initial_ms = 100"),
        "respawn.backoff_max_ms" => ("respawn", "backoff_max_ms = 100000"),
        "upstream.connect_timeout_ms" => ("upstream", "connect_timeout_ms = 50"),
        "upstream.retries" => ("upstream", "retries = 0"),
        "upstream.try_timeout_ms" => ("upstream", "try_timeout_ms = 50"),
        "upstream.suspect_after_ms" => ("upstream", "suspect_after_ms = 0"),
        "heartbeat.kind" => ("heartbeat", "kind = \"tcp\""),
        "heartbeat.service" => ("heartbeat", "service = \"echo.Echo\""),
        "upstream.protocol" => ("upstream", "protocol = \"h2c\""),
        "upstream.suspect_latency_multiple" => ("upstream", "suspect_latency_multiple = 7"),
        "upstream.hedge" => ("upstream", "hedge = false"),
        "upstream.hedge_budget_percent" => ("upstream", "hedge_budget_percent = 50"),
        "upstream.slow_paths" => (
            "upstream",
            "slow_paths = [{ prefix = \"/r/\", try_timeout_ms = 50 }]",
        ),
        "upstream.retry_body_bytes" => ("upstream", "retry_body_bytes = 0"),
        "upstream.retry_buffer_total_bytes" => ("upstream", "retry_buffer_total_bytes = 0"),
        "upstream.body_read_timeout_ms" => ("upstream", "body_read_timeout_ms = 50"),
        "upstream.max_fails" => ("upstream", "max_fails = 0"),
        "upstream.max_idle_per_replica" => ("upstream", "max_idle_per_replica = 0"),
        "upstream.idle_timeout_ms" => ("upstream", "idle_timeout_ms = 50"),
        "upstream.max_conns_per_replica" => ("upstream", "max_conns_per_replica = 0"),
        "upstream.queue_timeout_ms" => ("upstream", "queue_timeout_ms = 50"),
        "server.backlog" => ("server", "backlog = 16"),
        "server.first_request_timeout_ms" => ("server", "first_request_timeout_ms = 50"),
        "server.keepalive_timeout_ms" => ("server", "keepalive_timeout_ms = 50"),
        "server.header_read_timeout_ms" => ("server", "header_read_timeout_ms = 50"),
        "server.http2_keepalive_interval_ms" => ("server", "http2_keepalive_interval_ms = 50"),
        "server.http2_keepalive_timeout_ms" => ("server", "http2_keepalive_timeout_ms = 50"),
        "server.max_header_bytes" => ("server", "max_header_bytes = 9000"),
        "server.max_connections" => ("server", "max_connections = 5"),
        "server.lean_http1" => ("server", "lean_http1 = false"),
        "shutdown.grace_ms" => ("shutdown", "grace_ms = 5"),
        "log.format" => ("log", "format = \"json\""),
        "log.access" => ("log", "access = true"),
        _ => return None,
    };
    Some((section, line.to_string()))
}

/// The keys a reload applies at once (the README says the same).
const LIVE: [&str; 20] = [
    "key",
    "algorithm",
    "maglev_table_size",
    "balance_factor",
    "keyless",
    "log.access",
    "heartbeat.kind",
    "heartbeat.path",
    "heartbeat.service",
    "heartbeat.interval_ms",
    "heartbeat.timeout_ms",
    "upstream.retries",
    "upstream.try_timeout_ms",
    "upstream.suspect_after_ms",
    "upstream.suspect_latency_multiple",
    "upstream.hedge",
    "upstream.hedge_budget_percent",
    "upstream.slow_paths",
    "upstream.retry_body_bytes",
    "upstream.body_read_timeout_ms",
];

/// Every key of the README's config table, `a.b.<x>` cut to `a.b`.
fn reference_keys() -> Vec<String> {
    let readme = include_str!("../../README.md");
    readme
        .lines()
        .skip_while(|l| !l.starts_with("| key | default | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default().to_string();
            cell.split(',')
                .map(|k| {
                    let k = k.trim().trim_matches('`');
                    k.split(".<").next().unwrap_or(k).to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_reload_applies_or_names_every_key_of_the_config_reference() {
    let keys = reference_keys();
    assert!(keys.len() > 50, "the config table was not found: {keys:?}");
    let dir = std::env::temp_dir().join(format!("lb-reload-keys-{}", common::fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = (
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string(),
    );
    std::fs::write(&pem.0, made.cert.pem()).unwrap();
    std::fs::write(&pem.1, made.signing_key.serialize_pem()).unwrap();
    let text = |extra: Option<(&str, String)>| {
        let mut root = String::new();
        let mut sections: Vec<(&str, String)> =
            vec![("runtime", "command = [\"/bin/true\"]".to_string())];
        match extra {
            Some(("", line)) => root = format!("{line}\n"),
            Some(("runtime", line)) => sections[0].1 = line,
            Some((section, line)) => sections.push((section, line)),
            None => {}
        }
        let tables: String = sections
            .iter()
            .map(|(section, body)| format!("[{section}]\n{body}\n"))
            .collect();
        format!("{root}{tables}")
    };
    let running = Config::parse(&text(None)).unwrap();
    for key in &keys {
        let change = change_of(key, &pem).unwrap_or_else(|| panic!("no change written for {key}"));
        let fresh = Config::parse(&text(Some(change))).unwrap_or_else(|e| panic!("{key}: {e}"));
        let named = running.restart_needed(&fresh);
        if LIVE.contains(&key.as_str()) {
            assert!(
                named.is_empty(),
                "{key} is live but a reload names {named:?}"
            );
        } else {
            let section = ["runtime", "tls", "admin.tls"]
                .into_iter()
                .find(|table| key.starts_with(&format!("{table}.")))
                .unwrap_or(key);
            assert!(
                named.contains(&section),
                "a change of {key} is neither applied nor named: {named:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
