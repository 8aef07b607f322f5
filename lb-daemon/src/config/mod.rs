//! Configuration: TOML parsed into [`FileConfig`] (serde, unknown keys refused), then
//! validated into [`Config`], whose fields cannot hold a bad value.
//!
//! Every key is optional; `lb-daemon` with no file runs on the defaults below. The
//! README's config reference lists the same keys.
//!
//! ```toml
//! listen = "127.0.0.1:5000"   # proxy and admin API
//! workers = 2                 # data-plane threads; default: the available cores
//! replicas = 3                # started at boot, named server1..server3
//! hash = "xxh3"               # or "sha256", "md5", "nginx" (nginx's `hash ... consistent`)
//! points_per_weight = 160     # virtual nodes per replica
//! key = ["header:x-lb-key"]   # then a random key; also cookie:NAME, query:NAME, path, client_ip
//! state_file = "/var/lib/lb/state.json"   # optional: the replica set survives restarts
//!
//! [admin]
//! max_per_call = 64           # cap on n for /add and /rm
//! max_body_bytes = 65536
//! drain_timeout_ms = 10000    # /rm waits this long for in-flight requests
//! listen = "127.0.0.1:5001"   # optional: the admin API on its own listener
//! token = "a-long-random-secret"   # optional: Bearer token for /add and /rm;
//!                             # required when the admin API is not on loopback
//!
//! [heartbeat]
//! path = "/heartbeat"
//! interval_ms = 1000
//! timeout_ms = 500
//! rise = 2
//! fall = 3
//!
//! [runtime]                   # see `Runtime` for "docker" and "static"
//! kind = "process"
//! command = ["/path/to/replica-server", "--host", "127.0.0.1"]  # default: replica-server beside lb-daemon
//! ready_timeout_ms = 5000
//!
//! [respawn]
//! naming = "same"             # or "fresh": replacements get new names (Server-4f2a)
//! backoff_initial_ms = 500
//! backoff_max_ms = 30000
//!
//! [upstream]
//! connect_timeout_ms = 1000
//! retries = 2                 # extra tries on the next distinct replica
//! try_timeout_ms = 15000      # per try, until the replica's response headers
//! retry_body_bytes = 1048576  # bodies up to this size are buffered for retries
//! retry_buffer_total_bytes = 67108864  # all bodies buffered for retries at once
//! body_read_timeout_ms = 30000     # to read a body that is buffered for retries
//! max_fails = 3               # passive failures in a row that eject a replica (0: off)
//! max_idle_per_replica = 1024 # idle keep-alive connections per replica per worker
//! idle_timeout_ms = 30000     # an idle upstream connection is closed after this
//! max_conns_per_replica = 1024  # open connections per replica per worker (0: no cap)
//! queue_timeout_ms = 5000     # beyond the cap, wait this long for one, then 503
//!
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
//!
//! [shutdown]
//! grace_ms = 10000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_core::{HashAlgorithm, HealthConfig};
use serde::Deserialize;

use crate::data_plane::key::KeySource;

mod runtime;

pub use runtime::{Runtime, RuntimeFile, StaticReplicaFile};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`FileConfig`] (syntax, unknown key, wrong type);
    /// the message names the key and its line.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key.
        message: String,
    },
    /// A value parsed but is out of range.
    #[error("invalid config: `{key}` = {value}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `heartbeat.interval_ms`.
        key: &'static str,
        /// The rejected value as written.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Address of the proxy and admin listener.
    pub listen: Option<String>,
    /// Data-plane worker threads.
    pub workers: Option<u64>,
    /// Replicas to start at boot.
    pub replicas: Option<u64>,
    /// Hash function name.
    pub hash: Option<String>,
    /// Points per unit of weight.
    pub points_per_weight: Option<u64>,
    /// Request key sources, in order.
    pub key: Option<Vec<String>>,
    /// Path of the state file.
    pub state_file: Option<PathBuf>,
    /// `[admin]`.
    pub admin: AdminFile,
    /// `[heartbeat]`.
    pub heartbeat: HeartbeatFile,
    /// `[runtime]`.
    pub runtime: RuntimeFile,
    /// `[respawn]`.
    pub respawn: RespawnFile,
    /// `[upstream]`.
    pub upstream: UpstreamFile,
    /// `[server]`.
    pub server: ServerFile,
    /// `[shutdown]`.
    pub shutdown: ShutdownFile,
}

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
}

/// `[heartbeat]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatFile {
    /// Path probed on each replica.
    pub path: Option<String>,
    /// Probe period, ms.
    pub interval_ms: Option<u64>,
    /// Probe timeout, ms.
    pub timeout_ms: Option<u64>,
    /// Successes to come Up.
    pub rise: Option<u64>,
    /// Failures to go Down.
    pub fall: Option<u64>,
}

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

