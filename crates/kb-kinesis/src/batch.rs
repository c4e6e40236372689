//! From a chunk to the Kinesis records of one flush: every pending event is formatted
//! (§2.1), given its partition key (§4), compressed, size-checked (§3) and, with aggregation,
//! packed (§2.7/§2.8). Records that can never be sent are marked dropped in the progress with
//! their reason. All buffers are reused from flush to flush.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use kb_core::event::EventReader;
use kb_core::{Chunk, Progress};

use crate::accessor::{random_key_of, PartitionKey, RecordAccessor, RANDOM_KEY_LEN};
use crate::aggregate::KplAggregate;
use crate::compress::{Compression, Compressor};
use crate::config::{Aggregation, Flavour, OversizePolicy, Settings};
use crate::format::{FormatOptions, RecordFormatter, Skip};
use crate::gofmt::{go_partition_key, GoFormatOptions, GoFormatter};
use crate::metrics::{DropReason, FallbackReason, KinesisMetrics};
use crate::ratelimit::{suppressed_note, LogLimiter};
use crate::route::{MissingStreams, StreamTemplate, Unresolved};
use crate::shards::ShardMap;
use crate::time_format::TimeFormat;

/// The partition key of one Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A fresh random key at every send attempt (spreads retries over shards).
    Random,
    /// A key taken from the record, stored in [`Prepared::keys`].
    Fixed(Range<usize>),
}

/// One Kinesis record: its Data, its key, its stream, and the chunk records it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub data: Range<usize>,
    pub key: Key,
    /// Index in [`Prepared::streams`] of the stream it goes to.
    pub stream: u32,
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
    /// The streams of the entries, as requests name them (a name, or an ARN with
    /// `stream_arn`): the one configured stream, or those per-record streams resolved to.
    pub streams: Vec<String>,
}

impl Prepared {
    fn clear(&mut self) {
        self.arena.clear();
        self.keys.clear();
        self.entries.clear();
        self.members.clear();
    }

    /// The stream of entry `e`.
    pub fn stream(&self, e: &Entry) -> &str {
        self.streams
            .get(e.stream as usize)
            .map(String::as_str)
            .unwrap_or("")
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
    stream: u32,
    record: usize,
}

/// How events become Data: Fluent Bit's plugins or the Go plugins.
enum Formatter {
    Fb(RecordFormatter),
    Go(GoFormatter),
}

impl Formatter {
    fn format(&mut self, ev: &kb_core::event::Event<'_>, out: &mut Vec<u8>) -> Result<(), Skip> {
        match self {
            Formatter::Fb(f) => f.format(ev, out),
            Formatter::Go(f) => f.format(ev, out),
        }
    }

