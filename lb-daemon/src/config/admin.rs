//! `[admin]`: limits and access of the admin API.
//!
//! ```toml
//! [admin]
//! max_per_call = 64           # cap on n for /add and /rm
//! max_body_bytes = 65536
//! drain_timeout_ms = 10000    # /rm waits this long for in-flight requests
//! listen = "127.0.0.1:5001"   # optional: the admin API on its own listener
//! token = "a-long-random-secret"   # optional: Bearer token for /add and /rm;
//!                             # required when the admin API is not on loopback
//!
//! [admin.tls]                 # optional: TLS on admin.listen (as [tls])
//! cert = "/etc/lb/admin-cert.pem"
//! key = "/etc/lb/admin-key.pem"
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::rules::{address, invalid, ms, note, ranged};
use super::tls::{Tls, TlsFile, TlsKeys};

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminFile {
    /// Cap on `n`.
    pub max_per_call: Option<u64>,
    /// Cap on an admin request body, in bytes.
    pub max_body_bytes: Option<u64>,
    /// How long `/rm` waits for in-flight requests of a removed replica, ms.
    pub drain_timeout_ms: Option<u64>,
    /// A separate listener for the admin API.
    pub listen: Option<String>,
    /// Bearer token for `/add` and `/rm`.
    pub token: Option<String>,
    /// `[admin.tls]`: TLS on `admin.listen`.
    pub tls: TlsFile,
}

/// Validated `[admin]`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin API's own listener (`admin.listen`); `None`: on the proxy's `listen`.
    pub listen: Option<SocketAddr>,
    /// Bearer token for mutating admin calls (`admin.token`).
    pub token: Option<String>,
    /// Cap on `n` in one admin call (1..=1024, default 64).
    pub max_per_call: usize,
    /// Cap on an admin request body, bytes (64..=16 MiB, default 64 KiB).
    pub max_body_bytes: usize,
    /// How long `/rm` drains a replica before stopping it (default 10,000 ms).
    pub drain_timeout: Duration,
    /// TLS on `admin.listen` (`[admin.tls]`); needs `admin.listen`.
    pub tls: Option<Tls>,
}

impl AdminFile {
    /// Validates the section; `proxy_listen` is where the admin API is served when
    /// `admin.listen` is unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key; a token is refused when shorter than
    /// 16 characters or holding whitespace, and required when the admin API would
    /// listen on an address other than loopback.
    pub(super) fn validate(self, proxy_listen: SocketAddr) -> Result<Admin, ConfigError> {
        let listen = match &self.listen {
            None => None,
            Some(text) => Some(address("admin.listen", text)?),
        };
        let token = match self.token {
            Some(token)
                if token.len() < 16
                    || token.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err(invalid(
                    "admin.token",
                    "(hidden)",
                    "use at least 16 characters without whitespace",
                ));
            }
            other => other,
        };
        let tls = self.tls.validate(&TlsKeys {
            cert: "admin.tls.cert",
            key: "admin.tls.key",
        })?;
        if tls.is_some() && listen.is_none() {
            return Err(invalid(
                "admin.tls.cert",
                "(set)",
                "needs admin.listen: without it the admin API shares the proxy listener and its [tls]",
            ));
        }
        let served_on = listen.unwrap_or(proxy_listen);
        if token.is_none() && !served_on.ip().is_loopback() {
            return Err(invalid(
                "admin.token",
                "(unset)",
                format!(
                    "the admin API would be reachable on {served_on}, not a loopback address; set admin.token, \
                     or put the admin API on loopback with admin.listen = \"127.0.0.1:5001\""
                ),
            ));
        }
        Ok(Admin {
            listen,
            token,
            max_per_call: ranged("admin.max_per_call", self.max_per_call, 64, 1, 1024)?,
            max_body_bytes: ranged(
                "admin.max_body_bytes",
                self.max_body_bytes,
                65_536,
                64,
                16 << 20,
            )?,
            drain_timeout: ms(
                "admin.drain_timeout_ms",
                self.drain_timeout_ms,
                10_000,
                0,
                3_600_000,
            )?,
            tls,
        })
    }
}

impl Admin {
    /// The keys whose change a reload cannot apply (all of them, today).
    pub(super) fn restart_needed(&self, fresh: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        note(&mut changed, "admin.listen", self.listen != fresh.listen);
        note(&mut changed, "admin.token", self.token != fresh.token);
        note(
            &mut changed,
            "admin.max_per_call",
            self.max_per_call != fresh.max_per_call,
        );
        note(
            &mut changed,
            "admin.max_body_bytes",
            self.max_body_bytes != fresh.max_body_bytes,
        );
        note(
            &mut changed,
            "admin.drain_timeout_ms",
            self.drain_timeout != fresh.drain_timeout,
        );
        note(
            &mut changed,
            "admin.tls",
            self.tls.is_some() != fresh.tls.is_some(),
        );
        changed
    }
}
