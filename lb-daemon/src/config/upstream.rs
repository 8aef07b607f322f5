//! `[upstream]`: connections to replicas, retries, passive ejection and the
//! per-worker connection cap with its queue.
//!
//! ```toml
//! [upstream]
//! protocol = "http1"          # or "h2c": HTTP/2 without TLS (gRPC servers)
//! connect_timeout_ms = 1000
//! retries = 2                 # extra tries on the next distinct replica
//! try_timeout_ms = 15000      # per try, until the replica's response headers
//! suspect_after_ms = 220      # floor of the adaptive deadline; 0: no suspicion
//! suspect_latency_multiple = 3  # deadline: this × the replica's recent latency high end
//!                             # (an idempotent request past it, on a replica that sent no
//!                             # headers meanwhile while others did, suspects it and moves on)
//! hedge = true                # a GET/HEAD past that deadline on a replica that answers others
//!                             # also goes to the key's next replica; the first answer wins
//! hedge_budget_percent = 5    # at most this share of GET/HEAD requests is hedged
//!
//! [[upstream.slow_paths]]     # long polls, reports: their own try timeout, and their
//! prefix = "/reports/"        # slowness never suspects a replica nor hedges a request
//! try_timeout_ms = 300000
//! retry_body_bytes = 1048576  # bodies up to this size are buffered for retries
//! retry_buffer_total_bytes = 67108864  # all bodies buffered for retries at once
//! body_read_timeout_ms = 30000     # to read a body that is buffered for retries
//! max_fails = 3               # passive failures in a row that eject a replica (0: off)
//! max_idle_per_replica = 1024 # idle keep-alive connections per replica per worker
//! idle_timeout_ms = 30000     # an idle upstream connection is closed after this
//! max_conns_per_replica = 1024  # open connections per replica per worker (0: no cap)
//! queue_timeout_ms = 5000     # beyond the cap, wait this long for one, then 503
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::rules::invalid;
use super::rules::{ms, note, ranged};
use crate::data_plane::hedge::{self, Hedging};
use crate::data_plane::protocol::Protocol;
use crate::data_plane::slow_paths::SlowPath;
use crate::data_plane::suspicion::{self, Suspicion};

/// `[upstream]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    /// What the daemon speaks to replicas: `http1` (default) or `h2c`.
    pub protocol: Option<String>,
    /// TCP connect timeout to a replica, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Extra tries on the next distinct candidate after a failed one.
    pub retries: Option<u64>,
    /// Per-try deadline for a replica's response headers, ms.
    pub try_timeout_ms: Option<u64>,
    /// Floor of the suspicion deadline, ms (0: no suspicion).
    pub suspect_after_ms: Option<u64>,
    /// Suspicion deadline as a multiple of the replica's recent latency high end.
    pub suspect_latency_multiple: Option<u64>,
    /// Whether slow `GET`/`HEAD` requests are hedged on the key's next replica.
    pub hedge: Option<bool>,
    /// Share of `GET`/`HEAD` requests that may be hedged, percent.
    pub hedge_budget_percent: Option<u64>,
    /// Paths with their own try timeout.
    pub slow_paths: Vec<SlowPathFile>,
    /// Request bodies up to this size (bytes, known length) are buffered so they can be retried.
    pub retry_body_bytes: Option<u64>,
    /// All request bodies buffered for retries at once, bytes.
    pub retry_buffer_total_bytes: Option<u64>,
    /// Deadline to read a body buffered for retries, ms.
    pub body_read_timeout_ms: Option<u64>,
    /// Consecutive passive failures that eject a replica; 0 disables ejection.
    pub max_fails: Option<u64>,
    /// Idle keep-alive connections kept per replica and worker.
    pub max_idle_per_replica: Option<u64>,
    /// Idle upstream connection lifetime, ms.
    pub idle_timeout_ms: Option<u64>,
    /// Open connections per replica and worker; 0: no cap.
    pub max_conns_per_replica: Option<u64>,
    /// Longest wait for a connection under the cap, ms.
    pub queue_timeout_ms: Option<u64>,
}