    fn log_key(&self) -> Option<&str> {
        match self {
            Formatter::Fb(f) => f.log_key(),
            Formatter::Go(f) => f.log_key(),
        }
    }
}

/// Where a record's partition key comes from.
enum KeySource {
    /// A fresh random key for each record (or none, for Firehose).
    Random,
    /// `kinesis_streams`' record accessor.
    Accessor(RecordAccessor),
    /// The Go `kinesis`'s `a->b` path, with `time_key` (which the Go plugin sets before it
    /// looks the key up) and its format.
    GoPath(Vec<String>, Option<(String, TimeFormat)>),
}

/// Turns chunks into [`Prepared`] Kinesis records; one per worker.
pub struct Preparer {
    formatter: Formatter,
    compressor: Compressor,
    compression: Option<Compression>,
    keys: KeySource,
    /// Whether records carry a partition key (Streams) at all.
    keyed: bool,
    /// Length of the random keys drawn at send time.
    random_key_len: usize,
    flavour: Flavour,
    aggregation: Aggregation,
    max_record_size: usize,
    aggregate_max_size: usize,
    aggregate_skip_size: Option<usize>,
    oversize: OversizePolicy,
    /// Whether a truncated record ends with a newline after `[Truncated...]`.
    truncate_newline: bool,
    /// The configured stream (or template), for messages.
    stream: String,
    /// Per-record streams (`stream`/`stream_arn` with a template); `None`: the one stream.
    route: Option<StreamTemplate>,
    /// `stream_fallback`, as requests name it.
    fallback: Option<String>,
    /// Index of each stream in [`Prepared::streams`] during one prepare (per-record streams).
    stream_index: HashMap<String, u32>,
    /// Per index in [`Prepared::streams`]: found missing recently (per-record streams).
    stream_missing: Vec<bool>,
    /// The output's recently missing streams.
    missing: Arc<MissingStreams>,
    name_buf: String,
    stream_buf: String,
    time_scratch: Vec<u8>,
    staging: Vec<u8>,
    staged: Vec<Staged>,
    scratch: Vec<u8>,
    key_buf: String,
    kpl: KplAggregate,
    /// `shard_aware`: the shard map KPL aggregates are packed by (`None`: by key).
    shard_map: Option<Arc<ShardMap>>,
}

/// An empty msgpack map: the record a template of the tag alone is resolved against.
const EMPTY_MAP: &[u8] = &[0x80];

/// `[Truncated...]`: the suffix of a truncated record, as Fluent Bit writes it.
const TRUNCATED: &[u8] = b"[Truncated...]";

impl Preparer {
    /// A preparer for the validated `settings`.
    pub fn new(settings: &Settings) -> Self {
        let go = settings.flavour.is_go();
        let formatter = if go {
            Formatter::Go(GoFormatter::new(GoFormatOptions {
                time_key: settings.time_key.clone(),
                time_format: TimeFormat::compile_go(&settings.time_key_format).unwrap_or_default(),
                data_keys: settings.data_keys.clone(),
                replace_dots: settings.replace_dots.clone(),
                log_key: settings.log_key.clone(),
                append_newline: settings.append_newline,
            }))
        } else {
            let (time_format, _) = TimeFormat::compile(&settings.time_key_format);
            Formatter::Fb(RecordFormatter::new(FormatOptions {
                time_key: settings.time_key.clone(),
                time_format,
                log_key: settings.log_key.clone(),
                append_newline: settings.append_newline,
                escape_unicode: settings.escape_unicode,
            }))
        };
        let keys = if let Some(path) = &settings.key_path {
            let time = settings.time_key.clone().map(|k| {
                (
                    k,
                    TimeFormat::compile_go(&settings.time_key_format).unwrap_or_default(),
                )
            });
            KeySource::GoPath(path.clone(), time)
        } else if let Some(acc) = settings
            .partition_key
            .as_deref()
            .and_then(|p| RecordAccessor::parse(p).ok())
        {
            KeySource::Accessor(acc)
        } else {
            KeySource::Random
        };
        Preparer {
            formatter,
            compressor: Compressor::default(),
            compression: settings.compression,
            keys,
            keyed: !settings.flavour.is_firehose(),
            random_key_len: random_key_len(settings.flavour),
            flavour: settings.flavour,
            aggregation: settings.aggregation,
            max_record_size: settings.max_record_size,
            aggregate_max_size: settings.aggregate_max_size,
            aggregate_skip_size: settings.aggregate_skip_size,
            oversize: settings.oversize_policy,
            // The Go plugin cuts the record and ends it with the suffix alone.
            truncate_newline: settings.append_newline && !go,
            stream: settings.stream.clone(),
            route: settings.stream_route.clone(),
            fallback: settings.stream_fallback.clone(),
            stream_index: HashMap::new(),
            stream_missing: Vec::new(),
            missing: Arc::default(),
            name_buf: String::new(),
            stream_buf: String::new(),
            time_scratch: Vec::new(),
            staging: Vec::new(),
            staged: Vec::new(),
            scratch: Vec::new(),
            key_buf: String::new(),
            kpl: KplAggregate::default(),
            shard_map: None,
        }
    }

    /// `shard_aware`: pack KPL aggregates per predicted shard of `map` (records of several
    /// keys in one aggregate, whose first key decides its shard) rather than per key.
    pub fn set_shard_map(&mut self, map: Option<Arc<ShardMap>>) {
        self.shard_map = map;
    }

