//! A worker's keep-alive connections to the replicas: HTTP/1.1 over TCP, one idle
//! list per replica incarnation, touched only by its worker's thread (the mutex is
//! never contended; it is there because hyper's tasks must be `Send`).
//!
//! An upstream connection has no task of its own: the request that holds it polls it
//! ([`UpstreamConnection`]: the sending half and hyper's connection future together), and so
//! does the response body while it streams. A request then costs no hand-off between
//! tasks on the worker's run queue, which under load is what separates a fast answer
//! from a slow one.
//!
//! Connections are reused most-recent first (LIFO), so under a light load the extra
//! ones age out. A connection is checked in only after its response was read to the
//! end ([`ProxiedBody`](crate::data_plane::body::ProxiedBody)); idle ones older than
//! `upstream.idle_timeout_ms`, and every idle connection of a replica incarnation that
//! left the routing snapshot (removed or respawned), are closed by [`UpstreamPool::sweep`].

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::data_plane::body::UpstreamBody;
use crate::runtime::InstanceId;

/// The sending half of an upstream connection.
pub type Sender = http1::SendRequest<UpstreamBody>;

/// hyper's half that does the I/O; polled by whoever holds the [`UpstreamConnection`].
pub type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One upstream connection: both halves, held by one request at a time.
pub struct UpstreamConnection {
    /// Sends requests.
    pub sender: Sender,
    /// Does the I/O; `None` once it finished (the connection is closed).
    driver: Option<Driver>,
}

impl std::fmt::Debug for UpstreamConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnection")
            .field("sender", &self.sender)
            .field("open", &self.driver.is_some())
            .finish()
    }
}

impl UpstreamConnection {
    /// Drives the connection's I/O: call from every `poll` that waits on it. Returns
    /// true while the connection is open.
    pub fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.driver.as_mut() {
            if let Poll::Ready(ended) = driver.as_mut().poll(cx) {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.driver = None;
            }
        }
        self.driver.is_some()
    }

    /// Whether the connection is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.driver.is_none() || self.sender.is_closed()
    }

    /// Waits until the connection can take a request; false if it closed instead.
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let open = self.poll_io(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(open),
                Poll::Ready(Err(_)) => Poll::Ready(false),
                Poll::Pending if !open => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// The I/O half, for a task of its own (an upgraded connection's tunnel).
    pub fn into_driver(self) -> Option<Driver> {
        self.driver
    }
}

/// Limits of a worker's upstream connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// Idle connections kept per replica (per worker).
    pub max_idle: usize,
    /// An idle connection older than this is closed.
    pub idle_timeout: Duration,
}

/// Why no connection to a replica could be had. Nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect did not finish within `upstream.connect_timeout_ms`.
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    /// The replica refused or the network failed.
    #[error("connect to {addr}: {source}")]
    Io {
        /// The replica's address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP/1 handshake failed.
    #[error("HTTP/1 handshake with {addr}: {source}")]
    Handshake {
        /// The replica's address.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

#[derive(Debug)]
struct Idle {
    upstream: UpstreamConnection,
    since: Instant,
}

/// A connection ready for one request.
#[derive(Debug)]
pub struct Checkout {
    /// Ready to send.
    pub upstream: UpstreamConnection,
    /// Taken from the idle list (it may have been closed by the replica meanwhile).
    pub reused: bool,
}

/// One worker's upstream connections.
#[derive(Debug)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<InstanceId, Vec<Idle>>>,
    limits: PoolLimits,
}

impl UpstreamPool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// An idle connection to `instance` if one is still open, else a new one to `addr`.
    ///
    /// # Errors
    /// [`ConnectError`] when a new connection cannot be made.
    pub async fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout, ConnectError> {
        while let Some(idle) = self.pop(instance) {
            let mut upstream = idle.upstream;
            if !upstream.is_closed() && upstream.ready().await {
                return Ok(Checkout {
                    upstream,
                    reused: true,
                });
            }
        }
        let upstream = self.connect(addr).await?;
        Ok(Checkout {
            upstream,
            reused: false,
        })
    }

    /// A new connection to `addr`.
    ///
    /// # Errors
    /// [`ConnectError`] on refusal, timeout or a failed handshake.
    pub async fn connect(&self, addr: SocketAddr) -> Result<UpstreamConnection, ConnectError> {
        let stream = tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr))?
            .map_err(|source| ConnectError::Io { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        Ok(UpstreamConnection {
            sender,
            driver: Some(Box::pin(connection.with_upgrades())),
        })
    }

    /// Puts a connection whose last response was read to the end back on the idle
    /// list of `instance`, unless it is closed or the list is full.
    pub fn checkin(&self, instance: InstanceId, upstream: UpstreamConnection) {
        if upstream.is_closed() || self.limits.max_idle == 0 {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(instance).or_default();
        if list.len() < self.limits.max_idle {
            list.push(Idle {
                upstream,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections older than the idle timeout, closed ones, and all of
    /// incarnations for which `live` is false.
    pub fn sweep(&self, now: Instant, live: impl Fn(InstanceId) -> bool) {
        let limit = self.limits.idle_timeout;
        self.lock().retain(|instance, list| {
            if !live(*instance) {
                return false;
            }
            list.retain(|c| !c.upstream.is_closed() && now.duration_since(c.since) < limit);
            !list.is_empty()
        });
    }

    /// Idle connections now, over all replicas.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn pop(&self, instance: InstanceId) -> Option<Idle> {
        self.lock().get_mut(&instance).and_then(Vec::pop)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Vec<Idle>>> {
        // Each critical section is one push, pop or retain: a poisoned map is consistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
