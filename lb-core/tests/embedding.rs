//! What a proxy that embeds lb-core relies on: the types cross threads, and (feature
//! `serde`) the settings and ids read back from JSON exactly as written, refusing bad
//! values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_core::{
    BoundedLoad, Candidates, HashAlgorithm, HashRing, HealthConfig, HealthState, Maglev, Node,
    NodeId, NodeMap,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn every_public_type_is_send_and_sync() {
    send_sync::<HashRing>();
    send_sync::<HashRing<HashAlgorithm>>();
    send_sync::<Maglev<HashAlgorithm>>();
    send_sync::<NodeMap<std::net::SocketAddr>>();
    send_sync::<NodeMap<String, Maglev>>();
    send_sync::<Candidates<'static>>();
    send_sync::<BoundedLoad>();
    send_sync::<HealthState>();
    send_sync::<HealthConfig>();
    send_sync::<NodeId>();
    send_sync::<Node>();
    send_sync::<lb_core::Error>();
    // And a ring shared by reference answers the same on another thread.
    let mut ring = HashRing::new();
    ring.add(NodeId::new("a").unwrap(), 1).unwrap();
    ring.add(NodeId::new("b").unwrap(), 1).unwrap();
    let here = ring.lookup(b"k").cloned();
    let there = std::thread::scope(|s| s.spawn(|| ring.lookup(b"k").cloned()).join().unwrap());
    assert_eq!(here, there);
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trips_and_refuses_bad_values() {
    let id: NodeId = serde_json::from_str("\"server1\"").unwrap();
    assert_eq!(id.as_str(), "server1");
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"server1\"");
    assert!(serde_json::from_str::<NodeId>("\"two words\"").is_err());
    assert!(serde_json::from_str::<NodeId>("\"\"").is_err());

    let node = Node::new(id, 3);
    let text = serde_json::to_string(&node).unwrap();
    assert_eq!(text, r#"{"id":"server1","weight":3}"#);
    assert_eq!(serde_json::from_str::<Node>(&text).unwrap(), node);

    assert_eq!(
        serde_json::to_string(&HashAlgorithm::Xxh3).unwrap(),
        "\"xxh3\""
    );
    assert_eq!(
        serde_json::from_str::<HashAlgorithm>("\"xxh3\"").unwrap(),
        HashAlgorithm::Xxh3
    );
    assert!(serde_json::from_str::<HashAlgorithm>("\"crc64\"").is_err());

    let health: HealthConfig = serde_json::from_str(r#"{"rise":1,"fall":5}"#).unwrap();
    assert_eq!((health.rise(), health.fall()), (1, 5));
    assert_eq!(
        serde_json::to_string(&health).unwrap(),
        r#"{"rise":1,"fall":5}"#
    );
    assert!(serde_json::from_str::<HealthConfig>(r#"{"rise":0,"fall":5}"#).is_err());
    assert!(serde_json::from_str::<HealthConfig>(r#"{"rise":1}"#).is_err());
}
