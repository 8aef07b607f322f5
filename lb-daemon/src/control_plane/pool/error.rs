//! Why an admin call was refused.

use lb_core::NodeId;

use super::MAX_REPLICAS;
use crate::runtime::RuntimeError;

/// Why an admin call was refused. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `/add` named more hostnames than `n` (message kept from the Python balancer).
    #[error("Length of hostname list is more than newly added instances")]
    TooManyNamesToAdd,
    /// `/rm` named more hostnames than `n` (message kept from the Python balancer).
    #[error("Length of hostname list is more than removable instances")]
    TooManyNamesToRemove,
    /// `n` above the configured cap.
    #[error("n = {n} is above the limit of {max} per call")]
    OverCap {
        /// Asked.
        n: usize,
        /// Allowed.
        max: usize,
    },
    /// The pool would exceed `MAX_REPLICAS` (1,024).
    #[error("adding {n} replicas would exceed the limit of {MAX_REPLICAS} replicas")]
    PoolFull {
        /// Asked.
        n: usize,
    },
    /// The same hostname twice in one call.
    #[error("hostname '{0}' is listed twice")]
    Duplicate(NodeId),
    /// `/add` of a hostname in use.
    #[error("hostname '{0}' already exists")]
    Exists(NodeId),
    /// `/rm` of a hostname not in the pool.
    #[error("hostname '{0}' does not exist")]
    Unknown(NodeId),
    /// A weight the ring refuses (above 256, or too many points); the reason.
    #[error("{0}")]
    Weight(String),
    /// `weights` given, but not one per hostname.
    #[error("give one weight per hostname: {hostnames} hostnames, {weights} weights")]
    WeightCount {
        /// Hostnames given.
        hostnames: usize,
        /// Weights given.
        weights: usize,
    },
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A replica could not be started; the others of the call were stopped.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
}
