//! Replica runtimes: how replicas are started, stopped and watched.
//!
//! The daemon asks a [`ReplicaRuntime`] for an [`Instance`] of a replica by hostname;
//! the runtime reports instances that end on their own through [`RuntimeEvent`]s, so
//! the daemon can respawn them faster than heartbeats would notice. This issue's
//! runtime is [`process::ProcessRuntime`] (child processes).

pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use lb_core::NodeId;

/// One running incarnation of a replica, unique for the daemon's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u64);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A started replica: where to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// The incarnation.
    pub id: InstanceId,
    /// The address its HTTP server accepts on.
    pub addr: SocketAddr,
}

/// Something that happened to an instance without the daemon asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// The instance ended (exited, was killed).
    Exited {
        /// Which incarnation.
        instance: InstanceId,
        /// How it ended, for the log (`exit status: 1`, `signal: 9 (SIGKILL)`).
        reason: String,
    },
}

/// Why a runtime could not start a replica.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The program could not be started.
    #[error("cannot start replica {name}: {source}")]
    Spawn {
        /// The replica.
        name: NodeId,
        /// The OS error.
        source: std::io::Error,
    },
    /// The replica ended before it accepted connections.
    #[error("replica {name} exited before it was ready ({reason})")]
    ExitedEarly {
        /// The replica.
        name: NodeId,
        /// How it ended.
        reason: String,
    },
    /// The replica did not accept connections in time.
    #[error("replica {name} did not accept connections within {} ms", .after.as_millis())]
    NotReady {
        /// The replica.
        name: NodeId,
        /// The readiness deadline.
        after: Duration,
    },
}

/// Starts and stops replicas. Implementations: child processes (here), Docker and
/// static addresses (later).
#[async_trait]
pub trait ReplicaRuntime: Send + Sync + std::fmt::Debug {
    /// Starts a replica under hostname `name` and returns once it accepts connections.
    ///
    /// # Errors
    /// [`RuntimeError`] when it cannot be started or is not ready in time; nothing is
    /// left running then.
    async fn spawn(&self, name: &NodeId) -> Result<Instance, RuntimeError>;

    /// Stops an instance and waits for it to end. Unknown or ended instances are
    /// ignored. No [`RuntimeEvent`] is sent for an instance stopped this way.
    async fn stop(&self, instance: InstanceId);
}
