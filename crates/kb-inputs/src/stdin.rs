//! `stdin`: one record per line of the standard input (Fluent Bit's `in_stdin`).
//!
//! A line that is a JSON object becomes that record (keys in their order); any other line
//! (plain text, JSON arrays and scalars, invalid JSON) becomes `{"log": "<line>"}`, invalid
//! UTF-8 replaced by U+FFFD. Lines end at `\n`, a trailing `\r` is removed and empty lines are
//! skipped. A line longer than `buffer_size` is dropped with a warning (at most one a minute,
//! with the number dropped). At end of input the last line (even without `\n`) is delivered and
//! the agent is asked to exit, as Fluent Bit does. Standard input is read on a detached thread
//! ([`BlockingReader`]) so that a read that never returns cannot hold up shutdown.
//!
//! Differences from Fluent Bit, whose stdin input is a JSON stream parser without a parser
//! set: Fluent Bit skips whatever is not JSON and reads `[time, {record}]` arrays as events
//! with their own timestamp, while kinesis-bit wraps such lines in `{"log": ...}`; Fluent Bit
//! exits (as at end of file) when a JSON message outgrows its buffer, kinesis-bit drops the
//! line. `parser` is not supported yet (it is an unknown key).

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, LineParser, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

use crate::util::{self, Throttle};

/// Fluent Bit's default and minimum buffer size (`16k`, decimal).
pub const MIN_BUFFER_SIZE: usize = 16_000;

/// Bytes asked of each `read()`.
const READ_BLOCK: usize = 64 * 1024;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "buffer_size",
        KeyType::Size,
        Some("16k"),
        "longest line accepted; longer lines are dropped (at least 16k)",
    ),
    KeySpec::new(
        "parser",
        KeyType::Str,
        None,
        "name of a [PARSER] applied to each line; a line it does not match becomes {\"log\": line}",
    ),
];

/// The `stdin` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "stdin",
        description: "Standard Input",
        keys: KEYS,
    },
    build,
};

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let buffer_size = buffer_size(props)?;
    let parser = match props.str("parser") {
        None => None,
        Some(name) => Some(svc.parsers.parser(name).ok_or_else(|| {
            vec![props.error(
                "parser",
                format!("unknown parser '{name}': define it in a parsers file (-R / Parsers_File)"),
            )]
        })?),
    };
    let stdin = BlockingReader::new(std::io::stdin());
    Ok(Box::new(
        StdinInput::new(stdin, buffer_size).with_parser(parser),
    ))
}

/// Validate `buffer_size`.
pub fn buffer_size(props: &Props) -> Result<usize, Vec<ConfigError>> {
    let size = props.size("buffer_size").map_err(|e| vec![e])?;
    let size = size.map_or(MIN_BUFFER_SIZE, |s| {
        usize::try_from(s).unwrap_or(usize::MAX)
    });
    if size < MIN_BUFFER_SIZE {
        return Err(vec![props.error(
            "buffer_size",
            format!("'buffer_size' {size} must be at least {MIN_BUFFER_SIZE} bytes"),
        )]);
    }
    Ok(size)
}

/// A `stdin` input reading any byte stream (the process's standard input when built from the
/// configuration).
pub struct StdinInput<R> {
    reader: R,
    buffer_size: usize,
    parser: Option<Arc<dyn LineParser>>,
}

impl<R: AsyncRead + Send + Unpin> StdinInput<R> {
    /// Read lines of at most `buffer_size` bytes from `reader`.
    pub fn new(reader: R, buffer_size: usize) -> Self {
        StdinInput {
            reader,
            buffer_size: buffer_size.max(1),
            parser: None,
        }
    }

    /// Parse each line with `parser` (a `[PARSER]`) instead of the JSON-or-`log` default.
    pub fn with_parser(mut self, parser: Option<Arc<dyn LineParser>>) -> Self {
        self.parser = parser;
        self
    }
}

/// Reads a blocking byte source on a thread of its own, block by block, and hands the blocks
/// over as an [`AsyncRead`]. The thread starts at the first read; it is detached, so a read that
/// never returns (a terminal, a pipe kept open) cannot hold up the agent's exit, as a read
/// through `tokio::io::stdin` would (its blocking read cannot be cancelled and the runtime waits
/// for it when it shuts down). At most one block waits in the channel, so a paused input stops
/// the reading too.
pub struct BlockingReader<R> {
    source: Option<R>,
    rx: Option<mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    block: Vec<u8>,
    pos: usize,
}

impl<R: Read + Send + 'static> BlockingReader<R> {
    /// A reader over `source` (nothing is read before the first poll).
    pub fn new(source: R) -> Self {
        BlockingReader {
            source: Some(source),
            rx: None,
            block: Vec::new(),
            pos: 0,
        }
    }

    fn start(&mut self) -> std::io::Result<()> {
        let Some(mut source) = self.source.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("kb-stdin".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; READ_BLOCK];
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            })?;
        self.rx = Some(rx);
        Ok(())
    }
}

impl<R: Read + Send + Unpin + 'static> AsyncRead for BlockingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.block.len() {
                let rest = this.block.get(this.pos..).unwrap_or_default();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(rest.get(..n).unwrap_or_default());
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.rx.is_none() {
                if this.source.is_none() {
                    // Ended (or the thread could not start): end of file.
                    return Poll::Ready(Ok(()));
                }
                this.start()?;
            }
            let Some(rx) = this.rx.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.rx = None;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.rx = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(block))) => {
                    this.block = block;
                    this.pos = 0;
                }
            }
        }
    }
}

