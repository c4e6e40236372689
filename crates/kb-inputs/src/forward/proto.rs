//! Fluent Forward Protocol v1 frames: finding where a frame ends in a growing buffer
//! ([`FrameScanner`]) and turning a complete frame into events in kinesis-bit's layout
//! ([`decode_frame`]), or reading the `PING` of the secure-forward handshake ([`parse_ping`]).
//!
//! Accepted frames (`option` is an optional map, or `nil` as old Docker versions send):
//! * Message: `[tag, time, record(, option)]`; a `metadata` map option becomes the event's
//!   metadata (as in Fluent Bit);
//! * Forward: `[tag, [[time, record], ...](, option)]`;
//! * PackedForward: `[tag, bin/str of concatenated [time, record] events(, option)]`;
//! * CompressedPackedForward: PackedForward with `compressed: "gzip"` (several concatenated
//!   members allowed) or `"zstd"`; as in Fluent Bit, the data's magic bytes win over the option
//!   when the frame has an option map.
//!
//! `chunk` asks for an ack; other option keys are ignored. `time` is an integer, a float or an
//! EventTime (ext type 0); entries may also use the v2 layout `[[time, metadata], record]`,
//! whose metadata map is kept. Records and metadata must be maps. Anything else is an error:
//! nothing here panics on any input.

use std::io::Read;

use kb_core::event::EventTime;
use kb_core::msgpack::{Cursor, Head, MsgpackError};

use crate::util::write_header_with_metadata;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid msgpack: {0}")]
    Msgpack(#[from] MsgpackError),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("decompressed entries exceed {0} bytes")]
    TooLarge(usize),
}

fn invalid(what: &'static str) -> impl FnOnce(MsgpackError) -> FrameError {
    move |_| FrameError::Invalid(what)
}

/// Finds the end of the first complete msgpack value of a buffer that grows between calls,
/// resuming where the previous call stopped (so a large frame arriving in many reads is
/// scanned once).
#[derive(Debug, Default, Clone)]
pub struct FrameScanner {
    /// Bytes of the current value scanned so far.
    pos: usize,
    /// Values still to scan (0 = no value in progress).
    pending: usize,
}

impl FrameScanner {
    /// A scanner at the start of a value.
    pub fn new() -> Self {
        Self::default()
    }

    /// The length of the first complete value of `buf`, or `None` when more bytes are needed.
    /// Until a length is returned, every call must see the same bytes followed by new ones;
    /// after it, the scanner starts over with the next value (`buf` then starts after the
    /// returned frame). A malformed value is an error (the scanner is then reset).
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, MsgpackError> {
        if self.pending == 0 {
            self.pending = 1;
            self.pos = 0;
        }
        while self.pending > 0 {
            let mut c = Cursor::new(buf.get(self.pos..).unwrap_or_default());
            let n = match c.head() {
                Ok(Head::Array(n)) => n,
                Ok(Head::Map(n)) => n.saturating_mul(2),
                Ok(_) => 0,
                Err(MsgpackError::Truncated) => return Ok(None),
                Err(e) => {
                    self.pending = 0;
                    self.pos = 0;
                    return Err(e);
                }
            };
            self.pos += c.position();
            self.pending = (self.pending - 1).saturating_add(n);
        }
        let len = self.pos;
        self.pos = 0;
        Ok(Some(len))
    }

    /// Bytes of the unfinished value scanned so far.
    pub fn scanned(&self) -> usize {
        self.pos
    }
}

/// What [`decode_frame`] found besides the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The frame's tag bytes.
    pub tag: &'a [u8],
    /// The `chunk` option: the client waits for `{"ack": chunk}`.
    pub chunk: Option<&'a [u8]>,
    /// Number of events written.
    pub events: usize,
}

#[derive(Default)]
struct Options<'a> {
    /// Whether the frame had an option map (a `nil` option counts as none).
    present: bool,
    chunk: Option<&'a [u8]>,
    compressed: Option<&'a [u8]>,
    /// The `metadata` map of a Message (a Fluent Bit extension).
    metadata: Option<&'a [u8]>,
}

