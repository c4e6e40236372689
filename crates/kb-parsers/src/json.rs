//! `Format json`: the line must hold exactly one JSON object, which becomes the record (keys in
//! their order, duplicates kept). JSON is transcoded straight to MessagePack: integers stay
//! integers (beyond 64 bits they become floats), other numbers become float64, strings are
//! unescaped in place.
//!
//! The time key is the first top-level key equal to `Time_Key`; only string values are read
//! (Fluent Bit's `time_numeric_unit` is not supported). A value that does not parse leaves the
//! field in place and the current time, as Fluent Bit does. `Types` does not apply to JSON in
//! Fluent Bit and is ignored here too.

use super::{patch_header, reserve_header, Header, ParseError, Parser};
use kb_core::event::EventTime;

/// Deepest nesting accepted (deeper input is rejected instead of exhausting the stack).
const MAX_DEPTH: usize = 128;

/// Byte positions of the time key's entry in the output: where the entry starts, the payload of
/// its value when that is a string, where the entry ends.
struct TimeEntry {
    start: usize,
    value: Option<(usize, usize)>,
    end: usize,
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, ParseError>;

impl Reader<'_> {
    fn err<T>(&self) -> R<T> {
        Err(ParseError::Json(self.pos))
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err()
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return self.err();
        };
        let mut v = 0;
        for &c in h {
            match (c as char).to_digit(16) {
                Some(d) => v = v * 16 + d,
                None => return self.err(),
            }
        }
        self.pos += 4;
        Ok(v)
    }

    /// Read a string (the opening quote is current) into `buf`; returns its payload range.
    fn string(&mut self, buf: &mut Vec<u8>) -> R<(usize, usize)> {
        self.expect(b'"')?;
        let start = self.pos;
        // Log lines carry long plain strings: find their end a word at a time.
        self.pos =
            memchr::memchr2(b'"', b'\\', &self.s[start..]).map_or(self.s.len(), |i| start + i);
        if self.peek() == Some(b'"') {
            // No escapes: copy the slice as is.
            let v = &self.s[start..self.pos];
            self.pos += 1;
            super::write_str(buf, v);
            return Ok((buf.len() - v.len(), buf.len()));
        }
        let hdr = reserve_header(buf);
        let body = buf.len();
        buf.extend_from_slice(&self.s[start..self.pos]);
        loop {
            let Some(c) = self.peek() else {
                return self.err();
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err();
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => buf.push(e),
                        b'n' => buf.push(b'\n'),
                        b't' => buf.push(b'\t'),
                        b'r' => buf.push(b'\r'),
                        b'b' => buf.push(0x08),
                        b'f' => buf.push(0x0c),
                        b'u' => {
                            let hi = self.hex4()?;
                            let mut cp = hi;
                            if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.pos..].starts_with(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                } else {
                                    self.pos = save;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut b = [0u8; 4];
                            buf.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return self.err(),
                    }
                    // Copy the plain run up to the next quote or escape at once.
                    let run = memchr::memchr2(b'"', b'\\', &self.s[self.pos..])
                        .unwrap_or(self.s.len() - self.pos);
                    buf.extend_from_slice(&self.s[self.pos..self.pos + run]);
                    self.pos += run;
                }
                _ => buf.push(c),
            }
        }
        let len = buf.len() - body;
        patch_header(buf, hdr, Header::Str, len);
        Ok((buf.len() - len, buf.len()))
    }

    fn number(&mut self, buf: &mut Vec<u8>) -> R<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |r: &mut Self| {
            let s = r.pos;
            while r.pos < r.s.len() && r.s[r.pos].is_ascii_digit() {
                r.pos += 1;
            }
            r.pos - s
        };
        if digits(self) == 0 {
            return self.err();
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return self.err();
            }
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return self.err();
            }
            float = true;
        }
        // The slice is ASCII digits and signs only.
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("0");
        if !float {
            if let Ok(u) = text.parse::<u64>() {
                let _ = rmp::encode::write_uint(buf, u);
                return Ok(());
            }
            if let Ok(i) = text.parse::<i64>() {
                let _ = rmp::encode::write_sint(buf, i);
                return Ok(());
            }
        }
        let _ = rmp::encode::write_f64(buf, text.parse::<f64>().unwrap_or(0.0));
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.err()
        }
    }

    fn value(&mut self, buf: &mut Vec<u8>, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return self.err();
        }
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(buf, depth, None).map(|_| ()),
            Some(b'[') => {
                self.pos += 1;
                let hdr = reserve_header(buf);
                let mut n = 0;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(buf, depth + 1)?;
                        n += 1;
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.err(),
                        }
                    }
                }
                patch_header(buf, hdr, Header::Array, n);
                Ok(())
            }
            Some(b'"') => self.string(buf).map(|_| ()),
            Some(b't') => self.literal(b"true").map(|()| buf.push(0xc3)),
            Some(b'f') => self.literal(b"false").map(|()| buf.push(0xc2)),
            Some(b'n') => self.literal(b"null").map(|()| buf.push(0xc0)),
            Some(b'-' | b'0'..=b'9') => self.number(buf),
            _ => self.err(),
        }
    }

    /// Read an object (returning its entry count); with `time_key`, also report the first
    /// entry whose key is it.
    fn object(
        &mut self,
        buf: &mut Vec<u8>,
        depth: usize,
        time_key: Option<&[u8]>,
    ) -> R<(usize, Option<TimeEntry>)> {
        self.expect(b'{')?;
        let hdr = reserve_header(buf);
        let mut n = 0;
        let mut found = None;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                let entry = buf.len();
                let (ks, ke) = self.string(buf)?;
                self.ws();
                self.expect(b':')?;
                self.ws();
                let is_time = found.is_none() && time_key.is_some_and(|t| &buf[ks..ke] == t);
                let str_value = if is_time && self.peek() == Some(b'"') {
                    Some(self.string(buf)?)
                } else {
                    self.value(buf, depth + 1)?;
                    None
                };
                if is_time {
                    found = Some(TimeEntry {
                        start: entry,
                        value: str_value,
                        end: buf.len(),
                    });
                }
                n += 1;
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.err(),
                }
            }
        }
        // Report positions relative to the reserved 5-byte header, as patching moves the body.
        let found = found.map(|e: TimeEntry| TimeEntry {
            start: e.start - hdr,
            value: e.value.map(|(x, y)| (x - hdr, y - hdr)),
            end: e.end - hdr,
        });
        patch_header(buf, hdr, Header::Map, n);
        Ok((n, found))
    }
}