/// `[upstream]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    /// TCP connect timeout to a replica, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Extra tries on the next distinct candidate after a failed one.
    pub retries: Option<u64>,
    /// Per-try deadline for a replica's response headers, ms.
    pub try_timeout_ms: Option<u64>,
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

/// `[server]` as written: limits of the client-facing listener.
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

/// `[shutdown]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownFile {
    /// How long in-flight requests may take to finish after SIGTERM, ms.
    pub grace_ms: Option<u64>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy and admin listener.
    pub listen: SocketAddr,
    /// Data-plane worker threads (1..=256).
    pub workers: usize,
    /// Replicas started at boot (`server1..`).
    pub replicas: usize,
    /// Hash for points and keys.
    pub hash: HashAlgorithm,
    /// Points per unit of weight (1..=10000).
    pub points_per_weight: u32,
    /// Request key sources, tried in order before the random fallback.
    pub key: Vec<KeySource>,
    /// Where the replica set is saved and restored from, if anywhere.
    pub state_file: Option<PathBuf>,
    /// The admin API's own listener (`admin.listen`); `None`: on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token for mutating admin calls (`admin.token`).
    pub admin_token: Option<String>,
    /// Cap on `n` in one admin call.
    pub max_per_call: usize,
    /// Cap on an admin request body, bytes.
    pub max_body_bytes: usize,
    /// Heartbeat settings.
    pub heartbeat: Heartbeat,
    /// Replica runtime settings.
    pub runtime: Runtime,
    /// Respawned replicas get new generated names (`respawn.naming = "fresh"`).
    pub fresh_names: bool,
    /// Respawn backoff: first delay.
    pub backoff_initial: Duration,
    /// Respawn backoff: cap.
    pub backoff_max: Duration,
    /// Connect timeout to replicas.
    pub connect_timeout: Duration,
    /// Extra tries on other candidates (0..=10).
    pub retries: usize,
    /// Per-try deadline for response headers.
    pub try_timeout: Duration,
    /// Largest request body buffered for retries, bytes.
    pub retry_body_bytes: usize,
    /// All bodies buffered for retries at once, bytes.
    pub retry_buffer_total_bytes: usize,
    /// Deadline to read a body buffered for retries.
    pub body_read_timeout: Duration,
    /// Consecutive passive failures that eject a replica (0: never).
    pub max_fails: u32,
    /// Idle upstream connections kept per replica and worker.
    pub max_idle_per_replica: usize,
    /// Idle upstream connection lifetime.
    pub upstream_idle_timeout: Duration,
    /// Open connections per replica and worker (0: no cap).
    pub max_conns_per_replica: usize,
    /// Longest wait for a connection under the cap.
    pub queue_timeout: Duration,
    /// Listen backlog of each worker's socket.
    pub backlog: u32,
    /// From accept to a connection's first request.
    pub first_request_timeout: Duration,
    /// Longest time a client connection stays open with nothing in flight.
    pub keepalive_timeout: Duration,
    /// Plain HTTP/1.1 requests take the lean path (`server.lean_http1`, default true).
    pub lean_http1: bool,
    /// HTTP/2 ping period.
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 ping answer deadline.
    pub http2_keepalive_timeout: Duration,
    /// Deadline for a started request head (slowloris).
    pub header_read_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// Most client connections at once.
    pub max_connections: usize,
    /// How long `/rm` drains a replica before stopping it.
    pub drain_timeout: Duration,
    /// Shutdown grace period.
    pub grace: Duration,
}

/// Validated `[heartbeat]`.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Path probed, starting with `/`.
    pub path: String,
    /// Probe period.
    pub interval: Duration,
    /// Probe timeout (≤ interval).
    pub timeout: Duration,
    /// Rise/fall thresholds.
    pub health: HealthConfig,
}

