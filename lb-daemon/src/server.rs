//! The listener loop: accepts connections (HTTP/1.1 and HTTP/2), serves each request
//! through the admin API or the proxy, and on shutdown stops accepting and lets
//! in-flight requests finish within the grace period (hyper-util `GracefulShutdown`).
//! [`Limits`] bound header read time (slowloris), header size and open connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::dashboard;
use crate::metrics::{AdminLabels, Metrics};
use crate::pool::ReplicaPool;
use crate::proxy::Proxy;
use crate::reply::{Body, failure, full};
use crate::status;

/// What every request needs: the pool, the proxy and the admin limits.
#[derive(Debug, Clone)]
pub struct App {
    /// The replicas.
    pub pool: Arc<ReplicaPool>,
    /// The forwarding client.
    pub proxy: Proxy,
    /// Cap on admin request bodies, bytes.
    pub max_body_bytes: usize,
    /// Bearer token required by mutating admin calls, if set.
    pub admin_token: Option<String>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// What this listener serves.
    pub role: Role,
    /// When the daemon started, for `/status`.
    pub started: Instant,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The admin API on its paths and the proxy on every other path (no `admin.listen`).
    Both,
    /// The proxy on every path (the admin API has its own listener).
    Proxy,
    /// The admin API only (`admin.listen`); other paths answer 404.
    Admin,
}

impl App {
    /// Serves one request according to the listener's [`Role`].
    pub async fn handle(&self, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let admin_path = admin::is_admin_path(&path) || is_observation_path(&path);
        match (self.role, admin_path) {
            (Role::Both | Role::Admin, true) => {
                let response = if is_observation_path(&path) {
                    self.observe(&path, req.method())
                } else {
                    admin::handle(
                        &self.pool,
                        req,
                        self.max_body_bytes,
                        self.admin_token.as_deref(),
                    )
                    .await
                };
                self.metrics
                    .admin_calls
                    .get_or_create(&AdminLabels {
                        endpoint: path,
                        status: response.status().as_u16(),
                    })
                    .inc();
                response
            }
            (Role::Admin, false) => failure(
                StatusCode::NOT_FOUND,
                format!("'{}' is not an admin endpoint", req.uri().path()),
            ),
            (Role::Both | Role::Proxy, _) => {
                let started = std::time::Instant::now();
                self.metrics.in_flight.inc();
                let snapshot = self.pool.snapshot();
                let response = self.proxy.forward(&self.pool, &snapshot, req, client).await;
                self.metrics.in_flight.dec();
                self.metrics
                    .duration
                    .observe(started.elapsed().as_secs_f64());
                let replica = response
                    .headers()
                    .get(crate::proxy::REPLICA_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none");
                self.metrics
                    .record_request(replica, response.status().as_u16());
                response
            }
        }
    }
}

impl App {
    /// `GET /metrics`, `/status` or `/dashboard`; other methods answer 405.
    fn observe(&self, path: &str, method: &Method) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = failure(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} {path} is not allowed; use GET"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/metrics" => {
                let mut response = Response::new(full(self.metrics.render(&self.pool.snapshot())));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            "/status" => status::respond(&self.pool, &self.metrics, self.started),
            _ => dashboard::page(),
        }
    }
}

/// Paths that show the daemon's state: `/metrics`, `/status`, `/dashboard`.
fn is_observation_path(path: &str) -> bool {
    matches!(path, "/metrics" | "/status" | "/dashboard")
}

/// Limits of the client-facing listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline for a request's headers (slowloris) and for an idle keep-alive
    /// connection's next request.
    pub header_read_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// Most connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// How long in-flight requests may finish after shutdown starts.
    pub grace: Duration,
}

/// Serves `listener` until `shutdown` is cancelled, then drains for at most `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let grace = limits.grace;
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, client) = tokio::select! {
            _ = shutdown.cancelled() => break,
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
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let service = service_fn(move |req| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(app.handle(req, client).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "draining in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}
