//! The data plane's contract with clients and replicas, on real sockets and real
//! replica-server processes: fault attribution (slow endpoints and vanished clients
//! charge no replica), connection deadlines against idle sockets, HTTP semantics
//! (Host, X-Forwarded-*, WebSocket upgrade, `OPTIONS *`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Daemon, agent, base_config, call, header, wait_for};
use serde_json::Value;

fn with(config: &str, section: &str) -> String {
    base_config(3).replace("[shutdown]", &format!("{section}\n\n[shutdown]")) + config
}

fn status(daemon: &Daemon) -> Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["message"].clone()
}

fn metric(daemon: &Daemon, name: &str) -> f64 {
    let (_, text) = call("GET", &daemon.url("/metrics"), None);
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_slow_endpoint_gets_504s_and_no_replica_is_respawned() {
    let daemon = Daemon::start(&with("", "[upstream]\ntry_timeout_ms = 500\nretries = 2"));
    let started = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let url = daemon.url("/sleep/3000");
            std::thread::spawn(move || {
                match agent()
                    .get(&url)
                    .header("x-lb-key", format!("slow-{i}"))
                    .call()
                {
                    Ok(r) => r.status().as_u16(),
                    Err(e) => panic!("transport error: {e}"),
                }
            })
        })
        .collect();
    let codes: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(codes, vec![504; 6], "every slow request times out");
    // Three tries of 500 ms at most, whichever replicas they reached.
    assert!(started.elapsed() < Duration::from_millis(3 * 500 + 1000));
    // Let the heartbeats run (interval 500 ms, rise 2): every replica is Up, none was
    // respawned, and the replicas still answer.
    std::thread::sleep(Duration::from_millis(1500));
    let replicas = status(&daemon)["replicas"].as_array().unwrap().clone();
    assert_eq!(replicas.len(), 3);
    for replica in &replicas {
        assert_eq!(replica["state"], "up", "{replica}");
        assert_eq!(replica["respawns"], 0, "{replica}");
    }
    assert_eq!(metric(&daemon, "lb_respawns_total"), 0.0);
    assert!(metric(&daemon, "lb_upstream_failures_total") >= 6.0);
    assert!(!daemon.log_contains("replica Down"));
    for i in 0..30 {
        assert_eq!(daemon.home(Some(&format!("after-{i}"))).0, 200);
    }
}

#[test]
fn clients_that_vanish_mid_request_leave_every_gauge_at_zero() {
    let daemon = Daemon::start(&base_config(3));
    let sockets: Vec<TcpStream> = (0..30)
        .map(|i| {
            let mut s = TcpStream::connect(daemon.addr).unwrap();
            write!(
                s,
                "GET /sleep/30000 HTTP/1.1\r\nHost: lb\r\nx-lb-key: gone-{i}\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    // Every request is in flight at a replica...
    let in_flight = wait_for(Duration::from_secs(3), || {
        let n = metric(&daemon, "lb_in_flight_requests");
        (n == 30.0).then_some(n)
    });
    assert_eq!(
        in_flight,
        Some(30.0),
        "the 30 requests never were in flight together"
    );
    // ... when the clients go away.
    drop(sockets);
    let settled = wait_for(Duration::from_secs(3), || {
        (metric(&daemon, "lb_in_flight_requests") == 0.0).then_some(())
    });
    assert!(settled.is_some(), "lb_in_flight_requests stayed above 0");
    for replica in status(&daemon)["replicas"].as_array().unwrap() {
        assert_eq!(replica["in_flight"], 0, "{replica}");
        assert_eq!(replica["state"], "up", "{replica}");
    }
    assert_eq!(
        metric(&daemon, "lb_upstream_failures_total"),
        0.0,
        "a replica was charged for a client leaving"
    );
}

/// Opens `n` connections that each send `first` (maybe nothing) and then wait, then
/// times a real request through the daemon.
fn served_despite_idle_sockets(first: &[u8]) -> Duration {
    let daemon = Daemon::start(&with(
        "",
        "[server]\nmax_connections = 100\nfirst_request_timeout_ms = 1000",
    ));
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(daemon.addr).unwrap();
            s.write_all(first).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let (code, _) = daemon.home(Some("newcomer"));
    let waited = started.elapsed();
    assert_eq!(code, 200);
    // The idle ones were closed by the daemon: reading gives EOF or a reset, not a
    // read timeout.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    closed += 1;
                    break;
                }
                Err(e) => panic!("an idle socket was not closed: {e}"),
                Ok(_) => continue, // an HTTP/2 server preface or GOAWAY
            }
        }
    }
    assert_eq!(closed, 100);
    waited
}

