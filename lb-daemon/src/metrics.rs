//! Prometheus metrics (crate `prometheus-client`), served as OpenMetrics text on
//! `GET /metrics` of the admin API.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lb_requests_total` | counter | `replica` (`none` when no replica answered), `class` (`2xx`…`5xx`) |
//! | `lb_request_duration_seconds` | histogram | — (until response headers) |
//! | `lb_upstream_failures_total` | counter | `replica`, `kind` (`connect`, `reset`, `timeout`) |
//! | `lb_retries_total` | counter | — |
//! | `lb_in_flight_requests` | gauge | — |
//! | `lb_replica_up` | gauge (1 Up, 0 Down) | `replica` |
//! | `lb_respawns_total` | counter | — |
//! | `lb_ring_nodes` | gauge | — |
//! | `lb_admin_calls_total` | counter | `endpoint`, `status` |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

/// `replica`, `class`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Hostname, or `none`.
    pub replica: String,
    /// `2xx`, `4xx`, ...
    pub class: String,
}

/// `replica`, `kind`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Hostname.
    pub replica: String,
    /// `connect`, `reset` or `timeout`.
    pub kind: String,
}

/// `replica`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    /// Hostname.
    pub replica: String,
}

/// `endpoint`, `status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdminLabels {
    /// `/rep`, `/add`, `/rm`, `/metrics`.
    pub endpoint: String,
    /// HTTP status code.
    pub status: u16,
}

/// Every metric of the daemon. Cheap to share (`Arc`); recording never blocks requests
/// beyond an atomic add.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Proxied requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Proxied request latency, seconds.
    pub duration: Histogram,
    /// Failed tries.
    pub failures: Family<FailureLabels, Counter>,
    /// Retries made.
    pub retries: Counter,
    /// Requests being proxied now.
    pub in_flight: Gauge,
    /// Replica health, set at scrape time.
    pub replica_up: Family<ReplicaLabels, Gauge>,
    /// Replicas respawned.
    pub respawns: Counter,
    /// Nodes on the ring, set at scrape time.
    pub ring_nodes: Gauge,
    /// Admin calls.
    pub admin_calls: Family<AdminLabels, Counter>,
    /// Proxied requests, all replicas and classes (not exported; `/status` reads it).
    requests_seen: Counter,
}

/// The status classes `lb_requests_total` uses.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let failures = Family::<FailureLabels, Counter>::default();
        let retries = Counter::default();
        let in_flight = Gauge::default();
        let replica_up = Family::<ReplicaLabels, Gauge>::default();
        let respawns = Counter::default();
        let ring_nodes = Gauge::default();
        let admin_calls = Family::<AdminLabels, Counter>::default();
        registry.register(
            "lb_requests",
            "Proxied requests by replica and status class",
            requests.clone(),
        );
        registry.register(
            "lb_request_duration_seconds",
            "Time to the response headers of proxied requests",
            duration.clone(),
        );
        registry.register(
            "lb_upstream_failures",
            "Failed tries by replica and kind",
            failures.clone(),
        );
        registry.register(
            "lb_retries",
            "Tries repeated on the next candidate",
            retries.clone(),
        );
        registry.register(
            "lb_in_flight_requests",
            "Requests being proxied now",
            in_flight.clone(),
        );
        registry.register(
            "lb_replica_up",
            "1 when the replica is in rotation, 0 when Down",
            replica_up.clone(),
        );
        registry.register(
            "lb_respawns",
            "Replicas respawned after going Down or exiting",
            respawns.clone(),
        );
        registry.register("lb_ring_nodes", "Nodes on the ring", ring_nodes.clone());
        registry.register(
            "lb_admin_calls",
            "Admin API calls by endpoint and status",
            admin_calls.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            failures,
            retries,
            in_flight,
            replica_up,
            respawns,
            ring_nodes,
            admin_calls,
            requests_seen: Counter::default(),
        }
    }

    /// Counts one proxied request answered by `replica` (`none`: by no replica) with
    /// HTTP `status`.
    pub fn record_request(&self, replica: &str, status: u16) {
        let class = CLASSES
            .get(usize::from(status / 100).saturating_sub(1))
            .copied()
            .unwrap_or("5xx");
        self.requests
            .get_or_create(&RequestLabels {
                replica: replica.to_string(),
                class: class.to_string(),
            })
            .inc();
        self.requests_seen.inc();
    }

    /// Proxied responses of `replica` since start, every status class (`none`: requests
    /// no replica answered).
    pub fn requests_of(&self, replica: &str) -> u64 {
        CLASSES
            .iter()
            .filter_map(|class| {
                self.requests
                    .get(&RequestLabels {
                        replica: replica.to_string(),
                        class: (*class).to_string(),
                    })
                    .map(|counter| counter.get())
            })
            .sum()
    }

    /// Proxied requests since start, answered by a replica or not.
    pub fn requests_total(&self) -> u64 {
        self.requests_seen.get()
    }

    /// The OpenMetrics text, with the gauges that mirror `snapshot` brought up to date.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.replica_up.clear();
        for (name, upstream) in &snapshot.upstreams {
            self.replica_up
                .get_or_create(&ReplicaLabels {
                    replica: name.to_string(),
                })
                .set(i64::from(upstream.up));
        }
        self.ring_nodes.set(snapshot.ring.len() as i64);
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text = "# metrics could not be encoded\n# EOF\n".into();
        }
        text
    }
}
