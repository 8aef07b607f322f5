//! One request of the lean path forwarded: the same candidates, retries, fault
//! attribution and accounting as [`Forwarder::forward`], over bare upstream
//! connections. The head was rewritten once ([`RequestHead::write_upstream_head`]),
//! the body is in memory, and the response is relayed as it arrives.
//!
//! [`RequestHead::write_upstream_head`]: crate::data_plane::h1::request::RequestHead::write_upstream_head

use std::future::Future;
use std::time::{Duration, Instant};

use hyper::Response;
use lb_core::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;

use crate::data_plane::accounting::InFlight;
use crate::data_plane::forward::{
    Forwarded, Forwarder, NoConnection, ProxySettings, Tries, TryFailure, exhausted,
};
use crate::data_plane::h1::chunked::{BadChunk, Chunked};
use crate::data_plane::h1::raw_connection::RawConnection;
use crate::data_plane::h1::response::{self, Framing, Parsed, ResponseHead};
use crate::data_plane::h1::splice::{self, SPLICE_AT_LEAST};
use crate::data_plane::reply::Body;
use crate::data_plane::slow_paths::TryLimits;
use crate::data_plane::snapshot::Upstream;
use crate::data_plane::suspicion::{Stalled, Waited, wait_or_hedge};
use crate::data_plane::upstream_pool::{Checkout, ConnectError};
use crate::observe::access_log::AccessEntry;
use crate::observe::metrics::StageTimers;

/// Largest response head taken from a replica, bytes (hyper's client reads up to
/// about 400 KiB; 64 KiB is HAProxy's largest `tune.bufsize` in common use).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// First read buffer of a response, bytes; a body that fills it gets [`LARGE_BUFFER`].
const SMALL_BUFFER: usize = 8 * 1024;
/// Read buffer of large response bodies, bytes.
const LARGE_BUFFER: usize = 256 * 1024;

/// A request ready to go: its upstream bytes and what the exchange must know of it.
#[derive(Debug)]
pub struct LeanRequest {
    /// The upstream head and the whole body.
    pub bytes: Vec<u8>,
    /// The method is `HEAD` (the response has no body).
    pub head_request: bool,
    /// The method may be sent twice.
    pub idempotent: bool,
    /// A `GET`/`HEAD` with hedging on, not on a slow path: it may go to a second
    /// replica at once.
    pub hedgeable: bool,
    /// Its per-try deadline, and whether it is on a slow path.
    pub limits: TryLimits,
    /// The client asked to close after this request.
    pub close: bool,
    /// Its access-log entry, when the access log is on.
    pub access: Option<AccessEntry>,
}

/// How the exchange left the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A complete response was written; the next request may follow.
    KeepAlive,
    /// A complete response was written and the connection must close.
    Close,
    /// The client went away or the response broke off: close without a word.
    Abort,
}

/// What one exchange did, for the caller's metrics.
#[derive(Debug)]
pub struct Exchanged {
    /// The client connection's state.
    pub ending: Ending,
    /// The status the client got (0 when none was written).
    pub status: u16,
    /// The response body's length, when the replica gave one (for the access log).
    pub body_bytes: Option<u64>,
    /// Replica and tries.
    pub forwarded: Forwarded,
}

/// How one try ended without a response head.
enum TryError {
    /// A reused connection closed with nothing back: keep-alive's race, nobody's fault.
    Stale,
    /// The replica's fault.
    Replica(TryFailure),
    /// A hedge found the replica at its connection cap: nobody's fault.
    Busy,
}

/// A try's response head, with what the relay goes on with.
struct Answer {
    head: ResponseHead,
    connection: RawConnection,
    /// The bytes read so far (the head, maybe some of the body).
    buf: Vec<u8>,
    /// The client's response head.
    out: Vec<u8>,
    /// From sending to the response head.
    waited: Duration,
}

