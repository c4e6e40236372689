//! Rate-limited logging: at most one line per message kind (and error code) every interval per
//! output instance; the next line that passes reports how many were suppressed meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spec §11: one line per instance, message kind and error code every 10 s.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Decides which repeated log lines are written. Shared by the workers of one instance.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(INTERVAL)
    }
}

impl LogLimiter {
    /// A limiter letting one line per key through every `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now (with the number of lines
    /// suppressed since the last one), `None` when it must be suppressed.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                state.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// ` (N similar messages suppressed)` or nothing.
pub fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar messages suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_per_interval() {
        let l = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.allow("a"), Some(2));
        assert_eq!(suppressed_note(2), " (2 similar messages suppressed)");
    }
}
