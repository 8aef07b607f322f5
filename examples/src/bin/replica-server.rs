//! `replica-server [--id ID] [--port PORT] [--host HOST]`: the replica the load
//! balancer starts in tests, in the quickstart and in the Docker image.
//!
//! - `GET /home` → `200 {"message":"Hello from Server: <ID>","status":"successful"}`
//! - `GET /heartbeat` → `200` with an empty body
//! - `GET /sleep/<ms>` → `200` after `ms` milliseconds (at most 60,000): a slow request,
//!   for drain and timeout drills
//! - anything else → `404 {"message":"<Error> '<path>' endpoint does not exist in server replicas","status":"failure"}`
//!
//! `ID` comes from `--id` or `SERVER_ID` (default `unknown`), the port from `--port` or
//! `PORT` (default 8080), the address from `--host` (default `0.0.0.0`). It serves
//! until SIGINT or SIGTERM and exits 0; it exits 1 if it cannot bind.
//!
//! For failure drills, `--exit-after-ms MS` (or `EXIT_AFTER_MS`) makes it exit with
//! status 3 that many milliseconds after it starts listening, like a replica that
//! keeps crashing.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A replica for lb-daemon to balance over.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's id, echoed by /home.
    #[arg(long, env = "SERVER_ID", default_value = "unknown")]
    id: String,
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: IpAddr,
    /// Exit with status 3 this many milliseconds after starting (failure drills).
    #[arg(long, env = "EXIT_AFTER_MS")]
    exit_after_ms: Option<u64>,
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let addr = SocketAddr::new(args.host, args.port);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("replica-server {}: cannot listen on {addr}: {e}", args.id);
            return ExitCode::from(1);
        }
    };
    eprintln!("replica-server {} listening on {addr}", args.id);
    let id: Arc<str> = Arc::from(args.id);
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
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let delay = sleep_ms(req.method(), req.uri().path());
                let response = route(&id, req.method(), req.uri().path());
                async move {
                    if let Some(ms) = delay {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
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
