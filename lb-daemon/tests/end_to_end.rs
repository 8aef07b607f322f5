//! End to end against the built binaries: lb-daemon with child-process replicas on
//! 127.0.0.1, real HTTP traffic, real process kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Daemon, base_config, call, child_pids, key_owned_by, random_key, signal, wait_for};

fn spread(daemon: &Daemon, requests: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..requests {
        let (status, replica) = daemon.home(Some(&random_key()));
        assert_eq!(status, 200);
        *counts.entry(replica.unwrap()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn the_seeds_scaling_client_empties_the_pool_then_adds_k_replicas() {
    let daemon = Daemon::start(&base_config(3));
    let empty = r#"{"n":10,"hostnames":[]}"#;
    for k in [2usize, 4] {
        let (status, answer) = call("DELETE", &daemon.url("/rm"), Some(empty));
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains(r#""N":0"#), "{answer}");
        assert!(daemon.replicas().is_empty());
        let none = wait_for(Duration::from_secs(5), || {
            child_pids(daemon.pid()).is_empty().then_some(())
        });
        assert!(none.is_some(), "removed replicas still run");
        let names: Vec<String> = (1..=k).map(|i| format!("\"server{i}\"")).collect();
        let add = format!(r#"{{"n":{k},"hostnames":[{}]}}"#, names.join(","));
        let (status, answer) = call("POST", &daemon.url("/add"), Some(&add));
        assert_eq!(status, 200, "{answer}");
        let expected: Vec<String> = (1..=k).map(|i| format!("server{i}")).collect();
        assert_eq!(daemon.replicas(), expected);
        let counts = spread(&daemon, 100 * k);
        let mut served: Vec<&String> = counts.keys().collect();
        served.sort();
        assert_eq!(served, expected.iter().collect::<Vec<_>>(), "{counts:?}");
    }
}

#[test]
fn balances_adds_and_removes_replicas() {
    let daemon = Daemon::start(&base_config(3));
    assert_eq!(daemon.replicas(), ["server1", "server2", "server3"]);

    let counts = spread(&daemon, 3000);
    println!("split of 3000 random keys over 3 replicas: {counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (replica, n) in &counts {
        let share = *n as f64 / 3000.0;
        assert!(
            (0.25..=0.42).contains(&share),
            "{replica} got {share:.3} of the traffic"
        );
    }

    let owners: Vec<String> = (0..100)
        .map(|_| daemon.home(Some("user-42")).1.unwrap())
        .collect();
    assert!(
        owners.iter().all(|o| *o == owners[0]),
        "one key went to several replicas: {owners:?}"
    );

    // Requests without a key spread too (random fallback).
    let keyless: std::collections::HashSet<String> =
        (0..60).map(|_| daemon.home(None).1.unwrap()).collect();
    assert_eq!(
        keyless.len(),
        3,
        "keyless traffic did not spread: {keyless:?}"
    );

    let (status, body) = call(
        "POST",
        &daemon.url("/add"),
        Some(r#"{"n":2,"hostnames":["s4"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"message":{"N":5,"replicas":["server1","server2","server3","s4","server4"]},"status":"successful"}"#
    );
    let counts = spread(&daemon, 1000);
    println!("split of 1000 random keys over 5 replicas: {counts:?}");
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|n| *n >= 100), "{counts:?}");

    let before = child_pids(daemon.pid());
    let victim_pid = before["server2"];
    let (status, body) = call(
        "DELETE",
        &daemon.url("/rm"),
        Some(r#"{"n":1,"hostnames":["server2"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(daemon.replicas(), ["server1", "server3", "s4", "server4"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{victim_pid}")).exists(),
        "server2's process is still there"
    );
    let after = child_pids(daemon.pid());
    assert_eq!(after.len(), 4);
    assert!(!after.contains_key("server2"));
    let counts = spread(&daemon, 400);
    assert!(!counts.contains_key("server2"));

    // /rm without names removes the most recently added.
    let (status, body) = call("DELETE", &daemon.url("/rm"), Some(r#"{"n":1}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(daemon.replicas(), ["server1", "server3", "s4"]);
}

#[test]
fn a_killed_replica_leaves_rotation_and_is_respawned_under_its_name() {
    let daemon = Daemon::start(&base_config(3));
    let key = key_owned_by(&daemon, "server2");
    let old_pid = child_pids(daemon.pid())["server2"];

    let killed = Instant::now();
    signal(old_pid, "KILL");
    // The first request for its key does not fail: its try on the dead process is
    // refused or reset, and it is retried on the next replica.
    let (status, _) = daemon.home(Some(&key));
    assert_eq!(status, 200, "the first request after kill -9 failed");
    // The daemon itself notices the exit (by reaping the child, before any heartbeat):
    // bound from the issue, fall × interval + 2 s = 3 × 0.5 s + 2 s.
    let detected = wait_for(Duration::from_millis(3500), || {
        let log = daemon.log.lock().unwrap();
        log.iter()
            .any(|l| l.contains("replica exited") && l.contains("replica=server2"))
            .then(Instant::now)
    })
    .expect("the daemon did not notice server2's exit within 3.5 s");
    let detect_time = detected.duration_since(killed);
    let respawned = wait_for(Duration::from_secs(5), || {
        child_pids(daemon.pid())
            .get("server2")
            .copied()
            .filter(|pid| *pid != old_pid)
            .and_then(|pid| {
                (daemon.home(Some(&key)).1.as_deref() == Some("server2")).then_some(pid)
            })
    })
    .expect("server2 was not respawned within 5 s");
    println!(
        "kill -9: exit noticed after {} ms; server2 respawned (pid {old_pid} -> {respawned}) after {} ms",
        detect_time.as_millis(),
        killed.elapsed().as_millis()
    );
    // From now on nothing reaches the dead process: every request succeeds.
    assert_eq!(daemon.replicas(), ["server1", "server2", "server3"]);
    for _ in 0..300 {
        assert_eq!(daemon.home(Some(&random_key())).0, 200);
    }
    assert!(daemon.log_contains("replica exited"));
    assert!(daemon.log_contains("replica respawned"));
}

#[test]
fn a_hung_replica_fails_heartbeats_goes_down_and_is_replaced() {
    // A long stop timeout: the frozen process must end on its SIGTERM (continued by
    // the SIGCONT that follows it), not wait 30 s for the SIGKILL.
    let config = base_config(3).replacen(
        "\"127.0.0.1\"]\n",
        "\"127.0.0.1\"]\nstop_timeout_ms = 30000\n",
        1,
    );
    assert!(config.contains("stop_timeout_ms = 30000"), "{config}");
    let daemon = Daemon::start(&config);
    let key = key_owned_by(&daemon, "server3");
    let old_pid = child_pids(daemon.pid())["server3"];

    // SIGSTOP: the process lives and holds its port but answers nothing, so only
    // heartbeats can notice.
    let stopped = Instant::now();
    signal(old_pid, "STOP");
    let replaced = wait_for(Duration::from_millis(1500 + 2000 + 5000), || {
        let pids = child_pids(daemon.pid());
        pids.get("server3").copied().filter(|pid| *pid != old_pid)
    });
    let down_after = stopped.elapsed();
    let new_pid = replaced.expect("the hung replica was not replaced");
    let gone = wait_for(Duration::from_secs(3), || {
        (!std::path::Path::new(&format!("/proc/{old_pid}")).exists()).then_some(())
    });
    signal(old_pid, "KILL");
    assert!(gone.is_some(), "the frozen replica {old_pid} still runs");
    assert!(
        daemon.log_contains("replica Down"),
        "no Down transition was logged"
    );
    println!(
        "SIGSTOP: server3 replaced (pid {old_pid} -> {new_pid}) after {} ms",
        down_after.as_millis()
    );
    let served = wait_for(Duration::from_secs(5), || {
        (daemon.home(Some(&key)).1.as_deref() == Some("server3")).then_some(())
    });
    assert!(
        served.is_some(),
        "the respawned server3 does not get its keys back"
    );
}

#[test]
fn invalid_admin_calls_are_refused_and_change_nothing() {
    let daemon = Daemon::start(&base_config(3));
    let before = daemon.replicas();
    let pids = child_pids(daemon.pid());
    let big = format!(r#"{{"n":1,"hostnames":["{}"]}}"#, "a".repeat(70_000));
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/add", "{\"n\":".into(), 400, "malformed JSON"),
        ("DELETE", "/rm", "not json".into(), 400, "malformed JSON"),
        (
            "POST",
            "/add",
            r#"{"hostnames":["x"]}"#.into(),
            400,
            "'n' is missing",
        ),
        ("POST", "/add", r#"{"n":-1}"#.into(), 400, "non-negative"),
        ("DELETE", "/rm", r#"{"n":-2}"#.into(), 400, "non-negative"),
        (
            "POST",
            "/add",
            r#"{"n":65}"#.into(),
            400,
            "above the limit of 64",
        ),
        (
            "POST",
            "/add",
            r#"{"n":2,"hostnames":["x1","x1"]}"#.into(),
            400,
            "listed twice",
        ),
        (
            "POST",
            "/add",
            r#"{"n":1,"hostnames":["server1"]}"#.into(),
            400,
            "already exists",
        ),
        (
            "POST",
            "/add",
            r#"{"n":1,"hostnames":["bad/name"]}"#.into(),
            400,
            "invalid hostname",
        ),
        (
            "DELETE",
            "/rm",
            r#"{"n":1,"hostnames":["nope"]}"#.into(),
            400,
            "does not exist",
        ),
        (
            "DELETE",
            "/rm",
            r#"{"n":2,"hostnames":["server1","server1"]}"#.into(),
            400,
            "listed twice",
        ),
        (
            "POST",
            "/add",
            r#"{"n":1,"hostnames":["a1","a2"]}"#.into(),
            400,
            "<Error> Length of hostname list is more than newly added instances",
        ),
        (
            "DELETE",
            "/rm",
            r#"{"n":1,"hostnames":["server1","server2"]}"#.into(),
            400,
            "<Error> Length of hostname list is more than removable instances",
        ),
        ("GET", "/add", String::new(), 405, "not allowed"),
        ("POST", "/rep", String::new(), 405, "not allowed"),
        ("POST", "/add", big, 413, "larger than"),
    ];
    for (method, path, body, code, says) in cases {
        let (status, answer) = call(
            method,
            &daemon.url(path),
            (!body.is_empty()).then_some(body.as_str()),
        );
        assert_eq!(status, code, "{method} {path} {body:.60} -> {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("failure JSON");
        assert_eq!(v["status"], "failure", "{answer}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with("<Error> ") && message.contains(says),
            "{method} {path}: {message}"
        );
        assert_eq!(
            daemon.replicas(),
            before,
            "{method} {path} changed the replicas"
        );
    }
    assert_eq!(
        child_pids(daemon.pid()),
        pids,
        "an invalid call started or stopped a process"
    );
}

#[test]
fn sigterm_stops_every_replica() {
    let mut daemon = Daemon::start(&base_config(2));
    let pids = child_pids(daemon.pid());
    assert_eq!(pids.len(), 2);
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    for pid in pids.values() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "replica {pid} outlived the daemon"
        );
    }
}

#[test]
fn no_replica_answers_503_with_the_failure_shape() {
    let daemon = Daemon::start(&base_config(0));
    let (status, body) = call("GET", &daemon.url("/home"), None);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"message":"<Error> no healthy replica is available","status":"failure"}"#
    );
}
