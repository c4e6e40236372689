//! Records as the Go plugins (`kinesis`: amazon-kinesis-streams-for-fluent-bit, `firehose`:
//! amazon-kinesis-firehose-for-fluent-bit) write them, so that a consumer sees the same Data
//! after the switch.
//!
//! Per event, in the Go plugins' order: `time_key` is set in the record (replacing a key of that
//! name), `data_keys` keeps only the listed top-level keys, `replace_dots` rewrites the dots of
//! every key of the record and of the maps nested in it (maps inside arrays are left alone, as
//! the Go code only descends into map values), then either `log_key`'s value (a string as its
//! raw bytes, anything else as JSON) or the whole record as JSON.
//!
//! The JSON is what json-iterator's `ConfigCompatibleWithStandardLibrary` writes for the Go map
//! the plugin decodes: the keys of every map sorted by their bytes, one entry per key (the last
//! one read wins, as in a Go map); `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`…;
//! control characters other than `\n` `\r` `\t` as `\u00XX`; other characters raw (no
//! `\uXXXX` for non-ASCII); each invalid UTF-8 byte as `\ufffd`; numbers in Go's shortest
//! form (`1`, `0.5`, `1e+21`, `1e-7`). Where the Go plugin fails and drops the record (NaN or
//! ±Inf, a map under `log_key`), a valid record is written instead: NaN and ±Inf as `null`,
//! the map as JSON.

use std::ops::Range;

use kb_core::event::Event;
use kb_core::msgpack::{Cursor, Head};

use crate::format::Skip;
use crate::time_format::{TimeCache, TimeFormat};

/// The Go plugins' formatting settings.
#[derive(Debug, Clone, Default)]
pub struct GoFormatOptions {
    /// `time_key`.
    pub time_key: Option<String>,
    /// `time_key_format`, compiled with [`TimeFormat::compile_go`].
    pub time_format: TimeFormat,
    /// `data_keys` (empty: every key).
    pub data_keys: Vec<String>,
    /// `replace_dots`.
    pub replace_dots: Option<String>,
    /// `log_key`.
    pub log_key: Option<String>,
    /// `append_newline`.
    pub append_newline: bool,
}

/// Formats events as the Go plugins do; reusable scratch space, no allocation when warm.
#[derive(Debug, Default)]
pub struct GoFormatter {
    opts: GoFormatOptions,
    /// Keys (transformed by `replace_dots`) of the maps being written, in `key_arena`.
    entries: Vec<(Range<usize>, EntryValue)>,
    key_arena: Vec<u8>,
    time_text: Vec<u8>,
    time_cache: TimeCache,
}

/// The value of one map entry being written.
#[derive(Debug, Clone, Copy)]
enum EntryValue {
    /// A msgpack value: its range in the record.
    Msgpack(usize, usize),
    /// The formatted `time_key` (in `time_text`).
    Time,
}

impl GoFormatter {
    /// A formatter for these options.
    pub fn new(opts: GoFormatOptions) -> Self {
        GoFormatter {
            opts,
            ..Default::default()
        }
    }

    /// The configured `log_key`, for the "could not find" warning.
    pub fn log_key(&self) -> Option<&str> {
        self.opts.log_key.as_deref()
    }

