//! The wait for a replica's response headers: bounded by `try_timeout`, and for a
//! request that may move (idempotent, its body kept), judged at its deadline and
//! woken when its replica is suspected or leaves rotation.

use std::future::Future;
use std::time::Duration;

use super::{Progress, now_ms};

/// How a movable request watches its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// First judged after this wait, then again every such interval.
    pub every: Duration,
    /// Whether a silent replica may be suspected (`false`: the request only moves when
    /// its replica leaves rotation).
    pub suspect: bool,
}

/// How a wait for response headers ended without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// `try_timeout` passed.
    Timeout,
    /// The replica is suspected of making no progress, or left rotation: the request
    /// may go elsewhere, uncharged.
    Moved,
}

/// Waits for `attempt` (the send and the response headers) at most `try_timeout`.
/// With `watch` (a request that may move), after `watch.every` it checks whether the
/// replica stalls, and from then on also wakes when the replica is suspected or leaves
/// rotation; it gives up on the replica in either case.
///
/// # Errors
/// [`Stalled`].
pub async fn wait_for_head<T>(
    attempt: impl Future<Output = T>,
    progress: &Progress,
    try_timeout: Duration,
    watch: Option<Watch>,
) -> Result<T, Stalled> {
    let deadline = tokio::time::Instant::now() + try_timeout;
    let mut attempt = std::pin::pin!(attempt);
    let Some(watch) = watch.filter(|w| !w.every.is_zero()) else {
        return tokio::time::timeout_at(deadline, attempt)
            .await
            .map_err(|_| Stalled::Timeout);
    };
    let sent_ms = now_ms();
    let mut check = tokio::time::Instant::now() + watch.every;
    // Most requests end here: the wake-up list is not touched before the deadline.
    tokio::select! {
        out = &mut attempt => return Ok(out),
        () = tokio::time::sleep_until(check.min(deadline)) => {}
    }
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(Stalled::Timeout);
        }
        // Registered before the checks, so a change between them and the sleep wakes it.
        let changed = progress.changed.notified();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        if progress.gave_up_on(sent_ms) || (watch.suspect && progress.suspect_if_stalled(sent_ms)) {
            return Err(Stalled::Moved);
        }
        check += watch.every;
        tokio::select! {
            out = &mut attempt => return Ok(out),
            () = tokio::time::sleep_until(check.min(deadline)) => {}
            () = &mut changed => {}
        }
    }
}
