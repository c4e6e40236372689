//! Joining lines in `tail`: `multiline.parser` (Fluent Bit's multiline engine, see
//! [`kb_parsers::multiline`]) and the older `Docker_Mode`.
//!
//! **`multiline.parser`** takes a comma list (and may be repeated) of built-in (`docker`,
//! `cri`, `go`, `python`, `java`, `ruby`) and `[MULTILINE_PARSER]` names. As in Fluent Bit:
//! the records are what the engine makes of the lines (a line no parser takes is
//! `{"log": line}`: the parser's `key_content` or `log`, not `Key`), `Parser` is not applied,
//! and `Path_Key`/`Offset_Key` are appended after the record's own keys. The offset is that of
//! the message's first line. Each file is a stream of its own; messages wait at most the
//! longest `flush_timeout` of the parsers (built-ins: 4 s) for their next line, and are
//! flushed when the file is done with (rotation, truncation, stop).
//!
//! **`Docker_Mode On`** (Fluent Bit's `tail_dockermode.c`): Docker's JSON lines whose `log`
//! does not end with a newline are joined with the next ones; the record is the last line's
//! JSON with `log` holding the joined (still JSON-escaped) text, then read with `Parser` like
//! any line. With `Docker_Mode_Parser`, complete lines are joined too until a line the parser
//! matches (on the raw JSON line) starts the next message. A line that is not Docker JSON
//! ends the pending message and is read as usual. A message waits `Docker_Mode_Flush` seconds
//! (default 4) for its next line. `multiline.parser` wins over `Docker_Mode`, as in Fluent Bit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kb_core::event::{EventTime, EventWriter};
use kb_parsers::multiline::{Flushed, MlParser, Multiline, Sink};

use super::config::NamedParser;

/// `multiline.parser`, resolved.
#[derive(Debug, Clone)]
pub struct MlConfig {
    pub parsers: Vec<Arc<MlParser>>,
    /// `multiline_buffer_limit`.
    pub buffer_limit: usize,
}

/// `Docker_Mode` settings.
#[derive(Debug, Clone)]
pub struct DockerModeConfig {
    /// `Docker_Mode_Flush`.
    pub flush: Duration,
    /// `Docker_Mode_Parser`: what a first line looks like.
    pub first_line: Option<NamedParser>,
}

/// Docker mode's message being joined in one file.
#[derive(Debug, Default)]
struct Docker {
    /// The `log` values so far, as written in the JSON (escapes kept).
    buf: Vec<u8>,
    /// The last line and the range of its `log` value.
    last: Vec<u8>,
    value: (usize, usize),
    complete: bool,
    since: Option<Instant>,
    at: u64,
}

/// The joining state of one followed file.
#[derive(Debug, Default)]
pub struct FileMl {
    engine: Option<Multiline>,
    docker: Docker,
}

/// The stream id of a file's lines in its engine.
const STREAM: u64 = 1;

impl FileMl {
    /// The state for a file of a tail with `ml` (`None`: no `multiline.parser`).
    pub fn new(ml: Option<&MlConfig>) -> Self {
        FileMl {
            engine: ml.map(|m| Multiline::new(&m.parsers, None, m.buffer_limit)),
            docker: Docker::default(),
        }
    }

    /// Whether a message is waiting for its next line.
    pub fn is_open(&self) -> bool {
        match &self.engine {
            Some(e) => e.oldest_pending().is_some(),
            None => !self.docker.last.is_empty(),
        }
    }

    /// Feed a line to the engine; `false` when there is no `multiline.parser`.
    pub fn engine_line(
        &mut self,
        time: EventTime,
        line: &[u8],
        at: u64,
        sink: &mut Sink<'_>,
    ) -> bool {
        let Some(e) = &mut self.engine else {
            return false;
        };
        if e.append_text(STREAM, time, line, at, sink) == kb_parsers::multiline::Status::Truncated {
            tracing::warn!(target: "input", "tail: multiline message truncated due to buffer limit");
        }
        true
    }

    /// Feed a line to Docker mode; `false` when it is not a Docker JSON line with a string
    /// `log` (the pending message was flushed, the line is to be read as usual). Joined
    /// lines come out through `emit(line, offset)`.
    pub fn docker_line(
        &mut self,
        cfg: &DockerModeConfig,
        line: &[u8],
        at: u64,
        now: EventTime,
        emit: &mut dyn FnMut(&[u8], u64),
    ) -> bool {
        let d = &mut self.docker;
        if !d.last.is_empty() && d.complete {
            if let Some(NamedParser(p)) = &cfg.first_line {
                let mut scratch = EventWriter::new();
                if p.parse_line(line, &mut scratch, now).is_ok() {
                    d.flush(emit);
                }
            }
        }
        let Some((vs, ve)) = docker_log_value(line) else {
            d.flush(emit);
            return false;
        };
        if d.last.is_empty() {
            d.at = at;
        }
        d.buf.extend_from_slice(&line[vs..ve]);
        d.last.clear();
        d.last.extend_from_slice(line);
        d.value = (vs, ve);
        d.since = Some(Instant::now());
        d.complete = escaped_ends_with_newline(&line[vs..ve]);
        if d.complete && cfg.first_line.is_none() {
            d.flush(emit);
        }
        true
    }

