//! Every lb-core algorithm from the daemon: Maglev, bounded loads, weights (and weight 0
//! draining), keyless round robin, each through real sockets to real replica processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{Daemon, agent, base_config, call, header, join_load, load, signal, wait_for};

/// How many of `keys` each replica serves.
fn shares(daemon: &Daemon, keys: impl Iterator<Item = String>) -> (HashMap<String, usize>, usize) {
    let mut counts = HashMap::new();
    let mut total = 0;
    for key in keys {
        let (status, replica) = daemon.home(Some(&key));
        assert_eq!(status, 200);
        *counts.entry(replica.unwrap()).or_insert(0) += 1;
        total += 1;
    }
    (counts, total)
}

fn random_keys(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|_| common::random_key())
}

/// The `/status` document's message.
fn status(daemon: &Daemon) -> serde_json::Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].clone()
}

/// Rewrites the config and sends SIGHUP; waits for the reload.
fn reload(daemon: &Daemon, config: &str) {
    let reloads = || {
        let log = daemon.log.lock().unwrap();
        log.iter().filter(|l| l.contains("config reloaded")).count()
    };
    std::fs::write(&daemon.config, config).unwrap();
    let before = reloads();
    signal(daemon.pid(), "HUP");
    let done = wait_for(Duration::from_secs(5), || {
        (reloads() > before).then_some(())
    });
    assert!(done.is_some(), "the reload was not applied");
}

#[test]
fn maglev_spreads_keys_evenly_and_a_reload_switches_the_table() {
    let ring_config = base_config(3);
    let daemon = Daemon::start(&ring_config);
    let ring_fingerprint = status(&daemon)["fingerprint"].clone();

    reload(
        &daemon,
        &ring_config.replacen(
            "replicas = 3\n",
            "replicas = 3\nalgorithm = \"maglev\"\n",
            1,
        ),
    );
    let (code, body) = call("GET", &daemon.url("/explain?key=alice"), None);
    assert_eq!(code, 200, "{body}");
    let explained: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(explained["message"]["algorithm"], "maglev", "{body}");
    assert_ne!(
        status(&daemon)["fingerprint"],
        ring_fingerprint,
        "the table changed, so must its fingerprint"
    );
    assert_eq!(
        daemon.home(Some("alice")).1.as_deref(),
        explained["message"]["route"].as_str()
    );

    let (counts, total) = shares(&daemon, random_keys(6000));
    eprintln!("maglev, 6,000 random keys over 3 replicas: {counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (replica, n) in &counts {
        let share = *n as f64 / total as f64;
        assert!(
            (0.31..=0.36).contains(&share),
            "{replica} took {share:.3} of 6,000 keys: {counts:?}"
        );
    }
}

