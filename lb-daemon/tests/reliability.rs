//! Bad days: a replica killed under full-speed load (wrk), a replica that hangs, `/rm` during a slow
//! request, a slowloris client. Traffic only to 127.0.0.1; every test bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Daemon, agent, base_config, call, child_pids, header, key_owned_by, load, signal, wait_for,
};

/// `wrk`, or `None` (with a note) when it is missing and `LB_REQUIRE_PEERS` is unset.
fn wrk() -> Option<&'static str> {
    let found = Command::new("wrk").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "wrk is missing (Debian package wrk; .ci/run installs it)"
        );
        eprintln!("wrk is missing: skipped (install Debian's wrk to run this test)");
        return None;
    }
    Some("wrk")
}

#[test]
fn kill_9_at_full_speed_under_wrk_fails_no_request() {
    let Some(wrk) = wrk() else { return };
    let daemon = Daemon::start(&base_config(3));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/proxy/keyed.lua");
    let victim = child_pids(daemon.pid())["server2"];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        signal(victim, "KILL");
    });
    // Unpaced, closed loop: 64 connections, a new key on every request, 10 s.
    let out = Command::new(wrk)
        .args(["-t1", "-c64", "-d10s", "-s"])
        .arg(&script)
        .arg(daemon.url("/"))
        .env("WRK_PATH", "/home")
        .output()
        .unwrap();
    killer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let requests: u64 = text
        .split(" requests in")
        .next()
        .and_then(|head| head.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .expect("wrk printed no request count");
    assert!(requests >= 5_000, "the load was too light: {requests}");
    assert!(!text.contains("Non-2xx"), "some requests failed: {text}");
    assert!(!text.contains("Socket errors"), "socket errors: {text}");
    // The replacement takes its keys back.
    let replaced = child_pids(daemon.pid())["server2"];
    assert_ne!(replaced, victim);
    let back =
        (0..2000).any(|i| daemon.home(Some(&format!("k{i}"))).1.as_deref() == Some("server2"));
    assert!(back, "server2's replacement got no keys");
}

#[test]
fn a_hung_replica_costs_at_most_max_fails_try_timeouts_then_heartbeats_take_it_down() {
    let config = base_config(3).replace(
        "[shutdown]",
        // Hedging off: with it, each request would be answered by the next replica at
        // the 220 ms deadline and the try timeouts this test counts would not happen.
        "[upstream]\ntry_timeout_ms = 300\nretries = 2\nmax_fails = 3\nhedge = false\n\n[shutdown]",
    );
    let daemon = Daemon::start(&config);
    let key = key_owned_by(&daemon, "server1");
    let pid = child_pids(daemon.pid())["server1"];
    signal(pid, "STOP");
    // It accepts connections (the kernel does) but never answers. Each request for its
    // key waits one try timeout on server1, then is served by the next replica; after
    // max_fails such tries server1 is ejected and its keys are served at once.
    let mut latencies = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        let (status, replica) = daemon.home(Some(&key));
        latencies.push(started.elapsed());
        assert_eq!(status, 200);
        assert_ne!(
            replica.as_deref(),
            Some("server1"),
            "a stopped process answered"
        );
    }
    let slow = latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(300))
        .count();
    println!("hung replica: latencies {latencies:?}");
    assert!(
        (1..=3).contains(&slow),
        "{slow} requests paid the try timeout: {latencies:?}"
    );
    assert!(
        latencies[slow..]
            .iter()
            .all(|l| *l < Duration::from_millis(300)),
        "requests after the ejection still waited: {latencies:?}"
    );
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(600)),
        "a request paid more than one try timeout: {latencies:?}"
    );
    assert!(daemon.log_contains("replica ejected"));
    // Ejection never respawns; the failing heartbeats do.
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_contains("replica Down")
            .then_some(()))
        .is_some(),
        "heartbeats did not take the hung replica down"
    );
    signal(pid, "KILL");
}