pub(super) fn parse(
    p: &Parser,
    line: &[u8],
    buf: &mut Vec<u8>,
    now: EventTime,
) -> Result<Option<EventTime>, ParseError> {
    let mut r = Reader { s: line, pos: 0 };
    r.ws();
    if r.peek() != Some(b'{') {
        // Valid JSON but not an object, or not JSON at all.
        let mut scratch = Vec::new();
        return match r.value(&mut scratch, 0) {
            Ok(()) => Err(ParseError::NotAnObject),
            Err(e) => Err(e),
        };
    }
    let map = buf.len();
    let time_key = p.time_format.as_ref().map(|_| p.time_key.as_bytes());
    let (n, found) = r.object(buf, 0, time_key)?;
    r.ws();
    if r.pos != line.len() {
        return r.err();
    }
    let Some(TimeEntry {
        start: entry,
        value: Some((vs, ve)),
        end: entry_end,
    }) = found
    else {
        return Ok(None);
    };
    // Offsets are from the reserved header; the patched header is 5 - hdr_len bytes shorter.
    let hdr_len = header_len(buf[map]);
    let shift = |x: usize| map + x - (5 - hdr_len);
    let (vs, ve) = (shift(vs), shift(ve));
    let Some(time) = p.lookup_time(&buf[vs..ve], now) else {
        return Ok(None);
    };
    if !p.time_keep {
        buf.drain(shift(entry)..shift(entry_end));
        // Rewrite the header for one entry less (it may shrink).
        buf.splice(map..map + hdr_len, [0u8; 5]);
        patch_header(buf, map, Header::Map, n - 1);
    }
    Ok(Some(time))
}

fn header_len(first: u8) -> usize {
    match first {
        0xde => 3,
        0xdf => 5,
        _ => 1,
    }
}
