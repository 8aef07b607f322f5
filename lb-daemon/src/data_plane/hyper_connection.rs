//! An upstream connection as hyper's HTTP/1 client holds it, for the requests hyper
//! serves (HTTP/2 clients, upgrades, chunked uploads, anything the lean path hands
//! over).
//!
//! It has no task of its own: the request that holds it polls it (the sending half
//! and hyper's connection future together), and so does the response body while it
//! streams. A request then costs no hand-off between tasks on the worker's run queue,
//! which under load is what separates a fast answer from a slow one.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::data_plane::body::UpstreamBody;
use crate::data_plane::upstream_pool::Pooled;

/// The sending half of an upstream connection.
pub type Sender = http1::SendRequest<UpstreamBody>;

/// hyper's half that does the I/O; polled by whoever holds the [`HyperConnection`].
pub type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One upstream connection: both halves, held by one request at a time.
pub struct HyperConnection {
    /// Sends requests.
    pub sender: Sender,
    /// Does the I/O; `None` once it finished (the connection is closed).
    driver: Option<Driver>,
    /// Its place under `max_conns_per_replica`, given back when it closes.
    _slot: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for HyperConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperConnection")
            .field("sender", &self.sender)
            .field("open", &self.driver.is_some())
            .finish()
    }
}

impl HyperConnection {
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

impl Pooled for HyperConnection {
    async fn open(
        stream: TcpStream,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<Self, hyper::Error> {
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(HyperConnection {
            sender,
            driver: Some(Box::pin(connection.with_upgrades())),
            _slot: slot,
        })
    }

    fn is_closed(&self) -> bool {
        HyperConnection::is_closed(self)
    }

    async fn ready(&mut self) -> bool {
        HyperConnection::ready(self).await
    }

    fn take_slot(&mut self) -> Option<OwnedSemaphorePermit> {
        self._slot.take()
    }
}