    /// Append the Data for `ev` to `out`; on `Err` `out` is left as it was.
    pub fn format(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) -> Result<(), Skip> {
        let start = out.len();
        let r = self.format_inner(ev, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn format_inner(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) -> Result<(), Skip> {
        let start = out.len();
        if self.opts.time_key.is_some() {
            self.time_text.clear();
            self.opts
                .time_format
                .write_cached(ev.time, &mut self.time_cache, &mut self.time_text)
                .map_err(|_| Skip::TimeFormat)?;
        }
        let record = ev.record;
        self.entries.clear();
        self.key_arena.clear();
        // The top-level entries, with time_key, data_keys and replace_dots applied.
        let mut c = Cursor::new(record);
        let n = c.read_map_len().map_err(|_| Skip::Empty)?;
        for _ in 0..n {
            let k = c.skip_value().map_err(|_| Skip::Empty)?;
            let v = c.skip_value().map_err(|_| Skip::Empty)?;
            let (text, is_str) = match Cursor::new(k).head() {
                Ok(Head::Str(s) | Head::Bin(s)) => (s, true),
                _ => (k, false),
            };
            if is_str {
                if self.opts.time_key.as_deref().map(str::as_bytes) == Some(text) {
                    continue; // replaced by the time below
                }
                if !self.opts.data_keys.is_empty()
                    && !self.opts.data_keys.iter().any(|d| d.as_bytes() == text)
                {
                    continue;
                }
            }
            let key = self.push_key(k);
            let off = offset(record, v);
            self.entries
                .push((key, EntryValue::Msgpack(off, off + v.len())));
        }
        if let Some(tk) = &self.opts.time_key {
            if self.opts.data_keys.is_empty() || self.opts.data_keys.iter().any(|d| d == tk) {
                let s = self.key_arena.len();
                push_replaced(
                    tk.as_bytes(),
                    self.opts.replace_dots.as_deref(),
                    &mut self.key_arena,
                );
                self.entries
                    .push((s..self.key_arena.len(), EntryValue::Time));
            }
        }
        sort_dedup(&mut self.entries, 0, &self.key_arena);

        if let Some(lk) = &self.opts.log_key {
            let found = self
                .entries
                .iter()
                .find(|(k, _)| &self.key_arena[k.clone()] == lk.as_bytes())
                .map(|(_, v)| *v);
            let Some(v) = found else {
                return Err(Skip::LogKeyMissing);
            };
            match v {
                EntryValue::Time => out.extend_from_slice(&self.time_text),
                EntryValue::Msgpack(a, b) => match Cursor::new(&record[a..b]).head() {
                    Ok(Head::Str(s) | Head::Bin(s)) => out.extend_from_slice(s),
                    _ => self.write_value(record, a, b, out)?,
                },
            }
        } else {
            out.push(b'{');
            let end = self.entries.len();
            for i in 0..end {
                if i > 0 {
                    out.push(b',');
                }
                let (k, v) = self.entries[i].clone();
                write_go_string(&self.key_arena[k], out);
                out.push(b':');
                match v {
                    EntryValue::Time => write_go_string(&self.time_text, out),
                    EntryValue::Msgpack(a, b) => self.write_value(record, a, b, out)?,
                }
            }
            out.push(b'}');
        }
        // Only a payload of nothing is dropped: the Go plugins send `{}`.
        if out.len() == start {
            return Err(Skip::Empty);
        }
        if self.opts.append_newline {
            out.push(b'\n');
        }
        Ok(())
    }

    /// The key `k` (a msgpack value) as text with `replace_dots` applied, in `key_arena`.
    fn push_key(&mut self, k: &[u8]) -> Range<usize> {
        let s = self.key_arena.len();
        match Cursor::new(k).head() {
            Ok(Head::Str(t) | Head::Bin(t)) => {
                push_replaced(t, self.opts.replace_dots.as_deref(), &mut self.key_arena)
            }
            // A number or bool key is written as its text (json-iterator quotes numbers).
            _ => {
                let mut text = String::new();
                if kb_core::accessor::value_text(k, &mut text) {
                    self.key_arena.extend_from_slice(text.as_bytes());
                }
            }
        }
        s..self.key_arena.len()
    }

    /// Write the msgpack value at `record[a..b]` as Go's JSON.
    fn write_value(
        &mut self,
        record: &[u8],
        a: usize,
        b: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Skip> {
        let mut c = Cursor::new(&record[a..b]);
        self.value(record, &mut c, out, 0)
    }

    fn value(
        &mut self,
        record: &[u8],
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Skip> {
        if depth > 64 {
            return Err(Skip::Empty);
        }
        match c.head().map_err(|_| Skip::Empty)? {
            Head::Nil => out.extend_from_slice(b"null"),
            Head::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Head::Uint(v) => push_int(out, v as i128),
            Head::Int(v) => push_int(out, v as i128),
            Head::Float(v) => write_go_float(v, out),
            Head::Str(s) | Head::Bin(s) => write_go_string(s, out),
            Head::Ext(_, data) => {
                // Not JSON in either plugin; written as the bytes' \xNN text, as kb-core does.
                let mut text = Vec::with_capacity(data.len() * 4);
                for byte in data {
                    text.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
                }
                write_go_string(&text, out);
            }
            Head::Array(n) => {
                out.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(record, c, out, depth + 1)?;
                }
                out.push(b']');
            }
            Head::Map(n) => {
                let first = self.entries.len();
                let arena = self.key_arena.len();
                for _ in 0..n {
                    let k = c.skip_value().map_err(|_| Skip::Empty)?;
                    let v = c.skip_value().map_err(|_| Skip::Empty)?;
                    let key = self.push_key(k);
                    let off = offset(record, v);
                    self.entries
                        .push((key, EntryValue::Msgpack(off, off + v.len())));
                }
                sort_dedup(&mut self.entries, first, &self.key_arena);
                out.push(b'{');
                let end = self.entries.len();
                for i in first..end {
                    if i > first {
                        out.push(b',');
                    }
                    let (k, v) = self.entries[i].clone();
                    write_go_string(&self.key_arena[k], out);
                    out.push(b':');
                    if let EntryValue::Msgpack(a, b) = v {
                        let mut vc = Cursor::new(&record[a..b]);
                        self.value(record, &mut vc, out, depth + 1)?;
                    }
                }
                out.push(b'}');
                self.entries.truncate(first);
                self.key_arena.truncate(arena);
            }
        }
        Ok(())
    }
}

/// The offset of `part` (a sub-slice of `whole`) in `whole`.
fn offset(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

fn push_replaced(key: &[u8], replace: Option<&str>, out: &mut Vec<u8>) {
    match replace {
        Some(r) => {
            for &b in key {
                if b == b'.' {
                    out.extend_from_slice(r.as_bytes());
                } else {
                    out.push(b);
                }
            }
        }
        None => out.extend_from_slice(key),
    }
}

/// Sort `entries[from..]` by key bytes and keep, of equal keys, the one read last.
fn sort_dedup(entries: &mut Vec<(Range<usize>, EntryValue)>, from: usize, arena: &[u8]) {
    let slice = &mut entries[from..];
    if slice.len() < 2 {
        return;
    }
    // Stable: equal keys stay in reading order, the last of each run wins.
    slice.sort_by(|a, b| arena[a.0.clone()].cmp(&arena[b.0.clone()]));
    let mut w = from;
    for r in from..entries.len() {
        let last_of_run = r + 1 == entries.len()
            || arena[entries[r].0.clone()] != arena[entries[r + 1].0.clone()];
        if last_of_run {
            entries.swap(w, r);
            w += 1;
        }
    }
    entries.truncate(w);
}

fn push_int(out: &mut Vec<u8>, v: i128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string as json-iterator's HTML-escaping, standard-library-compatible encoder writes
/// a Go string.
pub fn write_go_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut i = 0;
    let mut start = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            let esc: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                b'<' | b'>' | b'&' | 0..=0x1f => None,
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&s[start..i]);
            match esc {
                Some(e) => out.extend_from_slice(e),
                None => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            i += 1;
            start = i;
            continue;
        }
        // Go's utf8.DecodeRune: a valid sequence of 2-4 bytes, or RuneError with width 1.
        let width = utf8_width(&s[i..]);
        match width {
            0 => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            3 if s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9) => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(if s[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            }
            w => i += w,
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Width of the valid UTF-8 sequence at the start of `s` (a non-ASCII lead byte), or 0.
fn utf8_width(s: &[u8]) -> usize {
    let w = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return 0,
    };
    if s.len() < w {
        return 0;
    }
    match std::str::from_utf8(&s[..w]) {
        Ok(_) => w,
        Err(_) => 0,
    }
}

/// A float as json-iterator (and Go's `encoding/json`) writes a float64: the shortest digits
/// that read back as the same value, in plain notation unless the magnitude is below 1e-6 or
/// at least 1e21, then as `d.ddde±XX` with a one-digit negative exponent written without its
/// leading zero. NaN and ±Inf, which Go refuses, are `null`.
pub fn write_go_float(v: f64, out: &mut Vec<u8>) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let abs = v.abs();
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7", "1e21", "0e0".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    if neg {
        out.push(b'-');
    }
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 && exp >= 0 {
            out.push(b'0');
        }
        out.extend_from_slice(e.to_string().as_bytes());
        return;
    }
    // Plain notation: the decimal point after digit `exp`.
    let point = exp + 1;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-point) as usize, b'0');
        out.extend_from_slice(&digits);
    } else if point as usize >= digits.len() {
        out.extend_from_slice(&digits);
        out.resize(out.len() + point as usize - digits.len(), b'0');
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
}

