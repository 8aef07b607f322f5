//! Prometheus metrics (crate `prometheus-client`), served as OpenMetrics text on
//! `GET /metrics` of the admin API.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lb_requests_total` | counter | `replica` (`none` when no replica answered), `class` (`2xx`…`5xx`) |
//! | `lb_request_duration_seconds` | histogram | `worker` (one shard per data-plane worker; `sum by (le)` merges them) — until response headers |
//! | `lb_upstream_failures_total` | counter | `replica`, `kind` (`connect`, `reset`, `timeout`) |
//! | `lb_retries_total` | counter | — |
//! | `lb_in_flight_requests` | gauge | — |
//! | `lb_replica_up` | gauge (1 Up, 0 Down) | `replica` |
//! | `lb_replica_suspected` | gauge (1 suspected of making no progress) | `replica` |
//! | `lb_moved_requests_total` | counter | — (waiting requests moved off a suspected or out-of-rotation replica, uncharged) |
//! | `lb_hedges_sent_total`, `lb_hedges_won_total`, `lb_hedges_lost_total` | counter | — (hedged requests; won: the hedge answered first) |
//! | `lb_respawns_total` | counter | — |
//! | `lb_ring_nodes` | gauge | — |
//! | `lb_admin_calls_total` | counter | `endpoint`, `status` |
//! | `lb_upstream_queue_depth` | gauge | — (requests waiting for a connection under `upstream.max_conns_per_replica`) |
//! | `lb_upstream_queue_wait_seconds` | histogram | — (how long each queued request waited) |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

use crate::data_plane::snapshot::Snapshot;

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

/// `version`: of `lb_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The daemon's crate version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// `worker`: a data-plane worker's index.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// `0`, `1`, ...
    pub worker: String,
}

/// `worker` and `stage`: one stage of a request (`lb_request_stage_seconds`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `0`, `1`, ...
    pub worker: String,
    /// `request_head`, `upstream_connection`, `response_head` or `response_body`.
    pub stage: &'static str,
}

/// One worker's handles on `lb_request_stage_seconds`, resolved once so that timing a
/// request costs a clock read and an atomic add per stage. The lean HTTP/1 path times
/// all four stages; requests hyper serves, the middle two.
#[derive(Debug, Clone)]
pub struct StageTimers {
    /// First byte of a request to its head (and lean body) complete.
    pub request_head: Histogram,
    /// Routing done to a connection to the replica in hand (pool, queue, connect).
    pub upstream_connection: Histogram,
    /// Request sent to the replica's response head read.
    pub response_head: Histogram,
    /// Response head to the last body byte written to the client.
    pub response_body: Histogram,
}

/// Why a try failed, as `lb_upstream_failures_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connect refused or timed out.
    Connect,
    /// Reset or closed before response headers.
    Reset,
    /// No response headers within `upstream.try_timeout_ms`.
    Timeout,
}

impl FailureKind {
    const ALL: [FailureKind; 3] = [
        FailureKind::Connect,
        FailureKind::Reset,
        FailureKind::Timeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Reset => "reset",
            FailureKind::Timeout => "timeout",
        }
    }
}

/// One replica's counters, resolved once when a routing snapshot is built, so the
/// request path adds to atomics without building labels or taking the family's lock.
#[derive(Debug)]
pub struct ReplicaMetrics {
    requests: [Counter; 5],
    failures: [Counter; 3],
}

impl ReplicaMetrics {
    /// The failure counter of `kind`.
    pub fn failure(&self, kind: FailureKind) -> &Counter {
        &self.failures[kind as usize]
    }
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
    /// Proxied request latency, seconds, one histogram per worker.
    pub duration: Family<WorkerLabels, Histogram, fn() -> Histogram>,
    /// Time spent in each stage of a request, seconds, per worker.
    pub stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// Failed tries.
    pub failures: Family<FailureLabels, Counter>,
    /// Retries made.
    pub retries: Counter,
    /// Requests being proxied now.
    pub in_flight: Gauge,
    /// Replica health, set at scrape time.
    pub replica_up: Family<ReplicaLabels, Gauge>,
    /// Replicas suspected of making no progress, set at scrape time.
    pub replica_suspected: Family<ReplicaLabels, Gauge>,
    /// Waiting requests moved off a suspected or out-of-rotation replica.
    pub moved: Counter,
    /// Hedges sent, and how they ended.
    pub hedges: Hedges,
    /// Replicas respawned.
    pub respawns: Counter,
    /// Nodes on the ring, set at scrape time.
    pub ring_nodes: Gauge,
    /// Admin calls.
    pub admin_calls: Family<AdminLabels, Counter>,
    /// The upstream connection queue.
    pub queue: crate::data_plane::upstream_pool::QueueMetrics,
    /// Proxied requests, all replicas and classes (not exported; `/status` reads it).
    requests_seen: Counter,
    /// `lb_requests_total{replica="none"}` by class.
    unrouted: [Counter; 5],
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// 25 µs to 3.3 s: stages are often far below a millisecond.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_025, 2.0, 18))
}

