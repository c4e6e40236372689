//! The running state of multiline parsers (Fluent Bit's `flb_ml` context): a list of parser
//! instances, each keeping per stream (a file, an input and tag pair) and per group (the
//! `key_group` value, e.g. `stdout`/`stderr`) the message being joined.
//!
//! A line or record goes first to the parser that took the last one of its stream (Fluent
//! Bit's LRU parser), then to the others in order. When no parser takes it, every message
//! pending in its stream is flushed and the line goes out alone (a record unchanged, a text
//! line as `{key_content or "log": line}`). Joined text lines are separated by `\n`; without
//! `key_content` (tail's raw lines) a flushed message always ends with `\n`, as in Fluent Bit.
//! A message keeps the first line's record (its content replaced by the joined text) and
//! time, and the metadata of all its records (each entry once); a message cut at the buffer
//! limit carries `multiline_truncated: true` in its metadata.
//!
//! Differences from Fluent Bit, deliberate:
//! - Pending messages are flushed when no line came for the flush timeout
//!   ([`Multiline::flush_idle`]); Fluent Bit flushes everything pending every `flush_ms`,
//!   whatever its age, which can cut a message still being written in two.
//! - After a rule whose next state is `start_state` completes a message (Python's exception
//!   line), Fluent Bit keeps that last record as the context of an empty message and emits it a
//!   second time at the next flush; here it is emitted once.
//! - The buffer limit applies to every parser type (Fluent Bit does not limit `endswith` and
//!   `equal` messages), and a record's metadata stays with the message it belongs to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kb_core::event::EventTime;
use kb_core::msgpack::{Cursor, Head};
use kb_core::record::{write_event_start, write_map_len, write_str};

use super::{MlParser, MlType, BUFFER_LIMIT};

/// Fluent Bit's `FLB_ML_MAX_GROUPS`: groups per stream (more values share the default group).
const MAX_GROUPS: usize = 6;

/// What an append did beyond joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The message reached the buffer limit and was cut.
    Truncated,
}

/// A joined message handed out.
#[derive(Debug, Clone, Copy)]
pub struct Flushed<'a> {
    /// The stream it belongs to.
    pub stream: u64,
    /// The position given with its first line (tail: the line's offset in the file).
    pub at: u64,
    /// One whole event: `[[time, metadata], record]`.
    pub event: &'a [u8],
}

/// Where flushed messages go.
pub type Sink<'a> = dyn FnMut(Flushed<'_>) + 'a;

#[derive(Clone, Copy)]
struct Line<'a> {
    at: u64,
    input: Input<'a>,
}

#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a [u8]),
    Record { metadata: &'a [u8], map: &'a [u8] },
}

#[derive(Debug)]
struct Group {
    name: Option<Vec<u8>>,
    buf: Vec<u8>,
    /// The rule the last line matched (regex parsers).
    rule: Option<usize>,
    /// The first line's record.
    ctx: Option<Vec<u8>>,
    time: EventTime,
    metadata: Vec<(Vec<u8>, Vec<u8>)>,
    truncated: bool,
    last_append: Instant,
    /// The position of the message's first line.
    at: u64,
}

impl Group {
    fn new(name: Option<Vec<u8>>) -> Self {
        Group {
            name,
            buf: Vec::new(),
            rule: None,
            ctx: None,
            time: EventTime::default(),
            metadata: Vec::new(),
            truncated: false,
            last_append: Instant::now(),
            at: 0,
        }
    }

    fn is_pending(&self) -> bool {
        !self.buf.is_empty() || self.ctx.is_some()
    }

    /// `flb_ml_register_context`: the time always, the record only as the first one.
    fn register(&mut self, time: EventTime, map: Option<&[u8]>) {
        self.time = time;
        if let (None, Some(m)) = (&self.ctx, map) {
            self.ctx = Some(m.to_vec());
        }
    }

    /// `flb_ml_group_cat`: append within `limit`.
    fn cat(&mut self, data: &[u8], limit: usize) -> Status {
        if limit > 0 {
            if self.buf.len() >= limit {
                self.truncated = true;
                return Status::Truncated;
            }
            let avail = limit - self.buf.len();
            if data.len() > avail {
                self.buf.extend_from_slice(&data[..avail]);
                self.truncated = true;
                return Status::Truncated;
            }
        }
        self.buf.extend_from_slice(data);
        Status::Ok
    }

