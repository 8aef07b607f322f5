//! Suspicion of a replica that makes no progress, and moving the requests that wait
//! on a replica that is suspected or taken out of rotation.
//!
//! A replica is **suspected** when a request has waited longer than the replica's
//! adaptive deadline ([`Suspicion::deadline`]: a multiple of its recent latency's high
//! end, never under `upstream.suspect_after_ms`) and, since that request was sent, the
//! replica has sent no response headers at all while another replica of the pool has.
//! A replica that answers its other requests is never suspected because one request is
//! slow, and neither is one whose peers are all as slow (a slow service is not a hung
//! replica). A suspected replica gets no new request but one half-open trial per
//! [`TRIAL_EVERY_MS`] (a circuit breaker's); any response headers from it clear
//! suspicion. Suspicion never respawns or ejects anything: heartbeats and exits decide
//! that.
//!
//! When a replica is suspected, or a snapshot takes it out of rotation (Down, ejected,
//! respawning), its waiting idempotent requests move to their key's next replica at
//! once ([`wait_for_head`]), instead of waiting for `try_timeout`.
//!
//! The state is a few atomics per replica, shared by every worker (like its in-flight
//! count), and one "some replica answered" time shared by the whole pool. A request
//! touches the shared wake-up list only once it has waited past its deadline.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::data_plane::slow_paths::TryLimits;

mod latency;
mod wait;

pub use latency::Latency;
pub use wait::{Stalled, Waited, Watch, wait_or_hedge};

/// How often a suspected replica gets one request as a trial, ms: twice per default
/// heartbeat interval, so a replica that recovers is back within one interval
/// (`benches/hung`: 1,030 ms after a wedge ended with one trial per 1,000 ms).
pub const TRIAL_EVERY_MS: u64 = 500;

/// Default floor of the deadline, ms (`upstream.suspect_after_ms`): above a replica
/// that answers 200 ms late (it makes progress), and low enough that a hung replica
/// costs a client at most about a quarter of a second. Chosen by `benches/hung`.
pub const DEFAULT_FLOOR_MS: u64 = 220;

/// Default multiple of a replica's recent latency high end
/// (`upstream.suspect_latency_multiple`).
pub const DEFAULT_MULTIPLE: u32 = 3;

/// Milliseconds since the first call (a monotonic clock the atomics can hold).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The suspicion settings (`[upstream]`), swapped whole on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspicion {
    /// Whether a silent replica is suspected (`suspect_after_ms` ≠ 0). Requests on a
    /// replica taken out of rotation move either way.
    pub enabled: bool,
    /// The deadline's floor (`suspect_after_ms`, default [`DEFAULT_FLOOR_MS`]).
    pub floor: Duration,
    /// The deadline's multiple of the replica's latency high end
    /// (`suspect_latency_multiple`, default [`DEFAULT_MULTIPLE`]).
    pub multiple: u32,
}

impl Default for Suspicion {
    fn default() -> Self {
        Self {
            enabled: true,
            floor: Duration::from_millis(DEFAULT_FLOOR_MS),
            multiple: DEFAULT_MULTIPLE,
        }
    }
}

impl Suspicion {
    /// How long a request may wait on a replica with `progress` before it is judged:
    /// `multiple × (mean + 4 × deviation)` of the replica's recent latency, at least
    /// `floor`, at most `try_timeout`.
    pub fn deadline(&self, progress: &Progress, try_timeout: Duration) -> Duration {
        progress
            .latency
            .high()
            .saturating_mul(self.multiple)
            .max(self.floor)
            .min(try_timeout)
    }

    /// The watch of one movable (idempotent, replayable) request with `limits` on
    /// `progress`: a request on a slow path never suspects its replica.
    pub fn watch(&self, progress: &Progress, limits: TryLimits) -> Watch {
        Watch {
            every: self.deadline(progress, limits.try_timeout),
            wake: self.floor,
            suspect: self.enabled && !limits.slow,
        }
    }
}

/// One replica's progress, shared by every worker and every snapshot of that replica's
/// current incarnation (a respawned one starts afresh, unsuspected).
#[derive(Debug)]
pub struct Progress {
    /// When it last sent response headers, ms on [`now_ms`]'s clock.
    last_head_ms: AtomicU64,
    /// Its recent latency to response headers.
    latency: Latency,
    suspected: AtomicBool,
    /// When its current suspicion began, ms.
    suspected_since_ms: AtomicU64,
    /// When it last got a half-open trial, ms.
    last_trial_ms: AtomicU64,
    /// Whether the latest snapshot has it in rotation.
    in_rotation: AtomicBool,
    /// Wakes the requests waiting on it when it is suspected or leaves rotation.
    changed: Notify,
    /// When any replica of the pool last sent response headers, ms.
    pool_last_head_ms: Arc<AtomicU64>,
}

