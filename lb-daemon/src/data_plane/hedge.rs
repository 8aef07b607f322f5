//! Hedged requests ("The Tail at Scale", Dean and Barroso, CACM 2013): a `GET` or
//! `HEAD` still unanswered at its replica's adaptive deadline (see
//! [`suspicion`](crate::data_plane::suspicion)), on a replica that keeps answering
//! others, goes also to the key's next distinct replica; the first answer wins and the
//! other try is dropped with its connection (closed, not pooled). A hedge is one of the
//! request's `upstream.retries` tries and a request is hedged at most once. A budget
//! keeps hedges to a share of requests, so a slow service is not doubled.

use std::sync::atomic::{AtomicU64, Ordering};

/// Default share of hedge-eligible requests that may be hedged, percent.
pub const DEFAULT_BUDGET_PERCENT: u32 = 5;

/// Hedges a budget can save up for a burst.
const BURST: u64 = 10;

/// Hedging settings (`upstream.hedge`, `upstream.hedge_budget_percent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hedging {
    /// Whether slow `GET`/`HEAD` requests are hedged (default on).
    pub enabled: bool,
    /// Share of eligible requests that may be hedged, percent (1..=100, default 5).
    pub budget_percent: u32,
}

impl Default for Hedging {
    fn default() -> Self {
        Self {
            enabled: true,
            budget_percent: DEFAULT_BUDGET_PERCENT,
        }
    }
}

impl Hedging {
    /// Whether a request with `method` may be hedged at all (`GET`, `HEAD`), with
    /// hedging on and the request not on a slow path.
    pub fn applies_to(&self, method: &str, slow_path: bool) -> bool {
        self.enabled && !slow_path && matches!(method, "GET" | "HEAD")
    }
}

/// One worker's hedge budget: a token bucket that every eligible request fills by
/// `budget_percent` hundredths of a hedge and every hedge empties by one, holding at
/// most [`BURST`] hedges, full at the start. One per worker, so its atomics are not
/// shared across cores.
#[derive(Debug)]
pub struct HedgeBudget {
    /// Saved hedges, hundredths.
    hundredths: AtomicU64,
}

impl Default for HedgeBudget {
    fn default() -> Self {
        Self {
            hundredths: AtomicU64::new(BURST * 100),
        }
    }
}

impl HedgeBudget {
    /// An eligible request arrived: it earns `percent` hundredths of a hedge.
    pub fn earn(&self, percent: u32) {
        let now = self.hundredths.load(Ordering::Relaxed);
        if now < BURST * 100 {
            let earned = (now + u64::from(percent)).min(BURST * 100);
            self.hundredths.store(earned, Ordering::Relaxed);
        }
    }

    /// Takes one hedge from the budget; `false` when it is spent.
    pub fn spend(&self) -> bool {
        self.hundredths
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(100))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_share_of_requests_and_a_bounded_burst() {
        let budget = HedgeBudget::default();
        // A fresh budget holds a full burst, then nothing.
        let burst = std::iter::from_fn(|| budget.spend().then_some(())).count();
        assert_eq!(burst, 10);
        // 1,000 eligible requests at 5 %: 50 hedges earned, but at most 10 saved.
        let mut hedges = 0;
        for _ in 0..1000 {
            budget.earn(5);
            if budget.spend() {
                hedges += 1;
            }
        }
        assert_eq!(hedges, 50);
        let idle = HedgeBudget::default();
        for _ in 0..100_000 {
            idle.earn(5);
        }
        let burst = std::iter::from_fn(|| idle.spend().then_some(())).count();
        assert_eq!(burst, 10);
    }

    #[test]
    fn only_get_and_head_are_hedged_and_only_when_on() {
        let on = Hedging::default();
        assert!(on.applies_to("GET", false) && on.applies_to("HEAD", false));
        assert!(!on.applies_to("PUT", false) && !on.applies_to("POST", false));
        assert!(!on.applies_to("GET", true), "a slow path is never hedged");
        let off = Hedging {
            enabled: false,
            ..on
        };
        assert!(!off.applies_to("GET", false));
    }
}