    fn add_metadata(&mut self, md: &[u8]) {
        let mut c = Cursor::new(md);
        let Ok(n) = c.read_map_len() else { return };
        for _ in 0..n {
            let (Ok(k), Ok(v)) = (c.skip_value(), c.skip_value()) else {
                return;
            };
            if !self.metadata.iter().any(|(a, b)| a == k && b == v) {
                self.metadata.push((k.to_vec(), v.to_vec()));
            }
        }
    }
}

#[derive(Debug)]
struct Instance {
    parser: Arc<MlParser>,
    key_content: Option<String>,
    key_pattern: Option<String>,
    key_group: Option<String>,
    last_stream: Option<u64>,
    streams: HashMap<u64, Vec<Group>>,
    /// Streams in creation order (flushes go in this order).
    order: Vec<u64>,
}

impl Instance {
    fn groups(&mut self, stream: u64) -> &mut Vec<Group> {
        if !self.streams.contains_key(&stream) {
            self.order.push(stream);
        }
        self.streams
            .entry(stream)
            .or_insert_with(|| vec![Group::new(None)])
    }

    /// The group of `name` (created when new; the default one without `key_group`).
    fn group(&mut self, stream: u64, name: Option<&[u8]>) -> usize {
        let keyed = self.parser.key_group.is_some();
        let groups = self.groups(stream);
        let Some(name) = name.filter(|_| keyed) else {
            return 0;
        };
        if let Some(i) = groups.iter().position(|g| g.name.as_deref() == Some(name)) {
            return i;
        }
        if groups.len() >= MAX_GROUPS {
            return 0;
        }
        groups.push(Group::new(Some(name.to_vec())));
        groups.len() - 1
    }
}

/// Multiline parsers at work.
#[derive(Debug)]
pub struct Multiline {
    instances: Vec<Instance>,
    lru: Option<usize>,
    buffer_limit: usize,
    flush_ms: u64,
    scratch: Vec<u8>,
    event: Vec<u8>,
}

/// The string value of the first entry of `map` whose key is the string `key` and whose value
/// is a string (Fluent Bit's `get_key_id`).
fn str_field<'m>(map: &'m [u8], key: Option<&str>) -> Option<&'m [u8]> {
    let key = key?.as_bytes();
    let mut c = Cursor::new(map);
    let n = c.read_map_len().ok()?;
    for _ in 0..n {
        let k = c.head().ok()?;
        let v = c.skip_value().ok()?;
        if let Head::Str(k) = k {
            if k == key {
                if let Ok(Head::Str(v)) = Cursor::new(v).head() {
                    return Some(v);
                }
            }
        }
    }
    None
}

impl Multiline {
    /// Run `parsers` in this order; `key_content` overrides theirs (the filter's
    /// `multiline.key_content`); joined messages are cut at `buffer_limit` bytes (0: no limit).
    pub fn new(parsers: &[Arc<MlParser>], key_content: Option<&str>, buffer_limit: usize) -> Self {
        let instances = parsers
            .iter()
            .map(|p| Instance {
                parser: p.clone(),
                key_content: key_content
                    .map(str::to_string)
                    .or_else(|| p.key_content.clone()),
                key_pattern: p.key_pattern.clone(),
                key_group: p.key_group.clone(),
                last_stream: None,
                streams: HashMap::new(),
                order: Vec::new(),
            })
            .collect();
        Multiline {
            instances,
            lru: None,
            buffer_limit,
            flush_ms: parsers.iter().map(|p| p.flush_ms).max().unwrap_or(0),
            scratch: Vec::new(),
            event: Vec::new(),
        }
    }

    /// With Fluent Bit's default buffer limit.
    pub fn with_parsers(parsers: &[Arc<MlParser>]) -> Self {
        Self::new(parsers, None, BUFFER_LIMIT)
    }

    /// The longest flush timeout of the parsers (what tail waits for).
    pub fn flush_timeout(&self) -> Duration {
        Duration::from_millis(self.flush_ms)
    }

    /// Feed one text line (without its line ending) of `stream`, read at `time`; `at` is
    /// handed back with the message it starts.
    pub fn append_text(
        &mut self,
        stream: u64,
        time: EventTime,
        line: &[u8],
        at: u64,
        sink: &mut Sink<'_>,
    ) -> Status {
        let line = Line {
            at,
            input: Input::Text(line),
        };
        self.append(stream, time, line, sink)
    }

