//! `GET /status`: the daemon's state as one JSON document, for the dashboard page and
//! for scripts. Success shape of the admin API around:
//!
//! ```json
//! {"uptime_ms": 5321, "hash": "xxh3", "points_per_weight": 160,
//!  "requests": {"total": 1200, "unrouted": 0},
//!  "replicas": [{"name": "server1", "address": "127.0.0.1:40111", "state": "up",
//!                "uptime_ms": 5300, "state_ms": 5300, "respawns": 0, "in_flight": 0,
//!                "ring_share": 0.334, "requests": 401}, ...]}
//! ```
//!
//! `requests` per replica counts proxied responses it gave since the daemon started
//! (every status class), the same numbers as `lb_requests_total`; `unrouted` counts
//! requests no replica answered. `ring_share` is the replica's exact fraction of the
//! hash space, its expected share of uniformly random keys.

use std::time::Instant;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::pool::ReplicaPool;
use crate::reply::{Body, success};

/// The status document of `pool` (see the module docs), `started` being when the
/// daemon started.
pub fn document(pool: &ReplicaPool, metrics: &Metrics, started: Instant) -> Value {
    let snapshot = pool.snapshot();
    let replicas: Vec<Value> = pool
        .status()
        .into_iter()
        .map(|replica| {
            let requests = metrics.requests_of(&replica.name);
            let mut value = json!(replica);
            if let Value::Object(fields) = &mut value {
                fields.insert("requests".into(), json!(requests));
            }
            value
        })
        .collect();
    let unrouted = metrics.requests_of("none");
    let total = metrics.requests_total();
    json!({
        "uptime_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "hash": snapshot.ring.hasher().name(),
        "points_per_weight": snapshot.ring.points_per_weight(),
        "requests": { "total": total, "unrouted": unrouted },
        "replicas": replicas,
    })
}

/// `200` with the status document in the admin API's success shape.
pub fn respond(pool: &ReplicaPool, metrics: &Metrics, started: Instant) -> Response<Body> {
    success(StatusCode::OK, document(pool, metrics, started))
}
