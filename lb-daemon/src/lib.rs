//! `lb-daemon`: a reverse proxy that routes each request to a replica chosen by
//! consistent hashing of a request key, and manages those replicas: admin API
//! (`/add`, `/rm`, `/rep`), heartbeats with rise/fall, and respawn of failed replicas.
//!
//! ```no_run
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = lb_daemon::config::Config::parse("replicas = 3\nlisten = \"127.0.0.1:0\"")?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let shutdown = CancellationToken::new();
//! lb_daemon::run(config, listener, shutdown).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `config`: TOML → validated [`config::Config`].
//! - `key`: which bytes of a request are hashed.
//! - `pool`: membership, health, respawn; publishes `snapshot`s.
//! - `snapshot`: the immutable routing view requests read without locks.
//! - `proxy`: forwarding to the chosen replica. `admin`: `/add`, `/rm`, `/rep`.
//! - `metrics`: Prometheus metrics on `/metrics`. `status`: the JSON of `/status`;
//!   `dashboard`: the live page on `/dashboard` that polls it.
//! - `prober`: heartbeats. `runtime`: how replicas are started (child processes).
//! - `server`: the accept loop, limits and graceful drain. `reply`: response shapes.
//! - `state`: the state file that lets the replica set survive restarts.

#![deny(missing_docs)]