    /// Feed one record (`map`: its msgpack map, `metadata`: its metadata map) of `stream`.
    pub fn append_record(
        &mut self,
        stream: u64,
        time: EventTime,
        metadata: &[u8],
        map: &[u8],
        sink: &mut Sink<'_>,
    ) -> Status {
        let line = Line {
            at: 0,
            input: Input::Record { metadata, map },
        };
        self.append(stream, time, line, sink)
    }

    fn append(
        &mut self,
        stream: u64,
        time: EventTime,
        line: Line<'_>,
        sink: &mut Sink<'_>,
    ) -> Status {
        if self.instances.is_empty() {
            return Status::Ok;
        }
        if let Some(l) = self.lru {
            if self.instances[l].last_stream == Some(stream) {
                if let Some(st) = self.try_parser(l, stream, time, line, sink) {
                    return st;
                }
            }
        }
        for i in 0..self.instances.len() {
            if Some(i) == self.lru && self.instances[i].last_stream == Some(stream) {
                continue;
            }
            if let Some(st) = self.try_parser(i, stream, time, line, sink) {
                self.lru = Some(i);
                self.instances[i].last_stream = Some(stream);
                return st;
            }
        }
        // No parser takes it: it breaks every sequence of its stream and goes out alone.
        for i in 0..self.instances.len() {
            self.flush_instance(i, Some(stream), sink);
        }
        let limit = self.buffer_limit;
        let g = self.instances[0].group(stream, None);
        let group = &mut self.instances[0].groups(stream)[g];
        group.last_append = Instant::now();
        group.at = line.at;
        let mut status = Status::Ok;
        match line.input {
            Input::Text(line) => {
                group.register(time, None);
                status = group.cat(line, limit);
            }
            Input::Record { metadata, map } => {
                group.register(time, Some(map));
                group.add_metadata(metadata);
            }
        }
        self.flush_group(0, stream, g, sink);
        status
    }

    /// `ml_append_try_parser` + `process_append`: `None` when the parser does not take it.
    fn try_parser(
        &mut self,
        i: usize,
        stream: u64,
        time: EventTime,
        line: Line<'_>,
        sink: &mut Sink<'_>,
    ) -> Option<Status> {
        let at = line.at;
        let input = line.input;
        let parser = self.instances[i].parser.clone();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let now = if time == EventTime::default() {
            EventTime::now()
        } else {
            time
        };
        // What the rules see: a parsed record, the record itself, or the raw text.
        let (map, metadata, text, time) = match (input, &parser.parser) {
            (Input::Text(line), Some(sub)) => {
                let t = sub.parse_map(line, &mut scratch, now).ok()?;
                (Some(&scratch[..]), None, None, t.unwrap_or(now))
            }
            (Input::Text(line), None) => (None, None, Some(line), now),
            (Input::Record { metadata, map }, Some(sub)) => {
                let key = self.instances[i].key_content.as_deref();
                let value = str_field(map, key)?;
                let t = sub.parse_map(value, &mut scratch, now).ok()?;
                (Some(&scratch[..]), Some(metadata), None, t.unwrap_or(now))
            }
            (Input::Record { metadata, map }, None) => (Some(map), Some(metadata), None, now),
        };
        let r = match map {
            None => self.package(
                i, stream, at, None, None, text, time, None, None, None, sink,
            ),
            Some(m) => {
                let inst = &self.instances[i];
                match str_field(m, inst.key_content.as_deref()) {
                    None => None,
                    Some(content) => {
                        let pattern = str_field(m, inst.key_pattern.as_deref());
                        let group = str_field(m, inst.key_group.as_deref());
                        self.package(
                            i,
                            stream,
                            at,
                            metadata,
                            Some(m),
                            None,
                            time,
                            Some(content),
                            pattern,
                            group,
                            sink,
                        )
                    }
                }
            }
        };
        self.scratch = scratch;
        r
    }

