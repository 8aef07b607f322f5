//! Accounting that survives cancellation: every count a request raises is lowered by
//! a guard's `Drop`, so a client that disappears mid-request (its future dropped at
//! any `.await`) leaves every gauge correct.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;

use crate::data_plane::connection::Busy;

/// A hedge waiting on a replica: raises that replica's in-flight count until dropped
/// (the request itself stays counted where its first try went).
#[derive(Debug)]
pub struct HedgeInFlight(Arc<AtomicUsize>);

impl HedgeInFlight {
    /// Counts one more request at the replica whose counter is `counter`.
    pub fn at(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }
}

impl Drop for HedgeInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request in flight: raises `lb_in_flight_requests` from creation, and the
/// chosen replica's in-flight count (which `/rm` drains) from [`InFlight::at`], until
/// dropped. The guard moves into the response body, so a request stays in flight
/// until its response body is done.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
    replica: Option<Arc<AtomicUsize>>,
    _busy: Option<Busy>,
}

impl InFlight {
    /// Counts a request in `gauge` until the guard drops.
    pub fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
            replica: None,
            _busy: None,
        }
    }

    /// Also keeps the client connection busy (not idle) while the request lives.
    pub fn keeping(mut self, busy: Busy) -> Self {
        self._busy = Some(busy);
        self
    }

    /// Counts the request at the replica whose in-flight counter is `counter`
    /// (instead of the one counted before, if any).
    pub fn at(&mut self, counter: &Arc<AtomicUsize>) {
        if let Some(previous) = self.replica.take() {
            previous.fetch_sub(1, Ordering::Relaxed);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        self.replica = Some(Arc::clone(counter));
    }

    /// Stops counting the request at its replica (a failed try).
    pub fn leave_replica(&mut self) {
        if let Some(previous) = self.replica.take() {
            previous.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.leave_replica();
        self.gauge.dec();
    }
}

/// The daemon-wide budget of request-body bytes held in memory for retries
/// (`upstream.retry_buffer_total_bytes`).
#[derive(Debug)]
pub struct RetryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl RetryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Reserves `bytes`, or `None` when the budget cannot hold them (the body is then
    /// streamed and gets one try).
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|n| *n <= self.limit)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Reservation {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes of a [`RetryBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<RetryBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_drop_with_the_guard() {
        let gauge = Gauge::default();
        let replica = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(AtomicUsize::new(0));
        let mut guard = InFlight::enter(&gauge);
        guard.at(&replica);
        assert_eq!((gauge.get(), replica.load(Ordering::Relaxed)), (1, 1));
        guard.at(&other);
        assert_eq!(replica.load(Ordering::Relaxed), 0);
        assert_eq!(other.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!((gauge.get(), other.load(Ordering::Relaxed)), (0, 0));
    }

    #[test]
    fn retry_budget_refuses_past_its_limit_and_refills() {
        let budget = RetryBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(usize::MAX).is_none());
    }
}
