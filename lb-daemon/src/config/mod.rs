//! Configuration: TOML parsed into [`FileConfig`] (serde, unknown keys refused), then
//! validated into [`Config`], whose fields cannot hold a bad value.
//!
//! Every key is optional; `lb-daemon` with no file runs on the defaults. The root
//! table's keys are below; each section has its own module with its keys, its
//! defaults and its validation: [`admin`], [`heartbeat`], [`runtime`], [`respawn`],
//! [`upstream`], [`server`], [`shutdown`], [`tls`], [`log`]; the routing keys of the root
//! table are checked in [`routing`]. The README's config reference lists the
//! same keys.
//!
//! ```toml
//! listen = "127.0.0.1:5000"   # proxy and admin API
//! workers = 2                 # data-plane threads; default: the available cores
//! replicas = 3                # started at boot, named server1..server3
//! hash = "xxh3"               # or "sha256", "md5", "nginx" (nginx's `hash ... consistent`)
//! points_per_weight = 160     # virtual nodes per replica
//! key = ["header:x-lb-key"]   # then keyless; also cookie:NAME, query:NAME, path,
//!                              # path_segment:N, client_ip
//! algorithm = "ring"          # or "maglev" (maglev_table_size = 65537)
//! balance_factor = 1.25       # bounded loads (HAProxy's hash-balance-factor 125); off by default
//! keyless = "random"          # or "round_robin", "least_requests"
//! state_file = "/var/lib/lb/state.json"   # optional: the replica set survives restarts
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lb_core::HashAlgorithm;
use serde::Deserialize;

use crate::data_plane::key::{KeySource, KeySourceError};
use crate::data_plane::routing::Routing;
use rules::{invalid, ranged};

pub mod admin;
pub mod heartbeat;
pub mod log;
pub mod respawn;
pub mod routing;
mod rules;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod upstream;

pub use admin::{Admin, AdminFile};
pub use heartbeat::{Heartbeat, HeartbeatFile, ProbeKind};
pub use log::{Log, LogFile};
pub use respawn::{Respawn, RespawnFile};
pub use runtime::{Runtime, RuntimeFile, StaticReplica, StaticReplicaFile};
pub use server::{Server, ServerFile};
pub use shutdown::{Shutdown, ShutdownFile};
pub use tls::{Tls, TlsFile};
pub use upstream::{Upstream, UpstreamFile};

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
    /// `ring` or `maglev`.
    pub algorithm: Option<String>,
    /// Slots of the Maglev table.
    pub maglev_table_size: Option<u64>,
    /// Bounded-load factor (> 1).
    pub balance_factor: Option<f64>,
    /// `random`, `round_robin` or `least_requests`.
    pub keyless: Option<String>,
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
    /// `[tls]`.
    pub tls: TlsFile,
    /// `[log]`.
    pub log: LogFile,
}

