//! The bodies on both legs of a proxied request.
//!
//! - [`UpstreamBody`]: what the daemon sends a replica: nothing, bytes buffered so a
//!   retry can send them again, or the client's body streamed through
//!   ([`ClientBody`], which records whether the client finished or broke its upload,
//!   so a slow or broken upload is never charged to the replica).
//! - [`ProxiedBody`]: the replica's response streamed to the client; when it ends the
//!   upstream connection goes back to the worker's pool and the request's accounting
//!   guards drop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::data_plane::accounting::InFlight;
use crate::data_plane::h2_pool::StreamSlot;
use crate::data_plane::hyper_connection::HyperConnection;
use crate::data_plane::upstream_pool::UpstreamPool;
use crate::runtime::InstanceId;

/// A body whose frames are bytes known in full (`Fixed`; `None` once sent or when
/// empty) or another body's frames streamed through (`Streamed`). Both legs use it:
/// [`UpstreamBody`] towards the replica, [`reply::Body`](crate::data_plane::reply::Body) towards
/// the client. An enum rather than a boxed trait object, so neither costs an
/// allocation per request.
#[derive(Debug)]
pub enum Frames<S> {
    /// Bytes known in full.
    Fixed(Option<Bytes>),
    /// Streamed from another body.
    Streamed(S),
}

impl<S> Body for Frames<S>
where
    S: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Frames::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Frames::Streamed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Frames::Fixed(bytes) => bytes.is_none(),
            Frames::Streamed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Frames::Fixed(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Frames::Streamed(body) => body.size_hint(),
        }
    }
}

/// A request body as sent to a replica: buffered so a retry can send it again
/// (`Fixed`), or the client's body streamed through, one try only (`Streamed`).
pub type UpstreamBody = Frames<ClientBody>;

/// How far the client got with a streamed upload (shared with the forward).
#[derive(Debug)]
pub struct UploadProgress(AtomicU8);

impl Default for UploadProgress {
    fn default() -> Self {
        Self(AtomicU8::new(UPLOADING))
    }
}

const UPLOADING: u8 = 0;
const UPLOADED: u8 = 1;
const BROKEN: u8 = 2;

impl UploadProgress {
    /// The client sent its whole body.
    pub fn finished(&self) -> bool {
        self.0.load(Ordering::Relaxed) == UPLOADED
    }

    /// The client's body stream failed (reset, malformed chunking, aborted).
    pub fn broken(&self) -> bool {
        self.0.load(Ordering::Relaxed) == BROKEN
    }
}

/// The client's request body, streamed to the replica, with its [`UploadProgress`].
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    progress: Arc<UploadProgress>,
    /// Bytes read before streaming started, sent first.
    arrived: Option<Bytes>,
    /// A frame read before streaming started (trailers), sent after them.
    held: Option<Frame<Bytes>>,
}

impl ClientBody {
    /// Wraps `inner`; the returned progress is updated as it is read.
    pub fn new(inner: Incoming) -> (Self, Arc<UploadProgress>) {
        Self::with_arrived(inner, Bytes::new(), None)
    }

