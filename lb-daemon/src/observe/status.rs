//! `GET /status`: the daemon's state as one [`StatusDocument`] (shape and field
//! meanings in [`lb_api::status`]), for the dashboard page, `lbctl analyze` and
//! scripts, in the admin API's success shape.

use std::time::Instant;

use hyper::{Response, StatusCode};
use lb_api::{RequestCounts, RingFingerprint, StatusDocument};

use crate::control_plane::pool::ReplicaPool;
use crate::data_plane::reply::{Body, success};
use crate::observe::metrics::Metrics;

/// The status document of `pool`, `started` being when the daemon started.
pub fn document(pool: &ReplicaPool, metrics: &Metrics, started: Instant) -> StatusDocument {
    let snapshot = pool.snapshot();
    StatusDocument {
        hash: snapshot.ring.hasher().name().to_string(),
        points_per_weight: snapshot.ring.points_per_weight(),
        fingerprint: RingFingerprint(snapshot.fingerprint()),
        epoch: snapshot.epoch,
        requests: RequestCounts {
            total: metrics.requests_total(),
            unrouted: metrics.requests_of("none"),
        },
        replicas: pool.status(|name| metrics.requests_of(name)),
        uptime_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// `200` with the status document in the admin API's success shape.
pub fn respond(pool: &ReplicaPool, metrics: &Metrics, started: Instant) -> Response<Body> {
    success(StatusCode::OK, document(pool, metrics, started))
}
