//! A worker's keep-alive connections to the replicas: one idle list per replica
//! incarnation, touched only by its worker's thread (the mutex is never contended; it
//! is there because hyper's tasks must be `Send`). Generic over what a pooled
//! connection is ([`Pooled`]): hyper's HTTP/1 client connection for requests hyper
//! serves ([`HyperConnection`](crate::data_plane::hyper_connection::HyperConnection)),
//! a bare TCP stream for the lean HTTP/1 path
//! ([`RawConnection`](crate::data_plane::h1::RawConnection)); each worker has one pool
//! of each.
//!
//! At most `upstream.max_conns_per_replica` connections per replica, worker and pool
//! are open at once (nginx `max_conns`, HAProxy `maxconn` on a server); a request
//! beyond the cap waits in a FIFO queue for at most `upstream.queue_timeout_ms`, then
//! gets [`ConnectError::QueueTimeout`] (a 503 with `Retry-After`, charged to nobody,
//! like HAProxy's `timeout queue`). A connection checked in while requests wait goes
//! straight to the first of them (HAProxy's server queue does the same), so a queue
//! costs no new connections; a connection that closes gives its slot to the queue.
//!
//! Connections are reused most-recent first (LIFO), so under a light load the extra
//! ones age out. A connection is checked in only after its response was read to the
//! end; idle ones older than `upstream.idle_timeout_ms`, and every idle connection of
//! a replica incarnation that left the routing snapshot (removed or respawned), are
//! closed by [`UpstreamPool::sweep`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::runtime::InstanceId;

/// A connection the pool can keep: opened over a new TCP stream, holding its place
/// under the cap while it lives.
pub trait Pooled: Send + Sized + 'static {
    /// Wraps a freshly connected `stream`; `slot` is its place under the cap.
    ///
    /// # Errors
    /// hyper's, when its handshake fails.
    fn open(
        stream: TcpStream,
        slot: Option<OwnedSemaphorePermit>,
    ) -> impl Future<Output = Result<Self, hyper::Error>> + Send;

    /// Whether the connection is known to be closed (without I/O).
    fn is_closed(&self) -> bool;

    /// Waits until the connection can take a request; false if it closed instead.
    fn ready(&mut self) -> impl Future<Output = bool> + Send;

    /// Gives up the connection's place under the cap (to a replacement).
    fn take_slot(&mut self) -> Option<OwnedSemaphorePermit>;
}

/// Where a try gets its connection to a replica: an [`UpstreamPool`] (HTTP/1, one
/// request per connection at a time) or the h2c streams of an
/// [`H2Pool`](crate::data_plane::h2_pool::H2Pool).
pub trait Connector<C> {
    /// A connection to `instance` at `addr`, ready for one request.
    ///
    /// # Errors
    /// [`ConnectError`] when none can be had.
    fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Checkout<C>, ConnectError>> + Send;
}

