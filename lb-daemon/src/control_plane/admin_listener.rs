//! The admin API's own listener (`admin.listen`) and [`App`], which answers admin and
//! observation paths wherever they arrive (on a worker without `admin.listen`, the
//! worker hands them to the control plane's runtime).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control_plane::admin_api;
use crate::control_plane::pool::ReplicaPool;
use crate::data_plane::connection::{self, Activity, ConnectionLimits, Handler};
use crate::data_plane::reply::{Body, failure, full};
use crate::data_plane::tls::{self, Secure, TlsConfig};
use crate::observe::metrics::{AdminLabels, Metrics};
use crate::observe::status;
use crate::observe::{dashboard, explain};

/// What admin and observation requests need.
#[derive(Debug, Clone)]
pub struct App {
    /// The replicas.
    pub pool: Arc<ReplicaPool>,
    /// Cap on admin request bodies, bytes.
    pub max_body_bytes: usize,
    /// Bearer token required by mutating admin calls, if set.
    pub admin_token: Option<String>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// When the daemon started, for `/status`.
    pub started: Instant,
}

impl App {
    /// Whether `path` is answered by [`App::handle`] rather than proxied:
    /// `/rep`, `/add`, `/rm`, `/weight`, `/metrics`, `/status`, `/explain`, `/dashboard`,
    /// `/healthz`.
    pub fn serves(path: &str) -> bool {
        admin_api::is_admin_path(path) || is_observation_path(path)
    }

    /// Answers an admin or observation request, counting it in `lb_admin_calls_total`.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let response = if is_observation_path(&path) {
            self.observe(&path, req.uri().query(), req.method())
        } else {
            admin_api::handle(
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

    /// `GET /metrics`, `/status`, `/explain`, `/healthz` or `/dashboard`; other methods
    /// answer 405.
    fn observe(&self, path: &str, query: Option<&str>, method: &Method) -> Response<Body> {
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
            "/healthz" => healthz(&self.pool),
            "/explain" => explain::respond(&self.pool.snapshot(), query),
            _ => dashboard::page(),
        }
    }
}

/// Paths that show the daemon's state: `/metrics`, `/status`, `/explain`, `/dashboard`,
/// `/healthz`.
fn is_observation_path(path: &str) -> bool {
    matches!(
        path,
        "/metrics" | "/status" | "/explain" | "/dashboard" | "/healthz"
    )
}

/// `GET /healthz`: the daemon itself (not its replicas) for Docker and Kubernetes
/// probes: `200 {"status":"ok"}` while it serves, `503` once it is stopping.
fn healthz(pool: &ReplicaPool) -> Response<Body> {
    if pool.is_stopping() {
        failure(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping")
    } else {
        let mut response = Response::new(full(r#"{"status":"ok"}"#.to_string()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The admin listener's handler: admin paths, 404 elsewhere.
#[derive(Debug)]
struct AdminOnly(App);

impl Handler for AdminOnly {
    fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        _client: SocketAddr,
        activity: &Arc<Activity>,
    ) -> impl Future<Output = Response<Body>> + Send {
        let _busy = activity.enter();
        async move {
            if App::serves(req.uri().path()) {
                self.0.handle(req).await
            } else {
                failure(
                    StatusCode::NOT_FOUND,
                    format!("'{}' is not an admin endpoint", req.uri().path()),
                )
            }
        }
    }
}

/// Serves the admin API alone on `listener` (over TLS with `tls`, `[admin.tls]`)
/// until `shutdown` is cancelled, then lets open calls finish within `limits.grace`.
pub async fn serve_admin(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
    limits: ConnectionLimits,
    tls: Option<TlsConfig>,
) {
    let handler = Arc::new(AdminOnly(app));
    let secure = Arc::new(Secure(Arc::clone(&handler)));
    let builder = Arc::new(limits.builder());
    let connections = TaskTracker::new();
    loop {
        let (stream, client) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Some(config) = &tls {
            connections.spawn(tls::serve(
                stream,
                client,
                Arc::clone(config),
                Arc::clone(&secure),
                Arc::clone(&builder),
                limits,
                shutdown.clone(),
            ));
            continue;
        }
        let _ = stream.set_nodelay(true);
        connections.spawn(connection::serve(
            stream,
            client,
            Arc::clone(&handler),
            Arc::clone(&builder),
            limits,
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(limits.grace + connection::CLOSE_GRACE, connections.wait()).await;
}
