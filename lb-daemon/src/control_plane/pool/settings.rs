//! What a pool is configured with.

use std::sync::Arc;
use std::time::Duration;

use lb_core::{HashAlgorithm, HealthConfig};

use crate::control_plane::state_file::StateFile;

/// Settings of a pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Hash for the ring.
    pub hash: HashAlgorithm,
    /// Points per unit of weight.
    pub points_per_weight: u32,
    /// Table (ring or Maglev), bounded loads and keyless policy; a reload changes it
    /// with [`ReplicaPool::set_routing`](super::ReplicaPool::set_routing).
    pub routing: crate::data_plane::routing::Routing,
    /// What replicas speak unless their runtime says (`upstream.protocol`).
    pub protocol: crate::data_plane::protocol::Protocol,
    /// Rise/fall thresholds.
    pub health: HealthConfig,
    /// Cap on `n` in one admin call.
    pub max_per_call: usize,
    /// First respawn delay for a replica that keeps dying.
    pub backoff_initial: Duration,
    /// Cap of the respawn delay.
    pub backoff_max: Duration,
    /// Respawned replicas get a new generated name (`Server-4f2a`) instead of their own.
    pub fresh_names: bool,
    /// How long `remove` waits for a replica's in-flight requests before stopping it.
    pub drain_timeout: Duration,
    /// Where the replica set is saved on every change, if anywhere.
    pub state_file: Option<StateFile>,
    /// Consecutive passive failures (proxied tries charged to a replica) that take it
    /// out of rotation until a heartbeat passes; 0 turns passive ejection off.
    pub max_fails: u32,
    /// Counters: `lb_respawns_total`, and each replica's handles for the snapshots.
    pub metrics: Arc<crate::observe::metrics::Metrics>,
}
