//! `multiline`: join records that belong together (Fluent Bit's `filter_multiline`).
//!
//! **`mode parser`** (the default): the field `multiline.key_content` of each record goes
//! through the multiline parsers of `multiline.parser` (comma lists, several lines: built-in
//! `docker`, `cri`, `go`, `python`, `java`, `ruby` or `[MULTILINE_PARSER]`s; see
//! [`kb_parsers::multiline`]). A joined message is the first record with that field holding
//! the joined lines (`\n` between them); a record no parser takes goes on unchanged. Records
//! are kept apart by input instance and tag (one stream each), as in Fluent Bit.
//!
//! With `buffer on` (the default) every record is held by the filter and re-enters the
//! pipeline, joined or as it was, through an emitter input named `emitter_name` (default
//! `emitter_for_<filter instance>`, with `emitter_storage.type` and
//! `emitter_mem_buf_limit`, default 10M) under its own tag; filters before this one see the
//! records twice, as Fluent Bit documents. A message waits `flush_ms` (default 2000,
//! at least 500) for its next line; messages still pending when the agent stops are
//! flushed then, none is lost.
//!
//! **`mode partial_message`**: records split by Docker's fluentd log driver
//! (`partial_message: "true"`, `partial_id`, `partial_last`) are joined per `partial_id`, tag
//! and input: the first part's fields without the `partial_*` ones, then `key_content`
//! holding the parts' values. A complete message comes out in place of its last part;
//! parts waiting longer than `flush_ms` come out through the emitter.
//!
//! Differences from Fluent Bit, deliberate:
//! - `buffer off`: Fluent Bit then joins records only within one chunk. kinesis-bit hands its
//!   filters one record at a time and no chunk boundary, so the filter runs buffered (a
//!   warning says so).
//! - A message is flushed after `flush_ms` without a new line (Fluent Bit flushes everything
//!   pending every `flush_ms`, which can cut a message in two), and pending partial
//!   messages are flushed at stop (Fluent Bit drops them).
//! - `multiline.key_content` is required when a listed parser has no `key_content` of its
//!   own (Fluent Bit then silently passes every record through).
//! - In `partial_message` mode keys are compared whole (Fluent Bit compares prefixes, so a
//!   key `part` counts as `partial_message` and is dropped as a `partial_` key).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventReader, EventTime};
use kb_core::filter::{Emitter, EmitterSpec, Filter, FilterCx, Verdict};
use kb_core::record::{as_str, write_event_start, write_map_len, write_str, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_parsers::multiline::{Flushed, Multiline};
use kb_parsers::Parsers;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "multiline.parser",
        KeyType::Str,
        None,
        "multiline parsers (comma list): docker, cri, go, python, java, ruby or [MULTILINE_PARSER] names",
    )
    .multi(),
    KeySpec::new(
        "multiline.key_content",
        KeyType::Str,
        None,
        "field holding the content to join",
    ),
    KeySpec::new(
        "mode",
        KeyType::Enum(&["parser", "partial_message"]),
        Some("parser"),
        "parser: join with multiline parsers; partial_message: join Docker's split messages",
    ),
    KeySpec::new(
        "buffer",
        KeyType::Bool,
        Some("true"),
        "hold records and re-emit them through an emitter input (off behaves as on here)",
    ),
    KeySpec::new(
        "flush_ms",
        KeyType::Int,
        Some("2000"),
        "milliseconds a pending message waits for its next line",
    ),
    KeySpec::new(
        "debug_flush",
        KeyType::Bool,
        Some("false"),
        "accepted for compatibility (Fluent Bit prints each flush to stdout)",
    ),
    KeySpec::new(
        "emitter_name",
        KeyType::Str,
        None,
        "name of the emitter input (default emitter_for_<filter instance>)",
    ),
    KeySpec::new(
        "emitter_storage.type",
        KeyType::Enum(&["memory", "filesystem"]),
        Some("memory"),
        "storage of the emitter input",
    ),
    KeySpec::new(
        "emitter_mem_buf_limit",
        KeyType::Size,
        Some("10M"),
        "memory limit of the emitter input",
    ),
];

