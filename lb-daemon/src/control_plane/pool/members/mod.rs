//! The replica set as data: who is a member, in which order they were added, where each
//! one's running instance is, its health, and the ring built from them. No I/O and no
//! clock reads (callers pass `now`): the pool runs the replicas, this type keeps the
//! books, and builds from them the routing snapshot, the status rows and the state file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lb_api::{MAX_WEIGHT, ReplicaState, ReplicaStatus};
use lb_core::{HashAlgorithm, HashRing, HealthConfig, Maglev, NodeId};

pub(super) use super::member::{Heartbeat, Member};
use super::{AdminError, MAX_REPLICAS};
use crate::control_plane::state_file::{SavedReplica, SavedState};
use crate::data_plane::protocol::Protocol;
use crate::data_plane::routing::{Algorithm, Routing};
use crate::data_plane::snapshot::{Snapshot, Upstream};
use crate::data_plane::suspicion::Progress;
use crate::observe::metrics::Metrics;
use crate::runtime::{Instance, InstanceId};

/// The members, the ring over them, and the next sequence number.
#[derive(Debug)]
pub(super) struct Members {
    by_name: BTreeMap<NodeId, Member>,
    /// Fresh names of respawns still starting (`respawn.naming = "fresh"`): in use,
    /// though no member has them yet.
    starting: HashSet<NodeId>,
    ring: Arc<HashRing<HashAlgorithm>>,
    /// Changes of the ring's membership so far (see [`ring_mut`](Self::ring_mut)).
    epoch: u64,
    next_seq: u64,
    health: HealthConfig,
    /// Table, bounded loads and keyless policy of the snapshots.
    routing: Routing,
    /// The Maglev table built from the ring at an epoch, while the algorithm is Maglev.
    maglev: Option<(u64, Arc<Maglev<HashAlgorithm>>)>,
    /// Keyless round robin's turns, shared by every snapshot.
    rotation: Arc<AtomicUsize>,
    /// When any member last sent response headers (suspicion compares with it).
    answers: Arc<AtomicU64>,
    /// What members speak when their runtime does not say (`upstream.protocol`).
    protocol: Protocol,
}

/// A member taken out by `/rm`, still to be drained and stopped.
pub(super) struct Removed {
    pub(super) name: NodeId,
    pub(super) instance: Option<Instance>,
    pub(super) inflight: Arc<AtomicUsize>,
}

impl Members {
    /// No members, on `ring` (empty); new members get `health`'s rise/fall; snapshots
    /// route by `routing`.
    pub(super) fn new(
        ring: HashRing<HashAlgorithm>,
        health: HealthConfig,
        routing: Routing,
        protocol: Protocol,
    ) -> Self {
        Self {
            by_name: BTreeMap::new(),
            starting: HashSet::new(),
            ring: Arc::new(ring),
            epoch: 0,
            next_seq: 0,
            health,
            routing,
            maglev: None,
            rotation: Arc::new(AtomicUsize::new(0)),
            answers: Arc::new(AtomicU64::new(0)),
            protocol,
        }
    }

    /// `instance` with its protocol settled: its runtime's word, else `upstream.protocol`.
    fn settled(&self, instance: Instance) -> Instance {
        Instance {
            protocol: Some(instance.protocol.unwrap_or(self.protocol)),
            ..instance
        }
    }

    /// A fresh, unsuspected progress record for a new incarnation.
    fn progress(&self) -> Progress {
        Progress::new(Arc::clone(&self.answers))
    }

    /// Routes the next snapshots by `routing` (a reload); the Maglev table is built
    /// again if its size changed.
    pub(super) fn set_routing(&mut self, routing: Routing) {
        if routing.algorithm != self.routing.algorithm {
            self.maglev = None;
        }
        self.routing = routing;
    }

