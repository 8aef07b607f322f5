//! `lb-daemon`: a reverse proxy that routes each request to a replica chosen by
//! consistent hashing of a request key, and manages those replicas: admin API
//! (`/add`, `/rm`, `/rep`), heartbeats with rise/fall, and respawn of failed replicas.
//!
//! ```no_run
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = lb_daemon::config::Config::parse("replicas = 3\nlisten = \"127.0.0.1:0\"")?;
//! let shutdown = CancellationToken::new();
//! lb_daemon::run(config, shutdown).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! Two planes, and what they share; `ARCHITECTURE.md` at the repository root is the map.
//! - `data_plane`: the request path. Per-core workers with their own listeners,
//!   client connections (the lean HTTP/1 path in `data_plane::h1`, hyper for the
//!   rest), the request key, the routing snapshot they read, the forward with its
//!   retries and fault attribution, per-worker upstream pools.
//! - `control_plane`: what changes the replica set. The admin API and its listener,
//!   the replica pool (membership, health from probes and passive outcomes, respawn),
//!   the prober, the state file; it alone publishes routing snapshots.
//! - `runtime`: how replicas run: child processes, Docker containers, or addresses
//!   someone else manages.
//! - [`config`]: TOML → validated [`config::Config`].
//! - [`testing`]: what the integration tests and fuzz targets reach below [`run`].
//! - `observe`: what an operator sees: Prometheus metrics on `/metrics`, the JSON of
//!   `/status`, the live `/dashboard` page, the access log, and [`healthcheck`], the
//!   probe behind `lb-daemon healthcheck`.
//!
//! [`run`] runs the control plane (admin API, prober, runtime) on the caller's tokio
//! runtime and starts `workers` data-plane threads of their own.

#![deny(missing_docs)]

pub mod config;
pub(crate) mod control_plane;
pub(crate) mod data_plane;
pub(crate) mod observe;
pub(crate) mod runtime;
pub mod testing;

pub use observe::healthcheck;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Runtime};
use crate::control_plane::admin_listener::App;
use crate::control_plane::pool::{AdminError, PoolSettings, ReplicaPool};
use crate::control_plane::state_file::{StateError, StateFile};
use crate::data_plane::accounting::RetryBudget;
use crate::data_plane::connection::ConnectionLimits;
use crate::data_plane::forward::{Forwarder, ProxySettings};
use crate::data_plane::h2_pool::{H2Limits, H2Pool};
use crate::data_plane::tls::TlsConfig;
use crate::data_plane::upstream_pool::{PoolLimits, UpstreamPool};
use crate::data_plane::worker::{AdminRoute, ProxyHandler, WorkerSettings};
use crate::data_plane::{Workers, listener};
use crate::observe::metrics::Metrics;
use crate::runtime::ReplicaRuntime;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::fixed::StaticRuntime;
use crate::runtime::process::ProcessRuntime;
use crate::runtime::swarm::SwarmRuntime;

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
    /// The proxy's listeners could not be bound, or its workers started.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is unreadable or corrupt.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs the daemon until `shutdown` is cancelled: starts the boot replicas, probes
/// them, binds `config.workers` listeners on `config.listen` (logging
/// `listening addr=<ip:port>`) and serves the proxy and admin API, then drains
/// in-flight requests (at most `shutdown.grace_ms`) and stops every replica.
///
/// # Errors
/// [`DaemonError`] when the boot replicas cannot be started or the listeners cannot
/// be bound; nothing is left running.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let (_keep, reloads) = mpsc::unbounded_channel();
    run_with_reloads(config, shutdown, reloads).await
}

