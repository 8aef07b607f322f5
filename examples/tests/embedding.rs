//! The two embedding examples do what their docs say: `embedded-proxy` keeps a key on
//! one upstream and fails it over to the next candidate when that upstream dies, with
//! no other key moving; the tower layer picks what the `NodeMap` says and skips
//! upstreams out of rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Running, free_port};

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::header::HeaderName;
use lb_core::{HashRing, NodeId, NodeMap};
use lb_examples::tower_layer::{ConsistentHashLayer, Picked};
use tower_layer::Layer;
use tower_service::Service;

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn replica(id: &str, port: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_replica-server"))
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
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Running(child)
}

/// `GET /home` with `x-key: key` → (the `x-upstream` header, the replica named in the body).
fn served(port: u16, key: &str) -> Option<(String, String)> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent
        .get(&format!("http://127.0.0.1:{port}/home"))
        .header("x-key", key)
        .call()
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let upstream = resp.headers().get("x-upstream")?.to_str().ok()?.to_string();
    let body = resp.body_mut().read_to_string().ok()?;
    let replica = body
        .split("Hello from Server: ")
        .nth(1)?
        .split('"')
        .next()?
        .to_string();
    Some((upstream, replica))
}

#[test]
fn embedded_proxy_keeps_keys_and_fails_over_only_the_dead_upstreams() {
    let names = ["api1", "api2", "api3"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let mut replicas: HashMap<&str, Running> = names
        .iter()
        .zip(&ports)
        .map(|(name, port)| (*name, replica(name, *port)))
        .collect();
    let listen = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_embedded-proxy"));
    command.args(["--listen", &format!("127.0.0.1:{listen}")]);
    for (name, port) in names.iter().zip(&ports) {
        command.args(["--upstream", &format!("{name}=127.0.0.1:{port}")]);
    }
    let mut proxy = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(proxy.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("listening"), "{first}");
    let _proxy = Running(proxy);
    std::thread::spawn(move || for _ in stderr.lines() {});

    // 200 keys: each served by the upstream the header names, the same one every time.
    let keys: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let owners: HashMap<&String, String> = keys
        .iter()
        .map(|key| {
            let (upstream, replica) = served(listen, key).unwrap();
            assert_eq!(upstream, replica);
            assert_eq!(served(listen, key).unwrap().0, upstream, "{key} moved");
            (key, upstream)
        })
        .collect();
    let spread: std::collections::HashSet<&String> = owners.values().collect();
    assert_eq!(spread.len(), 3, "{owners:?}");

    // api2 dies: its keys go to other upstreams (retried at once, then out of rotation
    // after 2 failed probes); no other key moves.
    drop(replicas.remove("api2"));
    for key in &keys {
        let (now, _) = served(listen, key).unwrap();
        if owners[key] == "api2" {
            assert_ne!(now, "api2");
        } else {
            assert_eq!(now, owners[key], "{key} moved though its owner is alive");
        }
    }
}

/// The inner service: answers with the upstream the layer picked.
#[derive(Clone)]
struct Echo;

impl Service<Request<()>> for Echo {
    type Response = Option<Picked<(String, bool)>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        std::future::ready(Ok(req
            .extensions()
            .get::<Picked<(String, bool)>>()
            .cloned()))
    }
}

fn ask<S>(service: &mut S, key: &str) -> Option<Picked<(String, bool)>>
where
    S: Service<Request<()>, Response = Option<Picked<(String, bool)>>, Error = Infallible>,
    S::Future: std::future::Future<Output = Result<S::Response, Infallible>>,
{
    let request = Request::builder().header("x-key", key).body(()).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = std::pin::pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(answer)) => answer,
        _ => panic!("the echo service answers at once"),
    }
}

#[test]
fn the_tower_layer_picks_the_maps_owner_and_skips_upstreams_out_of_rotation() {
    let mut map = NodeMap::new(HashRing::new()).unwrap();
    for (name, addr) in [
        ("a", "10.0.0.1:80"),
        ("b", "10.0.0.2:80"),
        ("c", "10.0.0.3:80"),
    ] {
        map.insert(NodeId::new(name).unwrap(), 1, (addr.to_string(), true))
            .unwrap();
    }
    let shared = Arc::new(RwLock::new(map));
    let layer = ConsistentHashLayer::new(
        Arc::clone(&shared),
        HeaderName::from_static("x-key"),
        |(_, up): &(String, bool)| *up,
    );
    let mut service = layer.layer(Echo);
    for i in 0..300 {
        let key = format!("k{i}");
        let picked = ask(&mut service, &key).unwrap();
        let map = shared.read().unwrap();
        let (node, upstream) = map.get(key.as_bytes()).unwrap();
        assert_eq!((&picked.node, &picked.upstream), (node.id(), upstream));
    }
    // b leaves rotation: its keys go to their next candidate, the others stay.
    shared.write().unwrap().value_mut("b").unwrap().1 = false;
    for i in 0..300 {
        let key = format!("k{i}");
        let picked = ask(&mut service, &key).unwrap();
        let map = shared.read().unwrap();
        let (owner, _) = map.get(key.as_bytes()).unwrap();
        if owner.id().as_str() == "b" {
            let next = map
                .candidates(key.as_bytes())
                .nth(1)
                .unwrap()
                .0
                .id()
                .clone();
            assert_eq!(picked.node, next);
        } else {
            assert_eq!(&picked.node, owner.id());
        }
    }
    for name in ["a", "c"] {
        shared.write().unwrap().value_mut(name).unwrap().1 = false;
    }
    assert_eq!(
        ask(&mut service, "k1"),
        None,
        "nothing in rotation: no pick"
    );
}
