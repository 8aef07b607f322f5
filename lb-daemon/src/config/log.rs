//! `[log]`: how the daemon writes its log (to stderr), and the access log.
//!
//! ```toml
//! [log]
//! format = "text"             # or "json": one JSON object per line
//! access = false              # true: one line per proxied request (target "access")
//! ```

use serde::Deserialize;

use super::ConfigError;
use super::rules::{invalid, note};

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    /// `"text"` or `"json"`.
    pub format: Option<String>,
    /// Write the access log.
    pub access: Option<bool>,
}

/// Validated `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// One JSON object per line instead of text (default false).
    pub json: bool,
    /// One line per proxied request: method, path, key hash, replica, status,
    /// duration, bytes (default false). Applies live on reload.
    pub access: bool,
}

impl LogFile {
    /// Validates the section.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a `log.format` other than `"text"` or `"json"`.
    pub(super) fn validate(self) -> Result<Log, ConfigError> {
        let json = match self.format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(invalid(
                    "log.format",
                    other,
                    "expected \"text\" or \"json\"",
                ));
            }
        };
        Ok(Log {
            json,
            access: self.access.unwrap_or(false),
        })
    }
}

impl Log {
    /// The keys whose change a reload cannot apply: the format (the log writer is
    /// set up once); `log.access` applies to the next request.
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        note(&mut changed, "log.format", self.json != fresh.json);
        changed
    }
}