impl Config {
    /// Reads, parses and validates a TOML file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the key at fault.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        Self::validate(file)
    }

    /// The defaults (what `lb-daemon` runs without `--config`).
    ///
    /// # Errors
    /// Only if the default replica command cannot be located.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::validate(FileConfig::default())
    }

    /// Turns a parsed file into a validated config.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(file: FileConfig) -> Result<Self, ConfigError> {
        let listen_text = file.listen.unwrap_or_else(|| "127.0.0.1:5000".into());
        let listen = listen_text.parse().map_err(|e| {
            invalid(
                "listen",
                &listen_text,
                format!("not an ip:port address ({e})"),
            )
        })?;
        let replicas = ranged("replicas", file.replicas, 3, 0, 1024)?;
        let hash_text = file.hash.unwrap_or_else(|| "xxh3".into());
        let hash = hash_text.parse().map_err(|_| {
            invalid(
                "hash",
                &hash_text,
                "expected \"xxh3\", \"sha256\", \"md5\" or \"nginx\"",
            )
        })?;
        let points_per_weight =
            ranged("points_per_weight", file.points_per_weight, 160, 1, 10_000)?;
        let key = file
            .key
            .unwrap_or_else(|| vec!["header:x-lb-key".into()])
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|reason: crate::data_plane::key::KeySourceError| {
                        invalid("key", s, reason.to_string())
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin_listen: Option<SocketAddr> = match &file.admin.listen {
            None => None,
            Some(text) => Some(text.parse().map_err(|e| {
                invalid(
                    "admin.listen",
                    text,
                    format!("not an ip:port address ({e})"),
                )
            })?),
        };
        let admin_token = match file.admin.token.clone() {
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
        let admin_address = admin_listen.unwrap_or(listen);
        if admin_token.is_none() && !admin_address.ip().is_loopback() {
            return Err(invalid(
                "admin.token",
                "(unset)",
                format!(
                    "the admin API would be reachable on {admin_address}, not a loopback address; set admin.token, \
                     or put the admin API on loopback with admin.listen = \"127.0.0.1:5001\""
                ),
            ));
        }
        let max_per_call = ranged("admin.max_per_call", file.admin.max_per_call, 64, 1, 1024)?;
        let max_body_bytes = ranged(
            "admin.max_body_bytes",
            file.admin.max_body_bytes,
            65_536,
            64,
            16 << 20,
        )?;

        let hb = file.heartbeat;
        let path = hb.path.unwrap_or_else(|| "/heartbeat".into());
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(invalid(
                "heartbeat.path",
                &path,
                "must start with / and hold no whitespace",
            ));
        }
        let interval = ms("heartbeat.interval_ms", hb.interval_ms, 1000, 10, 3_600_000)?;
        let timeout = ms("heartbeat.timeout_ms", hb.timeout_ms, 500, 1, 3_600_000)?;
        if timeout > interval {
            return Err(invalid(
                "heartbeat.timeout_ms",
                &timeout.as_millis().to_string(),
                "must not exceed heartbeat.interval_ms",
            ));
        }
        let rise = ranged("heartbeat.rise", hb.rise, 2, 1, 1000)?;
        let fall = ranged("heartbeat.fall", hb.fall, 3, 1, 1000)?;
        let health = HealthConfig::new(rise, fall).map_err(|e| {
            invalid(
                "heartbeat",
                &format!("rise {rise}, fall {fall}"),
                e.to_string(),
            )
        })?;

        let runtime = runtime::validate(file.runtime)?;
        let backoff_initial = ms(
            "respawn.backoff_initial_ms",
            file.respawn.backoff_initial_ms,
            500,
            1,
            3_600_000,
        )?;
        let backoff_max = ms(
            "respawn.backoff_max_ms",
            file.respawn.backoff_max_ms,
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
        let default_workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        Ok(Config {
            listen,
            workers: ranged("workers", file.workers, default_workers.min(256), 1, 256)?,
            replicas,
            hash,
            points_per_weight,
            key,
            max_per_call,
            max_body_bytes,
            admin_listen,
            admin_token,
            state_file: match file.state_file {
                Some(path) if path.as_os_str().is_empty() => {
                    return Err(invalid("state_file", "\"\"", "must be a file path"));
                }
                other => other,
            },
            heartbeat: Heartbeat {
                path,
                interval,
                timeout,
                health,
            },
            runtime,
            fresh_names: match file.respawn.naming.as_deref() {
                None | Some("same") => false,
                Some("fresh") => true,
                Some(other) => {
                    return Err(invalid(
                        "respawn.naming",
                        other,
                        "expected \"same\" or \"fresh\"",
                    ));
                }
            },
            backoff_initial,
            backoff_max,
            connect_timeout: ms(
                "upstream.connect_timeout_ms",
                file.upstream.connect_timeout_ms,
                1000,
                1,
                600_000,
            )?,
            retries: ranged("upstream.retries", file.upstream.retries, 2, 0, 10)?,
            try_timeout: ms(
                "upstream.try_timeout_ms",
                file.upstream.try_timeout_ms,
                15_000,
                1,
                3_600_000,
            )?,
            retry_body_bytes: ranged(
                "upstream.retry_body_bytes",
                file.upstream.retry_body_bytes,
                1 << 20,
                0,
                64 << 20,
            )?,
            retry_buffer_total_bytes: ranged(
                "upstream.retry_buffer_total_bytes",
                file.upstream.retry_buffer_total_bytes,
                64 << 20,
                0,
                1 << 40,
            )?,
            body_read_timeout: ms(
                "upstream.body_read_timeout_ms",
                file.upstream.body_read_timeout_ms,
                30_000,
                1,
                3_600_000,
            )?,
            max_fails: ranged("upstream.max_fails", file.upstream.max_fails, 3, 0, 1000)?,
            max_idle_per_replica: ranged(
                "upstream.max_idle_per_replica",
                file.upstream.max_idle_per_replica,
                1024,
                0,
                65_536,
            )?,
            upstream_idle_timeout: ms(
                "upstream.idle_timeout_ms",
                file.upstream.idle_timeout_ms,
                30_000,
                1,
                3_600_000,
            )?,
            max_conns_per_replica: ranged(
                "upstream.max_conns_per_replica",
                file.upstream.max_conns_per_replica,
                1024,
                0,
                1_000_000,
            )?,
            queue_timeout: ms(
                "upstream.queue_timeout_ms",
                file.upstream.queue_timeout_ms,
                5_000,
                1,
                3_600_000,
            )?,
            backlog: ranged("server.backlog", file.server.backlog, 4096, 1, 65_535)?,
            first_request_timeout: ms(
                "server.first_request_timeout_ms",
                file.server.first_request_timeout_ms,
                5_000,
                10,
                3_600_000,
            )?,
            keepalive_timeout: ms(
                "server.keepalive_timeout_ms",
                file.server.keepalive_timeout_ms,
                60_000,
                10,
                86_400_000,
            )?,
            lean_http1: file.server.lean_http1.unwrap_or(true),
            http2_keepalive_interval: ms(
                "server.http2_keepalive_interval_ms",
                file.server.http2_keepalive_interval_ms,
                20_000,
                10,
                86_400_000,
            )?,
            http2_keepalive_timeout: ms(
                "server.http2_keepalive_timeout_ms",
                file.server.http2_keepalive_timeout_ms,
                10_000,
                10,
                3_600_000,
            )?,
            header_read_timeout: ms(
                "server.header_read_timeout_ms",
                file.server.header_read_timeout_ms,
                10_000,
                10,
                3_600_000,
            )?,
            max_header_bytes: ranged(
                "server.max_header_bytes",
                file.server.max_header_bytes,
                65_536,
                8192,
                16 << 20,
            )?,
            max_connections: ranged(
                "server.max_connections",
                file.server.max_connections,
                10_000,
                1,
                1_000_000,
            )?,
            drain_timeout: ms(
                "admin.drain_timeout_ms",
                file.admin.drain_timeout_ms,
                10_000,
                0,
                3_600_000,
            )?,
            grace: ms(
                "shutdown.grace_ms",
                file.shutdown.grace_ms,
                10_000,
                0,
                3_600_000,
            )?,
        })
    }
}

