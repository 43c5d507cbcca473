//! A latency histogram made of atomics: observing takes no lock and allocates nothing
//! (prometheus-client's own `Histogram` takes a lock per observation).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds: Prometheus's default buckets, which cover a proxied request from
/// a cached answer (5 ms) to a slow report (10 s).
pub const BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in nanoseconds, compared on the request path (integer compares only).
const BOUNDS_NANOS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Per-bucket (not cumulative) counts, the last one past every bound (`+Inf`); the count is
/// their sum, so a scrape never sees a count that disagrees with its buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// What a scrape reads: bounds with their own (non-cumulative) counts, the total and the sum.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    /// Counts one observation: two relaxed atomic additions.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BOUNDS_NANOS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count = counts.iter().sum();
        Snapshot {
            buckets: BOUNDS.iter().copied().zip(counts).collect(),
            count,
            // Precision: f64 holds nanoseconds exactly up to 104 days of summed latency.
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree() {
        for (s, n) in BOUNDS.iter().zip(BOUNDS_NANOS) {
            assert_eq!((s * 1e9).round() as u64, n);
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(1)); // ≤ 5 ms
        h.observe(Duration::from_millis(5)); // ≤ 5 ms: bounds are inclusive ("le")
        h.observe(Duration::from_micros(5_001)); // ≤ 10 ms
        h.observe(Duration::from_millis(700)); // ≤ 1 s
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        let counts: Vec<u64> = s.buckets.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts, [2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(s.count, 5, "the +Inf observation counts too");
        let sum = 0.001 + 0.005 + 0.005001 + 0.7 + 60.0;
        assert!((s.sum_seconds - sum).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros(i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.snapshot().count, 40_000);
    }
}
