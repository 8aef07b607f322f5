//! The lean HTTP/1.1 path: the common request served without hyper.
//!
//! A plain HTTP/1.1 request (see [`request`] for what is plain) is parsed once with
//! `httparse`, its head rewritten straight into the bytes sent upstream, its body
//! (at most 16 KiB, [`session::LEAN_BODY_BYTES`], and `upstream.retry_body_bytes`) sent along, and the replica's answer relayed
//! as it arrives, its framing followed ([`response`]) only to know where it ends.
//! The connection to the replica is a bare TCP stream from the worker's lean pool
//! ([`raw_connection`]); long bodies move between the sockets without passing through
//! user space ([`splice`]). Routing, retries, fault attribution and accounting are the
//! hyper path's ([`exchange`]).
//!
//! Anything else (HTTP/2, HTTP/1.0, upgrades, `Expect`, chunked or large uploads,
//! `CONNECT`, absolute-form targets, the admin API on the proxy's listener,
//! malformed or ambiguous heads) hands the connection to hyper with the bytes read
//! so far ([`rewind`], [`session`]), so hyper's checks stay the last word. It is
//! switched by `server.lean_http1` (default on).
//!
//! Why: on the request path hyper's per-request machinery on both legs (header maps,
//! the client's dispatch channel, per-connection buffers kept while idle) costs more
//! CPU and memory per request than the forwarding itself; see BENCHMARKS.md.

pub mod chunked;
pub mod exchange;
pub mod raw_connection;
pub mod request;
pub mod response;
pub mod rewind;
pub mod session;
pub mod splice;

pub use raw_connection::RawConnection;
