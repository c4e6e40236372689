//! `Merge_Log`: the `log` string parsed (by the pod's suggested parser, else `Merge_Parser`,
//! else as one JSON object) and its fields added to the record, at the top level or under
//! `Merge_Log_Key`; a `log` that is already a map is merged as it is. Fluent Bit's
//! `merge_log_handler` and `pack_map_content`.

use kb_core::event::{write_json_map, EventReader, EventWriter};
use kb_core::plugin::LineParser;
use kb_core::record::{as_str, write_map_len, write_str, Record, Val};

/// The merge keys.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub key: Option<String>,
    pub trim: bool,
    pub keep_log: bool,
}

/// Fluent Bit's `value_trim_size`: drop trailing newlines and trailing `\n` / `\r` escape
/// sequences (backslash and letter) from a merged string value.
pub fn trim_len(s: &[u8]) -> usize {
    let mut size = s.len();
    let mut i = s.len().saturating_sub(1);
    while i > 0 {
        if s[i] == b'\n' {
            size -= 1;
            i -= 1;
            continue;
        }
        if s[i - 1] == b'\\' && (s[i] == b'n' || s[i] == b'r') {
            size -= 2;
            if i < 2 {
                break;
            }
            i -= 2;
        } else {
            break;
        }
    }
    size
}

/// Merge the record's `log` (see the module documentation); `parser` is the parser to use
/// (the pod's or `Merge_Parser`), `None` for JSON. Returns whether anything was merged.
pub fn merge_log(
    record: &mut Record<'_>,
    parser: Option<&dyn LineParser>,
    opts: &MergeOptions,
) -> bool {
    let Some(i) = record.find(b"log") else {
        return false;
    };
    let value = record.entry(i).1;
    let bytes = record.bytes(value);
    let mut entries: Vec<(Val, Val)> = Vec::new();
    let parsed_from_string;
    if bytes
        .first()
        .is_some_and(|b| (0x80..=0x8f).contains(b) || *b == 0xde || *b == 0xdf)
    {
        // MERGE_MAP: the fields as they are.
        if !record.map_entries(value, &mut entries) {
            return false;
        }
        parsed_from_string = false;
    } else if let Some(text) = as_str(bytes) {
        let text = text.to_vec();
        let map = match parser {
            Some(p) => {
                let mut w = EventWriter::new();
                if p.parse_line(&text, &mut w, record.time).is_err() {
                    return false;
                }
                let Some(Ok(ev)) = EventReader::new(&w.buf).next() else {
                    return false;
                };
                record.time = ev.time;
                ev.record.to_vec()
            }
            None => {
                let Ok(serde_json::Value::Object(obj)) =
                    serde_json::from_slice::<serde_json::Value>(&text)
                else {
                    return false;
                };
                let mut m = Vec::new();
                write_json_map(&mut m, &obj);
                m
            }
        };
        let v = record.put(&map);
        if !record.map_entries(v, &mut entries) {
            return false;
        }
        parsed_from_string = true;
    } else {
        return false;
    };
    if parsed_from_string && opts.trim {
        for e in entries.iter_mut() {
            if let Some(s) = as_str(record.bytes(e.1)) {
                let n = trim_len(s);
                if n != s.len() {
                    let t = s[..n].to_vec();
                    e.1 = record.put_str(&t);
                }
            }
        }
    }
    if !opts.keep_log {
        record.remove(i);
    }
    match &opts.key {
        Some(key) if !entries.is_empty() => {
            let k = record.put_str(key.as_bytes());
            let mut body = Vec::new();
            write_map_len(&mut body, entries.len());
            for &(ek, ev) in &entries {
                body.extend_from_slice(record.bytes(ek));
                body.extend_from_slice(record.bytes(ev));
            }
            let v = record.put(&body);
            record.push(k, v);
        }
        Some(_) => {}
        None => {
            for (k, v) in entries {
                record.push(k, v);
            }
        }
    }
    record.mark_changed();
    true
}

/// A msgpack string, for tests and callers building keys.
pub fn msgpack_str(s: &str) -> Vec<u8> {
    let mut b = Vec::new();
    write_str(&mut b, s.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_as_fluent_bit_does() {
        assert_eq!(trim_len(b"abc\n"), 3);
        assert_eq!(trim_len(b"abc\n\n"), 3);
        assert_eq!(trim_len(b"abc\\n"), 3);
        assert_eq!(trim_len(b"abc\\r\\n\n"), 3);
        // A carriage return itself stays (Fluent Bit only drops '\n' and the escapes).
        assert_eq!(trim_len(b"abc\r"), 4);
        assert_eq!(trim_len(b"abc"), 3);
        assert_eq!(trim_len(b"\n"), 1);
        assert_eq!(trim_len(b""), 0);
        assert_eq!(trim_len(b"a\n"), 1);
    }
}
