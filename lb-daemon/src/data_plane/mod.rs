//! The data plane: everything a proxied request touches, and nothing else.
//!
//! `workers` OS threads, each a current-thread tokio runtime with its own
//! `SO_REUSEPORT` listener ([`listener`]), its own client connections
//! ([`connection`]), its own keep-alive pool per replica ([`upstream_pool`]), its own
//! multiplexed connections to replicas that speak h2c ([`h2_pool`], [`protocol`]) and
//! its own latency histogram ([`worker`]). A request is keyed ([`key`]), routed on the
//! routing [`snapshot`] loaded with arc-swap by its [`routing`] choice, and forwarded with
//! retries and fault attribution ([`forward`]), giving up on a replica suspected of
//! making no progress or out of rotation ([`suspicion`]), hedging a slow `GET` on the
//! key's next replica ([`hedge`]), with per-path try timeouts ([`slow_paths`]); its bodies ([`body`]), headers ([`headers`]), upgrades ([`tunnel`])
//! and counts ([`accounting`]) each have their module; [`reply`] holds the response
//! bodies and the answer shapes the daemon writes itself, [`grpc`] how it answers a gRPC
//! call itself and bounds one by its `grpc-timeout`. Common HTTP/1.1 requests take
//! the lean path ([`h1`]); hyper serves the rest.
//!
//! The request path takes no lock of the control plane: it reads the snapshot the
//! control plane publishes, and reports passive outcomes only when a try failed (or
//! the first success after failures).

pub mod accounting;
pub mod body;
pub mod connection;
pub mod forward;
pub mod grpc;
pub mod h1;
pub mod h2_pool;
pub mod headers;
pub mod hedge;
pub mod hyper_connection;
pub mod key;
pub mod listener;
pub mod protocol;
pub mod reply;
pub mod routing;
pub mod slow_paths;
pub mod snapshot;
pub mod suspicion;
pub mod tls;
pub mod tunnel;
pub mod upstream_pool;
pub mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::data_plane::worker::{ProxyHandler, WorkerSettings};

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts one worker per listener; `handler(i)` makes worker `i`'s handler.
    ///
    /// # Errors
    /// When a worker thread or runtime cannot be created; the workers already started
    /// stop when `shutdown` is cancelled.
    pub fn start(
        listeners: Vec<std::net::TcpListener>,
        mut handler: impl FnMut(usize) -> ProxyHandler,
        settings: &WorkerSettings,
        shutdown: &CancellationToken,
    ) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(listeners.len());
        for (index, listener) in listeners.into_iter().enumerate() {
            threads.push(worker::spawn(
                index,
                listener,
                Arc::new(handler(index)),
                settings.clone(),
                shutdown.child_token(),
            )?);
        }
        Ok(Self { threads })
    }

    /// Waits until every worker has drained and stopped.
    pub async fn join(self) {
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
