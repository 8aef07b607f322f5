//! The reverse proxy: request key → replica → forwarded request, bodies streamed both
//! ways over pooled keep-alive connections (hyper-util's legacy client). A failed try
//! (refused, reset, per-try timeout) is reported to the pool (passive health) and
//! retried on the key's next distinct Up candidate when that is safe (see
//! [`Proxy::forward`]).
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`)
//! are dropped in both directions; `X-Forwarded-For` gets the client's address; the
//! response carries `X-LB-Replica: <hostname>`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lb_core::NodeId;

use crate::key::{KeySource, request_key};
use crate::metrics::{FailureLabels, Metrics};
use crate::pool::ReplicaPool;
use crate::reply::{Body, failure, full};
use crate::snapshot::Snapshot;

/// Header naming the replica that served a proxied response.
pub const REPLICA_HEADER: &str = "x-lb-replica";

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How the proxy forwards and retries.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Request key sources, tried in order, then a random key.
    pub key: Vec<KeySource>,
    /// TCP connect timeout to a replica.
    pub connect_timeout: Duration,
    /// Extra tries on the next distinct Up candidate.
    pub retries: usize,
    /// Per-try deadline for the replica's response headers.
    pub try_timeout: Duration,
    /// Bodies of known length up to this size are buffered so they can be retried.
    pub retry_body_bytes: usize,
}

/// Forwards requests to replicas, retrying failed tries on the next candidate.
#[derive(Debug, Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    /// Swapped whole on a config reload (SIGHUP); each request loads it once.
    settings: Arc<ArcSwap<ProxySettings>>,
    metrics: Arc<Metrics>,
}

/// How one try ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TryFailure {
    /// No connection: nothing reached the replica, any request may be retried.
    Connect,
    /// Reset or closed before response headers: the replica may have seen the request.
    Reset,
    /// No response headers within `try_timeout`.
    Timeout,
}

impl Proxy {
    /// A proxy with pooled keep-alive connections to the replicas.
    pub fn new(settings: ProxySettings, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            metrics,
        }
    }

    /// Applies reloaded settings to the next requests (key sources, retries, per-try
    /// timeout, retry body size). The connect timeout is fixed at start.
    pub fn reconfigure(&self, settings: ProxySettings) {
        self.settings.store(Arc::new(settings));
    }

    /// Sends `req` to the replica that owns its key in `snapshot`, walking to the next
    /// distinct Up candidate when a try fails (at most `retries` more tries).
    ///
    /// A connect failure is retried for any method (no byte reached the replica); a
    /// reset or a per-try timeout only for idempotent methods (GET, HEAD, OPTIONS,
    /// TRACE, PUT, DELETE). Bodies larger than `retry_body_bytes`, or of unknown
    /// length, are streamed and get one try. Every failed try is reported to `pool`
    /// (passive health). When every try failed: `504` if the last one timed out, else
    /// `502`; `503` when no replica is up; all with the failure JSON.
    pub async fn forward(
        &self,
        pool: &Arc<ReplicaPool>,
        snapshot: &Snapshot,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        let settings = self.settings.load_full();
        let key = request_key(&settings.key, &req, client.ip()).into_owned();
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        append_forwarded_for(&mut parts.headers, client.ip());
        let idempotent = matches!(
            parts.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let mut body = match buffer_if_small(body, settings.retry_body_bytes).await {
            Ok(body) => body,
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                );
            }
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let mut last = None;
        for (attempt, (replica, upstream)) in
            snapshot.routes(&key).take(settings.retries + 1).enumerate()
        {
            if attempt > 0 {
                self.metrics.retries.inc();
            }
            let uri = match format!("http://{}{path}", upstream.addr).parse::<Uri>() {
                Ok(uri) => uri,
                Err(e) => {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        format!("cannot forward {path:?}: {e}"),
                    );
                }
            };
            let Some(try_body) = body.for_try() else {
                break;
            };
            let mut request = Request::new(try_body);
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = parts.headers.clone();
            let guard = InFlight::enter(&upstream.inflight);
            let outcome =
                tokio::time::timeout(settings.try_timeout, self.client.request(request)).await;
            let failed = match outcome {
                Ok(Ok(response)) => return respond(response, replica, guard),
                Ok(Err(e)) if e.is_connect() => TryFailure::Connect,
                Ok(Err(_)) => TryFailure::Reset,
                Err(_) => TryFailure::Timeout,
            };
            drop(guard);
            tracing::warn!(%replica, addr = %upstream.addr, failure = ?failed, "try failed");
            pool.report_failure(replica, upstream.instance);
            let kind = match failed {
                TryFailure::Connect => "connect",
                TryFailure::Reset => "reset",
                TryFailure::Timeout => "timeout",
            };
            self.metrics
                .failures
                .get_or_create(&FailureLabels {
                    replica: replica.to_string(),
                    kind: kind.into(),
                })
                .inc();
            last = Some((replica.clone(), failed));
            let retryable = failed == TryFailure::Connect || idempotent;
            if !retryable {
                break;
            }
        }
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
}

/// The replica's response, hop-by-hop headers dropped, `X-LB-Replica` added; the
/// in-flight count drops when the body is done.
fn respond(response: Response<Incoming>, replica: &NodeId, guard: InFlight) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(value) = HeaderValue::from_str(replica.as_str()) {
        parts.headers.insert(REPLICA_HEADER, value);
    }
    let body = body
        .map_err(move |e| {
            let _held = &guard;
            e
        })
        .boxed();
    Response::from_parts(parts, body)
}

/// Counts a request in flight to a replica while alive.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request body for one or more tries.
enum TryBody {
    /// Buffered: every try gets a copy.
    Buffered(Bytes),
    /// Streamed: only the first try gets it.
    Streamed(Option<Incoming>),
}

impl TryBody {
    fn for_try(&mut self) -> Option<Body> {
        match self {
            TryBody::Buffered(bytes) => Some(full(bytes.clone())),
            TryBody::Streamed(body) => body.take().map(BodyExt::boxed),
        }
    }
}

/// Buffers `body` when its length is known and at most `limit`.
async fn buffer_if_small(body: Incoming, limit: usize) -> Result<TryBody, hyper::Error> {
    match body.size_hint().exact() {
        Some(len) if len <= limit as u64 => Ok(TryBody::Buffered(body.collect().await?.to_bytes())),
        _ => Ok(TryBody::Streamed(Some(body))),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {client}"),
        None => client.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-lb-key", "user-1"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-lb-key"]);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, IpAddr::from([10, 0, 0, 1]));
        append_forwarded_for(&mut headers, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }
}
