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

use crate::data_plane::forward::Forwarded;

/// What the access log keeps of a request before it is forwarded.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    /// The request method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
}

impl AccessEntry {
    /// The entry for `method` and `target` (`/path?query`).
    pub fn new(method: &str, target: &str) -> Self {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        Self {
            method: method.to_string(),
            path: path.to_string(),
        }
    }

    /// Writes the line of this request, which `forwarded` served with `status`.
    pub fn write(
        &self,
        forwarded: &Forwarded,
        status: u16,
        duration: Duration,
        bytes: Option<u64>,
    ) {
        let replica = forwarded
            .replica
            .as_ref()
            .and_then(|name| name.to_str().ok())
            .unwrap_or("-");
        let key_hash = forwarded
            .key_hash
            .map_or_else(|| "-".to_string(), |hash| format!("{hash:016x}"));
        tracing::info!(
            target: "access",
            method = %self.method,
            path = %self.path,
            key_hash = %key_hash,
            replica,
            status,
            duration_ms = duration.as_secs_f64() * 1000.0,
            bytes,
        );
    }
}
