//! The bookkeeping of one request's tries, the same whichever path (hyper's or the
//! lean HTTP/1 one) sends them: the retry count, the in-flight counter following
//! the request from replica to replica, the connection checkout with its stage
//! timing, and fault attribution of each failed try.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::Response;
use lb_core::NodeId;

use crate::data_plane::accounting::InFlight;
use crate::data_plane::reply::Body;
use crate::data_plane::snapshot::Upstream;
use crate::data_plane::upstream_pool::{Checkout, ConnectError, Connector};
use crate::observe::access_log::AccessEntry;
use crate::observe::metrics::StageTimers;

use super::Forwarder;
use super::outcome::{Forwarded, TryFailure, queue_timeout};

/// One request's tries so far.
pub(crate) struct Tries<'a> {
    /// What the caller will learn.
    pub forwarded: Forwarded,
    /// The last failed try's replica and failure, for the answer when all fail.
    pub last: Option<(&'a NodeId, TryFailure)>,
    /// The request may leave a replica after it was sent (idempotent, body kept): only
    /// such a request takes a suspected replica's half-open trial.
    movable: bool,
    /// A hedge was sent already (a request is hedged at most once).
    hedged: bool,
}

/// Why a try got no connection.
pub(crate) enum NoConnection {
    /// The replica is at its cap and the queue's deadline passed: the answer is
    /// this 503; nothing is charged and the key does not spill to the next replica.
    Queued(Box<Response<Body>>),
    /// The connect failed: charged; the next candidate may be tried.
    Failed,
    /// The replica is suspected and its half-open trial is not for this request
    /// (another took it since the candidates were chosen, or this one could not leave a
    /// stalled trial): nothing is sent or charged; the next candidate is tried.
    Skipped,
}

impl<'a> Tries<'a> {
    /// No try yet, for a request with this access-log entry (access log on) that may
    /// (`movable`) or may not leave a replica once sent.
    pub(crate) fn new(access: Option<AccessEntry>, movable: bool) -> Self {
        Self {
            forwarded: Forwarded {
                access,
                ..Forwarded::default()
            },
            last: None,
            movable,
            hedged: false,
        }
    }

    /// Whether a hedge may still be sent (none was yet).
    pub(crate) fn may_hedge(&self) -> bool {
        !self.hedged
    }

    /// Starts the next try on `upstream` and takes a connection
    /// to it from `pool`.
    pub(crate) async fn connect<C>(
        &mut self,
        forwarder: &Forwarder,
        pool: &impl Connector<C>,
        name: &'a NodeId,
        upstream: &Upstream,
        in_flight: &mut InFlight,
        stages: &StageTimers,
    ) -> Result<Checkout<C>, NoConnection> {
        if !upstream.progress.claim(self.movable) {
            return Err(NoConnection::Skipped);
        }
        if self.forwarded.tries > 0 {
            forwarder.metrics.retries.inc();
        }
        self.forwarded.tries += 1;
        in_flight.at(&upstream.inflight);
        let routed = Instant::now();
        match pool.checkout(upstream.instance, upstream.addr).await {
            Ok(checkout) => {
                stages
                    .upstream_connection
                    .observe(routed.elapsed().as_secs_f64());
                Ok(checkout)
            }
            Err(e @ ConnectError::QueueTimeout { .. }) => {
                tracing::debug!(replica = %name, error = %e, "queue timeout");
                Err(NoConnection::Queued(Box::new(queue_timeout(name, &e))))
            }
            Err(e) => {
                tracing::debug!(replica = %name, error = %e, "cannot connect");
                self.failed(forwarder, name, upstream, TryFailure::Connect, in_flight);
                Err(NoConnection::Failed)
            }
        }
    }

    /// The replica answered, `waited` after the request went out (`None` on a slow
    /// path: not a latency sample): a replica with passive failures on record is told it
    /// works again, and it is the one that served.
    pub(crate) fn served(
        &mut self,
        forwarder: &Forwarder,
        name: &NodeId,
        upstream: &Upstream,
        waited: Option<Duration>,
    ) {
        upstream.progress.answered(waited);
        if upstream.passive_fails.load(Ordering::Relaxed) != 0 {
            forwarder.replicas.report_success(name, upstream.instance);
        }
        self.forwarded.served_by = Some(Arc::clone(&upstream.metrics));
        self.forwarded.replica = Some(upstream.name_header.clone());
    }

