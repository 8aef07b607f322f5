//! gRPC through the daemon with a real gRPC stack: tonic's client, and `grpc-replica`
//! (tonic's server) as h2c replicas the process runtime starts
//! (`upstream.protocol = "h2c"`, `heartbeat.kind = "grpc"`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Daemon, binary, child_pids, free_port, replica_status, signal, wait_for};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_grpc_example::echo::echo_client::EchoClient;
use lb_grpc_example::echo::{CountRequest, SayRequest, SetServingRequest};
use lb_grpc_example::{COUNT_TRAILER, SERVICE_NAME};
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// Three grpc-replica children spoken to over h2c, probed with gRPC health checks.
fn grpc_config(replicas: usize) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nreplicas = {replicas}\n\n[runtime]\ncommand = [{:?}, \"--host\", \"127.0.0.1\"]\n\n[upstream]\nprotocol = \"h2c\"\n\n[heartbeat]\nkind = \"grpc\"\nservice = \"{SERVICE_NAME}\"\ninterval_ms = 300\ntimeout_ms = 250\nrise = 2\nfall = 2\n\n[shutdown]\ngrace_ms = 2000\n",
        binary("grpc-replica").display().to_string()
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(daemon: &Daemon) -> EchoClient<Channel> {
    EchoClient::connect(format!("http://{}", daemon.addr))
        .await
        .unwrap()
}

fn keyed<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-lb-key", key.parse().unwrap());
    request
}

fn say(message: &str, key: &str) -> Request<SayRequest> {
    keyed(
        SayRequest {
            message: message.into(),
            delay_ms: 0,
        },
        key,
    )
}

/// The replica's state on `/status`.
fn state_of(daemon: &Daemon, replica: &str) -> String {
    replica_status(daemon, replica)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The replica's respawn count on `/status`.
fn respawns_of(daemon: &Daemon, replica: &str) -> u64 {
    replica_status(daemon, replica)["respawns"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn unary_calls_stick_to_their_key_and_spread_over_the_replicas() {
    let daemon = Daemon::start(&grpc_config(3));
    runtime().block_on(async {
        let mut client = client(&daemon).await;
        let mut homes: HashMap<String, String> = HashMap::new();
        for round in 0..3 {
            for k in 0..20 {
                let key = format!("user-{k}");
                let response = client.say(say(&format!("hi {round}"), &key)).await.unwrap();
                let header = response
                    .metadata()
                    .get("x-lb-replica")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let reply = response.into_inner();
                assert_eq!(reply.message, format!("hi {round}"));
                assert_eq!(reply.replica, header, "x-lb-replica names the server");
                let home = homes.entry(key.clone()).or_insert(reply.replica.clone());
                assert_eq!(*home, reply.replica, "{key} moved");
            }
        }
        let used: HashSet<&String> = homes.values().collect();
        assert!(used.len() >= 2, "20 keys all on {used:?}");
    });
}

#[test]
fn streams_both_ways_and_trailers_pass_through() {
    let daemon = Daemon::start(&grpc_config(2));
    runtime().block_on(async {
        let mut client = client(&daemon).await;
        // Server streaming, ended by custom trailing metadata.
        let count = CountRequest {
            count: 5,
            interval_ms: 20,
        };
        let mut stream = client
            .count(keyed(count, "stream-key"))
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        while let Some(reply) = stream.message().await.unwrap() {
            got.push(reply.message);
        }
        assert_eq!(got, ["0", "1", "2", "3", "4"]);
        let trailers = stream.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get(COUNT_TRAILER).unwrap(), "5");

        // Bidi: each message answered as it comes, by one replica.
        let said: Vec<SayRequest> = (0..10)
            .map(|i| SayRequest {
                message: format!("m{i}"),
                delay_ms: 0,
            })
            .collect();
        let mut replies = client
            .chat(keyed(tokio_stream::iter(said), "chat-key"))
            .await
            .unwrap()
            .into_inner();
        let mut echoed = Vec::new();
        let mut servers = HashSet::new();
        while let Some(reply) = replies.message().await.unwrap() {
            echoed.push(reply.message);
            servers.insert(reply.replica);
        }
        let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(echoed, expected);
        assert_eq!(servers.len(), 1);
    });
}

/// One gRPC call sent with hyper's own HTTP/2 client (tonic's client would enforce
/// `grpc-timeout` itself and hide the daemon's answer): `message` framed, the call's
/// `grpc-timeout`; the response head, the body's gRPC messages, and the trailers.
async fn raw_call(
    daemon: &Daemon,
    path: &str,
    message: Vec<u8>,
    grpc_timeout: &str,
) -> (
    hyper::http::response::Parts,
    Vec<u8>,
    Option<hyper::HeaderMap>,
) {
    let headers = [
        ("grpc-timeout", grpc_timeout.to_string()),
        ("x-lb-key", "k".to_string()),
    ];
    let request = grpc_request(daemon, path, &message, &headers);
    let mut sender = h2_client(daemon).await;
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes().to_vec(), trailers)
}

#[test]
fn grpc_timeout_bounds_the_call_at_the_daemon() {
    let daemon = Daemon::start(&grpc_config(1));
    runtime().block_on(async {
        // A unary call the replica answers after 3 s, with a 300 ms deadline:
        // DEADLINE_EXCEEDED from the daemon, trailers-only.
        let slow = SayRequest {
            message: "slow".into(),
            delay_ms: 3000,
        };
        let started = Instant::now();
        let (head, body, trailers) =
            raw_call(&daemon, "/echo.Echo/Say", slow.encode_to_vec(), "300m").await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["grpc-status"], "4", "{head:?}");
        assert!(
            head.headers["grpc-message"]
                .to_str()
                .unwrap()
                .contains("load balancer")
        );
        assert!(body.is_empty() && trailers.is_none(), "trailers-only");

        // A server stream past its deadline: the replies so far, then trailers saying
        // DEADLINE_EXCEEDED.
        let count = CountRequest {
            count: 100,
            interval_ms: 100,
        };
        let (head, body, trailers) =
            raw_call(&daemon, "/echo.Echo/Count", count.encode_to_vec(), "450m").await;
        assert_eq!(head.status, 200);
        assert!(
            head.headers.get("x-lb-replica").is_some(),
            "the replica's answer"
        );
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "4", "{trailers:?}");
        let mut replies = 0;
        let mut rest = &body[..];
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            rest = rest.get(5 + len..).expect("whole gRPC messages");
            replies += 1;
        }
        assert!(
            (2..=6).contains(&replies),
            "{replies} replies before the deadline"
        );

        // tonic's client enforces its deadline too: the call fails as it expects.
        let mut client = client(&daemon).await;
        let mut request = keyed(
            SayRequest {
                message: "slow".into(),
                delay_ms: 3000,
            },
            "k",
        );
        request.set_timeout(Duration::from_millis(300));
        let status = client.say(request).await.unwrap_err();
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
    });
}