pub(crate) fn invalid(key: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn ranged<T: TryFrom<u64>>(
    key: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<T, ConfigError> {
    let value = value.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(invalid(
            key,
            &value.to_string(),
            format!("must be between {min} and {max}"),
        ));
    }
    T::try_from(value).map_err(|_| invalid(key, &value.to_string(), "too large for this machine"))
}

pub(crate) fn ms(
    key: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    ranged::<u64>(key, value, default, min, max).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = "[runtime]\ncommand = [\"/bin/true\"]\n";

    #[test]
    fn a_full_file_validates() {
        let text = format!(
            "listen = \"127.0.0.1:0\"\nreplicas = 2\nhash = \"md5\"\nkey = [\"cookie:sid\", \"path\"]\n{CMD}[heartbeat]\ninterval_ms = 200\ntimeout_ms = 100\nrise = 1\nfall = 2\n"
        );
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.replicas, 2);
        assert_eq!(config.hash, HashAlgorithm::Md5);
        assert_eq!(config.heartbeat.interval, Duration::from_millis(200));
        assert_eq!(config.heartbeat.health.fall(), 2);
        assert_eq!(config.key.len(), 2);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse(&format!("{CMD}[heartbeat]\nintervall_ms = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("intervall_ms"), "{err}");
        let err = Config::parse("replica = 3").unwrap_err().to_string();
        assert!(err.contains("replica"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("replicas = -1", "replicas"),
            ("listen = \"localhost\"", "listen"),
            ("hash = \"crc\"", "hash"),
            ("key = [\"header:\"]", "key"),
            (
                "[heartbeat]\ninterval_ms = 100\ntimeout_ms = 200",
                "heartbeat.timeout_ms",
            ),
            ("[heartbeat]\nfall = 0", "heartbeat.fall"),
            ("[admin]\nmax_per_call = 0", "admin.max_per_call"),
            ("[runtime]\nkind = \"vm\"", "runtime.kind"),
            ("[runtime]\ncommand = []", "runtime.command"),
        ] {
            let err = Config::parse(&format!(
                "{text}\n{}",
                if text.contains("[runtime]") { "" } else { CMD }
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }
}
