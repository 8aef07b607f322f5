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
//! methods (RFC 9110 §9.2.2) whose body could be kept for a second try. An h2c stream
//! the replica never processed (`REFUSED_STREAM`, beyond a `GOAWAY`'s last stream id) is
//! charged to nobody and goes on for any method whose body was kept.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use lb_core::NodeId;

use crate::control_plane::pool::RoutingView;
use crate::data_plane::accounting::{HedgeInFlight, InFlight, Reservation, RetryBudget};
use crate::data_plane::body::{Checkin, ProxiedBody, UploadProgress, UpstreamBody};
use crate::data_plane::h1::RawConnection;
use crate::data_plane::h2_pool::{H2Pool, H2Stream, StreamSlot};
use crate::data_plane::headers::{self, is_upgrade};
use crate::data_plane::hedge::{HedgeBudget, Hedging};
use crate::data_plane::hyper_connection::HyperConnection;
use crate::data_plane::key::{HyperRequest, KeySource, request_key};
use crate::data_plane::protocol::Protocol;
use crate::data_plane::reply::{Body, failure};
use crate::data_plane::slow_paths::{SlowPath, limits_for};
use crate::data_plane::snapshot::Upstream;
use crate::data_plane::suspicion::{Stalled, Suspicion, Waited, wait_or_hedge};
use crate::data_plane::tls::Https;
use crate::data_plane::tunnel;
use crate::data_plane::upstream_pool::{Checkout, ConnectError, Connector, UpstreamPool};
use crate::observe::access_log::AccessEntry;
use crate::observe::metrics::{Metrics, StageTimers};
use crate::runtime::InstanceId;

mod outcome;
mod prepared;
mod tries;

pub use outcome::Forwarded;
use outcome::{ClientFault, SendFailure, client_fault};
pub(crate) use outcome::{TryFailure, exhausted};
use prepared::Prepared;
pub(crate) use tries::{NoConnection, Tries};

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
    /// Suspicion of a replica that makes no progress, and its adaptive deadline
    /// (`upstream.suspect_after_ms`, `upstream.suspect_latency_multiple`).
    pub suspicion: Suspicion,
    /// Hedged `GET`/`HEAD` requests (`upstream.hedge`, `upstream.hedge_budget_percent`).
    pub hedging: Hedging,
    /// Paths with their own try timeout, never suspected or hedged for their slowness
    /// (`[[upstream.slow_paths]]`).
    pub slow_paths: Vec<SlowPath>,
    /// Bodies of known length up to this size, bytes, are buffered so they can be retried.
    pub retry_body_bytes: usize,
    /// Deadline for reading a body that is buffered for retries.
    pub body_read_timeout: Duration,
    /// Write an access-log line per request (`log.access`).
    pub access_log: bool,
}

