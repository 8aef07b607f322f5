//! A worker's HTTP/2 connections to its h2c replicas (`upstream.protocol = "h2c"`):
//! requests are streams multiplexed on a few connections per replica incarnation,
//! never checked out exclusively.
//!
//! A request takes the open connection with the fewest streams in flight; when every
//! connection carries [`STREAMS_PER_CONNECTION`] or more and fewer than
//! [`CONNECTIONS_PER_REPLICA`] are open, it opens another (HAProxy's `proto h2`
//! servers and Envoy's HTTP/2 upstream pools share connections likewise). Beyond that
//! the streams wait in h2's own queue for the replica's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! (a replica that allows fewer than [`STREAMS_PER_CONNECTION`] streams queues them on one
//! connection: the pool does not read its settings). Connections are never closed for
//! idleness (`upstream.idle_timeout_ms` and `max_conns_per_replica` are HTTP/1's); HTTP/2
//! pings find dead ones.
//!
//! Each connection's I/O runs in a task of its own on the worker's runtime (h2 frames
//! of all its streams share it). A connection that failed beyond one stream's reset
//! (it received a `GOAWAY`, it broke) is retired ([`H2Pool::retire`]): the next request
//! opens a new one, while the streams already on the old one finish there. A connection that closed is
//! dropped at the next checkout, and every connection of an incarnation that left the
//! routing snapshot is closed by [`H2Pool::sweep`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::data_plane::body::UpstreamBody;
use crate::data_plane::upstream_pool::{Checkout, ConnectError, Connector};
use crate::runtime::InstanceId;

/// Streams in flight on a connection before another connection to the same replica
/// is opened.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// Most connections per replica incarnation and worker.
pub const CONNECTIONS_PER_REPLICA: usize = 4;

/// HTTP/2 ping interval on an upstream connection: a replica that stops answering
/// pings within [`PING_TIMEOUT`] loses the connection, and its streams end in errors.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// See [`PING_INTERVAL`].
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// One multiplexed connection.
#[derive(Clone)]
struct Shared {
    id: u64,
    sender: http2::SendRequest<UpstreamBody>,
    streams: Arc<AtomicUsize>,
}

/// One replica incarnation's connections in a worker.
#[derive(Default)]
struct Replica {
    connections: Vec<Shared>,
    /// Connections being opened now (they count towards the limit).
    opening: usize,
    /// Wakes requests waiting for a connection being opened.
    opened: Arc<Notify>,
}

/// A connection being opened for `instance`: counted in its `opening` until dropped,
/// which also wakes the requests waiting for it.
struct Opening<'a> {
    pool: &'a H2Pool,
    instance: InstanceId,
}

impl Opening<'_> {
    /// Lists the opened connection (then the drop wakes the waiters).
    fn done(self, shared: &Shared) {
        if let Some(replica) = self.pool.lock().get_mut(&self.instance) {
            replica.connections.push(shared.clone());
        }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let Some(replica) = self.pool.lock().get_mut(&self.instance) {
            replica.opening = replica.opening.saturating_sub(1);
            replica.opened.notify_waiters();
        }
    }
}

/// What a request does for its stream.
enum Next {
    /// Takes a stream on this open connection.
    Use(Shared),
    /// Opens a connection (counted in `opening`).
    Open,
    /// Waits for a connection being opened.
    Wait(OwnedNotified),
}

/// A stream's claim on a connection: counted in its streams until dropped (with the
/// response body, when the stream is over).
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection ready to carry one more stream.
pub struct H2Stream {
    sender: http2::SendRequest<UpstreamBody>,
    slot: StreamSlot,
    /// The connection, for [`H2Pool::retire`].
    pub connection: u64,
}

impl std::fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Stream")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl H2Stream {
    /// Sends `request` as a new stream: the response head, and the slot the response
    /// body keeps while it streams.
    ///
    /// # Errors
    /// hyper's: the stream was refused or reset, the connection failed or went away.
    /// A request the connection closed under before handing it to HTTP/2 comes back
    /// in the error ([`TrySendError::take_message`]): it was never sent.
    pub async fn send(
        mut self,
        request: Request<UpstreamBody>,
    ) -> (
        Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>,
        StreamSlot,
    ) {
        let answer = self.sender.try_send_request(request).await;
        (answer, self.slot)
    }
}

/// Limits of a worker's h2c connections.
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    /// TCP connect and HTTP/2 handshake deadline.
    pub connect_timeout: Duration,
}