    /// The try failed by the replica's fault: charged to it (its failure counter
    /// and passive health), and the request leaves its in-flight count.
    pub(crate) fn failed(
        &mut self,
        forwarder: &Forwarder,
        name: &'a NodeId,
        upstream: &Upstream,
        failure: TryFailure,
        in_flight: &mut InFlight,
    ) {
        self.charge(forwarder, name, upstream, failure);
        in_flight.leave_replica();
    }

    /// A try failed by the replica's fault (a hedge's, or one a hedge outran):
    /// charged to it, the request's counts untouched.
    pub(crate) fn charge(
        &mut self,
        forwarder: &Forwarder,
        name: &'a NodeId,
        upstream: &Upstream,
        failure: TryFailure,
    ) {
        tracing::warn!(replica = %name, addr = %upstream.addr, failure = ?failure, "try failed");
        upstream.metrics.failure(failure.kind()).inc();
        forwarder.replicas.report_failure(name, upstream.instance);
        self.last = Some((name, failure));
    }

    /// A hedged wait ended: `first` is the first try's replica and end, `hedge` the
    /// hedge's (`None`: still waiting when the other answered or the try timeout
    /// passed, `timed_out`). Counts the hedge as a try and a retry, and as won or lost;
    /// charges a try that failed by its replica's fault (`charged` says which failures
    /// are) and, after a try timeout, the first try's replica with the timeout (the
    /// hedge waited less); moves the request's in-flight count to the winner. The
    /// winner's answer and replica, or `None` when neither answered.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    pub(crate) fn settle_hedge<A, E>(
        &mut self,
        forwarder: &Forwarder,
        first: (&'a NodeId, &'a Upstream, Option<Result<A, E>>),
        hedge: (&'a NodeId, &'a Upstream, Option<Result<A, E>>),
        timed_out: bool,
        charged: impl Fn(&E) -> Option<TryFailure>,
        in_flight: &mut InFlight,
    ) -> Option<(A, &'a NodeId, &'a Upstream)> {
        forwarder.metrics.retries.inc();
        self.forwarded.tries += 1;
        self.hedged = true;
        if timed_out && first.2.is_none() {
            self.charge(forwarder, first.0, first.1, TryFailure::Timeout);
        }
        let hedges = &forwarder.metrics.hedges;
        let mut winner = None;
        for (name, upstream, end, by_hedge) in [
            (first.0, first.1, first.2, false),
            (hedge.0, hedge.1, hedge.2, true),
        ] {
            match end {
                Some(Ok(answer)) if winner.is_none() => {
                    if by_hedge {
                        hedges.won.inc();
                        in_flight.at(&upstream.inflight);
                    } else {
                        hedges.lost.inc();
                    }
                    winner = Some((answer, name, upstream));
                }
                Some(Err(e)) => {
                    if let Some(failure) = charged(&e) {
                        self.charge(forwarder, name, upstream, failure);
                    }
                }
                Some(Ok(_)) | None => {}
            }
        }
        if winner.is_none() {
            in_flight.leave_replica();
        }
        winner
    }

    /// The replica was suspected of making no progress, or left rotation, while the
    /// request waited on it: not charged; the request leaves it (its connection is
    /// closed, not pooled).
    pub(crate) fn moved(
        &mut self,
        forwarder: &Forwarder,
        name: &'a NodeId,
        in_flight: &mut InFlight,
    ) {
        tracing::debug!(replica = %name, "suspected or out of rotation; the request moves on");
        forwarder.metrics.moved.inc();
        self.last = Some((name, TryFailure::Moved));
        in_flight.leave_replica();
    }

    /// A kept-alive connection closed under the request: nobody's fault.
    pub(crate) fn stale(&mut self, name: &'a NodeId, in_flight: &mut InFlight) {
        tracing::debug!(replica = %name, "kept-alive connection closed under the request");
        self.last = Some((name, TryFailure::Reset));
        in_flight.leave_replica();
    }
}
