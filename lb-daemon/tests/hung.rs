//! A replica that hangs without dying (replica-server's wedge fault: every path but
//! `/heartbeat` hangs, so heartbeats keep passing): with `upstream.suspect_after_ms`
//! the data plane suspects it and moves its waiting requests; nothing fails, nothing is
//! respawned, and a recovered replica is back after its half-open trial.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{Daemon, base_config, call, join_load, load, wait_for};

/// server2's row of `/status`.
fn server2(daemon: &Daemon) -> serde_json::Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let replicas = status["message"]["replicas"].as_array().unwrap().clone();
    replicas
        .into_iter()
        .find(|r| r["name"] == "server2")
        .unwrap()
}

#[test]
fn a_wedged_replica_is_suspected_and_its_requests_move_without_a_failure() {
    let config = format!("{}\n[upstream]\nsuspect_after_ms = 100\n", base_config(3));
    let daemon = Daemon::start(&config);
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
