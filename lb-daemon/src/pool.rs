//! The replica pool: membership, health and respawn of every replica.
//!
//! The pool owns the ring and each member's [`HealthState`]. Admin calls
//! ([`add`](ReplicaPool::add), [`remove`](ReplicaPool::remove)) are serialized and all
//! or nothing; heartbeat results ([`observe`](ReplicaPool::observe)) and runtime events
//! ([`on_event`](ReplicaPool::on_event)) update health. Every change publishes a new
//! [`Snapshot`] for the proxy. A member that goes Down is respawned under the same
//! hostname, so it keeps its place on the ring and its keys come back to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lb_api::{ReplicaState, ReplicaStatus};
use lb_core::{HashAlgorithm, HashRing, HealthConfig, HealthState, NodeId, Outcome, Status};
use tokio::task::JoinSet;

use crate::runtime::{Instance, InstanceId, ReplicaRuntime, RuntimeError, RuntimeEvent};
use crate::snapshot::{Snapshot, Upstream};
use crate::state::{SavedReplica, SavedState, StateFile};

/// The most replicas one daemon manages.
pub const MAX_REPLICAS: usize = 1024;

/// A respawned instance that lives this long resets its backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Settings of a pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Hash for the ring.
    pub hash: HashAlgorithm,
    /// Points per unit of weight.
    pub points_per_weight: u32,
    /// Rise/fall thresholds.
    pub health: HealthConfig,
    /// Cap on `n` in one admin call.
    pub max_per_call: usize,
    /// First respawn delay for a replica that keeps dying.
    pub backoff_initial: Duration,
    /// Cap of the respawn delay.
    pub backoff_max: Duration,
    /// Respawned replicas get a new generated name (`Server-4f2a`) instead of their own.
    pub fresh_names: bool,
    /// How long `remove` waits for a replica's in-flight requests before stopping it.
    pub drain_timeout: Duration,
    /// Where the replica set is saved on every change, if anywhere.
    pub state_file: Option<StateFile>,
    /// Consecutive passive failures (proxied tries charged to a replica) that take it
    /// out of rotation until a heartbeat passes; 0 turns passive ejection off.
    pub max_fails: u32,
    /// Counters: `lb_respawns_total`, and each replica's handles for the snapshots.
    pub metrics: Arc<crate::metrics::Metrics>,
}

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
    /// The pool would exceed [`MAX_REPLICAS`].
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
    /// `/rm` of more replicas than exist.
    #[error("cannot remove {n} replicas: only {have} exist")]
    NotEnough {
        /// Asked.
        n: usize,
        /// Present.
        have: usize,
    },
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A replica could not be started; the others of the call were stopped.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
}

/// One member of the pool.
#[derive(Debug)]
struct Member {
    /// Order of addition, for `/rep` and for picking replicas to remove.
    seq: u64,
    /// The running incarnation; `None` while a respawn has not produced one.
    instance: Option<Instance>,
    health: HealthState,
    respawning: bool,
    /// When the current instance started.
    started: Instant,
    /// Delay before the next respawn if this instance dies young.
    backoff: Duration,
    /// Requests in flight to this replica (shared with the snapshots).
    inflight: Arc<AtomicUsize>,
    /// Times this member was respawned.
    respawns: u64,
    /// Consecutive passive failures (shared with the snapshots, which read it to know
    /// whether a success must be reported).
    passive_fails: Arc<AtomicU32>,
    /// Out of rotation after `max_fails` passive failures, until a heartbeat or a
    /// proxied request succeeds. Never leads to a respawn.
    ejected: bool,
}

#[derive(Debug)]
struct State {
    members: BTreeMap<NodeId, Member>,
    ring: Arc<HashRing<HashAlgorithm>>,
    next_seq: u64,
}

