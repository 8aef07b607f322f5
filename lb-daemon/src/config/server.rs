//! `[server]`: limits of the client-facing listeners and connections.
//!
//! ```toml
//! [server]
//! backlog = 4096              # listen backlog of each worker (capped by somaxconn)
//! first_request_timeout_ms = 5000  # a new connection's first request must arrive by then
//! keepalive_timeout_ms = 60000     # a connection with nothing in flight is closed after this
//! header_read_timeout_ms = 10000   # a started request head must be complete by then
//! http2_keepalive_interval_ms = 20000  # HTTP/2 ping period
//! http2_keepalive_timeout_ms = 10000   # HTTP/2 ping answer deadline
//! max_header_bytes = 65536
//! max_connections = 10000
//! lean_http1 = true           # plain HTTP/1.1 requests skip hyper (see data_plane::h1)
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::rules::{ms, note, ranged};

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    /// Listen backlog of each worker's socket.
    pub backlog: Option<u64>,
    /// Time from accept to a connection's first request, ms.
    pub first_request_timeout_ms: Option<u64>,
    /// Time a connection may stay open with nothing in flight, ms.
    pub keepalive_timeout_ms: Option<u64>,
    /// HTTP/2 ping period, ms.
    pub http2_keepalive_interval_ms: Option<u64>,
    /// HTTP/2 ping answer deadline, ms.
    pub http2_keepalive_timeout_ms: Option<u64>,
    /// Time a client has to complete a request head once started, ms.
    pub header_read_timeout_ms: Option<u64>,
    /// Largest request head, bytes.
    pub max_header_bytes: Option<u64>,
    /// Most client connections open at once.
    pub max_connections: Option<u64>,
    /// Plain HTTP/1.1 requests take the lean path.
    pub lean_http1: Option<bool>,
}

/// Validated `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Listen backlog of each worker's socket (1..=65,535, default 4,096).
    pub backlog: u32,
    /// From accept to a connection's first request (default 5,000 ms).
    pub first_request_timeout: Duration,
    /// Longest time a client connection stays open with nothing in flight
    /// (default 60,000 ms).
    pub keepalive_timeout: Duration,
    /// HTTP/2 ping period (default 20,000 ms).
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 ping answer deadline (default 10,000 ms).
    pub http2_keepalive_timeout: Duration,
    /// Deadline for a started request head, against slowloris (default 10,000 ms).
    pub header_read_timeout: Duration,
    /// Largest request head, bytes (8 KiB..=16 MiB, default 64 KiB).
    pub max_header_bytes: usize,
    /// Most client connections at once (default 10,000).
    pub max_connections: usize,
    /// Plain HTTP/1.1 requests take the lean path (default true).
    pub lean_http1: bool,
}

impl ServerFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key out of range.
    pub(super) fn validate(self) -> Result<Server, ConfigError> {
        Ok(Server {
            backlog: ranged("server.backlog", self.backlog, 4096, 1, 65_535)?,
            first_request_timeout: ms(
                "server.first_request_timeout_ms",
                self.first_request_timeout_ms,
                5_000,
                10,
                3_600_000,
            )?,
            keepalive_timeout: ms(
                "server.keepalive_timeout_ms",
                self.keepalive_timeout_ms,
                60_000,
                10,
                86_400_000,
            )?,
            http2_keepalive_interval: ms(
                "server.http2_keepalive_interval_ms",
                self.http2_keepalive_interval_ms,
                20_000,
                10,
                86_400_000,
            )?,
            http2_keepalive_timeout: ms(
                "server.http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
                10_000,
                10,
                3_600_000,
            )?,
            header_read_timeout: ms(
                "server.header_read_timeout_ms",
                self.header_read_timeout_ms,
                10_000,
                10,
                3_600_000,
            )?,
            max_header_bytes: ranged(
                "server.max_header_bytes",
                self.max_header_bytes,
                65_536,
                8192,
                16 << 20,
            )?,
            max_connections: ranged(
                "server.max_connections",
                self.max_connections,
                10_000,
                1,
                1_000_000,
            )?,
            lean_http1: self.lean_http1.unwrap_or(true),
        })
    }
}

impl Server {
    /// The keys whose change a reload cannot apply (all of them: the workers and
    /// their listeners are built with them at start).
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let c = &mut changed;
        note(c, "server.backlog", self.backlog != fresh.backlog);
        note(
            c,
            "server.first_request_timeout_ms",
            self.first_request_timeout != fresh.first_request_timeout,
        );
        note(
            c,
            "server.keepalive_timeout_ms",
            self.keepalive_timeout != fresh.keepalive_timeout,
        );
        note(
            c,
            "server.http2_keepalive_interval_ms",
            self.http2_keepalive_interval != fresh.http2_keepalive_interval,
        );
        note(
            c,
            "server.http2_keepalive_timeout_ms",
            self.http2_keepalive_timeout != fresh.http2_keepalive_timeout,
        );
        note(
            c,
            "server.header_read_timeout_ms",
            self.header_read_timeout != fresh.header_read_timeout,
        );
        note(
            c,
            "server.max_header_bytes",
            self.max_header_bytes != fresh.max_header_bytes,
        );
        note(
            c,
            "server.max_connections",
            self.max_connections != fresh.max_connections,
        );
        note(c, "server.lean_http1", self.lean_http1 != fresh.lean_http1);
        changed
    }
}
