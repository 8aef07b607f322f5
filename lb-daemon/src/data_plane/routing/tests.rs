//! Unit tests of the routing choice on hand-built snapshots (no sockets).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use hyper::header::HeaderValue;
use lb_core::{BoundedLoad, HashAlgorithm, HashRing, Maglev, NodeId};

use super::{Algorithm, Keyless, Routing, Target};
use crate::data_plane::snapshot::{Snapshot, Upstream};
use crate::runtime::InstanceId;

/// A snapshot of `replicas` (name, weight, up) routed by `routing`.
fn snapshot(replicas: &[(&str, u32, bool)], routing: Routing) -> Snapshot {
    let ring = HashRing::from_nodes(
        HashAlgorithm::Xxh3,
        160,
        replicas
            .iter()
            .map(|(name, weight, _)| (NodeId::new(*name).unwrap(), *weight)),
    )
    .unwrap();
    let maglev = match routing.algorithm {
        Algorithm::Ring => None,
        Algorithm::Maglev { table_size } => Some(Arc::new(
            Maglev::from_nodes(
                HashAlgorithm::Xxh3,
                table_size,
                ring.nodes().iter().map(|n| (n.id().clone(), n.weight())),
            )
            .unwrap(),
        )),
    };
    let mut upstreams = HashMap::new();
    for (port, (name, _, up)) in (1u16..).zip(replicas) {
        upstreams.insert(
            NodeId::new(*name).unwrap(),
            Upstream {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                up: *up,
                instance: InstanceId(u64::from(port)),
                inflight: Arc::new(AtomicUsize::new(0)),
                passive_fails: Arc::new(AtomicU32::new(0)),
                name_header: HeaderValue::from_static("x"),
                metrics: crate::observe::metrics::Metrics::new().replica(name),
                progress: Arc::new(crate::data_plane::suspicion::Progress::new(Arc::new(
                    std::sync::atomic::AtomicU64::new(0),
                ))),
                protocol: crate::data_plane::protocol::Protocol::Http1,
            },
        );
    }
    let mut snap = Snapshot::empty(ring);
    snap.maglev = maglev;
    snap.routing = routing;
    snap.upstreams = upstreams;
    snap
}

fn keyless(policy: Keyless) -> Routing {
    Routing {
        keyless: policy,
        ..Routing::default()
    }
}

