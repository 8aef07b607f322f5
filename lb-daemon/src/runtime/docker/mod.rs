//! The Docker runtime (crate `bollard`, over `/var/run/docker.sock` or `DOCKER_HOST`):
//! each replica is a container of `runtime.image` on the user-defined bridge network
//! `runtime.network` (created when missing).
//!
//! - Container name: `runtime.name_prefix` + hostname; network alias: the hostname;
//!   environment: `SERVER_ID=<hostname>`, `PORT=<runtime.port>`, then `runtime.env`
//!   and `runtime.replica_env.<hostname>`; labels `io.consistent-lb.owner =
//!   <runtime.owner>` and `io.consistent-lb.replica = <hostname>`. The daemon only
//!   touches containers with its owner label.
//! - Address: the container's IP on the network (`address = "container-ip"`, for a
//!   daemon on the host), or the alias resolved by Docker's DNS (`address = "alias"`,
//!   for a daemon in a container on the same network).
//! - Exits: the engine's `die`, `oom` and `stop` events for this daemon's containers
//!   become [`RuntimeEvent::Exited`] at once, faster than heartbeats.
//! - Adoption: at start, running containers with the owner label are taken back;
//!   exited ones are removed and replaced.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use lb_core::NodeId;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

use super::engine::{self, error as engine, status_of};
use super::{Adopted, Instance, InstanceId, ReplicaRuntime, RuntimeError, RuntimeEvent, lock};

mod settings;

pub use settings::{AddressMode, DockerSettings, OWNER_LABEL, REPLICA_LABEL};

/// Containers this daemon started or adopted, both ways.
#[derive(Debug, Default)]
struct Registry {
    by_instance: HashMap<InstanceId, String>,
    by_container: HashMap<String, InstanceId>,
}

/// Runs replicas as Docker containers.
#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    settings: DockerSettings,
    next_id: AtomicU64,
    registry: Arc<Mutex<Registry>>,
}

impl DockerRuntime {
    /// Connects to the engine, checks the image, creates the network if missing and
    /// starts watching container events (sent on `events`).
    ///
    /// # Errors
    /// [`RuntimeError::EngineUnreachable`], [`RuntimeError::ImageMissing`], or an
    /// engine error creating the network.
    pub async fn connect(
        settings: DockerSettings,
        events: mpsc::UnboundedSender<RuntimeEvent>,
    ) -> Result<Self, RuntimeError> {
        let docker = engine::connect()?;
        docker
            .ping()
            .await
            .map_err(|e| RuntimeError::EngineUnreachable(e.to_string()))?;
        engine::check_image(&docker, &settings.image).await?;
        engine::ensure_network(&docker, &settings.network, "bridge", &settings.owner).await?;
        let runtime = Self {
            docker,
            settings,
            next_id: AtomicU64::new(1),
            registry: Arc::new(Mutex::new(Registry::default())),
        };
        runtime.watch_events(events);
        Ok(runtime)
    }