impl Progress {
    /// A replica that has not been waited on yet, in a pool whose latest answer is
    /// `pool_last_head_ms`.
    pub fn new(pool_last_head_ms: Arc<AtomicU64>) -> Self {
        Self {
            last_head_ms: AtomicU64::new(now_ms()),
            latency: Latency::default(),
            suspected: AtomicBool::new(false),
            suspected_since_ms: AtomicU64::new(0),
            last_trial_ms: AtomicU64::new(0),
            in_rotation: AtomicBool::new(true),
            changed: Notify::new(),
            pool_last_head_ms,
        }
    }

    /// The replica sent response headers, `waited` after the request went out (`None`:
    /// a slow path's answer, which says nothing of the replica's usual latency): it
    /// makes progress, so it is not suspected. Called on every response: it writes the
    /// shared times and takes a latency sample at most once per millisecond, so workers
    /// do not contend on them request by request.
    pub fn answered(&self, waited: Option<Duration>) {
        let now = now_ms();
        if self.last_head_ms.load(Ordering::Relaxed) < now {
            self.last_head_ms.store(now, Ordering::Relaxed);
            if let Some(waited) = waited {
                self.latency.sample(waited);
            }
        }
        if self.pool_last_head_ms.load(Ordering::Relaxed) < now {
            self.pool_last_head_ms.fetch_max(now, Ordering::Relaxed);
        }
        if self.suspected.load(Ordering::Relaxed) {
            self.suspected.store(false, Ordering::Relaxed);
            tracing::info!("a suspected replica answered; suspicion cleared");
        }
    }

    /// Whether it is suspected now.
    pub fn is_suspected(&self) -> bool {
        self.suspected.load(Ordering::Relaxed)
    }

    /// Whether routing may choose it: always when not suspected; when suspected, only
    /// once its half-open trial is due (one per [`TRIAL_EVERY_MS`] from the suspicion
    /// on). Spends nothing: a request that is sent to it calls [`Progress::claim`].
    pub fn admits(&self) -> bool {
        !self.is_suspected() || self.trial_due(now_ms()).is_some()
    }

    /// A request is about to be sent to it: `true` if it may go. When suspected, a
    /// `movable` request (one that can leave if the trial stalls: idempotent, its body
    /// kept) takes the half-open trial if due, so only a request that is sent spends
    /// it; any other request does not go.
    pub fn claim(&self, movable: bool) -> bool {
        if !self.is_suspected() {
            return true;
        }
        if !movable {
            return false;
        }
        let now = now_ms();
        self.trial_due(now).is_some_and(|last| {
            self.last_trial_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// The last trial's time, if the next is due at `now`.
    fn trial_due(&self, now: u64) -> Option<u64> {
        let last = self.last_trial_ms.load(Ordering::Relaxed);
        (now.saturating_sub(last) >= TRIAL_EVERY_MS).then_some(last)
    }

    /// Whether the latest snapshot has it in rotation.
    pub fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Relaxed)
    }

    /// The latest snapshot has it in rotation (`true`) or not: leaving rotation wakes
    /// its waiting requests so they move.
    pub fn set_in_rotation(&self, in_rotation: bool) {
        let was = self.in_rotation.swap(in_rotation, Ordering::Relaxed);
        if was && !in_rotation {
            self.changed.notify_waiters();
        }
    }

    /// Whether a request sent at `sent_ms` and still waiting should leave: the replica
    /// is out of rotation, or was suspected since the request went out (a half-open
    /// trial, sent after, is judged by [`Progress::suspect_if_stalled`] alone).
    fn gave_up_on(&self, sent_ms: u64) -> bool {
        !self.in_rotation.load(Ordering::Relaxed)
            || (self.is_suspected() && self.suspected_since_ms.load(Ordering::Relaxed) >= sent_ms)
    }

    /// Whether a request sent at `sent_ms`, still unanswered, makes this replica
    /// suspect: the replica sent no response headers since then, while another replica
    /// of the pool did. Marks it suspected and wakes its other waiting requests when so.
    fn suspect_if_stalled(&self, sent_ms: u64) -> bool {
        // Judged by progress alone, also for a suspected replica: its half-open trial
        // gives up only if the replica still answers nothing, not because of the flag.
        let silent = self.last_head_ms.load(Ordering::Relaxed) < sent_ms;
        let others = self.pool_last_head_ms.load(Ordering::Relaxed) > sent_ms;
        if !(silent && others) {
            return false;
        }
        let now = now_ms();
        // The first half-open trial comes one interval from now.
        self.last_trial_ms.store(now, Ordering::Relaxed);
        if !self.suspected.swap(true, Ordering::Relaxed) {
            self.suspected_since_ms.store(now, Ordering::Relaxed);
            tracing::warn!(
                waited_ms = now.saturating_sub(sent_ms),
                "replica suspected: a request waits and it sent no response headers since, while others did"
            );
            self.changed.notify_waiters();
        }
        true
    }
}

#[cfg(test)]
mod tests;
