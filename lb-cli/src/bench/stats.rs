//! Latency statistics of a bench run: min / mean / median / mode / p90 / p99 / max.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies recorded in microseconds (HDR histogram, 3 significant digits); the mode is
/// read from it in 0.1 ms steps.
#[derive(Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

/// The summary printed and written to the JSON report (milliseconds).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Fastest, ms.
    pub min_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub median_ms: f64,
    /// Most frequent latency at 0.1 ms resolution, ms.
    pub mode_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty record.
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: std::time::Duration) {
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self.histogram.record(micros.max(1));
    }

    /// Adds another record into this one.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.histogram.add(&other.histogram);
    }

    /// The summary (all zeros when empty).
    pub fn summary(&self) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &self.histogram;
        // The 0.1 ms step holding the most samples (the first of equals), by its lower edge.
        let mode = h
            .iter_linear(100)
            .max_by_key(|step| {
                (
                    step.count_since_last_iteration(),
                    std::cmp::Reverse(step.value_iterated_to()),
                )
            })
            .map_or(0.0, |step| {
                (step.value_iterated_to() + 1).saturating_sub(100) as f64 / 1000.0
            });
        Summary {
            count: h.len(),
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            mean_ms: h.mean() / 1000.0,
            median_ms: ms(h.value_at_quantile(0.5)),
            mode_ms: mode,
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// `Histogram::new(3)` only fails for more than 5 significant digits.
fn unreachable_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, u64::MAX / 2, 3).unwrap_or_else(|_| std::process::abort())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn summary_of_known_latencies() {
        let mut l = Latencies::new();
        for ms in [1u64, 2, 2, 2, 3, 4, 5, 6, 7, 100] {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 10);
        assert!(
            (s.min_ms - 1.0).abs() < 0.01 && (s.max_ms - 100.0).abs() < 0.1,
            "{s:?}"
        );
        assert!((s.mean_ms - 13.2).abs() < 0.05, "{s:?}");
        assert!((s.median_ms - 3.0).abs() < 0.01, "{s:?}");
        assert!((s.mode_ms - 2.0).abs() < 1e-9, "{s:?}");
        assert!((s.p90_ms - 7.0).abs() < 0.01, "{s:?}");
        let mut other = Latencies::new();
        other.record(Duration::from_millis(2));
        l.merge(&other);
        assert_eq!(l.summary().count, 11);

        let mut fast = Latencies::new();
        for micros in [310u64, 340, 390, 420, 1200] {
            fast.record(Duration::from_micros(micros));
        }
        assert!(
            (fast.summary().mode_ms - 0.3).abs() < 1e-9,
            "{:?}",
            fast.summary()
        );
        assert_eq!(Latencies::new().summary().mode_ms, 0.0);
    }
}