/// [`run`], and apply each validated [`Config`] received on `reloads` (SIGHUP in
/// `lb-daemon`): request key sources, retries, per-try timeout, retry body size and
/// heartbeat path/interval/timeout change at once; keys that need a restart
/// (`listen`, `workers`, `runtime`, `hash`, ...) are named in a warning and keep
/// their values.
///
/// # Errors
/// As [`run`].
pub async fn run_with_reloads(
    config: Config,
    shutdown: CancellationToken,
    mut reloads: mpsc::UnboundedReceiver<Config>,
) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let listeners =
        listener::bind(config.listen, config.workers, config.server.backlog).map_err(|source| {
            DaemonError::Listen {
                addr: config.listen,
                source,
            }
        })?;
    let bound = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(config.listen);
    tracing::info!(addr = %bound, workers = config.workers, "listening");
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let runtime: Arc<dyn ReplicaRuntime> = match &config.runtime {
        Runtime::Process {
            command,
            ready_timeout,
            stop_timeout,
        } => Arc::new(ProcessRuntime::new(
            command.clone(),
            *ready_timeout,
            *stop_timeout,
            events_tx,
        )),
        Runtime::Docker(settings) => Arc::new(
            DockerRuntime::connect(settings.clone(), events_tx)
                .await
                .map_err(|e| DaemonError::Boot(AdminError::Runtime(e)))?,
        ),
        Runtime::Swarm(settings) => Arc::new(
            SwarmRuntime::connect(settings.clone(), events_tx)
                .await
                .map_err(|e| DaemonError::Boot(AdminError::Runtime(e)))?,
        ),
        Runtime::Static(replicas) => Arc::new(StaticRuntime::new(replicas.clone())),
    };
    let pool = ReplicaPool::new(
        PoolSettings {
            hash: config.hash,
            points_per_weight: config.points_per_weight,
            routing: config.routing,
            protocol: config.upstream.protocol,
            health: config.heartbeat.health,
            max_per_call: config.admin.max_per_call,
            backoff_initial: config.respawn.backoff_initial,
            backoff_max: config.respawn.backoff_max,
            fresh_names: config.respawn.fresh_names,
            drain_timeout: config.admin.drain_timeout,
            state_file: config.state_file.clone().map(StateFile::new),
            max_fails: config.upstream.max_fails,
            metrics: Arc::clone(&metrics),
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
    let heartbeat = Arc::new(ArcSwap::from_pointee(config.heartbeat.clone()));
    let prober = tokio::spawn(control_plane::prober::run(
        Arc::clone(&pool),
        Arc::clone(&heartbeat),
        shutdown.clone(),
    ));
    let app = App {
        pool: Arc::clone(&pool),
        metrics: Arc::clone(&metrics),
        max_body_bytes: config.admin.max_body_bytes,
        admin_token: config.admin.token.clone(),
        started,
    };
    let limits = ConnectionLimits {
        first_request_timeout: config.server.first_request_timeout,
        keepalive_timeout: config.server.keepalive_timeout,
        header_read_timeout: config.server.header_read_timeout,
        max_header_bytes: config.server.max_header_bytes,
        http2_keepalive_interval: config.server.http2_keepalive_interval,
        http2_keepalive_timeout: config.server.http2_keepalive_timeout,
        grace: config.shutdown.grace,
    };
    let proxy_tls = tls_config(config.tls.as_ref());
    let admin_tls = tls_config(config.admin.tls.as_ref());
    let admin_server = match config.admin.listen {
        None => None,
        Some(addr) => {
            let admin_listener = TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::AdminListen { addr, source })?;
            let bound = admin_listener
                .local_addr()
                .map_err(|source| DaemonError::AdminListen { addr, source })?;
            tracing::info!(addr = %bound, "admin API listening");
            Some(tokio::spawn(control_plane::admin_listener::serve_admin(
                admin_listener,
                app.clone(),
                shutdown.clone(),
                limits,
                admin_tls.clone(),
            )))
        }
    };
    let settings = Arc::new(ArcSwap::from_pointee(proxy_settings(&config)));
    let retry_budget = RetryBudget::new(config.upstream.retry_buffer_total_bytes);
    let pool_limits = PoolLimits {
        connect_timeout: config.upstream.connect_timeout,
        max_idle: config.upstream.max_idle_per_replica,
        idle_timeout: config.upstream.idle_timeout,
        max_conns: config.upstream.max_conns_per_replica,
        queue_timeout: config.upstream.queue_timeout,
    };
    let admin_route = config.admin.listen.is_none().then(|| AdminRoute {
        app: Arc::new(app.clone()),
        control: tokio::runtime::Handle::current(),
    });
    let workers = Workers::start(
        listeners,
        |index| ProxyHandler {
            forwarder: Forwarder {
                upstreams: Arc::new(UpstreamPool::new(pool_limits, metrics.queue.clone())),
                lean_upstreams: Arc::new(UpstreamPool::new(pool_limits, metrics.queue.clone())),
                h2_upstreams: Arc::new(H2Pool::new(H2Limits {
                    connect_timeout: config.upstream.connect_timeout,
                })),
                replicas: pool.routing_view(),
                settings: Arc::clone(&settings),
                retry_budget: Arc::clone(&retry_budget),
                hedge_budget: Arc::default(),
                metrics: Arc::clone(&metrics),
            },
            admin: admin_route.clone(),
            metrics: Arc::clone(&metrics),
            duration: metrics.worker_duration(index),
            stages: metrics.worker_stages(index),
        },
        &WorkerSettings {
            limits,
            slots: Arc::new(Semaphore::new(config.server.max_connections)),
            lean_http1: config.server.lean_http1,
            tls: proxy_tls.clone(),
        },
        &shutdown,
    )
    .map_err(|source| DaemonError::Listen {
        addr: config.listen,
        source,
    });
    let workers = match workers {
        Ok(workers) => workers,
        Err(e) => {
            shutdown.cancel();
            pool.shutdown().await;
            return Err(e);
        }
    };
    tracing::info!(replicas = ?names.iter().map(|n| n.as_str()).collect::<Vec<_>>(), "daemon ready");
    let running = config.clone();
    let reload_pool = Arc::clone(&pool);
    tokio::spawn(async move {
        while let Some(fresh) = reloads.recv().await {
            settings.store(Arc::new(proxy_settings(&fresh)));
            reload_pool.set_routing(fresh.routing);
            heartbeat.store(Arc::new(fresh.heartbeat.clone()));
            // Certificates read again by the reload replace the running ones.
            for (running_tls, fresh_tls) in [
                (&proxy_tls, fresh.tls.as_ref()),
                (&admin_tls, fresh.admin.tls.as_ref()),
            ] {
                if let (Some(running_tls), Some(fresh_tls)) = (running_tls, fresh_tls) {
                    running_tls.store(Arc::clone(&fresh_tls.server));
                }
            }
            let fixed = running.restart_needed(&fresh);
            if fixed.is_empty() {
                tracing::info!("config reloaded");
            } else {
                tracing::warn!(keys = ?fixed, "config reloaded; these keys need a restart and keep their running values");
            }
        }
    });
    shutdown.cancelled().await;
    tracing::info!(
        grace_ms = config.shutdown.grace.as_millis() as u64,
        "draining in-flight requests"
    );
    workers.join().await;
    if let Some(admin_server) = admin_server {
        let _ = admin_server.await;
    }
    let _ = prober.await;
    pool.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// A swappable TLS configuration for a listener with `[tls]`.
fn tls_config(tls: Option<&config::Tls>) -> Option<TlsConfig> {
    tls.map(|tls| Arc::new(ArcSwap::new(Arc::clone(&tls.server))))
}

fn proxy_settings(config: &Config) -> ProxySettings {
    ProxySettings {
        key: config.key.clone(),
        retries: config.upstream.retries,
        try_timeout: config.upstream.try_timeout,
        suspicion: config.upstream.suspicion,
        hedging: config.upstream.hedging,
        slow_paths: config.upstream.slow_paths.clone(),
        retry_body_bytes: config.upstream.retry_body_bytes,
        body_read_timeout: config.upstream.body_read_timeout,
        access_log: config.log.access,
    }
}
