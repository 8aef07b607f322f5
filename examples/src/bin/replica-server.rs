//! `replica-server [--id ID] [--port PORT] [--host HOST]`: the replica the load
//! balancer starts in tests, in the quickstart and in the Docker image.
//!
//! - `GET /home` → `200 {"message":"Hello from Server: <ID>","status":"successful"}`
//! - `GET /heartbeat` → `200` with an empty body
//! - `GET /sleep/<ms>` → `200` after `ms` milliseconds (at most 60,000): a slow request,
//!   for drain and timeout drills
//! - `GET /headers` → `200` with the request's headers as a JSON object
//!   (`{"host": ["..."], ...}`, every line of a repeated header), for proxy tests
//! - `POST /echo` → `200` with the request body (at most 16 MiB)
//! - `GET /bytes/<n>` → `200` with `n` bytes (at most 64 MiB), `Content-Length` set
//! - `GET /chunked/<n>` → `200` with `n` bytes (at most 64 MiB) sent chunked, 8 KiB a chunk
//! - `GET /ws` with `Upgrade: websocket` → `101`, then every text or binary message is
//!   echoed back (tokio-tungstenite)
//! - anything else → `404 {"message":"<Error> '<path>' endpoint does not exist in server replicas","status":"failure"}`
//!
//! `ID` comes from `--id` or `SERVER_ID` (default `unknown`), the port from `--port` or
//! `PORT` (default 8080), the address from `--host` (default `0.0.0.0`). It serves
//! until SIGINT or SIGTERM and exits 0; it exits 1 if it cannot bind.
//!
//! For failure drills, `--exit-after-ms MS` (or `EXIT_AFTER_MS`) makes it exit with
//! status 3 that many milliseconds after it starts listening, like a replica that
//! keeps crashing.
//!
//! Faults, for drills of replicas that misbehave without dying: `--fault F` (or `FAULT`)
//! at start, or `POST /fault` with `F` as the body at any time (answered `200 fault: F`).
//! They apply to every path but `/heartbeat` and `/fault`, so heartbeats keep passing:
//! - `wedge`: requests hang, unanswered, until the fault is switched off (then they are
//!   answered): a deadlock or a stuck dependency that health checks do not see;
//! - `delay:<ms>` (at most 60,000): every answer comes `ms` milliseconds late;
//! - `close-after-head`: the response head goes out, then the connection closes;
//! - `503`: every answer is `503 Service Unavailable`;
//! - `none`: back to normal.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lb_examples::ReplicaArgs;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Every response body of the replica.
type ReplicaBody = BoxBody<Bytes, Infallible>;

/// Largest `/bytes` and `/chunked` answer, and `/echo` body.
const MAX_BYTES: usize = 64 << 20;
const MAX_ECHO: usize = 16 << 20;

/// A replica for lb-daemon to balance over.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Exit with status 3 this many milliseconds after starting (failure drills).
    #[arg(long, env = "EXIT_AFTER_MS")]
    exit_after_ms: Option<u64>,
    /// A fault to play from the start: `wedge`, `delay:<ms>`, `close-after-head`, `503`, `none`.
    #[arg(long, env = "FAULT", default_value = "none")]
    fault: Fault,
}

/// A misbehaviour the replica plays on every path but `/heartbeat` and `/fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Normal service.
    None,
    /// Requests hang until the fault changes.
    Wedge,
    /// Every answer this many milliseconds late.
    Delay(u64),
    /// The response head, then the connection closes.
    CloseAfterHead,
    /// `503` to everything.
    Unavailable,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" => Ok(Fault::None),
            "wedge" => Ok(Fault::Wedge),
            "close-after-head" => Ok(Fault::CloseAfterHead),
            "503" => Ok(Fault::Unavailable),
            other => other
                .strip_prefix("delay:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms <= 60_000)
                .map(Fault::Delay)
                .ok_or_else(|| {
                    format!(
                        "unknown fault {other:?}: expected wedge, delay:<ms> (at most 60000), \
                         close-after-head, 503 or none"
                    )
                }),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Wedge => f.write_str("wedge"),
            Fault::Delay(ms) => write!(f, "delay:{ms}"),
            Fault::CloseAfterHead => f.write_str("close-after-head"),
            Fault::Unavailable => f.write_str("503"),
        }
    }
}

/// The fault now, shared by every connection; `POST /fault` replaces it.
type Faults = Arc<tokio::sync::watch::Sender<Fault>>;

/// Plays the current fault before a request is answered: waits out a wedge or a delay;
/// `Some(response)` when the fault is the answer.
async fn play(faults: &Faults) -> Option<Response<ReplicaBody>> {
    let mut current = faults.subscribe();
    let fault = *current.borrow_and_update();
    match fault {
        Fault::None => None,
        Fault::Wedge => {
            // Until someone switches the wedge off (or the replica stops).
            let _ = current.wait_for(|f| *f != Fault::Wedge).await;
            None
        }
        Fault::Delay(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            None
        }
        Fault::Unavailable => Some(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"message":"<Error> this replica plays the 503 fault","status":"failure"}"#,
        )),
        Fault::CloseAfterHead => {
            // A head that promises a body which never comes: hyper writes the head,
            // finds the body short of its length, and closes the connection.
            // The body's size is unknown to hyper (a stream), so the header stands; the
            // pause before the stream ends lets the head and the first bytes go out.
            let frames = futures_util::stream::unfold(true, |first| async move {
                if first {
                    let partial = Frame::data(Bytes::from_static(b"partial"));
                    return Some((Ok::<_, Infallible>(partial), false));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                None
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("1024"));
            Some(response)
        }
    }
}

