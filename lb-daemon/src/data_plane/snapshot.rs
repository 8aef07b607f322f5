//! The routing snapshot: ring plus each replica's address and health, immutable once
//! published. Requests load the current one with `arc-swap` and never take a lock;
//! the control plane's replica pool builds a new one on every change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize};

use hyper::header::HeaderValue;
use lb_core::{HashAlgorithm, HashRing, NodeId};

use crate::observe::metrics::ReplicaMetrics;
use crate::runtime::InstanceId;

/// A replica as the proxy sees it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// Whether it is in rotation: Up, not being respawned, not ejected by passive
    /// failures.
    pub up: bool,
    /// The incarnation, for passive health reports.
    pub instance: InstanceId,
    /// Requests in flight to it; `/rm` drains until this is 0.
    pub inflight: Arc<AtomicUsize>,
    /// Consecutive passive failures (proxied tries charged to it) since its last success.
    pub passive_fails: Arc<AtomicU32>,
    /// Its name as the `X-LB-Replica` header value.
    pub name_header: HeaderValue,
    /// Its counters.
    pub metrics: Arc<ReplicaMetrics>,
}

/// One consistent view of the replicas.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// All members; Down ones stay on it so healthy keys never move.
    pub ring: Arc<HashRing<HashAlgorithm>>,
    /// How many times the ring's membership had changed when this was published
    /// (`/status`'s `epoch`).
    pub epoch: u64,
    /// Address and health of members that have a running instance.
    pub upstreams: HashMap<NodeId, Upstream>,
}

impl Snapshot {
    /// A snapshot with no replica.
    pub fn empty(ring: HashRing<HashAlgorithm>) -> Self {
        Self {
            ring: Arc::new(ring),
            epoch: 0,
            upstreams: HashMap::new(),
        }
    }

    /// The replica for `key`: the first candidate on the ring that is up.
    pub fn route(&self, key: &[u8]) -> Option<(&NodeId, &Upstream)> {
        self.routes(key).next()
    }

    /// The Up replicas for `key` in failover order: the owner (if Up), then each next
    /// distinct Up node on the ring. Retries walk this.
    pub fn routes<'a>(
        &'a self,
        key: &[u8],
    ) -> impl Iterator<Item = (&'a NodeId, &'a Upstream)> + 'a {
        self.ring
            .candidates(key)
            .filter_map(|node| match self.upstreams.get(node.id()) {
                Some(upstream) if upstream.up => Some((node.id(), upstream)),
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
        let upstream = |port, up| Upstream {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            up,
            instance: InstanceId(u64::from(port)),
            inflight: Arc::new(AtomicUsize::new(0)),
            passive_fails: Arc::new(AtomicU32::new(0)),
            name_header: HeaderValue::from_static("x"),
            metrics: crate::observe::metrics::Metrics::new().replica("x"),
        };
        let mut snap = Snapshot::empty(ring);
        snap.upstreams
            .insert(NodeId::new("a").unwrap(), upstream(1, true));
        snap.upstreams
            .insert(NodeId::new("b").unwrap(), upstream(2, false));
        for i in 0..200 {
            let key = format!("k{i}");
            let (id, got) = snap.route(key.as_bytes()).unwrap();
            assert_eq!((id.as_str(), got.addr.port()), ("a", 1));
            assert_eq!(snap.routes(key.as_bytes()).count(), 1);
        }
        snap.upstreams.clear();
        assert!(snap.route(b"k").is_none());
    }
}