/// `threads` concurrent `GET /sleep/<ms>` with key `hot` → replica per request.
fn slow_hot_requests(daemon: &Daemon, threads: usize, ms: u64) -> HashMap<String, usize> {
    let url = daemon.url(&format!("/sleep/{ms}"));
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let url = url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let agent = agent();
                barrier.wait();
                let resp = agent.get(&url).header("x-lb-key", "hot").call().unwrap();
                assert!(resp.status().is_success());
                header(&resp, "x-lb-replica").unwrap()
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for worker in workers {
        *counts.entry(worker.join().unwrap()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn a_balance_factor_spreads_a_hot_key_and_applies_on_reload() {
    let config = base_config(4);
    let daemon = Daemon::start(&config);
    let owner = daemon.home(Some("hot")).1.unwrap();

    let all_to_owner = slow_hot_requests(&daemon, 30, 1500);
    assert_eq!(
        all_to_owner,
        HashMap::from([(owner.clone(), 30)]),
        "without a balance factor a key stays with its owner"
    );

    reload(
        &daemon,
        &config.replacen("replicas = 4\n", "replicas = 4\nbalance_factor = 1.25\n", 1),
    );
    let spread = slow_hot_requests(&daemon, 30, 1500);
    eprintln!("balance_factor 1.25, 30 slow requests with one key: {spread:?}");
    assert!(spread.len() >= 3, "{spread:?}");
    // Capacity ⌈1.25 × 30 / 4⌉ = 10; one more for a request routed while another was
    // still being counted (the acceptance bar is 14).
    assert!(spread.values().all(|&n| n <= 11), "{spread:?}");
    assert_eq!(spread.values().sum::<usize>(), 30);
    assert!(spread.contains_key(&owner), "{spread:?}");
}

#[test]
fn keyless_round_robin_is_exactly_even() {
    let config = base_config(3).replacen(
        "replicas = 3\n",
        "replicas = 3\nkeyless = \"round_robin\"\n",
        1,
    );
    let daemon = Daemon::start(&config);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let (code, replica) = daemon.home(None);
        assert_eq!(code, 200);
        *counts.entry(replica.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        HashMap::from([
            ("server1".to_string(), 100),
            ("server2".to_string(), 100),
            ("server3".to_string(), 100)
        ])
    );
}

#[test]
fn weights_set_shares_and_weight_zero_drains_without_a_failed_request() {
    let daemon = Daemon::start(&base_config(3));
    let (code, body) = call(
        "POST",
        &daemon.url("/add"),
        Some(r#"{"n":1,"hostnames":["heavy"],"weights":[3]}"#),
    );
    assert_eq!(code, 200, "{body}");
    let weight_of = |name: &str| {
        let replicas = status(&daemon)["replicas"].as_array().unwrap().clone();
        replicas
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["weight"].as_u64().unwrap())
    };
    assert_eq!(weight_of("heavy"), Some(3));
    assert_eq!(weight_of("server1"), Some(1));

    let (counts, total) = shares(&daemon, random_keys(6000));
    eprintln!("weights 3, 1, 1, 1, 6,000 random keys: {counts:?}");
    let heavy = counts.get("heavy").copied().unwrap_or(0) as f64 / total as f64;
    assert!(
        (0.42..=0.58).contains(&heavy),
        "weight 3 beside three of weight 1 took {heavy:.3}: {counts:?}"
    );

    // Bad weights change nothing.
    for (path, body) in [
        ("/weight", r#"{"hostname":"heavy","weight":257}"#),
        ("/weight", r#"{"hostname":"nobody","weight":1}"#),
        ("/add", r#"{"n":1,"hostnames":["x"],"weights":[1,1]}"#),
    ] {
        let (code, answer) = call("POST", &daemon.url(path), Some(body));
        assert_eq!(code, 400, "{body}: {answer}");
    }
    assert_eq!(weight_of("heavy"), Some(3));

    // Weight 0 under load: heavy leaves the table, nothing fails.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&daemon, 4, 400, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = call(
        "POST",
        &daemon.url("/weight"),
        Some(r#"{"hostname":"heavy","weight":0}"#),
    );
    assert_eq!(code, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, bad, errors) = join_load(workers);
    assert!(ok > 100, "the load did not run: {ok}");
    eprintln!("weight 0 under load: {ok} ok, {bad} non-2xx, {errors} transport errors");
    assert_eq!((bad, errors), (0, 0), "requests failed while heavy drained");

    let (after, _) = shares(&daemon, random_keys(600));
    assert!(!after.contains_key("heavy"), "{after:?}");
    let drained = status(&daemon);
    let heavy = drained["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "heavy")
        .unwrap()
        .clone();
    assert_eq!(heavy["weight"], 0);
    assert_eq!(heavy["ring_share"], 0.0);
    assert_eq!(
        heavy["state"], "up",
        "a drained replica stays a probed member"
    );
}

#[test]
fn weights_survive_a_restart_through_the_state_file() {
    let dir = std::env::temp_dir().join(format!("lb-weights-{}", common::fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let config = base_config(2).replacen(
        "replicas = 2\n",
        &format!(
            "replicas = 2\nstate_file = {:?}\n",
            state.display().to_string()
        ),
        1,
    );
    let weights = |daemon: &Daemon| -> Vec<(String, u64)> {
        let replicas = status(daemon)["replicas"].as_array().unwrap().clone();
        replicas
            .iter()
            .map(|r| {
                let name = r["name"].as_str().unwrap().to_string();
                (name, r["weight"].as_u64().unwrap())
            })
            .collect()
    };
    let mut daemon = Daemon::start(&config);
    let (code, body) = call(
        "POST",
        &daemon.url("/add"),
        Some(r#"{"n":1,"hostnames":["big"],"weights":[4]}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        "POST",
        &daemon.url("/weight"),
        Some(r#"{"hostname":"server1","weight":0}"#),
    );
    assert_eq!(code, 200, "{body}");
    let before = weights(&daemon);
    assert!(daemon.terminate().success());

    let daemon = Daemon::start(&config);
    assert_eq!(weights(&daemon), before);
    assert_eq!(
        before,
        [
            ("server1".to_string(), 0),
            ("server2".to_string(), 1),
            ("big".to_string(), 4)
        ]
    );
}
