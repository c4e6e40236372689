//! Shard-aware sending (`shard_aware on`): the stream's open shards and their hash key ranges
//! (from ListShards), each record's predicted shard (MD5 of its partition key as an unsigned
//! 128-bit big-endian integer, as Kinesis maps keys), and a token bucket per shard at the
//! service's write limits, so that a request only carries records whose shard has room and a
//! hot shard cannot throttle the records of the others.
//!
//! The state is shared by the output's workers: the buckets count what every worker sends.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kb_core::metrics::Metrics;
use md5::{Digest, Md5};
use serde::Deserialize;
use tokio::time::Instant;

/// Per-shard counters: records sent (accepted), throttled (answered
/// `ProvisionedThroughputExceededException`), delayed (held back at least once in a flush
/// because their shard's bucket was empty).
pub const SHARD_SENT: &str = "fluentbit_kinesis_streams_shard_sent_records_total";
/// See [`SHARD_SENT`].
pub const SHARD_THROTTLED: &str = "fluentbit_kinesis_streams_shard_throttled_records_total";
/// See [`SHARD_SENT`].
pub const SHARD_DELAYED: &str = "fluentbit_kinesis_streams_shard_delayed_records_total";
/// Successful ListShards listings of the whole stream.
pub const SHARD_MAP_LOADS: &str = "fluentbit_kinesis_streams_shard_map_loads_total";

/// The hash of a partition key: MD5 as an unsigned 128-bit big-endian integer.
pub fn hash_key(key: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(key).into())
}

/// One open shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `ShardId`, e.g. `shardId-000000000003`.
    pub id: String,
    /// `HashKeyRange.StartingHashKey`.
    pub start: u128,
    /// `HashKeyRange.EndingHashKey` (inclusive).
    pub end: u128,
}

/// The open shards of a stream, ordered by their hash key ranges.
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    shards: Vec<Shard>,
}

impl ShardMap {
    /// A map of `shards` (any order).
    pub fn new(mut shards: Vec<Shard>) -> Self {
        shards.sort_by_key(|s| s.start);
        ShardMap { shards }
    }

    /// The shards, by hash key range.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether there is no shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The index of the shard whose range holds `hash`; `None` in a gap of the map.
    pub fn lookup(&self, hash: u128) -> Option<usize> {
        // The last shard starting at or below `hash`.
        let i = self.shards.partition_point(|s| s.start <= hash);
        let i = i.checked_sub(1)?;
        (hash <= self.shards[i].end).then_some(i)
    }

    /// The index of the shard partition key `key` maps to.
    pub fn shard_of_key(&self, key: &str) -> Option<usize> {
        self.lookup(hash_key(key.as_bytes()))
    }

    /// Whether a shard of this id is in the map.
    pub fn contains_id(&self, id: &str) -> bool {
        self.shards.iter().any(|s| s.id == id)
    }
}

/// A ListShards answer that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// Not the JSON of a ListShards answer.
    #[error("unreadable ListShards answer: {0}")]
    Json(#[from] serde_json::Error),
    /// A hash key that is not a 128-bit decimal.
    #[error("ListShards answer: shard {shard} has an invalid hash key '{key}'")]
    HashKey {
        /// The shard.
        shard: String,
        /// The key as given.
        key: String,
    },
}

#[derive(Deserialize)]
struct RawList {
    #[serde(rename = "Shards", default)]
    shards: Vec<RawShard>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct RawShard {
    #[serde(rename = "ShardId")]
    id: String,
    #[serde(rename = "HashKeyRange")]
    range: RawRange,
    #[serde(rename = "SequenceNumberRange", default)]
    seq: Option<RawSeq>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "StartingHashKey")]
    start: String,
    #[serde(rename = "EndingHashKey")]
    end: String,
}

#[derive(Deserialize)]
struct RawSeq {
    #[serde(rename = "EndingSequenceNumber", default)]
    end: Option<String>,
}

