//! `partition_key` (spec §4): Fluent Bit's record-accessor grammar (`$key`, `$key['a']['b']`,
//! `$key[0]`, also `$key["a"]`), evaluated on the record's msgpack without decoding it, and the
//! random fallback key.

use std::fmt;

use kb_core::json::write_f64;
use kb_core::msgpack::{Cursor, Head};

/// Kinesis partition keys are at most this many Unicode characters.
pub const MAX_KEY_CHARS: usize = 256;

/// Length of a generated key.
pub const RANDOM_KEY_LEN: usize = 16;

/// One step of an accessor path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A map key (compared with string and bin keys, byte for byte).
    Key(String),
    /// An array position.
    Index(usize),
}

/// A parsed record accessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAccessor {
    source: String,
    path: Vec<Segment>,
}

/// A `partition_key` that is not a record accessor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; expected $key, $key['sub']['subsub'] or $key[0]")]
pub struct AccessorError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl RecordAccessor {
    /// Parse an accessor; whitespace around the brackets is ignored, as in Fluent Bit.
    pub fn parse(text: &str) -> Result<RecordAccessor, AccessorError> {
        let err = |reason: String| AccessorError {
            text: text.to_owned(),
            reason,
        };
        let s = text.trim();
        let b = s.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(err("it must start with '$'".into()));
        }
        let mut path = Vec::new();
        let mut i = 1;
        // The top-level key: Fluent Bit's IDENTIFIER [_A-Za-z][A-Za-z0-9_.]*, or (beyond FB)
        // a bracketed string for names outside that alphabet.
        let ident_start = i;
        if b.get(i)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
            {
                i += 1;
            }
            path.push(Segment::Key(s[ident_start..i].to_owned()));
        }
        loop {
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            let Some(&c) = b.get(i) else { break };
            if c != b'[' {
                return Err(err(format!("unexpected '{}' at offset {i}", &s[i..])));
            }
            i += 1;
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            match b.get(i) {
                Some(&q @ (b'\'' | b'"')) => {
                    // A quoted key; the quote is doubled to include it ('it''s').
                    i += 1;
                    let mut key = String::new();
                    let mut run = i;
                    loop {
                        match b.get(i) {
                            None => return Err(err("unterminated quoted key".into())),
                            Some(&x) if x == q => {
                                key.push_str(&s[run..i]);
                                if b.get(i + 1) == Some(&q) {
                                    key.push(q as char);
                                    i += 2;
                                    run = i;
                                } else {
                                    i += 1;
                                    break;
                                }
                            }
                            Some(_) => i += 1,
                        }
                    }
                    path.push(Segment::Key(key));
                }
                Some(d) if d.is_ascii_digit() => {
                    let start = i;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    let digits = &s[start..i];
                    if digits.len() > 1 && digits.starts_with('0') {
                        return Err(err(format!("array index '{digits}' has a leading zero")));
                    }
                    let n = digits
                        .parse()
                        .map_err(|_| err(format!("array index '{digits}' is too large")))?;
                    path.push(Segment::Index(n));
                }
                _ => {
                    return Err(err(format!(
                        "expected a quoted key or an array index after '[' at offset {}",
                        i - 1
                    )))
                }
            }
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            if b.get(i) != Some(&b']') {
                return Err(err(format!("missing ']' at offset {i}")));
            }
            i += 1;
        }
        match path.first() {
            None => Err(err("no key after '$'".into())),
            Some(Segment::Index(_)) => Err(err("the record is a map: start with a key".into())),
            Some(Segment::Key(_)) => Ok(RecordAccessor {
                source: text.to_owned(),
                path,
            }),
        }
    }

    /// The accessor text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed path.
    pub fn path(&self) -> &[Segment] {
        &self.path
    }

    /// Write the partition key taken from `record` (a msgpack map) into `out` (cleared first);
    /// `false` when the value is missing, null, a map, an array or empty, so the caller uses
    /// a random key. The key is cut to [`MAX_KEY_CHARS`] characters.
    pub fn extract(&self, record: &[u8], out: &mut String) -> bool {
        out.clear();
        let Some(value) = self.lookup(record) else {
            return false;
        };
        let Ok(head) = Cursor::new(value).head() else {
            return false;
        };
        match head {
            Head::Str(s) | Head::Bin(s) => push_lossy_utf8(s, out),
            Head::Bool(v) => out.push_str(if v { "true" } else { "false" }),
            Head::Uint(v) => push_display(out, v),
            Head::Int(v) => push_display(out, v),
            // `null` is not a key; ±Inf have no JSON text.
            Head::Float(v) if v.is_finite() => {
                let mut bytes = std::mem::take(out).into_bytes();
                write_f64(v, &mut bytes);
                // write_f64 emits ASCII only.
                *out = String::from_utf8(bytes).unwrap_or_default();
            }
            _ => return false,
        }
        truncate_chars(out, MAX_KEY_CHARS);
        !out.is_empty()
    }

    /// The msgpack bytes of the value at the path (last occurrence of a duplicate key).
    fn lookup<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        let mut cur = record;
        for seg in &self.path {
            let mut c = Cursor::new(cur);
            cur = match seg {
                Segment::Key(key) => {
                    let Head::Map(n) = c.head().ok()? else {
                        return None;
                    };
                    let mut found = None;
                    for _ in 0..n {
                        let k = c.skip_value().ok()?;
                        let v = c.skip_value().ok()?;
                        if matches!(Cursor::new(k).head(), Ok(Head::Str(s) | Head::Bin(s)) if s == key.as_bytes())
                        {
                            found = Some(v);
                        }
                    }
                    found?
                }
                Segment::Index(idx) => {
                    let Head::Array(n) = c.head().ok()? else {
                        return None;
                    };
                    if *idx >= n {
                        return None;
                    }
                    for _ in 0..*idx {
                        c.skip_value().ok()?;
                    }
                    c.skip_value().ok()?
                }
            };
        }
        Some(cur)
    }
}

impl fmt::Display for RecordAccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for RecordAccessor {
    type Err = AccessorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordAccessor::parse(s)
    }
}

/// Append the bytes as UTF-8, each invalid sequence replaced by U+FFFD (no allocation).
fn push_lossy_utf8(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

fn push_display(out: &mut String, v: impl fmt::Display) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// Keep the first `max` characters (never splits a UTF-8 sequence).
fn truncate_chars(s: &mut String, max: usize) {
    if s.len() <= max {
        return; // fewer bytes than the limit: fewer characters too
    }
    if let Some((idx, _)) = s.char_indices().nth(max) {
        s.truncate(idx);
    }
}

/// A fresh random partition key: [`RANDOM_KEY_LEN`] characters of `[0-9A-Za-z]` (cleared first).
pub fn random_key(rng: &mut fastrand::Rng, out: &mut String) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    out.clear();
    // Eight base-62 digits from each random u64, by division by a constant (a multiply):
    // a character per random draw cost a third of filling the body. 62^8 is far below 2^64,
    // so the digits are uniform to within 1.2e-5.
    for _ in 0..RANDOM_KEY_LEN / 8 {
        let mut r = rng.u64(..);
        for _ in 0..8 {
            out.push(char::from(ALPHABET[(r % 62) as usize]));
            r /= 62;
        }
    }
}
