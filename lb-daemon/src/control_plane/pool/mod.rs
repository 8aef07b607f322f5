//! The replica pool: runs the replicas of one daemon through its runtime and keeps
//! their books consistent with what runs.
//!
//! The books (ring, order, each member's rise/fall health) are `Members`,
//! behind one mutex that no `.await` holds. Admin calls
//! ([`add`](ReplicaPool::add), [`remove`](ReplicaPool::remove)) are serialized and all
//! or nothing; heartbeat results ([`observe`](ReplicaPool::observe)) and runtime events
//! ([`on_event`](ReplicaPool::on_event)) update health. Every change publishes a new
//! [`Snapshot`] for the proxy. A member that goes Down is respawned under the same
//! hostname, so it keeps its place on the ring and its keys come back to it.

mod error;
mod member;
mod members;
mod respawn;
mod routing_view;
mod settings;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lb_api::ReplicaStatus;
use lb_core::{HashRing, NodeId, Outcome};
use tokio::task::JoinSet;

pub use error::AdminError;
use members::{Heartbeat, Members};
use respawn::Respawn;
pub use routing_view::RoutingView;
pub use settings::PoolSettings;

use crate::control_plane::state_file::{SavedReplica, SavedState};
use crate::data_plane::snapshot::Snapshot;
use crate::runtime::{Instance, InstanceId, ReplicaRuntime, RuntimeError, RuntimeEvent};

/// The most replicas one daemon manages.
pub const MAX_REPLICAS: usize = 1024;

/// Replicas an add starts: `names` (more are generated up to `n`), their `addresses`
/// (static runtime) and their ring `weights` (missing ones: 1).
#[derive(Debug, Default)]
struct Weighted {
    names: Vec<NodeId>,
    addresses: Vec<SocketAddr>,
    weights: Vec<u32>,
}

impl Weighted {
    /// `names` at weight 1, with no address.
    fn named(names: Vec<NodeId>) -> Self {
        Self {
            names,
            ..Self::default()
        }
    }
}

/// The replicas of one daemon. Share it as `Arc<ReplicaPool>`.
#[derive(Debug)]
pub struct ReplicaPool {
    settings: PoolSettings,
    runtime: Arc<dyn ReplicaRuntime>,
    members: Mutex<Members>,
    /// Serializes admin calls (held across spawning; `members` is not).
    admin: tokio::sync::Mutex<()>,
    snapshot: ArcSwap<Snapshot>,
    shutting_down: AtomicBool,
}