/// `kinesis`'s `partition_key`: the value under `a->b->c` when it is a non-empty string (or
/// bin); `None` otherwise, and the caller draws a random key, as the Go plugin does. The key is
/// cut to 256 characters (the Go plugin cuts bytes, which can split a character).
pub fn go_partition_key(
    record: &[u8],
    path: &[String],
    time: Option<(&str, &[u8])>,
    out: &mut String,
) -> bool {
    out.clear();
    let mut value = record;
    for (i, seg) in path.iter().enumerate() {
        if i == 0 {
            if let Some((tk, text)) = time {
                if tk == seg && path.len() == 1 {
                    kb_core::accessor::push_lossy_utf8(text, out);
                    return !out.is_empty();
                }
            }
        }
        let mut c = Cursor::new(value);
        let Ok(n) = c.read_map_len() else {
            return false;
        };
        let mut found = None;
        for _ in 0..n {
            let (Ok(k), Ok(v)) = (c.skip_value(), c.skip_value()) else {
                return false;
            };
            if matches!(Cursor::new(k).head(), Ok(Head::Str(s) | Head::Bin(s)) if s == seg.as_bytes())
            {
                found = Some(v);
                break;
            }
        }
        let Some(v) = found else {
            return false;
        };
        value = v;
    }
    match Cursor::new(value).head() {
        Ok(Head::Str(s) | Head::Bin(s)) if !s.is_empty() => {
            kb_core::accessor::push_lossy_utf8(s, out);
            if let Some((idx, _)) = out.char_indices().nth(crate::accessor::MAX_KEY_CHARS) {
                out.truncate(idx);
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> String {
        let mut out = Vec::new();
        write_go_float(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_as_go_writes_them() {
        for (v, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (-0.0, "-0"),
            (0.0, "0"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-10, "1.25e-10"),
            (f64::from(0.1f32), "0.10000000149011612"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (f64::NAN, "null"),
        ] {
            assert_eq!(float(v), want, "{v:e}");
        }
    }

    fn string(s: &[u8]) -> String {
        let mut out = Vec::new();
        write_go_string(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_as_json_iterator_writes_them() {
        assert_eq!(string(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string(b"<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(
            string(b"\n\r\t\x08\x0c\x01\x7f"),
            "\"\\n\\r\\t\\u0008\\u000c\\u0001\x7f\""
        );
        assert_eq!(string("héllo €😀".as_bytes()), "\"héllo €😀\"");
        assert_eq!(
            string("a\u{2028}b\u{2029}".as_bytes()),
            r#""a\u2028b\u2029""#
        );
        // Each invalid byte is one U+FFFD (utf8.DecodeRune consumes one byte).
        assert_eq!(string(b"a\xe2\x82b\xff"), r#""a\ufffd\ufffdb\ufffd""#);
        assert_eq!(string(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
    }
}
