//! The forward: request key → the key's Up candidates → one try after another until a
//! replica answers, with fault attribution.
//!
//! Charged to a replica (passive health, `lb_upstream_failures_total`): connect refused
//! or timed out, and a reset or timeout while waiting for its response after the
//! request was sent. Not charged: the client aborting (the future is dropped; guards
//! put every count back), the client's body stream failing (400), a client uploading
//! slower than the per-try deadline (408), and a pooled keep-alive connection the
//! replica had closed before the request went out (sent again on a new connection).
//!
//! Retries walk the key's next distinct Up candidate: after a connect failure for any
//! method (nothing reached the replica), after a reset or timeout only for idempotent
//! methods (RFC 9110 §9.2.2) whose body could be kept for a second try.

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::{ALLOW, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use lb_core::NodeId;

use crate::control_plane::pool::RoutingView;
use crate::data_plane::accounting::{InFlight, Reservation, RetryBudget};
use crate::data_plane::body::{Checkin, ClientBody, ProxiedBody, UploadProgress, UpstreamBody};
use crate::data_plane::h1::RawConnection;
use crate::data_plane::headers::{self, is_upgrade};
use crate::data_plane::hyper_connection::HyperConnection;
use crate::data_plane::key::{HyperRequest, KeySource, request_key};
use crate::data_plane::reply::{Body, failure};
use crate::data_plane::snapshot::Upstream;
use crate::data_plane::tunnel;
use crate::data_plane::upstream_pool::{Checkout, ConnectError, UpstreamPool};
use crate::observe::metrics::{FailureKind, Metrics, ReplicaMetrics, StageTimers};

/// Header naming the replica that served a proxied response (for users; the daemon
/// itself reads [`Forwarded`]).
pub const REPLICA_HEADER: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-lb-replica");

/// Most tries of one request: `upstream.retries` is at most 10.
pub const MAX_TRIES: usize = 11;

/// How the proxy forwards and retries; swapped whole on a config reload (SIGHUP).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Request key sources, tried in order, then a random key.
    pub key: Vec<KeySource>,
    /// Extra tries on the next distinct Up candidate.
    pub retries: usize,
    /// Per-try deadline for the replica's response headers (and for a streamed upload).
    pub try_timeout: Duration,
    /// Bodies of known length up to this size, bytes, are buffered so they can be retried.
    pub retry_body_bytes: usize,
    /// Deadline for reading a body that is buffered for retries.
    pub body_read_timeout: Duration,
}

/// What happened to a forwarded request: read by metrics and logs.
#[derive(Debug, Default)]
pub struct Forwarded {
    /// The replica whose answer the client got, if any.
    pub served_by: Option<Arc<ReplicaMetrics>>,
    /// Tries made (0 when no replica was Up or the request was refused before).
    pub tries: usize,
}

/// How one try ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryFailure {
    /// No connection: nothing reached the replica.
    Connect,
    /// Reset or closed after the request went out, before response headers.
    Reset,
    /// No response headers within `try_timeout` after the request was sent.
    Timeout,
}

impl TryFailure {
    fn kind(self) -> FailureKind {
        match self {
            TryFailure::Connect => FailureKind::Connect,
            TryFailure::Reset => FailureKind::Reset,
            TryFailure::Timeout => FailureKind::Timeout,
        }
    }
}

/// Why a request ended without any try being charged.
enum ClientFault {
    BrokenBody(String),
    SlowUpload,
}

/// One worker's forwarder: its upstream pool, and what all workers share.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// This worker's upstream connections for requests hyper serves.
    pub upstreams: Arc<UpstreamPool<HyperConnection>>,
    /// This worker's upstream connections for the lean HTTP/1 path.
    pub lean_upstreams: Arc<UpstreamPool<RawConnection>>,
    /// Membership and health, for the routing snapshot and passive outcomes.
    pub replicas: RoutingView,
    /// Reloadable settings.
    pub settings: Arc<ArcSwap<ProxySettings>>,
    /// Memory budget of bodies held for retries.
    pub retry_budget: Arc<RetryBudget>,
    /// Retries and failures.
    pub metrics: Arc<Metrics>,
}

