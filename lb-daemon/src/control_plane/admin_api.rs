//! The admin API, served on the proxy's listener. Shapes are those of the Python load
//! balancer this daemon replaces, so its clients keep working.
//!
//! | call | request body | success |
//! |---|---|---|
//! | `GET /rep` | none | `200 {"message":{"N":3,"replicas":["server1","server2","server3"]},"status":"successful"}` |
//! | `POST /add` | `{"n":2,"hostnames":["s4","s5"]}` | `200`, same shape as `/rep`, after the new replicas accept connections |
//! | `DELETE /rm` | `{"n":1,"hostnames":["s4"]}` | `200`, same shape as `/rep`, after the replicas are stopped |
//! | `POST /weight` | `{"hostname":"s4","weight":0}` | `200`, same shape as `/rep`, once the new table is published |
//!
//! `/add` takes `"weights": [3, 1]`, one ring weight (0..=256) per hostname; without it
//! every replica weighs 1. `/weight` sets one replica's weight: 0 drains it (no new key
//! goes to it, in-flight requests finish, it stays a member and keeps being probed).
//!
//! With `runtime.kind = "static"`, `/add` also takes `"addresses": ["ip:port", ...]`,
//! one per hostname (`{"n":1,"hostnames":["api9"],"addresses":["10.0.0.9:8080"]}`):
//! the daemon runs nothing itself, it probes and balances over those addresses.
//!
//! `hostnames` is optional. `/add` starts the named replicas, then generated `serverK`
//! names up to `n`; `/rm` removes the named ones, then the most recently added others
//! up to `n`. A hostname follows DNS label rules: 1–63 letters, digits or `-`, not
//! starting or ending with `-`.
//!
//! Every refused call answers `{"message":"<Error> <reason>","status":"failure"}` and
//! changes nothing:
//! - `400`: malformed JSON, a body that is not an object, an unknown field, `n` missing,
//!   negative or not an integer, `n` above `admin.max_per_call`, more hostnames than `n`
//!   (`Length of hostname list is more than newly added instances` /
//!   `... more than removable instances`), a duplicate, invalid, taken (`/add`) or
//!   unknown (`/rm`) hostname, removing more replicas than exist.
//! - `405`: another method on an admin path. `413`: a body above `admin.max_body_bytes`.
//! - `403`: a browser page of another origin (`Origin` ≠ `Host`): cross-site request
//!   forgery is refused.
//! - `401`/`403`: with `admin.token` set, `/add`, `/rm` and `/weight` without
//!   `Authorization: Bearer <token>`, or with another token.
//! - `500`: a replica could not be started (the others of the call are stopped).
//! - `503`: the daemon is shutting down.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, HOST, HeaderValue, ORIGIN, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use lb_api::{ChangeError, ChangeRequest, ReplicaList, WeightRequest};
use lb_core::NodeId;

use crate::control_plane::pool::{AdminError, ReplicaPool};
use crate::data_plane::reply::{Body, failure, success};

/// Whether `path` is served by the admin API rather than proxied.
pub fn is_admin_path(path: &str) -> bool {
    matches!(path, "/rep" | "/add" | "/rm" | "/weight")
}

/// Serves one admin call. With `token` set, `/add`, `/rm` and `/weight` need
/// `Authorization: Bearer <token>`: 401 without it, 403 with another token.
pub async fn handle(
    pool: &Arc<ReplicaPool>,
    req: Request<Incoming>,
    max_body_bytes: usize,
    token: Option<&str>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let allowed = match path.as_str() {
        "/rep" => Method::GET,
        "/add" | "/weight" => Method::POST,
        _ => Method::DELETE,
    };
    if req.method() != allowed {
        let mut response = failure(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} {} is not allowed; use {allowed}",
                req.method(),
                req.uri().path()
            ),
        );
        if let Ok(value) = HeaderValue::from_str(allowed.as_str()) {
            response.headers_mut().insert(ALLOW, value);
        }
        return response;
    }
    if allowed == Method::GET {
        return replicas(pool);
    }
    if let Some(origin) = foreign_origin(&req) {
        return failure(
            StatusCode::FORBIDDEN,
            format!("cross-origin admin call from {origin} refused"),
        );
    }
    if token.is_none() {
        if let Some(host) = rebound_host(&req) {
            return failure(
                StatusCode::FORBIDDEN,
                format!(
                    "browser admin call to host {host} refused: without admin.token, \
                     pages may call /add, /rm and /weight only through an IP address or localhost"
                ),
            );
        }
    }
    if let Some(expected) = token {
        match req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""))
        {
            None => {
                let mut response = failure(
                    StatusCode::UNAUTHORIZED,
                    "this call needs Authorization: Bearer <admin.token>",
                );
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Some(given) if !bearer_matches(given, expected) => {
                return failure(StatusCode::FORBIDDEN, "the bearer token is not admin.token");
            }
            Some(_) => {}
        }
    }
    let body = match Limited::new(req.into_body(), max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {max_body_bytes} bytes"),
            );
        }
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            );
        }
    };
    if path.as_str() == "/weight" {
        return set_weight(pool, &body).await;
    }
    let change = match parse_change(&body) {
        Ok(change) => change,
        Err(reason) => return failure(StatusCode::BAD_REQUEST, reason),
    };
    let add = allowed == Method::POST;
    if !add && !change.addresses.is_empty() {
        return failure(StatusCode::BAD_REQUEST, "'addresses' is only for /add");
    }
    if !add && !change.weights.is_empty() {
        return failure(StatusCode::BAD_REQUEST, "'weights' is only for /add");
    }
    // The change runs in a task of its own: a client that goes away (Ctrl-C, a
    // timeout during a long drain) cannot cancel it half-way, leaving replicas
    // started or stopped outside the pool. Its answer tells what was done.
    let changing = Arc::clone(pool);
    let call = tokio::spawn(async move {
        if add {
            changing
                .add(change.n, change.names, change.addresses, change.weights)
                .await
        } else {
            changing.remove(change.n, change.names).await
        }
    });
    match call.await {
        Ok(Ok(_)) => replicas(pool),
        Ok(Err(e)) => failure(status_of(&e), e),
        Err(e) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the admin call failed: {e}"),
        ),
    }
}