/// Validated `[upstream]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// What the daemon speaks to replicas (default HTTP/1.1); a static replica's own
    /// `protocol` overrides it.
    pub protocol: Protocol,
    /// Connect timeout to replicas (default 1,000 ms).
    pub connect_timeout: Duration,
    /// Extra tries on other candidates (0..=10, default 2).
    pub retries: usize,
    /// Per-try deadline for response headers (default 15,000 ms).
    pub try_timeout: Duration,
    /// An idempotent request that waited past its replica's deadline (`multiple` ×
    /// the replica's recent latency high end, at least `floor`: defaults 3 and
    /// 220 ms) on a replica which sent no response headers meanwhile, while other
    /// replicas did, suspects it and moves to the key's next replica. See
    /// `data_plane::suspicion`.
    pub suspicion: Suspicion,
    /// Hedged `GET`/`HEAD` requests: past the same deadline on a replica that answers
    /// others, also sent to the key's next replica (default on, budget 5 %). See
    /// `data_plane::hedge`.
    pub hedging: Hedging,
    /// Paths with their own try timeout (at most 64; first matching prefix wins).
    pub slow_paths: Vec<SlowPath>,
    /// Largest request body buffered for retries, bytes (default 1 MiB).
    pub retry_body_bytes: usize,
    /// All bodies buffered for retries at once, bytes (default 64 MiB).
    pub retry_buffer_total_bytes: usize,
    /// Deadline to read a body buffered for retries (default 30,000 ms).
    pub body_read_timeout: Duration,
    /// Consecutive passive failures that eject a replica (0: never; default 3).
    pub max_fails: u32,
    /// Idle upstream connections kept per replica and worker (default 1,024).
    pub max_idle_per_replica: usize,
    /// Idle upstream connection lifetime (default 30,000 ms).
    pub idle_timeout: Duration,
    /// Open connections per replica and worker (0: no cap; default 1,024).
    pub max_conns_per_replica: usize,
    /// Longest wait for a connection under the cap (default 5,000 ms).
    pub queue_timeout: Duration,
}

impl UpstreamFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key out of range.
    pub(super) fn validate(self) -> Result<Upstream, ConfigError> {
        let protocol = protocol("upstream.protocol", self.protocol.as_deref())?.unwrap_or_default();
        Ok(Upstream {
            protocol,
            connect_timeout: ms(
                "upstream.connect_timeout_ms",
                self.connect_timeout_ms,
                1000,
                1,
                600_000,
            )?,
            retries: ranged("upstream.retries", self.retries, 2, 0, 10)?,
            suspicion: suspicion(self.suspect_after_ms, self.suspect_latency_multiple)?,
            slow_paths: slow_paths(self.slow_paths)?,
            hedging: Hedging {
                enabled: self.hedge.unwrap_or(true),
                budget_percent: ranged(
                    "upstream.hedge_budget_percent",
                    self.hedge_budget_percent,
                    u64::from(hedge::DEFAULT_BUDGET_PERCENT),
                    1,
                    100,
                )?,
            },
            try_timeout: ms(
                "upstream.try_timeout_ms",
                self.try_timeout_ms,
                15_000,
                1,
                3_600_000,
            )?,
            retry_body_bytes: ranged(
                "upstream.retry_body_bytes",
                self.retry_body_bytes,
                1 << 20,
                0,
                64 << 20,
            )?,
            retry_buffer_total_bytes: ranged(
                "upstream.retry_buffer_total_bytes",
                self.retry_buffer_total_bytes,
                64 << 20,
                0,
                1 << 40,
            )?,
            body_read_timeout: ms(
                "upstream.body_read_timeout_ms",
                self.body_read_timeout_ms,
                30_000,
                1,
                3_600_000,
            )?,
            max_fails: ranged("upstream.max_fails", self.max_fails, 3, 0, 1000)?,
            max_idle_per_replica: ranged(
                "upstream.max_idle_per_replica",
                self.max_idle_per_replica,
                1024,
                0,
                65_536,
            )?,
            idle_timeout: ms(
                "upstream.idle_timeout_ms",
                self.idle_timeout_ms,
                30_000,
                1,
                3_600_000,
            )?,
            max_conns_per_replica: ranged(
                "upstream.max_conns_per_replica",
                self.max_conns_per_replica,
                1024,
                0,
                1_000_000,
            )?,
            queue_timeout: ms(
                "upstream.queue_timeout_ms",
                self.queue_timeout_ms,
                5_000,
                1,
                3_600_000,
            )?,
        })
    }
}

