//! The Swarm runtime (crate `bollard`, against a swarm manager's engine): each replica
//! is a Swarm service of one task, and **the swarm is the source of truth** for the
//! replica set.
//!
//! - Service name: `runtime.name_prefix` + hostname; labels `io.consistent-lb.owner =
//!   <runtime.owner>` and `io.consistent-lb.replica = <hostname>` on the service and its
//!   containers; environment `SERVER_ID=<hostname>`, `PORT`, `runtime.env`,
//!   `runtime.replica_env.<hostname>`; restart on any exit after 100 ms; limits
//!   (`memory_mb`, `cpus`) and `constraints`; attached to the overlay network
//!   `runtime.network` (created attachable when missing). Services without the owner
//!   label are never touched.
//! - Address: the address of the node running the task and the port published for the
//!   task there (`address = "published"`, `mode=host`, for a daemon on a host of the
//!   swarm), or the service name resolved to its task's IP (`address = "alias"`, DNS
//!   round robin, for a daemon in a container on the network). Neither needs Swarm's
//!   routing mesh or virtual IPs (IPVS, which some kernels lack). A replaced task has
//!   a new address, so a new instance, which joins Down until heartbeats pass.
//! - Respawn is Swarm's: a task's container that dies is reported at once
//!   ([`RuntimeEvent::Exited`]) so the replica leaves rotation, and heartbeats bring it
//!   back when the new task passes them.
//! - Membership: on every service event and every second, the owned services are read
//!   from the engine and sent as [`RuntimeEvent::Membership`]; the pool follows that
//!   list, so every daemon on the same swarm and owner has the same ring, and an `/add`
//!   or `/rm` on one is seen by the others within a second.

mod settings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    EventMessage, EventMessageTypeEnum, LocalNodeState, Service, Task, TaskState,
};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
};
use futures_util::StreamExt;
use lb_core::NodeId;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

use super::docker::{OWNER_LABEL, REPLICA_LABEL};
use super::engine::{self, error as engine, status_of};
use super::{Adopted, Instance, InstanceId, ReplicaRuntime, RuntimeError, RuntimeEvent, lock};

pub use settings::{SwarmAddress, SwarmSettings};

/// How often the owned services are read again without an event.
const RESYNC: Duration = Duration::from_secs(1);

/// The replicas this daemon knows, by hostname: the instance id it gave each and the
/// address that instance is reached at. A replica keeps its instance while its
/// address stays the same.
#[derive(Debug, Default)]
struct Registry {
    by_name: HashMap<NodeId, Instance>,
}

/// Runs replicas as Swarm services.
#[derive(Debug)]
pub struct SwarmRuntime {
    docker: Docker,
    settings: SwarmSettings,
    /// The ID of the overlay network (`runtime.network`) services are attached to.
    network: String,
    next_id: Arc<AtomicU64>,
    registry: Arc<Mutex<Registry>>,
}

impl SwarmRuntime {
    /// Connects to the engine, checks that it is a swarm manager and has the image,
    /// creates the overlay network if missing, and starts following the owned
    /// services (sent on `events`).
    ///
    /// # Errors
    /// [`RuntimeError::EngineUnreachable`], [`RuntimeError::NotSwarmManager`],
    /// [`RuntimeError::ImageMissing`], or an engine error creating the network.
    pub async fn connect(
        settings: SwarmSettings,
        events: mpsc::UnboundedSender<RuntimeEvent>,
    ) -> Result<Self, RuntimeError> {
        let docker = engine::connect()?;
        let info = docker
            .info()
            .await
            .map_err(|e| RuntimeError::EngineUnreachable(e.to_string()))?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.local_node_state != Some(LocalNodeState::ACTIVE)
            || swarm.control_available != Some(true)
        {
            return Err(RuntimeError::NotSwarmManager);
        }
        engine::check_image(&docker, &settings.base.image).await?;
        let base = &settings.base;
        let network =
            engine::ensure_network(&docker, &base.network, "overlay", &base.owner).await?;
        let runtime = Self {
            docker,
            settings,
            network,
            next_id: Arc::new(AtomicU64::new(1)),
            registry: Arc::new(Mutex::new(Registry::default())),
        };
        runtime.follow(events);
        Ok(runtime)
    }

    /// A copy that shares the engine connection and the registry, for the follower
    /// task.
    fn handle(&self) -> Self {
        Self {
            docker: self.docker.clone(),
            settings: self.settings.clone(),
            network: self.network.clone(),
            next_id: Arc::clone(&self.next_id),
            registry: Arc::clone(&self.registry),
        }
    }

