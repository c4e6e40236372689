//! `Format ltsv` (<http://ltsv.org>): `label:value` fields separated by tabs, read as Fluent
//! Bit does. Labels are `[0-9A-Za-z_.-]+`; a value runs to the next tab, line break or NUL.
//! Reading stops at a line break or at a label not followed by `:`; a line without any field is
//! an error.

use super::{patch_header, reserve_header, Header, ParseError, Parser, Value};
use kb_core::event::EventTime;

fn label_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

fn field_byte(c: u8) -> bool {
    !matches!(c, 0 | b'\t' | b'\n' | b'\r')
}

pub(super) fn parse(
    p: &Parser,
    line: &[u8],
    buf: &mut Vec<u8>,
    now: EventTime,
) -> Result<Option<EventTime>, ParseError> {
    let mut time = None;
    let map = reserve_header(buf);
    let mut n = 0;
    let mut c = 0;
    let end = line.len();
    while c < end {
        let label_start = c;
        while c < end && label_byte(line[c]) {
            c += 1;
        }
        let label = &line[label_start..c];
        if c == end || line[c] != b':' {
            break;
        }
        c += 1;
        let field_start = c;
        while c < end && field_byte(line[c]) {
            c += 1;
        }
        let field = &line[field_start..c];
        if !label.is_empty() {
            let mut keep = true;
            if p.is_time_key(label) && !field.is_empty() {
                match p.lookup_time(field, now) {
                    Some(t) => time = Some(t),
                    None => return Err(p.time_error(field)),
                }
                keep = p.time_keep;
            }
            if keep {
                p.write_field(buf, label, Value::Raw(field));
                n += 1;
            }
        }
        if c < end && line[c] == b'\t' {
            c += 1;
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