#[test]
fn rm_drains_a_slow_request_before_stopping_the_replica() {
    let daemon = Daemon::start(&base_config(3));
    let key = (0..10_000)
        .map(|i| format!("s{i}"))
        .find(|k| daemon.home(Some(k)).1.as_deref() == Some("server3"))
        .unwrap();
    let url = daemon.url("/sleep/2000");
    let result = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&result);
    let slow = std::thread::spawn(move || {
        let resp = agent().get(&url).header("x-lb-key", &key).call();
        *slot.lock().unwrap() = Some(
            resp.map(|r| (r.status().as_u16(), header(&r, "x-lb-replica")))
                .map_err(|e| e.to_string()),
        );
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, body) = call(
        "DELETE",
        &daemon.url("/rm"),
        Some(r#"{"n":1,"hostnames":["server3"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "/rm did not wait for the in-flight request"
    );
    slow.join().unwrap();
    let got = result.lock().unwrap().clone().unwrap();
    assert_eq!(
        got,
        Ok((200, Some("server3".to_string()))),
        "the slow request was cut"
    );
}

#[test]
fn a_slowloris_client_is_cut_at_the_header_timeout() {
    let config = base_config(1).replace(
        "[shutdown]",
        "[server]\nheader_read_timeout_ms = 500\n\n[shutdown]",
    );
    let daemon = Daemon::start(&config);
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .write_all(b"GET /home HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let cut = started.elapsed();
    println!(
        "slowloris: cut after {} ms ({:?})",
        cut.as_millis(),
        String::from_utf8_lossy(&buf)
    );
    assert!(
        cut < Duration::from_secs(2),
        "the half-sent request held the connection for {cut:?}"
    );
    // The daemon still serves everyone else.
    assert_eq!(daemon.home(Some("k")).0, 200);
}

/// Whether process `pid` runs (exists and is no zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn sigkill_of_a_daemon_without_a_state_file_leaves_no_replica_running() {
    let mut daemon = Daemon::start(&base_config(3));
    let children = child_pids(daemon.pid());
    assert_eq!(children.len(), 3, "{children:?}");
    daemon.child.kill().unwrap(); // SIGKILL: the daemon runs no code after this
    daemon.child.wait().unwrap();
    let left = wait_for(Duration::from_secs(3), || {
        let running: Vec<&String> = children
            .iter()
            .filter(|(_, pid)| alive(**pid))
            .map(|(name, _)| name)
            .collect();
        running.is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "replicas still running 3 s after the daemon was killed: {children:?}"
    );
}

#[test]
fn an_rm_whose_client_disconnects_still_completes() {
    let port = common::free_port();
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:{port}\"\n",
        base_config(2)
    );
    let daemon = Daemon::start(&config);
    let key = key_owned_by(&daemon, "server2");
    let server2 = child_pids(daemon.pid())["server2"];
    // A slow request keeps server2 busy, so /rm drains for about a second.
    let url = daemon.url("/sleep/1500");
    let slow = std::thread::spawn(move || {
        let answer = agent().get(&url).header("x-lb-key", &key).call();
        answer.is_ok_and(|r| r.status().is_success())
    });
    std::thread::sleep(Duration::from_millis(200));
    let body = r#"{"n":1,"hostnames":["server2"]}"#;
    let mut admin = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        admin,
        "DELETE /rm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(admin); // the client goes away mid-call
    let done = wait_for(Duration::from_secs(5), || {
        let (status, answer) = call("GET", &format!("http://127.0.0.1:{port}/rep"), None);
        assert_eq!(status, 200, "{answer}");
        (!answer.contains("server2") && !alive(server2)).then_some(())
    });
    assert!(
        done.is_some(),
        "the /rm of a departed client did not finish: server2 is still a member or still runs"
    );
    assert!(slow.join().unwrap(), "the drained request was answered");
    assert_eq!(child_pids(daemon.pid()).len(), 1);
}

#[test]
fn sigkill_then_restart_restores_the_same_replicas_without_duplicates() {
    let dir = std::env::temp_dir().join(format!("lb-state-test-{}", common::fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let config = base_config(3).replacen(
        "replicas = 3\n",
        &format!(
            "replicas = 3\nstate_file = {:?}\n",
            state.display().to_string()
        ),
        1,
    );
    let mut first = Daemon::start(&config);
    let (status, body) = call(
        "POST",
        &first.url("/add"),
        Some(r#"{"n":1,"hostnames":["s9"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&first, 2, 300, Arc::clone(&stop));
    std::thread::sleep(Duration::from_secs(1));
    let orphans = child_pids(first.pid());
    assert_eq!(orphans.len(), 4);
    first.child.kill().unwrap(); // SIGKILL: no cleanup at all
    first.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    let second = Daemon::start(&config);
    assert_eq!(second.replicas(), ["server1", "server2", "server3", "s9"]);
    let children = child_pids(second.pid());
    assert_eq!(children.len(), 4, "{children:?}");
    for (name, pid) in &orphans {
        assert!(
            !alive(*pid) || children.get(name) == Some(pid),
            "{name}'s old process {pid} still runs: duplicated"
        );
    }
    for i in 0..200 {
        assert_eq!(second.home(Some(&format!("after-{i}"))).0, 200);
    }
    drop(second);
    std::fs::write(&state, b"{\"version\":1,\"replicas\":[{\"na").unwrap();
    let broken = Daemon::start(&config);
    let said = wait_for(Duration::from_secs(5), || {
        broken.log_contains("is corrupt").then_some(())
    });
    let log = broken.log.lock().unwrap().join("\n");
    assert!(said.is_some(), "{log}");
    assert!(
        log.contains(&state.display().to_string()) && log.contains("moved to"),
        "{log}"
    );
    assert!(
        !state.exists(),
        "the corrupt file must be moved aside, not overwritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
