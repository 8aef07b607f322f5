//! The wait for a replica's response headers: bounded by `try_timeout`, and for a
//! request that may move (idempotent, its body kept), judged at its deadline and
//! woken when its replica is suspected or leaves rotation.

use std::future::Future;
use std::time::Duration;

use super::{Progress, now_ms};

/// How a movable request watches its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// Judged (suspicion, hedge) after this wait, then again every such interval: the
    /// replica's deadline.
    pub every: Duration,
    /// From this wait on (at most `every`) it is woken when its replica is suspected
    /// or leaves rotation: the deadline floor, so such a move is never later than it.
    pub wake: Duration,
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

/// [`wait_or_hedge`] without a hedge: waits for `attempt` (the send and the response
/// headers) at most `try_timeout`. With `watch` (a request that may move), after `watch.every` it checks whether the
/// replica stalls, and from then on also wakes when the replica is suspected or leaves
/// rotation; it gives up on the replica in either case.
///
/// # Errors
/// [`Stalled`].
#[cfg(test)]
pub(super) async fn wait_for_head<A, E>(
    attempt: impl Future<Output = Result<A, E>>,
    progress: &Progress,
    try_timeout: Duration,
    watch: Option<Watch>,
) -> Result<Result<A, E>, Stalled> {
    let no_hedge = None::<fn() -> Option<std::future::Pending<Result<A, E>>>>;
    match wait_or_hedge(attempt, progress, try_timeout, watch, no_hedge).await? {
        Waited::Alone(out) => Ok(out),
        // Without a hedge there is no race; kept total for the types' sake.
        Waited::Hedged { first, hedge, .. } => first.or(hedge).ok_or(Stalled::Timeout),
    }
}

/// How a wait with a possible hedge ended.
#[derive(Debug)]
pub enum Waited<A, E> {
    /// No hedge was sent: the try's own end.
    Alone(Result<A, E>),
    /// A hedge was sent: each try's end, `None` for one still waiting when the other
    /// answered first or when the try timeout passed (both are `Some` only when both
    /// failed, or when one failed and the other answered).
    Hedged {
        /// The first try's end.
        first: Option<Result<A, E>>,
        /// The hedge's end.
        hedge: Option<Result<A, E>>,
        /// The try timeout passed with no answer.
        timed_out: bool,
    },
}

/// [`wait_for_head`], and when the first check finds the replica making progress
/// (not stalled, not out of rotation) but this request still unanswered, starts
/// `hedge()` (if it gives a future: it may decline, e.g. over budget) and takes the
/// first answer of the two; the other is dropped, which closes its connection. No
/// check runs once hedged; `try_timeout` still bounds the whole wait.
///
/// Pass `attempt` pinned by the caller (`Pin<&mut F>`): a future moved in is stored in
/// this one's state as well as in the caller's, and a try's future is kilobytes.
///
/// # Errors
/// [`Stalled`].
pub async fn wait_or_hedge<A, E, H, F>(
    attempt: impl Future<Output = Result<A, E>>,
    progress: &Progress,
    try_timeout: Duration,
    watch: Option<Watch>,
    mut hedge: Option<H>,
) -> Result<Waited<A, E>, Stalled>
where
    H: FnOnce() -> Option<F>,
    F: Future<Output = Result<A, E>>,
{
    let deadline = tokio::time::Instant::now() + try_timeout;
    let mut attempt = std::pin::pin!(attempt);
    let Some(watch) = watch.filter(|w| !w.every.is_zero()) else {
        return tokio::time::timeout_at(deadline, attempt)
            .await
            .map(Waited::Alone)
            .map_err(|_| Stalled::Timeout);
    };
    let sent_ms = now_ms();
    let sent = tokio::time::Instant::now();
    let mut judge = sent + watch.every;
    // Most requests end here: the wake-up list is not touched before the floor.
    let wake = (sent + watch.wake.min(watch.every)).min(deadline);
    tokio::select! {
        out = &mut attempt => return Ok(Waited::Alone(out)),
        () = tokio::time::sleep_until(wake) => {}
    }
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Stalled::Timeout);
        }
        // Registered before the checks, so a change between them and the sleep wakes it.
        let changed = progress.changed.notified();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        if progress.gave_up_on(sent_ms) {
            return Err(Stalled::Moved);
        }
        if now >= judge {
            if watch.suspect && progress.suspect_if_stalled(sent_ms) {
                return Err(Stalled::Moved);
            }
            // Boxed at once: only hedged requests pay for the hedge's state (an
            // unboxed `Option` of it would live across the race's await).
            let second = hedge.take().and_then(|start| start()).map(Box::pin);
            if let Some(second) = second {
                return Ok(race(attempt, second, deadline).await);
            }
            judge += watch.every;
        }
        tokio::select! {
            out = &mut attempt => return Ok(Waited::Alone(out)),
            () = tokio::time::sleep_until(judge.min(deadline)) => {}
            () = &mut changed => {}
        }
    }
}

/// The first answer of `first` and `second`; a failure waits for the other, and
/// `deadline` ends the wait for both.
async fn race<A, E>(
    first: impl Future<Output = Result<A, E>>,
    second: impl Future<Output = Result<A, E>>,
    deadline: tokio::time::Instant,
) -> Waited<A, E> {
    let (mut first, mut second) = (std::pin::pin!(first), std::pin::pin!(second));
    let (mut first_out, mut second_out) = (None, None);
    let mut timed_out = false;
    while first_out.is_none() || second_out.is_none() {
        tokio::select! {
            out = &mut first, if first_out.is_none() => {
                let answered = out.is_ok();
                first_out = Some(out);
                if answered {
                    break;
                }
            }
            out = &mut second, if second_out.is_none() => {
                let answered = out.is_ok();
                second_out = Some(out);
                if answered {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break;
            }
        }
    }
    Waited::Hedged {
        first: first_out,
        hedge: second_out,
        timed_out,
    }
}