/// One page of a ListShards answer: its open shards (a shard with an
/// `EndingSequenceNumber` is closed by a reshard and takes no records) and the `NextToken`.
pub fn parse_list_shards(body: &[u8]) -> Result<(Vec<Shard>, Option<String>), ShardError> {
    let raw: RawList = serde_json::from_slice(body)?;
    let mut out = Vec::with_capacity(raw.shards.len());
    for s in raw.shards {
        if s.seq.as_ref().is_some_and(|q| q.end.is_some()) {
            continue;
        }
        let parse = |k: &str| {
            k.trim().parse::<u128>().map_err(|_| ShardError::HashKey {
                shard: s.id.clone(),
                key: k.to_string(),
            })
        };
        let (start, end) = (parse(&s.range.start)?, parse(&s.range.end)?);
        out.push(Shard {
            id: s.id,
            start,
            end,
        });
    }
    Ok((out, raw.next_token.filter(|t| !t.is_empty())))
}

/// The body of a ListShards call: the first page names the stream (by ARN with `by_arn`),
/// a later one only carries the `NextToken` (the API refuses both).
pub fn list_shards_request(stream: &str, by_arn: bool, next_token: Option<&str>) -> String {
    match (next_token, by_arn) {
        (Some(t), _) => serde_json::json!({ "NextToken": t }),
        (None, true) => serde_json::json!({ "StreamARN": stream }),
        (None, false) => serde_json::json!({ "StreamName": stream }),
    }
    .to_string()
}

/// The `ShardId` values of a JSON PutRecords answer, in order (a cheap scan: they are plain
/// `shardId-NNN` strings without escapes).
pub fn answered_shard_ids(body: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    const NEEDLE: &[u8] = b"\"ShardId\":\"";
    let mut pos = 0;
    std::iter::from_fn(move || {
        let at = body[pos..]
            .windows(NEEDLE.len())
            .position(|w| w == NEEDLE)?;
        let start = pos + at + NEEDLE.len();
        let len = body[start..].iter().position(|&b| b == b'"')?;
        pos = start + len;
        Some(&body[start..start + len])
    })
}

/// The `ShardId` values of a CBOR PutRecords answer, in order: each `"ShardId"` key (a
/// seven-byte text head) and the text after it, read by its CBOR head.
pub fn answered_shard_ids_cbor(body: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    const NEEDLE: &[u8] = b"\x67ShardId";
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        let at = body[pos..]
            .windows(NEEDLE.len())
            .position(|w| w == NEEDLE)?;
        let head = pos + at + NEEDLE.len();
        pos = head;
        let b = *body.get(head)?;
        if b & 0xe0 != 0x60 {
            // Not a text value (e.g. the key inside some other string): look further.
            continue;
        }
        let (len, start) = match b & 0x1f {
            n @ 0..=23 => (n as usize, head + 1),
            24 => (*body.get(head + 1)? as usize, head + 2),
            25 => (
                u16::from_be_bytes([*body.get(head + 1)?, *body.get(head + 2)?]) as usize,
                head + 3,
            ),
            _ => continue,
        };
        let end = start.checked_add(len)?;
        let id = body.get(start..end)?;
        pos = end;
        return Some(id);
    })
}

/// The `ShardId` values of a put answer in JSON (starting with `{`) or CBOR.
pub fn answered_shard_ids_any(body: &[u8]) -> Vec<&[u8]> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => answered_shard_ids(body).collect(),
        _ => answered_shard_ids_cbor(body).collect(),
    }
}

/// The write limits of one shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes (Data plus partition key) per second.
    pub bytes_per_s: f64,
    /// Records per second.
    pub records_per_s: f64,
}

/// How long spent tokens stay spent: Kinesis counts its limits per second (ferrokinesis in a
/// second that starts at the first write after the last one ended); the extra 50 ms absorb the
/// network's jitter, so that a second of the service never sees more than one of ours.
pub const WINDOW: Duration = Duration::from_millis(1050);

