//! `tcp`: records over plain TCP connections (Fluent Bit's `in_tcp`).
//!
//! With `format json` (the default) each connection carries a stream of JSON values: every
//! JSON object is a record (an array contributes its objects), whether or not the values are
//! separated by newlines or whitespace. Invalid JSON, or a value that is neither an object nor
//! an array of objects, closes that connection with a warning naming the reason; what came
//! before it on the connection is kept.
//!
//! With `format none` the stream is split on `separator` (default `\n`; the escapes `\n`,
//! `\r`, `\t`, `\0` and `\\` are decoded) and each non-empty piece becomes `{"log": piece}`, or
//! is parsed with `parser` when set (a piece the parser does not match stays `{"log": piece}`).
//! At the end of a connection an unterminated last piece is a record too.
//!
//! Each read takes at most `chunk_size` bytes; a JSON value or a piece longer than
//! `buffer_size` closes its connection with a warning (at most one a minute, counting the
//! others). `source_address_key` adds the peer address (`tcp://ip:port`) to every record.
//! While the input is paused (`Mem_Buf_Limit`), no socket is read and none accepted.
//!
//! Differences from Fluent Bit: sizes are ordinary sizes (`32k`), where Fluent Bit reads a
//! bare number as kilobytes; `parser` is a kinesis-bit addition (only with `format none`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, LineParser, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::util::{self, Throttle};

/// Default `buffer_size` and `chunk_size`.
pub const DEFAULT_SIZE: usize = 32_000;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "listen",
        KeyType::Str,
        Some("0.0.0.0"),
        "address to listen on",
    ),
    KeySpec::new("port", KeyType::Int, Some("5170"), "TCP port to listen on"),
    KeySpec::new(
        "buffer_size",
        KeyType::Size,
        Some("32k"),
        "largest JSON value or piece accepted; larger ones close the connection",
    ),
    KeySpec::new(
        "chunk_size",
        KeyType::Size,
        Some("32k"),
        "bytes read from a connection at a time",
    ),
    KeySpec::new(
        "format",
        KeyType::Str,
        Some("json"),
        "payload format: json (a stream of JSON objects) or none (pieces split on separator)",
    ),
    KeySpec::new(
        "separator",
        KeyType::Str,
        None,
        "with format none, the string ending each record (default \\n; escapes decoded)",
    ),
    KeySpec::new(
        "source_address_key",
        KeyType::Str,
        None,
        "add the peer address (tcp://ip:port) to each record under this key",
    ),
    KeySpec::new(
        "parser",
        KeyType::Str,
        None,
        "with format none, name of a [PARSER] applied to each piece",
    ),
];

/// The `tcp` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "tcp",
        description: "TCP",
        keys: KEYS,
    },
    build,
};

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(TcpInput::from_props(props, svc)?))
}

/// How a connection's bytes become records.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    Json,
    None(Vec<u8>),
}

/// A configured `tcp` input (nothing is bound before it runs).
pub struct TcpInput {
    listen: String,
    port: u16,
    buffer_size: usize,
    chunk_size: usize,
    format: Format,
    source_address_key: Option<String>,
    parser: Option<Arc<dyn LineParser>>,
}