    /// Flush what waited too long (everything when `all`): engine messages after the
    /// parsers' flush timeout, a Docker mode message after `Docker_Mode_Flush`.
    pub fn flush(
        &mut self,
        all: bool,
        docker_flush: Option<Duration>,
        sink: &mut Sink<'_>,
        emit: &mut dyn FnMut(&[u8], u64),
    ) {
        if let Some(e) = &mut self.engine {
            if all {
                e.flush_all(sink);
            } else {
                let idle = e.flush_timeout();
                e.flush_idle(Instant::now(), idle, sink);
            }
            return;
        }
        let d = &mut self.docker;
        let expired = match (d.since, docker_flush) {
            (Some(t), Some(f)) => t.elapsed() >= f,
            _ => false,
        };
        if all || expired {
            d.flush(emit);
        }
    }
}

impl Docker {
    /// `flb_tail_dmode_flush`: the last line with `log` replaced by the joined values.
    fn flush(&mut self, emit: &mut dyn FnMut(&[u8], u64)) {
        if self.last.is_empty() {
            return;
        }
        let (vs, ve) = self.value;
        let mut line = Vec::with_capacity(self.last.len() + self.buf.len());
        line.extend_from_slice(&self.last[..vs]);
        line.extend_from_slice(&self.buf);
        line.extend_from_slice(&self.last[ve..]);
        self.buf.clear();
        self.last.clear();
        self.since = None;
        self.complete = false;
        emit(&line, self.at);
    }
}

/// Append `fl`'s event to `w` with the `Path_Key`/`Offset_Key` entries after its own.
pub fn append_ml_event(
    w: &mut EventWriter,
    fl: Flushed<'_>,
    path: Option<(&str, &str)>,
    offset_key: Option<&str>,
) {
    let Some(Ok(ev)) = kb_core::event::EventReader::new(fl.event).next() else {
        return;
    };
    let extra = usize::from(path.is_some()) + usize::from(offset_key.is_some());
    if extra == 0 {
        w.buf.extend_from_slice(fl.event);
        w.count += 1;
        return;
    }
    let mut c = kb_core::msgpack::Cursor::new(ev.record);
    let Ok(n) = c.read_map_len() else { return };
    kb_core::record::write_event_start(&mut w.buf, ev.time);
    w.buf.extend_from_slice(ev.metadata);
    kb_core::record::write_map_len(&mut w.buf, n + extra);
    w.buf.extend_from_slice(c.rest());
    if let Some((k, v)) = path {
        kb_core::record::write_str(&mut w.buf, k.as_bytes());
        kb_core::record::write_str(&mut w.buf, v.as_bytes());
    }
    if let Some(k) = offset_key {
        kb_core::record::write_str(&mut w.buf, k.as_bytes());
        let _ = rmp::encode::write_uint(&mut w.buf, fl.at);
    }
    w.count += 1;
}

/// The range of the raw (still escaped) value of the top-level `"log"` key of a JSON object,
/// when the line is one and that value is a string (what Fluent Bit's tokenizer finds).
pub fn docker_log_value(line: &[u8]) -> Option<(usize, usize)> {
    let mut s = Scan { b: line, i: 0 };
    s.ws();
    s.eat(b'{')?;
    let mut found = None;
    s.ws();
    if s.peek() == Some(b'}') {
        return None;
    }
    loop {
        s.ws();
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        let is_str = s.peek() == Some(b'"');
        let value = s.value()?;
        if found.is_none() && &line[key.0..key.1] == b"log" {
            // The first "log" decides, as in Fluent Bit.
            found = Some(is_str.then_some(value));
        }
        s.ws();
        match s.peek()? {
            b',' => s.i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    found.flatten()
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// A string: the range of its contents.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        Some((start, end))
    }

    /// Any value; the range of a string's contents, or of the value.
    fn value(&mut self) -> Option<(usize, usize)> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' | b'[' => {
                let start = self.i;
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some((start, self.i));
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                {
                    self.i += 1;
                }
                (self.i > start).then_some((start, self.i))
            }
        }
    }
}

/// Whether a JSON string's raw contents end, once unescaped, with a newline.
fn escaped_ends_with_newline(raw: &[u8]) -> bool {
    let mut last_nl = false;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'n' => {
                    last_nl = true;
                    i += 2;
                }
                b'u' => {
                    let hex = raw.get(i + 2..i + 6);
                    last_nl = hex.is_some_and(|h| h.eq_ignore_ascii_case(b"000a"));
                    i += 6;
                }
                _ => {
                    last_nl = false;
                    i += 2;
                }
            }
        } else {
            last_nl = raw[i] == b'\n';
            i += 1;
        }
    }
    last_nl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_value_of_docker_lines() {
        let line = br#"{"log":"a \"b\" c\n","stream":"stdout","time":"t"}"#;
        let (s, e) = docker_log_value(line).unwrap();
        assert_eq!(&line[s..e], br#"a \"b\" c\n"#);
        let line = br#"{"x":{"log":"nested"},"n":1,"log":"top"}"#;
        let (s, e) = docker_log_value(line).unwrap();
        assert_eq!(&line[s..e], b"top");
        assert!(docker_log_value(br#"{"log":5}"#).is_none());
        assert!(docker_log_value(b"plain text").is_none());
        assert!(docker_log_value(br#"{"log":"unterminated"#).is_none());
    }

    #[test]
    fn escaped_newlines() {
        assert!(escaped_ends_with_newline(br"abc\n"));
        assert!(escaped_ends_with_newline(br"abc\u000A"));
        assert!(escaped_ends_with_newline(b"abc\n"));
        assert!(!escaped_ends_with_newline(br"abc\\n"));
        assert!(!escaped_ends_with_newline(br"abc\n\t"));
        assert!(!escaped_ends_with_newline(b""));
    }
}
