//! What the example replicas (`replica-server`, `vote-server`) share: the command
//! line that tells them who they are and where to listen; and [`tower_layer`], lb-core
//! embedded in a tower stack (the other embedding example, the `embedded-proxy` binary,
//! is a whole hyper proxy in `embed/embedded-proxy.rs`).

pub mod tower_layer;

use std::net::{IpAddr, SocketAddr};

/// `--id`, `--port`, `--host` (and `SERVER_ID`, `PORT`): set by lb-daemon's process
/// and Docker runtimes for every replica they start.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// The replica's id (its hostname on the ring), shown in its answers.
    #[arg(long, env = "SERVER_ID", default_value = "unknown")]
    pub id: String,
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
}

impl ReplicaArgs {
    /// The address to listen on: `host:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// A listener on [`addr`](Self::addr); `None` after printing
    /// `<program> <id>: cannot listen on <addr>: <reason>` to stderr (the replica then
    /// exits 1).
    pub async fn listen(&self, program: &str) -> Option<tokio::net::TcpListener> {
        let addr = self.addr();
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("{program} {}: cannot listen on {addr}: {e}", self.id);
                None
            }
        }
    }
}
