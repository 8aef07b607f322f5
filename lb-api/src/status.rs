//! `GET /status`: the daemon's state as one document, for the dashboard page, for
//! `lbctl analyze` and for scripts. It is the `message` of a success answer:
//!
//! ```json
//! {"hash":"xxh3","points_per_weight":160,"fingerprint":"5c0e8a3b1f2d4e67","epoch":3,
//!  "requests":{"total":1200,"unrouted":0},
//!  "replicas":[{"name":"server1","address":"127.0.0.1:40111","state":"up",
//!    "uptime_ms":5300,"state_ms":5300,"respawns":0,"in_flight":0,"requests":401,
//!    "ring_share":0.334}],
//!  "uptime_ms":5321}
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusDocument {
    /// The ring's hash function: `xxh3`, `sha256`, `md5` or `nginx`.
    pub hash: String,
    /// Points (virtual nodes) per unit of weight on the ring.
    pub points_per_weight: u32,
    /// The ring's fingerprint: equal on two daemons exactly when they map every key
    /// to the same replica (lb-core's `HashRing::fingerprint` over the membership,
    /// weights, hash function and points per weight). Replica health is not in it.
    pub fingerprint: RingFingerprint,
    /// Membership changes of this daemon's ring since it started (each `/add`, `/rm`,
    /// replica renamed by a respawn, or change seen in the orchestrator). It only grows;
    /// two daemons' epochs are not comparable, their fingerprints are.
    pub epoch: u64,
    /// Proxied requests since the daemon started.
    pub requests: RequestCounts,
    /// Every replica, in the order added.
    pub replicas: Vec<ReplicaStatus>,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
}

/// A ring fingerprint, written as 16 lowercase hex digits (a JSON string: a 64-bit
/// number does not survive JavaScript's doubles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingFingerprint(pub u64);

impl std::fmt::Display for RingFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for RingFingerprint {
    type Err = String;

    /// Parses exactly 16 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a fingerprint is 16 hex digits, not {s:?}"));
        }
        u64::from_str_radix(s, 16)
            .map(RingFingerprint)
            .map_err(|e| format!("fingerprint {s:?}: {e}"))
    }
}

impl Serialize for RingFingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RingFingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Request counters of the whole daemon, the same numbers as `lb_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestCounts {
    /// Responses given to proxied requests, every status class.
    pub total: u64,
    /// Requests no replica answered (no healthy replica, or every try failed).
    pub unrouted: u64,
}

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// In rotation.
    Up,
    /// Failed `fall` heartbeats in a row; respawn pending on runtimes that respawn.
    Down,
    /// A new instance is being started in place of a failed one.
    Respawning,
    /// Out of rotation after `max_fails` failed requests, until a heartbeat passes;
    /// never respawned for it.
    Ejected,
}

/// One replica of the `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaStatus {
    /// Hostname.
    pub name: String,
    /// `ip:port` of the running instance; `None` while respawning (the old instance is
    /// gone and the new one has no address yet).
    pub address: Option<SocketAddr>,
    /// Where it stands.
    pub state: ReplicaState,
    /// Milliseconds since the current instance started; 0 while respawning.
    pub uptime_ms: u64,
    /// Milliseconds since `state` last changed.
    pub state_ms: u64,
    /// Times it was respawned since it was added.
    pub respawns: u64,
    /// Requests being proxied to it now.
    pub in_flight: usize,
    /// Proxied responses it gave since the daemon started, every status class.
    pub requests: u64,
    /// Its ring weight (0..=256; 0: drained, it takes no new key). Documents of
    /// daemons older than weights: 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Suspected by the data plane of making no progress (requests waiting, no response
    /// headers while other replicas answer): Up, but it takes no new request except one
    /// half-open trial every 500 ms. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspected: bool,
    /// Its exact fraction of the hash space (0–1): its expected share of uniformly
    /// random keys.
    pub ring_share: f64,
}

fn one() -> u32 {
    1
}
