//! A replica that hangs without dying, under load, with the default suspicion: frozen
//! by `SIGSTOP` (heartbeats fail too: it is respawned) or wedged (replica-server's wedge
//! fault: every path but `/heartbeat` hangs, so heartbeats keep passing: it stays Up,
//! suspected, never respawned, and is back after its half-open trial once it
//! recovers). Either way no request fails. A slow endpoint on replicas that answer
//! other traffic suspects nobody. Each test runs at most a few seconds of load (the
//! `serial-load` group of `.config/nextest.toml` runs them one at a time); their latency
//! figures come from `benches/hung/hung.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{
    Daemon, agent, base_config, call, child_pids, counter, join_load, load, signal, wait_for,
};

/// Three child replicas with today's default heartbeats (interval 1000 ms, timeout
/// 500 ms, rise 2, fall 3), as the scenarios require: shortening them is not
/// how a hung replica is handled.
fn default_heartbeats() -> String {
    let config = base_config(3);
    let fast = "interval_ms = 500\ntimeout_ms = 250\n";
    assert!(config.contains(fast), "base_config changed: {config}");
    config.replace(fast, "interval_ms = 1000\ntimeout_ms = 500\n")
}

/// Every replica's row of `/status`.
fn rows(daemon: &Daemon) -> Vec<serde_json::Value> {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["message"]["replicas"].as_array().unwrap().clone()
}

/// server2's row of `/status`.
fn server2(daemon: &Daemon) -> serde_json::Value {
    rows(daemon)
        .into_iter()
        .find(|r| r["name"] == "server2")
        .unwrap()
}

#[test]
fn a_wedged_replica_is_suspected_and_its_requests_move_without_a_failure() {
    let daemon = Daemon::start(&default_heartbeats());
    let address = server2(&daemon)["address"].as_str().unwrap().to_string();
    let fault = |what: &str| {
        let (code, body) = call("POST", &format!("http://{address}/fault"), Some(what));
        assert_eq!(code, 200, "{body}");
    };

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&daemon, 4, 300, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(800));
    fault("wedge");
    let suspected = wait_for(Duration::from_secs(3), || {
        (server2(&daemon)["suspected"] == true).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let wedged = server2(&daemon);
    fault("none");
    let cleared = wait_for(Duration::from_secs(4), || {
        (server2(&daemon).get("suspected").is_none()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, bad, errors) = join_load(workers);

    assert!(suspected.is_some(), "server2 was never suspected");
    assert_eq!(
        wedged["state"], "up",
        "suspicion must not take it Down: {wedged}"
    );
    assert_eq!(
        wedged["respawns"], 0,
        "suspicion must not respawn it: {wedged}"
    );
    assert!(cleared.is_some(), "a recovered server2 stayed suspected");
    eprintln!("wedged replica under load: {ok} ok, {bad} non-2xx, {errors} transport errors");
    assert!(ok > 500, "the load did not run: {ok}");
    assert_eq!(
        (bad, errors),
        (0, 0),
        "requests failed around the wedged replica"
    );
}

#[test]
fn a_frozen_replica_is_suspected_then_respawned_without_a_failure() {
    let daemon = Daemon::start(&default_heartbeats());
    let pid = child_pids(daemon.pid())["server2"];
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&daemon, 4, 300, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(800));
    signal(pid, "STOP");
    let suspected = wait_for(Duration::from_secs(3), || {
        (server2(&daemon)["suspected"] == true).then_some(())
    });
    // Heartbeats fail (interval 1000 ms, fall 3): the process is replaced.
    let respawned = wait_for(Duration::from_secs(10), || {
        let row = server2(&daemon);
        (row["respawns"] == 1 && row["state"] == "up").then_some(row)
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, bad, errors) = join_load(workers);
    signal(pid, "KILL");

    assert!(
        suspected.is_some(),
        "the frozen server2 was never suspected"
    );
    let respawned = respawned.expect("the frozen server2 was not respawned");
    assert!(
        respawned.get("suspected").is_none(),
        "a respawned replica starts unsuspected: {respawned}"
    );
    eprintln!("frozen replica under load: {ok} ok, {bad} non-2xx, {errors} transport errors");
    assert!(ok > 500, "the load did not run: {ok}");
    assert_eq!(
        (bad, errors),
        (0, 0),
        "requests failed around the frozen replica"
    );
}

#[test]
fn a_slow_endpoint_on_answering_replicas_suspects_nobody() {
    let daemon = Daemon::start(&default_heartbeats());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&daemon, 2, 100, Arc::clone(&stop));
    // Six requests far past the 220 ms deadline floor, spread over the replicas.
    let slow: Vec<_> = (0..6)
        .map(|i| {
            let url = daemon.url("/sleep/1500");
            std::thread::spawn(move || {
                let response = agent()
                    .get(&url)
                    .header("x-lb-key", format!("slow-{i}"))
                    .call()
                    .unwrap();
                response.status().as_u16()
            })
        })
        .collect();
    let mut seen_suspected = Vec::new();
    let watch_until = std::time::Instant::now() + Duration::from_millis(2000);
    while std::time::Instant::now() < watch_until {
        for row in rows(&daemon) {
            if row["suspected"] == true {
                seen_suspected.push(row["name"].to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let codes: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, bad, errors) = join_load(workers);

    assert_eq!(codes, [200; 6], "the slow requests did not all succeed");
    // Nothing left a replica for suspicion (hedges may have raced the slow requests).
    assert_eq!(counter(&daemon, "lb_moved_requests_total"), 0.0);
    assert!(
        seen_suspected.is_empty(),
        "a slow endpoint made replicas suspected: {seen_suspected:?}"
    );
    for row in rows(&daemon) {
        assert_eq!(row["state"], "up", "{row}");
        assert_eq!(row["respawns"], 0, "{row}");
    }
    assert_eq!((bad, errors), (0, 0));
}
