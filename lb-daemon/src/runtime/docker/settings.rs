//! What a replica container looks like: the validated `[runtime]` settings of the
//! Docker runtime, the labels that mark a container as this daemon's, and the
//! container spec they give for one replica.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use lb_core::NodeId;

/// Label naming the daemon that owns a container.
pub const OWNER_LABEL: &str = "io.consistent-lb.owner";
/// Label holding a container's replica hostname.
pub const REPLICA_LABEL: &str = "io.consistent-lb.replica";

/// How the daemon reaches a replica container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressMode {
    /// The container's IP address on the network (daemon on the host).
    ContainerIp,
    /// The hostname alias, resolved by Docker's DNS (daemon in a container).
    Alias,
}

/// Validated `[runtime]` settings of the Docker runtime.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// Replica image, e.g. `lb-replica:latest`.
    pub image: String,
    /// User-defined bridge network.
    pub network: String,
    /// Prefix of container names.
    pub name_prefix: String,
    /// Value of the owner label.
    pub owner: String,
    /// Port the replica listens on inside its container.
    pub port: u16,
    /// How replicas are reached.
    pub address: AddressMode,
    /// Extra environment for every replica.
    pub env: BTreeMap<String, String>,
    /// Extra environment per hostname.
    pub replica_env: BTreeMap<String, BTreeMap<String, String>>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// Remove replicas when the daemon stops (else leave them for adoption).
    pub stop_on_shutdown: bool,
    /// How long a new container has to accept connections.
    pub ready_timeout: Duration,
    /// How long a stopped container gets between SIGTERM and SIGKILL (`docker stop -t`).
    pub stop_timeout: Duration,
}

impl DockerSettings {
    /// The container spec of replica `name`: image, environment (`SERVER_ID`,
    /// `PORT`, then `env` and `replica_env.<name>`), owner and replica labels,
    /// limits, and the network with `name` as its alias.
    pub(super) fn container_config(&self, name: &NodeId) -> ContainerCreateBody {
        let mut env = vec![format!("SERVER_ID={name}"), format!("PORT={}", self.port)];
        let extra = self.replica_env.get(name.as_str());
        for (key, value) in self.env.iter().chain(extra.into_iter().flatten()) {
            env.push(format!("{key}={value}"));
        }
        let labels = HashMap::from([
            (OWNER_LABEL.to_string(), self.owner.clone()),
            (REPLICA_LABEL.to_string(), name.to_string()),
        ]);
        let endpoint = EndpointSettings {
            aliases: Some(vec![name.to_string()]),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                memory: self.memory_bytes,
                nano_cpus: self.nano_cpus,
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.clone(), endpoint)])),
            }),
            ..Default::default()
        }
    }
}