/// How long a shard that answered `ProvisionedThroughputExceededException` takes nothing.
pub const THROTTLED_PAUSE: Duration = Duration::from_millis(100);

/// The token bucket of one shard: a second's worth of records and bytes, and tokens spent come
/// back [`WINDOW`] later (not continuously): so that no window of a second ever holds more
/// than the limits, which a continuously refilled bucket allows up to twice over.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limits: Limits,
    /// What was spent in the last window: (when, records, bytes), oldest first.
    spent: VecDeque<(Instant, f64, f64)>,
    records: f64,
    bytes: f64,
    /// No tokens before this (after a throttling answer).
    paused_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `limits`.
    pub fn new(limits: Limits) -> Self {
        TokenBucket {
            limits,
            spent: VecDeque::new(),
            records: 0.0,
            bytes: 0.0,
            paused_until: None,
        }
    }

    /// Tokens spent a window ago come back.
    fn expire(&mut self, now: Instant) {
        while let Some(&(t, r, b)) = self.spent.front() {
            if now.saturating_duration_since(t) < WINDOW {
                break;
            }
            self.spent.pop_front();
            self.records -= r;
            self.bytes -= b;
        }
        if self.spent.is_empty() {
            // No float residue once nothing is spent.
            self.records = 0.0;
            self.bytes = 0.0;
        }
        if self.paused_until.is_some_and(|p| now >= p) {
            self.paused_until = None;
        }
    }

    /// What a record of `bytes` needs: a record bigger than a second's worth of bytes needs a
    /// full bucket (it could never be sent otherwise).
    fn need(&self, bytes: u64) -> f64 {
        (bytes as f64).min(self.limits.bytes_per_s)
    }

    fn fits(&self, need: f64) -> bool {
        self.paused_until.is_none()
            && self.records + 1.0 <= self.limits.records_per_s
            && self.bytes + need <= self.limits.bytes_per_s
    }

    /// Whether a record of `bytes` fits now.
    pub fn has_room(&mut self, now: Instant, bytes: u64) -> bool {
        self.expire(now);
        self.fits(self.need(bytes))
    }

    /// Take one record of `bytes` if it fits.
    pub fn try_take(&mut self, now: Instant, bytes: u64) -> bool {
        if !self.has_room(now, bytes) {
            return false;
        }
        let need = self.need(bytes);
        self.records += 1.0;
        self.bytes += need;
        // One entry per instant: a request's records of a shard share one.
        match self.spent.back_mut() {
            Some((t, r, b)) if *t == now => {
                *r += 1.0;
                *b += need;
            }
            _ => self.spent.push_back((now, 1.0, need)),
        }
        true
    }

    /// Give back what the last [`TokenBucket::try_take`] took for a record that was not sent.
    pub fn refund(&mut self, bytes: u64) {
        let need = self.need(bytes);
        if let Some((_, r, b)) = self.spent.back_mut() {
            *r -= 1.0;
            *b -= need;
            self.records -= 1.0;
            self.bytes -= need;
            if *r <= 0.0 {
                self.spent.pop_back();
            }
        }
    }

    /// How long until a record of `bytes` fits.
    pub fn wait_for(&mut self, now: Instant, bytes: u64) -> Duration {
        self.expire(now);
        let need = self.need(bytes);
        let pause = self
            .paused_until
            .map_or(Duration::ZERO, |p| p.saturating_duration_since(now));
        let (mut records, mut used) = (self.records, self.bytes);
        let mut at = now;
        for &(t, r, b) in &self.spent {
            if records + 1.0 <= self.limits.records_per_s && used + need <= self.limits.bytes_per_s
            {
                break;
            }
            records -= r;
            used -= b;
            at = t + WINDOW;
        }
        at.saturating_duration_since(now).max(pause)
    }

    /// The shard answered `ProvisionedThroughputExceededException` (other writers, or a
    /// second of the service not aligned with ours): take nothing for [`THROTTLED_PAUSE`], so
    /// its records wait instead of being throttled again at once.
    pub fn throttled(&mut self, now: Instant) {
        self.paused_until = Some(now + THROTTLED_PAUSE);
    }
}