/// A validated configuration: the root table's keys, then one field per section.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy (and, without `admin.listen`, admin) listener.
    pub listen: SocketAddr,
    /// Data-plane worker threads (1..=256; default: the available cores).
    pub workers: usize,
    /// Replicas started at boot, `server1..` (0..=1024, default 3).
    pub replicas: usize,
    /// Hash for points and keys (default xxh3).
    pub hash: HashAlgorithm,
    /// Points per unit of weight (1..=10000, default 160).
    pub points_per_weight: u32,
    /// Request key sources, tried in order; a request with none is keyless.
    pub key: Vec<KeySource>,
    /// Table, bounded loads and keyless policy (`algorithm`, `maglev_table_size`,
    /// `balance_factor`, `keyless`); applies on reload.
    pub routing: Routing,
    /// Where the replica set is saved and restored from, if anywhere.
    pub state_file: Option<PathBuf>,
    /// `[admin]`.
    pub admin: Admin,
    /// `[heartbeat]`.
    pub heartbeat: Heartbeat,
    /// `[runtime]`.
    pub runtime: Runtime,
    /// `[respawn]`.
    pub respawn: Respawn,
    /// `[upstream]`.
    pub upstream: Upstream,
    /// `[server]`.
    pub server: Server,
    /// `[shutdown]`.
    pub shutdown: Shutdown,
    /// `[tls]`: TLS on the proxy listener; `None`: plain HTTP.
    pub tls: Option<Tls>,
    /// `[log]`.
    pub log: Log,
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

    /// Turns a parsed file into a validated config: the root table here, each
    /// section by its own module.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(file: FileConfig) -> Result<Self, ConfigError> {
        let listen_text = file.listen.unwrap_or_else(|| "127.0.0.1:5000".into());
        let listen = rules::address("listen", &listen_text)?;
        let hash_text = file.hash.unwrap_or_else(|| "xxh3".into());
        let hash = hash_text.parse().map_err(|_| {
            invalid(
                "hash",
                &hash_text,
                "expected \"xxh3\", \"sha256\", \"md5\" or \"nginx\"",
            )
        })?;
        let key = file
            .key
            .unwrap_or_else(|| vec!["header:x-lb-key".into()])
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|reason: KeySourceError| invalid("key", s, reason.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let state_file = match file.state_file {
            Some(path) if path.as_os_str().is_empty() => {
                return Err(invalid("state_file", "\"\"", "must be a file path"));
            }
            other => other,
        };
        let routing = routing::RoutingFile {
            algorithm: file.algorithm,
            maglev_table_size: file.maglev_table_size,
            balance_factor: file.balance_factor,
            keyless: file.keyless,
        }
        .validate()?;
        let default_workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let points_per_weight =
            ranged("points_per_weight", file.points_per_weight, 160, 1, 10_000)?;
        let runtime = runtime::validate(file.runtime)?;
        runtime::check_static_weights(&runtime, points_per_weight)?;
        Ok(Config {
            listen,
            workers: ranged("workers", file.workers, default_workers.min(256), 1, 256)?,
            replicas: ranged("replicas", file.replicas, 3, 0, 1024)?,
            hash,
            points_per_weight,
            key,
            routing,
            state_file,
            admin: file.admin.validate(listen)?,
            heartbeat: file.heartbeat.validate()?,
            runtime,
            respawn: file.respawn.validate()?,
            upstream: file.upstream.validate()?,
            server: file.server.validate()?,
            shutdown: file.shutdown.validate()?,
            tls: file.tls.validate(&tls::TlsKeys {
                cert: "tls.cert",
                key: "tls.key",
            })?,
            log: file.log.validate()?,
        })
    }

    /// The keys, dotted as in the file, that differ between this running config and
    /// `fresh` but that a reload (SIGHUP) cannot apply: they keep their running
    /// values until a restart. Empty when everything that changed applies live
    /// (`key`, `algorithm`, `maglev_table_size`, `balance_factor`, `keyless`,
    /// `heartbeat.path`, `heartbeat.interval_ms`, `heartbeat.timeout_ms`,
    /// `upstream.retries`, `upstream.try_timeout_ms`, `upstream.retry_body_bytes`,
    /// `upstream.body_read_timeout_ms`, `log.access`, and the certificate files of
    /// `tls` and `admin.tls`, which are read again).
    pub fn restart_needed(&self, fresh: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let c = &mut changed;
        rules::note(c, "listen", self.listen != fresh.listen);
        rules::note(c, "workers", self.workers != fresh.workers);
        rules::note(c, "replicas", self.replicas != fresh.replicas);
        rules::note(c, "hash", self.hash != fresh.hash);
        rules::note(
            c,
            "points_per_weight",
            self.points_per_weight != fresh.points_per_weight,
        );
        rules::note(c, "state_file", self.state_file != fresh.state_file);
        changed.extend(self.admin.restart_needed(&fresh.admin));
        changed.extend(self.heartbeat.restart_needed(&fresh.heartbeat));
        if format!("{:?}", self.runtime) != format!("{:?}", fresh.runtime) {
            changed.push("runtime");
        }
        changed.extend(self.respawn.restart_needed(&fresh.respawn));
        changed.extend(self.upstream.restart_needed(&fresh.upstream));
        changed.extend(self.server.restart_needed(&fresh.server));
        changed.extend(self.shutdown.restart_needed(&fresh.shutdown));
        // New certificate files apply at once; turning TLS on or off does not.
        rules::note(
            &mut changed,
            "tls",
            self.tls.is_some() != fresh.tls.is_some(),
        );
        changed.extend(self.log.restart_needed(&fresh.log));
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    fn a_reload_names_each_key_it_cannot_apply_and_no_live_one() {
        let running = Config::parse(CMD).unwrap();
        let live = Config::parse(&format!(
            "key = [\"path\"]\n{CMD}[heartbeat]\npath = \"/up\"\ninterval_ms = 300\ntimeout_ms = 200\n[upstream]\nretries = 0\ntry_timeout_ms = 50\n"
        ))
        .unwrap();
        assert_eq!(running.restart_needed(&live), Vec::<&str>::new());
        let fixed = Config::parse(&format!(
            "replicas = 5\n{CMD}[admin]\nmax_per_call = 3\n[heartbeat]\nfall = 9\n[respawn]\nnaming = \"fresh\"\n[upstream]\nqueue_timeout_ms = 9\n[server]\nmax_header_bytes = 9000\n[shutdown]\ngrace_ms = 1\n"
        ))
        .unwrap();
        assert_eq!(
            running.restart_needed(&fixed),
            [
                "replicas",
                "admin.max_per_call",
                "heartbeat.fall",
                "respawn.naming",
                "upstream.queue_timeout_ms",
                "server.max_header_bytes",
                "shutdown.grace_ms"
            ]
        );
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
    fn suspicion_and_hedging_default_on_and_turn_off() {
        let defaults = Config::parse(CMD).unwrap().upstream;
        assert!(defaults.suspicion.enabled && defaults.hedging.enabled);
        assert_eq!(defaults.suspicion.floor, Duration::from_millis(220));
        let off = Config::parse(&format!(
            "{CMD}[upstream]\nsuspect_after_ms = 0\nhedge = false\n"
        ))
        .unwrap()
        .upstream;
        assert!(!off.suspicion.enabled && !off.hedging.enabled);
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
            ("[heartbeat]\nkind = \"grpc2\"", "heartbeat.kind"),
            ("[heartbeat]\nservice = \"a\\nb\"", "heartbeat.service"),
            ("[upstream]\nprotocol = \"h2\"", "upstream.protocol"),
            ("[admin]\nmax_per_call = 0", "admin.max_per_call"),
            ("[runtime]\nkind = \"vm\"", "runtime.kind"),
            ("[runtime]\ncommand = []", "runtime.command"),
            (
                "[upstream]\nsuspect_latency_multiple = 0",
                "upstream.suspect_latency_multiple",
            ),
            (
                "[upstream]\nhedge_budget_percent = 101",
                "upstream.hedge_budget_percent",
            ),
            (
                "[[upstream.slow_paths]]\nprefix = \"reports\"\ntry_timeout_ms = 9",
                "upstream.slow_paths.prefix",
            ),
            (
                "[[upstream.slow_paths]]\nprefix = \"/r\"\ntry_timeout_ms = 0",
                "upstream.slow_paths.try_timeout_ms",
            ),
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