/// The body left to relay.
enum BodyLeft {
    Done,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl BodyLeft {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyLeft::Done,
            Framing::Length(n) => BodyLeft::Length(n),
            Framing::Chunked => BodyLeft::Chunked(Chunked::default()),
            Framing::UntilClose => BodyLeft::UntilClose,
        }
    }

    /// How many of `bytes` belong to the body.
    fn take(&mut self, bytes: &[u8]) -> Result<usize, BadChunk> {
        match self {
            BodyLeft::Done => Ok(0),
            BodyLeft::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyLeft::Done;
                }
                Ok(n)
            }
            BodyLeft::Chunked(chunked) => match chunked.feed(bytes)? {
                Some(end) => {
                    *self = BodyLeft::Done;
                    Ok(end)
                }
                None => Ok(bytes.len()),
            },
            BodyLeft::UntilClose => Ok(bytes.len()),
        }
    }
}

impl Forwarder {
    /// Forwards `request` to the key's candidates `targets` in order and relays the
    /// answer to `client`. `in_flight` counts the request until the response is done.
    /// A hedgeable request still unanswered at its replica's deadline also goes to the
    /// next candidate (see [`hedge`](crate::data_plane::hedge)).
    pub async fn exchange(
        &self,
        mut request: LeanRequest,
        targets: &[Option<(&NodeId, &Upstream)>],
        settings: &ProxySettings,
        client: &mut WriteHalf<'_>,
        mut in_flight: InFlight,
        stages: &StageTimers,
    ) -> Exchanged {
        // The body is in memory: an idempotent request can always be sent again.
        let mut tries = Tries::new(request.access.take(), request.idempotent);
        if request.hedgeable {
            self.hedge_budget.earn(settings.hedging.budget_percent);
        }
        let mut candidates = targets.iter().flatten();
        while let Some(&(name, upstream)) = candidates.next() {
            let pool = &*self.lean_upstreams;
            let checkout = match tries
                .connect(self, pool, name, upstream, &mut in_flight, stages)
                .await
            {
                Ok(checkout) => checkout,
                Err(NoConnection::Queued(answer)) => {
                    return reply_with(client, *answer, request.close, tries.forwarded).await;
                }
                Err(NoConnection::Failed | NoConnection::Skipped) => continue,
            };
            let watch = request
                .idempotent
                .then(|| settings.suspicion.watch(&upstream.progress, request.limits));
            let next = candidates.clone().next().copied();
            let hedge = next
                .filter(|_| request.hedgeable && tries.may_hedge())
                .map(|(_, next)| || self.start_lean_hedge(next, &request));
            // Pinned here, once: the wait holds a reference (a future moved into it
            // would be stored twice in this request's state).
            let first = std::pin::pin!(self.lean_try(checkout, upstream, &request));
            let waited = wait_or_hedge(
                first,
                &upstream.progress,
                request.limits.try_timeout,
                watch,
                hedge,
            )
            .await;
            let (answer, name, upstream) = match waited {
                Ok(Waited::Alone(Ok(answer))) => (answer, name, upstream),
                Ok(Waited::Alone(Err(TryError::Stale))) => {
                    tries.stale(name, &mut in_flight);
                    if !request.idempotent {
                        break;
                    }
                    continue;
                }
                Ok(Waited::Alone(Err(TryError::Replica(failed)))) => {
                    tries.failed(self, name, upstream, failed, &mut in_flight);
                    if !(failed == TryFailure::Connect || request.idempotent) {
                        break;
                    }
                    continue;
                }
                Ok(Waited::Alone(Err(TryError::Busy))) => {
                    in_flight.leave_replica();
                    continue;
                }
                Ok(Waited::Hedged {
                    first,
                    hedge,
                    timed_out,
                }) => {
                    // The hedge took the next candidate.
                    let Some((next_name, next)) = candidates.next().copied() else {
                        break;
                    };
                    let charged = |e: &TryError| match e {
                        TryError::Replica(failed) => Some(*failed),
                        TryError::Stale | TryError::Busy => None,
                    };
                    match tries.settle_hedge(
                        self,
                        (name, upstream, first),
                        (next_name, next, hedge),
                        timed_out,
                        charged,
                        &mut in_flight,
                    ) {
                        Some(winner) => winner,
                        None => continue,
                    }
                }
                Err(Stalled::Timeout) => {
                    tries.failed(self, name, upstream, TryFailure::Timeout, &mut in_flight);
                    if !request.idempotent {
                        break;
                    }
                    continue;
                }
                Err(Stalled::Moved) => {
                    // Uncharged; the connection is dropped (closed), not pooled.
                    tries.moved(self, name, &mut in_flight);
                    continue;
                }
            };
            let Answer {
                head,
                connection,
                mut buf,
                mut out,
                waited,
            } = answer;
            let answered = Instant::now();
            stages.response_head.observe(waited.as_secs_f64());
            let sample = (!request.limits.slow).then_some(waited);
            tries.served(self, name, upstream, sample);
            let body_bytes = match head.framing {
                Framing::Length(len) => Some(len),
                Framing::Empty => Some(0),
                Framing::Chunked | Framing::UntilClose => None,
            };
            let ending = self
                .relay(
                    head, connection, upstream, &request, &mut buf, &mut out, client,
                )
                .await;
            stages
                .response_body
                .observe(answered.elapsed().as_secs_f64());
            return Exchanged {
                ending,
                status: head.status,
                body_bytes,
                forwarded: tries.forwarded,
            };
        }
        let answer = exhausted(tries.last, request.limits.try_timeout);
        reply_with(client, answer, request.close, tries.forwarded).await
    }