/// One worker's forwarder: its upstream pool, and what all workers share.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// This worker's upstream connections for requests hyper serves.
    pub upstreams: Arc<UpstreamPool<HyperConnection>>,
    /// This worker's upstream connections for the lean HTTP/1 path.
    pub lean_upstreams: Arc<UpstreamPool<RawConnection>>,
    /// This worker's multiplexed connections to h2c replicas.
    pub h2_upstreams: Arc<H2Pool>,
    /// Membership and health, for the routing snapshot and passive outcomes.
    pub replicas: RoutingView,
    /// Reloadable settings.
    pub settings: Arc<ArcSwap<ProxySettings>>,
    /// Memory budget of bodies held for retries.
    pub retry_budget: Arc<RetryBudget>,
    /// This worker's hedge budget.
    pub hedge_budget: Arc<HedgeBudget>,
    /// Retries and failures.
    pub metrics: Arc<Metrics>,
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
        if req.method() == Method::OPTIONS && req.uri() == "*" {
            return (options_star(), Forwarded::default());
        }
        if req.method() == Method::CONNECT {
            return (
                failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "CONNECT is not supported: this is a reverse proxy",
                ),
                Forwarded::default(),
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
        let access = {
            let request = HyperRequest {
                uri: &parts.uri,
                headers: &parts.headers,
            };
            let key = request_key(&settings.key, &request, client.ip());
            snapshot.choose(key.as_deref(), &mut targets[..tries]);
            settings.access_log.then(|| {
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                AccessEntry::new(
                    parts.method.as_str(),
                    target,
                    key.as_deref().unwrap_or_default(),
                )
            })
        };
        if targets[0].is_none() {
            return (
                failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy replica is available",
                ),
                Forwarded {
                    access,
                    ..Forwarded::default()
                },
            );
        }

        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::ensure_host(&mut parts.headers, &parts.uri);
        headers::append_forwarded_for(&mut parts.headers, client.ip());
        let https = parts.extensions.get::<Https>().is_some();
        headers::set_forwarded_proto(&mut parts.headers, https);
        let method = parts.method;
        let uri = headers::origin_form(parts.uri);
        let idempotent = is_idempotent(&method);
        let limits = limits_for(&settings.slow_paths, uri.path(), settings.try_timeout);

        // A stream an h2c replica refuses may go to the next replica whatever the
        // method: such requests keep a body that has arrived whole.
        let to_h2c = Protocol::any_h2c(&targets[..tries]);
        let mut _reservation: Option<Reservation> = None;
        let mut body = match Prepared::prepare(
            &self.retry_budget,
            body,
            &settings,
            tries > 1,
            &mut _reservation,
            to_h2c,
        )
        .await
        {
            Ok(body) => body,
            Err(fault) => return (client_fault(fault), Forwarded::default()),
        };
        // A copy of the headers only when a try after a sent one may happen.
        let template: Option<HeaderMap> =
            ((idempotent || to_h2c) && tries > 1 && body.replayable())
                .then(|| parts.headers.clone());
        let mut headers = Some(parts.headers);
        let mut client_upgrade = client_upgrade;

        let hedgeable = settings.hedging.applies_to(method.as_str(), limits.slow) && !upgrade;
        if hedgeable {
            self.hedge_budget.earn(settings.hedging.budget_percent);
        }
        let mut tries = Tries::new(access, idempotent && body.replayable());
        let mut candidates = targets.iter().flatten();
        while let Some(&(name, upstream)) = candidates.next() {
            let checkout = match self
                .connect(&mut tries, name, upstream, &mut in_flight, stages)
                .await
            {
                Ok(checkout) => checkout,
                Err(NoConnection::Queued(answer)) => return (*answer, tries.forwarded),
                Err(NoConnection::Failed | NoConnection::Skipped) => continue,
            };
            let Some(try_headers) = headers.take().or_else(|| template.clone()) else {
                break;
            };
            let Some(try_body) = body.for_try() else {
                break;
            };
            let request = upstream_request(&method, &uri, try_headers, try_body);
            // Moving to another replica needs a request that can be sent again.
            let watch = (idempotent && body.replayable())
                .then(|| settings.suspicion.watch(&upstream.progress, limits));
            let next = candidates.clone().next().copied();
            let hedge = next
                .filter(|_| hedgeable && tries.may_hedge())
                .and_then(|(_, next)| {
                    let (headers, kept) = (template.as_ref()?, body.again()?);
                    let (method, uri) = (&method, &uri);
                    Some(move || {
                        let request = upstream_request(method, uri, headers.clone(), kept);
                        self.start_hyper_hedge(next, request)
                    })
                });
            // Pinned here, once: the wait holds a reference (a future moved into it
            // would be stored twice in this request's state).
            let first = std::pin::pin!(self.send(checkout, request, upstream));
            let waited =
                wait_or_hedge(first, &upstream.progress, limits.try_timeout, watch, hedge).await;
            let progress = body.progress();
            let sent = match waited {
                Ok(Waited::Alone(Ok(answer))) => Ok((answer, name, upstream)),
                Ok(Waited::Alone(Err(failure))) => Err(upload_fault(failure, progress)),
                Ok(Waited::Hedged {
                    first,
                    hedge,
                    timed_out,
                }) => {
                    // The hedge took the next candidate.
                    let Some((next_name, next)) = candidates.next().copied() else {
                        break;
                    };
                    let charged = |e: &SendFailure| match e {
                        SendFailure::Replica(failed) => Some(*failed),
                        _ => None,
                    };
                    match tries.settle_hedge(
                        self,
                        (name, upstream, first),
                        (next_name, next, hedge),
                        timed_out,
                        charged,
                        &mut in_flight,
                    ) {
                        Some(winner) => Ok(winner),
                        None => continue,
                    }
                }
                Err(stalled) => Err(stalled_fault(stalled, progress)),
            };
            match sent {
                Ok((answer, name, upstream)) => {
                    let Answer {
                        mut response,
                        connection,
                        waited,
                    } = answer;
                    stages.response_head.observe(waited.as_secs_f64());
                    let sample = (!limits.slow).then_some(waited);
                    tries.served(self, name, upstream, sample);
                    let upstream_upgrade = (response.status() == StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| hyper::upgrade::on(&mut response));
                    let response = match (client_upgrade.take(), upstream_upgrade, connection) {
                        (Some(client_side), Some(upstream_side), Leg::H1(connection)) => {
                            tokio::spawn(tunnel::run(
                                client_side,
                                upstream_side,
                                connection,
                                in_flight,
                            ));
                            switched(response, upstream)
                        }
                        (_, _, connection) => {
                            // A replica may answer before it read the whole upload (413,
                            // 401): such a connection is not clean for the next request.
                            let clean = body.progress().is_none_or(|p| p.finished());
                            self.respond(response, upstream, connection, in_flight, clean)
                        }
                    };
                    return (response, tries.forwarded);
                }
                Err(SendFailure::Client(fault)) => return (client_fault(fault), tries.forwarded),
                Err(SendFailure::Moved) => tries.moved(self, name, &mut in_flight),
                // Never processed by the replica: any method may go to the next one,
                // if its body can be sent again.
                Err(SendFailure::Refused) => {
                    tries.stale(name, &mut in_flight);
                    if !body.replayable() {
                        tries.last = Some((name, TryFailure::Reset));
                        break;
                    }
                }
                Err(SendFailure::Stale) => {
                    tries.stale(name, &mut in_flight);
                    if !idempotent {
                        break;
                    }
                }
                Err(SendFailure::Replica(failed)) => {
                    tries.failed(self, name, upstream, failed, &mut in_flight);
                    if !(failed == TryFailure::Connect || idempotent) {
                        break;
                    }
                }
            }
        }
        (exhausted(tries.last, limits.try_timeout), tries.forwarded)
    }

    /// Starts the next try on `upstream` with a connection of its protocol: one from
    /// this worker's HTTP/1 pool, or a stream on its multiplexed h2c connections.
    async fn connect<'a>(
        &self,
        tries: &mut Tries<'a>,
        name: &'a NodeId,
        upstream: &Upstream,
        in_flight: &mut InFlight,
        stages: &StageTimers,
    ) -> Result<Connection, NoConnection> {
        let pools = Pools(self, upstream.protocol);
        tries
            .connect(self, &pools, name, upstream, in_flight, stages)
            .await
            .map(|checkout| checkout.upstream)
    }

    /// One try of `request` on `connection`, to `upstream`, in its protocol.
    async fn send(
        &self,
        connection: Connection,
        request: Request<UpstreamBody>,
        upstream: &Upstream,
    ) -> Result<Answer, SendFailure> {
        match connection {
            Connection::H1(checkout) => self.hyper_try(checkout, request, upstream).await,
            Connection::H2(checkout) => self.h2_try(checkout.upstream, request, upstream).await,
        }
    }

    /// One try of `request` as a new stream to the h2c `upstream`. A stream the replica
    /// refused (`REFUSED_STREAM`) or that a `GOAWAY` left unprocessed fails as
    /// [`SendFailure::Refused`]: the replica never saw it. A failure that is more than
    /// one stream's reset (`GOAWAY`, the connection broke) retires the connection.
    ///
    /// A request that a connection closing under it gave back unsent goes out once more
    /// on another connection to the same replica, as on the HTTP/1 path.
    async fn h2_try(
        &self,
        stream: H2Stream,
        request: Request<UpstreamBody>,
        upstream: &Upstream,
    ) -> Result<Answer, SendFailure> {
        let sending = Instant::now();
        let mut stream = stream;
        let mut request = headers::absolute_form(request, upstream.addr);
        let mut resent = false;
        loop {
            let connection = stream.connection;
            let (answer, slot) = stream.send(request).await;
            let mut failed = match answer {
                Ok(response) => {
                    return Ok(Answer {
                        response,
                        connection: Leg::H2(slot),
                        waited: sending.elapsed(),
                    });
                }
                Err(failed) => failed,
            };
            match failed.take_message() {
                Some(unsent) if !resent => {
                    self.h2_upstreams.retire(upstream.instance, connection);
                    resent = true;
                    request = unsent;
                    stream = self
                        .h2_upstreams
                        .stream(upstream.instance, upstream.addr)
                        .await
                        .map_err(|_| SendFailure::Replica(TryFailure::Connect))?
                        .upstream;
                }
                // Given back unsent a second time: still never sent.
                Some(_) => return Err(SendFailure::Refused),
                None => {
                    let e = failed.into_error();
                    let unprocessed = never_processed(&e);
                    if !h2_error(&e).is_some_and(h2::Error::is_reset) {
                        // Not one stream's reset: the connection failed or goes away.
                        self.h2_upstreams.retire(upstream.instance, connection);
                    }
                    tracing::debug!(replica = %upstream.addr, error = %e, unprocessed, "h2c stream failed");
                    return Err(if unprocessed {
                        SendFailure::Refused
                    } else {
                        SendFailure::from(e)
                    });
                }
            }
        }
    }

    /// One try of `request` on `checkout`, to `upstream`: the response head with the
    /// connection it came on. A pooled connection that the replica had already closed
    /// gives the request back unsent; it goes out again on a new connection, uncharged.
    async fn hyper_try(
        &self,
        checkout: Checkout<HyperConnection>,
        request: Request<UpstreamBody>,
        upstream: &Upstream,
    ) -> Result<Answer, SendFailure> {
        let mut connection = checkout.upstream;
        let mut reused = checkout.reused;
        let mut request = request;
        let sending = Instant::now();
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
                Ok(response) => {
                    return Ok(Answer {
                        response,
                        connection: Leg::H1(connection),
                        waited: sending.elapsed(),
                    });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        request = unsent;
                        reused = false;
                        self.upstreams
                            .reconnect(&mut connection, upstream.addr)
                            .await
                            .map_err(|_| SendFailure::Replica(TryFailure::Connect))?;
                    }
                    // The replica closed a kept-alive connection just as the request
                    // went out: a race of keep-alive, not a fault.
                    _ if reused && e.error().is_incomplete_message() => {
                        return Err(SendFailure::Stale);
                    }
                    _ => return Err(SendFailure::from(e.into_error())),
                },
            }
        }
    }

    /// A hedge to `next`, if one may go now: `next` is still in rotation and takes
    /// requests (a suspected one only for its due trial, which the hedge then spends),
    /// and this worker's budget has a hedge left. The hedge is counted as sent and in
    /// `next`'s in-flight for as long as the returned guard lives.
    pub(crate) fn take_hedge(&self, next: &Upstream) -> Option<HedgeInFlight> {
        let go = next.progress.in_rotation()
            && next.progress.admits()
            && self.hedge_budget.spend()
            && next.progress.claim(true);
        go.then(|| {
            self.metrics.hedges.sent.inc();
            HedgeInFlight::at(&next.inflight)
        })
    }

    /// The hedge `request` on `next`, if [`Forwarder::take_hedge`] allows: a
    /// connection from this worker's pool and a [`Forwarder::hyper_try`].
    fn start_hyper_hedge<'r>(
        &'r self,
        next: &'r Upstream,
        request: Request<UpstreamBody>,
    ) -> Option<impl Future<Output = Result<Answer, SendFailure>> + 'r> {
        let counted = self.take_hedge(next)?;
        Some(async move {
            let _counted = counted;
            let refused = |e| match e {
                // At its connection cap: not the replica's fault, not charged.
                ConnectError::QueueTimeout { .. } => SendFailure::Stale,
                _ => SendFailure::Replica(TryFailure::Connect),
            };
            let connection = Pools(self, next.protocol)
                .checkout(next.instance, next.addr)
                .await
                .map_err(refused)?;
            self.send(connection.upstream, request, next).await
        })
    }

    /// The replica's response with hop-by-hop headers dropped and `X-LB-Replica` set;
    /// the connection goes back to this worker's pool when the body is done.
    fn respond(
        &self,
        response: Response<Incoming>,
        upstream: &Upstream,
        connection: Leg,
        in_flight: InFlight,
        reusable: bool,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        parts
            .headers
            .insert(REPLICA_HEADER, upstream.name_header.clone());
        let body = match connection {
            Leg::H1(connection) => {
                let checkin = Checkin {
                    pool: Arc::clone(&self.upstreams),
                    instance: upstream.instance,
                    upstream: connection,
                };
                ProxiedBody::new(body, Some(checkin).filter(|_| reusable), in_flight)
            }
            Leg::H2(stream) => {
                // Whatever the client speaks, hyper writes the head in its version.
                parts.version = Version::HTTP_11;
                ProxiedBody::streamed(body, stream, in_flight)
            }
        };
        Response::from_parts(parts, Body::Streamed(body))
    }
}

