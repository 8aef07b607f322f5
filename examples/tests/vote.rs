//! The voting example through the daemon: three vote-server replicas behind lb-daemon
//! routing by `query:option`; every option's count is kept by one replica, so the
//! totals read back equal the votes cast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Running, free_port};

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `lb-daemon`, built beside this package's binaries (`cargo build --workspace --bins`).
fn daemon_binary() -> PathBuf {
    let vote = PathBuf::from(env!("CARGO_BIN_EXE_vote-server"));
    vote.with_file_name("lb-daemon")
}

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.unwrap_or_default().to_string())
        .unwrap();
    match agent.run(request) {
        Ok(mut resp) => (
            resp.status().as_u16(),
            resp.body_mut().read_json().unwrap_or_default(),
        ),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

#[test]
fn every_options_votes_add_up_whatever_replica_counts_them() {
    let binary = daemon_binary();
    assert!(
        binary.exists(),
        "{} is missing: run cargo build --workspace --bins",
        binary.display()
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("lb-vote-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("lb.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nreplicas = 3\nkey = [\"query:option\"]\n\
             [runtime]\ncommand = [{:?}, \"--host\", \"127.0.0.1\"]\n\
             [heartbeat]\ninterval_ms = 200\ntimeout_ms = 100\n",
            env!("CARGO_BIN_EXE_vote-server")
        ),
    )
    .unwrap();
    let _daemon = Running(
        Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(mut resp) = ureq::get(&format!("{base}/rep")).call() {
            let rep: serde_json::Value = resp.body_mut().read_json().unwrap();
            if rep["message"]["N"] == 3 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = ureq::get(&format!("{base}/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("?option=") && page.contains("kubernetes"));
    let cast = [
        ("kubernetes", 9u64),
        ("docker", 5),
        ("helm", 3),
        ("prometheus", 1),
    ];
    for (option, n) in cast {
        for i in 1..=n {
            let (status, answer) = call(
                "POST",
                &format!("{base}/api/vote?option={option}"),
                Some(&format!(r#"{{"option":"{option}"}}"#)),
            );
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["votes"], i, "{option}: {answer}");
        }
    }
    for (option, n) in cast {
        let (status, first) = call("GET", &format!("{base}/api/votes?option={option}"), None);
        assert_eq!(status, 200);
        assert_eq!(first["votes"], n, "{option}: {first}");
        for _ in 0..5 {
            let (_, again) = call("GET", &format!("{base}/api/votes?option={option}"), None);
            assert_eq!(again, first, "the same replica keeps {option}'s count");
        }
    }
    let (status, _) = call(
        "POST",
        &format!("{base}/api/vote?option=cobol"),
        Some(r#"{"option":"cobol"}"#),
    );
    assert_eq!(status, 400);
    let _ = std::fs::remove_dir_all(dir);
}
