//! How a forward ends: what the caller learns ([`Forwarded`]), whose fault a failed
//! try was ([`TryFailure`] charges the replica; a client's fault charges nobody),
//! and the answer the client gets for each ending.

use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use lb_core::NodeId;

use crate::data_plane::reply::{Body, failure};
use crate::data_plane::upstream_pool::ConnectError;
use crate::observe::access_log::AccessEntry;
use crate::observe::metrics::{FailureKind, ReplicaMetrics};

/// What happened to a forwarded request: read by metrics and logs.
#[derive(Debug, Default)]
pub struct Forwarded {
    /// The counters of the replica whose answer the client got, if any.
    pub served_by: Option<Arc<ReplicaMetrics>>,
    /// That replica's name, as the `X-LB-Replica` value (for the access log).
    pub replica: Option<HeaderValue>,
    /// The request's access-log entry, when the access log is on.
    pub access: Option<AccessEntry>,
    /// Tries made (0 when no replica was Up or the request was refused before).
    pub tries: usize,
}

/// How one try ended without a response: the replica's fault, charged to it (all but
/// [`TryFailure::Moved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryFailure {
    /// No connection: nothing reached the replica.
    Connect,
    /// Reset or closed after the request went out, before response headers.
    Reset,
    /// No response headers within `try_timeout` after the request was sent.
    Timeout,
    /// The request left a replica suspected of making no progress, or out of rotation:
    /// never charged (only kept as the last try's ending for the answer's text).
    Moved,
}

impl TryFailure {
    /// The `kind` label of `lb_upstream_failures_total`.
    pub(crate) fn kind(self) -> FailureKind {
        match self {
            TryFailure::Connect => FailureKind::Connect,
            TryFailure::Reset => FailureKind::Reset,
            // Never charged; a timeout is the nearest kind.
            TryFailure::Timeout | TryFailure::Moved => FailureKind::Timeout,
        }
    }
}

/// Why a request ended without any try being charged: the client's fault.
pub(super) enum ClientFault {
    /// The client's body stream failed (the reason, for the 400's text).
    BrokenBody(String),
    /// The client uploaded slower than the deadline allowed.
    SlowUpload,
}

/// A try's end without a response.
pub(super) enum SendFailure {
    /// A reused connection closed under the request: nobody's fault; an idempotent
    /// request goes on to the next candidate, another gets 502.
    Stale,
    /// The replica's fault.
    Replica(TryFailure),
    /// An h2c stream the replica refused or a `GOAWAY` left unprocessed: nobody's
    /// fault, and since the replica never saw it, any method goes on to the next
    /// candidate (if its body can be sent again).
    Refused,
    /// The client's.
    Client(ClientFault),
    /// The replica is suspected of making no progress, or left rotation, while the
    /// request waited: an idempotent request goes on to the next candidate, uncharged
    /// (suspicion is not a failure count; a Down replica was charged by its heartbeats).
    Moved,
}

impl From<hyper::Error> for SendFailure {
    fn from(_: hyper::Error) -> Self {
        SendFailure::Replica(TryFailure::Reset)
    }
}

/// The answer when every try failed; `last` is the last try's replica and failure
/// (`None`: no replica was Up), `try_timeout` the request's per-try deadline. 503, 504
/// or 502 with a sentence naming the replica.
pub(crate) fn exhausted(
    last: Option<(&NodeId, TryFailure)>,
    try_timeout: std::time::Duration,
) -> Response<Body> {
    match last {
        None => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy replica is available",
        ),
        Some((replica, TryFailure::Timeout)) => failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "replica {replica} did not answer within {} ms",
                try_timeout.as_millis()
            ),
        ),
        Some((replica, TryFailure::Connect)) => failure(
            StatusCode::BAD_GATEWAY,
            format!("replica {replica} is unreachable"),
        ),
        Some((replica, TryFailure::Moved)) => failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "replica {replica} made no progress or left rotation, and no other replica answered"
            ),
        ),
        Some((replica, TryFailure::Reset)) => failure(
            StatusCode::BAD_GATEWAY,
            format!("replica {replica} failed before answering"),
        ),
    }
}

/// `503` with `Retry-After: 1` (seconds), like HAProxy when `timeout queue` passes.
pub(crate) fn queue_timeout(replica: &NodeId, error: &ConnectError) -> Response<Body> {
    let mut response = failure(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("replica {replica} is at its connection limit: {error}"),
    );
    response
        .headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `400` for a broken body, `408` for a slow upload.
pub(super) fn client_fault(fault: ClientFault) -> Response<Body> {
    match fault {
        ClientFault::BrokenBody(reason) => failure(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {reason}"),
        ),
        ClientFault::SlowUpload => failure(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        ),
    }
}