/// The `multiline` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "multiline",
        description: "Concatenate multiline messages",
        keys: KEYS,
    },
    build,
};

/// A message of `partial_message` mode being joined.
struct Packer {
    tag: String,
    input: String,
    id: Vec<u8>,
    time: EventTime,
    /// The first part's map entries (without the split key and `partial_*` keys).
    fields: Vec<u8>,
    field_count: usize,
    key: Vec<u8>,
    buf: Vec<u8>,
    last_write: Instant,
}

impl Packer {
    /// The joined record as an event.
    fn event(&self) -> Vec<u8> {
        let mut ev = Vec::new();
        write_event_start(&mut ev, self.time);
        ev.push(0x80);
        write_map_len(&mut ev, self.field_count + 1);
        ev.extend_from_slice(&self.fields);
        write_str(&mut ev, &self.key);
        write_str(&mut ev, &self.buf);
        ev
    }
}

enum Mode {
    Parser(Multiline),
    Partial(Vec<Packer>),
}

struct State {
    mode: Mode,
    /// (input, tag) → stream id, and back to the tag.
    streams: HashMap<(String, String), u64>,
    tags: HashMap<u64, String>,
    timer: bool,
}

struct Inner {
    state: Mutex<State>,
    emitter: Emitter,
    flush: Duration,
    key_content: Option<String>,
    /// Inputs were asked to stop: nothing waits any more.
    stopped: AtomicBool,
}

struct MultilineFilter {
    inner: Arc<Inner>,
    name: String,
    mem_buf_limit: usize,
    filesystem: bool,
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let partial = props
        .str("mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("partial_message"));
    let key_content = props.str("multiline.key_content").map(str::to_string);
    let flush_ms = match props.u64("flush_ms") {
        Ok(v) => v.unwrap_or(2000),
        Err(e) => {
            errors.push(e);
            2000
        }
    };
    if flush_ms < 500 {
        errors.push(props.error(
            "flush_ms",
            format!("flush timeout '{flush_ms}' is too low (at least 500 ms)"),
        ));
    }
    match props.bool("buffer") {
        Ok(Some(false)) => svc.warn(
            props.get("buffer").map_or(props.location.clone(), |p| p.location.clone()),
            format!(
                "[filter {}] 'buffer off' joins records only within one chunk in Fluent Bit; kinesis-bit filters records one at a time, so the filter runs buffered",
                props.instance
            ),
        ),
        Ok(_) => {}
        Err(e) => errors.push(e),
    }
    if let Err(e) = props.bool("debug_flush") {
        errors.push(e);
    }
    let mem_buf_limit = match props.size("emitter_mem_buf_limit") {
        Ok(v) => v.unwrap_or(10 * 1024 * 1024) as usize,
        Err(e) => {
            errors.push(e);
            0
        }
    };
    let filesystem = props
        .str("emitter_storage.type")
        .is_some_and(|t| t.eq_ignore_ascii_case("filesystem"));
    let ml_props: Vec<_> = props.get_all("multiline.parser").collect();
    let mode = if partial {
        if key_content.is_none() {
            errors.push(props.error(
                "multiline.key_content",
                "'mode partial_message' requires 'multiline.key_content'",
            ));
        }
        if let Some(p) = ml_props.first() {
            errors.push(props.error(
                &p.key,
                "'multiline.parser' does not apply with 'mode partial_message'",
            ));
        }
        Some(Mode::Partial(Vec::new()))
    } else if ml_props.is_empty() {
        errors.push(props.error(
            "multiline.parser",
            "the default 'mode parser' requires at least one 'multiline.parser'",
        ));
        None
    } else {
        let registry = Parsers::of(svc.parsers.as_ref());
        let prefix = format!("[filter {}] ", props.instance);
        match registry
            .multiline
            .resolve(ml_props.iter().copied(), &prefix)
        {
            Ok(list) => {
                if key_content.is_none() {
                    for p in list.iter().filter(|p| p.key_content().is_none()) {
                        errors.push(props.error(
                            "multiline.parser",
                            format!(
                                "multiline parser '{}' has no key_content: set 'multiline.key_content' to the field holding the lines",
                                p.name()
                            ),
                        ));
                    }
                }
                let limit = registry.multiline_buffer_limit;
                Some(Mode::Parser(Multiline::new(
                    &list,
                    key_content.as_deref(),
                    limit,
                )))
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    };
    let Some(mode) = mode.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let name = props
        .str("emitter_name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("emitter_for_{}", props.instance));
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            mode,
            streams: HashMap::new(),
            tags: HashMap::new(),
            timer: false,
        }),
        emitter: Emitter::new(),
        flush: Duration::from_millis(flush_ms),
        key_content,
        stopped: AtomicBool::new(false),
    });
    let at_stop = Arc::downgrade(&inner);
    inner.emitter.on_stop(move || {
        if let Some(inner) = at_stop.upgrade() {
            inner.stopped.store(true, Ordering::Release);
            inner.flush(true);
        }
    });
    Ok(Box::new(MultilineFilter {
        inner,
        name,
        mem_buf_limit,
        filesystem,
    }))
}

