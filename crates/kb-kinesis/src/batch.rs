//! From a chunk to the Kinesis records of one flush: every pending event is formatted
//! (§2.1), given its partition key (§4), compressed, size-checked (§3) and, with aggregation,
//! packed (§2.7/§2.8). Records that can never be sent are marked dropped in the progress with
//! their reason. All buffers are reused from flush to flush.

use std::ops::Range;

use kb_core::event::EventReader;
use kb_core::{Chunk, Progress};

use crate::accessor::{random_key, PartitionKey, RecordAccessor, RANDOM_KEY_LEN};
use crate::aggregate::KplAggregate;
use crate::compress::{Compression, Compressor};
use crate::config::{Aggregation, OversizePolicy, Settings};
use crate::format::{FormatOptions, RecordFormatter, Skip};
use crate::metrics::{DropReason, KinesisMetrics};
use crate::ratelimit::{suppressed_note, LogLimiter};
use crate::time_format::TimeFormat;

/// The partition key of one Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A fresh random key at every send attempt (spreads retries over shards).
    Random,
    /// A key taken from the record, stored in [`Prepared::keys`].
    Fixed(Range<usize>),
}

/// One Kinesis record: its Data, its key, and the chunk records it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub data: Range<usize>,
    pub key: Key,
    /// Range in [`Prepared::members`] of the chunk record indexes inside this Kinesis record.
    pub members: Range<usize>,
}

/// The Kinesis records of one flush.
#[derive(Debug, Default)]
pub struct Prepared {
    pub arena: Vec<u8>,
    pub keys: String,
    pub entries: Vec<Entry>,
    pub members: Vec<usize>,
}

impl Prepared {
    fn clear(&mut self) {
        self.arena.clear();
        self.keys.clear();
        self.entries.clear();
        self.members.clear();
    }

    /// The Data bytes of entry `e`.
    pub fn data(&self, e: &Entry) -> &[u8] {
        &self.arena[e.data.clone()]
    }

    /// The chunk record indexes carried by entry `e`.
    pub fn members(&self, e: &Entry) -> &[usize] {
        &self.members[e.members.clone()]
    }
}

/// A record formatted but not yet packed (aggregation modes only).
struct Staged {
    data: Range<usize>,
    key: Key,
    record: usize,
}

/// Turns chunks into [`Prepared`] Kinesis records; one per worker.
pub struct Preparer {
    formatter: RecordFormatter,
    compressor: Compressor,
    compression: Option<Compression>,
    accessor: Option<RecordAccessor>,
    aggregation: Aggregation,
    max_record_size: usize,
    oversize: OversizePolicy,
    append_newline: bool,
    stream: String,
    staging: Vec<u8>,
    staged: Vec<Staged>,
    scratch: Vec<u8>,
    key_buf: String,
    kpl: KplAggregate,
}

/// `[Truncated...]`: the suffix of a truncated record, as Fluent Bit writes it.
const TRUNCATED: &[u8] = b"[Truncated...]";

impl Preparer {
    /// A preparer for the validated `settings`.
    pub fn new(settings: &Settings) -> Self {
        let (time_format, _) = TimeFormat::compile(&settings.time_key_format);
        Preparer {
            formatter: RecordFormatter::new(FormatOptions {
                time_key: settings.time_key.clone(),
                time_format,
                log_key: settings.log_key.clone(),
                append_newline: settings.append_newline,
                escape_unicode: settings.escape_unicode,
            }),
            compressor: Compressor::default(),
            compression: settings.compression,
            accessor: settings
                .partition_key
                .as_deref()
                .and_then(|p| RecordAccessor::parse(p).ok()),
            aggregation: settings.aggregation,
            max_record_size: settings.max_record_size,
            oversize: settings.oversize_policy,
            append_newline: settings.append_newline,
            stream: settings.stream.clone(),
            staging: Vec::new(),
            staged: Vec::new(),
            scratch: Vec::new(),
            key_buf: String::new(),
            kpl: KplAggregate::default(),
        }
    }

