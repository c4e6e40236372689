//! What several filters share: Fluent Bit's ways of splitting a property value into words,
//! errors that point at one property among repeated ones, a key that is either a plain
//! top-level name or a record accessor, and small msgpack writers.

use kb_config::{ConfigError, Property, Props};
use kb_core::accessor::RecordAccessor;
use kb_core::msgpack::{Cursor, Head};
use kb_core::record::Record;

/// `filter:<plugin>:<instance>`, the component of the filter's log lines.
pub(crate) fn component(plugin: &str, props: &Props) -> String {
    format!("filter:{plugin}:{}", props.instance)
}

/// Run `f` with the filter's log component set, so its lines read
/// `[ warn] [filter:expect:expect.0] ...` as Fluent Bit's do.
pub(crate) fn in_span(component: &str, f: impl FnOnce()) {
    let span = tracing::info_span!("plugin", component = %component);
    let _g = span.enter();
    f();
}

/// An error about one property (of possibly several with the same key), at its location.
pub(crate) fn error_at(props: &Props, p: &Property, message: impl Into<String>) -> ConfigError {
    let location = if p.location == kb_config::Location::Default {
        props.location.clone()
    } else {
        p.location.clone()
    };
    ConfigError::new(
        location,
        format!(
            "[{} {}] {}",
            props.kind.as_str(),
            props.instance,
            message.into()
        ),
    )
}

/// Fluent Bit's `flb_utils_split_quoted(value, ' ', max)`: words separated by spaces, a word
/// may be quoted with `"` or `'` (inside, `\"`/`\'` and `\\` are escapes); after `max` words
/// the rest of the text, if any, is one more entry. `None` for an unterminated quote.
pub(crate) fn split_quoted(value: &str, max: usize) -> Option<Vec<String>> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'"' || b[i] == b'\'' {
            let q = b[i];
            i += 1;
            let mut word = Vec::new();
            loop {
                match b.get(i) {
                    None => return None,
                    Some(&c) if c == q => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if matches!(b.get(i + 1), Some(&n) if n == q || n == b'\\') => {
                        word.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        word.push(c);
                        i += 1;
                    }
                }
            }
            out.push(String::from_utf8_lossy(&word).into_owned());
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            out.push(value[start..i].to_string());
        }
        // The separator after the word.
        i += 1;
        if out.len() >= max && i < b.len() {
            out.push(value[i..].to_string());
            break;
        }
    }
    Some(out)
}

/// The first word of `value` and the rest of it (leading blanks of the rest skipped): Fluent
/// Bit's `KEY VALUE` properties (`Record`, grep's rules, expect's `key_val_eq`).
pub(crate) fn key_and_rest(value: &str) -> Option<(&str, &str)> {
    let v = value.trim_start();
    let end = v.find([' ', '\t'])?;
    let rest = v[end..].trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return None;
    }
    Some((&v[..end], rest))
}

/// Whitespace-separated words (for `src dst type` lists).
pub(crate) fn words(value: &str) -> Vec<&str> {
    value.split([' ', '\t']).filter(|w| !w.is_empty()).collect()
}

/// A key as Fluent Bit's record accessor reads it: `$a['b'][0]`, or a plain top-level name
/// (which may hold any character, dots and brackets included).
#[derive(Debug, Clone)]
pub(crate) enum KeyRef {
    Plain(Vec<u8>),
    Path(RecordAccessor),
}

impl KeyRef {
    /// Parse `text`: an accessor when it starts with `$`, else a plain key.
    pub(crate) fn parse(text: &str) -> Result<KeyRef, String> {
        if text.starts_with('$') {
            RecordAccessor::parse(text)
                .map(KeyRef::Path)
                .map_err(|e| format!("invalid record accessor '{text}': {e}"))
        } else {
            Ok(KeyRef::Plain(text.as_bytes().to_vec()))
        }
    }

    /// The value's msgpack bytes (the last of duplicate top-level keys, as Fluent Bit).
    pub(crate) fn lookup<'r>(&self, record: &'r Record<'_>) -> Option<&'r [u8]> {
        match self {
            KeyRef::Plain(k) => {
                let i = (0..record.len())
                    .rev()
                    .find(|&i| key_str(record, i) == Some(k.as_slice()))?;
                Some(record.value(i))
            }
            KeyRef::Path(ra) => ra.lookup_record(record),
        }
    }
}

/// The key of entry `i` when it is a msgpack string (not bin): record accessors only match
/// string keys.
pub(crate) fn key_str<'r>(record: &'r Record<'_>, i: usize) -> Option<&'r [u8]> {
    match Cursor::new(record.bytes(record.entry(i).0)).head() {
        Ok(Head::Str(s)) => Some(s),
        _ => None,
    }
}

/// The payload of a msgpack string value (not bin).
pub(crate) fn str_only(value: &[u8]) -> Option<&[u8]> {
    match Cursor::new(value).head() {
        Ok(Head::Str(s)) => Some(s),
        _ => None,
    }
}

/// The decoded head of a msgpack value.
pub(crate) fn head(value: &[u8]) -> Option<Head<'_>> {
    Cursor::new(value).head().ok()
}

/// Append the header of a msgpack string of `n` bytes (its payload follows).
pub(crate) fn write_str_header(buf: &mut Vec<u8>, n: usize) {
    if n < 32 {
        buf.push(0xa0 | n as u8);
    } else if n < 256 {
        buf.extend_from_slice(&[0xd9, n as u8]);
    } else if n < 65_536 {
        buf.push(0xda);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Append a msgpack signed integer in its smallest form (as msgpack-c's `pack_int64`).
pub(crate) fn write_int(buf: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(buf, v as u64);
    } else if v >= -32 {
        buf.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        buf.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i16::MIN as i64 {
        buf.push(0xd1);
        buf.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        buf.push(0xd2);
        buf.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// Append a msgpack unsigned integer in its smallest form.
pub(crate) fn write_uint(buf: &mut Vec<u8>, v: u64) {
    if v < 128 {
        buf.push(v as u8);
    } else if v <= u8::MAX as u64 {
        buf.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u16::MAX as u64 {
        buf.push(0xcd);
        buf.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        buf.push(0xce);
        buf.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        buf.push(0xcf);
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// Append a msgpack float 64.
pub(crate) fn write_f64(buf: &mut Vec<u8>, v: f64) {
    buf.push(0xcb);
    buf.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Append a msgpack boolean.
pub(crate) fn write_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(if v { 0xc3 } else { 0xc2 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_quoted_is_fluent_bits() {
        let s = |v: &str| split_quoted(v, 3).unwrap();
        assert_eq!(s("a b"), ["a", "b"]);
        assert_eq!(s("  a   b  "), ["a", "b"]);
        assert_eq!(s("k 'hello world'"), ["k", "hello world"]);
        assert_eq!(s(r#"k "say \"hi\"""#), ["k", r#"say "hi""#]);
        assert_eq!(s("a b c d e"), ["a", "b", "c", "d e"]);
        assert!(split_quoted("k 'open", 3).is_none());
    }

    #[test]
    fn key_and_rest_keeps_inner_spaces() {
        assert_eq!(key_and_rest("log  a b"), Some(("log", "a b")));
        assert_eq!(key_and_rest("log"), None);
        assert_eq!(key_and_rest("log   "), None);
    }
}