fn read_options<'a>(c: &mut Cursor<'a>) -> Result<Options<'a>, FrameError> {
    let mut o = Options::default();
    if c.peek()? == 0xc0 {
        c.head()?;
        return Ok(o);
    }
    let n = c
        .read_map_len()
        .map_err(invalid("the option must be a map"))?;
    c.check_count(n)?;
    o.present = true;
    for _ in 0..n {
        let key = match c.head()? {
            Head::Str(k) => Some(k),
            Head::Array(_) | Head::Map(_) => return Err(FrameError::Invalid("bad option key")),
            _ => None,
        };
        match key {
            Some(b"chunk") => o.chunk = Some(c.read_str().map_err(invalid("bad chunk"))?),
            Some(b"compressed") => match c.head()? {
                Head::Str(v) => o.compressed = Some(v),
                Head::Array(_) | Head::Map(_) => {
                    return Err(FrameError::Invalid("bad compressed option"))
                }
                _ => {}
            },
            Some(b"metadata") => o.metadata = Some(read_map(c, "bad metadata option")?),
            _ => {
                c.skip_value()?;
            }
        }
    }
    Ok(o)
}

fn is_map(marker: u8) -> bool {
    matches!(marker, 0x80..=0x8f | 0xde | 0xdf)
}

fn is_array(marker: u8) -> bool {
    matches!(marker, 0x90..=0x9f | 0xdc | 0xdd)
}

fn is_str_or_bin(marker: u8) -> bool {
    matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6)
}

/// Read an event time: EventTime ext (type 0, 8 bytes), integer or float seconds.
fn read_time(c: &mut Cursor<'_>) -> Result<EventTime, FrameError> {
    Ok(match c.head()? {
        Head::Ext(0, d) if d.len() == 8 => EventTime::new(
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
            u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        ),
        Head::Uint(v) => EventTime::new(u32::try_from(v).unwrap_or(u32::MAX), 0),
        Head::Int(v) => EventTime::new(u32::try_from(v.max(0)).unwrap_or(u32::MAX), 0),
        Head::Float(v) if v.is_finite() && v > 0.0 => {
            let secs = v.trunc();
            EventTime::new(
                secs.min(f64::from(u32::MAX)) as u32,
                ((v - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32,
            )
        }
        Head::Float(_) => EventTime::default(),
        _ => return Err(FrameError::Invalid("invalid event time")),
    })
}

fn read_map<'a>(c: &mut Cursor<'a>, what: &'static str) -> Result<&'a [u8], FrameError> {
    if !is_map(c.peek()?) {
        return Err(FrameError::Invalid(what));
    }
    Ok(c.skip_value()?)
}

/// Read one `[time, record]` or `[[time, metadata], record]` entry and write it as an event.
fn write_entry(c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if c.read_array_len()
        .map_err(invalid("an entry must be an array"))?
        != 2
    {
        return Err(FrameError::Invalid("an entry must be an array of 2"));
    }
    let (time, metadata) = if is_array(c.peek()?) {
        if c.read_array_len()? != 2 {
            return Err(FrameError::Invalid(
                "an event header must be [time, metadata]",
            ));
        }
        let time = read_time(c)?;
        (time, read_map(c, "metadata must be a map")?)
    } else {
        (read_time(c)?, &[0x80u8][..])
    };
    let record = read_map(c, "a record must be a map")?;
    write_header_with_metadata(out, time, metadata);
    out.extend_from_slice(record);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
}

/// The compression of PackedForward entries, as Fluent Bit decides it: only when the frame has
/// an option map; the data's magic bytes win over the `compressed` option, which is used when
/// the data has no known magic. Unknown `compressed` values count as none.
fn compression(options: &Options<'_>, data: &[u8]) -> Option<Compression> {
    if !options.present {
        return None;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        return Some(Compression::Gzip);
    }
    if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Compression::Zstd);
    }
    match options.compressed {
        Some(b"gzip") => Some(Compression::Gzip),
        Some(b"zstd") => Some(Compression::Zstd),
        _ => None,
    }
}

/// Decompress (every concatenated gzip member or zstd frame), failing beyond `limit` bytes.
fn decompress(kind: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = match kind {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(data)
            .take(cap)
            .read_to_end(&mut out),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data).and_then(|d| d.take(cap).read_to_end(&mut out))
        }
    };
    read.map_err(|_| match kind {
        Compression::Gzip => FrameError::Invalid("invalid gzip data"),
        Compression::Zstd => FrameError::Invalid("invalid zstd data"),
    })?;
    if out.len() > limit {
        return Err(FrameError::TooLarge(limit));
    }
    Ok(out)
}

