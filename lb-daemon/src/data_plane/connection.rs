//! One client connection, HTTP/1.1 or HTTP/2 (hyper-util's `auto`), with its
//! deadlines:
//!
//! - the first request must arrive within `server.first_request_timeout_ms` of
//!   accept (covers protocol detection and an HTTP/2 preface with nothing after it);
//! - a connection with nothing in flight is closed after
//!   `server.keepalive_timeout_ms` (HTTP/1.1 keep-alive and idle HTTP/2 alike);
//! - a request head must be complete within `server.header_read_timeout_ms` (hyper);
//! - HTTP/2 pings every `server.http2_keepalive_interval_ms`, and a peer that does not
//!   answer within `server.http2_keepalive_timeout_ms` is dropped (hyper).
//!
//! "In flight" counts a request from its arrival until its response body is done
//! ([`Activity`]), so a long download is never cut as idle. Closing is graceful first
//! (hyper finishes the request in progress, HTTP/2 sends GOAWAY); a connection that
//! does not finish within [`CLOSE_GRACE`] of that, or of shutdown's grace period, is
//! dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::data_plane::reply::Body;

/// After a graceful close starts on an idle connection, how long it may take.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Deadlines and sizes of client connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From accept to the first request.
    pub first_request_timeout: Duration,
    /// Longest time with nothing in flight.
    pub keepalive_timeout: Duration,
    /// Deadline for a request head once it started (slowloris).
    pub header_read_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// HTTP/2 ping interval.
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 ping answer deadline.
    pub http2_keepalive_timeout: Duration,
    /// How long in-flight requests may finish after shutdown starts.
    pub grace: Duration,
}

impl ConnectionLimits {
    /// hyper's connection builder with these limits.
    pub fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(self.http2_keepalive_interval))
            .keep_alive_timeout(self.http2_keepalive_timeout);
        builder
    }
}

/// Serves requests: the data plane's proxy, or the admin API on its own listener.
pub trait Handler: Send + Sync + 'static {
    /// The response to `req` from `client`. `activity` is the connection's: the
    /// handler marks the request busy ([`Activity::enter`]) for as long as it lives,
    /// response body included, so the connection is never closed as idle under it.
    fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
        activity: &Arc<Activity>,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Requests in flight on one connection, and when that last changed.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    active: AtomicU32,
    /// Milliseconds after `born` of the last change; `u64::MAX` before any request.
    changed_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            active: AtomicU32::new(0),
            changed_ms: AtomicU64::new(u64::MAX),
        })
    }

    /// Marks something in flight until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.changed_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a request ever finished on this connection.
    fn served_any(&self) -> bool {
        self.changed_ms.load(Ordering::Relaxed) != u64::MAX
    }

    /// When the connection must close if nothing happens meanwhile; `None` while busy.
    fn idle_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.active.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(match self.changed_ms.load(Ordering::Relaxed) {
            u64::MAX => self.born + limits.first_request_timeout,
            ms => self.born + Duration::from_millis(ms) + limits.keepalive_timeout,
        })
    }
}

/// Something in flight on a connection ([`Activity::enter`]).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Idle time counts from when the last thing in flight ended (one clock read
        // per request, not per guard).
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.touch();
        }
    }
}

/// Serves `stream` with `handler` until the client closes, a deadline passes, or
/// `shutdown` is cancelled (then at most `limits.grace` more).
pub async fn serve<H: Handler, S>(
    stream: S,
    client: SocketAddr,
    handler: Arc<H>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let conn_activity = Arc::clone(&activity);
    let service = service_fn(move |req| {
        let handler = Arc::clone(&handler);
        let activity = Arc::clone(&conn_activity);
        // Boxed: hyper spawns a task per HTTP/2 stream, and tokio moves a task's
        // future whole (into the task, and out when it ends); this way the kilobytes
        // of a forward's state are written once, and the task holds a pointer.
        async move {
            let handled = Box::pin(handler.handle(req, client, &activity));
            Ok::<_, std::convert::Infallible>(handled.await)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let timer = tokio::time::sleep_until(activity.born + limits.first_request_timeout);
    tokio::pin!(timer);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut timer => {
                if closing {
                    return; // graceful close overran: drop the connection
                }
                let now = Instant::now();
                match activity.idle_deadline(&limits) {
                    None => timer.as_mut().reset(now + limits.keepalive_timeout),
                    Some(deadline) if deadline <= now && !activity.served_any() => {
                        return; // no request by the deadline: nothing to be polite to
                    }
                    Some(deadline) if deadline <= now => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                        timer.as_mut().reset(now + CLOSE_GRACE);
                    }
                    Some(deadline) => timer.as_mut().reset(deadline),
                }
            }
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
                timer.as_mut().reset(Instant::now() + limits.grace);
            }
        }
    }
}