    /// One try of `request` on `checkout`, to `upstream`: its response head, with the
    /// connection and buffers the relay goes on with. A pooled connection the replica
    /// had closed is replaced once for an idempotent request.
    async fn lean_try(
        &self,
        checkout: Checkout<RawConnection>,
        upstream: &Upstream,
        request: &LeanRequest,
    ) -> Result<Answer, TryError> {
        let mut connection = checkout.upstream;
        let mut reused = checkout.reused;
        let replica = upstream.name_header.as_bytes();
        let mut buf: Vec<u8> = Vec::with_capacity(SMALL_BUFFER);
        let mut out: Vec<u8> = Vec::with_capacity(512);
        let sending = Instant::now();
        loop {
            buf.clear();
            out.clear();
            match send(&mut connection, request, replica, &mut buf, &mut out).await {
                Ok(head) => {
                    return Ok(Answer {
                        head,
                        connection,
                        buf,
                        out,
                        waited: sending.elapsed(),
                    });
                }
                Err(Sent::NothingBack) if reused && request.idempotent => {
                    reused = false;
                    self.lean_upstreams
                        .reconnect(&mut connection, upstream.addr)
                        .await
                        .map_err(|_| TryError::Replica(TryFailure::Connect))?;
                }
                Err(Sent::NothingBack) if reused => return Err(TryError::Stale),
                Err(Sent::NothingBack | Sent::Broken) => {
                    return Err(TryError::Replica(TryFailure::Reset));
                }
            }
        }
    }