/// A worker's connections to replicas that speak one protocol: its HTTP/1 pool or its
/// h2c streams.
struct Pools<'a>(&'a Forwarder, Protocol);

impl Connector<Connection> for Pools<'_> {
    async fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout<Connection>, ConnectError> {
        let Pools(forwarder, protocol) = self;
        Ok(match protocol {
            Protocol::Http1 => {
                let checkout = forwarder.upstreams.checkout(instance, addr).await?;
                Checkout {
                    reused: checkout.reused,
                    upstream: Connection::H1(checkout),
                }
            }
            Protocol::H2c => {
                let checkout = forwarder.h2_upstreams.stream(instance, addr).await?;
                Checkout {
                    reused: checkout.reused,
                    upstream: Connection::H2(checkout),
                }
            }
        })
    }
}

/// A connection for one try, of the replica's protocol.
enum Connection {
    /// From the worker's HTTP/1 pool, checked in when the response is done.
    H1(Checkout<HyperConnection>),
    /// A stream on a multiplexed h2c connection.
    H2(Checkout<H2Stream>),
}

/// What an answered try's response body holds on to upstream.
enum Leg {
    /// The HTTP/1 connection, back to the pool when the body is done.
    H1(HyperConnection),
    /// The h2c stream's slot on its connection.
    H2(StreamSlot),
}

