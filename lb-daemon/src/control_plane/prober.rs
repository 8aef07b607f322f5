//! Heartbeats: every `heartbeat.interval_ms`, one probe of each replica within
//! `heartbeat.timeout_ms`; results feed the pool's rise/fall state.
//!
//! - `http` (default): `GET <heartbeat.path>` in the replica's protocol (HTTP/1.1, or
//!   HTTP/2 with prior knowledge to an h2c replica); a 2xx answer passes.
//! - `grpc`: `grpc.health.v1.Health/Check` for `heartbeat.service` over h2c; passes
//!   when the call ends with `grpc-status: 0` and the answer says `SERVING`.
//! - `tcp`: a connection that opens passes.
//!
//! Anything else (refused, reset, timeout, another status) is a failure. Probes of one
//! round run concurrently; the next round starts one interval after the previous one
//! started (rounds that overrun are delayed, never stacked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, TE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lb_core::Outcome;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::{Heartbeat, ProbeKind};
use crate::control_plane::grpc_health;
use crate::control_plane::pool::ReplicaPool;
use crate::data_plane::protocol::Protocol;

/// A probe's HTTP client: keep-alive connections to every replica.
type ProbeClient = Client<HttpConnector, Full<Bytes>>;

/// The clients of the probes: one per protocol.
#[derive(Clone)]
struct Clients {
    http1: ProbeClient,
    h2c: ProbeClient,
}

impl Clients {
    fn new() -> Self {
        Self {
            http1: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            h2c: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    fn speaking(&self, protocol: Protocol) -> &ProbeClient {
        match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::H2c => &self.h2c,
        }
    }
}

/// Probes every replica of `pool` until `shutdown` is cancelled.
/// `heartbeat` is read at every round, so a config reload (SIGHUP) applies to the
/// next round.
pub async fn run(
    pool: Arc<ReplicaPool>,
    settings: Arc<ArcSwap<Heartbeat>>,
    shutdown: CancellationToken,
) {
    let clients = Clients::new();
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(next) => {}
        }
        let heartbeat = settings.load_full();
        next += heartbeat.interval;
        if next < Instant::now() {
            next = Instant::now(); // a round overran: start the next one at once, never stack
        }
        let mut round = JoinSet::new();
        for (name, instance) in pool.probe_targets() {
            let clients = clients.clone();
            let heartbeat = Arc::clone(&heartbeat);
            round.spawn(async move {
                let protocol = instance.protocol.unwrap_or_default();
                let (addr, limit) = (instance.addr, heartbeat.timeout);
                let outcome = match heartbeat.kind {
                    ProbeKind::Http => {
                        let client = clients.speaking(protocol);
                        http_probe(client, addr, &heartbeat.path, limit).await
                    }
                    ProbeKind::Grpc => {
                        grpc_probe(&clients.h2c, addr, &heartbeat.service, limit).await
                    }
                    ProbeKind::Tcp => {
                        match timeout(limit, tokio::net::TcpStream::connect(addr)).await {
                            Ok(Ok(_)) => Outcome::Success,
                            _ => Outcome::Failure,
                        }
                    }
                };
                (name, instance.id, outcome)
            });
        }
        while let Some(result) = round.join_next().await {
            if let Ok((name, instance, outcome)) = result {
                pool.observe(&name, instance, outcome);
            }
        }
    }
}

/// `GET http://<addr><path>` within `limit`: a 2xx answer passes.
async fn http_probe(
    client: &ProbeClient,
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Outcome {
    let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
        return Outcome::Failure;
    };
    match timeout(limit, client.get(uri)).await {
        Ok(Ok(response)) if response.status().is_success() => Outcome::Success,
        _ => Outcome::Failure,
    }
}

/// `grpc.health.v1.Health/Check` for `service` on `addr` within `limit`: passes when
/// the call succeeds (`grpc-status: 0` in the trailers) and answers `SERVING`.
async fn grpc_probe(
    client: &ProbeClient,
    addr: SocketAddr,
    service: &str,
    limit: Duration,
) -> Outcome {
    let uri = format!("http://{addr}{}", grpc_health::CHECK_PATH);
    let Ok(request) = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .header(TE, HeaderValue::from_static("trailers"))
        .body(Full::new(grpc_health::check_request(service)))
    else {
        return Outcome::Failure;
    };
    let call = async {
        let response = client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let collected = response.into_body().collect().await.ok()?;
        let ok = collected
            .trailers()
            .and_then(|t| t.get(crate::data_plane::grpc::GRPC_STATUS))
            .is_some_and(|status| status == "0");
        Some(ok && grpc_health::is_serving(&collected.to_bytes()))
    };
    match timeout(limit, call).await {
        Ok(Some(true)) => Outcome::Success,
        _ => Outcome::Failure,
    }
}