    /// Share the output's memory of missing streams (per-record streams) with this preparer.
    pub fn set_missing_streams(&mut self, missing: Arc<MissingStreams>) {
        self.missing = missing;
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
        self.stream_index.clear();
        self.stream_missing.clear();
        if self.route.is_none() {
            // The one stream: entries keep index 0, and nothing is resolved per record.
            if out.streams.len() != 1 || out.streams[0] != self.stream {
                out.streams.clear();
                out.streams.push(self.stream.clone());
            }
        } else {
            out.streams.clear();
        }
        // A template of the tag alone names one stream for the whole chunk (one tag).
        let chunk_stream = match &self.route {
            Some(r) if r.tag_only() => Some(self.resolve(&chunk.tag, EMPTY_MAP, out)),
            _ => None,
        };
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
            let resolved = match chunk_stream {
                Some(r) => r,
                None => self.resolve(&chunk.tag, ev.record, out),
            };
            let stream = match resolved {
                Ok(s) if self.stream_missing.get(s as usize) == Some(&true) => {
                    match self.recently_missing(s, out, metrics, limiter) {
                        Some(s) => s,
                        None => {
                            progress.mark_dropped(i);
                            continue;
                        }
                    }
                }
                Ok(s) => s,
                Err(why) => match self.unresolved(why, out, metrics, limiter) {
                    Some(s) => s,
                    None => {
                        progress.mark_dropped(i);
                        continue;
                    }
                },
            };
            let key = self.key_for(ev.record, ev.time, out, metrics, limiter);
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
                    let limit = self.max_record_size.saturating_sub(self.key_len(&key));
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
                        stream,
                        members: m..m + 1,
                    });
                }
                _ => self.staged.push(Staged {
                    data,
                    key,
                    stream,
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

    /// The index in `out.streams` of the record's stream (0 without per-record streams).
    fn resolve(&mut self, tag: &str, record: &[u8], out: &mut Prepared) -> Result<u32, Unresolved> {
        let Some(route) = &self.route else {
            return Ok(0);
        };
        route.resolve(tag, record, &mut self.name_buf, &mut self.stream_buf)?;
        let i = intern(&mut self.stream_index, &mut out.streams, &self.stream_buf);
        if i as usize == self.stream_missing.len() {
            // A stream new to this flush: asked once, not per record. The fallback itself is
            // never skipped: its failure keeps the records for the engine's retry.
            let skip = self.fallback.as_deref() != Some(self.stream_buf.as_str())
                && self.missing.is_missing(&self.stream_buf);
            self.stream_missing.push(skip);
        }
        Ok(i)
    }

    /// A record for stream `s`, which answered `ResourceNotFoundException` moments ago: the
    /// fallback's index, or `None` (dropped and counted), as that answer would decide.
    fn recently_missing(
        &mut self,
        s: u32,
        out: &mut Prepared,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) -> Option<u32> {
        let name = &out.streams[s as usize];
        match &self.fallback {
            Some(f) => {
                metrics.fell_back(FallbackReason::NotFound, 1);
                if let Some(n) = limiter.allow("stream_not_found:fallback") {
                    tracing::warn!(
                        "stream {name} did not exist moments ago: record sent to stream_fallback {f}{}",
                        suppressed_note(n)
                    );
                }
                self.intern_fallback(out)
            }
            None => {
                metrics.dropped(DropReason::StreamNotFound, 1);
                if let Some(n) = limiter.allow("stream_not_found:drop") {
                    tracing::warn!(
                        "stream {name} did not exist moments ago and stream_fallback is not set: record dropped{}",
                        suppressed_note(n)
                    );
                }
                None
            }
        }
    }

    /// The index of the fallback stream (never treated as missing); `None` without one.
    fn intern_fallback(&mut self, out: &mut Prepared) -> Option<u32> {
        let f = self.fallback.as_deref()?;
        let i = intern(&mut self.stream_index, &mut out.streams, f);
        if i as usize == self.stream_missing.len() {
            self.stream_missing.push(false);
        }
        Some(i)
    }

    /// A record without a stream: the fallback's index, or `None` (dropped and counted).
    fn unresolved(
        &mut self,
        why: Unresolved,
        out: &mut Prepared,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) -> Option<u32> {
        // Records without a stream may be every record of a flush: the reason is written
        // only when the limiter lets the warning through.
        let reason = |name: &str| match why {
            Unresolved::Missing => {
                "a field or tag part is missing or not a string or number".to_string()
            }
            Unresolved::Empty => "it is empty".to_string(),
            Unresolved::Invalid => format!(
                "'{name}' is not a stream name (1-128 characters of A-Z, a-z, 0-9, '_', '.', '-')"
            ),
        };
        match &self.fallback {
            Some(f) => {
                metrics.fell_back(
                    match why {
                        Unresolved::Missing => FallbackReason::Missing,
                        Unresolved::Empty => FallbackReason::Empty,
                        Unresolved::Invalid => FallbackReason::Invalid,
                    },
                    1,
                );
                if let Some(n) = limiter.allow(why.fallback_log_key()) {
                    tracing::warn!(
                        "stream {} gave no stream for a record ({}): sent to stream_fallback {f}{}",
                        self.stream,
                        reason(&self.name_buf),
                        suppressed_note(n)
                    );
                }
                self.intern_fallback(out)
            }
            None => {
                metrics.dropped(DropReason::StreamUnresolved, 1);
                if let Some(n) = limiter.allow(why.drop_log_key()) {
                    tracing::warn!(
                        "stream {} gave no stream for a record ({}) and stream_fallback is not set: record dropped{}",
                        self.stream,
                        reason(&self.name_buf),
                        suppressed_note(n)
                    );
                }
                None
            }
        }
    }

    /// The record's partition key (accessor value, else a random key at send time).
    fn key_for(
        &mut self,
        record: &[u8],
        ev_time: kb_core::event::EventTime,
        out: &mut Prepared,
        metrics: &KinesisMetrics,
        limiter: &LogLimiter,
    ) -> Key {
        self.key_buf.clear();
        let found = match &self.keys {
            KeySource::Random => return Key::Random,
            KeySource::Accessor(acc) => acc.extract(record, &mut self.key_buf),
            KeySource::GoPath(path, time) => {
                self.time_scratch.clear();
                let time = match time {
                    Some((k, f)) if f.write(ev_time, &mut self.time_scratch).is_ok() => {
                        Some((k.as_str(), &self.time_scratch[..]))
                    }
                    _ => None,
                };
                go_partition_key(record, path, time, &mut self.key_buf)
            }
        };
        if found {
            let start = out.keys.len();
            out.keys.push_str(&self.key_buf);
            return Key::Fixed(start..out.keys.len());
        }
        kb_core::metrics::add(&metrics.partition_key_fallbacks, 1);
        if let Some(n) = limiter.allow("partition_key_fallback") {
            match &self.keys {
                KeySource::Accessor(acc) => tracing::warn!(
                    "partition_key {} gave no usable value; using a random key{}, {}",
                    acc,
                    suppressed_note(n),
                    self.stream
                ),
                // The Go plugin's words.
                _ => tracing::warn!(
                    "The partition key could not be found in the record, using a random string instead{}, {}",
                    suppressed_note(n),
                    self.stream
                ),
            }
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
            let suffix = TRUNCATED.len() + usize::from(self.truncate_newline);
            if limit > suffix {
                arena.truncate(data.start + limit - suffix);
                arena.extend_from_slice(TRUNCATED);
                if self.truncate_newline {
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

    /// Staged records grouped by stream and key (first appearance order), each group in
    /// record order: an aggregate only ever holds records of one key and one stream (§2.7,
    /// §2.8).
    fn grouped_order(&self, keys: &str) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.staged.len()).collect();
        let key_text = |i: usize| {
            let st = &self.staged[i];
            let key = match &st.key {
                Key::Random => None,
                Key::Fixed(r) => Some(&keys[r.clone()]),
            };
            (st.stream, key)
        };
        let mut first_seen: HashMap<(u32, Option<&str>), usize> = Default::default();
        for i in 0..self.staged.len() {
            first_seen.entry(key_text(i)).or_insert(i);
        }
        order.sort_by_key(|&i| first_seen[&key_text(i)]);
        order
    }

    /// [`Preparer::grouped_order`] by predicted shard: staged records grouped by stream and the
    /// shard of their key (random keys apart, in one group), and each record's group.
    fn grouped_order_by_shard(&self, keys: &str, map: &ShardMap) -> (Vec<usize>, Vec<usize>) {
        let groups: Vec<usize> = self
            .staged
            .iter()
            .map(|st| match &st.key {
                Key::Random => 0,
                Key::Fixed(r) => map.shard_of_key(&keys[r.clone()]).map_or(1, |i| i + 2),
            })
            .collect();
        let mut order: Vec<usize> = (0..self.staged.len()).collect();
        let mut first_seen: HashMap<(u32, usize), usize> = Default::default();
        for (i, &g) in groups.iter().enumerate() {
            first_seen.entry((self.staged[i].stream, g)).or_insert(i);
        }
        order.sort_by_key(|&i| first_seen[&(self.staged[i].stream, groups[i])]);
        (order, groups)
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
            let stream = first.stream;
            let limit = self.max_record_size.saturating_sub(self.key_len(&key));
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
                if st.stream != stream
                    || !same_key(&st.key, &key, &out.keys)
                    || self.scratch.len() + st.data.len() > limit
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
                    stream,
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
        // `shard_aware`: one group per predicted shard (a key in a gap of the map: group 1, by
        // key as without a map).
        let by_shard = self.shard_map.clone();
        let (order, groups) = match &by_shard {
            Some(map) => self.grouped_order_by_shard(&out.keys, map),
            None => (self.grouped_order(&out.keys), Vec::new()),
        };
        let mut rng = fastrand::Rng::new();
        let mut pos = 0;
        while pos < order.len() {
            let key = self.staged[order[pos]].key.clone();
            let stream = self.staged[order[pos]].stream;
            let limit = self.aggregate_max_size.saturating_sub(self.key_len(&key));
            // The key inside the table: the records' key, or a random one chosen now that is
            // also the outer key, so the aggregate's table and outer key agree.
            let table_key: String = match &key {
                Key::Fixed(r) => out.keys[r.clone()].to_string(),
                Key::Random => {
                    let mut k = String::new();
                    random_key_of(&mut rng, &mut k, self.random_key_len);
                    k
                }
            };
            // `skip_aggregation_record_size`: a big record goes out on its own, plain.
            let first = &self.staged[order[pos]];
            if self
                .aggregate_skip_size
                .is_some_and(|s| first.data.len() >= s)
            {
                let plain_limit = self.max_record_size.saturating_sub(self.key_len(&key));
                let (record, data) = (first.record, first.data.clone());
                if data.len() > plain_limit {
                    self.drop_oversize(record, data.len(), progress, metrics, limiter);
                } else {
                    let start = out.arena.len();
                    out.arena.extend_from_slice(&self.staging[data]);
                    let m = out.members.len();
                    out.members.push(record);
                    out.entries.push(Entry {
                        data: start..out.arena.len(),
                        key,
                        stream,
                        members: m..m + 1,
                    });
                }
                pos += 1;
                continue;
            }
            self.kpl.reset(&table_key);
            let m = out.members.len();
            let group_start = pos;
            while pos < order.len() {
                let st = &self.staged[order[pos]];
                // With a shard map, records of other keys of the same shard join (their own
                // key in the table); a random key's group shares the table key.
                let keyed = match (&st.key, &by_shard) {
                    (Key::Fixed(r), Some(_)) if groups[order[group_start]] >= 2 => {
                        Some(&out.keys[r.clone()])
                    }
                    _ => None,
                };
                let same = match keyed {
                    Some(_) => groups[order[pos]] == groups[order[group_start]],
                    None => same_key(&st.key, &key, &out.keys),
                };
                let size = match keyed {
                    Some(k) => self.kpl.size_with_keyed(k, st.data.len()),
                    None => self.kpl.size_with(st.data.len()),
                };
                if st.stream != stream
                    || !same
                    || size > limit
                    || self.aggregate_skip_size.is_some_and(|s| st.data.len() >= s)
                {
                    break;
                }
                match keyed {
                    Some(k) => self.kpl.push_keyed(k, &self.staging[st.data.clone()]),
                    None => self.kpl.push(&self.staging[st.data.clone()]),
                }
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
                    stream,
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
                    stream,
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

/// The index of `stream` in `streams`, added when new.
fn intern(index: &mut HashMap<String, u32>, streams: &mut Vec<String>, stream: &str) -> u32 {
    if let Some(&i) = index.get(stream) {
        return i;
    }
    let i = streams.len() as u32;
    streams.push(stream.to_string());
    index.insert(stream.to_string(), i);
    i
}

/// Length of the random keys of a plugin: the Go plugin draws 8 characters.
pub fn random_key_len(flavour: Flavour) -> usize {
    match flavour {
        Flavour::GoKinesis => 8,
        _ => RANDOM_KEY_LEN,
    }
}

impl Preparer {
    /// Bytes the key counts against `max_record_size` (none without keys: Firehose).
    fn key_len(&self, key: &Key) -> usize {
        match key {
            _ if !self.keyed => 0,
            Key::Random => self.random_key_len,
            Key::Fixed(r) => r.len(),
        }
    }

    /// Which plugin this prepares for.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }
}

fn same_key(a: &Key, b: &Key, keys: &str) -> bool {
    match (a, b) {
        (Key::Random, Key::Random) => true,
        (Key::Fixed(x), Key::Fixed(y)) => keys[x.clone()] == keys[y.clone()],
        _ => false,
    }
}