pub mod admin;
pub mod config;
pub mod dashboard;
pub mod key;
pub mod metrics;
pub mod pool;
pub mod prober;
pub mod proxy;
pub mod reply;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod status;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Runtime};
use crate::metrics::Metrics;
use crate::pool::{AdminError, PoolSettings, ReplicaPool};
use crate::proxy::{Proxy, ProxySettings};
use crate::runtime::ReplicaRuntime;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::fixed::StaticRuntime;
use crate::runtime::process::ProcessRuntime;
use crate::server::{App, Role};
use crate::state::{StateError, StateFile};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The boot replicas could not be started.
    #[error("cannot start the boot replicas: {0}")]
    Boot(#[source] AdminError),
    /// The ring settings were refused.
    #[error("invalid ring settings: {0}")]
    Ring(#[from] lb_core::Error),
    /// The admin listener could not be bound.
    #[error("cannot listen on admin.listen = {addr}: {source}")]
    AdminListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is unreadable or corrupt.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs the daemon on `listener` until `shutdown` is cancelled: starts the boot
/// replicas, probes them, serves the proxy and admin API, then drains in-flight
/// requests (at most `shutdown.grace_ms`) and stops every replica.
///
/// # Errors
/// [`DaemonError`] when the boot replicas cannot be started; nothing is left running.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let (_keep, reloads) = mpsc::unbounded_channel();
    run_with_reloads(config, listener, shutdown, reloads).await
}

/// [`run`], and apply each validated [`Config`] received on `reloads` (SIGHUP in
/// `lb-daemon`): request key sources, retries, per-try timeout, retry body size and
/// heartbeat path/interval/timeout change at once; keys that need a restart
/// (`listen`, `runtime`, `hash`, ...) are named in a warning and keep their values.
///
/// # Errors
/// As [`run`].
pub async fn run_with_reloads(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    mut reloads: mpsc::UnboundedReceiver<Config>,
) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let runtime: Arc<dyn ReplicaRuntime> = match &config.runtime {
        Runtime::Process {
            command,
            ready_timeout,
        } => Arc::new(ProcessRuntime::new(
            command.clone(),
            *ready_timeout,
            events_tx,
        )),
        Runtime::Docker(settings) => Arc::new(
            DockerRuntime::connect(settings.clone(), events_tx)
                .await
                .map_err(|e| DaemonError::Boot(AdminError::Runtime(e)))?,
        ),
        Runtime::Static(replicas) => Arc::new(StaticRuntime::new(replicas.clone())),
    };
    let pool = ReplicaPool::new(
        PoolSettings {
            hash: config.hash,
            points_per_weight: config.points_per_weight,
            health: config.heartbeat.health,
            max_per_call: config.max_per_call,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
            fresh_names: config.fresh_names,
            drain_timeout: config.drain_timeout,
            state_file: config.state_file.clone().map(StateFile::new),
            respawns: metrics.respawns.clone(),
        },
        runtime,
    )?;
    let events_pool = Arc::clone(&pool);
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            events_pool.on_event(event);
        }
    });
    let saved = match &config.state_file {
        Some(path) => StateFile::new(path).load()?,
        None => None,
    };
    let names = pool
        .boot(config.replicas, saved)
        .await
        .map_err(DaemonError::Boot)?;
    tracing::info!(replicas = ?names.iter().map(|n| n.as_str()).collect::<Vec<_>>(), "daemon ready");
    let heartbeat = Arc::new(ArcSwap::from_pointee(config.heartbeat.clone()));
    let prober = tokio::spawn(prober::run(
        Arc::clone(&pool),
        Arc::clone(&heartbeat),
        shutdown.clone(),
    ));
    let app = App {
        pool: Arc::clone(&pool),
        proxy: Proxy::new(proxy_settings(&config), Arc::clone(&metrics)),
        metrics: Arc::clone(&metrics),
        max_body_bytes: config.max_body_bytes,
        admin_token: config.admin_token.clone(),
        role: Role::Both,
        started,
    };
    let limits = server::Limits {
        header_read_timeout: config.header_read_timeout,
        max_header_bytes: config.max_header_bytes,
        max_connections: config.max_connections,
        grace: config.grace,
    };
    let admin_server = match config.admin_listen {
        None => None,
        Some(addr) => {
            let admin_listener = TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::AdminListen { addr, source })?;
            let bound = admin_listener
                .local_addr()
                .map_err(|source| DaemonError::AdminListen { addr, source })?;
            tracing::info!(addr = %bound, "admin API listening");
            let admin_app = Arc::new(App {
                role: Role::Admin,
                ..app.clone()
            });
            Some(tokio::spawn(server::serve(
                admin_listener,
                admin_app,
                shutdown.clone(),
                limits,
            )))
        }
    };
    let proxy = app.proxy.clone();
    let running = config.clone();
    tokio::spawn(async move {
        while let Some(fresh) = reloads.recv().await {
            proxy.reconfigure(proxy_settings(&fresh));
            heartbeat.store(Arc::new(fresh.heartbeat.clone()));
            let fixed = restart_only_changes(&running, &fresh);
            if fixed.is_empty() {
                tracing::info!("config reloaded");
            } else {
                tracing::warn!(keys = ?fixed, "config reloaded; these keys need a restart and keep their running values");
            }
        }
    });
    let role = if admin_server.is_some() {
        Role::Proxy
    } else {
        Role::Both
    };
    server::serve(listener, Arc::new(App { role, ..app }), shutdown, limits).await;
    if let Some(admin_server) = admin_server {
        let _ = admin_server.await;
    }
    let _ = prober.await;
    pool.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn proxy_settings(config: &Config) -> ProxySettings {
    ProxySettings {
        key: config.key.clone(),
        connect_timeout: config.connect_timeout,
        retries: config.retries,
        try_timeout: config.try_timeout,
        retry_body_bytes: config.retry_body_bytes,
    }
}

/// The keys that differ between `running` and `fresh` but only apply at start.
fn restart_only_changes(running: &Config, fresh: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    check("listen", running.listen != fresh.listen);
    check("admin.listen", running.admin_listen != fresh.admin_listen);
    check("admin.token", running.admin_token != fresh.admin_token);
    check("hash", running.hash != fresh.hash);
    check(
        "points_per_weight",
        running.points_per_weight != fresh.points_per_weight,
    );
    check(
        "runtime",
        format!("{:?}", running.runtime) != format!("{:?}", fresh.runtime),
    );
    check(
        "heartbeat.rise/fall",
        running.heartbeat.health != fresh.heartbeat.health,
    );
    check("state_file", running.state_file != fresh.state_file);
    check(
        "upstream.connect_timeout_ms",
        running.connect_timeout != fresh.connect_timeout,
    );
    check(
        "server",
        running.max_connections != fresh.max_connections
            || running.header_read_timeout != fresh.header_read_timeout,
    );
    changed
}
