//! `[shutdown]`: how a stopping daemon treats requests in flight.
//!
//! ```toml
//! [shutdown]
//! grace_ms = 10000
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::rules::{ms, note};

/// `[shutdown]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownFile {
    /// How long in-flight requests may take to finish after SIGTERM, ms.
    pub grace_ms: Option<u64>,
}

/// Validated `[shutdown]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shutdown {
    /// How long in-flight requests may finish after SIGTERM (0..=3,600,000 ms,
    /// default 10,000 ms).
    pub grace: Duration,
}

impl ShutdownFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `shutdown.grace_ms` out of range.
    pub(super) fn validate(self) -> Result<Shutdown, ConfigError> {
        Ok(Shutdown {
            grace: ms("shutdown.grace_ms", self.grace_ms, 10_000, 0, 3_600_000)?,
        })
    }
}

impl Shutdown {
    /// The keys whose change a reload cannot apply (the grace period is read once,
    /// by the workers started at boot).
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        note(&mut changed, "shutdown.grace_ms", self.grace != fresh.grace);
        changed
    }
}
