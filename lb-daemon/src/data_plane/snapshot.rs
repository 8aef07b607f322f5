//! The routing snapshot: ring (and Maglev table, when that is the algorithm), each
//! replica's address and health, and the routing choice, immutable once published. Requests load the current one with `arc-swap` and never take a lock;
//! the control plane's replica pool builds a new one on every change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize};

use hyper::header::HeaderValue;
use lb_core::{HashAlgorithm, HashRing, Maglev, NodeId};

use crate::data_plane::routing::Routing;

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
    /// When it last answered, and whether it is suspected of making no progress.
    pub progress: Arc<crate::data_plane::suspicion::Progress>,
    /// What it speaks: requests to an h2c replica are streams on this worker's
    /// multiplexed connections to it, never the lean HTTP/1 path's.
    pub protocol: crate::data_plane::protocol::Protocol,
}

/// One consistent view of the replicas.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// All members with their weights; Down ones stay on it so healthy keys never
    /// move. Keys are looked up here unless `maglev` is set.
    pub ring: Arc<HashRing<HashAlgorithm>>,
    /// The Maglev table of the same members, when `routing.algorithm` is Maglev.
    pub maglev: Option<Arc<Maglev<HashAlgorithm>>>,
    /// Table, bounded loads and keyless policy.
    pub routing: Routing,
    /// Turns taken by keyless round robin, shared by every snapshot of a pool.
    pub rotation: Arc<AtomicUsize>,
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
            maglev: None,
            routing: Routing::default(),
            rotation: Arc::new(AtomicUsize::new(0)),
            epoch: 0,
            upstreams: HashMap::new(),
        }
    }

    /// The fingerprint of the table keys are looked up in: equal on two daemons
    /// exactly when they map every key alike.
    pub fn fingerprint(&self) -> u64 {
        match &self.maglev {
            Some(maglev) => maglev.fingerprint(),
            None => self.ring.fingerprint(),
        }
    }
}
