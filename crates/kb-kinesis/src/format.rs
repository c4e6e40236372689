//! One event → the Data of one Kinesis record (spec §2.1 steps 2–5): the whole body as JSON or
//! the `log_key` value, `time_key` appended, empty records dropped, the newline.
//!
//! Per-record hot path: everything is appended to the caller's buffer and the scratch buffers
//! live in the [`RecordFormatter`], so a warm formatter does not allocate.

use kb_core::event::Event;
use kb_core::json::{write_json, write_json_string, JsonOptions, JsonStats};
use kb_core::msgpack::{Cursor, Head};

use crate::time_format::{TimeCache, TimeFormat};

/// The formatting settings of one output instance.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// `time_key`: add the event time under this key.
    pub time_key: Option<String>,
    /// `time_key_format`, compiled.
    pub time_format: TimeFormat,
    /// `log_key`: send only this key's value.
    pub log_key: Option<String>,
    /// `append_newline`.
    pub append_newline: bool,
    /// Service `json.escape_unicode`.
    pub escape_unicode: bool,
}

impl Default for FormatOptions {
    /// The plugin's defaults: whole body, no `time_key`, newline, unicode escaped.
    fn default() -> Self {
        FormatOptions {
            time_key: None,
            time_format: TimeFormat::default(),
            log_key: None,
            append_newline: true,
            escape_unicode: true,
        }
    }
}

/// Why an event produced no record (each is counted under its own `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The payload is empty, `{}` or `[]` (`reason="empty"`).
    Empty,
    /// `log_key` is not a top-level key of the record (`reason="log_key_missing"`).
    LogKeyMissing,
    /// The timestamp could not be formatted (`reason="time_format"`).
    TimeFormat,
}

impl Skip {
    /// The metric label of this reason.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Empty => "empty",
            Skip::LogKeyMissing => "log_key_missing",
            Skip::TimeFormat => "time_format",
        }
    }
}

/// Formats events into Kinesis record payloads; holds reusable scratch space and counters.
#[derive(Debug)]
pub struct RecordFormatter {
    opts: FormatOptions,
    json: JsonOptions,
    stats: JsonStats,
    invalid_utf8: u64,
    time_key_not_map: u64,
    invalid: u64,
    /// `"<time_key>":` as written in the body (escaped per `escape_unicode`), built once.
    time_key_prefix: Vec<u8>,
    /// The formatted time of the current record.
    time_text: Vec<u8>,
    /// The calendar part of the time, rendered once per second.
    time_cache: TimeCache,
}

impl RecordFormatter {
    /// A formatter for these options.
    pub fn new(opts: FormatOptions) -> Self {
        let json = JsonOptions {
            escape_unicode: opts.escape_unicode,
        };
        let mut time_key_prefix = Vec::new();
        if let Some(k) = &opts.time_key {
            write_json_string(
                k.as_bytes(),
                &mut time_key_prefix,
                &json,
                &mut JsonStats::default(),
            );
            time_key_prefix.push(b':');
        }
        RecordFormatter {
            opts,
            json,
            stats: JsonStats::default(),
            invalid_utf8: 0,
            time_key_not_map: 0,
            invalid: 0,
            time_key_prefix,
            time_text: Vec::with_capacity(64),
            time_cache: TimeCache::default(),
        }
    }

    /// The options this formatter applies.
    pub fn options(&self) -> &FormatOptions {
        &self.opts
    }

    /// The configured `log_key`, for the "Could not find log_key" warning.
    pub fn log_key(&self) -> Option<&str> {
        self.opts.log_key.as_deref()
    }

    /// Append the Kinesis Data for `ev` to `out`; on `Err` `out` is left as it was.
    pub fn format(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) -> Result<(), Skip> {
        let start = out.len();
        let r = self.format_inner(ev, out, start);
        self.invalid_utf8 += u64::from(std::mem::take(&mut self.stats.invalid_utf8));
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn format_inner(
        &mut self,
        ev: &Event<'_>,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Skip> {
        // Msgpack the JSON writer refuses (nested deeper than kb_core's limit; framing was
        // checked when the chunk was read) has nothing to send: reported as empty, and counted
        // on its own in `invalid_count`.
        let invalid = |n: &mut u64| {
            *n += 1;
            Skip::Empty
        };
        let converted = if let Some(key) = &self.opts.log_key {
            let value = find_top_level(ev.record, key.as_bytes()).ok_or(Skip::LogKeyMissing)?;
            match Cursor::new(value).head() {
                // The raw bytes: unescaped, unquoted, `escape_unicode` does not apply.
                Ok(Head::Str(s) | Head::Bin(s)) => {
                    out.extend_from_slice(s);
                    Ok(0)
                }
                _ => write_json(value, out, &self.json, &mut self.stats),
            }
        } else {
            write_json(ev.record, out, &self.json, &mut self.stats)
        };
        if converted.is_err() {
            return Err(invalid(&mut self.invalid));
        }

        // Emptiness is judged on the body as serialised, before `time_key` (as FB does).
        if matches!(&out[start..], b"" | b"{}" | b"[]") {
            return Err(Skip::Empty);
        }

        if self.opts.time_key.is_some() {
            if out[start] == b'{' && matches!(ev.record.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
                self.append_time_key(ev, out, start)?;
            } else {
                self.time_key_not_map += 1;
            }
        }

        if self.opts.append_newline {
            out.push(b'\n');
        }
        Ok(())
    }

    /// Drop every top-level `time_key` entry of the JSON object at `out[start..]` and append
    /// the formatted time as the last entry.
    fn append_time_key(
        &mut self,
        ev: &Event<'_>,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Skip> {
        // Format first: a failure must leave the body untouched (it is dropped anyway).
        self.time_text.clear();
        self.opts
            .time_format
            .write_cached(ev.time, &mut self.time_cache, &mut self.time_text)
            .map_err(|_| Skip::TimeFormat)?;

        let key = self.opts.time_key.as_deref().unwrap_or_default();
        // Usually answered from the record's few top-level keys, not by scanning the JSON.
        let present = match has_top_level_key(ev.record, key.as_bytes()) {
            Some(p) => p,
            None => contains(&out[start..], &self.time_key_prefix),
        };
        if present {
            remove_top_level_key(out, start, &self.time_key_prefix);
        }
        // `out` ends with the object's '}'.
        out.pop();
        if out.len() - start > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&self.time_key_prefix);
        write_json_string(&self.time_text, out, &self.json, &mut self.stats);
        out.push(b'}');
        Ok(())
    }

