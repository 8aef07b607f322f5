//! The routing snapshot: ring plus each replica's address and health, immutable once
//! published. Requests load the current one with `arc-swap` and never take a lock;
//! the [`ReplicaPool`](crate::pool::ReplicaPool) builds a new one on every change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use lb_core::{HashAlgorithm, HashRing, NodeId};

/// A replica as the proxy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// Whether it is in rotation (Up and not being respawned).
    pub up: bool,
}

/// One consistent view of the replicas.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// All members; Down ones stay on it so healthy keys never move.
    pub ring: Arc<HashRing<HashAlgorithm>>,
    /// Address and health of members that have a running instance.
    pub upstreams: HashMap<NodeId, Upstream>,
}

impl Snapshot {
    /// A snapshot with no replica.
    pub fn empty(ring: HashRing<HashAlgorithm>) -> Self {
        Self {
            ring: Arc::new(ring),
            upstreams: HashMap::new(),
        }
    }

    /// The replica for `key`: the first candidate on the ring that is up.
    pub fn route(&self, key: &[u8]) -> Option<(&NodeId, SocketAddr)> {
        self.ring
            .candidates(key)
            .find_map(|node| match self.upstreams.get(node.id()) {
                Some(upstream) if upstream.up => Some((node.id(), upstream.addr)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_skips_replicas_that_are_down_or_missing() {
        let mut ring = HashRing::with_hasher(HashAlgorithm::Xxh3, 160).unwrap();
        for name in ["a", "b", "c"] {
            ring.add(NodeId::new(name).unwrap(), 1).unwrap();
        }
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut snap = Snapshot::empty(ring);
        snap.upstreams.insert(
            NodeId::new("a").unwrap(),
            Upstream {
                addr: addr(1),
                up: true,
            },
        );
        snap.upstreams.insert(
            NodeId::new("b").unwrap(),
            Upstream {
                addr: addr(2),
                up: false,
            },
        );
        for i in 0..200 {
            let key = format!("k{i}");
            let (id, got) = snap.route(key.as_bytes()).unwrap();
            assert_eq!((id.as_str(), got), ("a", addr(1)));
        }
        snap.upstreams.clear();
        assert_eq!(snap.route(b"k"), None);
    }
}
