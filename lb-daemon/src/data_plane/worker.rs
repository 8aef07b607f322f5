//! A data-plane worker: one OS thread running a current-thread tokio runtime with its
//! own listening socket, its own upstream connection pool and its own latency
//! histogram. Workers share nothing they lock on the request path: the routing
//! snapshot is read with arc-swap, counters are atomics.
//!
//! Admin paths that reach a worker (no `admin.listen`) are handed to the control
//! plane's runtime, so replica spawning and probing never run on a worker.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use prometheus_client::metrics::histogram::Histogram;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control_plane::admin_listener::App;
use crate::data_plane::accounting::InFlight;
use crate::data_plane::connection::{self, Activity, ConnectionLimits, Handler};
use crate::data_plane::forward::{Forwarded, Forwarder};
use crate::data_plane::grpc;
use crate::data_plane::h1;
use crate::data_plane::reply::{Body, failure};
use crate::data_plane::tls::{self, Secure, TlsConfig};
use crate::observe::metrics::{Metrics, StageTimers};

/// How often a worker closes idle upstream connections that aged out or whose
/// replica incarnation left the snapshot.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The admin API reached through the proxy's listener, served on the control plane.
#[derive(Debug, Clone)]
pub struct AdminRoute {
    /// The admin API.
    pub app: Arc<App>,
    /// The control plane's runtime.
    pub control: tokio::runtime::Handle,
}

/// What a worker answers requests with.
#[derive(Debug)]
pub struct ProxyHandler {
    /// The forward, with this worker's upstream pool.
    pub forwarder: Forwarder,
    /// Admin paths on this listener, if the admin API has no listener of its own.
    pub admin: Option<AdminRoute>,
    /// Shared metrics.
    pub metrics: Arc<Metrics>,
    /// This worker's shard of `lb_request_duration_seconds`.
    pub duration: Histogram,
    /// This worker's shard of `lb_request_stage_seconds`.
    pub stages: StageTimers,
}

impl Handler for ProxyHandler {
    fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
        activity: &Arc<Activity>,
    ) -> impl Future<Output = Response<Body>> + Send {
        let busy = activity.enter();
        async move {
            if let Some(admin) = &self.admin {
                if App::serves(req.uri().path()) {
                    // Busy until answered: a slow `/add` is no idle connection.
                    let _busy = busy;
                    let app = Arc::clone(&admin.app);
                    return match admin
                        .control
                        .spawn(async move { app.handle(req).await })
                        .await
                    {
                        Ok(response) => response,
                        Err(e) => failure(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("the admin call failed: {e}"),
                        ),
                    };
                }
            }
            let started = Instant::now();
            let in_flight = InFlight::enter(&self.metrics.in_flight).keeping(busy);
            let call = grpc::is_call(req.headers());
            let deadline = call
                .then(|| grpc::timeout(req.headers()))
                .flatten()
                .map(|t| tokio::time::Instant::now() + t);
            // Pinned once: moved into a timeout it would be stored twice in the state
            // of this future, which hyper moves when it spawns an HTTP/2 stream.
            let forward =
                std::pin::pin!(self.forwarder.forward(req, client, in_flight, &self.stages));
            let (mut response, forwarded) = match deadline {
                None => forward.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, forward).await {
                    Ok(forwarded) => forwarded,
                    Err(_) => (
                        grpc::answer(
                            grpc::Code::DeadlineExceeded,
                            "deadline exceeded at the load balancer",
                        ),
                        Forwarded::default(),
                    ),
                },
            };
            if call {
                let own_failure = response.status() != StatusCode::OK;
                match response.body_mut() {
                    // The replica's answer: its stream ends at the deadline too.
                    Body::Streamed(body) => {
                        if let Some(deadline) = deadline {
                            body.expire_at(deadline);
                        }
                    }
                    // The daemon's own: as gRPC answers.
                    Body::Fixed(_) if own_failure => {
                        response = grpc::translate(response);
                    }
                    Body::Fixed(_) => {}
                }
            }
            let took = started.elapsed();
            self.duration.observe(took.as_secs_f64());
            let status = response.status().as_u16();
            self.metrics
                .record_request(forwarded.served_by.as_deref(), status);
            if let Some(entry) = &forwarded.access {
                let bytes = response
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                entry.write(forwarded.replica.as_ref(), status, took, bytes);
            }
            response
        }
    }
}

/// A worker's share of the daemon-wide settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Client connection deadlines.
    pub limits: ConnectionLimits,
    /// Open client connections, over all workers (`server.max_connections`).
    pub slots: Arc<Semaphore>,
    /// Plain HTTP/1.1 requests take the lean path (`server.lean_http1`).
    pub lean_http1: bool,
    /// TLS on the listener (`[tls]`): every connection is handshaken and served by
    /// hyper.
    pub tls: Option<TlsConfig>,
}

/// How this worker receives a new connection.
#[derive(Debug, Clone)]
struct Reception {
    limits: ConnectionLimits,
    lean_http1: bool,
    /// The TLS configuration and the handler that marks requests [`tls::Https`].
    tls: Option<(TlsConfig, Arc<Secure<ProxyHandler>>)>,
}

/// Starts worker `index` on its own thread, serving `listener` until `shutdown`.
///
/// # Errors
/// When the thread or its runtime cannot be created.
pub fn spawn(
    index: usize,
    listener: std::net::TcpListener,
    handler: Arc<ProxyHandler>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("lb-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, handler, settings, shutdown).await,
                    Err(e) => {
                        tracing::error!(worker = index, error = %e, "cannot use the listener")
                    }
                }
            });
        })
}

async fn serve(
    listener: TcpListener,
    handler: Arc<ProxyHandler>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(settings.limits.builder());
    let reception = Reception {
        limits: settings.limits,
        lean_http1: settings.lean_http1,
        tls: settings
            .tls
            .clone()
            .map(|config| (config, Arc::new(Secure(Arc::clone(&handler))))),
    };
    let connections = TaskTracker::new();
    let sweeper = tokio::spawn(sweep(Arc::clone(&handler), shutdown.clone()));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&settings.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, client) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        connections.spawn(connection_task(
            stream,
            client,
            Arc::clone(&handler),
            Arc::clone(&builder),
            reception.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(
        settings.limits.grace + connection::CLOSE_GRACE,
        connections.wait(),
    )
    .await
    .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
    sweeper.abort();
}

async fn connection_task(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    handler: Arc<ProxyHandler>,
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    reception: Reception,
    shutdown: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let limits = reception.limits;
    if let Some((config, secure)) = &reception.tls {
        tls::serve(
            stream,
            client,
            Arc::clone(config),
            Arc::clone(secure),
            builder,
            limits,
            shutdown,
        )
        .await;
    } else if reception.lean_http1 {
        h1::session::serve(stream, client, handler, builder, limits, shutdown).await;
    } else {
        let _ = stream.set_nodelay(true);
        connection::serve(stream, client, handler, builder, limits, shutdown).await;
    }
    drop(permit);
}

/// Closes this worker's idle upstream connections that aged out or belong to a
/// replica incarnation no longer in the snapshot.
async fn sweep(handler: Arc<ProxyHandler>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let snapshot = handler.forwarder.replicas.snapshot();
        let live: HashSet<_> = snapshot.upstreams.values().map(|u| u.instance).collect();
        handler
            .forwarder
            .upstreams
            .sweep(Instant::now(), |instance| live.contains(&instance));
        handler
            .forwarder
            .h2_upstreams
            .sweep(|instance| live.contains(&instance));
    }
}