    /// `package_content`: join the line into its group; `None` when the parser's rules do not
    /// take it.
    #[allow(clippy::too_many_arguments)]
    fn package(
        &mut self,
        i: usize,
        stream: u64,
        at: u64,
        metadata: Option<&[u8]>,
        full_map: Option<&[u8]>,
        text: Option<&[u8]>,
        time: EventTime,
        content: Option<&[u8]>,
        pattern: Option<&[u8]>,
        group_name: Option<&[u8]>,
        sink: &mut Sink<'_>,
    ) -> Option<Status> {
        let limit = self.buffer_limit;
        let g = self.instances[i].group(stream, group_name);
        let parser = self.instances[i].parser.clone();
        let data = pattern.or(content).or(text).unwrap_or(b"");
        let appended = content.or(text).unwrap_or(b"");
        match parser.kind {
            MlType::Regex => {
                let data = content.or(text).unwrap_or(b"");
                let status = self.rule_process(i, stream, g, at, full_map, data, time, sink)?;
                let group = &mut self.instances[i].groups(stream)[g];
                group.last_append = Instant::now();
                if status == Status::Ok && group.ctx.is_none() && !group.buf.is_empty() {
                    group.register(time, full_map);
                }
                if status == Status::Ok {
                    if let Some(md) = metadata {
                        group.add_metadata(md);
                    }
                }
                Some(status)
            }
            MlType::EndsWith | MlType::Equal => {
                let hit = if parser.kind == MlType::EndsWith {
                    if data.len() < parser.match_str.len() {
                        return None;
                    }
                    data.ends_with(&parser.match_str)
                } else {
                    data == &parser.match_str[..]
                };
                let end = hit != parser.negate;
                let no_key = self.instances[i].key_content.is_none();
                let group = &mut self.instances[i].groups(stream)[g];
                group.last_append = Instant::now();
                if group.buf.is_empty() && group.ctx.is_none() {
                    group.at = at;
                }
                if group.ctx.is_none() {
                    group.register(time, full_map);
                }
                if no_key && !group.buf.is_empty() && !group.buf.ends_with(b"\n") {
                    group.buf.push(b'\n');
                }
                let status = group.cat(appended, limit);
                if let Some(md) = metadata {
                    group.add_metadata(md);
                }
                if end {
                    self.flush_group(i, stream, g, sink);
                }
                Some(status)
            }
        }
    }

    /// `flb_ml_rule_process`: continue the group's state or start a message.
    #[allow(clippy::too_many_arguments)]
    fn rule_process(
        &mut self,
        i: usize,
        stream: u64,
        g: usize,
        at: u64,
        full_map: Option<&[u8]>,
        data: &[u8],
        time: EventTime,
        sink: &mut Sink<'_>,
    ) -> Option<Status> {
        let limit = self.buffer_limit;
        let parser = self.instances[i].parser.clone();
        let rules = &parser.rules;
        let mut matched = None;
        let current = self.instances[i].groups(stream)[g].rule;
        if let Some(cur) = current {
            for &st in &rules[cur].next {
                if rules[st].start_state || !rules[st].regex.is_match(data) {
                    continue;
                }
                let group = &mut self.instances[i].groups(stream)[g];
                if group.buf.is_empty() {
                    group.at = at;
                }
                if !group.buf.is_empty() && !group.buf.ends_with(b"\n") {
                    group.buf.push(b'\n');
                }
                if data.is_empty() {
                    group.buf.push(b'\n');
                } else if group.cat(data, limit) == Status::Truncated {
                    self.flush_group(i, stream, g, sink);
                    self.instances[i].groups(stream)[g].rule = None;
                    return Some(Status::Truncated);
                }
                matched = Some(st);
                break;
            }
        }
        if matched.is_none() {
            let start = rules
                .iter()
                .position(|r| r.start_state && r.regex.is_match(data));
            if let Some(st) = start {
                if !self.instances[i].groups(stream)[g].buf.is_empty() {
                    self.flush_group(i, stream, g, sink);
                }
                let group = &mut self.instances[i].groups(stream)[g];
                group.rule = Some(st);
                group.at = at;
                if group.cat(data, limit) == Status::Truncated {
                    return Some(Status::Truncated);
                }
                group.register(time, full_map);
                matched = Some(st);
            }
        }
        let r = matched?;
        let group = &mut self.instances[i].groups(stream)[g];
        group.rule = Some(r);
        // A rule that may go back to a start state ends the message.
        if rules[r].next.iter().any(|&n| rules[n].start_state) && !group.buf.is_empty() {
            self.flush_group(i, stream, g, sink);
        }
        Some(Status::Ok)
    }