/// The counters of one shard.
#[derive(Debug, Clone)]
pub struct ShardCounters {
    /// Accepted records.
    pub sent: Arc<AtomicU64>,
    /// Records answered `ProvisionedThroughputExceededException`.
    pub throttled: Arc<AtomicU64>,
    /// Records held back (once per flush) while their shard was full.
    pub delayed: Arc<AtomicU64>,
}

/// The current map with each shard's bucket and counters.
#[derive(Debug)]
pub struct Current {
    /// The open shards (shared with the preparers, which pack KPL aggregates by shard).
    pub map: Arc<ShardMap>,
    /// One bucket per shard of `map`, same order.
    pub buckets: Vec<TokenBucket>,
    /// One set of counters per shard of `map`, same order.
    pub counters: Vec<ShardCounters>,
    /// Bumped at every new map, so workers know their predictions are out of date.
    pub generation: u64,
    loaded: Instant,
}

/// The shard state shared by an output's workers.
pub struct ShardState {
    limits: Limits,
    refresh: Duration,
    instance: String,
    registry: Arc<Metrics>,
    loads: Arc<AtomicU64>,
    current: Mutex<Option<Current>>,
    /// Set when an answer named a shard that the map does not have.
    stale: AtomicBool,
    /// One worker lists at a time; the others go on with the map they have.
    listing: AtomicBool,
    /// No listing before this, after a failed one.
    next_try: Mutex<Option<Instant>>,
}

/// How long after a failed ListShards the next is tried.
pub const RETRY_LISTING: Duration = Duration::from_secs(5);

impl ShardState {
    /// An empty state (no map yet) for instance `instance`.
    pub fn new(limits: Limits, refresh: Duration, registry: Arc<Metrics>, instance: &str) -> Self {
        let loads = registry.counter(SHARD_MAP_LOADS, &[("name", instance)]);
        ShardState {
            limits,
            refresh,
            instance: instance.to_string(),
            registry,
            loads,
            current: Mutex::new(None),
            stale: AtomicBool::new(false),
            listing: AtomicBool::new(false),
            next_try: Mutex::new(None),
        }
    }

    /// The current map, buckets and counters, locked.
    pub fn lock(&self) -> MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mark the map out of date (an answer named an unknown shard).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether the map should be listed again now: none yet, marked stale, or older than the
    /// refresh interval. Claims the listing: the caller must [`ShardState::install`] or
    /// [`ShardState::listing_failed`].
    pub fn claim_listing(&self, now: Instant) -> bool {
        let next_try = *self.next_try.lock().unwrap_or_else(|e| e.into_inner());
        if next_try.is_some_and(|t| now < t) {
            // A listing failed lately: not before the retry time, whatever is due.
            return false;
        }
        let due = self.stale.load(Ordering::Relaxed)
            || match &*self.lock() {
                None => true,
                Some(c) => now.saturating_duration_since(c.loaded) >= self.refresh,
            };
        due && self
            .listing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether there is no map yet while a worker is listing the shards.
    pub fn first_listing_pending(&self) -> bool {
        self.listing.load(Ordering::Acquire) && self.lock().is_none()
    }

    /// The listing failed: keep the old map (if any) and try again in [`RETRY_LISTING`]
    /// (not at every request, which a missing `kinesis:ListShards` permission would cause).
    pub fn listing_failed(&self, now: Instant) {
        *self.next_try.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + RETRY_LISTING);
        self.listing.store(false, Ordering::Release);
    }

