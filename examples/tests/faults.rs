//! The replica-server's faults, switched at start and by `POST /fault`, do what the
//! drills of hung and misbehaving replicas need: heartbeats keep passing while every
//! other path hangs, answers late, breaks off after its head, or answers 503.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port};

fn replica(port: u16, fault: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_replica-server"))
        .args([
            "--id",
            "f1",
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
        ])
        .args(["--fault", fault])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the replica did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running(child)
}

/// One HTTP/1.1 exchange on a fresh connection: the raw answer as far as it got
/// within `limit` (empty when nothing came), and how long it took.
fn exchange(port: u16, request: &str, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn get(port: u16, path: &str, limit: Duration) -> (String, Duration) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    exchange(port, &request, limit)
}

fn set_fault(port: u16, fault: &str) -> String {
    let request = format!(
        "POST /fault HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{fault}",
        fault.len()
    );
    exchange(port, &request, Duration::from_secs(2)).0
}

#[test]
fn a_wedged_replica_hangs_every_path_but_its_heartbeat_until_it_recovers() {
    let port = free_port();
    let _replica = replica(port, "wedge");
    let (answer, _) = get(port, "/home", Duration::from_millis(400));
    assert_eq!(answer, "", "a wedged replica answered: {answer}");
    let (beat, _) = get(port, "/heartbeat", Duration::from_secs(2));
    assert!(beat.starts_with("HTTP/1.1 200"), "{beat}");

    // A request waiting when the wedge ends is answered then.
    let waiting = std::thread::spawn(move || get(port, "/home", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(300));
    assert!(set_fault(port, "none").contains("fault: none"));
    let (late, took) = waiting.join().unwrap();
    assert!(late.starts_with("HTTP/1.1 200"), "{late}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        get(port, "/home", Duration::from_secs(2))
            .0
            .starts_with("HTTP/1.1 200")
    );
}

#[test]
fn delay_503_and_close_after_head_switch_by_request() {
    let port = free_port();
    let _replica = replica(port, "none");
    assert!(set_fault(port, "delay:250").contains("fault: delay:250"));
    let (answer, took) = get(port, "/home", Duration::from_secs(2));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    let (beat, took) = get(port, "/heartbeat", Duration::from_secs(2));
    assert!(
        beat.starts_with("HTTP/1.1 200") && took < Duration::from_millis(250),
        "{took:?}"
    );

    assert!(set_fault(port, "503").contains("fault: 503"));
    assert!(
        get(port, "/home", Duration::from_secs(2))
            .0
            .starts_with("HTTP/1.1 503")
    );

    assert!(set_fault(port, "close-after-head").contains("fault: close-after-head"));
    let (broken, _) = get(port, "/home", Duration::from_secs(2));
    assert!(broken.starts_with("HTTP/1.1 200"), "{broken}");
    assert!(broken.contains("content-length: 1024"), "{broken}");
    let body = broken.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.len() < 1024,
        "the body was sent whole: {} bytes",
        body.len()
    );

    let refused = set_fault(port, "melt");
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("unknown fault"),
        "{refused}"
    );
    assert!(set_fault(port, "none").contains("fault: none"));
    assert!(
        get(port, "/home", Duration::from_secs(2))
            .0
            .starts_with("HTTP/1.1 200")
    );
}
