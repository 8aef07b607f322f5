//! A client connection on the lean path: request heads read into a buffer that
//! exists only while a request does, parsed once ([`request::parse`]), forwarded
//! ([`Forwarder::exchange`]); the first request the lean path does not take hands
//! the connection, bytes read so far included, to hyper ([`connection::serve`]).
//!
//! Deadlines are those of hyper's connections: the first request within
//! `server.first_request_timeout_ms`, the next within `server.keepalive_timeout_ms`,
//! a started head within `server.header_read_timeout_ms`, a body within
//! `upstream.body_read_timeout_ms` (else 408). On shutdown an idle connection closes
//! at once and a busy one after its response.
//!
//! [`Forwarder::exchange`]: crate::data_plane::forward::Forwarder::exchange

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use hyper::StatusCode;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use lb_core::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;

use crate::control_plane::admin_listener::App;
use crate::data_plane::accounting::InFlight;
use crate::data_plane::connection::{self, ConnectionLimits};
use crate::data_plane::forward::{MAX_TRIES, ProxySettings};
use crate::data_plane::h1::exchange::{Ending, LeanRequest, serialize};
use crate::data_plane::h1::request::{self, MAX_HEADERS, Parse, RequestHead};
use crate::data_plane::h1::rewind::Rewind;
use crate::data_plane::key::{KeyedRequest, request_key};
use crate::data_plane::protocol::Protocol;
use crate::data_plane::reply::failure;
use crate::data_plane::slow_paths::limits_for;
use crate::data_plane::snapshot::{Snapshot, Upstream};
use crate::data_plane::worker::ProxyHandler;
use crate::observe::access_log::AccessEntry;

/// Bytes added to a client's buffer when it runs short. The buffer lives only from the
/// first byte of a request to its forward, so its size costs no memory per idle
/// connection; 8 KiB takes a head with a 4 KiB body in one read.
const READ_CHUNK: usize = 8192;

/// Largest request body the lean path holds in memory, bytes (HAProxy's default
/// `tune.bufsize`); longer ones go to hyper, which streams them or buffers them for
/// retries within `upstream.retry_buffer_total_bytes`.
pub const LEAN_BODY_BYTES: usize = 16 * 1024;

impl KeyedRequest for RequestHead<'_> {
    fn path(&self) -> &str {
        RequestHead::path(self)
    }

    fn query(&self) -> Option<&str> {
        RequestHead::query(self)
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// What the bytes read so far amount to (lives on the stack of one request).
#[allow(clippy::large_enum_variant)]
enum Next<'s> {
    /// A request to forward, and the number of bytes it took from the buffer.
    Forward(LeanRequest, Candidates<'s>, usize),
    /// A lean head whose body is not all here: this many bytes in total.
    Body(usize),
    /// hyper's from here on.
    Handoff,
}

/// The key's candidates in failover order.
type Candidates<'s> = ([Option<(&'s NodeId, &'s Upstream)>; MAX_TRIES], usize);

/// Serves `stream` until the client closes, a deadline passes, `shutdown` is
/// cancelled, or hyper takes the connection over.
pub async fn serve(
    mut stream: TcpStream,
    client: SocketAddr,
    handler: Arc<ProxyHandler>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    let mut served = false;
    loop {
        if buf.is_empty() {
            let idle = if served {
                limits.keepalive_timeout
            } else {
                limits.first_request_timeout
            };
            if !first_bytes(&mut stream, &mut buf, Instant::now() + idle, &shutdown).await {
                return;
            }
        }
        let head_started = Instant::now();
        let head_deadline = head_started + limits.header_read_timeout;
        let settings = handler.forwarder.settings.load_full();
        let snapshot = handler.forwarder.replicas.snapshot();
        let mut next = loop {
            if let Some(next) = plan(&buf, &handler, &settings, &snapshot, limits, client) {
                break next;
            }
            if !read_more(&mut stream, &mut buf, head_deadline).await {
                return;
            }
        };
        if let Next::Body(total) = next {
            let body_deadline = Instant::now() + settings.body_read_timeout;
            // The length is known (at most LEAN_BODY_BYTES): room for all of it at once,
            // so the rest arrives in one read without regrowing the buffer.
            buf.reserve(total.saturating_sub(buf.len()));
            while buf.len() < total {
                if !read_more(&mut stream, &mut buf, body_deadline).await {
                    if Instant::now() >= body_deadline {
                        let reply = failure(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request body did not arrive in time",
                        );
                        let mut out = Vec::new();
                        serialize(reply, true, &mut out);
                        let _ = stream.write_all(&out).await;
                    }
                    return;
                }
            }
            match plan(&buf, &handler, &settings, &snapshot, limits, client) {
                Some(planned) => next = planned,
                None => return,
            }
        }
        let (request, (targets, count), used) = match next {
            Next::Forward(request, candidates, used) => (request, candidates, used),
            Next::Body(_) => return,
            Next::Handoff => {
                let io = Rewind::new(buf, stream);
                return connection::serve(io, client, handler, builder, limits, shutdown).await;
            }
        };
        handler
            .stages
            .request_head
            .observe(head_started.elapsed().as_secs_f64());
        buf.drain(..used);
        if buf.is_empty() {
            buf = Vec::new(); // an idle connection holds no buffer
        }
        let in_flight = InFlight::enter(&handler.metrics.in_flight);
        let started = std::time::Instant::now();
        let (mut reader, mut writer) = stream.split();
        let exchanged = tokio::select! {
            biased;
            exchanged = handler.forwarder.exchange(
                request,
                &targets[..count],
                &settings,
                &mut writer,
                in_flight,
                &handler.stages,
            ) => exchanged,
            // The client left before its answer: drop the request (its guards put
            // every count back), like hyper does and nginx's default.
            () = client_gone(&mut reader) => return,
        };
        let took = started.elapsed();
        handler.duration.observe(took.as_secs_f64());
        handler
            .metrics
            .record_request(exchanged.forwarded.served_by.as_deref(), exchanged.status);
        if let Some(entry) = &exchanged.forwarded.access {
            entry.write(
                exchanged.forwarded.replica.as_ref(),
                exchanged.status,
                took,
                exchanged.body_bytes,
            );
        }
        match exchanged.ending {
            Ending::KeepAlive => served = true,
            Ending::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Ending::Abort => return,
        }
    }
}

/// Resolves when the client closed its side or failed; never, once it sent more
/// bytes (a pipelined request: it is read after this one).
async fn client_gone(reader: &mut ReadHalf<'_>) {
    // No system call until the socket turns readable (its readiness was cleared by
    // the last read), then one `recv(MSG_PEEK)`.
    let mut probe = [0u8; 1];
    if let Ok(1..) = reader.peek(&mut probe).await {
        std::future::pending::<()>().await;
    }
}

/// Waits for the first bytes of the next request, holding no buffer while idle;
/// false when the client closed, `deadline` passed or shutdown began.
async fn first_bytes(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            ready = tokio::time::timeout_at(deadline, stream.readable()) => {
                if !matches!(ready, Ok(Ok(()))) {
                    return false;
                }
            }
            () = shutdown.cancelled() => return false,
        }
        buf.reserve(READ_CHUNK);
        // One read through `poll_read`, which clears the socket's readiness when it
        // drains it, so that later waits on this socket cost no system call.
        let read = poll_fn(|cx| Poll::Ready(poll_read_buf(Pin::new(&mut *stream), cx, buf))).await;
        match read {
            Poll::Ready(Ok(0) | Err(_)) => return false,
            Poll::Ready(Ok(_)) => return true,
            Poll::Pending => *buf = Vec::new(), // woken for nothing: idle again
        }
    }
}

