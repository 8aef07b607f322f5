//! The static runtime: replicas the test runs itself at fixed addresses. The daemon
//! probes and balances; a dead replica goes Down (no respawn) and comes back Up when
//! heartbeats rise again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, binary, call, free_port, wait_for};

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(id: &str, port: u16) -> Replica {
    let child = Command::new(binary("replica-server"))
        .args([
            "--id",
            id,
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap();
    Replica(child)
}

#[test]
fn static_replicas_are_balanced_probed_and_never_respawned() {
    let ports = [free_port(), free_port(), free_port()];
    let _a = replica("api1", ports[0]);
    let mut b = replica("api2", ports[1]);
    let _c = replica("api3", ports[2]);
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[heartbeat]\ninterval_ms = 300\ntimeout_ms = 150\nrise = 2\nfall = 2\n\
         [runtime]\nkind = \"static\"\n[[runtime.replicas]]\nname = \"api1\"\naddress = \"127.0.0.1:{}\"\n\
         [[runtime.replicas]]\nname = \"api2\"\naddress = \"127.0.0.1:{}\"\n",
        ports[0], ports[1]
    );
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.replicas(), ["api1", "api2"]);

    let body = format!(
        r#"{{"n":1,"hostnames":["api3"],"addresses":["127.0.0.1:{}"]}}"#,
        ports[2]
    );
    let (status, answer) = call("POST", &daemon.url("/add"), Some(&body));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(
        "POST",
        &daemon.url("/add"),
        Some(r#"{"n":1,"hostnames":["api4"]}"#),
    );
    assert_eq!(status, 500, "{answer}");
    assert!(answer.contains("needs an address"), "{answer}");
    assert_eq!(daemon.replicas(), ["api1", "api2", "api3"]);

    let key = (0..10_000)
        .map(|i| format!("k{i}"))
        .find(|k| daemon.home(Some(k)).1.as_deref() == Some("api2"))
        .unwrap();
    drop(std::mem::replace(
        &mut b,
        Replica(Command::new("true").spawn().unwrap()),
    ));
    let moved = wait_for(Duration::from_secs(3), || {
        let (status, replica) = daemon.home(Some(&key));
        (status == 200 && replica.as_deref() != Some("api2")).then_some(replica)
    });
    assert!(moved.is_some(), "api2's keys did not fail over");
    assert!(
        wait_for(Duration::from_secs(3), || daemon
            .log_contains("replica Down")
            .then_some(()))
        .is_some(),
        "api2 never went Down"
    );
    assert!(
        !daemon.log_contains("respawned"),
        "the static runtime must not respawn"
    );
    assert_eq!(
        daemon.replicas(),
        ["api1", "api2", "api3"],
        "a Down static replica stays a member"
    );

    let _b = replica("api2", ports[1]);
    let back = wait_for(Duration::from_secs(3), || {
        (daemon.home(Some(&key)).1.as_deref() == Some("api2")).then_some(())
    });
    assert!(
        back.is_some(),
        "api2 did not come back Up after it rose: {:?}",
        daemon.log.lock().unwrap()
    );

    let (status, _) = call(
        "DELETE",
        &daemon.url("/rm"),
        Some(r#"{"n":1,"hostnames":["api1"]}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(daemon.replicas(), ["api2", "api3"]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", ports[0])).is_ok(),
        "/rm must not stop a static replica"
    );
}

#[test]
fn explain_names_the_replica_that_serves_a_key_and_then_its_failover() {
    let names = ["api1", "api2", "api3"];
    let ports = [free_port(), free_port(), free_port()];
    let mut replicas: Vec<Option<Replica>> = names
        .iter()
        .zip(ports)
        .map(|(id, port)| Some(replica(id, port)))
        .collect();
    let mut config = String::from(
        "listen = \"127.0.0.1:0\"\n[heartbeat]\ninterval_ms = 200\ntimeout_ms = 150\nrise = 1\nfall = 2\n[runtime]\nkind = \"static\"\n",
    );
    for (name, port) in names.iter().zip(ports) {
        config.push_str(&format!(
            "[[runtime.replicas]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\n"
        ));
    }
    let daemon = Daemon::start(&config);
    let explain = |key: &str| -> serde_json::Value {
        let (code, body) = call("GET", &daemon.url(&format!("/explain?key={key}")), None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].clone()
    };
    let key = "user%2042"; // "user 42", percent-encoded
    let all_up = wait_for(Duration::from_secs(10), || {
        let e = explain(key);
        let candidates = e["candidates"].as_array()?.clone();
        candidates
            .iter()
            .all(|c| c["in_rotation"] == true)
            .then_some(e)
    });
    let before = all_up.expect("the replicas did not come up");
    assert_eq!(before["key"], "user 42");
    assert_eq!(before["position"].as_str().unwrap().len(), 16);
    let order: Vec<String> = before["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.len(), 3, "{before}");
    assert_eq!(before["owner"], order[0].as_str());
    assert_eq!(before["route"], order[0].as_str());
    assert_eq!(
        daemon.home(Some("user 42")).1.as_deref(),
        Some(order[0].as_str())
    );

    // The owner dies: the route is the next replica in the list, and so is the server.
    let owner = names.iter().position(|n| *n == order[0]).unwrap();
    drop(replicas[owner].take());
    let moved = wait_for(Duration::from_secs(10), || {
        let e = explain(key);
        (e["route"] == order[1].as_str()).then_some(e)
    });
    let after = moved.expect("the route did not move to the next candidate");
    assert_eq!(
        after["owner"],
        order[0].as_str(),
        "ownership does not change"
    );
    assert_eq!(after["candidates"][0]["in_rotation"], false);
    assert_eq!(
        daemon.home(Some("user 42")).1.as_deref(),
        Some(order[1].as_str())
    );

    let (code, body) = call("GET", &daemon.url("/explain"), None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("?key="), "{body}");
}

/// The `state` of `replica` in `/status`.
fn state_of(daemon: &Daemon, replica: &str) -> String {
    common::replica_status(daemon, replica)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_tcp_heartbeat_passes_a_replica_that_speaks_no_http1() {
    // Accepts connections and closes them without a byte, as an h2-only server does
    // with an HTTP/1.1 request: an HTTP heartbeat fails, a TCP one passes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in silent.incoming() {
            drop(connection);
        }
    });
    let config = |kind: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\n[heartbeat]\nkind = \"{kind}\"\ninterval_ms = 100\ntimeout_ms = 50\nrise = 1\nfall = 1\n\
             [runtime]\nkind = \"static\"\n[[runtime.replicas]]\nname = \"h2only\"\naddress = \"127.0.0.1:{port}\"\n"
        )
    };
    let tcp = Daemon::start(&config("tcp"));
    let up = wait_for(Duration::from_secs(3), || {
        (state_of(&tcp, "h2only") == "up").then_some(())
    });
    assert!(
        up.is_some(),
        "a TCP heartbeat did not pass: {}",
        state_of(&tcp, "h2only")
    );
    let http = Daemon::start(&config("http"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(state_of(&http, "h2only"), "down");
}