    /// Sets member `name`'s weight (0 drains it: off the table, in-flight requests
    /// finish); returns the old one.
    ///
    /// # Errors
    /// [`AdminError::Unknown`] for a name that is not a member;
    /// [`AdminError::Weight`] for a weight the ring refuses. Nothing changes then.
    pub(super) fn set_weight(&mut self, name: &NodeId, weight: u32) -> Result<u32, AdminError> {
        if !self.contains(name) {
            return Err(AdminError::Unknown(name.clone()));
        }
        self.check_weight(weight)?;
        let old = Arc::make_mut(&mut self.ring)
            .set_weight(name.as_str(), weight)
            .map_err(|e| AdminError::Weight(e.to_string()))?;
        // Only a change that happened counts an epoch.
        self.epoch += 1;
        Ok(old)
    }

    /// Refuses a weight above [`MAX_WEIGHT`], or one whose points the ring cannot hold
    /// (`weight × points_per_weight` above lb-core's per-node limit).
    ///
    /// # Errors
    /// [`AdminError::Weight`] with the reason.
    pub(super) fn check_weight(&self, weight: u32) -> Result<(), AdminError> {
        let points = u64::from(weight) * u64::from(self.ring.points_per_weight());
        if weight > MAX_WEIGHT {
            return Err(AdminError::Weight(format!(
                "weight {weight} is above the maximum {MAX_WEIGHT}"
            )));
        }
        if points > lb_core::MAX_POINTS_PER_NODE {
            return Err(AdminError::Weight(format!(
                "weight {weight} × points_per_weight {} is more points than one replica may \
                 hold ({})",
                self.ring.points_per_weight(),
                lb_core::MAX_POINTS_PER_NODE
            )));
        }
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }

    pub(super) fn contains(&self, name: &NodeId) -> bool {
        self.by_name.contains_key(name)
    }

    /// `name` is still the member a respawn job was started for: the same name and
    /// the same sequence number (a member removed and added again under that name
    /// has a new one, and its own jobs).
    pub(super) fn is_generation(&self, name: &NodeId, seq: u64) -> bool {
        self.by_name.get(name).is_some_and(|m| m.seq == seq)
    }

    /// The sequence number of member `name`, if it is one.
    #[cfg(test)]
    pub(super) fn seq_of(&self, name: &NodeId) -> Option<u64> {
        self.by_name.get(name).map(|m| m.seq)
    }

    /// A member's name, or a fresh name a respawn is starting under.
    fn in_use(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.starting.contains(name)
    }

    /// The ring, to change its membership: counts one more epoch (a change that turns
    /// out to be none still counts; the epoch only has to grow with every change).
    fn ring_mut(&mut self) -> &mut HashRing<HashAlgorithm> {
        self.epoch += 1;
        Arc::make_mut(&mut self.ring)
    }

    pub(super) fn get_mut(&mut self, name: &NodeId) -> Option<&mut Member> {
        self.by_name.get_mut(name)
    }

    /// Members that are out of rotation after passive failures.
    pub(super) fn ejected(&self) -> usize {
        self.by_name.values().filter(|m| m.ejected).count()
    }

    /// The member whose settled instance is `instance`.
    pub(super) fn running(&self, instance: InstanceId) -> Option<NodeId> {
        self.by_name
            .iter()
            .find(|(_, m)| m.runs(instance))
            .map(|(name, _)| name.clone())
    }

    fn in_order(&self) -> Vec<(&NodeId, &Member)> {
        let mut members: Vec<(&NodeId, &Member)> = self.by_name.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        members
    }