    /// Sends the owned services as [`RuntimeEvent::Membership`] after every service
    /// event, every start or death of a replica's task container, and every
    /// [`RESYNC`], and [`RuntimeEvent::Exited`] when a replica's task container dies;
    /// reconnects to the event stream if it breaks.
    fn follow(&self, events: mpsc::UnboundedSender<RuntimeEvent>) {
        let runtime = self.handle();
        tokio::spawn(async move {
            loop {
                let owner = format!("{OWNER_LABEL}={}", runtime.settings.base.owner);
                let services = EventsOptionsBuilder::new()
                    .filters(&HashMap::from([(
                        "type".to_string(),
                        vec!["service".to_string()],
                    )]))
                    .build();
                let containers = EventsOptionsBuilder::new()
                    .filters(&HashMap::from([
                        ("type".to_string(), vec!["container".to_string()]),
                        ("label".to_string(), vec![owner]),
                        ("event".to_string(), vec!["die".into(), "start".into()]),
                    ]))
                    .build();
                let mut stream = futures_util::stream::select(
                    runtime.docker.events(Some(services)),
                    runtime.docker.events(Some(containers)),
                );
                let mut tick = tokio::time::interval(RESYNC);
                loop {
                    tokio::select! {
                        event = stream.next() => match event {
                            Some(Ok(event)) => {
                                if let Some(exit) = runtime.exit_of(event)
                                    && events.send(exit).is_err()
                                {
                                    return;
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "Docker event stream failed");
                                break;
                            }
                            None => break,
                        },
                        _ = tick.tick() => {}
                    }
                    match runtime.owned().await {
                        Ok(replicas) => {
                            if events.send(RuntimeEvent::Membership { replicas }).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot list the replica services"),
                    }
                }
                if events.is_closed() {
                    return;
                }
                sleep(RESYNC).await;
            }
        });
    }

    /// The [`RuntimeEvent::Exited`] of a `die` event of a replica's task container
    /// (other events only make the follower list the services again, at once).
    fn exit_of(&self, event: EventMessage) -> Option<RuntimeEvent> {
        if event.typ != Some(EventMessageTypeEnum::CONTAINER)
            || event.action.as_deref() != Some("die")
        {
            return None;
        }
        let replica = event.actor?.attributes?.get(REPLICA_LABEL).cloned()?;
        let instance = self.registered(&NodeId::new(replica).ok()?)?;
        Some(RuntimeEvent::Exited {
            instance: instance.id,
            reason: "its Swarm task's container died; Swarm restarts it".to_string(),
        })
    }

    /// The instance registered for `name`.
    fn registered(&self, name: &NodeId) -> Option<Instance> {
        lock(&self.registry).by_name.get(name).copied()
    }

    /// `name`'s instance at `addr`: the registered one if its address is the same,
    /// else a new one.
    fn register(&self, name: &NodeId, addr: SocketAddr) -> Instance {
        let mut registry = lock(&self.registry);
        match registry.by_name.get(name) {
            Some(instance) if instance.addr == addr => *instance,
            _ => {
                let id = InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed));
                let instance = Instance {
                    id,
                    addr,
                    protocol: None,
                };
                registry.by_name.insert(name.clone(), instance);
                instance
            }
        }
    }

    /// Every service with this daemon's owner label, oldest first, with its registered
    /// instance (`None` while it has no running task or no address); forgets the
    /// replicas whose service is gone.
    async fn owned(&self) -> Result<Vec<(NodeId, Option<Instance>)>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{OWNER_LABEL}={}", self.settings.base.owner)],
        )]);
        let mut services = self
            .docker
            .list_services(Some(
                ListServicesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(engine("listing services"))?;
        services.sort_by_key(|s| s.created_at.as_ref().map(|t| t.to_string()));
        let tasks = self.running_tasks().await?;
        let mut replicas = Vec::with_capacity(services.len());
        for service in &services {
            let Some(name) = replica_of(service) else {
                continue;
            };
            let instance = match self.address_of(service, &name, &tasks).await {
                Some(addr) => Some(self.register(&name, addr)),
                None => {
                    // No running task: the replica keeps its place, with no instance.
                    lock(&self.registry).by_name.remove(&name);
                    None
                }
            };
            replicas.push((name, instance));
        }
        lock(&self.registry)
            .by_name
            .retain(|name, _| replicas.iter().any(|(n, _)| n == name));
        Ok(replicas)
    }

    /// Tasks in state running, with the address of each node they run on, each node
    /// asked once (Published mode; Alias needs none).
    async fn running_tasks(&self) -> Result<Running, RuntimeError> {
        if self.settings.address == SwarmAddress::Alias {
            return Ok(Running::default());
        }
        let filters = HashMap::from([("desired-state".to_string(), vec!["running".to_string()])]);
        let tasks = self
            .docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(engine("listing tasks"))?;
        let tasks: Vec<Task> = tasks
            .into_iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .collect();
        let mut nodes = HashMap::new();
        for node_id in tasks.iter().filter_map(|t| t.node_id.as_deref()) {
            if nodes.contains_key(node_id) {
                continue;
            }
            let addr = self
                .docker
                .inspect_node(node_id)
                .await
                .ok()
                .and_then(|node| node.status?.addr?.parse::<std::net::IpAddr>().ok());
            if let Some(addr) = addr {
                nodes.insert(node_id.to_string(), addr);
            }
        }
        Ok(Running { tasks, nodes })
    }

    /// Where `service` (replica `name`) is reached, per [`SwarmAddress`]; `None` until
    /// its task runs and has its port (or DNS knows its name).
    async fn address_of(
        &self,
        service: &Service,
        name: &NodeId,
        running: &Running,
    ) -> Option<SocketAddr> {
        match self.settings.address {
            SwarmAddress::Published => {
                let task = running
                    .tasks
                    .iter()
                    .find(|t| t.service_id.is_some() && t.service_id == service.id)?;
                let port = task
                    .status
                    .as_ref()?
                    .port_status
                    .as_ref()?
                    .ports
                    .as_ref()?
                    .iter()
                    .find(|p| p.target_port == Some(i64::from(self.settings.base.port)))?
                    .published_port?;
                let port = u16::try_from(port).ok()?;
                let ip = running.nodes.get(task.node_id.as_deref()?)?;
                Some(SocketAddr::new(*ip, port))
            }
            SwarmAddress::Alias => {
                let host = self.settings.service_name(name);
                tokio::net::lookup_host((host.as_str(), self.settings.base.port))
                    .await
                    .ok()?
                    .next()
            }
        }
    }

    /// Waits until `service`'s task runs and its address accepts connections.
    async fn wait_ready(&self, service: &str, name: &NodeId) -> Result<SocketAddr, RuntimeError> {
        let deadline = Instant::now() + self.settings.base.ready_timeout;
        loop {
            let inspected = self
                .docker
                .inspect_service(service, None)
                .await
                .map_err(engine(format!("inspecting service {service}")))?;
            let tasks = self.running_tasks().await?;
            if let Some(addr) = self.address_of(&inspected, name, &tasks).await
                && TcpStream::connect(addr).await.is_ok()
            {
                return Ok(addr);
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::NotReady {
                    name: name.clone(),
                    after: self.settings.base.ready_timeout,
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn delete(&self, service: &str) {
        if let Err(e) = self.docker.delete_service(service).await
            && status_of(&e) != Some(404)
        {
            tracing::warn!(service, error = %e, "cannot remove service");
        }
    }
}

/// Running tasks and the addresses of their nodes, by node ID.
#[derive(Debug, Default)]
struct Running {
    tasks: Vec<Task>,
    nodes: HashMap<String, std::net::IpAddr>,
}

/// The replica hostname of a service this daemon owns.
fn replica_of(service: &Service) -> Option<NodeId> {
    let labels = service.spec.as_ref()?.labels.as_ref()?;
    NodeId::new(labels.get(REPLICA_LABEL)?.as_str()).ok()
}

#[async_trait]
impl ReplicaRuntime for SwarmRuntime {
    async fn spawn(
        &self,
        name: &NodeId,
        address: Option<SocketAddr>,
    ) -> Result<Instance, RuntimeError> {
        RuntimeError::refuse_address(address)?;
        let service = self.settings.service_name(name);
        if let Err(e) = self
            .docker
            .create_service(self.settings.service_spec(name, &self.network), None)
            .await
        {
            return Err(match status_of(&e) {
                // Another daemon made it first (or someone else has the name).
                Some(409) => RuntimeError::ReplicaExists(name.clone()),
                _ => engine(format!("creating service {service}"))(e),
            });
        }
        match self.wait_ready(&service, name).await {
            Ok(addr) => {
                tracing::debug!(replica = %name, %service, %addr, "service ready");
                Ok(self.register(name, addr))
            }
            Err(e) => {
                self.delete(&service).await;
                Err(e)
            }
        }
    }

    async fn stop(&self, instance: InstanceId) {
        let name = {
            let mut registry = lock(&self.registry);
            let name = registry
                .by_name
                .iter()
                .find(|(_, i)| i.id == instance)
                .map(|(n, _)| n.clone());
            if let Some(name) = &name {
                registry.by_name.remove(name);
            }
            name
        };
        if let Some(name) = name {
            self.delete(&self.settings.service_name(&name)).await;
        }
    }

    async fn adopt(&self) -> Result<Adopted, RuntimeError> {
        // Services without a running task join with the follower's first listing.
        let running: Vec<(NodeId, Instance)> = self
            .owned()
            .await?
            .into_iter()
            .filter_map(|(name, instance)| Some((name, instance?)))
            .collect();
        for (name, instance) in &running {
            tracing::info!(replica = %name, addr = %instance.addr, "adopted Swarm service");
        }
        Ok(Adopted {
            running,
            ..Adopted::default()
        })
    }

    fn respawns(&self) -> bool {
        false
    }

    fn follows_orchestrator(&self) -> bool {
        true
    }

    fn keeps_replicas_on_shutdown(&self) -> bool {
        !self.settings.base.stop_on_shutdown
    }
}
