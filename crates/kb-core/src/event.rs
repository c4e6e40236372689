//! Fluent Bit's event layout: `[[EventTime, {metadata}], {record}]`, EventTime being msgpack
//! ext type 0 with 4-byte big-endian seconds and nanoseconds. The legacy `[time, {record}]`
//! form (integer, float or EventTime first) is read too, as forward clients still send it.

use crate::msgpack::{Cursor, MsgpackError};
use std::time::{SystemTime, UNIX_EPOCH};

/// An event timestamp with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EventTime {
    pub secs: u32,
    pub nanos: u32,
}

impl EventTime {
    /// Timestamp from seconds and nanoseconds.
    pub fn new(secs: u32, nanos: u32) -> Self {
        EventTime { secs, nanos }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        EventTime {
            secs: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            nanos: d.subsec_nanos(),
        }
    }

    /// Seconds as a float, as Fluent Bit's `double` date format prints it.
    pub fn as_f64(self) -> f64 {
        f64::from(self.secs) + f64::from(self.nanos) / 1e9
    }

    pub(crate) fn from_f64(v: f64) -> Self {
        if !v.is_finite() || v <= 0.0 {
            return EventTime::default();
        }
        let secs = v.trunc();
        EventTime {
            secs: secs.min(f64::from(u32::MAX)) as u32,
            nanos: ((v - secs) * 1e9).round().min(999_999_999.0) as u32,
        }
    }
}

/// Appends events in Fluent Bit's layout to a byte buffer.
///
/// The caller writes the record map itself right after [`EventWriter::begin`] (with rmp's
/// encode functions or [`EventWriter::write_json_record`]) so no intermediate value is built.
#[derive(Debug, Default)]
pub struct EventWriter {
    pub buf: Vec<u8>,
    pub count: usize,
}

impl EventWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start an event: writes `[[time, {}],` and leaves the record to the caller.
    pub fn begin(&mut self, time: EventTime) {
        write_event_header(&mut self.buf, time);
        self.count += 1;
    }

    /// Append one whole event whose record is a JSON object.
    pub fn write_json_record(
        &mut self,
        time: EventTime,
        record: &serde_json::Map<String, serde_json::Value>,
    ) {
        self.begin(time);
        write_json_map(&mut self.buf, record);
    }

    /// Forget everything written.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

/// Write `[[time, {}],` — the event header up to the record.
pub fn write_event_header(buf: &mut Vec<u8>, time: EventTime) {
    buf.push(0x92); // [header, record]
    buf.push(0x92); // [time, metadata]
    buf.extend_from_slice(&[0xd7, 0x00]); // fixext8, type 0 = EventTime
    buf.extend_from_slice(&time.secs.to_be_bytes());
    buf.extend_from_slice(&time.nanos.to_be_bytes());
    buf.push(0x80); // empty metadata map
}

/// Encode a JSON value as MessagePack (integers stay integers, floats become float64).
pub fn write_json_value(buf: &mut Vec<u8>, v: &serde_json::Value) {
    use rmp::encode;
    // Writing into a Vec cannot fail, so the io results are ignored.
    match v {
        serde_json::Value::Null => {
            let _ = encode::write_nil(buf);
        }
        serde_json::Value::Bool(b) => {
            let _ = encode::write_bool(buf, *b);
        }
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = encode::write_uint(buf, u);
            } else if let Some(i) = n.as_i64() {
                let _ = encode::write_sint(buf, i);
            } else {
                let _ = encode::write_f64(buf, n.as_f64().unwrap_or(0.0));
            }
        }
        serde_json::Value::String(s) => {
            let _ = encode::write_str(buf, s);
        }
        serde_json::Value::Array(a) => {
            let _ = encode::write_array_len(buf, a.len() as u32);
            for x in a {
                write_json_value(buf, x);
            }
        }
        serde_json::Value::Object(m) => write_json_map(buf, m),
    }
}

/// Encode a JSON object as a MessagePack map.
pub fn write_json_map(buf: &mut Vec<u8>, m: &serde_json::Map<String, serde_json::Value>) {
    let _ = rmp::encode::write_map_len(buf, m.len() as u32);
    for (k, v) in m {
        let _ = rmp::encode::write_str(buf, k);
        write_json_value(buf, v);
    }
}