/// Decode one complete frame, appending its events to `out` in kinesis-bit's layout
/// (`[[EventTime, metadata], record]`). `max_decompressed` bounds gzip entries. On error,
/// `out` may hold part of the frame's events: the caller discards them.
pub fn decode_frame<'a>(
    frame: &'a [u8],
    max_decompressed: usize,
    out: &mut Vec<u8>,
) -> Result<Decoded<'a>, FrameError> {
    let mut c = Cursor::new(frame);
    let n = c
        .read_array_len()
        .map_err(invalid("a frame must be an array"))?;
    if !(2..=4).contains(&n) {
        return Err(FrameError::Invalid(
            "a frame must be an array of 2 to 4 elements",
        ));
    }
    let tag = c.read_str().map_err(invalid("the tag must be a string"))?;
    let second = c.peek()?;
    let mut events = 0;
    let options;
    if is_array(second) {
        // Forward
        if n > 3 {
            return Err(FrameError::Invalid("a Forward frame has 2 or 3 elements"));
        }
        let count = c.read_array_len()?;
        c.check_count(count)?;
        for _ in 0..count {
            write_entry(&mut c, out)?;
            events += 1;
        }
        options = if n == 3 {
            read_options(&mut c)?
        } else {
            Options::default()
        };
    } else if is_str_or_bin(second) {
        // PackedForward / CompressedPackedForward
        if n > 3 {
            return Err(FrameError::Invalid(
                "a PackedForward frame has 2 or 3 elements",
            ));
        }
        let data = c.read_str()?;
        options = if n == 3 {
            read_options(&mut c)?
        } else {
            Options::default()
        };
        let unpacked;
        let data = match compression(&options, data) {
            None => data,
            Some(kind) => {
                unpacked = decompress(kind, data, max_decompressed)?;
                &unpacked[..]
            }
        };
        let mut e = Cursor::new(data);
        while !e.is_empty() {
            write_entry(&mut e, out)?;
            events += 1;
        }
    } else {
        // Message
        if n < 3 {
            return Err(FrameError::Invalid("a Message frame has 3 or 4 elements"));
        }
        let time = read_time(&mut c)?;
        let record = read_map(&mut c, "a record must be a map")?;
        options = if n == 4 {
            read_options(&mut c)?
        } else {
            Options::default()
        };
        write_header_with_metadata(out, time, options.metadata.unwrap_or(&[0x80]));
        out.extend_from_slice(record);
        events = 1;
    }
    if !c.is_empty() {
        return Err(FrameError::Invalid("trailing bytes after the frame"));
    }
    Ok(Decoded {
        tag,
        chunk: options.chunk,
        events,
    })
}

/// The client's `PING` of the secure-forward handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping<'a> {
    pub hostname: &'a [u8],
    pub shared_key_salt: &'a [u8],
    /// Hex SHA-512 of salt + hostname + nonce + shared key.
    pub shared_key_digest: &'a [u8],
    pub username: &'a [u8],
    /// Hex SHA-512 of auth salt + username + password.
    pub password_digest: &'a [u8],
}

/// Read `["PING", hostname, shared_key_salt, digest, username, password_digest]`.
pub fn parse_ping(frame: &[u8]) -> Result<Ping<'_>, FrameError> {
    let mut c = Cursor::new(frame);
    let bad = invalid("invalid PING message");
    if c.read_array_len().map_err(bad)? != 6 {
        return Err(FrameError::Invalid("invalid PING message"));
    }
    let mut s = || c.read_str().map_err(invalid("invalid PING message"));
    if s()? != b"PING" {
        return Err(FrameError::Invalid("expected a PING message"));
    }
    Ok(Ping {
        hostname: s()?,
        shared_key_salt: s()?,
        shared_key_digest: s()?,
        username: s()?,
        password_digest: s()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_resumes_across_pieces() {
        let frame = [0x92, 0xa1, b't', 0x91, 0x92, 0x01, 0x80];
        let mut s = FrameScanner::new();
        for end in 0..frame.len() {
            assert_eq!(s.scan(&frame[..end]), Ok(None), "prefix {end}");
        }
        assert_eq!(s.scan(&frame), Ok(Some(frame.len())));
        assert_eq!(s.scan(&[0xc1]), Err(MsgpackError::Unexpected(0xc1)));
    }

    #[test]
    fn message_with_integer_time() {
        let frame = [0x93, 0xa1, b't', 0x05, 0x81, 0xa1, b'k', 0x01];
        let mut out = Vec::new();
        let d = decode_frame(&frame, 100, &mut out).unwrap();
        assert_eq!((d.tag, d.chunk, d.events), (&b"t"[..], None, 1));
        let ev: Vec<_> = kb_core::event::EventReader::new(&out).collect();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].unwrap().time, EventTime::new(5, 0));
    }
}