    /// Install a newly listed map: shards kept by id keep their bucket; new ones start full.
    pub fn install(&self, shards: Vec<Shard>, now: Instant) {
        let map = ShardMap::new(shards);
        let mut guard = self.lock();
        let (mut old_buckets, generation) = match guard.take() {
            Some(c) => {
                let old: HashMap<String, TokenBucket> = c
                    .map
                    .shards
                    .iter()
                    .map(|s| s.id.clone())
                    .zip(c.buckets)
                    .collect();
                (old, c.generation + 1)
            }
            None => (HashMap::new(), 1),
        };
        let buckets = map
            .shards
            .iter()
            .map(|s| {
                old_buckets
                    .remove(&s.id)
                    .unwrap_or_else(|| TokenBucket::new(self.limits))
            })
            .collect();
        let counters = map
            .shards
            .iter()
            .map(|s| {
                let c = |metric| {
                    self.registry
                        .counter(metric, &[("name", &self.instance), ("shard", &s.id)])
                };
                ShardCounters {
                    sent: c(SHARD_SENT),
                    throttled: c(SHARD_THROTTLED),
                    delayed: c(SHARD_DELAYED),
                }
            })
            .collect();
        *guard = Some(Current {
            map: Arc::new(map),
            buckets,
            counters,
            generation,
            loaded: now,
        });
        drop(guard);
        kb_core::metrics::add(&self.loads, 1);
        *self.next_try.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stale.store(false, Ordering::Relaxed);
        self.listing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four equal shards, as CreateStream with ShardCount 4 makes them.
    fn four() -> ShardMap {
        let q = u128::MAX / 4 + 1;
        ShardMap::new(
            (0..4u128)
                .map(|i| Shard {
                    id: format!("shardId-00000000000{i}"),
                    start: i * q,
                    end: if i == 3 { u128::MAX } else { (i + 1) * q - 1 },
                })
                .collect(),
        )
    }

    #[test]
    fn md5_of_known_keys() {
        // Independently: python3 -c "import hashlib; print(hashlib.md5(b'abc').hexdigest())"
        assert_eq!(hash_key(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(hash_key(b"abc"), 0x900150983cd24fb0d6963f7d28e17f72);
        assert_eq!(hash_key(b"a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn keys_map_to_the_shard_of_their_range() {
        let m = four();
        // md5("a") = 0x0cc1… (first quarter), md5("abc") = 0x9001… (third),
        // md5("") = 0xd41d… (fourth); md5("b") = 0x92eb… (third), md5("c") = 0x4a8a… (second).
        assert_eq!(m.shard_of_key("a"), Some(0));
        assert_eq!(m.shard_of_key("c"), Some(1));
        assert_eq!(m.shard_of_key("abc"), Some(2));
        assert_eq!(m.shard_of_key("b"), Some(2));
        assert_eq!(m.shard_of_key(""), Some(3));
        // Range edges are inclusive.
        let q = u128::MAX / 4 + 1;
        assert_eq!(m.lookup(q - 1), Some(0));
        assert_eq!(m.lookup(q), Some(1));
        assert_eq!(m.lookup(u128::MAX), Some(3));
        assert_eq!(m.lookup(0), Some(0));
    }

    #[test]
    fn a_gap_maps_nowhere() {
        let m = ShardMap::new(vec![
            Shard {
                id: "b".into(),
                start: 100,
                end: 200,
            },
            Shard {
                id: "a".into(),
                start: 0,
                end: 49,
            },
        ]);
        assert_eq!(m.lookup(10), Some(0));
        assert_eq!(m.lookup(50), None);
        assert_eq!(m.lookup(150), Some(1));
        assert_eq!(m.lookup(201), None);
        assert!(m.contains_id("b") && !m.contains_id("c"));
    }

    #[test]
    fn list_shards_pages_skip_closed_shards() {
        let body = br#"{"Shards":[
            {"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"},
             "SequenceNumberRange":{"StartingSequenceNumber":"1","EndingSequenceNumber":"9"}},
            {"ShardId":"shardId-000000000002","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"85070591730234615865843651857942052863"},
             "SequenceNumberRange":{"StartingSequenceNumber":"10"}}],
            "NextToken":"tok"}"#;
        let (shards, next) = parse_list_shards(body).unwrap();
        assert_eq!(next.as_deref(), Some("tok"));
        assert_eq!(
            shards,
            vec![Shard {
                id: "shardId-000000000002".into(),
                start: 0,
                end: 85070591730234615865843651857942052863
            }]
        );
        let (_, next) = parse_list_shards(br#"{"Shards":[]}"#).unwrap();
        assert_eq!(next, None);
        assert!(parse_list_shards(br#"{"Shards":[{"ShardId":"x","HashKeyRange":{"StartingHashKey":"-1","EndingHashKey":"2"}}]}"#).is_err());
        assert!(parse_list_shards(b"nope").is_err());
        assert_eq!(
            list_shards_request("s", false, None),
            r#"{"StreamName":"s"}"#
        );
        assert_eq!(
            list_shards_request("arn:x", true, None),
            r#"{"StreamARN":"arn:x"}"#
        );
        assert_eq!(
            list_shards_request("s", false, Some("t")),
            r#"{"NextToken":"t"}"#
        );
    }

    #[test]
    fn shard_ids_of_an_answer() {
        let body = br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000001"},{"SequenceNumber":"2","ShardId":"shardId-000000000007"}]}"#;
        let ids: Vec<&[u8]> = answered_shard_ids(body).collect();
        assert_eq!(
            ids,
            vec![&b"shardId-000000000001"[..], &b"shardId-000000000007"[..]]
        );
        assert_eq!(answered_shard_ids(b"{}").count(), 0);
        assert_eq!(answered_shard_ids_any(body), ids);
        // The same answer in CBOR (as ciborium writes it: definite lengths).
        let v = serde_json::json!({"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": "1", "ShardId": "shardId-000000000001"},
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "m"},
            {"SequenceNumber": "2", "ShardId": "shardId-000000000007"}]});
        let mut cbor = Vec::new();
        ciborium::into_writer(&v, &mut cbor).unwrap();
        assert_eq!(answered_shard_ids_cbor(&cbor).collect::<Vec<_>>(), ids);
        assert_eq!(answered_shard_ids_any(&cbor), ids);
        // Truncated: no id past the end.
        assert_eq!(answered_shard_ids_cbor(&cbor[..cbor.len() - 5]).count(), 1);
        assert_eq!(
            answered_shard_ids(br#"{"ShardId":"unterminated"#).count(),
            0
        );
    }

    const LIMITS: Limits = Limits {
        bytes_per_s: 1000.0,
        records_per_s: 10.0,
    };

    #[tokio::test(start_paused = true)]
    async fn bucket_limits_records_per_second() {
        let now = Instant::now();
        let mut b = TokenBucket::new(LIMITS);
        for _ in 0..10 {
            assert!(b.try_take(now, 1));
        }
        assert!(!b.try_take(now, 1));
        assert_eq!(b.wait_for(now, 1), WINDOW);
        // Spent tokens come back a window later, not bit by bit.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(!b.try_take(Instant::now(), 1));
        assert_eq!(
            b.wait_for(Instant::now(), 1),
            WINDOW - Duration::from_millis(500)
        );
        tokio::time::advance(Duration::from_millis(550)).await;
        assert!(b.try_take(Instant::now(), 1));
        // Never more than one second's worth after idling.
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let taken = (0..100).filter(|_| b.try_take(now, 1)).count();
        assert_eq!(taken, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_ever_holds_more_than_the_limit() {
        // Take greedily every 7 ms for 5 s: every interval of one second holds at most 10.
        let mut b = TokenBucket::new(LIMITS);
        let t0 = Instant::now();
        let mut times = Vec::new();
        while t0.elapsed() < Duration::from_secs(5) {
            while b.try_take(Instant::now(), 1) {
                times.push(Instant::now());
            }
            tokio::time::advance(Duration::from_millis(7)).await;
        }
        for (i, &t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|&&u| u < t + Duration::from_secs(1))
                .count();
            assert!(within <= 10, "{within} records in the second from {i}");
        }
        // And the limit is used: about 10 per 1.05 s.
        assert!(times.len() >= 45, "{}", times.len());
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_limits_bytes_and_refunds() {
        let now = Instant::now();
        let mut b = TokenBucket::new(LIMITS);
        assert!(b.try_take(now, 600));
        assert!(!b.try_take(now, 600));
        assert!(b.try_take(now, 400));
        b.refund(400);
        assert!(b.has_room(now, 400));
        assert!(!b.has_room(now, 401));
        assert_eq!(b.wait_for(now, 600), WINDOW);
        // The later spending comes back later: 100 bytes spent at +300 ms do not delay a record
        // that fits once the first 600 are back.
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(b.try_take(Instant::now(), 100));
        assert_eq!(
            b.wait_for(Instant::now(), 600),
            WINDOW - Duration::from_millis(300)
        );
        // A record bigger than a second's worth goes when the bucket is full.
        let mut full = TokenBucket::new(LIMITS);
        assert!(full.try_take(now, 5000));
        assert!(!full.has_room(now, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_shard_waits() {
        let now = Instant::now();
        let mut b = TokenBucket::new(LIMITS);
        b.throttled(now);
        assert!(!b.has_room(now, 1));
        assert_eq!(b.wait_for(now, 1), THROTTLED_PAUSE);
        tokio::time::advance(THROTTLED_PAUSE).await;
        assert!(b.try_take(Instant::now(), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn state_keeps_buckets_of_kept_shards() {
        let reg = Arc::new(Metrics::default());
        let st = ShardState::new(LIMITS, Duration::from_secs(60), reg.clone(), "out");
        let now = Instant::now();
        assert!(st.claim_listing(now));
        assert!(!st.claim_listing(now), "one listing at a time");
        st.install(four().shards, now);
        assert!(!st.claim_listing(now));
        {
            let mut g = st.lock();
            let c = g.as_mut().unwrap();
            assert_eq!(c.generation, 1);
            while c.buckets[0].try_take(now, 1) {}
        }
        st.mark_stale();
        assert!(st.claim_listing(now));
        let mut shards = four().shards;
        shards.push(Shard {
            id: "new".into(),
            start: 0,
            end: 0,
        });
        st.install(shards, now);
        {
            let mut g = st.lock();
            let c = g.as_mut().unwrap();
            assert_eq!(c.generation, 2);
            let first = c
                .map
                .shards()
                .iter()
                .position(|s| s.id == "shardId-000000000000")
                .unwrap();
            assert!(
                !c.buckets[first].has_room(now, 1),
                "kept shard keeps its bucket"
            );
            let new = c.map.shards().iter().position(|s| s.id == "new").unwrap();
            assert!(c.buckets[new].has_room(now, 1));
            kb_core::metrics::add(&c.counters[new].sent, 3);
        }
        assert_eq!(
            reg.counter_value(SHARD_SENT, &[("name", "out"), ("shard", "new")]),
            3
        );
        assert_eq!(reg.counter_value(SHARD_MAP_LOADS, &[("name", "out")]), 2);
        // Due again after the refresh interval.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(st.claim_listing(Instant::now()));
        // A failed listing is retried after RETRY_LISTING, not at once, even when stale.
        st.listing_failed(Instant::now());
        st.mark_stale();
        assert!(!st.claim_listing(Instant::now()));
        tokio::time::advance(RETRY_LISTING).await;
        assert!(st.claim_listing(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn no_map_and_a_failed_listing_waits_too() {
        let st = ShardState::new(
            LIMITS,
            Duration::from_secs(60),
            Arc::new(Metrics::default()),
            "out",
        );
        assert!(st.claim_listing(Instant::now()));
        assert!(st.first_listing_pending());
        st.listing_failed(Instant::now());
        assert!(!st.first_listing_pending(), "the others go on blind");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!st.claim_listing(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(st.claim_listing(Instant::now()));
    }
}