/// One `[[upstream.slow_paths]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowPathFile {
    /// Path prefix, starting with `/`.
    pub prefix: String,
    /// Per-try deadline on this path, ms.
    pub try_timeout_ms: u64,
}

/// Validates `[[upstream.slow_paths]]`: at most 64 entries, each prefix starting with
/// `/`, each timeout between 1 ms and one hour.
/// The protocol written at `key`, if any.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key` for anything but `http1` and `h2c`.
pub(super) fn protocol(
    key: &'static str,
    value: Option<&str>,
) -> Result<Option<Protocol>, ConfigError> {
    value
        .map(|v| Protocol::parse(v).map_err(|why| invalid(key, v, why)))
        .transpose()
}

fn slow_paths(written: Vec<SlowPathFile>) -> Result<Vec<SlowPath>, ConfigError> {
    if written.len() > 64 {
        return Err(super::rules::invalid(
            "upstream.slow_paths",
            &written.len().to_string(),
            "at most 64 entries",
        ));
    }
    written
        .into_iter()
        .map(|entry| {
            if !entry.prefix.starts_with('/') {
                return Err(super::rules::invalid(
                    "upstream.slow_paths.prefix",
                    &entry.prefix,
                    "must start with '/'",
                ));
            }
            let try_timeout = ms(
                "upstream.slow_paths.try_timeout_ms",
                Some(entry.try_timeout_ms),
                0,
                1,
                3_600_000,
            )?;
            Ok(SlowPath {
                prefix: entry.prefix,
                try_timeout,
            })
        })
        .collect()
}

/// `suspect_after_ms` (0: off) and `suspect_latency_multiple`.
fn suspicion(after_ms: Option<u64>, multiple: Option<u64>) -> Result<Suspicion, ConfigError> {
    let defaults = Suspicion::default();
    let floor = ms(
        "upstream.suspect_after_ms",
        after_ms,
        suspicion::DEFAULT_FLOOR_MS,
        0,
        600_000,
    )?;
    let multiple: u32 = ranged(
        "upstream.suspect_latency_multiple",
        multiple,
        u64::from(defaults.multiple),
        1,
        100,
    )?;
    Ok(Suspicion {
        enabled: !floor.is_zero(),
        // Off, requests on a replica leaving rotation still move after this long.
        floor: if floor.is_zero() {
            defaults.floor
        } else {
            floor
        },
        multiple,
    })
}

impl Upstream {
    /// The keys whose change a reload cannot apply: those of the per-worker
    /// connection pools and of ejection. Retries, the try and body deadlines and
    /// the retry body size apply to the next request.
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let c = &mut changed;
        note(c, "upstream.protocol", self.protocol != fresh.protocol);
        note(
            c,
            "upstream.connect_timeout_ms",
            self.connect_timeout != fresh.connect_timeout,
        );
        note(
            c,
            "upstream.retry_buffer_total_bytes",
            self.retry_buffer_total_bytes != fresh.retry_buffer_total_bytes,
        );
        note(c, "upstream.max_fails", self.max_fails != fresh.max_fails);
        note(
            c,
            "upstream.max_idle_per_replica",
            self.max_idle_per_replica != fresh.max_idle_per_replica,
        );
        note(
            c,
            "upstream.idle_timeout_ms",
            self.idle_timeout != fresh.idle_timeout,
        );
        note(
            c,
            "upstream.max_conns_per_replica",
            self.max_conns_per_replica != fresh.max_conns_per_replica,
        );
        note(
            c,
            "upstream.queue_timeout_ms",
            self.queue_timeout != fresh.queue_timeout,
        );
        changed
    }
}
