//! Suspicion of a replica that makes no progress: a request has waited
//! `upstream.suspect_after_ms` on it, and since that request was sent the replica has
//! sent no response headers at all while other replicas of the pool have. A replica
//! that answers its other requests is never suspected because one request is slow, and
//! neither is one whose peers are all as slow (a slow service is not a hung replica). A suspected replica gets no new request but one half-open trial per
//! second (a circuit breaker's), and its waiting idempotent requests move to the key's
//! next replica at once. Any response headers from it clear suspicion. Suspicion never
//! respawns or ejects anything: heartbeats and exits decide that.
//!
//! The state is a few atomics per replica, shared by every worker (like its in-flight
//! count), and one "some replica answered" time shared by the whole pool.

use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a suspected replica gets one request as a trial, ms (the default
/// heartbeat interval).
pub const TRIAL_EVERY_MS: u64 = 1000;

/// Milliseconds since the first call (a monotonic clock the atomics can hold).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One replica's progress, shared by every worker and every snapshot of that replica's
/// current incarnation (a respawned one starts afresh, unsuspected).
#[derive(Debug)]
pub struct Progress {
    /// When it last sent response headers, ms on [`now_ms`]'s clock.
    last_head_ms: AtomicU64,
    suspected: AtomicBool,
    /// When it last got a half-open trial, ms.
    last_trial_ms: AtomicU64,
    /// When any replica of the pool last sent response headers, ms.
    pool_last_head_ms: Arc<AtomicU64>,
}

impl Progress {
    /// A replica that has not been waited on yet, in a pool whose latest answer is
    /// `pool_last_head_ms`.
    pub fn new(pool_last_head_ms: Arc<AtomicU64>) -> Self {
        Self {
            last_head_ms: AtomicU64::new(now_ms()),
            suspected: AtomicBool::new(false),
            last_trial_ms: AtomicU64::new(0),
            pool_last_head_ms,
        }
    }

    /// The replica sent response headers: it makes progress, so it is not suspected.
    /// Called on every response: it writes the shared times at most once per
    /// millisecond, so workers do not contend on them request by request.
    pub fn answered(&self) {
        let now = now_ms();
        if self.last_head_ms.load(Ordering::Relaxed) < now {
            self.last_head_ms.store(now, Ordering::Relaxed);
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

    /// Whether a new request may go to it: always when not suspected; when suspected,
    /// one request per [`TRIAL_EVERY_MS`] from the suspicion on (the half-open trial).
    pub fn admits(&self) -> bool {
        if !self.is_suspected() {
            return true;
        }
        let now = now_ms();
        let last = self.last_trial_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= TRIAL_EVERY_MS
            && self
                .last_trial_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether a request sent at `sent_ms`, still unanswered, makes this replica
    /// suspect: the replica sent no response headers since then, while another replica
    /// of the pool did. Marks it suspected when so.
    fn suspect_if_stalled(&self, sent_ms: u64) -> bool {
        // Judged by progress alone, also for a suspected replica: its half-open trial
        // gives up only if the replica still answers nothing, not because of the flag.
        let silent = self.last_head_ms.load(Ordering::Relaxed) < sent_ms;
        let others = self.pool_last_head_ms.load(Ordering::Relaxed) > sent_ms;
        if silent && others {
            let now = now_ms();
            // The first half-open trial comes one interval from now.
            self.last_trial_ms.store(now, Ordering::Relaxed);
            self.suspected.store(true, Ordering::Relaxed);
            tracing::warn!(
                waited_ms = now.saturating_sub(sent_ms),
                "replica suspected: a request waits and it sent no response headers since, while others did"
            );
        }
        silent && others
    }
}

/// How a wait for response headers ended without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// `try_timeout` passed.
    Timeout,
    /// The replica is suspected of making no progress; the request may go elsewhere.
    Suspected,
}

/// Waits for `attempt` (the send and the response headers) at most `try_timeout`. With
/// `suspect_after` (idempotent requests only), every `suspect_after` it checks whether
/// the replica stalls and gives up on it when it does.
///
/// # Errors
/// [`Stalled`].
pub async fn wait_for_head<T>(
    attempt: impl Future<Output = T>,
    progress: &Progress,
    try_timeout: Duration,
    suspect_after: Option<Duration>,
) -> Result<T, Stalled> {
    let deadline = tokio::time::Instant::now() + try_timeout;
    let sent_ms = now_ms();
    let mut attempt = std::pin::pin!(attempt);
    let Some(after) = suspect_after.filter(|after| !after.is_zero()) else {
        return tokio::time::timeout_at(deadline, attempt)
            .await
            .map_err(|_| Stalled::Timeout);
    };
    let mut check = tokio::time::Instant::now() + after;
    loop {
        tokio::select! {
            out = &mut attempt => return Ok(out),
            () = tokio::time::sleep_until(check.min(deadline)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Stalled::Timeout);
        }
        if progress.suspect_if_stalled(sent_ms) {
            return Err(Stalled::Suspected);
        }
        check += after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_replica_is_suspected_only_while_others_answer() {
        let pool = Arc::new(AtomicU64::new(0));
        let hung = Progress::new(Arc::clone(&pool));
        let peer = Arc::new(Progress::new(Arc::clone(&pool)));
        let after = Duration::from_millis(50);
        let never = std::future::pending::<()>;
        // Nobody answers at all: a slow service, not a hung replica.
        tokio::time::sleep(after).await;
        let waited = wait_for_head(never(), &hung, 4 * after, Some(after)).await;
        assert_eq!(waited, Err(Stalled::Timeout));
        assert!(!hung.is_suspected());
        // A peer keeps answering: the silent one is suspected at the next check.
        let answering = Arc::clone(&peer);
        let chatter = tokio::spawn(async move {
            loop {
                answering.answered();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let waited = wait_for_head(never(), &hung, Duration::from_secs(5), Some(after)).await;
        chatter.abort();
        assert_eq!(waited, Err(Stalled::Suspected));
        assert!(hung.is_suspected() && !peer.is_suspected());
        // No request goes to it; a second later one trial does, then none again.
        assert!(!hung.admits());
        tokio::time::sleep(Duration::from_millis(TRIAL_EVERY_MS)).await;
        assert!(hung.admits());
        assert!(!hung.admits());
        // An answer clears suspicion.
        hung.answered();
        assert!(!hung.is_suspected() && hung.admits());
        // Without suspect_after only the try timeout ends a wait.
        let done = wait_for_head(async { 7 }, &hung, Duration::from_secs(1), None).await;
        assert_eq!(done, Ok(7));
        let late = wait_for_head(never(), &hung, after, None).await;
        assert_eq!(late, Err(Stalled::Timeout));
    }
}
