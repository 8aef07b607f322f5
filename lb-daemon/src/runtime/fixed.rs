//! The static runtime: replicas someone else runs at fixed addresses. The daemon only
//! probes them and keeps them on the ring; it never starts or stops anything. A Down
//! replica stays on the ring (its keys fail over) until heartbeats bring it back Up.
//! `/add` takes an address per hostname; `/rm` only forgets the replica.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use lb_core::NodeId;

use super::{Adopted, Instance, InstanceId, ReplicaRuntime, RuntimeError};

/// Replicas at fixed addresses.
#[derive(Debug)]
pub struct StaticRuntime {
    configured: Vec<(NodeId, SocketAddr, Option<u32>)>,
    next_id: AtomicU64,
}

impl StaticRuntime {
    /// A runtime whose boot replicas are `configured` (hostname, address, and the
    /// weight the config gives, if any).
    pub fn new(configured: Vec<(NodeId, SocketAddr, Option<u32>)>) -> Self {
        Self {
            configured,
            next_id: AtomicU64::new(1),
        }
    }

    fn instance(&self, addr: SocketAddr) -> Instance {
        Instance {
            id: InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            addr,
        }
    }
}

#[async_trait]
impl ReplicaRuntime for StaticRuntime {
    async fn spawn(
        &self,
        name: &NodeId,
        address: Option<SocketAddr>,
    ) -> Result<Instance, RuntimeError> {
        let addr = address.ok_or_else(|| RuntimeError::AddressRequired(name.clone()))?;
        Ok(self.instance(addr))
    }

    async fn stop(&self, _instance: InstanceId) {}

    async fn adopt(&self) -> Result<Adopted, RuntimeError> {
        Ok(Adopted {
            running: self
                .configured
                .iter()
                .map(|(name, addr, _)| (name.clone(), self.instance(*addr)))
                .collect(),
            dead: Vec::new(),
            weights: self
                .configured
                .iter()
                .filter_map(|(name, _, weight)| weight.map(|w| (name.clone(), w)))
                .collect(),
        })
    }

    fn respawns(&self) -> bool {
        false
    }

    fn keeps_replicas_on_shutdown(&self) -> bool {
        true
    }
}