/// Splits the byte stream into lines and encodes them.
struct Lines {
    max_line: usize,
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
    /// Inside a line that is already too long: its bytes are dropped up to the next `\n`.
    discarding: bool,
    dropped: u64,
    warn: Throttle,
    writer: EventWriter,
    parser: Option<Arc<dyn LineParser>>,
}

impl Lines {
    fn new(max_line: usize) -> Self {
        Lines {
            max_line,
            partial: Vec::new(),
            discarding: false,
            dropped: 0,
            warn: Throttle::per_minute(),
            writer: EventWriter::new(),
            parser: None,
        }
    }

    /// Encode every complete line of `data`; keep the unfinished end for the next call.
    fn feed(&mut self, data: &[u8]) {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (piece, after) = (&rest[..pos], &rest[pos + 1..]);
            rest = after;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.partial.is_empty() {
                self.line(piece);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(piece);
                self.line(&line);
                line.clear();
                self.partial = line;
            }
        }
        if self.discarding || rest.is_empty() {
            return;
        }
        // Room for the line plus a `\r` that is removed at the end.
        if self.partial.len() + rest.len() > self.max_line.saturating_add(1) {
            self.partial.clear();
            self.discarding = true;
            self.drop_line();
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// End of input: the unfinished last line is a line.
    fn finish(&mut self) {
        if !self.discarding && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        self.discarding = false;
    }

    fn drop_line(&mut self) {
        self.dropped += 1;
        if let Some(n) = self.warn.allow() {
            tracing::warn!(
                "line longer than buffer_size ({} bytes) dropped; {} dropped so far{}",
                self.max_line,
                self.dropped,
                util::suppressed_note(n)
            );
        }
    }

    /// Encode one line (without its `\n`).
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        if line.len() > self.max_line {
            self.drop_line();
            return;
        }
        let now = EventTime::now();
        if let Some(p) = &self.parser {
            // Like tail: a line the parser does not match is kept as {"log": line}.
            if p.parse_line(line, &mut self.writer, now).is_ok() {
                return;
            }
            write_log_record(&mut self.writer, now, line);
            return;
        }
        encode_line(&mut self.writer, now, line);
    }
}

/// Encode one line as a record: a JSON object as itself, anything else as `{"log": line}`.
pub fn encode_line(writer: &mut EventWriter, time: EventTime, line: &[u8]) {
    let looks_like_object = line
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if looks_like_object {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(line) {
            writer.write_json_record(time, &m);
            return;
        }
    }
    write_log_record(writer, time, line);
}

/// `{"log": line}`.
fn write_log_record(writer: &mut EventWriter, time: EventTime, line: &[u8]) {
    writer.begin(time);
    let _ = rmp::encode::write_map_len(&mut writer.buf, 1);
    let _ = rmp::encode::write_str(&mut writer.buf, "log");
    let _ = rmp::encode::write_str(&mut writer.buf, &String::from_utf8_lossy(line));
}

#[async_trait]
impl<R: AsyncRead + Send + Unpin> Input for StdinInput<R> {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let StdinInput {
            mut reader,
            buffer_size,
            parser,
        } = *self;
        let mut lines = Lines::new(buffer_size);
        lines.parser = parser;
        let mut buf = vec![0u8; READ_BLOCK];
        loop {
            ctx.ready().await;
            if ctx.is_stopping() {
                return Ok(());
            }
            let read = tokio::select! {
                _ = ctx.stopped() => return Ok(()),
                r = reader.read(&mut buf) => r,
            };
            match read {
                Ok(0) => {
                    // The normal end of `printf … | kinesis-bit -i stdin`, not a problem: Fluent
                    // Bit's words, but not its warn level.
                    tracing::info!("end of file (stdin closed by remote end)");
                    break;
                }
                Ok(n) => {
                    lines.feed(buf.get(..n).unwrap_or(&buf));
                    ctx.append(&lines.writer.buf, lines.writer.count);
                    lines.writer.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("read error: {e}; stopping");
                    break;
                }
            }
        }
        lines.finish();
        ctx.append(&lines.writer.buf, lines.writer.count);
        lines.writer.clear();
        ctx.request_exit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(l: &Lines) -> Vec<String> {
        kb_core::event::EventReader::new(&l.writer.buf)
            .map(|e| {
                let v = rmpv::decode::read_value(&mut &e.unwrap().record[..]).unwrap();
                v.to_string()
            })
            .collect()
    }

    #[test]
    fn lines_split_across_reads_and_long_lines_dropped() {
        let mut l = Lines::new(5);
        l.feed(b"ab");
        l.feed(b"c\r\n\n123456\nxy");
        l.feed(b"z\n1234567");
        l.feed(b"89\nok\n");
        l.feed(b"12345\r\nlast");
        l.finish();
        assert_eq!(
            records(&l),
            [
                r#"{"log": "abc"}"#,
                r#"{"log": "xyz"}"#,
                r#"{"log": "ok"}"#,
                r#"{"log": "12345"}"#,
                r#"{"log": "last"}"#
            ]
        );
        assert_eq!(l.dropped, 2);
    }

    #[test]
    fn objects_and_other_json() {
        let mut l = Lines::new(100);
        l.feed(b"{\"b\":1,\"a\":[true,null]}\n[1,2]\n\"s\"\n{bad\n \xff\xfe\n");
        assert_eq!(
            records(&l),
            [
                r#"{"b": 1, "a": [true, nil]}"#,
                r#"{"log": "[1,2]"}"#,
                r#"{"log": "\"s\""}"#,
                r#"{"log": "{bad"}"#,
                "{\"log\": \" \u{fffd}\u{fffd}\"}",
            ]
        );
    }
}