/// The request body, prepared for one or more tries.
enum Prepared {
    /// Kept in memory: every try sends it again.
    Kept(Option<Bytes>),
    /// Streamed: the first try that gets a connection takes it.
    Streamed(Option<ClientBody>, Arc<UploadProgress>),
}

impl Prepared {
    fn for_try(&mut self) -> Option<UpstreamBody> {
        match self {
            Prepared::Kept(bytes) => Some(UpstreamBody::Fixed(bytes.clone())),
            Prepared::Streamed(body, _) => body.take().map(UpstreamBody::Streamed),
        }
    }

    fn progress(&self) -> Option<&UploadProgress> {
        match self {
            Prepared::Kept(_) => None,
            Prepared::Streamed(_, progress) => Some(progress),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, Prepared::Kept(_))
    }
}

impl Forwarder {
    /// Forwards `req` from `client`. `in_flight` moves into the response body, so the
    /// request counts as in flight until the client has its whole answer.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
        mut in_flight: InFlight,
        stages: &StageTimers,
    ) -> (Response<Body>, Forwarded) {
        let mut forwarded = Forwarded::default();
        if req.method() == Method::OPTIONS && req.uri() == "*" {
            return (options_star(), forwarded);
        }
        if req.method() == Method::CONNECT {
            return (
                failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "CONNECT is not supported: this is a reverse proxy",
                ),
                forwarded,
            );
        }
        let settings = self.settings.load_full();
        let snapshot = self.replicas.snapshot();
        let client_upgrade: Option<OnUpgrade> = if req.version() == Version::HTTP_11
            && req.headers().contains_key(hyper::header::UPGRADE)
        {
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };
        let (mut parts, body) = req.into_parts();
        let upgrade = client_upgrade.is_some() && is_upgrade(&parts);
        let client_upgrade = client_upgrade.filter(|_| upgrade);

        let tries = (settings.retries + 1).min(MAX_TRIES);
        let mut targets: [Option<(&NodeId, &Upstream)>; MAX_TRIES] = [None; MAX_TRIES];
        {
            let request = HyperRequest {
                uri: &parts.uri,
                headers: &parts.headers,
            };
            let key = request_key(&settings.key, &request, client.ip());
            for (slot, target) in targets.iter_mut().zip(snapshot.routes(&key).take(tries)) {
                *slot = Some(target);
            }
        }
        if targets[0].is_none() {
            return (
                failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy replica is available",
                ),
                forwarded,
            );
        }

        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::ensure_host(&mut parts.headers, &parts.uri);
        headers::append_forwarded_for(&mut parts.headers, client.ip());
        headers::set_forwarded_proto(&mut parts.headers);
        let method = parts.method;
        let uri = headers::origin_form(parts.uri);
        let idempotent = is_idempotent(&method);

        let mut _reservation: Option<Reservation> = None;
        let mut body = match self
            .prepare_body(body, &settings, tries > 1, &mut _reservation)
            .await
        {
            Ok(body) => body,
            Err(fault) => return (client_fault(fault), forwarded),
        };
        // A copy of the headers only when a try after a sent one may happen.
        let template: Option<HeaderMap> =
            (idempotent && tries > 1 && body.replayable()).then(|| parts.headers.clone());
        let mut headers = Some(parts.headers);
        let mut client_upgrade = client_upgrade;

        let mut last: Option<(&NodeId, TryFailure)> = None;
        for (attempt, (name, upstream)) in targets.iter().flatten().enumerate() {
            if attempt > 0 {
                self.metrics.retries.inc();
            }
            forwarded.tries = attempt + 1;
            in_flight.at(&upstream.inflight);
            let routed = Instant::now();
            let checkout = match self
                .upstreams
                .checkout(upstream.instance, upstream.addr)
                .await
            {
                Ok(checkout) => {
                    stages
                        .upstream_connection
                        .observe(routed.elapsed().as_secs_f64());
                    checkout
                }
                Err(e @ ConnectError::QueueTimeout { .. }) => {
                    // The replica is busy, not broken: nothing is charged, and the key
                    // stays with its replica (no spill to the next one).
                    tracing::debug!(replica = %name, error = %e, "queue timeout");
                    return (queue_timeout(name, &e), forwarded);
                }
                Err(e) => {
                    tracing::warn!(replica = %name, error = %e, "try failed: connect");
                    self.charge(name, upstream, TryFailure::Connect);
                    last = Some((name, TryFailure::Connect));
                    in_flight.leave_replica();
                    continue;
                }
            };
            let Some(try_headers) = headers.take().or_else(|| template.clone()) else {
                break;
            };
            let Some(try_body) = body.for_try() else {
                break;
            };
            let mut request = Request::new(try_body);
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = try_headers;
            let sending = Instant::now();
            let sent = self
                .send(
                    checkout,
                    request,
                    upstream,
                    settings.try_timeout,
                    body.progress(),
                )
                .await;
            match sent {
                Ok((mut response, connection)) => {
                    stages
                        .response_head
                        .observe(sending.elapsed().as_secs_f64());
                    if upstream.passive_fails.load(Ordering::Relaxed) != 0 {
                        self.replicas.report_success(name, upstream.instance);
                    }
                    forwarded.served_by = Some(Arc::clone(&upstream.metrics));
                    let upstream_upgrade = (response.status() == StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| hyper::upgrade::on(&mut response));
                    let response = match (client_upgrade.take(), upstream_upgrade) {
                        (Some(client_side), Some(upstream_side)) => {
                            tokio::spawn(tunnel::run(
                                client_side,
                                upstream_side,
                                connection,
                                in_flight,
                            ));
                            switched(response, upstream)
                        }
                        _ => {
                            // A replica may answer before it read the whole upload (413,
                            // 401): such a connection is not clean for the next request.
                            let clean = body.progress().is_none_or(|p| p.finished());
                            self.respond(response, upstream, connection, in_flight, clean)
                        }
                    };
                    return (response, forwarded);
                }
                Err(SendFailure::Client(fault)) => return (client_fault(fault), forwarded),
                Err(SendFailure::Stale) => {
                    tracing::debug!(replica = %name, "kept-alive connection closed under the request");
                    last = Some((name, TryFailure::Reset));
                    in_flight.leave_replica();
                    if !idempotent {
                        break;
                    }
                }
                Err(SendFailure::Replica(failed)) => {
                    tracing::warn!(replica = %name, addr = %upstream.addr, failure = ?failed, "try failed");
                    self.charge(name, upstream, failed);
                    last = Some((name, failed));
                    in_flight.leave_replica();
                    let retryable = failed == TryFailure::Connect || idempotent;
                    if !retryable {
                        break;
                    }
                }
            }
        }
        (exhausted(last, &settings), forwarded)
    }

    /// Reads a body that may need a second try into memory (within the retry budget
    /// and `body_read_timeout`), or wraps it for streaming.
    async fn prepare_body(
        &self,
        body: Incoming,
        settings: &ProxySettings,
        may_retry: bool,
        reservation: &mut Option<Reservation>,
    ) -> Result<Prepared, ClientFault> {
        if body.is_end_stream() {
            return Ok(Prepared::Kept(None));
        }
        let small = body
            .size_hint()
            .exact()
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| may_retry && *len <= settings.retry_body_bytes);
        if let Some(len) = small {
            if let Some(reserved) = self.retry_budget.reserve(len) {
                *reservation = Some(reserved);
                return match tokio::time::timeout(settings.body_read_timeout, body.collect()).await
                {
                    Ok(Ok(collected)) => Ok(Prepared::Kept(Some(collected.to_bytes()))),
                    Ok(Err(e)) => Err(ClientFault::BrokenBody(e.to_string())),
                    Err(_) => Err(ClientFault::SlowUpload),
                };
            }
        }
        let (body, progress) = ClientBody::new(body);
        Ok(Prepared::Streamed(Some(body), progress))
    }

    /// One try on `checkout`. A pooled connection that the replica had already closed
    /// gives the request back unsent; it goes out again on a new connection, uncharged.
    async fn send(
        &self,
        checkout: Checkout<HyperConnection>,
        request: Request<UpstreamBody>,
        upstream: &Upstream,
        limit: Duration,
        progress: Option<&UploadProgress>,
    ) -> Result<(Response<Incoming>, HyperConnection), SendFailure> {
        let mut connection = checkout.upstream;
        let mut reused = checkout.reused;
        let mut request = request;
        let attempt = async {
            loop {
                let sent = {
                    let mut response = std::pin::pin!(connection.sender.try_send_request(request));
                    // The connection has no task of its own: this request drives its I/O.
                    std::future::poll_fn(|cx| {
                        connection.poll_io(cx);
                        response.as_mut().poll(cx)
                    })
                    .await
                };
                match sent {
                    Ok(response) => return Ok(response),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if reused => {
                            request = unsent;
                            reused = false;
                            self.upstreams
                                .reconnect(&mut connection, upstream.addr)
                                .await
                                .map_err(|_| SendFailure::Replica(TryFailure::Connect))?;
                        }
                        // The replica closed a kept-alive connection just as the
                        // request went out: a race of keep-alive, not a fault.
                        _ if reused && e.error().is_incomplete_message() => {
                            return Err(SendFailure::Stale);
                        }
                        _ => return Err(SendFailure::from(e.into_error())),
                    },
                }
            }
        };
        let outcome = tokio::time::timeout(limit, attempt).await;
        let upload_broken = progress.is_some_and(|p| p.broken());
        let upload_unfinished = progress.is_some_and(|p| !p.finished());
        match outcome {
            Ok(Ok(response)) => Ok((response, connection)),
            Ok(Err(SendFailure::Replica(TryFailure::Reset))) if upload_broken => {
                Err(SendFailure::Client(ClientFault::BrokenBody(
                    "the client's body stream failed".into(),
                )))
            }
            Ok(Err(failure)) => Err(failure),
            Err(_) if upload_unfinished => Err(SendFailure::Client(ClientFault::SlowUpload)),
            Err(_) => Err(SendFailure::Replica(TryFailure::Timeout)),
        }
    }

    /// Charges a failed try to the replica: its failure counter and passive health.
    pub(crate) fn charge(&self, name: &NodeId, upstream: &Upstream, failed: TryFailure) {
        upstream.metrics.failure(failed.kind()).inc();
        self.replicas.report_failure(name, upstream.instance);
    }

    /// The replica's response with hop-by-hop headers dropped and `X-LB-Replica` set;
    /// the connection goes back to this worker's pool when the body is done.
    fn respond(
        &self,
        response: Response<Incoming>,
        upstream: &Upstream,
        connection: HyperConnection,
        in_flight: InFlight,
        reusable: bool,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        parts
            .headers
            .insert(REPLICA_HEADER, upstream.name_header.clone());
        let checkin = Checkin {
            pool: Arc::clone(&self.upstreams),
            instance: upstream.instance,
            upstream: connection,
        };
        let body = ProxiedBody::new(body, Some(checkin).filter(|_| reusable), in_flight);
        Response::from_parts(parts, Body::Streamed(body))
    }
}