#[test]
fn a_killed_replica_ends_its_stream_and_new_calls_go_to_the_next() {
    let daemon = Daemon::start(&grpc_config(3));
    runtime().block_on(async {
        let mut client = client(&daemon).await;
        let key = "victim-key";
        let count = CountRequest {
            count: 200,
            interval_ms: 50,
        };
        let mut stream = client.count(keyed(count, key)).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        let victim = first.replica;
        let pid = child_pids(daemon.pid())[&victim];
        signal(pid, "KILL");
        let ended = loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream of a killed replica ended cleanly"),
                Err(status) => break status,
            }
        };
        assert_ne!(ended.code(), Code::Ok, "{ended:?}");
        // At once, before any heartbeat: every new call succeeds, on the key's next
        // replica (or on the victim's respawned process, once the runtime restarted it).
        for i in 0..10 {
            let reply = client
                .say(say(&format!("after {i}"), key))
                .await
                .unwrap()
                .into_inner();
            assert!(
                reply.replica != victim || respawns_of(&daemon, &victim) >= 1,
                "a call went to the killed process"
            );
        }
    });
}

#[test]
fn grpc_health_checks_take_a_not_serving_replica_down_and_back() {
    let daemon = Daemon::start(&grpc_config(2));
    runtime().block_on(async {
        let mut client = client(&daemon).await;
        let key = "health-key";
        let home = client
            .say(say("who", key))
            .await
            .unwrap()
            .into_inner()
            .replica;
        client
            .set_serving(keyed(SetServingRequest { serving: false }, key))
            .await
            .unwrap();
        // Down, then respawned by the process runtime (a new process, serving).
        wait_for(Duration::from_secs(5), || {
            daemon
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("replica Down") && l.contains(&format!("replica={home}")))
                .then_some(())
        })
        .expect("a NOT_SERVING replica goes down");
        let other = if home == "server1" {
            "server2"
        } else {
            "server1"
        };
        assert_eq!(state_of(&daemon, other), "up", "a SERVING replica stays up");
        // Back Up after its respawn, serving its keys again.
        wait_for(Duration::from_secs(5), || {
            (state_of(&daemon, &home) == "up").then_some(())
        })
        .expect("the respawned replica comes back up");
        let again = client
            .say(say("who", key))
            .await
            .unwrap()
            .into_inner()
            .replica;
        assert_eq!(again, home);
    });
}