/// Reads more of the client's bytes into `buf` before `deadline`; false when the
/// client closed, failed or the deadline passed.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    matches!(
        tokio::time::timeout_at(deadline, stream.read_buf(buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// What to do with the bytes in `buf`; `None` while the head is incomplete.
fn plan<'s>(
    buf: &[u8],
    handler: &ProxyHandler,
    settings: &ProxySettings,
    snapshot: &'s Snapshot,
    limits: ConnectionLimits,
    client: SocketAddr,
) -> Option<Next<'s>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = match request::parse(
        buf,
        &mut headers,
        limits.max_header_bytes,
        settings.retry_body_bytes.min(LEAN_BODY_BYTES),
    ) {
        Parse::Partial => return None,
        Parse::Handoff => return Some(Next::Handoff),
        Parse::Lean(head) => head,
    };
    if handler.admin.is_some() && App::serves(head.path()) {
        return Some(Next::Handoff);
    }
    let total = head.head_len + head.body_len;
    if buf.len() < total {
        return Some(Next::Body(total));
    }
    let mut bytes = Vec::with_capacity(total + 160);
    head.write_upstream_head(client.ip(), &mut bytes);
    bytes.extend_from_slice(&buf[head.head_len..total]);
    let tries = (settings.retries + 1).min(MAX_TRIES);
    let mut targets = [None; MAX_TRIES];
    let key = request_key(&settings.key, &head, client.ip());
    let count = snapshot.choose(key.as_deref(), &mut targets[..tries]);
    // The lean path speaks HTTP/1.1 upstream only: a key whose candidates include an
    // h2c replica goes to hyper, with the rest of the connection.
    if Protocol::any_h2c(&targets[..count]) {
        return Some(Next::Handoff);
    }
    let limits = limits_for(&settings.slow_paths, head.path(), settings.try_timeout);
    let request = LeanRequest {
        bytes,
        head_request: head.method == "HEAD",
        idempotent: head.idempotent(),
        hedgeable: settings.hedging.applies_to(head.method, limits.slow),
        limits,
        close: head.close,
        access: settings.access_log.then(|| {
            AccessEntry::new(head.method, head.target, key.as_deref().unwrap_or_default())
        }),
    };
    Some(Next::Forward(request, (targets, count), total))
}