/// A try's end without a response.
enum SendFailure {
    /// A reused connection closed under the request: nobody's fault; an idempotent
    /// request goes on to the next candidate, another gets 502.
    Stale,
    /// The replica's fault.
    Replica(TryFailure),
    /// The client's.
    Client(ClientFault),
}

impl From<hyper::Error> for SendFailure {
    fn from(_: hyper::Error) -> Self {
        SendFailure::Replica(TryFailure::Reset)
    }
}

/// The `101 Switching Protocols` answer to the client; the tunnel carries the rest.
fn switched(response: Response<Incoming>, upstream: &Upstream) -> Response<Body> {
    let (mut parts, _) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, true);
    parts
        .headers
        .insert(REPLICA_HEADER, upstream.name_header.clone());
    Response::from_parts(parts, Body::Fixed(None))
}

/// The answer when every try failed; `last` is the last try's replica and failure.
pub(crate) fn exhausted(
    last: Option<(&NodeId, TryFailure)>,
    settings: &ProxySettings,
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
                settings.try_timeout.as_millis()
            ),
        ),
        Some((replica, TryFailure::Connect)) => failure(
            StatusCode::BAD_GATEWAY,
            format!("replica {replica} is unreachable"),
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

fn client_fault(fault: ClientFault) -> Response<Body> {
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

/// `OPTIONS *` asks about the server itself: answered here, like Apache httpd and
/// HAProxy do, with the methods the daemon forwards.
fn options_star() -> Response<Body> {
    let mut response = Response::new(Body::Fixed(None));
    response.headers_mut().insert(
        ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
    );
    response
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