/// A browser page of another site calling `/add` or `/rm` (cross-site request forgery):
/// the `Origin` it sent, when that names another host and port than the request's
/// `Host`. Clients that send no `Origin` (curl, lbctl, scripts) are not affected.
fn foreign_origin(req: &Request<Incoming>) -> Option<String> {
    let origin = req.headers().get(ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(not text)");
    let host = request_host(req);
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => None,
        _ => Some(origin.to_string()),
    }
}

/// The `host[:port]` the request was sent to: its `Host` header, else the authority of
/// an absolute-form URI.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// A browser call (it sent `Origin`) whose `Host` is a DNS name other than `localhost`:
/// the shape of a DNS-rebinding attack, where a page of `evil.example` re-points its own
/// name at 127.0.0.1 so that its origin and the request's host agree. Without
/// `admin.token` such calls are refused; an IP literal or `localhost` cannot be rebound.
fn rebound_host(req: &Request<Incoming>) -> Option<String> {
    req.headers().get(ORIGIN)?;
    let host = request_host(req)?;
    (!host_cannot_be_rebound(host)).then(|| host.to_string())
}

/// `host[:port]` names an IP address (`127.0.0.1:5000`, `[::1]:5000`) or `localhost`.
fn host_cannot_be_rebound(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `Bearer <token>` with the expected token, compared in constant time.
fn bearer_matches(header: &str, expected: &str) -> bool {
    let Some(given) = header.strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /weight`: one replica's new ring weight.
async fn set_weight(pool: &ReplicaPool, body: &[u8]) -> Response<Body> {
    let request = match WeightRequest::from_json(body) {
        Ok(request) => request,
        Err(reason) => return failure(StatusCode::BAD_REQUEST, reason),
    };
    let Ok(name) = NodeId::new(request.hostname.as_str()) else {
        return failure(
            StatusCode::BAD_REQUEST,
            ChangeError::InvalidHostname(request.hostname.to_string()),
        );
    };
    match pool.set_weight(&name, request.weight).await {
        Ok(_) => replicas(pool),
        Err(e) => failure(status_of(&e), e),
    }
}

fn replicas(pool: &ReplicaPool) -> Response<Body> {
    let names: Vec<String> = pool.names().into_iter().map(|n| n.to_string()).collect();
    success(StatusCode::OK, ReplicaList::new(names))
}

fn status_of(error: &AdminError) -> StatusCode {
    match error {
        AdminError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AdminError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An `/add` or `/rm` body read into the pool's terms.
#[derive(Debug, PartialEq, Eq)]
struct Change {
    n: usize,
    names: Vec<NodeId>,
    addresses: Vec<SocketAddr>,
    weights: Vec<u32>,
}

/// Reads an `/add` or `/rm` body ([`ChangeRequest::from_json`]) into replica ids.
fn parse_change(body: &[u8]) -> Result<Change, ChangeError> {
    let request = ChangeRequest::from_json(body)?;
    let names = request
        .hostnames
        .into_iter()
        .map(|h| NodeId::new(h.as_str()).map_err(|_| ChangeError::InvalidHostname(h.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(Change {
        n: request.n,
        names,
        addresses: request.addresses,
        weights: request.weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_literals_and_localhost_cannot_be_rebound() {
        for host in [
            "127.0.0.1:5000",
            "10.1.2.3",
            "localhost:80",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            assert!(host_cannot_be_rebound(host), "{host}");
        }
        for host in [
            "evil.example:5000",
            "lb.internal",
            "127.0.0.1.nip.io:80",
            "[::1",
            "",
        ] {
            assert!(!host_cannot_be_rebound(host), "{host}");
        }
    }
}
