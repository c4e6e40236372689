//! `stdout`: prints records in Fluent Bit's default form
//! (`[0] tag: [[1700000000.000000000, {}], {"k"=>"v"}]`) or as JSON (`format json`,
//! `json_lines`, `json_stream`) with a date key.

use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use tokio::io::AsyncWriteExt;

use crate::chunk::{Chunk, Progress};
use crate::event::{Event, EventReader, EventTime};
use crate::json::{self, JsonOptions, JsonStats};
use crate::msgpack::{Cursor, Head, MsgpackError};
use crate::plugin::{FlushResult, Output, OutputWorker, PluginError};
use crate::registry::{OutputPlugin, ServiceContext};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "format",
        KeyType::Enum(&["msgpack", "json", "json_lines", "json_stream"]),
        Some("msgpack"),
        "output format: msgpack (Fluent Bit's print form), json, json_lines or json_stream",
    ),
    KeySpec::new(
        "json_date_key",
        KeyType::Str,
        Some("date"),
        "key of the timestamp in JSON formats; 'false' leaves it out",
    ),
    KeySpec::new(
        "json_date_format",
        KeyType::Enum(&[
            "double",
            "epoch",
            "epoch_ms",
            "iso8601",
            "java_sql_timestamp",
        ]),
        Some("double"),
        "timestamp format in JSON formats",
    ),
];

/// The `stdout` output plugin.
pub const PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "stdout",
        description: "Prints events to the standard output",
        keys: KEYS,
    },
    build,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Msgpack,
    Json,
    JsonLines,
    JsonStream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateFormat {
    Double,
    Epoch,
    EpochMs,
    Iso8601,
    JavaSql,
}

#[derive(Debug, Clone)]
struct Settings {
    format: Format,
    date_key: Option<String>,
    date_format: DateFormat,
    json: JsonOptions,
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Arc<dyn Output>, Vec<ConfigError>> {
    let format = match props
        .str("format")
        .unwrap_or("msgpack")
        .to_ascii_lowercase()
        .as_str()
    {
        "json" => Format::Json,
        "json_lines" => Format::JsonLines,
        "json_stream" => Format::JsonStream,
        _ => Format::Msgpack,
    };
    let date_format = match props
        .str("json_date_format")
        .unwrap_or("double")
        .to_ascii_lowercase()
        .as_str()
    {
        "epoch" => DateFormat::Epoch,
        "epoch_ms" => DateFormat::EpochMs,
        "iso8601" => DateFormat::Iso8601,
        "java_sql_timestamp" => DateFormat::JavaSql,
        _ => DateFormat::Double,
    };
    let date_key = props
        .str("json_date_key")
        .filter(|k| !k.eq_ignore_ascii_case("false"))
        .map(str::to_string);
    Ok(Arc::new(StdoutOutput(Settings {
        format,
        date_key,
        date_format,
        json: JsonOptions {
            escape_unicode: svc.json_escape_unicode,
        },
    })))
}

struct StdoutOutput(Settings);

#[async_trait]
impl Output for StdoutOutput {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(StdoutWorker {
            settings: self.0.clone(),
            buf: Vec::new(),
        }))
    }
}

struct StdoutWorker {
    settings: Settings,
    buf: Vec<u8>,
}

#[async_trait]
impl OutputWorker for StdoutWorker {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        self.buf.clear();
        if let Err(e) = format_chunk(&self.settings, chunk, progress, &mut self.buf) {
            tracing::warn!(
                "chunk '{}' has malformed events after the valid ones: {e}",
                chunk.id
            );
        }
        let mut out = tokio::io::stdout();
        if out.write_all(&self.buf).await.is_err() || out.flush().await.is_err() {
            return FlushResult::Retry;
        }
        FlushResult::Ok
    }
}

fn format_chunk(
    s: &Settings,
    chunk: &Chunk,
    progress: &Progress,
    out: &mut Vec<u8>,
) -> Result<(), MsgpackError> {
    let mut stats = JsonStats::default();
    let mut first = true;
    if s.format == Format::Json {
        out.push(b'[');
    }
    for (i, ev) in EventReader::new(&chunk.data).enumerate() {
        let ev = ev?;
        if progress.is_done(i) {
            continue;
        }
        match s.format {
            Format::Msgpack => print_event(out, i, &chunk.tag, &ev)?,
            Format::Json => {
                if !first {
                    out.push(b',');
                }
                write_json_record(s, &ev, out, &mut stats)?;
            }
            Format::JsonLines => {
                write_json_record(s, &ev, out, &mut stats)?;
                out.push(b'\n');
            }
            Format::JsonStream => write_json_record(s, &ev, out, &mut stats)?,
        }
        first = false;
    }
    if s.format == Format::Json {
        out.extend_from_slice(b"]\n");
    }
    Ok(())
}

/// `{"<date_key>":<date>, ...record keys}`.
fn write_json_record(
    s: &Settings,
    ev: &Event<'_>,
    out: &mut Vec<u8>,
    stats: &mut JsonStats,
) -> Result<(), MsgpackError> {
    let start = out.len();
    if json::write_json(ev.record, out, &s.json, stats).is_err() {
        out.truncate(start);
        return Err(MsgpackError::Truncated);
    }
    let Some(key) = &s.date_key else {
        return Ok(());
    };
    if out.get(start) != Some(&b'{') {
        return Ok(());
    }
    let mut date = Vec::with_capacity(48);
    json::write_json_string(key.as_bytes(), &mut date, &s.json, stats);
    date.push(b':');
    write_date(s.date_format, ev.time, &mut date);
    if out.len() - start > 2 {
        date.push(b',');
    }
    out.splice(start + 1..start + 1, date);
    Ok(())
}