    /// Hostnames in the order they were added.
    pub(super) fn names(&self) -> Vec<NodeId> {
        self.in_order()
            .into_iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Replicas to probe: those with a running instance that is not being replaced.
    pub(super) fn probe_targets(&self) -> Vec<(NodeId, Instance)> {
        self.by_name
            .iter()
            .filter(|(_, m)| !m.respawning)
            .filter_map(|(name, m)| m.instance.map(|i| (name.clone(), i)))
            .collect()
    }

    /// Adds a new, Up member of `weight` around `instance` at the end of the order.
    pub(super) fn insert(&mut self, name: NodeId, instance: Instance, weight: u32, now: Instant) {
        if let Err(e) = self.ring_mut().add(name.clone(), weight) {
            tracing::error!(error = %e, "ring refused a checked name");
        }
        let instance = self.settled(instance);
        let member = Member::new(self.next_seq, instance, self.health, self.progress(), now);
        self.next_seq += 1;
        self.by_name.insert(name, member);
    }

    /// Follows an orchestrator's whole replica set (oldest first): members not listed
    /// leave the ring, listed ones that are not members join it Down (heartbeats bring
    /// them Up, as the daemon that added them may still be waiting for them to start),
    /// and a member listed with another instance takes it, Down likewise. A replica
    /// listed without an instance (its task is being replaced) keeps its place on the
    /// ring with no address, so its keys go to their next candidates and no other key
    /// moves. Returns whether anything changed.
    pub(super) fn follow(&mut self, replicas: &[(NodeId, Option<Instance>)], now: Instant) -> bool {
        let listed: HashSet<&NodeId> = replicas.iter().map(|(name, _)| name).collect();
        let gone: Vec<NodeId> = self
            .by_name
            .keys()
            .filter(|name| !listed.contains(name))
            .cloned()
            .collect();
        let mut changed = !gone.is_empty();
        for name in gone {
            self.by_name.remove(&name);
            let _ = self.ring_mut().remove(name.as_str());
        }
        for (name, instance) in replicas {
            let seq = match self.by_name.get(name) {
                Some(m) if m.instance.map(|i| i.id) == instance.map(|i| i.id) => continue,
                Some(m) => m.seq,
                None => {
                    if let Err(e) = self.ring_mut().add(name.clone(), 1) {
                        tracing::error!(error = %e, "ring refused a listed name");
                        continue;
                    }
                    self.next_seq += 1;
                    self.next_seq - 1
                }
            };
            let member = Member::joining(seq, *instance, self.health, self.progress(), now);
            self.by_name.insert(name.clone(), member);
            changed = true;
        }
        changed
    }

    /// The names `/add` of `n` replicas would start: `names` (checked: at most `n`,
    /// distinct, not taken), then `serverK` for the smallest unused K.
    ///
    /// # Errors
    /// [`AdminError`] naming the first problem; nothing changes either way.
    pub(super) fn choose_new(
        &self,
        mut names: Vec<NodeId>,
        n: usize,
        cap: usize,
    ) -> Result<Vec<NodeId>, AdminError> {
        if names.len() > n {
            return Err(AdminError::TooManyNamesToAdd);
        }
        check_n(n, cap)?;
        if self.len() + n > MAX_REPLICAS {
            return Err(AdminError::PoolFull { n });
        }
        check_distinct(&names)?;
        if let Some(taken) = names.iter().find(|name| self.in_use(name.as_str())) {
            return Err(AdminError::Exists(taken.clone()));
        }
        let mut k = 1u64;
        while names.len() < n {
            let candidate = format!("server{k}");
            k += 1;
            let taken = self.in_use(&candidate) || names.iter().any(|x| x.as_str() == candidate);
            if !taken && let Ok(id) = NodeId::new(candidate) {
                names.push(id);
            }
        }
        Ok(names)
    }

    /// Takes the members `/rm` of `n` removes off the ring: those in `names`, then the
    /// most recently added others; `n` above the number of members takes them all.
    ///
    /// # Errors
    /// [`AdminError`] naming the first problem; nothing was removed then.
    pub(super) fn remove(
        &mut self,
        names: Vec<NodeId>,
        n: usize,
        cap: usize,
    ) -> Result<Vec<Removed>, AdminError> {
        if names.len() > n {
            return Err(AdminError::TooManyNamesToRemove);
        }
        check_n(n, cap)?;
        check_distinct(&names)?;
        if let Some(unknown) = names.iter().find(|name| !self.contains(name)) {
            return Err(AdminError::Unknown(unknown.clone()));
        }
        // More than there are removes them all, as the Python balancer did.
        let n = n.min(self.len());
        let mut others: Vec<(&NodeId, &Member)> = self
            .by_name
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
            if let Some(member) = self.by_name.remove(&name) {
                let _ = self.ring_mut().remove(name.as_str());
                removed.push(Removed {
                    name,
                    instance: member.instance,
                    inflight: member.inflight,
                });
            }
        }
        Ok(removed)
    }