/// Events to hand to the emitter, grouped by tag in order.
#[derive(Default)]
struct Out {
    batches: Vec<(String, Vec<u8>, usize)>,
}

impl Out {
    fn push(&mut self, tag: &str, event: &[u8]) {
        match self.batches.last_mut() {
            Some((t, buf, n)) if t == tag => {
                buf.extend_from_slice(event);
                *n += 1;
            }
            _ => self.batches.push((tag.to_string(), event.to_vec(), 1)),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, out: Out) {
        for (tag, events, n) in out.batches {
            if !self.emitter.append(&tag, &events, n) {
                tracing::warn!(target: "filter",
                    "multiline: {n} records for '{tag}' could not be re-emitted: the emitter input does not run");
            }
        }
    }

    /// Flush what waited `flush` (everything when `all`) through the emitter.
    fn flush(&self, all: bool) {
        let mut out = Out::default();
        {
            let mut st = self.lock();
            let State { mode, tags, .. } = &mut *st;
            match mode {
                Mode::Parser(ml) => {
                    let mut sink = |f: Flushed<'_>| {
                        if let Some(tag) = tags.get(&f.stream) {
                            out.push(tag, f.event);
                        }
                    };
                    if all {
                        ml.flush_all(&mut sink);
                    } else {
                        ml.flush_idle(Instant::now(), self.flush, &mut sink);
                    }
                }
                Mode::Partial(packers) => {
                    let now = Instant::now();
                    packers.retain(|p| {
                        let expired =
                            all || now.saturating_duration_since(p.last_write) > self.flush;
                        if expired {
                            out.push(&p.tag, &p.event());
                        }
                        !expired
                    });
                }
            }
        }
        self.emit(out);
    }

    /// Start the flush timer on the runtime the records come from (once).
    fn start_timer(self: &Arc<Self>, st: &mut State) {
        if st.timer {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        st.timer = true;
        let weak = Arc::downgrade(self);
        let tick = (self.flush / 4).max(Duration::from_millis(50));
        rt.spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopped.load(Ordering::Acquire) {
                    return;
                }
                inner.flush(false);
            }
        });
    }

    fn stream(st: &mut State, input: &str, tag: &str) -> u64 {
        let next = st.streams.len() as u64 + 1;
        let id = *st
            .streams
            .entry((input.to_string(), tag.to_string()))
            .or_insert(next);
        st.tags.entry(id).or_insert_with(|| tag.to_string());
        id
    }
}

/// The value of the first entry whose key is exactly `key` (string or bin), and its index.
fn field<'r>(record: &'r Record<'_>, key: &[u8]) -> Option<(usize, &'r [u8])> {
    (0..record.len())
        .find(|&i| record.key(i) == Some(key))
        .map(|i| (i, record.value(i)))
}

fn is_true(v: &[u8]) -> bool {
    as_str(v).is_some_and(|s| s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"true"))
}