    /// Wraps `inner`, of which `arrived` (then `held`) was read already.
    pub fn with_arrived(
        inner: Incoming,
        arrived: Bytes,
        held: Option<Frame<Bytes>>,
    ) -> (Self, Arc<UploadProgress>) {
        let progress = Arc::new(UploadProgress::default());
        let body = Self {
            inner,
            progress: Arc::clone(&progress),
            arrived: Some(arrived).filter(|a| !a.is_empty()),
            held,
        };
        (body, progress)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // What was read before streaming started; when it was the whole body, the
        // upload ends with it (hyper does not poll a body at its end again).
        let ahead = match self.arrived.take() {
            Some(arrived) => Some(Frame::data(arrived)),
            None => self.held.take(),
        };
        if let Some(frame) = ahead {
            if self.is_end_stream() {
                self.progress.0.store(UPLOADED, Ordering::Relaxed);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.progress.0.store(UPLOADED, Ordering::Relaxed),
            // hyper stops polling a body of known length at its last byte: that
            // frame ends the upload (not a `None` that would never be asked for).
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.progress.0.store(UPLOADED, Ordering::Relaxed);
            }
            Poll::Ready(Some(Err(_))) => self.progress.0.store(BROKEN, Ordering::Relaxed),
            Poll::Pending | Poll::Ready(Some(Ok(_))) => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.arrived.is_none() && self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.arrived.as_ref().map_or(0, |a| a.len() as u64);
        let rest = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

/// Where a finished response puts its upstream connection back.
#[derive(Debug)]
pub struct Checkin {
    /// The worker's pool.
    pub pool: Arc<UpstreamPool<HyperConnection>>,
    /// The replica incarnation the connection belongs to.
    pub instance: InstanceId,
    /// The connection.
    pub upstream: HyperConnection,
}

/// A replica's response body streamed to the client.
///
/// Polling the body also drives the upstream connection's I/O (it has no task of its
/// own). When the body has been read to its end the connection is checked back into the
/// worker's pool; a body dropped before its end (the client went away) takes the
/// connection down with it, since its remaining bytes would corrupt the next response.
/// The in-flight guards drop with the body either way.
///
/// A body from an h2c replica holds its stream's slot on the multiplexed connection
/// instead; dropping it early resets that stream (the replica sees a cancel). A gRPC
/// call's body may carry the call's deadline ([`ProxiedBody::expire_at`]): past it the
/// body ends with `DEADLINE_EXCEEDED` trailers and the replica's stream is dropped.
#[derive(Debug)]
pub struct ProxiedBody {
    inner: Incoming,
    checkin: Option<Checkin>,
    _stream: Option<StreamSlot>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
    _in_flight: InFlight,
}

impl ProxiedBody {
    /// `inner`, returning `checkin` to its pool when fully read.
    pub fn new(inner: Incoming, checkin: Option<Checkin>, in_flight: InFlight) -> Self {
        Self {
            inner,
            checkin,
            _stream: None,
            deadline: None,
            done: false,
            _in_flight: in_flight,
        }
    }

    /// `inner` from an h2c replica, counted on its connection through `stream`.
    pub fn streamed(inner: Incoming, stream: StreamSlot, in_flight: InFlight) -> Self {
        let mut body = Self::new(inner, None, in_flight);
        body._stream = Some(stream);
        body
    }

    /// Ends the body at `deadline` (a gRPC call's `grpc-timeout`) with trailers saying
    /// `DEADLINE_EXCEEDED`, if it has not ended by then.
    pub fn expire_at(&mut self, deadline: tokio::time::Instant) {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some(checkin) = self.checkin.take() {
            checkin.pool.checkin(checkin.instance, checkin.upstream);
        }
    }
}

impl Body for ProxiedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            // Cut mid-response: the connection is not clean for another request.
            self.done = true;
            self.checkin = None;
            self.deadline = None;
            return Poll::Ready(Some(Ok(Frame::trailers(
                crate::data_plane::grpc::deadline_trailers(),
            ))));
        }
        // The first poll of an empty body only tells hyper's connection that data is
        // wanted; driving the connection once more hands over what it already read,
        // instead of waiting for this task's next turn on the run queue.
        let mut polled = Poll::Pending;
        for _ in 0..2 {
            if let Some(checkin) = self.checkin.as_mut() {
                checkin.upstream.poll_io(cx);
            }
            polled = Pin::new(&mut self.inner).poll_frame(cx);
            if polled.is_ready() {
                break;
            }
        }
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Err(_))) => {
                self.done = true;
                self.checkin = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ProxiedBody {
    fn drop(&mut self) {
        // hyper does not poll a body that is already at its end (HEAD, 204,
        // `Content-Length: 0`): such a connection is still clean.
        if !self.done && self.inner.is_end_stream() {
            self.finish();
        }
    }
}
