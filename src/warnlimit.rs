//! Rate-limited warnings: the first of a kind is written at once, then at most one per period,
//! saying how many similar ones were folded into it. A dead backend under load or a full
//! listener would otherwise write a line per request (tens of megabytes a second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The default period between two lines of one kind.
pub const PERIOD: Duration = Duration::from_secs(10);

/// One kind of warning (per upstream and kind, per limit…): lock-free, so a burst of failing
/// requests on every core never queues on it.
#[derive(Debug)]
pub struct WarnLimit {
    base: Instant,
    period_ms: u64,
    /// When the next line may be written, in ms since `base`.
    next_ms: AtomicU64,
    /// Warnings not written since the last line.
    folded: AtomicU64,
}

impl WarnLimit {
    pub fn new(period: Duration) -> Self {
        WarnLimit {
            base: Instant::now(),
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
            folded: AtomicU64::new(0),
        }
    }

    /// `Some(folded)` when this warning is to be written now, `folded` being how many were
    /// skipped since the last line; `None` when it is folded into the next one.
    pub fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.folded.swap(0, Ordering::Relaxed));
        }
        self.folded.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for WarnLimit {
    fn default() -> Self {
        WarnLimit::new(PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_written_then_the_rest_folded_until_the_period_is_over() {
        let limit = WarnLimit::new(Duration::from_millis(50));
        assert_eq!(limit.check(), Some(0));
        for _ in 0..99 {
            assert_eq!(limit.check(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.check(), Some(99));
        assert_eq!(limit.check(), None);
    }

    #[test]
    fn one_writer_wins_a_race() {
        let limit = std::sync::Arc::new(WarnLimit::new(Duration::from_secs(60)));
        let written: u64 = (0..8)
            .map(|_| {
                let l = limit.clone();
                std::thread::spawn(move || (0..1000).filter(|_| l.check().is_some()).count())
            })
            .map(|t| t.join().unwrap() as u64)
            .sum();
        assert_eq!(written, 1);
        assert_eq!(limit.folded.load(Ordering::Relaxed), 7999);
    }
}