    /// Forwards `die`/`oom`/`stop` events of registered containers, reconnecting to
    /// the event stream if it breaks.
    fn watch_events(&self, events: mpsc::UnboundedSender<RuntimeEvent>) {
        let docker = self.docker.clone();
        let registry = Arc::clone(&self.registry);
        let owner = format!("{OWNER_LABEL}={}", self.settings.owner);
        tokio::spawn(async move {
            loop {
                let filters = HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    ("label".to_string(), vec![owner.clone()]),
                    (
                        "event".to_string(),
                        vec!["die".into(), "oom".into(), "stop".into()],
                    ),
                ]);
                let options = EventsOptionsBuilder::new().filters(&filters).build();
                let mut stream = docker.events(Some(options));
                while let Some(event) = stream.next().await {
                    let event = match event {
                        Ok(event) => event,
                        Err(e) => {
                            tracing::warn!(error = %e, "Docker event stream failed");
                            break;
                        }
                    };
                    let Some(actor) = event.actor else { continue };
                    let Some(container) = actor.id else { continue };
                    let instance = lock(&registry).by_container.get(&container).copied();
                    if let Some(instance) = instance {
                        let action = event.action.unwrap_or_default();
                        let code = actor
                            .attributes
                            .and_then(|a| a.get("exitCode").cloned())
                            .unwrap_or_else(|| "?".into());
                        let reason = format!("docker {action} (exit code {code})");
                        if events
                            .send(RuntimeEvent::Exited { instance, reason })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                if events.is_closed() {
                    return;
                }
                sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Whether `container` (name or ID) exists, carries this daemon's owner label,
    /// and is no replica this daemon runs now: a leftover that may be cleared.
    async fn is_stale(&self, container: &str) -> bool {
        let Ok(inspect) = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        else {
            return false;
        };
        let ours = inspect
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(OWNER_LABEL).cloned())
            .is_some_and(|owner| owner == self.settings.owner);
        let live = inspect
            .id
            .is_some_and(|id| lock(&self.registry).by_container.contains_key(&id));
        ours && !live
    }

    fn register(&self, container: String, addr: SocketAddr) -> Instance {
        let id = InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut registry = lock(&self.registry);
        registry.by_container.insert(container.clone(), id);
        registry.by_instance.insert(id, container);
        Instance {
            id,
            addr,
            protocol: None,
        }
    }

    async fn remove(&self, container: &str) {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = self.docker.remove_container(container, Some(options)).await
            && status_of(&e) != Some(404)
        {
            tracing::warn!(container, error = %e, "cannot remove container");
        }
    }

    /// The address of a running container, per [`AddressMode`].
    async fn address_of(&self, container: &str, name: &str) -> Result<SocketAddr, RuntimeError> {
        match self.settings.address {
            AddressMode::Alias => tokio::net::lookup_host((name, self.settings.port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| RuntimeError::Engine {
                    what: format!("resolving {name}"),
                    message: "no address for the alias on this network".into(),
                }),
            AddressMode::ContainerIp => {
                let inspect = self
                    .docker
                    .inspect_container(container, None::<InspectContainerOptions>)
                    .await
                    .map_err(engine(format!("inspecting {container}")))?;
                let ip = inspect
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&self.settings.network))
                    .and_then(|e| e.ip_address)
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                    .ok_or_else(|| RuntimeError::Engine {
                        what: format!("inspecting {container}"),
                        message: format!("no IP address on network {}", self.settings.network),
                    })?;
                Ok(SocketAddr::new(ip, self.settings.port))
            }
        }
    }

    /// Waits until the container's address resolves and accepts connections, failing
    /// early if the container ends; returns the address.
    async fn wait_ready(&self, container: &str, name: &NodeId) -> Result<SocketAddr, RuntimeError> {
        let deadline = Instant::now() + self.settings.ready_timeout;
        loop {
            // Docker's DNS may need a moment to serve a new alias: resolve every round.
            if let Ok(addr) = self.address_of(container, name.as_str()).await
                && TcpStream::connect(addr).await.is_ok()
            {
                return Ok(addr);
            }
            let state = self
                .docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|i| i.state);
            if let Some(state) = state
                && state.running == Some(false)
            {
                return Err(RuntimeError::ExitedEarly {
                    name: name.clone(),
                    reason: format!(
                        "container exited with code {}",
                        state.exit_code.unwrap_or(-1)
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::NotReady {
                    name: name.clone(),
                    after: self.settings.ready_timeout,
                });
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl ReplicaRuntime for DockerRuntime {
    async fn spawn(
        &self,
        name: &NodeId,
        address: Option<SocketAddr>,
    ) -> Result<Instance, RuntimeError> {
        RuntimeError::refuse_address(address)?;
        let container = format!("{}{name}", self.settings.name_prefix);
        let options = CreateContainerOptionsBuilder::new()
            .name(&container)
            .build();
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            match self
                .docker
                .create_container(Some(options.clone()), self.settings.container_config(name))
                .await
            {
                Ok(created) => break created,
                // A stale container of ours by that name (still being removed, or
                // left by an earlier daemon) is cleared and the create retried; a
                // live replica's, or anyone else's, is left alone.
                Err(e)
                    if status_of(&e) == Some(409)
                        && attempt < 4
                        && self.is_stale(&container).await =>
                {
                    self.remove(&container).await;
                    sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(match status_of(&e) {
                        Some(409) => RuntimeError::NameTaken(container),
                        Some(404) => RuntimeError::ImageMissing(self.settings.image.clone()),
                        _ => engine(format!("creating {container}"))(e),
                    });
                }
            }
        };
        let started = async {
            self.docker
                .start_container(&container, None::<StartContainerOptions>)
                .await
                .map_err(engine(format!("starting {container}")))?;
            self.wait_ready(&container, name).await
        }
        .await;
        match started {
            Ok(addr) => {
                // Events name containers by ID, so the registry is keyed by ID.
                let instance = self.register(created.id, addr);
                tracing::debug!(replica = %name, %container, %addr, "container ready");
                Ok(instance)
            }
            Err(e) => {
                self.remove(&created.id).await;
                Err(e)
            }
        }
    }

    async fn stop(&self, instance: InstanceId) {
        let container = {
            let mut registry = lock(&self.registry);
            let container = registry.by_instance.remove(&instance);
            if let Some(c) = &container {
                registry.by_container.remove(c);
            }
            container
        };
        if let Some(container) = container {
            // SIGTERM, SIGKILL after stop_timeout (docker stop -t), then removal.
            let seconds = self.settings.stop_timeout.as_millis().div_ceil(1000);
            let options = StopContainerOptionsBuilder::new()
                .t(i32::try_from(seconds).unwrap_or(i32::MAX))
                .build();
            if let Err(e) = self.docker.stop_container(&container, Some(options)).await
                && !matches!(status_of(&e), Some(304 | 404))
            {
                tracing::warn!(%container, error = %e, "cannot stop container");
            }
            self.remove(&container).await;
        }
    }

    async fn adopt(&self) -> Result<Adopted, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{OWNER_LABEL}={}", self.settings.owner)],
        )]);
        let found = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(engine("listing containers"))?;
        let mut adopted = Adopted::default();
        let mut found = found;
        // Oldest first, so the replicas keep the order they were added in.
        found.sort_by_key(|c| c.created.unwrap_or(0));
        for summary in found {
            let (Some(container), Some(labels)) = (summary.id, summary.labels) else {
                continue;
            };
            let Some(name) = labels
                .get(REPLICA_LABEL)
                .and_then(|n| NodeId::new(n.as_str()).ok())
            else {
                continue;
            };
            if summary.state == Some(ContainerSummaryStateEnum::RUNNING) {
                match self.address_of(&container, name.as_str()).await {
                    Ok(addr) => {
                        tracing::info!(replica = %name, %addr, "adopted running container");
                        adopted.running.push((name, self.register(container, addr)));
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(replica = %name, error = %e, "cannot adopt container; replacing it")
                    }
                }
            }
            self.remove(&container).await;
            tracing::info!(replica = %name, "removed a dead container; it will be replaced");
            adopted.dead.push(name);
        }
        Ok(adopted)
    }

    fn keeps_replicas_on_shutdown(&self) -> bool {
        !self.settings.stop_on_shutdown
    }
}