/// Hedged requests (`upstream.hedge`).
#[derive(Debug, Default)]
pub struct Hedges {
    /// Second tries sent to the key's next replica after the first passed its deadline.
    pub sent: Counter,
    /// Hedges whose replica answered first.
    pub won: Counter,
    /// Hedges the first try beat.
    pub lost: Counter,
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
        let duration: Family<WorkerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let stages: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(stage_histogram);
        let failures = Family::<FailureLabels, Counter>::default();
        let retries = Counter::default();
        let in_flight = Gauge::default();
        let replica_up = Family::<ReplicaLabels, Gauge>::default();
        let respawns = Counter::default();
        let replica_suspected = Family::<ReplicaLabels, Gauge>::default();
        let moved = Counter::default();
        let hedges = Hedges::default();
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
            "lb_request_stage_seconds",
            "Time in each stage of a proxied request, per worker",
            stages.clone(),
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
            "lb_replica_suspected",
            "1 when the replica is suspected of making no progress (it stays Up)",
            replica_suspected.clone(),
        );
        registry.register(
            "lb_moved_requests",
            "Waiting requests moved off a suspected or out-of-rotation replica",
            moved.clone(),
        );
        registry.register(
            "lb_hedges_sent",
            "Hedges: second tries on the next replica after the first passed its deadline",
            hedges.sent.clone(),
        );
        registry.register(
            "lb_hedges_won",
            "Hedges answered before the first try",
            hedges.won.clone(),
        );
        registry.register(
            "lb_hedges_lost",
            "Hedges the first try beat",
            hedges.lost.clone(),
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
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register(
            "lb_build_info",
            "The running daemon's version; always 1",
            build_info,
        );
        let unrouted = CLASSES.map(|class| {
            requests
                .get_or_create(&RequestLabels {
                    replica: "none".into(),
                    class: class.into(),
                })
                .clone()
        });
        let queue = crate::data_plane::upstream_pool::QueueMetrics {
            depth: Gauge::default(),
            wait: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
        };
        registry.register(
            "lb_upstream_queue_depth",
            "Requests waiting for an upstream connection under max_conns_per_replica",
            queue.depth.clone(),
        );
        registry.register(
            "lb_upstream_queue_wait_seconds",
            "Time queued requests waited for an upstream connection",
            queue.wait.clone(),
        );
        Self {
            queue,
            unrouted,
            registry,
            requests,
            duration,
            stages,
            failures,
            retries,
            in_flight,
            replica_up,
            replica_suspected,
            moved,
            hedges,
            respawns,
            ring_nodes,
            admin_calls,
            requests_seen: Counter::default(),
        }
    }

    /// The counters of replica `name`, for its entry in routing snapshots.
    pub fn replica(&self, name: &str) -> Arc<ReplicaMetrics> {
        Arc::new(ReplicaMetrics {
            requests: CLASSES.map(|class| {
                self.requests
                    .get_or_create(&RequestLabels {
                        replica: name.to_string(),
                        class: class.to_string(),
                    })
                    .clone()
            }),
            failures: FailureKind::ALL.map(|kind| {
                self.failures
                    .get_or_create(&FailureLabels {
                        replica: name.to_string(),
                        kind: kind.as_str().to_string(),
                    })
                    .clone()
            }),
        })
    }

    /// Worker `index`'s shard of `lb_request_duration_seconds`.
    pub fn worker_duration(&self, index: usize) -> Histogram {
        self.duration
            .get_or_create(&WorkerLabels {
                worker: index.to_string(),
            })
            .clone()
    }

    /// Worker `index`'s handles on `lb_request_stage_seconds`.
    pub fn worker_stages(&self, index: usize) -> StageTimers {
        let stage = |stage| {
            self.stages
                .get_or_create(&StageLabels {
                    worker: index.to_string(),
                    stage,
                })
                .clone()
        };
        StageTimers {
            request_head: stage("request_head"),
            upstream_connection: stage("upstream_connection"),
            response_head: stage("response_head"),
            response_body: stage("response_body"),
        }
    }

    /// Counts one proxied request answered by `replica` (`None`: by no replica) with
    /// HTTP `status`.
    pub fn record_request(&self, replica: Option<&ReplicaMetrics>, status: u16) {
        let class = usize::from(status / 100)
            .saturating_sub(1)
            .min(CLASSES.len() - 1);
        match replica {
            Some(replica) => replica.requests[class].inc(),
            None => self.unrouted[class].inc(),
        };
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
        self.replica_suspected.clear();
        for (name, upstream) in &snapshot.upstreams {
            let labels = ReplicaLabels {
                replica: name.to_string(),
            };
            self.replica_up
                .get_or_create(&labels)
                .set(i64::from(upstream.up));
            self.replica_suspected
                .get_or_create(&labels)
                .set(i64::from(upstream.progress.is_suspected()));
        }
        self.ring_nodes.set(snapshot.ring.len() as i64);
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text = "# metrics could not be encoded\n# EOF\n".into();
        }
        text
    }
}
