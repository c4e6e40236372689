//! The metadata caches: bounded (the oldest entry goes when full, as Fluent Bit's 1024-entry
//! tables evict), with a time to live, and with the state of the request for a missing
//! entry, so each pod costs one request however many records it writes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fluent Bit's `FLB_HASH_TABLE_SIZE`.
pub const CAPACITY: usize = 1024;

/// A request pending longer than this (its worker is gone) is made again.
const PENDING_LIMIT: Duration = Duration::from_secs(120);

enum Slot<T> {
    /// A request is on its way (since).
    Pending(Instant),
    /// The answer, and when it came.
    Ready(Arc<T>, Instant),
    /// The request failed at this time; no new one before the negative TTL.
    Failed(Instant),
}

/// What a lookup found.
pub enum Lookup<T> {
    /// The metadata; `refresh` when it is older than its TTL (it is still served while a
    /// new request is made).
    Hit { value: Arc<T>, refresh: bool },
    /// Not there: `start` when the caller must request it now (the entry is marked
    /// pending), else a request is on its way or failed recently.
    Miss { start: bool },
}

/// A bounded cache of `T` by key.
pub struct Cache<T> {
    map: HashMap<String, Slot<T>>,
    order: VecDeque<String>,
    capacity: usize,
    /// 0: no expiry.
    ttl: Duration,
    negative_ttl: Duration,
}

impl<T> Cache<T> {
    pub fn new(capacity: usize, ttl: Duration, negative_ttl: Duration) -> Self {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
            negative_ttl,
        }
    }

    fn insert(&mut self, key: &str, slot: Slot<T>) {
        if let Some(s) = self.map.get_mut(key) {
            *s = slot;
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(key.to_string(), slot);
        self.order.push_back(key.to_string());
    }

    /// Look `key` up at `now`, marking it pending when the caller is to request it.
    pub fn lookup(&mut self, key: &str, now: Instant) -> Lookup<T> {
        match self.map.get_mut(key) {
            Some(Slot::Ready(v, at)) => {
                let refresh = !self.ttl.is_zero() && now.duration_since(*at) >= self.ttl;
                if refresh {
                    // Served as it is until the new answer comes; one request per TTL.
                    *at = now;
                }
                Lookup::Hit {
                    value: v.clone(),
                    refresh,
                }
            }
            Some(Slot::Pending(since)) if now.duration_since(*since) < PENDING_LIMIT => {
                Lookup::Miss { start: false }
            }
            Some(Slot::Failed(at)) if now.duration_since(*at) < self.negative_ttl => {
                Lookup::Miss { start: false }
            }
            _ => {
                self.insert(key, Slot::Pending(now));
                Lookup::Miss { start: true }
            }
        }
    }

    /// Whether a request for `key` is on its way.
    pub fn is_pending(&self, key: &str) -> bool {
        matches!(self.map.get(key), Some(Slot::Pending(_)))
    }

    /// Store an answer.
    pub fn ready(&mut self, key: &str, value: Arc<T>, now: Instant) {
        self.insert(key, Slot::Ready(value, now));
    }

    /// A request failed: keep a previous answer (served until the next TTL), else remember
    /// the failure for the negative TTL.
    pub fn failed(&mut self, key: &str, now: Instant) {
        match self.map.get_mut(key) {
            Some(Slot::Ready(_, at)) => *at = now,
            _ => self.insert(key, Slot::Failed(now)),
        }
    }

    /// Entries held (any state).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_key_then_hits() {
        let t0 = Instant::now();
        let mut c: Cache<u32> = Cache::new(2, Duration::ZERO, Duration::from_secs(60));
        assert!(matches!(c.lookup("a", t0), Lookup::Miss { start: true }));
        assert!(matches!(c.lookup("a", t0), Lookup::Miss { start: false }));
        assert!(c.is_pending("a"));
        c.ready("a", Arc::new(1), t0);
        assert!(matches!(
            c.lookup("a", t0),
            Lookup::Hit { refresh: false, .. }
        ));
        // Full: the oldest entry goes.
        c.ready("b", Arc::new(2), t0);
        c.ready("c", Arc::new(3), t0);
        assert_eq!(c.len(), 2);
        assert!(matches!(c.lookup("a", t0), Lookup::Miss { start: true }));
    }

    #[test]
    fn failures_wait_for_the_negative_ttl_and_answers_expire() {
        let t0 = Instant::now();
        let mut c: Cache<u32> = Cache::new(10, Duration::from_secs(100), Duration::from_secs(60));
        assert!(matches!(c.lookup("a", t0), Lookup::Miss { start: true }));
        c.failed("a", t0);
        assert!(matches!(
            c.lookup("a", t0 + Duration::from_secs(59)),
            Lookup::Miss { start: false }
        ));
        assert!(matches!(
            c.lookup("a", t0 + Duration::from_secs(61)),
            Lookup::Miss { start: true }
        ));
        c.ready("a", Arc::new(1), t0);
        let late = t0 + Duration::from_secs(101);
        assert!(matches!(
            c.lookup("a", late),
            Lookup::Hit { refresh: true, .. }
        ));
        assert!(matches!(
            c.lookup("a", late),
            Lookup::Hit { refresh: false, .. }
        ));
        // A failed refresh keeps the old answer.
        c.failed("a", late);
        assert!(matches!(c.lookup("a", late), Lookup::Hit { .. }));
    }
}
