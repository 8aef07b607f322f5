//! `GET /explain?key=K`: the route a request with key `K` takes right now, read from the
//! same routing snapshot the data plane uses (shape in [`lb_api::explain`]).

use hyper::{Response, StatusCode};
use lb_api::{Candidate, Explanation};
use lb_core::HashFunction;

use crate::data_plane::reply::{Body, failure, success};
use crate::data_plane::snapshot::Snapshot;

/// The explanation of `key` (its exact bytes, as the data plane hashes them) in
/// `snapshot`.
pub fn explain(snapshot: &Snapshot, key: &str) -> Explanation {
    let ring = &snapshot.ring;
    let candidates: Vec<Candidate> = snapshot
        .candidates(key.as_bytes())
        .map(|node| {
            let upstream = snapshot.upstreams.get(node.id());
            Candidate {
                name: node.id().to_string(),
                weight: node.weight(),
                in_rotation: upstream.is_some_and(|u| u.up),
                in_flight: upstream
                    .map_or(0, |u| u.inflight.load(std::sync::atomic::Ordering::Relaxed)),
            }
        })
        .collect();
    Explanation {
        key: key.to_string(),
        hash_function: ring.hasher().name().to_string(),
        position: format!("{:016x}", ring.hasher().hash(key.as_bytes())),
        // The table routing really uses (the ring if a Maglev table could not be built).
        algorithm: if snapshot.maglev.is_some() {
            "maglev"
        } else {
            "ring"
        }
        .to_string(),
        owner: candidates.first().map(|c| c.name.clone()),
        route: snapshot
            .route(key.as_bytes())
            .map(|(name, _)| name.to_string()),
        candidates,
    }
}

/// `200` with the explanation of the `key` parameter of `query`; `400` without one.
pub fn respond(snapshot: &Snapshot, query: Option<&str>) -> Response<Body> {
    let key = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "key")
            .map(|(_, value)| value.into_owned())
    });
    match key {
        Some(key) => success(StatusCode::OK, explain(snapshot, &key)),
        None => failure(
            StatusCode::BAD_REQUEST,
            "give the key to explain as ?key=K (percent-encoded)".to_string(),
        ),
    }
}
