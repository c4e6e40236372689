//! `Format logfmt` (<https://brandur.org/logfmt>), read as Fluent Bit does:
//!
//! ```text
//! ident_byte = any byte greater than ' ', excluding '=' and '"'
//! pair       = key '=' value | key '=' | key
//! value      = ident | '"' { any byte but '"' and '\' | '\' any byte } '"'
//! message    = { garbage, pair }, garbage
//! ```
//!
//! A bare key (`flag`) and an empty unquoted value (`k=`) become `true`, `k=""` an empty
//! string; quoted values are unescaped (`\"`, `\\`, `\/`, `\n`, `\t`, `\r`, `\b`, `\f`, `\uXXXX`).
//! Parsing stops at a line break that follows a pair. A line without any pair is an error, and
//! so is a bare key with `logfmt_no_bare_keys on`.

use super::{patch_header, reserve_header, Header, ParseError, Parser, Value};
use kb_core::event::EventTime;

fn ident(c: u8) -> bool {
    c > b' ' && c != b'=' && c != b'"'
}

pub(super) fn parse(
    p: &Parser,
    line: &[u8],
    buf: &mut Vec<u8>,
    now: EventTime,
    no_bare_keys: bool,
) -> Result<Option<EventTime>, ParseError> {
    let mut time = None;
    let map = reserve_header(buf);
    let mut n = 0;
    let mut c = 0;
    let end = line.len();
    while c < end {
        while c < end && !ident(line[c]) {
            c += 1;
        }
        if c == end {
            break;
        }
        let key_start = c;
        while c < end && ident(line[c]) {
            c += 1;
        }
        let key = &line[key_start..c];
        let mut value: &[u8] = &[];
        let mut value_set = false;
        let mut quoted = false;
        let mut escaped = false;
        if c < end && line[c] == b'=' {
            value_set = true;
            c += 1;
            if c < end && line[c] == b'"' {
                c += 1;
                quoted = true;
                let start = c;
                while c < end && line[c] != b'"' {
                    if line[c] == b'\\' {
                        escaped = true;
                        c += 1;
                        if c == end {
                            break;
                        }
                    }
                    c += 1;
                }
                value = &line[start..c.min(end)];
                if c < end {
                    c += 1; // closing quote
                }
            } else {
                let start = c;
                while c < end && ident(line[c]) {
                    c += 1;
                }
                value = &line[start..c];
            }
        }
        if no_bare_keys && !value_set {
            return Err(ParseError::BareKey);
        }
        let mut keep = true;
        if p.is_time_key(key) && !value.is_empty() {
            let raw = if escaped {
                std::borrow::Cow::Owned(unescape(value))
            } else {
                std::borrow::Cow::Borrowed(value)
            };
            match p.lookup_time(&raw, now) {
                Some(t) => time = Some(t),
                None => return Err(p.time_error(&raw)),
            }
            keep = p.time_keep;
        }
        if keep {
            let v = if value.is_empty() && !quoted {
                Value::True
            } else if escaped {
                Value::Escaped(value)
            } else {
                Value::Raw(value)
            };
            p.write_field(buf, key, v);
            n += 1;
        }
        if c < end && matches!(line[c], b'\r' | b'\n') {
            break;
        }
    }
    if n == 0 {
        return Err(ParseError::Empty);
    }
    patch_header(buf, map, Header::Map, n);
    Ok(time)
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let mut v = 0;
    for &c in &s[..4] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// Resolve backslash escapes (JSON's, `\uXXXX` with surrogate pairs); an unknown escape
/// stands for the escaped byte itself.
pub(super) fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = v.get(i) else {
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'u' => match hex4(&v[i..]) {
                Some(hi) => {
                    i += 4;
                    let mut cp = hi;
                    if (0xd800..0xdc00).contains(&hi) && v[i..].starts_with(b"\\u") {
                        if let Some(lo) =
                            hex4(&v[i + 2..]).filter(|lo| (0xdc00..0xe000).contains(lo))
                        {
                            cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                            i += 6;
                        }
                    }
                    push_char(&mut out, char::from_u32(cp).unwrap_or('\u{fffd}'));
                }
                None => out.push(b'u'),
            },
            other => out.push(other),
        }
    }
    out
}