impl<C: Pooled> Connector<C> for UpstreamPool<C> {
    async fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout<C>, ConnectError> {
        UpstreamPool::checkout(self, instance, addr).await
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
    /// The HTTP/1 or HTTP/2 handshake failed.
    #[error("handshake with {addr}: {source}")]
    Handshake {
        /// The replica's address.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// A connection ready for one request.
#[derive(Debug)]
pub struct Checkout<C> {
    /// Ready to send.
    pub upstream: C,
    /// Used before (it may have been closed by the replica meanwhile).
    pub reused: bool,
}

/// What a checkout does when no idle connection is left.
enum Next<C> {
    Connect(Option<OwnedSemaphorePermit>),
    Queue(Arc<Semaphore>, oneshot::Receiver<C>),
}

struct Idle<C> {
    upstream: C,
    since: Instant,
}

/// One replica incarnation's connections in this worker.
struct Replica<C> {
    idle: Vec<Idle<C>>,
    permits: Arc<Semaphore>,
    /// Requests waiting for a connection, first come first served.
    waiters: VecDeque<oneshot::Sender<C>>,
}

/// Lowers the queue depth when a request leaves the queue (served, timed out, or its
/// client gone).
struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One worker's upstream connections of one kind `C`.
pub struct UpstreamPool<C> {
    replicas: Mutex<HashMap<InstanceId, Replica<C>>>,
    limits: PoolLimits,
    queue: QueueMetrics,
}

impl<C> std::fmt::Debug for UpstreamPool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<C: Pooled> UpstreamPool<C> {
    /// An empty pool.
    pub fn new(limits: PoolLimits, queue: QueueMetrics) -> Self {
        Self {
            replicas: Mutex::new(HashMap::new()),
            limits,
            queue,
        }
    }

    /// An idle connection to `instance` if one is still open, else a new one to `addr`
    /// under the cap, else the first connection to come free (or a slot), in FIFO order.
    ///
    /// # Errors
    /// [`ConnectError`] when a new connection cannot be made or the queue timed out.
    pub async fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout<C>, ConnectError> {
        while let Some(upstream) = self.pop(instance) {
            if let Some(upstream) = self.validate(upstream).await {
                return Ok(Checkout {
                    upstream,
                    reused: true,
                });
            }
        }
        let next = {
            let mut replicas = self.lock();
            let replica = replicas
                .entry(instance)
                .or_insert_with(|| self.new_replica());
            if self.limits.max_conns == 0 {
                Next::Connect(None)
            } else if let Ok(permit) = Arc::clone(&replica.permits).try_acquire_owned() {
                Next::Connect(Some(permit))
            } else {
                let (tx, rx) = oneshot::channel();
                replica.waiters.push_back(tx);
                Next::Queue(Arc::clone(&replica.permits), rx)
            }
        };
        match next {
            Next::Connect(slot) => Ok(Checkout {
                upstream: self.connect(addr, slot).await?,
                reused: false,
            }),
            Next::Queue(permits, waiter) => Box::pin(self.queued(addr, permits, waiter)).await,
        }
    }

    /// Waits in the queue for a handed-over connection or a free slot.
    async fn queued(
        &self,
        addr: SocketAddr,
        permits: Arc<Semaphore>,
        waiter: oneshot::Receiver<C>,
    ) -> Result<Checkout<C>, ConnectError> {
        self.queue.depth.inc();
        let _waiting = Waiting(&self.queue.depth);
        let started = Instant::now();
        let deadline = tokio::time::sleep(self.limits.queue_timeout);
        tokio::pin!(deadline, waiter);
        let mut forgotten = false;
        loop {
            tokio::select! {
                handed = &mut waiter, if !forgotten => {
                    self.queue.wait.observe(started.elapsed().as_secs_f64());
                    match handed {
                        Ok(upstream) => {
                            if let Some(upstream) = self.validate(upstream).await {
                                return Ok(Checkout { upstream, reused: true });
                            }
                            // It closed on the way: its slot is free now.
                            let permit = Arc::clone(&permits).try_acquire_owned().ok();
                            let upstream = self.connect(addr, permit).await?;
                            return Ok(Checkout { upstream, reused: false });
                        }
                        // The pool forgot the replica (swept): wait for a slot.
                        Err(_) => forgotten = true,
                    }
                }
                permit = Arc::clone(&permits).acquire_owned() => {
                    self.queue.wait.observe(started.elapsed().as_secs_f64());
                    let upstream = self.connect(addr, permit.ok()).await?;
                    return Ok(Checkout { upstream, reused: false });
                }
                () = &mut deadline => {
                    self.queue.wait.observe(started.elapsed().as_secs_f64());
                    return Err(ConnectError::QueueTimeout {
                        addr,
                        waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    });
                }
            }
        }
    }

    /// `upstream` if it gets ready within the connect timeout (a new connection
    /// takes no longer than that).
    async fn validate(&self, mut upstream: C) -> Option<C> {
        if upstream.is_closed() {
            return None;
        }
        match tokio::time::timeout(self.limits.connect_timeout, upstream.ready()).await {
            Ok(true) => Some(upstream),
            _ => None,
        }
    }

    fn new_replica(&self) -> Replica<C> {
        Replica {
            idle: Vec::new(),
            permits: Arc::new(Semaphore::new(self.limits.max_conns)),
            waiters: VecDeque::new(),
        }
    }

    /// A new connection to `addr` in place of `stale` (a pooled connection the
    /// replica had closed), keeping its place under the cap.
    ///
    /// # Errors
    /// As [`UpstreamPool::checkout`].
    pub async fn reconnect(&self, stale: &mut C, addr: SocketAddr) -> Result<(), ConnectError> {
        let slot = stale.take_slot();
        *stale = self.connect(addr, slot).await?;
        Ok(())
    }

    /// A new connection to `addr`, holding `slot` while open.
    ///
    /// Boxed, like the queue's wait: a connect and its handshake take kilobytes of
    /// future state that every request's state would otherwise reserve, while most
    /// requests reuse a connection.
    fn connect(
        &self,
        addr: SocketAddr,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Pin<Box<dyn Future<Output = Result<C, ConnectError>> + Send + '_>> {
        Box::pin(self.connect_now(addr, slot))
    }

    async fn connect_now(
        &self,
        addr: SocketAddr,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<C, ConnectError> {
        let stream = tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr))?
            .map_err(|source| ConnectError::Io { addr, source })?;
        let _ = stream.set_nodelay(true);
        C::open(stream, slot)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })
    }

    /// Takes back a connection whose last response was read to the end: it goes to
    /// the first request waiting for one, else on the idle list of `instance` (unless
    /// it is closed or the list is full).
    pub fn checkin(&self, instance: InstanceId, upstream: C) {
        if upstream.is_closed() {
            return;
        }
        let mut replicas = self.lock();
        let Some(replica) = replicas.get_mut(&instance) else {
            return; // swept: the incarnation left the snapshot
        };
        let mut upstream = upstream;
        while let Some(waiter) = replica.waiters.pop_front() {
            match waiter.send(upstream) {
                Ok(()) => return,
                Err(back) => upstream = back, // that request left the queue
            }
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
            replica.waiters.retain(|w| !w.is_closed());
            live(*instance)
        });
    }

    fn pop(&self, instance: InstanceId) -> Option<C> {
        self.lock()
            .get_mut(&instance)
            .and_then(|replica| replica.idle.pop())
            .map(|idle| idle.upstream)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Replica<C>>> {
        // Each critical section is one push, pop or retain: a poisoned map is consistent.
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }
}
