//! Unit tests of [`Members`](super::Members): the books without I/O.

use std::net::SocketAddr;

use super::super::member::STABLE_AFTER;
use super::*;
use crate::data_plane::protocol::Protocol;

fn members(names: &[&str]) -> Members {
    let ring = HashRing::with_hasher(HashAlgorithm::Xxh3, 160).unwrap();
    let mut members = Members::new(
        ring,
        HealthConfig::default(),
        Routing::default(),
        Protocol::Http1,
    );
    let now = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let addr: SocketAddr = format!("127.0.0.1:{}", 9000 + i).parse().unwrap();
        let instance = Instance {
            id: InstanceId(i as u64 + 1),
            addr,
            protocol: None,
        };
        members.insert(NodeId::new(*name).unwrap(), instance, 1, now);
    }
    members
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|n| NodeId::new(*n).unwrap()).collect()
}

#[test]
fn new_names_fill_the_smallest_free_server_numbers() {
    let set = members(&["server1", "server3", "a"]);
    assert_eq!(
        set.choose_new(ids(&["b"]), 3, 10).unwrap(),
        ids(&["b", "server2", "server4"])
    );
    assert!(matches!(
        set.choose_new(ids(&["a"]), 1, 10),
        Err(AdminError::Exists(_))
    ));
    assert!(matches!(
        set.choose_new(ids(&["x", "x"]), 2, 10),
        Err(AdminError::Duplicate(_))
    ));
    assert!(matches!(
        set.choose_new(vec![], 11, 10),
        Err(AdminError::OverCap { n: 11, max: 10 })
    ));
}

