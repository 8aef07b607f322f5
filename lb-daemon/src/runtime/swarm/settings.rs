//! What a replica service looks like: the validated `[runtime]` settings of the Swarm
//! runtime and the service spec they give for one replica.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use lb_core::NodeId;

use crate::runtime::docker::{DockerSettings, OWNER_LABEL, REPLICA_LABEL};

/// How the daemon reaches a replica service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmAddress {
    /// The address of the node that runs the replica's task and the port published
    /// for the task on that node (`mode=host`; the engine picks a free port): for a
    /// daemon on a host of the swarm. Needs no routing mesh.
    Published,
    /// The service's name, resolved by Docker's DNS to its task's IP (`dnsrr`
    /// endpoint mode): for a daemon in a container on the same overlay network. Needs
    /// no virtual IP (IPVS).
    Alias,
}

/// Validated `[runtime]` settings of the Swarm runtime.
#[derive(Debug, Clone)]
pub struct SwarmSettings {
    /// What it shares with the Docker runtime: image, network (an overlay here), name
    /// prefix (of services), owner, port, environment, limits, timeouts.
    pub base: DockerSettings,
    /// How replicas are reached.
    pub address: SwarmAddress,
    /// Placement constraints of every replica's task, e.g. `node.role == worker`.
    pub constraints: Vec<String>,
}

/// How long Swarm waits before restarting a failed task: 100 ms (Swarm's own default
/// is 5 s, which would keep a killed replica's keys on their fallback that long).
const RESTART_DELAY_NS: i64 = 100_000_000;

impl SwarmSettings {
    /// The service name of replica `name`: the prefix, then the hostname.
    pub(super) fn service_name(&self, name: &NodeId) -> String {
        format!("{}{name}", self.base.name_prefix)
    }

    /// The spec of replica `name`'s service: one task of the image with `SERVER_ID`,
    /// `PORT`, `runtime.env` and `runtime.replica_env.<name>`, the owner and replica
    /// labels (on the service and its containers), restart on any exit, the limits and
    /// constraints, attached to the overlay `network` (an ID) with `name` as an alias, and its
    /// port published on the task's node (`Published`) or its task reachable by name
    /// (`Alias`, DNS round robin). Neither needs Swarm's routing mesh or virtual IPs,
    /// which need IPVS in the kernel.
    pub(super) fn service_spec(&self, name: &NodeId, network: &str) -> ServiceSpec {
        let base = &self.base;
        let mut env = vec![format!("SERVER_ID={name}"), format!("PORT={}", base.port)];
        let extra = base.replica_env.get(name.as_str());
        for (key, value) in base.env.iter().chain(extra.into_iter().flatten()) {
            env.push(format!("{key}={value}"));
        }
        let labels = HashMap::from([
            (OWNER_LABEL.to_string(), base.owner.clone()),
            (REPLICA_LABEL.to_string(), name.to_string()),
        ]);
        let limits =
            (base.memory_bytes.is_some() || base.nano_cpus.is_some()).then(|| TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: base.nano_cpus,
                    memory_bytes: base.memory_bytes,
                    ..Default::default()
                }),
                ..Default::default()
            });
        let endpoint = match self.address {
            SwarmAddress::Published => EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: Some(vec![EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(i64::from(base.port)),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
            },
            SwarmAddress::Alias => EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ..Default::default()
            },
        };
        ServiceSpec {
            name: Some(self.service_name(name)),
            labels: Some(labels.clone()),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(base.image.clone()),
                    env: Some(env),
                    labels: Some(labels),
                    hostname: Some(name.to_string()),
                    ..Default::default()
                }),
                resources: limits,
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(RESTART_DELAY_NS),
                    ..Default::default()
                }),
                placement: (!self.constraints.is_empty()).then(|| TaskSpecPlacement {
                    constraints: Some(self.constraints.clone()),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(network.to_string()),
                    aliases: Some(vec![name.to_string()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            endpoint_spec: Some(endpoint),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Runtime};

    #[test]
    fn a_replica_service_is_one_labelled_task_published_on_its_node() {
        let config = Config::parse(
            "[runtime]\nkind = \"swarm\"\nname_prefix = \"p-\"\nowner = \"o1\"\nmemory_mb = 64\nconstraints = [\"node.role == worker\"]\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        let Runtime::Swarm(settings) = config.runtime else {
            panic!("not a swarm runtime");
        };
        let spec = settings.service_spec(&NodeId::new("s4").unwrap(), "net-id");
        assert_eq!(
            spec.task_template
                .as_ref()
                .unwrap()
                .networks
                .as_ref()
                .unwrap()[0]
                .target
                .as_deref(),
            Some("net-id")
        );
        assert_eq!(spec.name.as_deref(), Some("p-s4"));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[OWNER_LABEL], "o1");
        assert_eq!(labels[REPLICA_LABEL], "s4");
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(1));
        let task = spec.task_template.unwrap();
        let container = task.container_spec.unwrap();
        assert_eq!(container.labels.unwrap()[OWNER_LABEL], "o1");
        assert_eq!(container.env.unwrap(), ["SERVER_ID=s4", "PORT=8080", "A=1"]);
        assert_eq!(
            task.resources.unwrap().limits.unwrap().memory_bytes,
            Some(64 << 20)
        );
        assert_eq!(
            task.placement.unwrap().constraints.unwrap(),
            ["node.role == worker"]
        );
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::ANY)
        );
        let endpoint = spec.endpoint_spec.unwrap();
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let port = &endpoint.ports.unwrap()[0];
        assert_eq!(port.target_port, Some(8080));
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
    }
}
