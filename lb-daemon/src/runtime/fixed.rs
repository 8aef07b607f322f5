//! The static runtime: replicas someone else runs at fixed addresses. The daemon only
//! probes them and keeps them on the ring; it never starts or stops anything. A Down
//! replica stays on the ring (its keys fail over) until heartbeats bring it back Up.
//! `/add` takes an address per hostname; `/rm` only forgets the replica.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use lb_core::NodeId;

use crate::config::StaticReplica;
use crate::data_plane::protocol::Protocol;

use super::{Adopted, Instance, InstanceId, ReplicaRuntime, RuntimeError};

/// Replicas at fixed addresses.
#[derive(Debug)]
pub struct StaticRuntime {
    configured: Vec<StaticReplica>,
    next_id: AtomicU64,
}

impl StaticRuntime {
    /// A runtime whose boot replicas are `configured`.
    pub fn new(configured: Vec<StaticReplica>) -> Self {
        Self {
            configured,
            next_id: AtomicU64::new(1),
        }
    }

    fn instance(&self, addr: SocketAddr, protocol: Option<Protocol>) -> Instance {
        Instance {
            id: InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            addr,
            protocol,
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
        // A replica added later speaks the one its configured namesake spoke, else
        // `upstream.protocol`.
        let protocol = self
            .configured
            .iter()
            .find(|r| &r.name == name)
            .and_then(|r| r.protocol);
        Ok(self.instance(addr, protocol))
    }

    async fn stop(&self, _instance: InstanceId) {}

    async fn adopt(&self) -> Result<Adopted, RuntimeError> {
        Ok(Adopted {
            running: self
                .configured
                .iter()
                .map(|r| (r.name.clone(), self.instance(r.addr, r.protocol)))
                .collect(),
            dead: Vec::new(),
            weights: self
                .configured
                .iter()
                .filter_map(|r| r.weight.map(|w| (r.name.clone(), w)))
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