#[test]
fn removal_takes_the_named_then_the_newest_and_refusal_keeps_all() {
    let mut set = members(&["s1", "s2", "s3", "s4"]);
    assert!(matches!(
        set.remove(ids(&["nope"]), 1, 10),
        Err(AdminError::Unknown(_))
    ));
    assert!(matches!(
        set.remove(ids(&["s1"]), 0, 10),
        Err(AdminError::TooManyNamesToRemove)
    ));
    assert_eq!(set.names(), ids(&["s1", "s2", "s3", "s4"]));
    let removed: Vec<NodeId> = set
        .remove(ids(&["s2"]), 2, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(removed, ids(&["s2", "s4"]));
    assert_eq!(set.names(), ids(&["s1", "s3"]));
    assert_eq!(set.snapshot(&Metrics::default()).ring.nodes().len(), 2);
    // More than there are: all of them, the named first (the seed's behaviour).
    let removed: Vec<NodeId> = set
        .remove(ids(&["s1"]), 10, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(removed, ids(&["s1", "s3"]));
    assert!(set.names().is_empty());
    assert_eq!(set.snapshot(&Metrics::default()).ring.nodes().len(), 0);
}

#[test]
fn fresh_names_and_new_names_avoid_each_other_and_respawns_check_the_generation() {
    let mut set = members(&["s1"]);
    let s1 = NodeId::new("s1").unwrap();
    let seq = set.seq_of(&s1).unwrap();
    let fresh = set.fresh_name();
    assert!(matches!(
        set.choose_new(vec![fresh.clone()], 1, 10),
        Err(AdminError::Exists(_))
    ));
    assert_ne!(set.fresh_name(), fresh);
    set.release(&fresh);
    assert_eq!(set.choose_new(vec![fresh.clone()], 1, 10).unwrap(), [fresh]);
    // s1 removed and added again: a new generation, which an old job's
    // replacement must not touch.
    set.remove(ids(&["s1"]), 1, 10).unwrap();
    let instance = Instance {
        id: InstanceId(99),
        addr: "127.0.0.1:9".parse().unwrap(),
        protocol: None,
    };
    set.insert(s1.clone(), instance, 1, Instant::now());
    assert!(set.is_generation(&s1, set.seq_of(&s1).unwrap()));
    assert!(!set.is_generation(&s1, seq));
    set.get_mut(&s1).unwrap().respawning = true;
    assert!(!set.replace(&s1, seq, &s1, instance, Instant::now()));
}

#[test]
fn a_young_instance_backs_off_and_a_stable_one_does_not() {
    let mut set = members(&["s1"]);
    let name = NodeId::new("s1").unwrap();
    let (initial, max) = (Duration::from_millis(100), Duration::from_millis(400));
    let t0 = Instant::now();
    let member = set.get_mut(&name).unwrap();
    assert_eq!(member.down(t0, true, initial, max), Duration::ZERO);
    member.respawning = false;
    assert_eq!(member.down(t0, true, initial, max), initial);
    assert_eq!(member.down(t0, true, initial, max), 2 * initial);
    assert_eq!(member.down(t0, true, initial, max), max);
    let later = t0 + STABLE_AFTER + Duration::from_secs(1);
    assert_eq!(member.down(later, true, initial, max), Duration::ZERO);
}

#[test]
fn following_an_orchestrator_keeps_a_replica_without_a_task_on_the_ring() {
    let mut set = members(&[]);
    let now = Instant::now();
    let instance = |id: u64, port: u16| Instance {
        id: InstanceId(id),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        protocol: None,
    };
    let listed = |entries: &[(&str, Option<Instance>)]| -> Vec<(NodeId, Option<Instance>)> {
        entries
            .iter()
            .map(|(n, i)| (NodeId::new(*n).unwrap(), *i))
            .collect()
    };
    // Two replicas appear: they join the ring, Down until heartbeats pass.
    assert!(set.follow(
        &listed(&[
            ("s1", Some(instance(1, 9001))),
            ("s2", Some(instance(2, 9002)))
        ]),
        now
    ));
    let epoch = set.epoch;
    let snapshot = set.snapshot(&crate::observe::metrics::Metrics::new());
    assert_eq!(snapshot.ring.len(), 2);
    assert!(snapshot.upstreams.values().all(|u| !u.up));
    // The same listing again changes nothing.
    assert!(!set.follow(
        &listed(&[
            ("s1", Some(instance(1, 9001))),
            ("s2", Some(instance(2, 9002)))
        ]),
        now
    ));
    // s2's task is being replaced: still on the ring, no upstream, no epoch change.
    assert!(set.follow(
        &listed(&[("s1", Some(instance(1, 9001))), ("s2", None)]),
        now
    ));
    let snapshot = set.snapshot(&crate::observe::metrics::Metrics::new());
    assert_eq!(snapshot.ring.len(), 2);
    assert_eq!(snapshot.upstreams.len(), 1);
    assert_eq!(set.epoch, epoch, "the ring did not change");
    // Its new task has a new address; then s1's service is removed.
    assert!(set.follow(
        &listed(&[
            ("s1", Some(instance(1, 9001))),
            ("s2", Some(instance(3, 9003)))
        ]),
        now
    ));
    assert!(set.follow(&listed(&[("s2", Some(instance(3, 9003)))]), now));
    assert_eq!(set.names(), ids(&["s2"]));
    assert!(set.epoch > epoch);
}

#[test]
fn weights_are_kept_saved_and_a_refused_one_changes_nothing() {
    let mut set = members(&["a", "b"]);
    let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    assert_eq!(set.set_weight(&a, 3).unwrap(), 1);
    let epoch = set.epoch;
    let fingerprint = set.ring.fingerprint();
    assert!(matches!(
        set.set_weight(&a, 257),
        Err(AdminError::Weight(_))
    ));
    assert!(matches!(
        set.set_weight(&NodeId::new("zz").unwrap(), 1),
        Err(AdminError::Unknown(_))
    ));
    assert_eq!((set.epoch, set.ring.fingerprint()), (epoch, fingerprint));
    // Weight 0 drains: b stays a member and keeps its address, owns no key.
    set.set_weight(&b, 0).unwrap();
    let snapshot = set.snapshot(&Metrics::default());
    assert!(snapshot.upstreams.contains_key(&b));
    assert!((0..200).all(|i| snapshot.route(format!("k{i}").as_bytes()).unwrap().0 == &a));
    let saved: Vec<(String, u32)> = set
        .saved(|_| None)
        .replicas
        .into_iter()
        .map(|r| (r.name, r.weight))
        .collect();
    assert_eq!(saved, [("a".to_string(), 3), ("b".to_string(), 0)]);
    let rows = set.status(Instant::now(), |_| 0);
    assert_eq!((rows[0].weight, rows[1].weight), (3, 0));
    assert_eq!(rows[1].ring_share, 0.0);

    // With 5000 points per weight, 256 is more points than one node may hold.
    let ring = HashRing::with_hasher(HashAlgorithm::Xxh3, 5000).unwrap();
    let coarse = Members::new(
        ring,
        HealthConfig::default(),
        Routing::default(),
        Protocol::Http1,
    );
    assert!(coarse.check_weight(200).is_ok());
    assert!(matches!(
        coarse.check_weight(256),
        Err(AdminError::Weight(_))
    ));
}