    /// `flb_ml_flush_stream_group`: hand out the group's message, if any.
    fn flush_group(&mut self, i: usize, stream: u64, g: usize, sink: &mut Sink<'_>) {
        let key_content = self.instances[i].key_content.clone();
        let Some(group) = self.instances[i]
            .streams
            .get_mut(&stream)
            .and_then(|gs| gs.get_mut(g))
        else {
            return;
        };
        if key_content.is_none() && !group.buf.is_empty() && !group.buf.ends_with(b"\n") {
            group.buf.push(b'\n');
        }
        let time = if group.time == EventTime::default() {
            EventTime::now()
        } else {
            group.time
        };
        let ev = &mut self.event;
        ev.clear();
        write_event_start(ev, time);
        let md_len = group.metadata.len() + usize::from(group.truncated);
        write_map_len(ev, md_len);
        for (k, v) in &group.metadata {
            ev.extend_from_slice(k);
            ev.extend_from_slice(v);
        }
        if group.truncated {
            write_str(ev, b"multiline_truncated");
            ev.push(0xc3);
        }
        let body = ev.len();
        match group.ctx.take() {
            Some(ctx) if !group.buf.is_empty() => {
                // The first line's record with its content replaced by the joined text.
                let mut c = Cursor::new(&ctx);
                let n = c.read_map_len().unwrap_or(0);
                write_map_len(ev, n);
                for _ in 0..n {
                    let (Ok(k), Ok(v)) = (c.skip_value(), c.skip_value()) else {
                        break;
                    };
                    ev.extend_from_slice(k);
                    let is_content = matches!(Cursor::new(k).head(), Ok(Head::Str(s)) if Some(s) == key_content.as_deref().map(str::as_bytes));
                    if is_content {
                        write_str(ev, &group.buf);
                    } else {
                        ev.extend_from_slice(v);
                    }
                }
            }
            Some(ctx) => ev.extend_from_slice(&ctx),
            None if !group.buf.is_empty() => {
                write_map_len(ev, 1);
                write_str(ev, key_content.as_deref().unwrap_or("log").as_bytes());
                write_str(ev, &group.buf);
            }
            None => {}
        }
        let emitted = ev.len() > body;
        group.buf.clear();
        group.truncated = false;
        group.metadata.clear();
        if emitted {
            sink(Flushed {
                stream,
                at: group.at,
                event: ev,
            });
        }
    }

    fn flush_instance(&mut self, i: usize, stream: Option<u64>, sink: &mut Sink<'_>) {
        let streams: Vec<u64> = match stream {
            Some(s) => vec![s],
            None => self.instances[i].order.clone(),
        };
        for s in streams {
            let n = self.instances[i].streams.get(&s).map_or(0, Vec::len);
            for g in 0..n {
                self.flush_group(i, s, g, sink);
            }
        }
    }

    /// Flush every pending message (shutdown, a flush without timer).
    pub fn flush_all(&mut self, sink: &mut Sink<'_>) {
        for i in 0..self.instances.len() {
            self.flush_instance(i, None, sink);
        }
    }

    /// Flush the messages of `stream` and forget it (a file no longer followed).
    pub fn close_stream(&mut self, stream: u64, sink: &mut Sink<'_>) {
        for i in 0..self.instances.len() {
            self.flush_instance(i, Some(stream), sink);
            let inst = &mut self.instances[i];
            inst.streams.remove(&stream);
            inst.order.retain(|s| *s != stream);
            if inst.last_stream == Some(stream) {
                inst.last_stream = None;
            }
        }
    }

    /// Flush the messages that got no line for `idle` (their flush timeout).
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, sink: &mut Sink<'_>) {
        for i in 0..self.instances.len() {
            for s in self.instances[i].order.clone() {
                let n = self.instances[i].streams.get(&s).map_or(0, Vec::len);
                for g in 0..n {
                    let gr = &self.instances[i].streams[&s][g];
                    if gr.is_pending() && now.saturating_duration_since(gr.last_append) >= idle {
                        self.flush_group(i, s, g, sink);
                    }
                }
            }
        }
    }

    /// When the oldest pending message got its last line, if any message is pending.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.instances
            .iter()
            .flat_map(|i| i.streams.values().flatten())
            .filter(|g| g.is_pending())
            .map(|g| g.last_append)
            .min()
    }

    /// Whether some message of `stream` is pending.
    pub fn is_pending(&self, stream: u64) -> bool {
        self.instances.iter().any(|i| {
            i.streams
                .get(&stream)
                .is_some_and(|gs| gs.iter().any(Group::is_pending))
        })
    }
}