#[test]
fn the_daemon_answers_unavailable_as_grpc_when_no_replica_takes_the_call() {
    let port = free_port();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[runtime]\nkind = \"static\"\n\n[[runtime.replicas]]\nname = \"gone\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"h2c\"\n\n[heartbeat]\nkind = \"grpc\"\ninterval_ms = 200\ntimeout_ms = 100\n"
    );
    let daemon = Daemon::start(&config);
    runtime().block_on(async {
        let mut client = client(&daemon).await;
        // Refused connections (while Up), then no replica Up at all: UNAVAILABLE both.
        let status = client.say(say("x", "k")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("gone"), "{status:?}");
        wait_for(Duration::from_secs(5), || {
            (state_of(&daemon, "gone") == "down").then_some(())
        })
        .expect("the heartbeats take it down");
        let status = client.say(say("x", "k")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("no healthy replica"),
            "{status:?}"
        );
    });
}

/// What an `h2_replica` does with each stream.
#[derive(Debug, Clone, Copy)]
enum Fake {
    /// Resets it at once with this reason.
    Reset(h2::Reason),
    /// Answers a gRPC success (one empty message, `grpc-status: 0`).
    Answer,
    /// Sends its head and one message, then waits for the peer to reset the stream.
    Open,
    /// Sends its head and one message, then resets it with `INTERNAL_ERROR`.
    ResetMidway,
}

/// An h2c replica made with the `h2` crate: the streams it got, and how many of them
/// the peer reset (cancelled) while it was answering.
fn h2_replica(fake: Fake) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (streams, cancels) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (counted, cancelled) = (Arc::clone(&streams), Arc::clone(&cancels));
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (counted, cancelled) = (Arc::clone(&counted), Arc::clone(&cancelled));
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok((_request, mut respond))) = connection.accept().await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        if let Fake::Reset(reason) = fake {
                            respond.send_reset(reason);
                            continue;
                        }
                        let head = hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(head, false).unwrap();
                        let _ = send.send_data(Bytes::from_static(b"\x00\x00\x00\x00\x00"), false);
                        let cancelled = Arc::clone(&cancelled);
                        tokio::spawn(async move {
                            match fake {
                                Fake::Open => {
                                    let reset =
                                        std::future::poll_fn(|cx| send.poll_reset(cx)).await;
                                    if reset.is_ok_and(|r| r == h2::Reason::CANCEL) {
                                        cancelled.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                                Fake::ResetMidway => {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    send.send_reset(h2::Reason::INTERNAL_ERROR);
                                }
                                Fake::Answer | Fake::Reset(_) => {
                                    let mut trailers = hyper::HeaderMap::new();
                                    trailers.insert("grpc-status", "0".parse().unwrap());
                                    let _ = send.send_trailers(trailers);
                                }
                            }
                        });
                    }
                });
            }
        });
    });
    (port, streams, cancels)
}

/// A daemon before `h2_replica`s (TCP heartbeats: they serve no health check).
fn daemon_before(ports: &[u16]) -> Daemon {
    let replicas: String = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            format!("[[runtime.replicas]]\nname = \"fake{i}\"\naddress = \"127.0.0.1:{port}\"\n\n")
        })
        .collect();
    Daemon::start(&format!(
        "listen = \"127.0.0.1:0\"\n\n[upstream]\nprotocol = \"h2c\"\n\n[heartbeat]\nkind = \"tcp\"\n\n[runtime]\nkind = \"static\"\n\n{replicas}"
    ))
}

