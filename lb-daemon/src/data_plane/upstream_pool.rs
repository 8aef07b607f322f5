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
//! At most `upstream.max_conns_per_replica` connections per replica and worker are
//! open at once (nginx `max_conns`, HAProxy `maxconn` on a server); a request beyond
//! the cap waits in a FIFO queue (tokio's fair semaphore) for at most
//! `upstream.queue_timeout_ms`, then gets [`ConnectError::QueueTimeout`] (a 503 with
//! `Retry-After`, charged to nobody, like HAProxy's `timeout queue`). While requests
//! wait, a connection that finishes is closed rather than kept idle, so its slot goes
//! to the head of the queue.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// Its place under `max_conns_per_replica`, given back when it closes.
    _slot: Option<OwnedSemaphorePermit>,
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

    /// The I/O half, for a task of its own (an upgraded connection's tunnel), and the
    /// connection's place under the cap, which the tunnel keeps while it lives.
    pub fn into_driver(self) -> (Option<Driver>, Option<OwnedSemaphorePermit>) {
        (self.driver, self._slot)
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
    /// Open connections per replica (per worker); 0: no cap.
    pub max_conns: usize,
    /// How long a request waits for a connection under the cap.
    pub queue_timeout: Duration,
}

/// The queue's metrics: `lb_upstream_queue_depth`, `lb_upstream_queue_wait_seconds`.
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    /// Requests waiting for a connection now.
    pub depth: Gauge,
    /// Time each queued request waited, seconds.
    pub wait: Histogram,
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
    /// `max_conns_per_replica` connections were busy for `queue_timeout_ms`.
    #[error("no connection to {addr} became free within {waited_ms} ms")]
    QueueTimeout {
        /// The replica's address.
        addr: SocketAddr,
        /// How long the request waited.
        waited_ms: u64,
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

/// The cap and queue of one replica incarnation.
#[derive(Debug)]
struct Slots {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// One replica incarnation's connections in this worker.
#[derive(Debug)]
struct Replica {
    idle: Vec<Idle>,
    slots: Arc<Slots>,
}

/// A request waiting in the queue; leaving it (served, timed out, or the client
/// gone) updates the counts.
struct Waiting<'a> {
    slots: &'a Slots,
    depth: &'a Gauge,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.slots.waiting.fetch_sub(1, Ordering::Relaxed);
        self.depth.dec();
    }
}

/// One worker's upstream connections.
#[derive(Debug)]
pub struct UpstreamPool {
    replicas: Mutex<HashMap<InstanceId, Replica>>,
    limits: PoolLimits,
    queue: QueueMetrics,
}

impl UpstreamPool {
    /// An empty pool.
    pub fn new(limits: PoolLimits, queue: QueueMetrics) -> Self {
        Self {
            replicas: Mutex::new(HashMap::new()),
            limits,
            queue,
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
            // A connection that does not become ready within the connect timeout is
            // not worth waiting for: a new one takes no longer.
            if upstream.is_closed() {
                continue;
            }
            let ready = tokio::time::timeout(self.limits.connect_timeout, upstream.ready()).await;
            if matches!(ready, Ok(true)) {
                return Ok(Checkout {
                    upstream,
                    reused: true,
                });
            }
        }
        let slot = self.slot(instance, addr).await?;
        let upstream = self.connect(addr, slot).await?;
        Ok(Checkout {
            upstream,
            reused: false,
        })
    }

    /// A place under the cap for a new connection to `instance`, waiting in FIFO
    /// order for at most the queue timeout.
    async fn slot(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Option<OwnedSemaphorePermit>, ConnectError> {
        if self.limits.max_conns == 0 {
            return Ok(None);
        }
        let slots = {
            let mut replicas = self.lock();
            let replica = replicas
                .entry(instance)
                .or_insert_with(|| self.new_replica());
            Arc::clone(&replica.slots)
        };
        if let Ok(permit) = Arc::clone(&slots.permits).try_acquire_owned() {
            return Ok(Some(permit));
        }
        slots.waiting.fetch_add(1, Ordering::Relaxed);
        self.queue.depth.inc();
        let _waiting = Waiting {
            slots: &slots,
            depth: &self.queue.depth,
        };
        let started = Instant::now();
        let acquired = tokio::time::timeout(
            self.limits.queue_timeout,
            Arc::clone(&slots.permits).acquire_owned(),
        )
        .await;
        self.queue.wait.observe(started.elapsed().as_secs_f64());
        match acquired {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(ConnectError::QueueTimeout {
                addr,
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    fn new_replica(&self) -> Replica {
        Replica {
            idle: Vec::new(),
            slots: Arc::new(Slots {
                permits: Arc::new(Semaphore::new(self.limits.max_conns)),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// A new connection to `addr` in place of `stale` (a pooled connection the
    /// replica had closed), keeping its place under the cap.
    ///
    /// # Errors
    /// As [`UpstreamPool::checkout`].
    pub async fn reconnect(
        &self,
        stale: &mut UpstreamConnection,
        addr: SocketAddr,
    ) -> Result<(), ConnectError> {
        let slot = stale._slot.take();
        *stale = self.connect(addr, slot).await?;
        Ok(())
    }

    /// A new connection to `addr`, holding `slot` while open.
    async fn connect(
        &self,
        addr: SocketAddr,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<UpstreamConnection, ConnectError> {
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
            _slot: slot,
        })
    }

    /// Puts a connection whose last response was read to the end back on the idle
    /// list of `instance`, unless it is closed, the list is full, or requests wait for
    /// a slot (then it closes and its slot goes to the first of them).
    pub fn checkin(&self, instance: InstanceId, upstream: UpstreamConnection) {
        if upstream.is_closed() || self.limits.max_idle == 0 {
            return;
        }
        let mut replicas = self.lock();
        let replica = replicas
            .entry(instance)
            .or_insert_with(|| self.new_replica());
        if replica.slots.waiting.load(Ordering::Relaxed) > 0 {
            return;
        }
        if replica.idle.len() < self.limits.max_idle {
            replica.idle.push(Idle {
                upstream,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections older than the idle timeout, closed ones, and all of
    /// incarnations for which `live` is false.
    pub fn sweep(&self, now: Instant, live: impl Fn(InstanceId) -> bool) {
        let limit = self.limits.idle_timeout;
        self.lock().retain(|instance, replica| {
            replica
                .idle
                .retain(|c| !c.upstream.is_closed() && now.duration_since(c.since) < limit);
            live(*instance)
        });
    }

    fn pop(&self, instance: InstanceId) -> Option<Idle> {
        self.lock()
            .get_mut(&instance)
            .and_then(|replica| replica.idle.pop())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Replica>> {
        // Each critical section is one push, pop or retain: a poisoned map is consistent.
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }
}
