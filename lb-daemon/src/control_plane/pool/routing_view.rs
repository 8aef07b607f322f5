//! The data plane's handle on the pool.

use std::sync::Arc;

use lb_core::NodeId;

use super::ReplicaPool;
use crate::data_plane::snapshot::Snapshot;
use crate::runtime::InstanceId;

/// The data plane's whole handle on the pool: the routing snapshot to read (one atomic
/// load, no lock) and the passive outcomes of proxied tries to report. Nothing here
/// changes membership, takes the admin lock or publishes a snapshot: the request path
/// holds this type, never the [`ReplicaPool`] itself.
#[derive(Debug, Clone)]
pub struct RoutingView(pub(super) Arc<ReplicaPool>);

impl RoutingView {
    /// The current routing snapshot (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot()
    }

    /// A try to `instance` of `name` failed in a way charged to the replica; see
    /// [`ReplicaPool::report_failure`].
    pub fn report_failure(&self, name: &NodeId, instance: InstanceId) {
        self.0.report_failure(name, instance);
    }

    /// A request to `instance` of `name` succeeded after earlier failures; see
    /// [`ReplicaPool::report_success`].
    pub fn report_success(&self, name: &NodeId, instance: InstanceId) {
        self.0.report_success(name, instance);
    }
}