fn write_date(f: DateFormat, t: EventTime, out: &mut Vec<u8>) {
    match f {
        DateFormat::Double => json::write_f64(t.as_f64(), out),
        DateFormat::Epoch => {
            let _ = write!(out, "{}", t.secs);
        }
        DateFormat::EpochMs => {
            let _ = write!(
                out,
                "{}",
                u64::from(t.secs) * 1000 + u64::from(t.nanos) / 1_000_000
            );
        }
        DateFormat::Iso8601 | DateFormat::JavaSql => {
            let (y, mo, d, h, mi, sec) = civil_from_unix(i64::from(t.secs));
            if f == DateFormat::Iso8601 {
                let _ = write!(
                    out,
                    "\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{:06}Z\"",
                    t.nanos / 1000
                );
            } else {
                let _ = write!(
                    out,
                    "\"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{:06}\"",
                    t.nanos / 1000
                );
            }
        }
    }
}

/// UTC calendar fields of a Unix time: (year, month, day, hour, minute, second).
pub fn civil_from_unix(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = crate::civil::civil_from_days(t.div_euclid(86_400));
    let rem = t.rem_euclid(86_400);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Fluent Bit's default print form of one event.
fn print_event(
    out: &mut Vec<u8>,
    index: usize,
    tag: &str,
    ev: &Event<'_>,
) -> Result<(), MsgpackError> {
    let _ = write!(
        out,
        "[{index}] {tag}: [[{}.{:09}, ",
        ev.time.secs, ev.time.nanos
    );
    print_value(out, &mut Cursor::new(ev.metadata), 0)?;
    out.extend_from_slice(b"], ");
    print_value(out, &mut Cursor::new(ev.record), 0)?;
    out.extend_from_slice(b"]\n");
    Ok(())
}

/// A value the way msgpack-c's `msgpack_object_print` writes it (maps as `{"k"=>v}`).
fn print_value(out: &mut Vec<u8>, c: &mut Cursor<'_>, depth: usize) -> Result<(), MsgpackError> {
    if depth > 256 {
        return Err(MsgpackError::Unexpected(0));
    }
    match c.head()? {
        Head::Nil => out.extend_from_slice(b"nil"),
        Head::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Head::Uint(v) => {
            let _ = write!(out, "{v}");
        }
        Head::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Head::Float(v) => {
            let _ = write!(out, "{v:.6}");
        }
        Head::Str(s) => {
            out.push(b'"');
            out.extend_from_slice(s);
            out.push(b'"');
        }
        Head::Bin(bytes) => {
            out.push(b'"');
            for &b in bytes {
                if b.is_ascii_graphic() || b == b' ' {
                    out.push(b);
                } else {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            out.push(b'"');
        }
        Head::Ext(ty, data) => {
            let _ = write!(out, "(ext: {ty})\"");
            for b in data {
                let _ = write!(out, "\\x{b:02x}");
            }
            out.push(b'"');
        }
        Head::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                print_value(out, c, depth + 1)?;
            }
            out.push(b']');
        }
        Head::Map(n) => {
            out.push(b'{');
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                print_value(out, c, depth + 1)?;
                out.extend_from_slice(b"=>");
                print_value(out, c, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventWriter;

    fn chunk() -> Chunk {
        let mut w = EventWriter::new();
        let r = serde_json::json!({"a": 1, "b": "x", "c": 0.5, "d": [true, null], "e": -2});
        w.write_json_record(
            EventTime::new(1_764_093_600, 123_456_789),
            r.as_object().unwrap(),
        );
        w.write_json_record(EventTime::new(1_764_093_601, 0), &serde_json::Map::new());
        Chunk::new("cpu.local", w.buf, w.count)
    }

    fn render(format: Format, date_format: DateFormat) -> String {
        let s = Settings {
            format,
            date_key: Some("date".into()),
            date_format,
            json: JsonOptions::default(),
        };
        let c = chunk();
        let mut out = Vec::new();
        format_chunk(&s, &c, &Progress::new(c.records), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_form_matches_fluent_bit() {
        assert_eq!(
            render(Format::Msgpack, DateFormat::Double),
            "[0] cpu.local: [[1764093600.123456789, {}], {\"a\"=>1, \"b\"=>\"x\", \"c\"=>0.500000, \"d\"=>[true, nil], \"e\"=>-2}]\n\
             [1] cpu.local: [[1764093601.000000000, {}], {}]\n"
        );
    }

    #[test]
    fn json_lines_put_the_date_first() {
        assert_eq!(
            render(Format::JsonLines, DateFormat::Double),
            "{\"date\":1764093600.123457,\"a\":1,\"b\":\"x\",\"c\":0.5,\"d\":[true,null],\"e\":-2}\n\
             {\"date\":1764093601.0}\n"
        );
        assert_eq!(
            render(Format::Json, DateFormat::Iso8601),
            "[{\"date\":\"2025-11-25T18:00:00.123456Z\",\"a\":1,\"b\":\"x\",\"c\":0.5,\"d\":[true,null],\"e\":-2},\
             {\"date\":\"2025-11-25T18:00:01.000000Z\"}]\n"
        );
    }

    #[test]
    fn done_records_are_not_printed() {
        let s = Settings {
            format: Format::JsonLines,
            date_key: None,
            date_format: DateFormat::Epoch,
            json: JsonOptions::default(),
        };
        let c = chunk();
        let mut p = Progress::new(c.records);
        p.mark_done(0);
        let mut out = Vec::new();
        format_chunk(&s, &c, &p, &mut out).unwrap();
        assert_eq!(out, b"{}\n");
    }
}
