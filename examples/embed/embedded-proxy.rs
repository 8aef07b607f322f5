//! A consistent-hashing reverse proxy in one file, built on lb-core the way another
//! project would embed it: a `NodeMap` of upstreams (ring + one value per node), a
//! rise/fall `HealthState` per upstream fed by its own probe loop, the key's
//! `candidates` as the failover order, and its own hyper client.
//!
//! ```sh
//! embedded-proxy --listen 127.0.0.1:8000 \
//!     --upstream api1=127.0.0.1:9001 --upstream api2=127.0.0.1:9002
//! curl -H 'x-key: alice' localhost:8000/home   # always the same upstream while it is Up
//! ```
//!
//! Requests without `x-key` hash their path. The answer names the upstream in
//! `x-upstream`. An upstream that fails 2 probes in a row (every 200 ms) leaves
//! rotation, and its keys go to their next candidate until 2 probes pass again.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_core::{HashRing, HealthConfig, HealthState, NodeId, NodeMap, Outcome, Status};

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// `name=ip:port`, once per upstream.
    #[arg(long = "upstream", required = true, value_parser = parse_upstream)]
    upstreams: Vec<(NodeId, SocketAddr)>,
}

fn parse_upstream(text: &str) -> Result<(NodeId, SocketAddr), String> {
    let (name, addr) = text.split_once('=').ok_or("expected name=ip:port")?;
    let name = NodeId::new(name).map_err(|e| e.to_string())?;
    Ok((name, addr.parse().map_err(|e| format!("{addr}: {e}"))?))
}

/// What the proxy keeps per upstream, inside the ring's `NodeMap`.
#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    health: HealthState,
}

type Body = BoxBody<Bytes, hyper::Error>;
type Upstreams = Arc<RwLock<NodeMap<Upstream>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut map = NodeMap::new(HashRing::new())?;
    let rise_fall = HealthConfig::new(2, 2)?;
    for (name, addr) in args.upstreams {
        let health = HealthState::new(rise_fall, Status::Up, Instant::now());
        map.insert(name, 1, Upstream { addr, health })?;
    }
    let upstreams: Upstreams = Arc::new(RwLock::new(map));
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(probe_forever(Arc::clone(&upstreams), client.clone()));

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("embedded-proxy listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let (upstreams, client) = (Arc::clone(&upstreams), client.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                proxy(req, Arc::clone(&upstreams), client.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Forwards `req` to the first Up candidate of its key that answers.
async fn proxy(
    req: Request<Incoming>,
    upstreams: Upstreams,
    client: Client<HttpConnector, Body>,
) -> Result<Response<Body>, hyper::Error> {
    let key = match req.headers().get("x-key") {
        Some(value) => value.as_bytes().to_vec(),
        None => req.uri().path().as_bytes().to_vec(),
    };
    // The failover order, read under the lock and released before any await.
    let targets: Vec<(NodeId, SocketAddr)> = match upstreams.read() {
        Ok(map) => map
            .candidates(&key)
            .filter(|(_, upstream)| upstream.health.is_up())
            .map(|(node, upstream)| (node.id().clone(), upstream.addr))
            .take(2)
            .collect(),
        Err(_) => Vec::new(),
    };
    let (parts, body) = req.into_parts();
    // Buffered, so a second try can send it again.
    let body = body.collect().await?.to_bytes();
    for (name, addr) in targets {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
            break;
        };
        let mut upstream_req = Request::new(full(body.clone()));
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.headers_mut() = parts.headers.clone();
        upstream_req.headers_mut().remove(hyper::header::HOST);
        if let Ok(response) = client.request(upstream_req).await {
            let (mut head, body) = response.into_parts();
            if let Ok(value) = name.as_str().parse() {
                head.headers.insert("x-upstream", value);
            }
            return Ok(Response::from_parts(head, body.boxed()));
        }
        eprintln!("embedded-proxy: {name} at {addr} did not answer; trying the next candidate");
    }
    let mut unavailable = Response::new(full(Bytes::from_static(b"no upstream is Up\n")));
    *unavailable.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    Ok(unavailable)
}

/// Probes every upstream's `/heartbeat` every 200 ms and feeds rise/fall.
async fn probe_forever(upstreams: Upstreams, client: Client<HttpConnector, Body>) {
    loop {
        let targets: Vec<(NodeId, SocketAddr)> = match upstreams.read() {
            Ok(map) => map
                .iter()
                .map(|(node, upstream)| (node.id().clone(), upstream.addr))
                .collect(),
            Err(_) => return,
        };
        for (name, addr) in targets {
            let Ok(uri) = format!("http://{addr}/heartbeat").parse::<Uri>() else {
                continue;
            };
            let probe = tokio::time::timeout(Duration::from_millis(150), client.get(uri)).await;
            let outcome = match probe {
                Ok(Ok(response)) if response.status().is_success() => Outcome::Success,
                _ => Outcome::Failure,
            };
            if let Ok(mut map) = upstreams.write()
                && let Some(upstream) = map.value_mut(name.as_str())
                && let Some(change) = upstream.health.observe(outcome, Instant::now())
            {
                eprintln!("embedded-proxy: {name} is {:?}", change.to);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}
