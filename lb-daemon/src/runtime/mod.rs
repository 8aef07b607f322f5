//! Replica runtimes: how replicas are started, stopped and watched.
//!
//! The daemon asks a [`ReplicaRuntime`] for an [`Instance`] of a replica by hostname;
//! the runtime reports instances that end on their own through [`RuntimeEvent`]s, so
//! the daemon can respawn them faster than heartbeats would notice.
//!
//! | runtime | replicas are | respawn | on daemon start | on daemon stop |
//! |---|---|---|---|---|
//! | [`process::ProcessRuntime`] (default) | child processes | yes | starts `replicas` | stops them |
//! | [`docker::DockerRuntime`] | containers on a bridge network | yes | adopts its labelled containers | leaves them (or stops them with `stop_on_shutdown`) |
//! | [`swarm::SwarmRuntime`] | Swarm services of one task | by Swarm; Down until heartbeats rise | follows the swarm's owned services | leaves them (or removes them with `stop_on_shutdown`) |
//! | [`fixed::StaticRuntime`] | addresses someone else runs | no: Down until heartbeats rise | the configured list | nothing |

pub mod docker;
mod engine;
pub mod fixed;
pub mod process;
pub mod swarm;

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
    /// What it speaks, when its runtime says (a static replica's `protocol`); `None`:
    /// `upstream.protocol`. The pool fills it in when the instance joins.
    pub protocol: Option<crate::data_plane::protocol::Protocol>,
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
    /// The orchestrator's replica set, whole (runtimes that
    /// [follow an orchestrator](ReplicaRuntime::follows_orchestrator)): the pool adds
    /// the replicas it lacks, forgets those not listed, and takes a new instance where
    /// the address changed.
    Membership {
        /// Every replica with its current instance (`None` while it has no address, its
        /// task being replaced), oldest first.
        replicas: Vec<(NodeId, Option<Instance>)>,
    },
}

/// Replicas a runtime found at start: those to keep, and the names of dead ones to
/// replace.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Running replicas, with their instances.
    pub running: Vec<(NodeId, Instance)>,
    /// Replicas found dead (already cleaned up) that should be started again.
    pub dead: Vec<NodeId>,
    /// Ring weights the runtime's own configuration gives its replicas (the static
    /// list's `weight`); others weigh what the state file saved, else 1.
    pub weights: Vec<(NodeId, u32)>,
}

/// Why a runtime could not start a replica.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container engine does not answer.
    #[error("cannot reach the Docker engine ({0}); is dockerd running and DOCKER_HOST right?")]
    EngineUnreachable(String),
    /// The replica image is not in the engine.
    #[error("image {0} is not in the Docker engine; build it with examples/docker/build-images.sh")]
    ImageMissing(String),
    /// The engine is not a swarm manager (Swarm runtime).
    #[error(
        "the Docker engine is not a swarm manager: run `docker swarm init` (or point DOCKER_HOST at a manager) for runtime.kind = \"swarm\""
    )]
    NotSwarmManager,
    /// The orchestrator already has a replica of that hostname (another daemon added it).
    #[error("hostname '{0}' already exists")]
    ReplicaExists(NodeId),
    /// A container with the replica's name exists and is not this daemon's.
    #[error("container name {0} is taken by a container this daemon does not own")]
    NameTaken(String),
    /// Any other engine error.
    #[error("Docker engine error for {what}: {message}")]
    Engine {
        /// What was being done.
        what: String,
        /// The engine's message.
        message: String,
    },
    /// The static runtime needs an address for each new replica.
    #[error("replica {0} needs an address: the static runtime runs no replicas itself")]
    AddressRequired(NodeId),
    /// Only the static runtime takes addresses.
    #[error(
        "'addresses' is only for runtime.kind = \"static\"; this runtime starts replicas itself"
    )]
    AddressNotAccepted,
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

impl RuntimeError {
    /// For a runtime that chooses its replicas' addresses itself: `Ok` when the
    /// caller gave none.
    ///
    /// # Errors
    /// [`RuntimeError::AddressNotAccepted`] when `address` is `Some`.
    pub fn refuse_address(address: Option<SocketAddr>) -> Result<(), RuntimeError> {
        match address {
            None => Ok(()),
            Some(_) => Err(RuntimeError::AddressNotAccepted),
        }
    }
}

/// Locks a runtime's registry of instances. Every critical section leaves it
/// consistent, so a lock poisoned by a panic elsewhere is still safe to use.
fn lock<T>(registry: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts and stops replicas: child processes, Docker containers, or static addresses.
#[async_trait]
pub trait ReplicaRuntime: Send + Sync + std::fmt::Debug {
    /// Starts a replica under hostname `name` (at `address`, for the static runtime)
    /// and returns once it accepts connections.
    ///
    /// # Errors
    /// [`RuntimeError`] when it cannot be started or is not ready in time; nothing is
    /// left running then.
    async fn spawn(
        &self,
        name: &NodeId,
        address: Option<SocketAddr>,
    ) -> Result<Instance, RuntimeError>;

    /// Replicas that already run at daemon start (this daemon's containers, the
    /// configured static list). Default: none.
    ///
    /// # Errors
    /// [`RuntimeError`] when the runtime cannot be asked.
    async fn adopt(&self) -> Result<Adopted, RuntimeError> {
        Ok(Adopted::default())
    }

    /// The OS process id of a child-process instance (for the state file).
    fn pid_of(&self, _instance: InstanceId) -> Option<u32> {
        None
    }

    /// A replica of a previous daemon recorded with `pid` may still run (the daemon
    /// was killed): stop it if it is still that replica. Default: nothing to do.
    async fn reclaim(&self, _name: &NodeId, _pid: u32) {}

    /// Whether a Down replica is replaced (true) or left to rise again (static).
    fn respawns(&self) -> bool {
        true
    }

    /// Whether an orchestrator holds the replica set (Swarm): the runtime sends
    /// [`RuntimeEvent::Membership`] and the pool follows it; replicas are created at
    /// boot though the runtime does not respawn them itself.
    fn follows_orchestrator(&self) -> bool {
        false
    }

    /// Whether replicas stay running when the daemon stops, for the next daemon to adopt.
    fn keeps_replicas_on_shutdown(&self) -> bool {
        false
    }

    /// Stops an instance and waits for it to end. Unknown or ended instances are
    /// ignored. No [`RuntimeEvent`] is sent for an instance stopped this way.
    async fn stop(&self, instance: InstanceId);
}
