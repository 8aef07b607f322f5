//! A replica's recent latency to response headers, as TCP estimates a round trip:
//! a smoothed mean and a smoothed mean deviation (RFC 6298 §2: gains 1/8 and 1/4),
//! whose `mean + 4 × deviation` stands for a high percentile (about the p99 of a
//! latency that varies like a normal one). Shared by every worker: a few relaxed
//! atomics, where a lost update only loses one sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Smoothed latency of one replica, µs.
#[derive(Debug, Default)]
pub struct Latency {
    /// Smoothed mean, µs (0: no sample yet).
    mean_us: AtomicU64,
    /// Smoothed mean deviation, µs.
    deviation_us: AtomicU64,
}

impl Latency {
    /// Takes one sample: the time from sending a request to its response headers.
    pub fn sample(&self, waited: Duration) {
        let r = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX).max(1);
        let mean = self.mean_us.load(Ordering::Relaxed);
        if mean == 0 {
            // The first sample: RFC 6298 §2.2.
            self.mean_us.store(r, Ordering::Relaxed);
            self.deviation_us.store(r / 2, Ordering::Relaxed);
            return;
        }
        let deviation = self.deviation_us.load(Ordering::Relaxed);
        let deviation = deviation - deviation / 4 + mean.abs_diff(r) / 4;
        let mean = (mean - mean / 8).saturating_add(r / 8).max(1);
        self.deviation_us.store(deviation, Ordering::Relaxed);
        self.mean_us.store(mean, Ordering::Relaxed);
    }

    /// `mean + 4 × deviation`: the high end of the replica's recent latency (zero
    /// before the first sample).
    pub fn high(&self) -> Duration {
        let mean = self.mean_us.load(Ordering::Relaxed);
        let deviation = self.deviation_us.load(Ordering::Relaxed);
        Duration::from_micros(mean.saturating_add(deviation.saturating_mul(4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_estimate_follows_the_latency_and_its_spread() {
        let latency = Latency::default();
        assert_eq!(latency.high(), Duration::ZERO);
        latency.sample(ms(2));
        // mean 2 ms, deviation 1 ms.
        assert_eq!(latency.high(), ms(6));
        for _ in 0..100 {
            latency.sample(ms(2));
        }
        assert!(
            latency.high() < Duration::from_micros(2100),
            "{:?}",
            latency.high()
        );
        // A replica that turns 200 ms slow: within a few answers its high end is
        // past 200 ms, so deadlines derived from it stop short of nothing it sends.
        for _ in 0..3 {
            latency.sample(ms(200));
        }
        assert!(latency.high() > ms(200), "{:?}", latency.high());
        for _ in 0..200 {
            latency.sample(ms(200));
        }
        let steady = latency.high();
        assert!(steady >= ms(200) && steady < ms(205), "{steady:?}");
    }
}