fn first(snap: &Snapshot, key: Option<&[u8]>) -> String {
    let mut out: [Option<Target<'_>>; 1] = [None];
    assert_eq!(snap.choose(key, &mut out), 1);
    out[0].map(|(id, _)| id.to_string()).unwrap()
}

fn counts(names: impl Iterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for name in names {
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[test]
fn keyed_routes_skip_replicas_that_are_down_or_missing() {
    let mut snap = snapshot(&[("a", 1, true), ("b", 1, false)], Routing::default());
    snap.ring = Arc::new(
        HashRing::from_nodes(
            HashAlgorithm::Xxh3,
            160,
            ["a", "b", "c"].map(|n| (NodeId::new(n).unwrap(), 1)),
        )
        .unwrap(),
    );
    for i in 0..200 {
        let key = format!("k{i}");
        assert_eq!(first(&snap, Some(key.as_bytes())), "a");
        let mut out = [None; 3];
        assert_eq!(snap.choose(Some(key.as_bytes()), &mut out), 1);
    }
    snap.upstreams.clear();
    assert!(snap.route(b"k").is_none());
}

#[test]
fn round_robin_takes_every_up_replica_in_turn_and_fails_over_to_the_next() {
    let snap = snapshot(
        &[
            ("a", 1, true),
            ("b", 1, true),
            ("c", 1, true),
            ("d", 1, false),
        ],
        keyless(Keyless::RoundRobin),
    );
    let order: Vec<String> = (0..6).map(|_| first(&snap, None)).collect();
    assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
    let mut out = [None; 4];
    assert_eq!(snap.choose(None, &mut out), 3);
    let tries: Vec<&str> = out.iter().flatten().map(|(id, _)| id.as_str()).collect();
    assert_eq!(tries, ["a", "b", "c"]);
    // A key still goes by the table.
    let keyed = first(&snap, Some(b"user-1"));
    assert_eq!(keyed, snap.route(b"user-1").unwrap().0.as_str());
}

#[test]
fn round_robin_gives_each_replica_turns_in_proportion_to_its_weight() {
    let snap = snapshot(
        &[("a", 3, true), ("b", 1, true), ("c", 0, true)],
        keyless(Keyless::RoundRobin),
    );
    let got = counts((0..400).map(|_| first(&snap, None)));
    assert_eq!(got.get("a"), Some(&300));
    assert_eq!(got.get("b"), Some(&100));
    assert_eq!(got.get("c"), None);
}

#[test]
fn least_requests_picks_the_less_loaded_of_two() {
    let snap = snapshot(
        &[("a", 1, true), ("b", 1, true)],
        keyless(Keyless::LeastRequests),
    );
    let a = NodeId::new("a").unwrap();
    snap.upstreams[&a].inflight.store(5, Ordering::Relaxed);
    // With two replicas both are always the two choices: b, the idle one, every time.
    for _ in 0..100 {
        assert_eq!(first(&snap, None), "b");
    }
    let empty = snapshot(&[("a", 1, false)], keyless(Keyless::LeastRequests));
    assert_eq!(empty.choose(None, &mut [None; 2]), 0);
}

#[test]
fn bounded_loads_spill_a_hot_key_once_its_owner_is_above_the_factor() {
    let routing = Routing {
        bounded: Some(BoundedLoad::new(0.25).unwrap()),
        ..Routing::default()
    };
    let snap = snapshot(&[("a", 1, true), ("b", 1, true), ("c", 1, true)], routing);
    let owner = snap.ring.lookup(b"hot").unwrap().clone();
    // 30 requests with one key, each still in flight when the next one is routed.
    let mut placed = HashMap::new();
    for _ in 0..30 {
        let name = first(&snap, Some(b"hot"));
        let id = NodeId::new(name.as_str()).unwrap();
        snap.upstreams[&id].inflight.fetch_add(1, Ordering::Relaxed);
        *placed.entry(name).or_insert(0) += 1;
    }
    assert_eq!(placed.len(), 3, "{placed:?}");
    assert!(placed.values().all(|&n| n <= 13), "{placed:?}");
    assert!(placed[owner.as_str()] >= 10, "{placed:?}");
    // Tries go on in table order from the chosen one, the full ones before it last.
    let mut out = [None; 3];
    assert_eq!(snap.choose(Some(b"hot"), &mut out), 3);
    let tries: Vec<&str> = out.iter().flatten().map(|(id, _)| id.as_str()).collect();
    let table: Vec<&str> = snap.routes(b"hot").map(|(id, _)| id.as_str()).collect();
    let at = table.iter().position(|t| *t == tries[0]).unwrap();
    let expected: Vec<&str> = table[at..].iter().chain(&table[..at]).copied().collect();
    assert_eq!(tries, expected);
    // Without the factor every request stays with the owner.
    let plain = snapshot(
        &[("a", 1, true), ("b", 1, true), ("c", 1, true)],
        Routing::default(),
    );
    plain.upstreams[&owner]
        .inflight
        .store(30, Ordering::Relaxed);
    assert_eq!(first(&plain, Some(b"hot")), owner.as_str());
}

#[test]
fn maglev_spreads_keys_evenly_and_is_what_the_snapshot_looks_up() {
    let routing = Routing {
        algorithm: Algorithm::Maglev { table_size: 65_537 },
        ..Routing::default()
    };
    let snap = snapshot(&[("a", 1, true), ("b", 1, true), ("c", 1, true)], routing);
    let got = counts((0..6000).map(|i| first(&snap, Some(format!("key-{i}").as_bytes()))));
    for share in got.values() {
        let share = *share as f64 / 6000.0;
        assert!((0.31..=0.36).contains(&share), "{got:?}");
    }
    let maglev = snap.maglev.as_ref().unwrap();
    assert_eq!(snap.fingerprint(), maglev.fingerprint());
    assert_ne!(snap.fingerprint(), snap.ring.fingerprint());
    for i in 0..100 {
        let key = format!("k{i}");
        assert_eq!(
            snap.route(key.as_bytes()).map(|(id, _)| id),
            maglev.lookup(key.as_bytes())
        );
    }
}
