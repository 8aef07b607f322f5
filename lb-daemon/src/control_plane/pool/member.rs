//! One member of the pool: its running instance, its rise/fall health, its passive
//! failure streak and its respawn backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lb_core::{HealthConfig, HealthState, Outcome, Status};

use crate::data_plane::suspicion::Progress;
use crate::runtime::{Instance, InstanceId};

/// A respawned instance that lives this long resets its backoff.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(10);

/// One member of the pool.
#[derive(Debug)]
pub(super) struct Member {
    /// Order of addition, for `/rep` and for picking replicas to remove.
    pub(super) seq: u64,
    /// The running incarnation; `None` while a respawn has not produced one.
    pub(super) instance: Option<Instance>,
    pub(super) health: HealthState,
    pub(super) respawning: bool,
    /// When the current instance started.
    pub(super) started: Instant,
    /// Delay before the next respawn if this instance dies young.
    pub(super) backoff: Duration,
    /// Requests in flight to this replica (shared with the snapshots).
    pub(super) inflight: Arc<AtomicUsize>,
    /// Times this member was respawned.
    pub(super) respawns: u64,
    /// Consecutive passive failures (shared with the snapshots, which read it to know
    /// whether a success must be reported).
    pub(super) passive_fails: Arc<AtomicU32>,
    /// Out of rotation after `max_fails` passive failures, until a heartbeat or a
    /// proxied request succeeds. Never leads to a respawn.
    pub(super) ejected: bool,
    /// Its progress as the data plane sees it (shared with the snapshots): when it
    /// last answered, whether it is suspected. A new incarnation gets a new one.
    pub(super) progress: Arc<Progress>,
}

/// What a heartbeat result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heartbeat {
    /// Nothing the routing snapshot shows.
    Unchanged,
    /// `rise` passes in a row: Up again; publish.
    Up,
    /// A passing heartbeat readmitted a member ejected by passive failures; publish.
    Readmitted,
    /// `fall` failures in a row: the member is Down.
    Down,
}

impl Member {
    pub(super) fn new(
        seq: u64,
        instance: Instance,
        health: HealthConfig,
        progress: Progress,
        now: Instant,
    ) -> Self {
        let mut member = Self::joining(seq, Some(instance), health, progress, now);
        member.health = HealthState::new(health, Status::Up, now);
        member
    }

    /// A member an orchestrator lists (`instance`: its current one, if it has one), Down
    /// until heartbeats pass.
    pub(super) fn joining(
        seq: u64,
        instance: Option<Instance>,
        health: HealthConfig,
        progress: Progress,
        now: Instant,
    ) -> Self {
        Self {
            seq,
            instance,
            health: HealthState::new(health, Status::Down, now),
            respawning: false,
            started: now,
            backoff: Duration::ZERO,
            inflight: Arc::new(AtomicUsize::new(0)),
            respawns: 0,
            passive_fails: Arc::new(AtomicU32::new(0)),
            ejected: false,
            progress: Arc::new(progress),
        }
    }

    /// Whether `instance` is this member's current, settled incarnation.
    pub(super) fn runs(&self, instance: InstanceId) -> bool {
        !self.respawning && self.instance.map(|i| i.id) == Some(instance)
    }

    /// Feeds one heartbeat result at `now` through rise/fall. A passing one also
    /// readmits an ejected member.
    pub(super) fn heartbeat(&mut self, outcome: Outcome, now: Instant) -> Heartbeat {
        let readmit = outcome == Outcome::Success && self.ejected;
        if readmit {
            self.ejected = false;
            self.passive_fails.store(0, Ordering::Relaxed);
        }
        match self.health.observe(outcome, now).map(|t| t.to) {
            Some(Status::Down) => Heartbeat::Down,
            Some(Status::Up) => Heartbeat::Up,
            None if readmit => Heartbeat::Readmitted,
            None => Heartbeat::Unchanged,
        }
    }

    /// Counts a passive failure; returns the streak.
    pub(super) fn charge(&self) -> u32 {
        self.passive_fails.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes the member out of rotation (passive failures); false if it already was.
    pub(super) fn eject(&mut self) -> bool {
        !std::mem::replace(&mut self.ejected, true)
    }

    /// Ends a failure streak after a success; true if that readmits the member.
    pub(super) fn clear_failures(&mut self) -> bool {
        self.passive_fails.store(0, Ordering::Relaxed);
        std::mem::replace(&mut self.ejected, false)
    }

    /// Marks the member Down at `now`. With `respawn`, it is being replaced: returns the
    /// delay before starting the new instance (zero if this one lived
    /// [`STABLE_AFTER`], else the doubling backoff within `initial..=max`).
    pub(super) fn down(
        &mut self,
        now: Instant,
        respawn: bool,
        initial: Duration,
        max: Duration,
    ) -> Duration {
        self.health.set(Status::Down, now);
        if !respawn {
            return Duration::ZERO;
        }
        self.respawning = true;
        if now.duration_since(self.started) < STABLE_AFTER {
            let delay = self.backoff;
            self.backoff = (self.backoff * 2).clamp(initial, max);
            delay
        } else {
            self.backoff = initial;
            Duration::ZERO
        }
    }
}
