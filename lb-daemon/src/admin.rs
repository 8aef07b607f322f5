//! The admin API, served on the proxy's listener. Shapes are those of the Python load
//! balancer this daemon replaces, so its clients keep working.
//!
//! | call | request body | success |
//! |---|---|---|
//! | `GET /rep` | none | `200 {"message":{"N":3,"replicas":["server1","server2","server3"]},"status":"successful"}` |
//! | `POST /add` | `{"n":2,"hostnames":["s4","s5"]}` | `200`, same shape as `/rep`, after the new replicas accept connections |
//! | `DELETE /rm` | `{"n":1,"hostnames":["s4"]}` | `200`, same shape as `/rep`, after the replicas are stopped |
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
//! - `401`/`403`: with `admin.token` set, `/add` and `/rm` without
//!   `Authorization: Bearer <token>`, or with another token.
//! - `500`: a replica could not be started (the others of the call are stopped).
//! - `503`: the daemon is shutting down.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, HOST, HeaderValue, ORIGIN, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use lb_core::NodeId;
use serde_json::{Value, json};

use crate::pool::{AdminError, ReplicaPool};
use crate::reply::{Body, failure, success};

/// Whether `path` is served by the admin API rather than proxied.
pub fn is_admin_path(path: &str) -> bool {
    matches!(path, "/rep" | "/add" | "/rm")
}

/// Serves one admin call. With `token` set, `/add` and `/rm` need
/// `Authorization: Bearer <token>`: 401 without it, 403 with another token.
pub async fn handle(
    pool: &Arc<ReplicaPool>,
    req: Request<Incoming>,
    max_body_bytes: usize,
    token: Option<&str>,
) -> Response<Body> {
    let allowed = match req.uri().path() {
        "/rep" => Method::GET,
        "/add" => Method::POST,
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
                     pages may call /add and /rm only through an IP address or localhost"
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
    let change = match parse_change(&body) {
        Ok(change) => change,
        Err(reason) => return failure(StatusCode::BAD_REQUEST, reason),
    };
    let result = if allowed == Method::POST {
        pool.add(change.n, change.names, change.addresses).await
    } else if !change.addresses.is_empty() {
        return failure(StatusCode::BAD_REQUEST, "'addresses' is only for /add");
    } else {
        pool.remove(change.n, change.names).await
    };
    match result {
        Ok(_) => replicas(pool),
        Err(e) => failure(status_of(&e), e),
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

fn replicas(pool: &ReplicaPool) -> Response<Body> {
    let names: Vec<String> = pool.names().into_iter().map(|n| n.to_string()).collect();
    success(
        StatusCode::OK,
        json!({ "N": names.len(), "replicas": names }),
    )
}

fn status_of(error: &AdminError) -> StatusCode {
    match error {
        AdminError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AdminError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Parses `{"n": N, "hostnames": [..]}`.
/// A parsed `/add` or `/rm` body.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    /// How many replicas to add or remove.
    pub n: usize,
    /// Hostnames named by the caller (validated).
    pub names: Vec<NodeId>,
    /// `/add` on the static runtime: one `ip:port` per hostname.
    pub addresses: Vec<SocketAddr>,
}

/// Parses an `/add` or `/rm` body, `{"n": N, "hostnames": [..], "addresses": [..]}`.
///
/// # Errors
/// A one-line reason (malformed JSON, unknown field, bad `n`, invalid hostname or
/// address, mismatched counts). Never panics, whatever the bytes.
pub fn parse_change(body: &[u8]) -> Result<Change, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("the body must be a JSON object like {\"n\": 1, \"hostnames\": []}".into());
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "n" | "hostnames" | "addresses"))
    {
        return Err(format!(
            "unknown field '{unknown}'; expected 'n', 'hostnames' and (static runtime) 'addresses'"
        ));
    }
    let n = match fields.get("n") {
        None => return Err("'n' is missing".into()),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("'n' must be a non-negative integer, not {v}"))?,
    };
    let names = match fields.get("hostnames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => hostname(s),
                other => Err(format!("hostnames must be strings, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "'hostnames' must be a list of strings, not {other}"
            ));
        }
    };
    let addresses = match fields.get("addresses") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|s| s.parse::<SocketAddr>().ok())
                    .ok_or_else(|| format!("addresses must be \"ip:port\" strings, not {item}"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "'addresses' must be a list of \"ip:port\" strings, not {other}"
            ));
        }
    };
    if !addresses.is_empty() && addresses.len() != names.len() {
        return Err(format!(
            "give one address per hostname: {} hostnames, {} addresses",
            names.len(),
            addresses.len()
        ));
    }
    Ok(Change {
        n,
        names,
        addresses,
    })
}

/// A replica hostname under DNS label rules (RFC 1123): 1–63 letters, digits and `-`,
/// neither starting nor ending with `-`. Checked before a name reaches Docker or a
/// command line.
fn hostname(s: &str) -> Result<NodeId, String> {
    let valid = (1..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !valid {
        return Err(format!(
            "invalid hostname {s:?}: use 1-63 letters, digits or '-', not starting or ending with '-'"
        ));
    }
    NodeId::new(s).map_err(|e| e.to_string())
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

    #[test]
    fn parses_the_python_clients_body() {
        let change = parse_change(br#"{"n":2,"hostnames":["s4","Server-4f2a"]}"#).unwrap();
        assert_eq!(change.n, 2);
        assert_eq!(
            change.names,
            vec![
                NodeId::new("s4").unwrap(),
                NodeId::new("Server-4f2a").unwrap()
            ]
        );
        assert_eq!(parse_change(br#"{"n":0}"#).unwrap().names, vec![]);
        let fixed = parse_change(br#"{"n":1,"hostnames":["api9"],"addresses":["127.0.0.1:9001"]}"#)
            .unwrap();
        assert_eq!(
            fixed.addresses,
            vec!["127.0.0.1:9001".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn refuses_bad_bodies_with_a_reason() {
        for (body, says) in [
            (&b"{"[..], "malformed JSON"),
            (b"[1]", "JSON object"),
            (br#"{"hostnames":[]}"#, "'n' is missing"),
            (br#"{"n":-1}"#, "non-negative"),
            (br#"{"n":1.5}"#, "non-negative"),
            (br#"{"n":"2"}"#, "non-negative"),
            (br#"{"n":1,"hostnames":"s1"}"#, "list of strings"),
            (br#"{"n":1,"hostnames":[1]}"#, "must be strings"),
            (br#"{"n":1,"hostnames":["bad name"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["-x"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["x_y"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["a.b"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostname":["x"]}"#, "unknown field"),
            (
                br#"{"n":1,"hostnames":["a"],"addresses":["nowhere"]}"#,
                "ip:port",
            ),
            (
                br#"{"n":2,"hostnames":["a","b"],"addresses":["127.0.0.1:1"]}"#,
                "one address per hostname",
            ),
        ] {
            let err = parse_change(body).unwrap_err();
            assert!(
                err.contains(says),
                "{} gave {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
