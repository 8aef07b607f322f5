//! `[heartbeat]`: how every replica is probed, and the rise/fall thresholds of its
//! health (lb-core's [`HealthConfig`]).
//!
//! ```toml
//! [heartbeat]
//! kind = "http"               # GET <path> in the replica's protocol (HTTP/1.1 or h2c);
//!                             # "grpc": grpc.health.v1.Health/Check passes on SERVING;
//!                             # "tcp": a connection that opens passes
//! path = "/heartbeat"         # for "http"
//! service = ""                # for "grpc": the service asked about ("": the server)
//! interval_ms = 1000
//! timeout_ms = 500
//! rise = 2
//! fall = 3
//! ```

use std::time::Duration;

use lb_core::HealthConfig;
use serde::Deserialize;

use super::ConfigError;
use super::rules::{invalid, ms, note, ranged};

/// `[heartbeat]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatFile {
    /// What a probe does: `http` (default), `grpc` or `tcp`.
    pub kind: Option<String>,
    /// Path probed on each replica (`http`).
    pub path: Option<String>,
    /// Service named in `grpc.health.v1.HealthCheckRequest` (`grpc`).
    pub service: Option<String>,
    /// Probe period, ms.
    pub interval_ms: Option<u64>,
    /// Probe timeout, ms.
    pub timeout_ms: Option<u64>,
    /// Successes to come Up.
    pub rise: Option<u64>,
    /// Failures to go Down.
    pub fall: Option<u64>,
}

/// What one heartbeat probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `GET <path>` in the replica's protocol (HTTP/1.1, or HTTP/2 to an h2c
    /// replica); a 2xx answer passes.
    Http,
    /// `grpc.health.v1.Health/Check` over h2c for `heartbeat.service`; passes when
    /// the call succeeds with status `SERVING` (grpc/grpc `doc/health-checking.md`).
    Grpc,
    /// A TCP connection to the replica's address; opening passes (for replicas that
    /// serve neither an HTTP path nor gRPC health).
    Tcp,
}

/// Validated `[heartbeat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// What a probe does (default [`ProbeKind::Http`]).
    pub kind: ProbeKind,
    /// Path probed, starting with `/` (default `/heartbeat`).
    pub path: String,
    /// The gRPC service asked about (default `""`: the whole server).
    pub service: String,
    /// Probe period (10..=3,600,000 ms, default 1,000 ms).
    pub interval: Duration,
    /// Probe timeout (≤ interval, default 500 ms).
    pub timeout: Duration,
    /// Rise/fall thresholds (1..=1000 each, default 2 and 3).
    pub health: HealthConfig,
}

impl HeartbeatFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: a path without a leading `/` or with
    /// whitespace, a timeout above the interval, a threshold out of range.
    pub(super) fn validate(self) -> Result<Heartbeat, ConfigError> {
        let kind = match self.kind.as_deref() {
            None | Some("http") => ProbeKind::Http,
            Some("tcp") => ProbeKind::Tcp,
            Some("grpc") => ProbeKind::Grpc,
            Some(other) => {
                return Err(invalid(
                    "heartbeat.kind",
                    other,
                    "expected \"http\", \"grpc\" or \"tcp\"",
                ));
            }
        };
        let service = self.service.unwrap_or_default();
        if service.len() > 1024 || service.chars().any(char::is_control) {
            return Err(invalid(
                "heartbeat.service",
                &service,
                "at most 1024 bytes, no control characters",
            ));
        }
        let path = self.path.unwrap_or_else(|| "/heartbeat".into());
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(invalid(
                "heartbeat.path",
                &path,
                "must start with / and hold no whitespace",
            ));
        }
        let interval = ms(
            "heartbeat.interval_ms",
            self.interval_ms,
            1000,
            10,
            3_600_000,
        )?;
        let timeout = ms("heartbeat.timeout_ms", self.timeout_ms, 500, 1, 3_600_000)?;
        if timeout > interval {
            return Err(invalid(
                "heartbeat.timeout_ms",
                &timeout.as_millis().to_string(),
                "must not exceed heartbeat.interval_ms",
            ));
        }
        let rise = ranged("heartbeat.rise", self.rise, 2, 1, 1000)?;
        let fall = ranged("heartbeat.fall", self.fall, 3, 1, 1000)?;
        let health = HealthConfig::new(rise, fall).map_err(|e| {
            invalid(
                "heartbeat",
                &format!("rise {rise}, fall {fall}"),
                e.to_string(),
            )
        })?;
        Ok(Heartbeat {
            kind,
            path,
            service,
            interval,
            timeout,
            health,
        })
    }
}

impl Heartbeat {
    /// The keys whose change a reload cannot apply: the thresholds (each replica's
    /// health state was built with them); kind, path, interval and timeout apply at
    /// the next probe round.
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        note(
            &mut changed,
            "heartbeat.rise",
            self.health.rise() != fresh.health.rise(),
        );
        note(
            &mut changed,
            "heartbeat.fall",
            self.health.fall() != fresh.health.fall(),
        );
        changed
    }
}