#[test]
fn sockets_that_send_nothing_do_not_lock_out_new_clients() {
    // Served once the first-request deadline (1 s) freed the slots, plus scheduling slack.
    let waited = served_despite_idle_sockets(b"");
    println!("served after {} ms", waited.as_millis());
    assert!(
        waited < Duration::from_millis(1000 + 400),
        "waited {waited:?}"
    );
}

#[test]
fn sockets_that_send_only_the_http2_preface_do_not_lock_out_new_clients() {
    let waited = served_despite_idle_sockets(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    println!("served after {} ms", waited.as_millis());
    assert!(
        waited < Duration::from_millis(1000 + 400),
        "waited {waited:?}"
    );
}

#[test]
fn the_replica_sees_the_clients_host_and_forwarded_headers() {
    let daemon = Daemon::start(&base_config(2));
    let mut s = TcpStream::connect(daemon.addr).unwrap();
    write!(
        s,
        "GET /headers HTTP/1.1\r\nHost: shop.example:8443\r\nX-Forwarded-For: 10.1.1.1\r\n\
         X-Forwarded-For: 10.2.2.2, 10.3.3.3\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen: Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["host"], serde_json::json!(["shop.example:8443"]));
    assert_eq!(
        seen["x-forwarded-for"],
        serde_json::json!(["10.1.1.1, 10.2.2.2, 10.3.3.3, 127.0.0.1"])
    );
    assert_eq!(seen["x-forwarded-proto"], serde_json::json!(["http"]));
    assert!(
        seen.get("connection").is_none(),
        "hop-by-hop header forwarded"
    );
}

#[test]
fn an_http2_clients_authority_reaches_the_replica_as_host() {
    let daemon = Daemon::start(&base_config(2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = runtime.block_on(async {
        use http_body_util::{BodyExt, Empty};
        let stream = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get("http://api.example:9000/headers")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-lb-replica"));
        response.into_body().collect().await.unwrap().to_bytes()
    });
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["host"], serde_json::json!(["api.example:9000"]));
}

#[test]
fn a_websocket_client_talks_to_a_replica_through_the_daemon() {
    let daemon = Daemon::start(&base_config(2));
    let url = format!("ws://{}/ws", daemon.addr);
    let (mut socket, response) = tungstenite::connect(url.as_str()).unwrap();
    assert_eq!(response.status(), 101);
    let replica = response.headers()["x-lb-replica"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(replica.starts_with("server"), "{replica}");
    for text in ["hello", "through the balancer", "third"] {
        socket.send(tungstenite::Message::text(text)).unwrap();
        let echoed = socket.read().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket.close(None).unwrap();
}

#[test]
fn options_star_is_answered_by_the_daemon() {
    let daemon = Daemon::start(&base_config(1));
    let mut s = TcpStream::connect(daemon.addr).unwrap();
    s.write_all(b"OPTIONS * HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("allow: get"), "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("x-lb-replica"),
        "{reply}"
    );
}

#[test]
fn beyond_the_connection_cap_a_request_queues_then_gets_503_with_retry_after() {
    let config = format!("workers = 1\n{}", base_config(1)).replace(
        "[shutdown]",
        "[upstream]\nmax_conns_per_replica = 1\nqueue_timeout_ms = 300\n\n[shutdown]",
    );
    let daemon = Daemon::start(&config);
    let slow = |delay_ms: u64| {
        let url = daemon.url("/sleep/1500");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay_ms));
            let started = Instant::now();
            let answer = match agent().get(&url).call() {
                Ok(r) => (r.status().as_u16(), header(&r, "retry-after")),
                Err(e) => panic!("transport error: {e}"),
            };
            (answer, started.elapsed())
        })
    };
    // The first takes the one connection; the next two wait behind it.
    let first = slow(0);
    let queued: Vec<_> = (0..2).map(|_| slow(200)).collect();
    let ((status, _), _) = first.join().unwrap();
    assert_eq!(status, 200);
    for waiter in queued {
        let ((status, retry_after), waited) = waiter.join().unwrap();
        assert_eq!(status, 503);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(1400),
            "answered after {waited:?}, not at the queue timeout"
        );
    }
    assert_eq!(metric(&daemon, "lb_upstream_queue_wait_seconds_count"), 2.0);
    assert_eq!(metric(&daemon, "lb_upstream_queue_depth"), 0.0);
    assert_eq!(
        metric(&daemon, "lb_upstream_failures_total"),
        0.0,
        "a busy replica was charged"
    );
    // Once the connection is free, requests go through again.
    assert_eq!(daemon.home(Some("after")).0, 200);
}
