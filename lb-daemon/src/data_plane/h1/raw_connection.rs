//! An upstream connection of the lean path: a bare TCP stream. It holds no buffer
//! while idle; the request that checks it out brings its own.

use std::future::poll_fn;
use std::task::Poll;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::data_plane::upstream_pool::Pooled;

/// A keep-alive TCP connection to a replica.
#[derive(Debug)]
pub struct RawConnection {
    /// The socket.
    pub stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Pooled for RawConnection {
    async fn open(
        stream: TcpStream,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<Self, hyper::Error> {
        Ok(Self {
            stream,
            _slot: slot,
        })
    }

    fn is_closed(&self) -> bool {
        false
    }

    /// An idle connection is alive while it has nothing to read: a FIN, a reset or
    /// stray bytes from the replica all make it unusable. Costs no system call
    /// unless the socket turned readable.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            Poll::Ready(match self.stream.poll_read_ready(cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => {
                    let mut probe = [0u8; 1];
                    matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                }
            })
        })
        .await
    }

    fn take_slot(&mut self) -> Option<OwnedSemaphorePermit> {
        self._slot.take()
    }
}