/// Decode `\n`, `\r`, `\t`, `\0` and `\\` in a separator; other characters stay as they are.
pub fn decode_separator(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(o) => {
                out.push(b'\\');
                let mut b = [0u8; 4];
                out.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

impl TcpInput {
    /// Validate the properties of a `tcp` section.
    pub fn from_props(props: &Props, svc: &ServiceContext) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let port = util::port(props, 5170, &mut errors);
        let listen = props.str("listen").unwrap_or("0.0.0.0").trim().to_string();
        let chunk_size = util::size(props, "chunk_size", DEFAULT_SIZE, &mut errors);
        let buffer_size = util::size(props, "buffer_size", DEFAULT_SIZE, &mut errors);
        if chunk_size == 0 {
            errors.push(props.error("chunk_size", "'chunk_size' must be > 0"));
        }
        if buffer_size == 0 {
            errors.push(props.error("buffer_size", "'buffer_size' must be > 0"));
        }
        let format = match props
            .str("format")
            .unwrap_or("json")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "json" => Format::Json,
            "none" => {
                let sep = decode_separator(props.str("separator").unwrap_or("\\n"));
                if sep.is_empty() {
                    errors.push(props.error("separator", "'separator' must not be empty"));
                }
                Format::None(sep)
            }
            other => {
                errors.push(props.error(
                    "format",
                    format!("'format' must be 'json' or 'none', got '{other}'"),
                ));
                Format::Json
            }
        };
        let parser = match props.str("parser") {
            None => None,
            Some(name) => match svc.parsers.parser(name) {
                Some(p) => Some(p),
                None => {
                    errors.push(props.error(
                        "parser",
                        format!(
                            "unknown parser '{name}': define it in a parsers file \
                             (-R / Parsers_File)"
                        ),
                    ));
                    None
                }
            },
        };
        if props.str("parser").is_some() && format == Format::Json {
            errors.push(props.error("parser", "'parser' needs 'format none'"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(TcpInput {
            listen,
            port,
            buffer_size,
            chunk_size,
            format,
            source_address_key: props
                .str("source_address_key")
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            parser,
        })
    }
}

/// What every connection of one input shares.
struct Conns {
    ctx: InputContext,
    buffer_size: usize,
    chunk_size: usize,
    format: Format,
    source_address_key: Option<String>,
    parser: Option<Arc<dyn LineParser>>,
    warn: Mutex<Throttle>,
}

impl TcpInput {
    /// Bind the configured address (the input does this when it starts).
    pub async fn listen(&self) -> Result<TcpListener, PluginError> {
        crate::util::bind_tcp(&self.listen, self.port).await
    }
}

#[async_trait]
impl Input for TcpInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let listener = self.listen().await?;
        let TcpInput {
            buffer_size,
            chunk_size,
            format,
            source_address_key,
            parser,
            ..
        } = *self;
        let conns = Arc::new(Conns {
            ctx: ctx.clone(),
            buffer_size,
            chunk_size,
            format,
            source_address_key,
            parser,
            warn: Mutex::new(Throttle::per_minute()),
        });
        let mut tasks = JoinSet::new();
        loop {
            ctx.ready().await;
            let accepted = tokio::select! {
                _ = ctx.stopped() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    tasks.spawn(connection(conns.clone(), s, format!("tcp://{peer}")));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::select! {
                        _ = ctx.stopped() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn connection(conns: Arc<Conns>, s: TcpStream, peer: String) {
    tracing::debug!("new connection from {peer}");
    let ctx = conns.ctx.clone();
    tokio::select! {
        _ = ctx.stopped() => {}
        r = conns.serve(s, &peer) => if let Err(reason) = r {
            let allowed = conns.warn.lock().unwrap_or_else(|e| e.into_inner()).allow();
            if let Some(n) = allowed {
                tracing::warn!(
                    "closing connection from {peer}: {reason}{}",
                    util::suppressed_note(n)
                );
            }
        }
    }
}

impl Conns {
    /// Serve one connection until it ends; `Err` carries why it was closed.
    async fn serve(&self, mut s: TcpStream, peer: &str) -> Result<(), String> {
        let mut decoder = Decoder::new(self.format.clone(), self.buffer_size);
        decoder.parser = self.parser.clone();
        let mut out = Vec::new();
        loop {
            // Backpressure: a paused input reads none of its sockets.
            self.ctx.ready().await;
            if self.ctx.is_stopping() {
                return Ok(());
            }
            let want = self.chunk_size.max(1);
            decoder.pending.reserve(want);
            let n = (&mut s)
                .take(want as u64)
                .read_buf(&mut decoder.pending)
                .await
                .map_err(|e| format!("connection error: {e}"));
            let eof = matches!(n, Ok(0));
            let result = match n {
                Ok(0) => decoder.finish(),
                Ok(_) => decoder.feed(),
                Err(e) => Err(e),
            };
            // What came before an error is kept.
            self.deliver(&mut decoder.writer, peer, &mut out);
            result?;
            if eof {
                return Ok(());
            }
        }
    }

    fn deliver(&self, w: &mut EventWriter, peer: &str, out: &mut Vec<u8>) {
        if w.count == 0 {
            return;
        }
        match &self.source_address_key {
            Some(key) => {
                out.clear();
                add_key(&w.buf, key, peer, out);
                self.ctx.append(out, w.count);
            }
            None => self.ctx.append(&w.buf, w.count),
        }
        w.clear();
    }
}

/// Copy the events of `events` to `out` with `key: value` added at the end of each record.
fn add_key(events: &[u8], key: &str, value: &str, out: &mut Vec<u8>) {
    for e in EventReader::new(events).flatten() {
        let header = e
            .raw
            .get(..e.raw.len() - e.record.len())
            .unwrap_or_default();
        let mut rec = e.record;
        let Ok(n) = rmp::decode::read_map_len(&mut rec) else {
            out.extend_from_slice(e.raw);
            continue;
        };
        out.extend_from_slice(header);
        let _ = rmp::encode::write_map_len(out, n + 1);
        out.extend_from_slice(rec);
        let _ = rmp::encode::write_str(out, key);
        let _ = rmp::encode::write_str(out, value);
    }
}

/// Turns one connection's bytes into events.
struct Decoder {
    format: Format,
    max: usize,
    /// Bytes read and not yet decoded.
    pending: Vec<u8>,
    writer: EventWriter,
    parser: Option<Arc<dyn LineParser>>,
}

impl Decoder {
    fn new(format: Format, max: usize) -> Self {
        Decoder {
            format,
            max,
            pending: Vec::new(),
            writer: EventWriter::new(),
            parser: None,
        }
    }

    /// Decode what is complete in `pending`.
    fn feed(&mut self) -> Result<(), String> {
        match self.format.clone() {
            Format::Json => self.feed_json(),
            Format::None(sep) => self.feed_pieces(&sep),
        }
    }

    /// The connection ended: an unfinished value is an error, an unterminated piece a record.
    fn finish(&mut self) -> Result<(), String> {
        self.feed()?;
        match self.format {
            Format::Json => {
                if self.pending.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(format!(
                        "connection closed in the middle of a JSON value ({} bytes dropped)",
                        self.pending.len()
                    ));
                }
            }
            Format::None(_) => {
                let piece = std::mem::take(&mut self.pending);
                self.piece(&piece);
            }
        }
        Ok(())
    }

    fn feed_json(&mut self) -> Result<(), String> {
        let mut stream =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<serde_json::Value>();
        let mut result = Ok(());
        let now = EventTime::now();
        for v in stream.by_ref() {
            match v {
                Ok(serde_json::Value::Object(m)) => self.writer.write_json_record(now, &m),
                Ok(serde_json::Value::Array(a)) => {
                    if !a.iter().all(serde_json::Value::is_object) {
                        result = Err("invalid record: a JSON array of non-objects".to_string());
                        break;
                    }
                    for m in a.iter().filter_map(serde_json::Value::as_object) {
                        self.writer.write_json_record(now, m);
                    }
                }
                Ok(other) => {
                    let kind = match other {
                        serde_json::Value::String(_) => "a string",
                        serde_json::Value::Number(_) => "a number",
                        serde_json::Value::Bool(_) => "a boolean",
                        _ => "null",
                    };
                    result = Err(format!("invalid record: {kind}, not a JSON object"));
                    break;
                }
                Err(e) if e.is_eof() => break,
                Err(e) => {
                    result = Err(format!("invalid JSON: {e}"));
                    break;
                }
            }
        }
        let used = stream.byte_offset();
        self.pending.drain(..used.min(self.pending.len()));
        result?;
        if self.pending.len() > self.max {
            return Err(format!(
                "JSON value exceeds buffer_size ({} bytes)",
                self.max
            ));
        }
        Ok(())
    }

    fn feed_pieces(&mut self, sep: &[u8]) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let mut start = 0;
        while let Some(pos) = memchr::memmem::find(pending.get(start..).unwrap_or_default(), sep) {
            let piece = pending.get(start..start + pos).unwrap_or_default();
            start += pos + sep.len();
            if piece.len() > self.max {
                return Err(format!("record exceeds buffer_size ({} bytes)", self.max));
            }
            self.piece(piece);
        }
        self.pending = pending;
        self.pending.drain(..start);
        if self.pending.len() > self.max {
            return Err(format!(
                "{} bytes without separator exceed buffer_size ({} bytes)",
                self.pending.len(),
                self.max
            ));
        }
        Ok(())
    }

    /// One piece of `format none`.
    fn piece(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        let now = EventTime::now();
        if let Some(p) = &self.parser {
            if p.parse_line(piece, &mut self.writer, now).is_ok() {
                return;
            }
        }
        self.writer.begin(now);
        let _ = rmp::encode::write_map_len(&mut self.writer.buf, 1);
        let _ = rmp::encode::write_str(&mut self.writer.buf, "log");
        let _ = rmp::encode::write_str(&mut self.writer.buf, &String::from_utf8_lossy(piece));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(w: &EventWriter) -> Vec<String> {
        EventReader::new(&w.buf)
            .map(|e| {
                let v = rmpv::decode::read_value(&mut &e.unwrap().record[..]).unwrap();
                v.to_string()
            })
            .collect()
    }

    #[test]
    fn separators_are_decoded() {
        assert_eq!(decode_separator("\\r\\n"), b"\r\n");
        assert_eq!(decode_separator("||"), b"||");
        assert_eq!(decode_separator("a\\x\\"), b"a\\x\\");
    }

    #[test]
    fn json_stream_across_feeds() {
        let mut d = Decoder::new(Format::Json, 100);
        d.pending.extend_from_slice(b"{\"a\":1}{\"b\"");
        d.feed().unwrap();
        d.pending.extend_from_slice(b":[1]} [{\"c\":null}]\n");
        d.feed().unwrap();
        assert_eq!(
            records(&d.writer),
            [r#"{"a": 1}"#, r#"{"b": [1]}"#, r#"{"c": nil}"#]
        );
        d.pending.extend_from_slice(b"{\"d\":2} 5");
        assert!(d.feed().unwrap_err().contains("a number"));
        assert_eq!(d.writer.count, 4);
        let mut d = Decoder::new(Format::Json, 5);
        d.pending.extend_from_slice(b"{\"long\":");
        assert!(d.feed().unwrap_err().contains("buffer_size"));
    }

    #[test]
    fn pieces_split_on_separator() {
        let mut d = Decoder::new(Format::None(b"\r\n".to_vec()), 4);
        d.pending.extend_from_slice(b"ab\r\n\r\ncd\r");
        d.feed().unwrap();
        d.pending.extend_from_slice(b"\nef");
        d.finish().unwrap();
        assert_eq!(
            records(&d.writer),
            [r#"{"log": "ab"}"#, r#"{"log": "cd"}"#, r#"{"log": "ef"}"#]
        );
        d.pending.extend_from_slice(b"12345");
        assert!(d.feed().is_err());
    }

    #[test]
    fn key_added_to_each_record() {
        let mut w = EventWriter::new();
        let m = serde_json::json!({"a": 1});
        w.write_json_record(EventTime::new(1, 2), m.as_object().unwrap());
        w.write_json_record(EventTime::new(3, 4), m.as_object().unwrap());
        let mut out = Vec::new();
        add_key(&w.buf, "src", "tcp://x:1", &mut out);
        let got: Vec<_> = EventReader::new(&out).map(|e| e.unwrap().time).collect();
        assert_eq!(got, [EventTime::new(1, 2), EventTime::new(3, 4)]);
        let w2 = EventWriter { buf: out, count: 2 };
        assert_eq!(records(&w2), [r#"{"a": 1, "src": "tcp://x:1"}"#; 2]);
    }
}