    /// Empties the set (shutdown); the instances that were running.
    pub(super) fn take_all(&mut self) -> Vec<(NodeId, InstanceId)> {
        let all = std::mem::take(&mut self.by_name);
        let ring = self.ring_mut();
        for name in all.keys() {
            let _ = ring.remove(name.as_str());
        }
        all.into_iter()
            .filter_map(|(name, m)| m.instance.map(|i| (name, i.id)))
            .collect()
    }

    /// Puts a respawned `instance` (named `target`: `name` itself, or a fresh name) in
    /// place of `name`'s old one; false if `name` is no longer being respawned.
    pub(super) fn replace(
        &mut self,
        name: &NodeId,
        seq: u64,
        target: &NodeId,
        instance: Instance,
        now: Instant,
    ) -> bool {
        self.starting.remove(target);
        if !self
            .by_name
            .get(name)
            .is_some_and(|m| m.respawning && m.seq == seq)
        {
            return false;
        }
        let Some(old) = self.by_name.remove(name) else {
            return false;
        };
        let instance = self.settled(instance);
        let mut member = Member::new(old.seq, instance, self.health, self.progress(), now);
        member.backoff = old.backoff;
        member.respawns = old.respawns + 1;
        if target != name {
            let ring = self.ring_mut();
            let weight = ring.remove(name.as_str()).map_or(1, |node| node.weight());
            let _ = ring.add(target.clone(), weight);
        }
        self.by_name.insert(target.clone(), member);
        true
    }

    /// A `Server-xxxx` name (4 hex digits), as the Python balancer made, that no
    /// member and no other starting respawn has; held for this respawn until
    /// [`replace`](Self::replace) or [`release`](Self::release).
    pub(super) fn fresh_name(&mut self) -> NodeId {
        loop {
            let candidate = format!("Server-{:04x}", fastrand::u16(..));
            if !self.in_use(&candidate)
                && let Ok(id) = NodeId::new(candidate)
            {
                self.starting.insert(id.clone());
                return id;
            }
        }
    }

    /// Gives back a fresh name whose respawn failed.
    pub(super) fn release(&mut self, name: &NodeId) {
        self.starting.remove(name);
    }

    /// Every replica in the order added, as `/status` shows it at `now`, with the
    /// responses it gave as `requests_of(name)` counts them.
    pub(super) fn status(
        &self,
        now: Instant,
        requests_of: impl Fn(&str) -> u64,
    ) -> Vec<ReplicaStatus> {
        let table_shares = match &self.maglev {
            Some((_, maglev)) => maglev.shares(),
            None => self.ring.shares(),
        };
        let shares: HashMap<&NodeId, (u32, f64)> = self
            .ring
            .nodes()
            .iter()
            .map(|node| (node.id(), node.weight()))
            .zip(table_shares)
            .map(|((id, weight), share)| (id, (weight, share)))
            .collect();
        self.in_order()
            .into_iter()
            .map(|(name, m)| ReplicaStatus {
                name: name.to_string(),
                address: m.instance.filter(|_| !m.respawning).map(|i| i.addr),
                state: match (m.respawning, m.health.is_up(), m.ejected) {
                    (true, _, _) => ReplicaState::Respawning,
                    (false, true, false) => ReplicaState::Up,
                    (false, true, true) => ReplicaState::Ejected,
                    (false, false, _) => ReplicaState::Down,
                },
                uptime_ms: if m.respawning {
                    0
                } else {
                    millis(now.duration_since(m.started))
                },
                state_ms: millis(now.duration_since(m.health.since())),
                respawns: m.respawns,
                in_flight: m.inflight.load(Ordering::Relaxed),
                requests: requests_of(name.as_str()),
                weight: shares.get(name).map_or(0, |(weight, _)| *weight),
                suspected: m.progress.is_suspected(),
                ring_share: shares.get(name).map_or(0.0, |(_, share)| *share),
            })
            .collect()
    }

