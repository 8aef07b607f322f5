//! TLS termination (rustls through `tokio-rustls`): a connection on a TLS listener is
//! handshaken, then served by hyper like any other (HTTP/2 when the client chose `h2`
//! by ALPN, HTTP/1.1 otherwise; the lean HTTP/1 path works on plain sockets only).
//! Requests that came over TLS carry [`Https`], so the forward sends
//! `X-Forwarded-Proto: https`. A client speaking plain HTTP to the TLS port gets a
//! short `400` in plain HTTP and the connection closes, as nginx answers (its 497).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::data_plane::connection::{self, Activity, ConnectionLimits, Handler};
use crate::data_plane::reply::Body;

/// The first byte of a TLS handshake record (`ContentType::handshake`).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to plain HTTP on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 43\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use https:// here.\n";

/// A TLS listener's server configuration, swapped whole when a reload reads the
/// certificate files again.
pub type TlsConfig = Arc<ArcSwap<ServerConfig>>;

/// Marks a request that came over TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// `H`, with every request marked [`Https`] first.
#[derive(Debug)]
pub struct Secure<H>(pub Arc<H>);

impl<H: Handler> Handler for Secure<H> {
    fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
        activity: &Arc<Activity>,
    ) -> impl Future<Output = Response<Body>> + Send {
        req.extensions_mut().insert(Https);
        self.0.handle(req, client, activity)
    }
}

/// Serves `stream` over TLS with `handler`: the handshake must complete within
/// `limits.first_request_timeout`; then as [`connection::serve`].
pub async fn serve<H: Handler>(
    stream: TcpStream,
    client: SocketAddr,
    tls: TlsConfig,
    handler: Arc<Secure<H>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let deadline = limits.first_request_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] != HANDSHAKE_RECORD {
        let mut stream = stream;
        let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
        let _ = stream.shutdown().await;
        tracing::debug!(%client, "plain HTTP on the TLS port: refused");
        return;
    }
    let acceptor = TlsAcceptor::from(tls.load_full());
    let secured = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(secured)) => secured,
        Ok(Err(e)) => {
            tracing::debug!(%client, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    connection::serve(secured, client, handler, builder, limits, shutdown).await;
}