impl ReplicaPool {
    /// An empty pool.
    ///
    /// # Errors
    /// If `points_per_weight` is out of lb-core's range.
    pub fn new(
        settings: PoolSettings,
        runtime: Arc<dyn ReplicaRuntime>,
    ) -> Result<Arc<Self>, lb_core::Error> {
        let ring = HashRing::with_hasher(settings.hash, settings.points_per_weight)?;
        let mut members = Members::new(ring, settings.health, settings.routing, settings.protocol);
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(members.snapshot(&settings.metrics)),
            members: Mutex::new(members),
            settings,
            runtime,
            admin: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The current routing snapshot (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The handle the data plane gets: snapshot reads and passive outcomes only.
    pub fn routing_view(self: &Arc<Self>) -> RoutingView {
        RoutingView(Arc::clone(self))
    }

    /// Hostnames in the order they were added.
    pub fn names(&self) -> Vec<NodeId> {
        self.lock().names()
    }

    /// Every replica in the order added, with health, address, uptime and respawn
    /// count, and the responses it gave as `requests_of(name)` counts them.
    pub fn status(&self, requests_of: impl Fn(&str) -> u64) -> Vec<ReplicaStatus> {
        self.lock().status(Instant::now(), requests_of)
    }

    /// Replicas to probe: those with a running instance that is not being replaced.
    pub fn probe_targets(&self) -> Vec<(NodeId, Instance)> {
        self.lock().probe_targets()
    }

    /// Starts `n` replicas: those in `names`, then generated `serverK` names. Returns
    /// once all accept connections and are on the ring. `weights` (empty: all 1) gives
    /// each named replica its ring weight, 0..=256; generated ones weigh 1.
    ///
    /// # Errors
    /// [`AdminError`]; on any error nothing was added and nothing is left running.
    pub async fn add(
        self: &Arc<Self>,
        n: usize,
        names: Vec<NodeId>,
        addresses: Vec<SocketAddr>,
        weights: Vec<u32>,
    ) -> Result<Vec<NodeId>, AdminError> {
        if !weights.is_empty() && weights.len() != names.len() {
            return Err(AdminError::WeightCount {
                hostnames: names.len(),
                weights: weights.len(),
            });
        }
        {
            let members = self.lock();
            for weight in &weights {
                members.check_weight(*weight)?;
            }
        }
        let weighted = Weighted {
            names,
            addresses,
            weights,
        };
        self.add_capped(n, weighted, self.settings.max_per_call)
            .await
    }

    /// Sets replica `name`'s ring weight (0 drains it: it takes no new key, its
    /// in-flight requests finish, it stays a member and keeps being probed); returns
    /// the old weight.
    ///
    /// # Errors
    /// [`AdminError::Unknown`], [`AdminError::Weight`]; nothing changed then.
    pub async fn set_weight(&self, name: &NodeId, weight: u32) -> Result<u32, AdminError> {
        let _admin = self.admin.lock().await;
        self.refuse_if_shutting_down()?;
        let mut members = self.lock();
        let old = members.set_weight(name, weight)?;
        tracing::info!(replica = %name, old, weight, "replica weight set");
        self.publish(&mut members);
        self.persist(&members);
        Ok(old)
    }

    /// Routes by `routing` from now on (a config reload): the next snapshot has it.
    pub fn set_routing(&self, routing: crate::data_plane::routing::Routing) {
        let mut members = self.lock();
        members.set_routing(routing);
        self.publish(&mut members);
    }

    /// Boots the pool: adopts the replicas the runtime finds running (this daemon's
    /// containers, the static list), restarts the dead ones it finds under their names,
    /// then starts new replicas (`server1..`) until there are `n`, above the per-call
    /// cap if need be.
    ///
    /// # Errors
    /// As [`add`](Self::add), or when the runtime cannot be asked.
    pub async fn boot(
        self: &Arc<Self>,
        n: usize,
        saved: Option<SavedState>,
    ) -> Result<Vec<NodeId>, AdminError> {
        let saved: Vec<(NodeId, SavedReplica)> = saved
            .map(|s| s.replicas)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| NodeId::new(r.name.as_str()).ok().map(|id| (id, r)))
            .collect();
        let restoring = !saved.is_empty();
        for (name, replica) in &saved {
            if let Some(pid) = replica.pid {
                self.runtime.reclaim(name, pid).await;
            }
        }
        let mut adopted = self.runtime.adopt().await?;
        // Keep the saved order where there is one, then name order.
        let rank = |name: &NodeId| {
            saved
                .iter()
                .position(|(n, _)| n == name)
                .unwrap_or(usize::MAX)
        };
        adopted
            .running
            .sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        // The runtime's own weights, else the saved ones, else 1.
        let weight_of = |name: &NodeId| {
            adopted
                .weights
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, w)| *w)
                .or_else(|| saved.iter().find(|(n, _)| n == name).map(|(_, r)| r.weight))
                .unwrap_or(1)
        };
        {
            let mut members = self.lock();
            let now = Instant::now();
            for (name, instance) in &adopted.running {
                if !members.contains(name) {
                    members.insert(name.clone(), *instance, weight_of(name), now);
                }
            }
            self.publish(&mut members);
        }
        if !adopted.dead.is_empty() {
            let weights = adopted.dead.iter().map(weight_of).collect();
            let dead = Weighted {
                names: adopted.dead.clone(),
                addresses: Vec::new(),
                weights,
            };
            self.add_capped(dead.names.len(), dead, MAX_REPLICAS)
                .await?;
        }
        // Saved replicas the runtime did not hand back are started under their names.
        let missing: Vec<(NodeId, Option<SocketAddr>, u32)> = {
            let members = self.lock();
            saved
                .into_iter()
                .filter(|(name, _)| !members.contains(name))
                .map(|(name, r)| (name, r.address, r.weight))
                .collect()
        };
        if !missing.is_empty() {
            let static_runtime = !self.runtime.respawns();
            let addresses = if static_runtime {
                missing.iter().filter_map(|(_, a, _)| *a).collect()
            } else {
                Vec::new()
            };
            let restored = Weighted {
                weights: missing.iter().map(|(_, _, w)| *w).collect(),
                names: missing.into_iter().map(|(n, _, _)| n).collect(),
                addresses,
            };
            tracing::info!(
                replicas = restored.names.len(),
                "restoring replicas from the state file"
            );
            self.add_capped(restored.names.len(), restored, MAX_REPLICAS)
                .await?;
        }
        let have = self.lock().len();
        if n > have && self.runtime.follows_orchestrator() {
            self.fill_from_orchestrator(n - have).await?;
        }
        if n > have && self.runtime.respawns() && !restoring {
            self.add_capped(n - have, Weighted::default(), MAX_REPLICAS)
                .await?;
        }
        self.persist(&self.lock());
        Ok(self.names())
    }

    /// Boot of a daemon that follows an orchestrator: makes sure `missing` more of
    /// `server1, server2, ...` exist, creating them one at a time. Other daemons may boot
    /// at the same moment: a name one of them created first (the usual "already
    /// exists") counts as there, and is followed once the orchestrator lists it.
    async fn fill_from_orchestrator(self: &Arc<Self>, missing: usize) -> Result<(), AdminError> {
        let mut there = 0;
        for k in 1..=MAX_REPLICAS {
            if there == missing {
                break;
            }
            let Ok(name) = NodeId::new(format!("server{k}")) else {
                continue;
            };
            if self.lock().contains(&name) {
                continue;
            }
            match self.add_capped(1, Weighted::named(vec![name]), 1).await {
                Ok(_) => there += 1,
                Err(AdminError::Exists(name)) => {
                    tracing::info!(replica = %name, "another daemon created it first; following it");
                    there += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn add_capped(
        self: &Arc<Self>,
        n: usize,
        wanted: Weighted,
        cap: usize,
    ) -> Result<Vec<NodeId>, AdminError> {
        let _admin = self.admin.lock().await;
        self.refuse_if_shutting_down()?;
        let Weighted {
            names,
            addresses,
            weights,
        } = wanted;
        let chosen = self.lock().choose_new(names, n, cap)?;
        let mut started = JoinSet::new();
        for (i, name) in chosen.clone().into_iter().enumerate() {
            let runtime = Arc::clone(&self.runtime);
            let address = addresses.get(i).copied();
            started.spawn(async move { (name.clone(), runtime.spawn(&name, address).await) });
        }
        let mut ready = Vec::with_capacity(n);
        let mut failure = None;
        while let Some(joined) = started.join_next().await {
            match joined {
                Ok((name, Ok(instance))) => ready.push((name, instance)),
                Ok((_, Err(e))) => failure = Some(e),
                Err(e) => tracing::error!(error = %e, "spawn task failed"),
            }
        }
        if failure.is_some() || ready.len() != n {
            for (_, instance) in &ready {
                self.runtime.stop(instance.id).await;
            }
            return Err(match failure {
                Some(RuntimeError::ReplicaExists(name)) => AdminError::Exists(name),
                Some(e) => AdminError::Runtime(e),
                None => AdminError::ShuttingDown,
            });
        }
        ready.sort_by_key(|(name, _)| chosen.iter().position(|c| c == name));
        let mut members = self.lock();
        let now = Instant::now();
        for (i, (name, instance)) in ready.into_iter().enumerate() {
            let weight = weights.get(i).copied().unwrap_or(1);
            tracing::info!(replica = %name, addr = %instance.addr, instance = %instance.id, weight, "replica added");
            members.insert(name, instance, weight, now);
        }
        self.publish(&mut members);
        self.persist(&members);
        Ok(chosen)
    }

    /// Removes the replicas in `names` plus `n − names.len()` others (the most recently
    /// added first): they leave the ring at once, then their instances are stopped.
    ///
    /// # Errors
    /// [`AdminError`]; on any error nothing was removed.
    pub async fn remove(&self, n: usize, names: Vec<NodeId>) -> Result<Vec<NodeId>, AdminError> {
        let _admin = self.admin.lock().await;
        self.refuse_if_shutting_down()?;
        let removed = {
            let mut members = self.lock();
            let removed = members.remove(names, n, self.settings.max_per_call)?;
            self.publish(&mut members);
            self.persist(&members);
            removed
        };
        let mut names = Vec::with_capacity(removed.len());
        // Off the ring already: drain what was sent before, then stop.
        let deadline = Instant::now() + self.settings.drain_timeout;
        for replica in removed {
            while replica.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let left = replica.inflight.load(Ordering::SeqCst);
            if left > 0 {
                tracing::warn!(replica = %replica.name, in_flight = left, "drain timed out; stopping anyway");
            }
            if let Some(instance) = replica.instance {
                self.runtime.stop(instance.id).await;
            }
            tracing::info!(replica = %replica.name, "replica removed");
            names.push(replica.name);
        }
        Ok(names)
    }

    /// Passive health: a proxied try to `instance` of `name` failed in a way charged
    /// to the replica (refused, reset or timed out after the request was sent). After
    /// `max_fails` in a row the replica leaves rotation (nginx `max_fails`), unless
    /// that would eject more than half of the replicas; it comes back with the next
    /// passing heartbeat. Passive failures never respawn a replica: only failed
    /// heartbeats and an exited process or container do.
    pub fn report_failure(&self, name: &NodeId, instance: InstanceId) {
        let mut members = self.lock();
        let max_fails = self.settings.max_fails;
        let (count, ejected) = (members.len(), members.ejected());
        let Some(member) = members.get_mut(name) else {
            return;
        };
        if !member.runs(instance) {
            return;
        }
        let fails = member.charge();
        if max_fails == 0 || fails < max_fails {
            return;
        }
        if (ejected + 1) * 2 > count {
            tracing::warn!(replica = %name, fails, "passive failures; not ejected: more than half of the replicas would be out");
            return;
        }
        if member.eject() {
            tracing::warn!(replica = %name, instance = %instance, fails, "replica ejected after consecutive failed requests; back with the next passing heartbeat");
            self.publish(&mut members);
        }
    }

    /// Passive health: a proxied request to `instance` of `name` got a response after
    /// earlier failures. Resets its failure streak and readmits it if ejected.
    pub fn report_success(&self, name: &NodeId, instance: InstanceId) {
        let mut members = self.lock();
        let Some(member) = members.get_mut(name) else {
            return;
        };
        if member.instance.map(|i| i.id) != Some(instance) {
            return;
        }
        if member.clear_failures() {
            tracing::info!(replica = %name, "replica readmitted after a successful request");
            self.publish(&mut members);
        }
    }

    /// Feeds one heartbeat result of `instance` of replica `name`. Results of an
    /// instance that has since been replaced are ignored. A passing heartbeat also
    /// readmits a replica ejected by passive failures.
    pub fn observe(self: &Arc<Self>, name: &NodeId, instance: InstanceId, outcome: Outcome) {
        let mut members = self.lock();
        let Some(member) = members.get_mut(name) else {
            return;
        };
        if !member.runs(instance) {
            return;
        }
        match member.heartbeat(outcome, Instant::now()) {
            Heartbeat::Unchanged => {}
            Heartbeat::Up => {
                tracing::info!(replica = %name, instance = %instance, "replica Up");
                self.publish(&mut members);
            }
            Heartbeat::Readmitted => {
                tracing::info!(replica = %name, "ejected replica readmitted: heartbeat passed");
                self.publish(&mut members);
            }
            Heartbeat::Down => {
                tracing::warn!(replica = %name, instance = %instance, fall = self.settings.health.fall(), "replica Down: fall consecutive failed heartbeats");
                self.begin_respawn(&mut members, name);
            }
        }
    }

    /// Handles an event from the runtime: an instance that ended is taken out of
    /// rotation at once and respawned.
    pub fn on_event(self: &Arc<Self>, event: RuntimeEvent) {
        match event {
            RuntimeEvent::Exited { instance, reason } => {
                let mut members = self.lock();
                if let Some(name) = members.running(instance) {
                    tracing::warn!(replica = %name, instance = %instance, %reason, "replica exited");
                    self.begin_respawn(&mut members, &name);
                }
            }
            RuntimeEvent::Membership { replicas } => self.follow(&replicas),
        }
    }

    /// Takes the orchestrator's replica set (see `Members::follow`). Skipped while an
    /// admin call runs (it changes the set itself; the next listing, a second later,
    /// is taken instead) and once the daemon is stopping.
    fn follow(&self, replicas: &[(NodeId, Option<Instance>)]) {
        let Ok(_admin) = self.admin.try_lock() else {
            return;
        };
        if self.is_stopping() {
            return;
        }
        let mut members = self.lock();
        if members.follow(replicas, Instant::now()) {
            tracing::info!(
                replicas = members.len(),
                "replica set changed in the orchestrator"
            );
            self.publish(&mut members);
            self.persist(&members);
        }
    }

    /// The daemon is stopping: admin calls are refused and `/healthz` says so.
    pub fn is_stopping(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Stops every replica; admin calls fail from now on.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _admin = self.admin.lock().await;
        let instances = {
            let mut members = self.lock();
            let instances = members.take_all();
            self.publish(&mut members);
            instances
        };
        if self.runtime.keeps_replicas_on_shutdown() {
            tracing::info!(
                replicas = instances.len(),
                "leaving replicas running for the next daemon to adopt"
            );
            return;
        }
        for (name, instance) in instances {
            self.runtime.stop(instance).await;
            tracing::info!(replica = %name, "replica stopped");
        }
    }

    /// Marks `name` Down, publishes, and starts its respawn task.
    fn begin_respawn(self: &Arc<Self>, members: &mut Members, name: &NodeId) {
        let respawns = self.runtime.respawns();
        let Some(member) = members.get_mut(name) else {
            return;
        };
        let old = member.instance.map(|i| i.id);
        let seq = member.seq;
        let delay = member.down(
            Instant::now(),
            respawns,
            self.settings.backoff_initial,
            self.settings.backoff_max,
        );
        self.publish(members);
        if !respawns {
            // Someone else runs it: keep probing until it rises again.
            return;
        }
        let respawn = Respawn {
            pool: Arc::clone(self),
            name: name.clone(),
            seq,
            old,
            delay,
        };
        tokio::spawn(respawn.run());
    }

    /// Saves the replica set to the state file, if any. A failed write is logged; the
    /// previous file stays intact.
    fn persist(&self, members: &Members) {
        let Some(file) = &self.settings.state_file else {
            return;
        };
        if let Err(e) = file.save(&members.saved(|id| self.runtime.pid_of(id))) {
            tracing::error!(error = %e, "cannot save the state file");
        }
    }

    /// Publishes the routing snapshot of `members` to the data plane.
    fn publish(&self, members: &mut Members) {
        self.snapshot
            .store(Arc::new(members.snapshot(&self.settings.metrics)));
    }

    fn refuse_if_shutting_down(&self) -> Result<(), AdminError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(AdminError::ShuttingDown);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        // Every critical section leaves the books consistent, so a poisoned lock is safe to reuse.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}