    /// Invalid UTF-8 sequences replaced by U+FFFD so far (for a rate-limited warning).
    pub fn invalid_utf8_count(&self) -> u64 {
        self.invalid_utf8
    }

    /// Records skipped as [`Skip::Empty`] because their msgpack could not be converted at all.
    pub fn invalid_count(&self) -> u64 {
        self.invalid
    }

    /// Records whose body was not a map, so `time_key` was skipped (for a rate-limited warning).
    pub fn time_key_not_map_count(&self) -> u64 {
        self.time_key_not_map
    }
}

/// The msgpack bytes of the value of the last top-level string/bin key equal to `key`.
fn find_top_level<'a>(record: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut c = Cursor::new(record);
    let n = c.read_map_len().ok()?;
    let mut found = None;
    for _ in 0..n {
        // Keys are skipped as whole values, so container keys (never a match) are harmless.
        let k = c.skip_value().ok()?;
        let v = c.skip_value().ok()?;
        if matches!(Cursor::new(k).head(), Ok(Head::Str(s) | Head::Bin(s)) if s == key) {
            found = Some(v);
        }
    }
    found
}

/// Whether the map has a top-level string/bin key equal to `key`; `None` when that cannot be
/// told from the raw keys (a non-string key or invalid UTF-8, whose JSON text could still
/// equal `key`).
fn has_top_level_key(record: &[u8], key: &[u8]) -> Option<bool> {
    let mut c = Cursor::new(record);
    let n = c.read_map_len().ok()?;
    let mut found = false;
    for _ in 0..n {
        match Cursor::new(c.skip_value().ok()?).head().ok()? {
            Head::Str(s) | Head::Bin(s) if s.is_ascii() || std::str::from_utf8(s).is_ok() => {
                found |= s == key;
            }
            _ => return None,
        }
        c.skip_value().ok()?;
    }
    Some(found)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&b| b == first) {
        let at = i + p;
        if hay[at + 1..].starts_with(rest) {
            return true;
        }
        i = at + 1;
    }
    false
}

/// Remove every top-level `prefix value` entry (prefix = `"key":`) from the JSON object at
/// `out[start..]`, which kb_core's writer produced (so it is well-formed and compact).
fn remove_top_level_key(out: &mut Vec<u8>, start: usize, prefix: &[u8]) {
    let mut dst = start + 1; // after '{'
    let mut i = start + 1;
    let end = out.len() - 1; // the closing '}'
    let mut first = true;
    while i < end {
        // One entry: from `i` up to the ',' or '}' at depth 0.
        let entry_start = i;
        let entry_end = scan_value_end(out, i, end);
        let keep = !out[entry_start..entry_end].starts_with(prefix);
        if keep {
            if !first {
                out[dst] = b',';
                dst += 1;
            }
            first = false;
            out.copy_within(entry_start..entry_end, dst);
            dst += entry_end - entry_start;
        }
        i = entry_end + 1; // skip ','
    }
    out[dst] = b'}';
    out.truncate(dst + 1);
}

/// The index of the ',' (or `end`) that ends the entry starting at `i`, tracking strings and
/// nesting.
fn scan_value_end(out: &[u8], mut i: usize, end: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    while i < end {
        let b = out[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_keys_at_top_level_only() {
        let prefix = b"\"t\":";
        let mut out = br#"x{"t":1,"a":{"t":2},"b":"\"t\":","t":[1,{"t":3}]}"#.to_vec();
        remove_top_level_key(&mut out, 1, prefix);
        assert_eq!(&out[..], br#"x{"a":{"t":2},"b":"\"t\":"}"#);
        let mut out = br#"{"t":1}"#.to_vec();
        remove_top_level_key(&mut out, 0, prefix);
        assert_eq!(&out[..], b"{}");
    }

    #[test]
    fn contains_finds_needles() {
        assert!(contains(b"abc\"t\":", b"\"t\":"));
        assert!(!contains(b"abc\"t\"", b"\"t\":"));
    }
}
