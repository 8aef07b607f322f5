//! `[respawn]`: what replaces a failed replica, and how soon a failed respawn is
//! retried.
//!
//! ```toml
//! [respawn]
//! naming = "same"             # or "fresh": replacements get new names (Server-4f2a)
//! backoff_initial_ms = 500
//! backoff_max_ms = 30000
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::rules::{invalid, ms, note};

/// `[respawn]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespawnFile {
    /// `"same"` (default: the replacement keeps the hostname) or `"fresh"`.
    pub naming: Option<String>,
    /// First retry delay after a failed respawn, ms.
    pub backoff_initial_ms: Option<u64>,
    /// Cap of the retry delay, ms.
    pub backoff_max_ms: Option<u64>,
}

/// Validated `[respawn]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Respawn {
    /// Respawned replicas get new generated names (`naming = "fresh"`).
    pub fresh_names: bool,
    /// First delay before a failed respawn is tried again (default 500 ms).
    pub backoff_initial: Duration,
    /// Cap of that delay, which doubles per failure (default 30,000 ms).
    pub backoff_max: Duration,
}

impl RespawnFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: an unknown naming, a delay out of
    /// range, a cap below the first delay.
    pub(super) fn validate(self) -> Result<Respawn, ConfigError> {
        let fresh_names = match self.naming.as_deref() {
            None | Some("same") => false,
            Some("fresh") => true,
            Some(other) => {
                return Err(invalid(
                    "respawn.naming",
                    other,
                    "expected \"same\" or \"fresh\"",
                ));
            }
        };
        let backoff_initial = ms(
            "respawn.backoff_initial_ms",
            self.backoff_initial_ms,
            500,
            1,
            3_600_000,
        )?;
        let backoff_max = ms(
            "respawn.backoff_max_ms",
            self.backoff_max_ms,
            30_000,
            1,
            86_400_000,
        )?;
        if backoff_max < backoff_initial {
            return Err(invalid(
                "respawn.backoff_max_ms",
                &backoff_max.as_millis().to_string(),
                "must be at least respawn.backoff_initial_ms",
            ));
        }
        Ok(Respawn {
            fresh_names,
            backoff_initial,
            backoff_max,
        })
    }
}

impl Respawn {
    /// The keys whose change a reload cannot apply (all of them, today).
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        note(
            &mut changed,
            "respawn.naming",
            self.fresh_names != fresh.fresh_names,
        );
        note(
            &mut changed,
            "respawn.backoff_initial_ms",
            self.backoff_initial != fresh.backoff_initial,
        );
        note(
            &mut changed,
            "respawn.backoff_max_ms",
            self.backoff_max != fresh.backoff_max,
        );
        changed
    }
}