impl MultilineFilter {
    fn parser_mode(&self, record: &mut Record<'_>, cx: &FilterCx<'_>) -> Verdict {
        let mut map = Vec::with_capacity(256);
        record.write_map(&mut map);
        let mut out = Out::default();
        {
            let mut st = self.inner.lock();
            self.inner.start_timer(&mut st);
            let stream = Inner::stream(&mut st, cx.input, cx.tag);
            let State { mode, tags, .. } = &mut *st;
            let Mode::Parser(ml) = mode else {
                return Verdict::Keep;
            };
            let mut sink = |f: Flushed<'_>| {
                if let Some(tag) = tags.get(&f.stream) {
                    out.push(tag, f.event);
                }
            };
            let status = ml.append_record(stream, record.time, record.metadata(), &map, &mut sink);
            if status == kb_parsers::multiline::Status::Truncated {
                tracing::warn!(target: "filter", "multiline message truncated due to buffer limit");
            }
            if self.inner.stopped.load(Ordering::Acquire) {
                ml.flush_all(&mut sink);
            }
        }
        self.inner.emit(out);
        // Every record goes on through the emitter.
        Verdict::Replace
    }

    fn partial_mode(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let Some(key) = self.inner.key_content.as_deref().map(str::as_bytes) else {
            return Verdict::Keep;
        };
        let partial = field(record, b"partial_message").is_some_and(|(_, v)| is_true(v));
        if !partial {
            return Verdict::Keep;
        }
        let Some(id) = field(record, b"partial_id").and_then(|(_, v)| as_str(v)) else {
            tracing::warn!(target: "filter",
                "multiline: no partial_id in a partial message of tag {}", cx.tag);
            return Verdict::Keep;
        };
        let Some((ki, kv)) = field(record, key) else {
            return Verdict::Keep;
        };
        let Some(content) = as_str(kv) else {
            return Verdict::Keep;
        };
        let last = field(record, b"partial_last").is_some_and(|(_, v)| is_true(v));
        let mut out = Out::default();
        let mut complete = None;
        {
            let mut st = self.inner.lock();
            self.inner.start_timer(&mut st);
            let Mode::Partial(packers) = &mut st.mode else {
                return Verdict::Keep;
            };
            let pos = packers
                .iter()
                .position(|p| p.id == id && p.tag == cx.tag && p.input == cx.input);
            let i = match pos {
                Some(i) => i,
                None => {
                    let mut fields = Vec::new();
                    let mut field_count = 0;
                    for i in 0..record.len() {
                        if i == ki || record.key(i).is_some_and(|k| k.starts_with(b"partial_")) {
                            continue;
                        }
                        let (k, v) = record.entry(i);
                        fields.extend_from_slice(record.bytes(k));
                        fields.extend_from_slice(record.bytes(v));
                        field_count += 1;
                    }
                    packers.push(Packer {
                        tag: cx.tag.to_string(),
                        input: cx.input.to_string(),
                        id: id.to_vec(),
                        time: record.time,
                        fields,
                        field_count,
                        key: key.to_vec(),
                        buf: Vec::new(),
                        last_write: Instant::now(),
                    });
                    packers.len() - 1
                }
            };
            packers[i].buf.extend_from_slice(content);
            packers[i].last_write = Instant::now();
            if last {
                complete = Some(packers.remove(i).event());
            }
            if self.inner.stopped.load(Ordering::Acquire) {
                for p in packers.drain(..) {
                    out.push(&p.tag, &p.event());
                }
            }
        }
        self.inner.emit(out);
        match complete {
            Some(ev) => {
                // Fluent Bit returns the joined record in place of its last part.
                if let Some(Ok(e)) = EventReader::new(&ev).next() {
                    let map = e.record.to_vec();
                    if record.replace_with_map(&map).is_ok() {
                        record.time = e.time;
                        record.set_metadata(&[0x80]);
                        return Verdict::Keep;
                    }
                }
                Verdict::Drop
            }
            None => Verdict::Replace,
        }
    }
}

impl Filter for MultilineFilter {
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let partial = matches!(self.inner.lock().mode, Mode::Partial(_));
        if partial {
            self.partial_mode(record, cx)
        } else {
            self.parser_mode(record, cx)
        }
    }

    fn emitter(&self) -> Option<EmitterSpec> {
        Some(EmitterSpec {
            name: self.name.clone(),
            mem_buf_limit: Some(self.mem_buf_limit),
            filesystem: self.filesystem,
            emitter: self.inner.emitter.clone(),
        })
    }
}