    /// Fill `out` with the Kinesis records for the pending events of `chunk`.
    pub fn prepare(
        &mut self,
        chunk: &Chunk,
        progress: &mut Progress,
        out: &mut Prepared,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) {
        out.clear();
        self.staging.clear();
        self.staged.clear();
        for (i, ev) in EventReader::new(&chunk.data).enumerate() {
            if progress.is_done(i) {
                continue;
            }
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    // The rest of the chunk cannot be framed: drop what is left, visibly.
                    let pending: Vec<usize> = (i..progress.total())
                        .filter(|j| !progress.is_done(*j))
                        .collect();
                    for j in &pending {
                        progress.mark_dropped(*j);
                    }
                    metrics.dropped(DropReason::Malformed, pending.len() as u64);
                    tracing::error!(
                        "chunk '{}' holds malformed events ({e}): {} dropped, {}",
                        chunk.id,
                        kb_core::count(pending.len() as u64, "record"),
                        self.stream
                    );
                    break;
                }
            };
            let key = self.key_for(ev.record, out, metrics, limiter);
            let target = if self.aggregation == Aggregation::None {
                &mut out.arena
            } else {
                &mut self.staging
            };
            let start = target.len();
            if let Err(skip) = self.formatter.format(&ev, target) {
                target.truncate(start);
                if let Key::Fixed(r) = &key {
                    out.keys.truncate(r.start);
                }
                progress.mark_dropped(i);
                self.report_skip(skip, metrics, limiter);
                continue;
            }
            // Per-record compression, except with simple aggregation (the aggregate is compressed).
            if let (Some(c), false) = (self.compression, self.aggregation == Aggregation::Simple) {
                self.scratch.clear();
                self.compressor
                    .compress(c, &target[start..], &mut self.scratch);
                target.truncate(start);
                target.extend_from_slice(&self.scratch);
            }
            let data = start..target.len();
            match self.aggregation {
                Aggregation::None => {
                    let limit = self
                        .max_record_size
                        .saturating_sub(key_len(&key, &out.keys));
                    if data.len() > limit
                        && !self.fit_oversize(
                            &mut out.arena,
                            data.clone(),
                            limit,
                            i,
                            progress,
                            metrics,
                            limiter,
                        )
                    {
                        if let Key::Fixed(r) = &key {
                            out.keys.truncate(r.start);
                        }
                        continue;
                    }
                    let m = out.members.len();
                    out.members.push(i);
                    out.entries.push(Entry {
                        data: data.start..out.arena.len(),
                        key,
                        members: m..m + 1,
                    });
                }
                _ => self.staged.push(Staged {
                    data,
                    key,
                    record: i,
                }),
            }
        }
        match self.aggregation {
            Aggregation::None => {}
            Aggregation::Simple => self.pack_simple(out, progress, metrics, limiter),
            Aggregation::Kpl => self.pack_kpl(out, progress, metrics, limiter),
        }
    }

    /// The record's partition key (accessor value, else a random key at send time).
    fn key_for(
        &mut self,
        record: &[u8],
        out: &mut Prepared,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) -> Key {
        let Some(acc) = &self.accessor else {
            return Key::Random;
        };
        self.key_buf.clear();
        if acc.extract(record, &mut self.key_buf) {
            let start = out.keys.len();
            out.keys.push_str(&self.key_buf);
            return Key::Fixed(start..out.keys.len());
        }
        kb_core::metrics::add(&metrics.partition_key_fallbacks, 1);
        if let Some(n) = limiter.allow("partition_key_fallback") {
            tracing::warn!(
                "partition_key {} gave no usable value; using a random key{}, {}",
                acc,
                suppressed_note(n),
                self.stream
            );
        }
        Key::Random
    }

    fn report_skip(&self, skip: Skip, metrics: &KinesisMetrics, limiter: &LogLimiter) {
        match skip {
            Skip::Empty => {
                metrics.dropped(DropReason::Empty, 1);
                tracing::debug!("Found empty log message, {}", self.stream);
            }
            Skip::LogKeyMissing => {
                metrics.dropped(DropReason::LogKeyMissing, 1);
                if let Some(n) = limiter.allow("log_key_missing") {
                    tracing::warn!(
                        "Could not find log_key '{}' in record, {}{}",
                        self.formatter.log_key().unwrap_or(""),
                        self.stream,
                        suppressed_note(n)
                    );
                }
            }
            Skip::TimeFormat => {
                metrics.dropped(DropReason::TimeFormat, 1);
                if let Some(n) = limiter.allow("time_format") {
                    tracing::error!(
                        "Could not create time stamp for the record, discarding record, {}{}",
                        self.stream,
                        suppressed_note(n)
                    );
                }
            }
        }
    }

    /// Apply `oversize_policy` to the record at `data` in `arena` (the last thing in it). Returns
    /// whether the (possibly truncated) record stays.
    #[allow(clippy::too_many_arguments)]
    fn fit_oversize(
        &self,
        arena: &mut Vec<u8>,
        data: Range<usize>,
        limit: usize,
        record: usize,
        progress: &mut Progress,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) -> bool {
        let size = data.len();
        if self.oversize == OversizePolicy::Truncate && self.compression.is_none() {
            let suffix = TRUNCATED.len() + usize::from(self.append_newline);
            if limit > suffix {
                arena.truncate(data.start + limit - suffix);
                arena.extend_from_slice(TRUNCATED);
                if self.append_newline {
                    arena.push(b'\n');
                }
                kb_core::metrics::add(&metrics.truncated, 1);
                return true;
            }
        }
        arena.truncate(data.start);
        progress.mark_dropped(record);
        metrics.dropped(DropReason::Oversize, 1);
        if let Some(n) = limiter.allow("oversize") {
            tracing::warn!(
                "[size={size}] Discarding record which is larger than max_record_size={}, {}{}",
                self.max_record_size,
                self.stream,
                suppressed_note(n)
            );
        }
        false
    }

    /// Staged records grouped by key (first appearance order), each group in record order:
    /// an aggregate only ever holds records of one key (§2.7, §2.8).
    fn grouped_order(&self, keys: &str) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.staged.len()).collect();
        let key_text = |i: usize| match &self.staged[i].key {
            Key::Random => None,
            Key::Fixed(r) => Some(&keys[r.clone()]),
        };
        let mut first_seen: std::collections::HashMap<Option<&str>, usize> = Default::default();
        for i in 0..self.staged.len() {
            first_seen.entry(key_text(i)).or_insert(i);
        }
        order.sort_by_key(|&i| first_seen[&key_text(i)]);
        order
    }

    /// §2.7: concatenate records with the same key up to the limit (measured before
    /// compression), then compress each aggregate if configured.
    fn pack_simple(
        &mut self,
        out: &mut Prepared,
        progress: &mut Progress,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) {
        let order = self.grouped_order(&out.keys);
        let mut pos = 0;
        while pos < order.len() {
            let first = &self.staged[order[pos]];
            let key = first.key.clone();
            let limit = self
                .max_record_size
                .saturating_sub(key_len(&key, &out.keys));
            if first.data.len() > limit {
                let (record, size) = (first.record, first.data.len());
                self.drop_oversize(record, size, progress, metrics, limiter);
                pos += 1;
                continue;
            }
            self.scratch.clear();
            let m = out.members.len();
            while pos < order.len() {
                let st = &self.staged[order[pos]];
                if !same_key(&st.key, &key, &out.keys) || self.scratch.len() + st.data.len() > limit
                {
                    break;
                }
                self.scratch
                    .extend_from_slice(&self.staging[st.data.clone()]);
                out.members.push(st.record);
                pos += 1;
            }
            let start = out.arena.len();
            match self.compression {
                Some(c) => self.compressor.compress(c, &self.scratch, &mut out.arena),
                None => out.arena.extend_from_slice(&self.scratch),
            }
            if out.arena.len() - start > limit {
                // Compression made it bigger than the limit: the aggregate cannot be sent.
                out.arena.truncate(start);
                let members: Vec<usize> = out.members.drain(m..).collect();
                for r in members {
                    self.drop_oversize(r, self.scratch.len(), progress, metrics, limiter);
                }
            } else {
                out.entries.push(Entry {
                    data: start..out.arena.len(),
                    key,
                    members: m..out.members.len(),
                });
            }
        }
    }

    /// §2.8: KPL aggregates of records with the same key, closed before they would exceed the
    /// limit; an aggregate of one record is sent plain.
    fn pack_kpl(
        &mut self,
        out: &mut Prepared,
        progress: &mut Progress,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) {
        let order = self.grouped_order(&out.keys);
        let mut rng = fastrand::Rng::new();
        let mut pos = 0;
        while pos < order.len() {
            let key = self.staged[order[pos]].key.clone();
            let limit = self
                .max_record_size
                .saturating_sub(key_len(&key, &out.keys));
            // The key inside the table: the records' key, or a random one chosen now that is
            // also the outer key, so the aggregate's table and outer key agree.
            let table_key: String = match &key {
                Key::Fixed(r) => out.keys[r.clone()].to_string(),
                Key::Random => {
                    let mut k = String::new();
                    random_key(&mut rng, &mut k);
                    k
                }
            };
            self.kpl.reset(&table_key);
            let m = out.members.len();
            let group_start = pos;
            while pos < order.len() {
                let st = &self.staged[order[pos]];
                if !same_key(&st.key, &key, &out.keys) || self.kpl.size_with(st.data.len()) > limit
                {
                    break;
                }
                self.kpl.push(&self.staging[st.data.clone()]);
                out.members.push(st.record);
                pos += 1;
            }
            if pos == group_start {
                let st = &self.staged[order[pos]];
                let (record, size) = (st.record, st.data.len());
                self.drop_oversize(record, size, progress, metrics, limiter);
                pos += 1;
                continue;
            }
            let start = out.arena.len();
            if pos - group_start == 1 {
                // Deaggregators pass plain records through unchanged.
                out.arena
                    .extend_from_slice(&self.staging[self.staged[order[group_start]].data.clone()]);
                out.entries.push(Entry {
                    data: start..out.arena.len(),
                    key,
                    members: m..out.members.len(),
                });
            } else {
                self.kpl.finish(&mut out.arena);
                let key = match key {
                    Key::Random => {
                        let k = out.keys.len();
                        out.keys.push_str(&table_key);
                        Key::Fixed(k..out.keys.len())
                    }
                    fixed => fixed,
                };
                out.entries.push(Entry {
                    data: start..out.arena.len(),
                    key,
                    members: m..out.members.len(),
                });
            }
        }
    }

    fn drop_oversize(
        &self,
        record: usize,
        size: usize,
        progress: &mut Progress,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) {
        progress.mark_dropped(record);
        metrics.dropped(DropReason::Oversize, 1);
        if let Some(n) = limiter.allow("oversize") {
            tracing::warn!(
                "[size={size}] Discarding record which is larger than max_record_size={}, {}{}",
                self.max_record_size,
                self.stream,
                suppressed_note(n)
            );
        }
    }
}

/// Bytes the key counts against `max_record_size`.
fn key_len(key: &Key, _keys: &str) -> usize {
    match key {
        Key::Random => RANDOM_KEY_LEN,
        Key::Fixed(r) => r.len(),
    }
}

fn same_key(a: &Key, b: &Key, keys: &str) -> bool {
    match (a, b) {
        (Key::Random, Key::Random) => true,
        (Key::Fixed(x), Key::Fixed(y)) => keys[x.clone()] == keys[y.clone()],
        _ => false,
    }
}
