//! `Health_Check`: unhealthy when the outputs' errors or exhausted retries within the last
//! `HC_Period` seconds exceed `HC_Errors_Count` / `HC_Retry_Failure_Count`.
//!
//! The engine's counters only grow, so (as Fluent Bit does) the window keeps periodic samples
//! of the totals and the count "within the period" is the current total minus the oldest sample
//! still inside the period. Time is passed in as the elapsed time since the server started, so
//! tests drive the window with a fake clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// The `HC_*` service keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// `HC_Errors_Count`: more errors than this in the period is unhealthy.
    pub errors_count: u64,
    /// `HC_Retry_Failure_Count`: more exhausted retries than this in the period is unhealthy.
    pub retry_failure_count: u64,
    /// `HC_Period`, seconds.
    pub period_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            errors_count: 5,
            retry_failure_count: 5,
            period_secs: 60,
        }
    }
}

/// Totals of every output's `errors` and `retries_failed` at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Sum of `fluentbit_output_errors_total` over all outputs.
    pub errors: u64,
    /// Sum of `fluentbit_output_retries_failed_total` over all outputs.
    pub retries_failed: u64,
}

/// The verdict plus the numbers behind it (the `/api/v2/health` body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    /// Whether both counts are within their limits.
    pub healthy: bool,
    /// Errors within the period.
    pub errors: u64,
    /// Exhausted retries within the period.
    pub retries_failed: u64,
}

/// Samples of the totals over the last period.
#[derive(Debug)]
pub struct HealthWindow {
    config: HealthConfig,
    samples: Mutex<VecDeque<(Duration, Totals)>>,
}

impl HealthWindow {
    /// An empty window (healthy until the first sample).
    pub fn new(config: HealthConfig) -> Self {
        HealthWindow {
            config,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// The limits this window checks.
    pub fn config(&self) -> HealthConfig {
        self.config
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.config.period_secs)
    }

    /// Record the totals seen at `now`; samples older than the period are forgotten.
    pub fn record(&self, now: Duration, totals: Totals) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((now, totals));
        let oldest_kept = now.saturating_sub(self.period());
        while s.front().is_some_and(|(t, _)| *t < oldest_kept) {
            s.pop_front();
        }
    }

    /// Judge `current` totals at `now` against the oldest sample inside the period.
    pub fn state(&self, now: Duration, current: Totals) -> HealthState {
        let oldest_kept = now.saturating_sub(self.period());
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, base)) = s.iter().find(|(t, _)| *t >= oldest_kept) else {
            // No sample yet (or the sampler stalled): nothing to compare with, as Fluent Bit.
            return HealthState {
                healthy: true,
                errors: 0,
                retries_failed: 0,
            };
        };
        let errors = current.errors.saturating_sub(base.errors);
        let retries_failed = current.retries_failed.saturating_sub(base.retries_failed);
        HealthState {
            healthy: errors <= self.config.errors_count
                && retries_failed <= self.config.retry_failure_count,
            errors,
            retries_failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn totals(errors: u64, retries_failed: u64) -> Totals {
        Totals {
            errors,
            retries_failed,
        }
    }

    fn window(errors_count: u64, retry_failure_count: u64, period_secs: u64) -> HealthWindow {
        HealthWindow::new(HealthConfig {
            errors_count,
            retry_failure_count,
            period_secs,
        })
    }

    #[test]
    fn healthy_without_samples() {
        let w = window(0, 0, 5);
        assert!(w.state(secs(100), totals(50, 50)).healthy);
    }

    #[test]
    fn errors_above_the_limit_within_the_period_are_unhealthy() {
        let w = window(5, 5, 5);
        w.record(secs(0), totals(0, 0));
        // Exactly the limit is still healthy: the check is "more than".
        let s = w.state(secs(1), totals(5, 0));
        assert_eq!((s.healthy, s.errors), (true, 5));
        let s = w.state(secs(1), totals(6, 0));
        assert_eq!((s.healthy, s.errors), (false, 6));
        let s = w.state(secs(1), totals(0, 6));
        assert_eq!((s.healthy, s.retries_failed), (false, 6));
    }

    #[test]
    fn old_errors_leave_the_window() {
        let w = window(5, 5, 5);
        // 10 errors happen during second 1; the sampler records every second.
        w.record(secs(0), totals(0, 0));
        w.record(secs(1), totals(10, 0));
        for t in 2..=5 {
            w.record(secs(t), totals(10, 0));
        }
        // At t=5 the sample at t=0 is still inside the period [0, 5]: 10 errors counted.
        assert!(!w.state(secs(5), totals(10, 0)).healthy);
        // At t=6 the oldest sample inside [1, 6] already includes them: healthy again.
        w.record(secs(6), totals(10, 0));
        let s = w.state(secs(6), totals(10, 0));
        assert_eq!((s.healthy, s.errors), (true, 0));
        // New errors count again.
        let s = w.state(secs(6), totals(16, 0));
        assert_eq!((s.healthy, s.errors), (false, 6));
    }

    #[test]
    fn window_memory_is_bounded_by_the_period() {
        let w = window(5, 5, 3);
        for t in 0..1000 {
            w.record(secs(t), totals(t, 0));
        }
        assert!(w.samples.lock().unwrap().len() <= 4);
        // 3 s of one error per second: 3 errors, under the limit.
        assert_eq!(w.state(secs(999), totals(999, 0)).errors, 3);
    }
}