    /// The routing view of the members: the ring (and the Maglev table built from it,
    /// once per change), each running instance with whether it takes traffic, and the
    /// routing choice.
    pub(super) fn snapshot(&mut self, metrics: &Metrics) -> Snapshot {
        let maglev = match self.routing.algorithm {
            Algorithm::Ring => None,
            Algorithm::Maglev { table_size } => self.maglev_at_epoch(table_size),
        };
        let upstreams = self
            .by_name
            .iter()
            .filter_map(|(name, m)| {
                m.instance.map(|i| {
                    let up = m.health.is_up() && !m.respawning && !m.ejected;
                    // Leaving rotation moves the requests waiting on it.
                    m.progress.set_in_rotation(up);
                    let upstream = Upstream {
                        addr: i.addr,
                        up,
                        instance: i.id,
                        inflight: Arc::clone(&m.inflight),
                        passive_fails: Arc::clone(&m.passive_fails),
                        name_header: hyper::header::HeaderValue::from_str(name.as_str())
                            .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("invalid")),
                        metrics: metrics.replica(name.as_str()),
                        progress: Arc::clone(&m.progress),
                        protocol: i.protocol.unwrap_or(self.protocol),
                    };
                    (name.clone(), upstream)
                })
            })
            .collect();
        Snapshot {
            ring: Arc::clone(&self.ring),
            maglev,
            routing: self.routing,
            rotation: Arc::clone(&self.rotation),
            epoch: self.epoch,
            upstreams,
        }
    }

    /// The Maglev table of the ring's members and weights now, built when the ring
    /// changed since the last one; `None` (keys go by the ring) if lb-core refuses to
    /// build it, which only more members than slots can cause.
    fn maglev_at_epoch(&mut self, table_size: u32) -> Option<Arc<Maglev<HashAlgorithm>>> {
        if let Some((epoch, table)) = &self.maglev
            && *epoch == self.epoch
        {
            return Some(Arc::clone(table));
        }
        let nodes = self
            .ring
            .nodes()
            .iter()
            .map(|node| (node.id().clone(), node.weight()));
        match Maglev::from_nodes(*self.ring.hasher(), table_size, nodes) {
            Ok(table) => {
                let table = Arc::new(table);
                self.maglev = Some((self.epoch, Arc::clone(&table)));
                Some(table)
            }
            Err(e) => {
                tracing::error!(error = %e, table_size, "cannot build the Maglev table; keys go by the ring");
                self.maglev = None;
                None
            }
        }
    }

    /// The state file's view of the members, in order; `pid_of` gives an instance's
    /// process id where the runtime has one.
    pub(super) fn saved(&self, pid_of: impl Fn(InstanceId) -> Option<u32>) -> SavedState {
        SavedState {
            version: crate::control_plane::state_file::VERSION,
            replicas: self
                .in_order()
                .into_iter()
                .map(|(name, m)| SavedReplica {
                    name: name.to_string(),
                    pid: m.instance.and_then(|i| pid_of(i.id)),
                    weight: self
                        .ring
                        .node(name.as_str())
                        .map_or(1, |node| node.weight()),
                    address: m.instance.map(|i| i.addr),
                })
                .collect(),
        }
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

#[cfg(test)]
mod tests;