/// The replicas of one daemon. Share it as `Arc<ReplicaPool>`.
#[derive(Debug)]
pub struct ReplicaPool {
    settings: PoolSettings,
    runtime: Arc<dyn ReplicaRuntime>,
    state: Mutex<State>,
    /// Serializes admin calls (held across spawning; `state` is not).
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
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(Snapshot::empty(ring.clone())),
            state: Mutex::new(State {
                members: BTreeMap::new(),
                ring: Arc::new(ring),
                next_seq: 0,
            }),
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

    /// Hostnames in the order they were added.
    pub fn names(&self) -> Vec<NodeId> {
        let state = self.lock();
        let mut members: Vec<(&NodeId, &Member)> = state.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        members.into_iter().map(|(name, _)| name.clone()).collect()
    }

    /// Every replica in the order added, with health, address, uptime and respawn
    /// count, and the responses it gave as `requests_of(name)` counts them.
    pub fn status(&self, requests_of: impl Fn(&str) -> u64) -> Vec<ReplicaStatus> {
        let state = self.lock();
        let now = Instant::now();
        let shares: std::collections::HashMap<&NodeId, f64> = state
            .ring
            .nodes()
            .iter()
            .map(|node| node.id())
            .zip(state.ring.shares())
            .collect();
        let mut members: Vec<(&NodeId, &Member)> = state.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        members
            .into_iter()
            .map(|(name, m)| {
                let ring_share = shares.get(name).copied().unwrap_or(0.0);
                let state = match (m.respawning, m.health.is_up(), m.ejected) {
                    (true, _, _) => ReplicaState::Respawning,
                    (false, true, false) => ReplicaState::Up,
                    (false, true, true) => ReplicaState::Ejected,
                    (false, false, _) => ReplicaState::Down,
                };
                ReplicaStatus {
                    name: name.to_string(),
                    address: m.instance.filter(|_| !m.respawning).map(|i| i.addr),
                    state,
                    uptime_ms: if m.respawning {
                        0
                    } else {
                        millis(now.duration_since(m.started))
                    },
                    state_ms: millis(now.duration_since(m.health.since())),
                    respawns: m.respawns,
                    in_flight: m.inflight.load(Ordering::Relaxed),
                    requests: requests_of(name.as_str()),
                    ring_share,
                }
            })
            .collect()
    }

    /// Replicas to probe: those with a running instance that is not being replaced.
    pub fn probe_targets(&self) -> Vec<(NodeId, Instance)> {
        self.lock()
            .members
            .iter()
            .filter(|(_, m)| !m.respawning)
            .filter_map(|(name, m)| m.instance.map(|i| (name.clone(), i)))
            .collect()
    }

