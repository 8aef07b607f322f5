use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::wait::wait_for_head;
use super::*;

fn watch(every: Duration) -> Option<Watch> {
    Some(Watch {
        every,
        wake: every,
        suspect: true,
    })
}

/// Keeps `peer` answering every 5 ms until aborted.
fn chatter(peer: &Arc<Progress>) -> tokio::task::JoinHandle<()> {
    let answering = Arc::clone(peer);
    tokio::spawn(async move {
        loop {
            answering.answered(Some(Duration::from_millis(1)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test]
async fn a_silent_replica_is_suspected_only_while_others_answer() {
    let pool = Arc::new(AtomicU64::new(0));
    let hung = Progress::new(Arc::clone(&pool));
    let peer = Arc::new(Progress::new(Arc::clone(&pool)));
    let after = Duration::from_millis(50);
    let never = std::future::pending::<Result<(), ()>>;
    // Nobody answers at all: a slow service, not a hung replica.
    tokio::time::sleep(after).await;
    let waited = wait_for_head(never(), &hung, 4 * after, watch(after)).await;
    assert_eq!(waited, Err(Stalled::Timeout));
    assert!(!hung.is_suspected());
    // A peer keeps answering: the silent one is suspected at the next check.
    let chatter = chatter(&peer);
    let waited = wait_for_head(never(), &hung, Duration::from_secs(5), watch(after)).await;
    chatter.abort();
    assert_eq!(waited, Err(Stalled::Moved));
    assert!(hung.is_suspected() && !peer.is_suspected());
    // No request goes to it; an interval later one trial does, then none again. Routing
    // looking at it does not spend the trial; only the request sent to it does.
    assert!(!hung.admits() && !hung.claim(true));
    tokio::time::sleep(Duration::from_millis(TRIAL_EVERY_MS)).await;
    assert!(hung.admits() && hung.admits());
    // A request that could not leave a stalled trial does not take it.
    assert!(!hung.claim(false));
    assert!(hung.claim(true));
    assert!(!hung.admits() && !hung.claim(true));
    // An answer clears suspicion.
    hung.answered(Some(Duration::from_millis(1)));
    assert!(!hung.is_suspected() && hung.admits() && hung.claim(false) && hung.claim(true));
    // Without a watch only the try timeout ends a wait.
    let done = wait_for_head(
        async { Ok::<_, ()>(7) },
        &hung,
        Duration::from_secs(1),
        None,
    )
    .await;
    assert_eq!(done, Ok(Ok(7)));
    let late = wait_for_head(never(), &hung, after, None).await;
    assert_eq!(late, Err(Stalled::Timeout));
}

#[tokio::test]
async fn a_request_sent_before_the_last_answer_moves_when_the_replica_is_suspected() {
    // The replica answered after `early` went out (so `early` alone never suspects
    // it), then froze; a later request suspects it, and `early` leaves at once rather
    // than at its own next check.
    let pool = Arc::new(AtomicU64::new(0));
    let frozen = Arc::new(Progress::new(Arc::clone(&pool)));
    let peer = Arc::new(Progress::new(Arc::clone(&pool)));
    let chatter = chatter(&peer);
    let slow_checks = watch(Duration::from_secs(3));
    let early = {
        let frozen = Arc::clone(&frozen);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let waited = wait_for_head(
                std::future::pending::<Result<(), ()>>(),
                &frozen,
                Duration::from_secs(20),
                slow_checks,
            )
            .await;
            (waited, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    frozen.answered(Some(Duration::from_millis(1)));
    // `early` passes its first check (the replica answered since it went out).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(
        !early.is_finished(),
        "a replica that answered was given up on"
    );
    let late = wait_for_head(
        std::future::pending::<Result<(), ()>>(),
        &frozen,
        Duration::from_secs(20),
        watch(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(late, Err(Stalled::Moved));
    let (waited, elapsed) = early.await.unwrap();
    chatter.abort();
    assert_eq!(waited, Err(Stalled::Moved));
    // Moved with the suspicion (about 3.2 s in), not at its next check (6 s).
    assert!(elapsed < Duration::from_millis(5000), "{elapsed:?}");
}

#[tokio::test]
async fn a_replica_leaving_rotation_moves_its_waiting_requests_even_without_suspicion() {
    let pool = Arc::new(AtomicU64::new(0));
    let down = Arc::new(Progress::new(Arc::clone(&pool)));
    let only_moves = Some(Watch {
        every: Duration::from_millis(20),
        wake: Duration::from_millis(20),
        suspect: false,
    });
    let waiting = {
        let down = Arc::clone(&down);
        tokio::spawn(async move {
            wait_for_head(
                std::future::pending::<Result<(), ()>>(),
                &down,
                Duration::from_secs(20),
                only_moves,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    down.set_in_rotation(false);
    let moved = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert_eq!(moved.unwrap().unwrap(), Err(Stalled::Moved));
    assert!(!down.is_suspected(), "leaving rotation is not suspicion");
}

#[test]
fn the_deadline_is_a_multiple_of_the_replicas_latency_with_a_floor() {
    let progress = Progress::new(Arc::new(AtomicU64::new(0)));
    let suspicion = Suspicion::default();
    let try_timeout = Duration::from_secs(15);
    let floor = Duration::from_millis(DEFAULT_FLOOR_MS);
    assert_eq!(suspicion.deadline(&progress, try_timeout), floor);
    progress.latency.sample(Duration::from_millis(1));
    assert_eq!(suspicion.deadline(&progress, try_timeout), floor);
    for _ in 0..50 {
        progress.latency.sample(Duration::from_millis(200));
    }
    let slow = suspicion.deadline(&progress, try_timeout);
    assert!(slow >= Duration::from_millis(600), "{slow:?}");
    progress.latency.sample(Duration::from_secs(60));
    assert_eq!(suspicion.deadline(&progress, try_timeout), try_timeout);
}

#[tokio::test]
async fn a_hedge_starts_at_the_deadline_of_a_replica_that_answers_others_and_the_first_answer_wins()
{
    let pool = Arc::new(AtomicU64::new(0));
    let slow = Arc::new(Progress::new(Arc::clone(&pool)));
    let chatter = chatter(&slow); // it answers its other requests: not stalled
    let every = Duration::from_millis(50);
    let limit = Duration::from_secs(5);
    let sleep = |ms: u64, out: Result<u32, u32>| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        out
    };
    // Answered before the deadline: no hedge is started.
    let quick = wait_or_hedge(
        sleep(10, Ok(1)),
        &slow,
        limit,
        watch(every),
        Some(|| -> Option<std::future::Pending<Result<u32, u32>>> { panic!("hedged") }),
    )
    .await;
    assert!(matches!(quick, Ok(Waited::Alone(Ok(1)))), "{quick:?}");
    // Slow: the hedge answers first; the first try is cancelled.
    let won = wait_or_hedge(
        sleep(2000, Ok(1)),
        &slow,
        limit,
        watch(every),
        Some(|| Some(sleep(10, Ok(2)))),
    )
    .await;
    assert!(
        matches!(
            won,
            Ok(Waited::Hedged {
                first: None,
                hedge: Some(Ok(2)),
                timed_out: false
            })
        ),
        "{won:?}"
    );
    // The hedge fails: the first try's answer still wins, with the failure reported.
    let lost = wait_or_hedge(
        sleep(200, Ok(1)),
        &slow,
        limit,
        watch(every),
        Some(|| Some(sleep(5, Err(9)))),
    )
    .await;
    assert!(
        matches!(
            lost,
            Ok(Waited::Hedged {
                first: Some(Ok(1)),
                hedge: Some(Err(9)),
                timed_out: false
            })
        ),
        "{lost:?}"
    );
    // Neither answers within the try timeout: both ends are reported pending.
    let late = wait_or_hedge(
        sleep(2000, Ok(1)),
        &slow,
        Duration::from_millis(300),
        watch(every),
        Some(|| Some(sleep(2000, Ok(2)))),
    )
    .await;
    assert!(
        matches!(
            late,
            Ok(Waited::Hedged {
                first: None,
                hedge: None,
                timed_out: true
            })
        ),
        "{late:?}"
    );
    // Declined (over budget): the wait goes on alone.
    let declined = wait_or_hedge(
        sleep(120, Ok(1)),
        &slow,
        limit,
        watch(every),
        Some(|| None::<std::future::Ready<Result<u32, u32>>>),
    )
    .await;
    chatter.abort();
    assert!(matches!(declined, Ok(Waited::Alone(Ok(1)))), "{declined:?}");
}