/// One worker's HTTP/2 connections to h2c replicas.
pub struct H2Pool {
    replicas: Mutex<HashMap<InstanceId, Replica>>,
    limits: H2Limits,
    next_id: AtomicU64,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl H2Pool {
    /// An empty pool.
    pub fn new(limits: H2Limits) -> Self {
        Self {
            replicas: Mutex::new(HashMap::new()),
            limits,
            next_id: AtomicU64::new(1),
        }
    }

    /// A stream on the least busy open connection to `instance`, or on a new one to
    /// `addr` when all are busy and the replica has fewer than
    /// [`CONNECTIONS_PER_REPLICA`] open or opening. A request that finds every allowed
    /// connection still opening waits for one (at most the connect timeout per round).
    ///
    /// # Errors
    /// [`ConnectError`] when a new connection cannot be made.
    pub async fn stream(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout<H2Stream>, ConnectError> {
        loop {
            let next = {
                let mut replicas = self.lock();
                let replica = replicas.entry(instance).or_default();
                replica.connections.retain(|c| !c.sender.is_closed());
                let allowed = replica.connections.len() + replica.opening;
                let least = replica
                    .connections
                    .iter()
                    .min_by_key(|c| c.streams.load(Ordering::Relaxed))
                    .cloned();
                match least {
                    Some(c)
                        if c.streams.load(Ordering::Relaxed) < STREAMS_PER_CONNECTION
                            || allowed >= CONNECTIONS_PER_REPLICA =>
                    {
                        Next::Use(c)
                    }
                    _ if allowed < CONNECTIONS_PER_REPLICA => {
                        replica.opening += 1;
                        Next::Open
                    }
                    // Every allowed connection is still opening: wait for one.
                    _ => Next::Wait(Arc::clone(&replica.opened).notified_owned()),
                }
            };
            let (shared, reused) = match next {
                Next::Use(shared) => (shared, true),
                Next::Open => {
                    // Counted as opening until it ends, even if this request is dropped
                    // (its client went away) before the handshake did.
                    let opening = Opening {
                        pool: self,
                        instance,
                    };
                    // Boxed: a handshake's state is kilobytes, and most streams need none.
                    let shared = Box::pin(self.connect(addr)).await?;
                    opening.done(&shared);
                    (shared, false)
                }
                Next::Wait(opened) => {
                    let _ = tokio::time::timeout(self.limits.connect_timeout, opened).await;
                    continue;
                }
            };
            shared.streams.fetch_add(1, Ordering::Relaxed);
            return Ok(Checkout {
                upstream: H2Stream {
                    sender: shared.sender,
                    slot: StreamSlot(shared.streams),
                    connection: shared.id,
                },
                reused,
            });
        }
    }

    /// A new connection to `addr`, its I/O in a task of its own.
    async fn connect(&self, addr: SocketAddr) -> Result<Shared, ConnectError> {
        let handshake = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|source| ConnectError::Io { addr, source })?;
            let _ = stream.set_nodelay(true);
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(PING_INTERVAL)
                .keep_alive_timeout(PING_TIMEOUT)
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|source| ConnectError::Handshake { addr, source })
        };
        let (sender, connection) = tokio::time::timeout(self.limits.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Timeout(addr))??;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "h2c upstream connection ended with an error");
            }
        });
        Ok(Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            sender,
            streams: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Stops giving out `connection` to `instance` (it received a `GOAWAY`, or failed);
    /// its streams in flight finish on it.
    pub fn retire(&self, instance: InstanceId, connection: u64) {
        if let Some(replica) = self.lock().get_mut(&instance) {
            replica.connections.retain(|c| c.id != connection);
        }
    }

    /// Forgets closed connections, and all connections of incarnations for which
    /// `live` is false (their I/O tasks end once their streams are done).
    pub fn sweep(&self, live: impl Fn(InstanceId) -> bool) {
        self.lock().retain(|instance, replica| {
            replica.connections.retain(|c| !c.sender.is_closed());
            live(*instance) && !(replica.connections.is_empty() && replica.opening == 0)
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Replica>> {
        // Each critical section is a retain, a push or a scan: a poisoned map is
        // consistent.
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Connector<H2Stream> for H2Pool {
    async fn checkout(
        &self,
        instance: InstanceId,
        addr: SocketAddr,
    ) -> Result<Checkout<H2Stream>, ConnectError> {
        self.stream(instance, addr).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_given_up_while_opening_frees_its_place_and_wakes_the_waiters() {
        let pool = H2Pool::new(H2Limits {
            connect_timeout: Duration::from_millis(100),
        });
        let instance = InstanceId(7);
        let waiter = {
            let mut replicas = pool.lock();
            let replica = replicas.entry(instance).or_default();
            replica.opening = CONNECTIONS_PER_REPLICA;
            Arc::clone(&replica.opened).notified_owned()
        };
        // A request dropped mid-handshake (its client went away) drops its guard.
        drop(Opening {
            pool: &pool,
            instance,
        });
        assert_eq!(
            pool.lock()[&instance].opening,
            CONNECTIONS_PER_REPLICA - 1,
            "its place is free for the next request"
        );
        tokio::time::timeout(Duration::from_millis(100), waiter)
            .await
            .expect("the waiting requests are woken");
    }
}
