//! The access log (`log.access = true`): one line per proxied request, as a tracing
//! event of target `access`, so it follows `log.format` (text or JSON) and goes
//! through the daemon's background log writer instead of blocking the worker.
//!
//! Fields: `method`, `path` (no query: queries can hold secrets), `key_hash` (xxh3 of
//! the request key, 16 hex digits: which requests share a replica without logging
//! the key itself), `replica`, `status`, `duration_ms` (to the response head on
//! hyper's path, to the end of the body on the lean one), `bytes` (the response
//! body's `Content-Length`, when it has one).

use std::time::Duration;

use hyper::header::HeaderValue;
use lb_core::{HashFunction, Xxh3};

/// What the access log keeps of a request: made when the request is routed, written
/// when it is answered.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    /// The request method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// xxh3 of the request key.
    pub key_hash: u64,
}

impl AccessEntry {
    /// The entry for `method` and `target` (`/path?query`), routed by `key`.
    pub fn new(method: &str, target: &str, key: &[u8]) -> Self {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        Self {
            method: method.to_string(),
            path: path.to_string(),
            key_hash: Xxh3.hash(key),
        }
    }

    /// Writes the line of this request, which `replica` (its `X-LB-Replica` value;
    /// `None`: no replica) answered with `status`.
    pub fn write(
        &self,
        replica: Option<&HeaderValue>,
        status: u16,
        duration: Duration,
        bytes: Option<u64>,
    ) {
        let replica = replica.and_then(|name| name.to_str().ok()).unwrap_or("-");
        tracing::info!(
            target: "access",
            method = %self.method,
            path = %self.path,
            key_hash = %format_args!("{:016x}", self.key_hash),
            replica,
            status,
            duration_ms = duration.as_secs_f64() * 1000.0,
            bytes,
        );
    }
}
