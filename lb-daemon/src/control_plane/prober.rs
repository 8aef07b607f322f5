//! Heartbeats: every `heartbeat.interval_ms`, `GET <heartbeat.path>` on each replica
//! with `heartbeat.timeout_ms`; a 2xx answer is a success, anything else (refused,
//! reset, timeout, other status) a failure. With `heartbeat.kind = "tcp"` a connection
//! that opens within the timeout is a success. Results feed the pool's rise/fall state.
//!
//! Probes of one round run concurrently; the next round starts one interval after the
//! previous one started (rounds that overrun are delayed, never stacked).

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lb_core::Outcome;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::{Heartbeat, ProbeKind};
use crate::control_plane::pool::ReplicaPool;

/// Probes every replica of `pool` until `shutdown` is cancelled.
/// `heartbeat` is read at every round, so a config reload (SIGHUP) applies to the
/// next round.
pub async fn run(
    pool: Arc<ReplicaPool>,
    settings: Arc<ArcSwap<Heartbeat>>,
    shutdown: CancellationToken,
) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
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
            let client = client.clone();
            let path = heartbeat.path.clone();
            let (kind, limit) = (heartbeat.kind, heartbeat.timeout);
            round.spawn(async move {
                let outcome = match kind {
                    ProbeKind::Http => http_probe(&client, &instance.addr, &path, limit).await,
                    ProbeKind::Tcp => {
                        match timeout(limit, tokio::net::TcpStream::connect(instance.addr)).await {
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
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: &std::net::SocketAddr,
    path: &str,
    limit: std::time::Duration,
) -> Outcome {
    let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
        return Outcome::Failure;
    };
    match timeout(limit, client.get(uri)).await {
        Ok(Ok(response)) if response.status().is_success() => Outcome::Success,
        _ => Outcome::Failure,
    }
}