    /// Starts `n` replicas: those in `names`, then generated `serverK` names. Returns
    /// once all accept connections and are on the ring.
    ///
    /// # Errors
    /// [`AdminError`]; on any error nothing was added and nothing is left running.
    pub async fn add(
        self: &Arc<Self>,
        n: usize,
        names: Vec<NodeId>,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<NodeId>, AdminError> {
        self.add_capped(n, names, addresses, self.settings.max_per_call)
            .await
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
        {
            let mut state = self.lock();
            let now = Instant::now();
            for (name, instance) in adopted.running {
                if state.members.contains_key(&name) {
                    continue;
                }
                let _ = Arc::make_mut(&mut state.ring).add(name.clone(), 1);
                let seq = state.next_seq;
                state.next_seq += 1;
                let member = self.member(seq, instance, now);
                state.members.insert(name, member);
            }
            self.publish(&state);
        }
        if !adopted.dead.is_empty() {
            let dead = adopted.dead.len();
            self.add_capped(dead, adopted.dead, Vec::new(), MAX_REPLICAS)
                .await?;
        }
        // Saved replicas the runtime did not hand back are started under their names.
        let missing: Vec<(NodeId, Option<SocketAddr>)> = {
            let state = self.lock();
            saved
                .into_iter()
                .filter(|(name, _)| !state.members.contains_key(name))
                .map(|(name, r)| (name, r.address))
                .collect()
        };
        if !missing.is_empty() {
            let static_runtime = !self.runtime.respawns();
            let addresses = if static_runtime {
                missing.iter().filter_map(|(_, a)| *a).collect()
            } else {
                Vec::new()
            };
            let names: Vec<NodeId> = missing.into_iter().map(|(n, _)| n).collect();
            tracing::info!(
                replicas = names.len(),
                "restoring replicas from the state file"
            );
            self.add_capped(names.len(), names, addresses, MAX_REPLICAS)
                .await?;
        }
        let have = self.lock().members.len();
        if n > have && self.runtime.respawns() && !restoring {
            self.add_capped(n - have, Vec::new(), Vec::new(), MAX_REPLICAS)
                .await?;
        }
        self.persist(&self.lock());
        Ok(self.names())
    }

    /// A fresh, Up member around `instance`.
    fn member(&self, seq: u64, instance: Instance, now: Instant) -> Member {
        Member {
            seq,
            instance: Some(instance),
            health: HealthState::new(self.settings.health, Status::Up, now),
            respawning: false,
            started: now,
            backoff: Duration::ZERO,
            inflight: Arc::new(AtomicUsize::new(0)),
            respawns: 0,
            passive_fails: Arc::new(AtomicU32::new(0)),
            ejected: false,
        }
    }

    async fn add_capped(
        self: &Arc<Self>,
        n: usize,
        names: Vec<NodeId>,
        addresses: Vec<SocketAddr>,
        cap: usize,
    ) -> Result<Vec<NodeId>, AdminError> {
        let _admin = self.admin.lock().await;
        self.refuse_if_shutting_down()?;
        if names.len() > n {
            return Err(AdminError::TooManyNamesToAdd);
        }
        let chosen = {
            let state = self.lock();
            check_n(n, cap)?;
            if state.members.len() + n > MAX_REPLICAS {
                return Err(AdminError::PoolFull { n });
            }
            check_distinct(&names)?;
            if let Some(taken) = names.iter().find(|name| state.members.contains_key(*name)) {
                return Err(AdminError::Exists(taken.clone()));
            }
            generate_names(&state.members, names, n)
        };
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
                Some(e) => AdminError::Runtime(e),
                None => AdminError::ShuttingDown,
            });
        }
        ready.sort_by(|a, b| {
            chosen
                .iter()
                .position(|c| *c == a.0)
                .cmp(&chosen.iter().position(|c| *c == b.0))
        });
        let mut state = self.lock();
        let now = Instant::now();
        for (name, instance) in ready {
            Arc::make_mut(&mut state.ring)
                .add(name.clone(), 1)
                .map_err(|e| tracing::error!(error = %e, "ring refused a checked name"))
                .ok();
            let seq = state.next_seq;
            state.next_seq += 1;
            tracing::info!(replica = %name, addr = %instance.addr, instance = %instance.id, "replica added");
            state.members.insert(name, self.member(seq, instance, now));
        }
        self.publish(&state);
        self.persist(&state);
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
        if names.len() > n {
            return Err(AdminError::TooManyNamesToRemove);
        }
        let removed = {
            let mut state = self.lock();
            check_n(n, self.settings.max_per_call)?;
            check_distinct(&names)?;
            if let Some(unknown) = names.iter().find(|name| !state.members.contains_key(*name)) {
                return Err(AdminError::Unknown(unknown.clone()));
            }
            if n > state.members.len() {
                return Err(AdminError::NotEnough {
                    n,
                    have: state.members.len(),
                });
            }
            let mut others: Vec<(&NodeId, &Member)> = state
                .members
                .iter()
                .filter(|(name, _)| !names.contains(name))
                .collect();
            others.sort_by_key(|(_, m)| std::cmp::Reverse(m.seq));
            let extra: Vec<NodeId> = others
                .into_iter()
                .take(n - names.len())
                .map(|(id, _)| id.clone())
                .collect();
            let mut removed = Vec::with_capacity(n);
            for name in names.into_iter().chain(extra) {
                if let Some(member) = state.members.remove(&name) {
                    let _ = Arc::make_mut(&mut state.ring).remove(name.as_str());
                    removed.push((name, member.instance, member.inflight));
                }
            }
            self.publish(&state);
            self.persist(&state);
            removed
        };
        let mut names = Vec::with_capacity(removed.len());
        // Off the ring already: drain what was sent before, then stop.
        let deadline = Instant::now() + self.settings.drain_timeout;
        for (name, instance, inflight) in removed {
            while inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let left = inflight.load(Ordering::SeqCst);
            if left > 0 {
                tracing::warn!(replica = %name, in_flight = left, "drain timed out; stopping anyway");
            }
            if let Some(instance) = instance {
                self.runtime.stop(instance.id).await;
            }
            tracing::info!(replica = %name, "replica removed");
            names.push(name);
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
        let mut state = self.lock();
        let max_fails = self.settings.max_fails;
        let members = state.members.len();
        let ejected = state.members.values().filter(|m| m.ejected).count();
        let Some(member) = state.members.get_mut(name) else {
            return;
        };
        if member.respawning || member.instance.map(|i| i.id) != Some(instance) {
            return;
        }
        let fails = member.passive_fails.fetch_add(1, Ordering::Relaxed) + 1;
        if max_fails == 0 || fails < max_fails || member.ejected {
            return;
        }
        if (ejected + 1) * 2 > members {
            tracing::warn!(replica = %name, fails, "passive failures; not ejected: more than half of the replicas would be out");
            return;
        }
        member.ejected = true;
        tracing::warn!(replica = %name, instance = %instance, fails, "replica ejected after consecutive failed requests; back with the next passing heartbeat");
        self.publish(&state);
    }

    /// Passive health: a proxied request to `instance` of `name` got a response after
    /// earlier failures. Resets its failure streak and readmits it if ejected.
    pub fn report_success(&self, name: &NodeId, instance: InstanceId) {
        let mut state = self.lock();
        let Some(member) = state.members.get_mut(name) else {
            return;
        };
        if member.instance.map(|i| i.id) != Some(instance) {
            return;
        }
        member.passive_fails.store(0, Ordering::Relaxed);
        if member.ejected {
            member.ejected = false;
            tracing::info!(replica = %name, "replica readmitted after a successful request");
            self.publish(&state);
        }
    }

    /// Feeds one heartbeat result of `instance` of replica `name`. Results of an
    /// instance that has since been replaced are ignored. A passing heartbeat also
    /// readmits a replica ejected by passive failures.
    pub fn observe(self: &Arc<Self>, name: &NodeId, instance: InstanceId, outcome: Outcome) {
        let mut state = self.lock();
        let Some(member) = state.members.get_mut(name) else {
            return;
        };
        if member.respawning || member.instance.map(|i| i.id) != Some(instance) {
            return;
        }
        let readmit = outcome == Outcome::Success && member.ejected;
        if readmit {
            member.ejected = false;
            member.passive_fails.store(0, Ordering::Relaxed);
            tracing::info!(replica = %name, "ejected replica readmitted: heartbeat passed");
        }
        let Some(transition) = member.health.observe(outcome, Instant::now()) else {
            if readmit {
                self.publish(&state);
            }
            return;
        };
        match transition.to {
            Status::Down => {
                tracing::warn!(replica = %name, instance = %instance, fall = self.settings.health.fall(), "replica Down: fall consecutive failed heartbeats");
                self.begin_respawn(&mut state, name);
            }
            Status::Up => {
                tracing::info!(replica = %name, instance = %instance, "replica Up");
                self.publish(&state);
            }
        }
    }

    /// Handles an event from the runtime: an instance that ended is taken out of
    /// rotation at once and respawned.
    pub fn on_event(self: &Arc<Self>, event: RuntimeEvent) {
        let RuntimeEvent::Exited { instance, reason } = event;
        let mut state = self.lock();
        let found = state
            .members
            .iter()
            .find(|(_, m)| m.instance.map(|i| i.id) == Some(instance) && !m.respawning)
            .map(|(name, _)| name.clone());
        if let Some(name) = found {
            tracing::warn!(replica = %name, instance = %instance, %reason, "replica exited");
            self.begin_respawn(&mut state, &name);
        }
    }

    /// Stops every replica; admin calls fail from now on.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _admin = self.admin.lock().await;
        let instances: Vec<(NodeId, InstanceId)> = {
            let mut state = self.lock();
            let all = std::mem::take(&mut state.members);
            let ring = Arc::make_mut(&mut state.ring);
            for name in all.keys() {
                let _ = ring.remove(name.as_str());
            }
            self.publish(&state);
            all.into_iter()
                .filter_map(|(name, m)| m.instance.map(|i| (name, i.id)))
                .collect()
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
    fn begin_respawn(self: &Arc<Self>, state: &mut State, name: &NodeId) {
        let Some(member) = state.members.get_mut(name) else {
            return;
        };
        let now = Instant::now();
        member.health.set(Status::Down, now);
        if !self.runtime.respawns() {
            // Someone else runs it: keep probing until it rises again.
            self.publish(state);
            return;
        }
        member.respawning = true;
        let delay = if now.duration_since(member.started) < STABLE_AFTER {
            let delay = member.backoff;
            member.backoff = (member.backoff * 2)
                .clamp(self.settings.backoff_initial, self.settings.backoff_max);
            delay
        } else {
            member.backoff = self.settings.backoff_initial;
            Duration::ZERO
        };
        let old = member.instance.map(|i| i.id);
        self.publish(state);
        let pool = Arc::clone(self);
        let name = name.clone();
        tokio::spawn(async move { pool.respawn(name, old, delay).await });
    }

    /// Replaces the instance of `name`: stops the old one, waits `delay`, starts a new
    /// one under the same hostname, retrying with backoff until it is ready or the
    /// member is removed.
    async fn respawn(self: Arc<Self>, name: NodeId, old: Option<InstanceId>, mut delay: Duration) {
        if let Some(old) = old {
            self.runtime.stop(old).await;
        }
        loop {
            if !delay.is_zero() {
                tracing::info!(replica = %name, delay_ms = delay.as_millis() as u64, "respawn backing off");
                tokio::time::sleep(delay).await;
            }
            if self.shutting_down.load(Ordering::SeqCst) || !self.lock().members.contains_key(&name)
            {
                return;
            }
            let target = if self.settings.fresh_names {
                self.fresh_name()
            } else {
                name.clone()
            };
            match self.runtime.spawn(&target, None).await {
                Ok(instance) => {
                    if !self.install(&name, &target, instance) {
                        self.runtime.stop(instance.id).await;
                    }
                    return;
                }
                Err(e) => {
                    delay =
                        (delay * 2).clamp(self.settings.backoff_initial, self.settings.backoff_max);
                    tracing::warn!(replica = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "respawn failed");
                }
            }
        }
    }

    /// Puts a respawned `instance` (named `target`: `name` itself, or a fresh name) in
    /// place of `name`'s old one; false if the member was removed (or the daemon is
    /// stopping) meanwhile, and the instance is unwanted.
    fn install(&self, name: &NodeId, target: &NodeId, instance: Instance) -> bool {
        let mut state = self.lock();
        let stopping = self.shutting_down.load(Ordering::SeqCst);
        let wanted = state.members.get(name).is_some_and(|m| m.respawning) && !stopping;
        if !wanted {
            return false;
        }
        let now = Instant::now();
        let Some(old) = state.members.remove(name) else {
            return false;
        };
        let mut member = self.member(old.seq, instance, now);
        member.backoff = old.backoff;
        member.respawns = old.respawns + 1;
        if target != name {
            let ring = Arc::make_mut(&mut state.ring);
            let _ = ring.remove(name.as_str());
            let _ = ring.add(target.clone(), 1);
            tracing::info!(old = %name, replica = %target, addr = %instance.addr, instance = %instance.id, "replica respawned under a new name");
        } else {
            tracing::info!(replica = %name, addr = %instance.addr, instance = %instance.id, "replica respawned");
        }
        state.members.insert(target.clone(), member);
        self.publish(&state);
        self.persist(&state);
        self.settings.metrics.respawns.inc();
        true
    }

    /// A `Server-xxxx` name (4 hex digits) not in use, as the Python balancer made.
    fn fresh_name(&self) -> NodeId {
        let state = self.lock();
        loop {
            let candidate = format!("Server-{:04x}", fastrand::u16(..));
            if !state.members.contains_key(candidate.as_str())
                && let Ok(id) = NodeId::new(candidate)
            {
                return id;
            }
        }
    }

    /// Saves the replica set to the state file, if any. A failed write is logged; the
    /// previous file stays intact.
    fn persist(&self, state: &State) {
        let Some(file) = &self.settings.state_file else {
            return;
        };
        let mut members: Vec<(&NodeId, &Member)> = state.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        let saved = SavedState {
            version: crate::state::VERSION,
            replicas: members
                .into_iter()
                .map(|(name, m)| SavedReplica {
                    name: name.to_string(),
                    pid: m.instance.and_then(|i| self.runtime.pid_of(i.id)),
                    address: m.instance.map(|i| i.addr),
                })
                .collect(),
        };
        if let Err(e) = file.save(&saved) {
            tracing::error!(error = %e, "cannot save the state file");
        }
    }

    fn publish(&self, state: &State) {
        let upstreams = state
            .members
            .iter()
            .filter_map(|(name, m)| {
                m.instance.map(|i| {
                    let up = m.health.is_up() && !m.respawning && !m.ejected;
                    let upstream = Upstream {
                        addr: i.addr,
                        up,
                        instance: i.id,
                        inflight: Arc::clone(&m.inflight),
                        passive_fails: Arc::clone(&m.passive_fails),
                        name_header: hyper::header::HeaderValue::from_str(name.as_str())
                            .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("invalid")),
                        metrics: self.settings.metrics.replica(name.as_str()),
                    };
                    (name.clone(), upstream)
                })
            })
            .collect();
        self.snapshot.store(Arc::new(Snapshot {
            ring: Arc::clone(&state.ring),
            upstreams,
        }));
    }

    fn refuse_if_shutting_down(&self) -> Result<(), AdminError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(AdminError::ShuttingDown);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn check_n(n: usize, max: usize) -> Result<(), AdminError> {
    if n > max {
        return Err(AdminError::OverCap { n, max });
    }
    Ok(())
}

fn check_distinct(names: &[NodeId]) -> Result<(), AdminError> {
    let mut seen = BTreeSet::new();
    match names.iter().find(|name| !seen.insert(*name)) {
        Some(dup) => Err(AdminError::Duplicate(dup.clone())),
        None => Ok(()),
    }
}

/// `names`, then `serverK` for the smallest unused K until there are `n`.
fn generate_names(
    members: &BTreeMap<NodeId, Member>,
    mut names: Vec<NodeId>,
    n: usize,
) -> Vec<NodeId> {
    let mut k = 1u64;
    while names.len() < n {
        let candidate = format!("server{k}");
        k += 1;
        let taken = members.contains_key(candidate.as_str())
            || names.iter().any(|x| x.as_str() == candidate);
        if !taken && let Ok(id) = NodeId::new(candidate) {
            names.push(id);
        }
    }
    names
}