/// One event borrowed from a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub time: EventTime,
    /// The metadata map's msgpack bytes (`{}` for legacy events).
    pub metadata: &'a [u8],
    /// The record's msgpack bytes (normally a map).
    pub record: &'a [u8],
    /// The whole event's msgpack bytes.
    pub raw: &'a [u8],
}

/// Iterates the events of a msgpack buffer without copying.
#[derive(Debug, Clone)]
pub struct EventReader<'a> {
    cursor: Cursor<'a>,
}

const EMPTY_MAP: &[u8] = &[0x80];

impl<'a> EventReader<'a> {
    /// A reader over concatenated events.
    pub fn new(data: &'a [u8]) -> Self {
        EventReader {
            cursor: Cursor::new(data),
        }
    }

    fn read_time(c: &mut Cursor<'a>) -> Result<EventTime, MsgpackError> {
        let m = c.peek()?;
        if matches!(m, 0xd7 | 0xc7) {
            let (ty, data) = c.read_ext()?;
            if ty != 0 || data.len() != 8 {
                return Err(MsgpackError::Unexpected(m));
            }
            let secs = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            Ok(EventTime { secs, nanos })
        } else {
            Ok(EventTime::from_f64(c.read_number()?))
        }
    }

    fn read_event(c: &mut Cursor<'a>) -> Result<Event<'a>, MsgpackError> {
        let start = c.position();
        let all = c.clone();
        if c.read_array_len()? != 2 {
            return Err(MsgpackError::Unexpected(all.peek()?));
        }
        let (time, metadata) = if (0x90..=0x9f).contains(&c.peek()?) {
            // v2: [time, metadata]
            let n = c.read_array_len()?;
            if n != 2 {
                return Err(MsgpackError::Unexpected(0x90 | n as u8));
            }
            let time = Self::read_time(c)?;
            (time, c.skip_value()?)
        } else {
            (Self::read_time(c)?, EMPTY_MAP)
        };
        let record = c.skip_value()?;
        let raw = &all.rest()[..c.position() - start];
        Ok(Event {
            time,
            metadata,
            record,
            raw,
        })
    }
}

impl<'a> Iterator for EventReader<'a> {
    type Item = Result<Event<'a>, MsgpackError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.cursor.is_empty() {
            return None;
        }
        let r = Self::read_event(&mut self.cursor);
        if r.is_err() {
            // Stop after the first error: the rest of the buffer cannot be framed reliably.
            self.cursor = Cursor::new(&[]);
        }
        Some(r)
    }
}

/// Count the events in a buffer, failing on the first malformed one.
pub fn count_events(data: &[u8]) -> Result<usize, MsgpackError> {
    let mut n = 0;
    for e in EventReader::new(data) {
        e?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fluent_bit_layout_and_reads_it_back() {
        let mut w = EventWriter::new();
        let rec = serde_json::json!({"a": 1, "b": "x"});
        w.write_json_record(EventTime::new(1_700_000_000, 5), rec.as_object().unwrap());
        let v = rmpv::decode::read_value(&mut &w.buf[..]).unwrap();
        let arr = v.as_array().unwrap();
        let hdr = arr[0].as_array().unwrap();
        assert_eq!(
            hdr[0],
            rmpv::Value::Ext(0, vec![0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 5])
        );
        assert_eq!(hdr[1], rmpv::Value::Map(vec![]));
        let events: Vec<_> = EventReader::new(&w.buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].time, EventTime::new(1_700_000_000, 5));
        assert_eq!(events[0].raw, &w.buf[..]);
    }

    #[test]
    fn reads_legacy_events() {
        let mut buf = Vec::new();
        let v = rmpv::Value::Array(vec![
            rmpv::Value::from(1_700_000_000u32),
            rmpv::Value::Map(vec![(rmpv::Value::from("k"), rmpv::Value::from("v"))]),
        ]);
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let v = rmpv::Value::Array(vec![rmpv::Value::F64(1.5), rmpv::Value::Map(vec![])]);
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let events: Vec<_> = EventReader::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(events[0].time, EventTime::new(1_700_000_000, 0));
        assert_eq!(events[0].metadata, EMPTY_MAP);
        assert_eq!(events[1].time, EventTime::new(1, 500_000_000));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(count_events(&[0x92, 0x01]).is_err());
        assert!(count_events(&[0xc1]).is_err());
        assert_eq!(count_events(&[]), Ok(0));
    }
}
