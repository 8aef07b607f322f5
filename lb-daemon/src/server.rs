//! The listener loop: accepts connections (HTTP/1.1 and HTTP/2), serves each request
//! through the admin API or the proxy, and on shutdown stops accepting and lets
//! in-flight requests finish within the grace period (hyper-util `GracefulShutdown`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::pool::ReplicaPool;
use crate::proxy::Proxy;
use crate::reply::Body;

/// What every request needs: the pool, the proxy and the admin limits.
#[derive(Debug)]
pub struct App {
    /// The replicas.
    pub pool: Arc<ReplicaPool>,
    /// The forwarding client.
    pub proxy: Proxy,
    /// Cap on admin request bodies, bytes.
    pub max_body_bytes: usize,
}

impl App {
    /// Serves one request: admin paths to the admin API, the rest to a replica.
    pub async fn handle(&self, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        if admin::is_admin_path(req.uri().path()) {
            admin::handle(&self.pool, req, self.max_body_bytes).await
        } else {
            let snapshot = self.pool.snapshot();
            self.proxy.forward(&snapshot, req, client).await
        }
    }
}

/// Serves `listener` until `shutdown` is cancelled, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
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
