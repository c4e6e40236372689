//! The CRI log format backend of the built-in `cri` multiline parser (Fluent Bit's
//! `flb_parser_cri.c`): `<time> <stdout|stderr> <F|P> <log>`.
//!
//! The time is the text up to the first space and must parse with the parser's `Time_Format`;
//! then `stdout ` or `stderr `, then `F ` or `P `; the log runs to the first `\r` or `\n`. The
//! record is always `{time, stream, _p, log}` (the time field is kept).

use super::{patch_header, reserve_header, write_str, Header, ParseError, Parser};
use kb_core::event::EventTime;

pub(super) fn parse(
    p: &Parser,
    line: &[u8],
    buf: &mut Vec<u8>,
    now: EventTime,
) -> Result<Option<EventTime>, ParseError> {
    let Some(sp) = memchr(b' ', line) else {
        return Err(ParseError::NoMatch);
    };
    // Room for " stdout F " after the time.
    if sp + 10 > line.len() {
        return Err(ParseError::NoMatch);
    }
    let time_text = &line[..sp];
    let rest = &line[sp + 1..];
    let stream = &rest[..6];
    if !(rest.starts_with(b"stdout ") || rest.starts_with(b"stderr ")) {
        return Err(ParseError::NoMatch);
    }
    let rest = &rest[7..];
    if !(rest.starts_with(b"F ") || rest.starts_with(b"P ")) {
        return Err(ParseError::NoMatch);
    }
    let tag = &rest[..1];
    let log = &rest[2..];
    let end = log
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(log.len());
    let time = match &p.time_format {
        Some(f) => Some(
            f.parse(time_text, now)
                .ok_or_else(|| p.time_error(time_text))?,
        ),
        None => None,
    };
    let map = reserve_header(buf);
    write_str(buf, p.time_key.as_bytes());
    write_str(buf, time_text);
    write_str(buf, b"stream");
    write_str(buf, stream);
    write_str(buf, b"_p");
    write_str(buf, tag);
    write_str(buf, b"log");
    write_str(buf, &log[..end]);
    patch_header(buf, map, Header::Map, 4);
    Ok(time)
}

fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == c)
}
