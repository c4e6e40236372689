//! Fluent Bit's retry scheduling: retry `n` waits a uniform random whole number of seconds in
//! `[base, min(cap, base·2^n)]`, plus one second (`src/flb_scheduler.c`).

use kb_config::values::RetryLimit;
use std::time::Duration;

/// `scheduler.base` and `scheduler.cap`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: u64,
    pub cap: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: 5, cap: 2000 }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let (lo, hi) = self.bounds(attempt);
        Duration::from_secs(rng.u64(lo..=hi) + 1)
    }

    /// The jitter range of retry `attempt`, before the extra second.
    pub fn bounds(&self, attempt: u32) -> (u64, u64) {
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        let exp = self.base.saturating_mul(factor).min(self.cap);
        (self.base, exp.max(self.base))
    }
}

/// Whether a chunk that has been retried `retries` times may be retried again.
pub fn may_retry(limit: RetryLimit, retries: u32) -> bool {
    match limit {
        RetryLimit::Unlimited => true,
        RetryLimit::Limited(n) => retries < n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_cap() {
        let b = Backoff::default();
        assert_eq!(b.bounds(1), (5, 10));
        assert_eq!(b.bounds(2), (5, 20));
        assert_eq!(b.bounds(9), (5, 2000));
        assert_eq!(b.bounds(70), (5, 2000));
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 1..12 {
            let (lo, hi) = b.bounds(attempt);
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng).as_secs();
                assert!(d > lo && d <= hi + 1, "{d} outside {lo}..={hi} + 1");
            }
        }
    }

    #[test]
    fn retry_limits() {
        assert!(may_retry(RetryLimit::Limited(1), 0));
        assert!(!may_retry(RetryLimit::Limited(1), 1));
        assert!(!may_retry(RetryLimit::Limited(0), 0));
        assert!(may_retry(RetryLimit::Unlimited, u32::MAX));
    }
}