/// An HTTP/2 connection to `daemon` with hyper's client.
async fn h2_client(daemon: &Daemon) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// A gRPC call's request: `message` framed, with `headers`.
fn grpc_request(
    daemon: &Daemon,
    path: &str,
    message: &[u8],
    headers: &[(&str, String)],
) -> hyper::Request<Full<Bytes>> {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let mut request = hyper::Request::post(format!("http://{}{path}", daemon.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Full::new(Bytes::from(framed))).unwrap()
}

/// A `Count` call through `daemon`: the response, head received.
async fn count_call(daemon: &Daemon) -> hyper::Response<hyper::body::Incoming> {
    let request = grpc_request(daemon, "/echo.Echo/Count", b"", &[]);
    h2_client(daemon).await.send_request(request).await.unwrap()
}

#[test]
fn resets_cross_the_daemon_both_ways() {
    // The client cancels: the replica's stream is reset (CANCEL), not left open.
    let (open, _, cancels) = h2_replica(Fake::Open);
    let daemon = daemon_before(&[open]);
    runtime().block_on(async {
        let mut body = count_call(&daemon).await.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
    });
    wait_for(Duration::from_secs(3), || {
        (cancels.load(Ordering::SeqCst) == 1).then_some(())
    })
    .expect("the replica's stream is cancelled when the client cancels");
    drop(daemon);

    // The replica resets mid-response: the client's stream ends in an error, promptly.
    let (resetting, _, _) = h2_replica(Fake::ResetMidway);
    let daemon = daemon_before(&[resetting]);
    runtime().block_on(async {
        let body = count_call(&daemon).await.into_body();
        let read = tokio::time::timeout(Duration::from_secs(3), body.collect());
        let ended = read.await.expect("a reset reaches the client, not a hang");
        assert!(ended.is_err(), "the client's stream ends in an error");
    });
}

/// 30 unary calls with distinct keys through `daemon`: how many succeeded.
fn unary_calls(daemon: &Daemon) -> usize {
    runtime().block_on(async {
        let mut ok = 0;
        for k in 0..30 {
            let message = SayRequest {
                message: format!("m{k}"),
                delay_ms: 0,
            };
            let key = [("x-lb-key", format!("key-{k}"))];
            let request = grpc_request(daemon, "/echo.Echo/Say", &message.encode_to_vec(), &key);
            let response = h2_client(daemon).await.send_request(request).await.unwrap();
            let status = response.headers().get("grpc-status").cloned();
            let collected = response.into_body().collect().await.unwrap();
            let status = status.or_else(|| collected.trailers()?.get("grpc-status").cloned());
            if status.as_ref().is_some_and(|s| s == "0") {
                ok += 1;
            } else {
                assert_eq!(
                    status.unwrap(),
                    "14",
                    "the daemon's own answer is UNAVAILABLE"
                );
            }
        }
        ok
    })
}

#[test]
fn only_streams_a_replica_never_processed_go_to_the_next_replica() {
    // REFUSED_STREAM: the replica did not process the call; it goes on, uncharged.
    let (refusing, refused, _) = h2_replica(Fake::Reset(h2::Reason::REFUSED_STREAM));
    let (good, served, _) = h2_replica(Fake::Answer);
    let daemon = daemon_before(&[refusing, good]);
    assert_eq!(unary_calls(&daemon), 30, "every call succeeds");
    let refused = refused.load(Ordering::SeqCst);
    assert!(refused > 0, "some keys start on the refusing replica");
    assert_eq!(served.load(Ordering::SeqCst), 30);
    let (_, metrics) = common::call("GET", &daemon.url("/metrics"), None);
    let charged: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("lb_upstream_failures_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(charged, 0.0, "a refused stream is charged to nobody");
    drop(daemon);

    // Any other reset may come after the replica acted: the call is not sent again.
    let (resetting, reset, _) = h2_replica(Fake::Reset(h2::Reason::INTERNAL_ERROR));
    let (good, served, _) = h2_replica(Fake::Answer);
    let daemon = daemon_before(&[resetting, good]);
    let ok = unary_calls(&daemon);
    let reset = reset.load(Ordering::SeqCst);
    assert!(reset > 0, "some keys start on the resetting replica");
    assert_eq!(ok, 30 - reset, "each reset call fails as UNAVAILABLE");
    assert_eq!(served.load(Ordering::SeqCst), ok, "no call was sent twice");
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn http_heartbeats_speak_the_replicas_protocol() {
    // tonic serves HTTP/2 only: `GET /heartbeat` over h2c gets an answer (200, with
    // grpc-status 12 for the unknown method), over HTTP/1.1 none.
    let port = free_port();
    let _replica = Killed(
        std::process::Command::new(binary("grpc-replica"))
            .args(["--id", "solo", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .expect("grpc-replica listens");
    let config = |protocol: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\n\n[heartbeat]\nkind = \"http\"\ninterval_ms = 100\ntimeout_ms = 100\nrise = 1\nfall = 1\n\n[runtime]\nkind = \"static\"\n\n[[runtime.replicas]]\nname = \"solo\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"{protocol}\"\n"
        )
    };
    let http1 = Daemon::start(&config("http1"));
    wait_for(Duration::from_secs(3), || {
        (state_of(&http1, "solo") == "down").then_some(())
    })
    .expect("HTTP/1.1 heartbeats fail against an h2-only replica");
    let h2c = Daemon::start(&config("h2c"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(state_of(&h2c, "solo"), "up", "h2c heartbeats pass");
}