/// `Some(ms)` for `GET /sleep/<ms>` with `ms` ≤ 60,000.
fn sleep_ms(method: &Method, path: &str) -> Option<u64> {
    let ms: u64 = path.strip_prefix("/sleep/")?.parse().ok()?;
    (method == Method::GET && ms <= 60_000).then_some(ms)
}

/// The response to `method path` from the replica called `id`.
fn route(id: &str, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET, "/home") => (
            StatusCode::OK,
            serde_json::json!({ "message": format!("Hello from Server: {id}"), "status": "successful" }).to_string(),
        ),
        (&Method::GET, "/heartbeat") => return Response::new(Full::new(Bytes::new())),
        (&Method::GET, p) if sleep_ms(method, p).is_some() => (
            StatusCode::OK,
            serde_json::json!({ "message": format!("Slow answer from Server: {id}"), "status": "successful" }).to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            serde_json::json!({
                "message": format!("<Error> '{path}' endpoint does not exist in server replicas"),
                "status": "failure",
            })
            .to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `/bytes/<n>` or `/chunked/<n>` → `n`, if at most [`MAX_BYTES`].
fn size_after(path: &str, prefix: &str) -> Option<usize> {
    let n: usize = path.strip_prefix(prefix)?.parse().ok()?;
    (n <= MAX_BYTES).then_some(n)
}

fn boxed(response: Response<Full<Bytes>>) -> Response<ReplicaBody> {
    response.map(|body| body.boxed())
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<ReplicaBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

/// The answer to any request, by method and path (see the module docs), after the
/// current fault is played.
async fn serve(id: Arc<str>, faults: Faults, mut req: Request<Incoming>) -> Response<ReplicaBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::POST && path == "/fault" {
        let body = match Limited::new(req.into_body(), 64).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                );
            }
        };
        return match String::from_utf8_lossy(&body).parse::<Fault>() {
            Ok(fault) => {
                faults.send_replace(fault);
                eprintln!("replica-server {id}: fault {fault}");
                plain(StatusCode::OK, format!("fault: {fault}"))
            }
            Err(reason) => plain(StatusCode::BAD_REQUEST, reason),
        };
    }
    if path != "/heartbeat"
        && let Some(answer) = play(&faults).await
    {
        return answer;
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/ws") if req.headers().contains_key(SEC_WEBSOCKET_KEY) => {
            websocket(&mut req)
        }
        (&Method::GET, "/headers") => {
            let mut seen = serde_json::Map::new();
            for (name, value) in req.headers() {
                let entry = seen
                    .entry(name.as_str())
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if let serde_json::Value::Array(lines) = entry {
                    lines.push(String::from_utf8_lossy(value.as_bytes()).into());
                }
            }
            let mut response = plain(StatusCode::OK, serde_json::Value::Object(seen).to_string());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (&Method::POST, "/echo") => match Limited::new(req.into_body(), MAX_ECHO).collect().await {
            Ok(body) => plain(StatusCode::OK, body.to_bytes()),
            Err(e) => plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ),
        },
        (&Method::GET, p) if size_after(p, "/bytes/").is_some() => {
            let n = size_after(p, "/bytes/").unwrap_or(0);
            plain(StatusCode::OK, vec![b'x'; n])
        }
        (&Method::GET, p) if size_after(p, "/chunked/").is_some() => {
            let n = size_after(p, "/chunked/").unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 8192]);
            let frames = (0..n.div_ceil(8192)).map(move |i| {
                let len = (n - i * 8192).min(8192);
                Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
            });
            let body = StreamBody::new(futures_util::stream::iter(frames));
            Response::new(BodyExt::boxed(body))
        }
        _ => {
            if let Some(ms) = sleep_ms(&method, &path) {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            boxed(route(&id, &method, &path))
        }
    }
}

/// Accepts a WebSocket handshake (RFC 6455 §4.2.2) and echoes every text or binary
/// message on the upgraded connection.
fn websocket(req: &mut Request<Incoming>) -> Response<ReplicaBody> {
    let Some(accept) = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
        .and_then(|accept| HeaderValue::from_str(&accept).ok())
    else {
        return plain(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key");
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (mut sink, mut stream) = socket.split();
        while let Some(Ok(message)) = stream.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(listener) = args.replica.listen("replica-server").await else {
        return ExitCode::from(1);
    };
    let addr = args.replica.addr();
    eprintln!("replica-server {} listening on {addr}", args.replica.id);
    let id: Arc<str> = Arc::from(args.replica.id);
    let faults: Faults = Arc::new(tokio::sync::watch::Sender::new(args.fault));
    if args.fault != Fault::None {
        eprintln!("replica-server {id}: fault {}", args.fault);
    }
    let stop = stop_signal();
    tokio::pin!(stop);
    let crash = async move {
        match args.exit_after_ms {
            Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(crash);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return ExitCode::SUCCESS,
            _ = &mut crash => {
                eprintln!("replica-server {id}: exiting as asked by --exit-after-ms");
                return ExitCode::from(3);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let id = Arc::clone(&id);
        let faults = Arc::clone(&faults);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (id, faults) = (Arc::clone(&id), Arc::clone(&faults));
                async move { Ok::<_, Infallible>(serve(id, faults, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn home_heartbeat_and_404() {
        let home = route("server7", &Method::GET, "/home");
        assert_eq!(home.status(), StatusCode::OK);
        assert_eq!(
            body(home).await,
            r#"{"message":"Hello from Server: server7","status":"successful"}"#
        );
        let beat = route("server7", &Method::GET, "/heartbeat");
        assert_eq!(beat.status(), StatusCode::OK);
        assert_eq!(body(beat).await, "");
        let missing = route("server7", &Method::GET, "/nope");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body(missing).await,
            r#"{"message":"<Error> '/nope' endpoint does not exist in server replicas","status":"failure"}"#
        );
    }
}