    /// The hedge of `request` on `next`, if [`Forwarder::take_hedge`] allows: a
    /// connection from this worker's pool and a [`Forwarder::lean_try`].
    fn start_lean_hedge<'r>(
        &'r self,
        next: &'r Upstream,
        request: &'r LeanRequest,
    ) -> Option<impl Future<Output = Result<Answer, TryError>> + 'r> {
        let counted = self.take_hedge(next)?;
        Some(async move {
            let _counted = counted;
            let checkout = self
                .lean_upstreams
                .checkout(next.instance, next.addr)
                .await
                .map_err(|e| match e {
                    ConnectError::QueueTimeout { .. } => TryError::Busy,
                    _ => TryError::Replica(TryFailure::Connect),
                })?;
            self.lean_try(checkout, next, request).await
        })
    }

    /// Writes the response head and relays the body as `framing` says; the
    /// connection goes back to the pool when the body ended cleanly.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        head: ResponseHead,
        mut connection: RawConnection,
        upstream: &Upstream,
        request: &LeanRequest,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        client: &mut WriteHalf<'_>,
    ) -> Ending {
        let mut left = BodyLeft::new(head.framing);
        let initial = &buf[head.head_len..];
        let Ok(taken) = left.take(initial) else {
            return Ending::Abort;
        };
        let mut clean = taken == initial.len();
        out.extend_from_slice(&initial[..taken]);
        if client.write_all(out).await.is_err() {
            return Ending::Abort;
        }
        if let BodyLeft::Length(len) = left {
            if len >= SPLICE_AT_LEAST {
                return match splice::relay(&connection.stream, client.as_ref(), len).await {
                    Ok(()) => self.finish(head, connection, upstream, request, clean),
                    Err(_) => Ending::Abort,
                };
            }
        }
        // A body longer than the buffer, or one whose reads fill it, is read in
        // large pieces: fewer system calls per megabyte.
        let mut large = matches!(left, BodyLeft::Length(n) if n > buf.capacity() as u64);
        while !matches!(left, BodyLeft::Done) {
            if large && buf.capacity() < LARGE_BUFFER {
                *buf = Vec::with_capacity(LARGE_BUFFER);
            }
            buf.clear();
            let read = connection.stream.read_buf(buf).await;
            let taken = match read {
                Ok(0) if matches!(left, BodyLeft::UntilClose) => return Ending::Close,
                Ok(0) | Err(_) => return Ending::Abort, // broke off: the client must see it
                Ok(n) => {
                    large |= n == buf.capacity();
                    match left.take(&buf[..n]) {
                        Ok(taken) => {
                            clean &= taken == n;
                            taken
                        }
                        Err(BadChunk) => return Ending::Abort,
                    }
                }
            };
            if client.write_all(&buf[..taken]).await.is_err() {
                return Ending::Abort;
            }
        }
        self.finish(head, connection, upstream, request, clean)
    }

    /// After a complete body: the connection back to the pool if it is clean, and
    /// how the client connection goes on.
    fn finish(
        &self,
        head: ResponseHead,
        connection: RawConnection,
        upstream: &Upstream,
        request: &LeanRequest,
        clean: bool,
    ) -> Ending {
        if head.keep_alive && clean {
            self.lean_upstreams.checkin(upstream.instance, connection);
        }
        if request.close || head.framing == Framing::UntilClose {
            Ending::Close
        } else {
            Ending::KeepAlive
        }
    }
}

/// How sending a request and reading its response head failed.
enum Sent {
    /// The connection closed or failed before any response byte.
    NothingBack,
    /// A partial, malformed or oversized head, or a failure after part of it.
    Broken,
}

/// Sends `request` on `connection` and reads the response head into `buf`, skipping
/// informational heads; the client's head goes to `out`.
async fn send(
    connection: &mut RawConnection,
    request: &LeanRequest,
    replica: &[u8],
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, Sent> {
    if connection.stream.write_all(&request.bytes).await.is_err() {
        return Err(Sent::NothingBack);
    }
    let mut received = 0usize;
    loop {
        if !buf.is_empty() {
            match response::parse(buf, request.head_request, replica, request.close, out) {
                Ok(Parsed::Final(head)) => return Ok(head),
                Ok(Parsed::Informational(len)) => {
                    buf.drain(..len);
                    continue;
                }
                Ok(Parsed::Partial) if buf.len() < MAX_RESPONSE_HEAD => {}
                Ok(Parsed::Partial) | Err(_) => return Err(Sent::Broken),
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(SMALL_BUFFER);
        }
        match connection.stream.read_buf(buf).await {
            Ok(0) | Err(_) if received == 0 => return Err(Sent::NothingBack),
            Ok(0) | Err(_) => return Err(Sent::Broken),
            Ok(n) => received += n,
        }
    }
}

/// Writes a reply made here (an error, the queue's 503) to the client.
async fn reply_with(
    client: &mut WriteHalf<'_>,
    reply: Response<Body>,
    close: bool,
    forwarded: Forwarded,
) -> Exchanged {
    let status = reply.status().as_u16();
    let mut out = Vec::with_capacity(256);
    serialize(reply, close, &mut out);
    let ending = match client.write_all(&out).await {
        Ok(()) if close => Ending::Close,
        Ok(()) => Ending::KeepAlive,
        Err(_) => Ending::Abort,
    };
    Exchanged {
        ending,
        status,
        body_bytes: None,
        forwarded,
    }
}

/// A response with a fixed body as HTTP/1.1 bytes.
pub fn serialize(reply: Response<Body>, close: bool, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let (parts, body) = reply.into_parts();
    let body = match body {
        Body::Fixed(bytes) => bytes.unwrap_or_default(),
        Body::Streamed(_) => bytes::Bytes::new(),
    };
    let status = parts.status;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
}