/// A try's response head and the connection it came on.
struct Answer {
    response: Response<Incoming>,
    connection: Leg,
    /// From sending to the response head.
    waited: Duration,
}

/// Whether an h2c stream failed before the replica processed it: refused
/// (`REFUSED_STREAM`, RFC 9113 §8.7) or beyond a `GOAWAY`'s last stream id (h2 then
/// fails it with the `GOAWAY`'s error). Such a request may go to another replica
/// whatever its method: gRPC's transparent retry.
fn never_processed(error: &hyper::Error) -> bool {
    h2_error(error).is_some_and(|h2| {
        h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote())
    })
}

/// The HTTP/2 error behind hyper's, if any.
fn h2_error(error: &hyper::Error) -> Option<&h2::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = e.source();
    }
    None
}

/// The request a try sends.
fn upstream_request(
    method: &Method,
    uri: &hyper::Uri,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers;
    request
}

/// A failed try's failure, blamed on the client when its upload broke.
fn upload_fault(failure: SendFailure, progress: Option<&UploadProgress>) -> SendFailure {
    match failure {
        SendFailure::Replica(TryFailure::Reset) if progress.is_some_and(|p| p.broken()) => {
            SendFailure::Client(ClientFault::BrokenBody(
                "the client's body stream failed".into(),
            ))
        }
        failure => failure,
    }
}

/// A wait that ended without response headers, blamed on the client when its upload
/// had not finished by the try timeout.
fn stalled_fault(stalled: Stalled, progress: Option<&UploadProgress>) -> SendFailure {
    match stalled {
        Stalled::Moved => SendFailure::Moved,
        Stalled::Timeout if progress.is_some_and(|p| !p.finished()) => {
            SendFailure::Client(ClientFault::SlowUpload)
        }
        Stalled::Timeout => SendFailure::Replica(TryFailure::Timeout),
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
