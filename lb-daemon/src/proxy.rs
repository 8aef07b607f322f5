//! The reverse proxy: request key → replica → forwarded request, bodies streamed both
//! ways over pooled keep-alive connections (hyper-util's legacy client).
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`)
//! are dropped in both directions; `X-Forwarded-For` gets the client's address; the
//! response carries `X-LB-Replica: <hostname>`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::key::{KeySource, request_key};
use crate::reply::{Body, failure};
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

/// Forwards requests to replicas.
#[derive(Debug, Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Incoming>,
    key: Vec<KeySource>,
}

impl Proxy {
    /// A proxy keyed by `key` (tried in order, then random), connecting with `connect_timeout`.
    pub fn new(key: Vec<KeySource>, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { client, key }
    }

    /// Sends `req` to the replica that owns its key in `snapshot`.
    ///
    /// Answers `503` when no replica is up and `502` when the replica cannot be reached
    /// or fails before its response headers, each with the failure JSON.
    pub async fn forward(
        &self,
        snapshot: &Snapshot,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        let key = request_key(&self.key, &req, client.ip());
        let Some((replica, addr)) = snapshot.route(&key) else {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy replica is available",
            );
        };
        let replica = replica.clone();
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let uri = match format!("http://{addr}{path}").parse::<Uri>() {
            Ok(uri) => uri,
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    format!("cannot forward {path:?}: {e}"),
                );
            }
        };
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        strip_hop_by_hop(req.headers_mut());
        append_forwarded_for(req.headers_mut(), client.ip());
        match self.client.request(req).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                if let Ok(value) = HeaderValue::from_str(replica.as_str()) {
                    parts.headers.insert(REPLICA_HEADER, value);
                }
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                tracing::warn!(%replica, %addr, error = %e, "upstream request failed");
                let reason = if e.is_connect() {
                    "is unreachable"
                } else {
                    "failed before answering"
                };
                failure(
                    StatusCode::BAD_GATEWAY,
                    format!("replica {replica} {reason}"),
                )
            }
        }
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
