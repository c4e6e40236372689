//! A record as filters see it: its top-level map as a list of key/value pairs whose bytes stay
//! where they are — in the event being filtered, or in a scratch buffer for what filters made.
//! A chain of filters decodes a record once, changes only what it changes and encodes it once;
//! Fluent Bit instead decodes and re-encodes every record in every filter. Nothing here
//! allocates once the buffers have grown to the records' size.

use crate::event::EventTime;
use crate::msgpack::{Cursor, Head, MsgpackError};

/// Where a value's msgpack bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// The event being filtered.
    Input,
    /// The record's scratch buffer.
    Scratch,
}

/// One msgpack value of a record (a key or a value): a range of bytes in the event or in the
/// scratch buffer. Copying a `Val` copies no bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Val {
    src: Src,
    start: u32,
    end: u32,
}

/// The reusable buffers of a [`Record`].
#[derive(Debug, Default)]
pub struct RecordBuf {
    fields: Vec<(Val, Val)>,
    scratch: Vec<u8>,
}

/// A record being filtered.
pub struct Record<'a> {
    /// The event's time.
    pub time: EventTime,
    input: &'a [u8],
    metadata: Val,
    fields: &'a mut Vec<(Val, Val)>,
    scratch: &'a mut Vec<u8>,
    changed: bool,
}

/// What can go wrong reading an event into a [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Msgpack(#[from] MsgpackError),
    #[error("the record is not a map")]
    NotAMap,
}

fn val(src: Src, start: usize, end: usize) -> Val {
    Val {
        src,
        start: start as u32,
        end: end as u32,
    }
}

/// The payload of a msgpack string (or bin) value, if it is one.
#[inline]
pub fn as_str(bytes: &[u8]) -> Option<&[u8]> {
    // Keys and most values are short strings: read their header here, not through the
    // general decoder (filters look keys up once per entry and rule).
    match bytes.first() {
        Some(&m @ 0xa0..=0xbf) => return bytes.get(1..1 + (m & 0x1f) as usize),
        Some(0xd9) => {
            let n = *bytes.get(1)? as usize;
            return bytes.get(2..2 + n);
        }
        _ => {}
    }
    match Cursor::new(bytes).head() {
        Ok(Head::Str(s)) | Ok(Head::Bin(s)) => Some(s),
        _ => None,
    }
}

/// Append a msgpack string to `buf`.
#[inline]
pub fn write_str(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
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
    buf.extend_from_slice(s);
}

/// Append a msgpack map header of `n` entries to `buf`.
pub fn write_map_len(buf: &mut Vec<u8>, n: usize) {
    if n < 16 {
        buf.push(0x80 | n as u8);
    } else if n < 65_536 {
        buf.push(0xde);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdf);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Append a msgpack array header of `n` elements to `buf`.
pub fn write_array_len(buf: &mut Vec<u8>, n: usize) {
    if n < 16 {
        buf.push(0x90 | n as u8);
    } else if n < 65_536 {
        buf.push(0xdc);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdd);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Write `[[time, ` — an event's start, up to its metadata.
pub fn write_event_start(out: &mut Vec<u8>, time: EventTime) {
    out.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
    out.extend_from_slice(&time.secs.to_be_bytes());
    out.extend_from_slice(&time.nanos.to_be_bytes());
}

impl RecordBuf {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read the event `raw` (time, metadata, record map) into a record borrowing these
    /// buffers. `raw` must be one whole event.
    pub fn read<'a>(&'a mut self, raw: &'a [u8]) -> Result<Record<'a>, RecordError> {
        self.fields.clear();
        self.scratch.clear();
        let mut c = Cursor::new(raw);
        if c.read_array_len()? != 2 {
            return Err(RecordError::Msgpack(MsgpackError::Unexpected(raw[0])));
        }
        let (time, metadata) = if (0x90..=0x9f).contains(&c.peek()?) {
            if c.read_array_len()? != 2 {
                return Err(RecordError::Msgpack(MsgpackError::Unexpected(0x90)));
            }
            let time = read_time(&mut c)?;
            let start = c.position();
            c.skip_value()?;
            (time, val(Src::Input, start, c.position()))
        } else {
            // Legacy `[time, record]`: an empty metadata map, written from scratch.
            let time = read_time(&mut c)?;
            self.scratch.push(0x80);
            (time, val(Src::Scratch, 0, 1))
        };
        let n = match c.head()? {
            Head::Map(n) => n,
            _ => return Err(RecordError::NotAMap),
        };
        c.check_count(n.saturating_mul(2))?;
        for _ in 0..n {
            let ks = c.position();
            c.skip_value()?;
            let ke = c.position();
            c.skip_value()?;
            self.fields
                .push((val(Src::Input, ks, ke), val(Src::Input, ke, c.position())));
        }
        Ok(Record {
            time,
            input: raw,
            metadata,
            fields: &mut self.fields,
            scratch: &mut self.scratch,
            changed: false,
        })
    }
}

fn read_time(c: &mut Cursor<'_>) -> Result<EventTime, MsgpackError> {
    let m = c.peek()?;
    if matches!(m, 0xd7 | 0xc7) {
        let (ty, data) = c.read_ext()?;
        if ty != 0 || data.len() != 8 {
            return Err(MsgpackError::Unexpected(m));
        }
        let secs = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        Ok(EventTime::new(secs, nanos))
    } else {
        Ok(EventTime::from_f64(c.read_number()?))
    }
}

impl<'a> Record<'a> {
    /// The bytes of `v`.
    #[inline]
    pub fn bytes(&self, v: Val) -> &[u8] {
        let (s, e) = (v.start as usize, v.end as usize);
        match v.src {
            Src::Input => &self.input[s..e],
            Src::Scratch => &self.scratch[s..e],
        }
    }

    /// Number of top-level entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether a filter changed the record.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Mark the record changed (a filter that only set [`Record::time`]).
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Entry `i` as key and value handles.
    #[inline]
    pub fn entry(&self, i: usize) -> (Val, Val) {
        self.fields[i]
    }

    /// The key of entry `i` as text (string and bin keys; other keys give `None`).
    #[inline]
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        as_str(self.bytes(self.fields[i].0))
    }

    /// The msgpack bytes of entry `i`'s value.
    #[inline]
    pub fn value(&self, i: usize) -> &[u8] {
        self.bytes(self.fields[i].1)
    }

    /// The value of entry `i` as text, when it is a string (or bin).
    #[inline]
    pub fn str_value(&self, i: usize) -> Option<&[u8]> {
        as_str(self.value(i))
    }

    /// The first entry whose key is `name`.
    #[inline]
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        (0..self.fields.len()).find(|&i| self.key(i) == Some(name))
    }

    /// The metadata map's msgpack bytes.
    pub fn metadata(&self) -> &[u8] {
        self.bytes(self.metadata)
    }

    /// Replace the metadata map with `map` (msgpack bytes of a map).
    pub fn set_metadata(&mut self, map: &[u8]) {
        self.metadata = self.put(map);
        self.changed = true;
    }

    /// Copy `bytes` into the scratch buffer; returns its handle.
    pub fn put(&mut self, bytes: &[u8]) -> Val {
        let start = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        val(Src::Scratch, start, self.scratch.len())
    }

    /// A string value in the scratch buffer.
    pub fn put_str(&mut self, s: &[u8]) -> Val {
        let start = self.scratch.len();
        write_str(self.scratch, s);
        val(Src::Scratch, start, self.scratch.len())
    }

    /// Build a value directly in the scratch buffer with `f`; returns its handle.
    pub fn build(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> Val {
        let start = self.scratch.len();
        f(self.scratch);
        val(Src::Scratch, start, self.scratch.len())
    }

    /// Append an entry.
    pub fn push(&mut self, key: Val, value: Val) {
        self.fields.push((key, value));
        self.changed = true;
    }

    /// Append a `key: "value"` entry (both strings).
    pub fn push_str(&mut self, key: &[u8], value: &[u8]) {
        let k = self.put_str(key);
        let v = self.put_str(value);
        self.push(k, v);
    }

    /// Insert an entry at position `i`.
    pub fn insert(&mut self, i: usize, key: Val, value: Val) {
        self.fields.insert(i, (key, value));
        self.changed = true;
    }

    /// Remove entry `i`.
    pub fn remove(&mut self, i: usize) -> (Val, Val) {
        self.changed = true;
        self.fields.remove(i)
    }

    /// Keep the entries for which `keep(record, i)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&Record<'_>, usize) -> bool) {
        let mut i = 0;
        let mut out = 0;
        while i < self.fields.len() {
            if keep(self, i) {
                self.fields.swap(out, i);
                out += 1;
            }
            i += 1;
        }
        if out != self.fields.len() {
            self.fields.truncate(out);
            self.changed = true;
        }
    }

    /// Replace the key of entry `i`.
    pub fn set_key(&mut self, i: usize, key: Val) {
        self.fields[i].0 = key;
        self.changed = true;
    }

    /// Replace the value of entry `i`.
    pub fn set_value(&mut self, i: usize, value: Val) {
        self.fields[i].1 = value;
        self.changed = true;
    }

    /// Move entry `from` to position `to` (others shift).
    pub fn move_entry(&mut self, from: usize, to: usize) {
        let e = self.fields.remove(from);
        self.fields.insert(to, e);
        self.changed = true;
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.fields.clear();
        self.changed = true;
    }

    /// Replace all entries with those of the msgpack map `map` (copied to scratch).
    pub fn replace_with_map(&mut self, map: &[u8]) -> Result<(), RecordError> {
        let base = self.scratch.len();
        self.scratch.extend_from_slice(map);
        self.fields.clear();
        self.changed = true;
        self.read_map_entries(base)
    }

    /// Replace the entries with those of the msgpack map `map` (copied to scratch), followed
    /// by the current entries `i` for which `keep(i)` holds, in their order. Kept entries are
    /// not copied (the parser filter's `Reserve_Data` path).
    pub fn replace_keeping(
        &mut self,
        map: &[u8],
        keep: impl Fn(usize) -> bool,
    ) -> Result<(), RecordError> {
        let old = self.fields.len();
        let base = self.scratch.len();
        self.scratch.extend_from_slice(map);
        if let Err(e) = self.read_map_entries(base) {
            self.fields.truncate(old);
            self.scratch.truncate(base);
            return Err(e);
        }
        self.fields.rotate_left(old);
        let new = self.fields.len() - old;
        let mut out = new;
        for i in 0..old {
            if keep(i) {
                self.fields.swap(out, new + i);
                out += 1;
            }
        }
        self.fields.truncate(out);
        self.changed = true;
        Ok(())
    }

    /// Append the entries of the msgpack map at scratch offset `base` to the record.
    fn read_map_entries(&mut self, base: usize) -> Result<(), RecordError> {
        let data = &self.scratch[base..];
        let mut c = Cursor::new(data);
        let n = match c.head()? {
            Head::Map(n) => n,
            _ => return Err(RecordError::NotAMap),
        };
        c.check_count(n.saturating_mul(2))?;
        for _ in 0..n {
            let ks = c.position();
            c.skip_value()?;
            let ke = c.position();
            c.skip_value()?;
            self.fields.push((
                val(Src::Scratch, base + ks, base + ke),
                val(Src::Scratch, base + ke, base + c.position()),
            ));
        }
        Ok(())
    }

    /// The entries of the map value `v` as key/value handles (into the same buffer as `v`),
    /// appended to `out`; `false` when `v` is not a map.
    pub fn map_entries(&self, v: Val, out: &mut Vec<(Val, Val)>) -> bool {
        let data = self.bytes(v);
        let mut c = Cursor::new(data);
        let Ok(Head::Map(n)) = c.head() else {
            return false;
        };
        if c.check_count(n.saturating_mul(2)).is_err() {
            return false;
        }
        let base = v.start as usize;
        for _ in 0..n {
            let ks = c.position();
            if c.skip_value().is_err() {
                return false;
            }
            let ke = c.position();
            if c.skip_value().is_err() {
                return false;
            }
            out.push((
                val(v.src, base + ks, base + ke),
                val(v.src, base + ke, base + c.position()),
            ));
        }
        true
    }

    /// Write the record's map (without the event header) to `out`.
    pub fn write_map(&self, out: &mut Vec<u8>) {
        write_map_len(out, self.fields.len());
        for &(k, v) in self.fields.iter() {
            out.extend_from_slice(self.bytes(k));
            out.extend_from_slice(self.bytes(v));
        }
    }

    /// Write the whole event to `out`: unchanged events are copied as they came.
    pub fn write_event(&self, out: &mut Vec<u8>) {
        if !self.changed {
            out.extend_from_slice(self.input);
            return;
        }
        write_event_start(out, self.time);
        out.extend_from_slice(self.metadata());
        self.write_map(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventReader, EventWriter};

    fn event(json: &str) -> Vec<u8> {
        let mut w = EventWriter::new();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        w.write_json_record(EventTime::new(7, 8), v.as_object().unwrap());
        w.buf
    }

    fn record_json(raw: &[u8]) -> String {
        let e = EventReader::new(raw).next().unwrap().unwrap();
        let v = rmpv::decode::read_value(&mut &e.record[..]).unwrap();
        serde_json::to_string(&rmpv_to_json(&v)).unwrap()
    }

    fn rmpv_to_json(v: &rmpv::Value) -> serde_json::Value {
        match v {
            rmpv::Value::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_string(), rmpv_to_json(v)))
                    .collect(),
            ),
            rmpv::Value::String(s) => serde_json::Value::from(s.as_str().unwrap()),
            rmpv::Value::Integer(i) => serde_json::Value::from(i.as_i64().unwrap()),
            rmpv::Value::Array(a) => serde_json::Value::Array(a.iter().map(rmpv_to_json).collect()),
            _ => serde_json::Value::Null,
        }
    }

    #[test]
    fn an_unchanged_record_is_written_as_it_came() {
        let raw = event(r#"{"a":1,"b":"x"}"#);
        let mut buf = RecordBuf::new();
        let r = buf.read(&raw).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.key(1), Some(&b"b"[..]));
        assert_eq!(r.str_value(1), Some(&b"x"[..]));
        assert_eq!(r.find(b"a"), Some(0));
        let mut out = Vec::new();
        r.write_event(&mut out);
        assert_eq!(out, raw);
    }

    #[test]
    fn changes_are_encoded_once() {
        let raw = event(r#"{"a":1,"b":"x","n":{"k":"v","j":[1]}}"#);
        let mut buf = RecordBuf::new();
        let mut r = buf.read(&raw).unwrap();
        let i = r.find(b"b").unwrap();
        r.remove(i);
        r.push_str(b"c", b"new");
        let k = r.put_str(b"renamed");
        r.set_key(0, k);
        let n = r.find(b"n").unwrap();
        let mut inner = Vec::new();
        assert!(r.map_entries(r.entry(n).1, &mut inner));
        for (k, v) in inner {
            r.push(k, v);
        }
        let mut out = Vec::new();
        r.write_event(&mut out);
        assert_eq!(
            record_json(&out),
            r#"{"renamed":1,"n":{"k":"v","j":[1]},"c":"new","k":"v","j":[1]}"#
        );
        let e = EventReader::new(&out).next().unwrap().unwrap();
        assert_eq!(e.time, EventTime::new(7, 8));
        assert_eq!(e.metadata, &[0x80]);
    }

    #[test]
    fn retain_and_replace() {
        let raw = event(r#"{"a":1,"b":2,"c":3}"#);
        let mut buf = RecordBuf::new();
        let mut r = buf.read(&raw).unwrap();
        r.retain(|r, i| r.key(i) != Some(b"b"));
        let mut out = Vec::new();
        r.write_event(&mut out);
        assert_eq!(record_json(&out), r#"{"a":1,"c":3}"#);
        let mut map = Vec::new();
        write_map_len(&mut map, 1);
        write_str(&mut map, b"z");
        write_str(&mut map, &[b'q'; 40]);
        r.replace_with_map(&map).unwrap();
        out.clear();
        r.write_event(&mut out);
        assert_eq!(
            record_json(&out),
            format!(r#"{{"z":"{}"}}"#, "q".repeat(40))
        );
    }

    #[test]
    fn replace_keeping_puts_the_map_first_then_the_kept_entries() {
        let raw = event(r#"{"a":1,"log":"x","b":2,"c":3}"#);
        let mut buf = RecordBuf::new();
        let mut r = buf.read(&raw).unwrap();
        let map = {
            let mut v = Vec::new();
            rmpv::encode::write_value(
                &mut v,
                &rmpv::Value::Map(vec![("p".into(), 9.into()), ("q".into(), "z".into())]),
            )
            .unwrap();
            v
        };
        r.replace_keeping(&map, |i| i != 1 && i != 3).unwrap();
        let mut out = Vec::new();
        r.write_event(&mut out);
        assert_eq!(record_json(&out), r#"{"p":9,"q":"z","a":1,"b":2}"#);
        // A map that is not one changes nothing.
        let raw = event(r#"{"a":1}"#);
        let mut buf = RecordBuf::new();
        let mut r = buf.read(&raw).unwrap();
        assert!(r.replace_keeping(&[0x92, 0x01], |_| true).is_err());
        assert_eq!(r.len(), 1);
        assert!(!r.is_changed());
    }

    #[test]
    fn bad_events_are_errors_not_panics() {
        let mut buf = RecordBuf::new();
        assert!(buf.read(&[]).is_err());
        assert!(buf.read(&[0x92, 0x92]).is_err());
        let mut raw = event(r#"{"a":1}"#);
        raw.truncate(raw.len() - 1);
        assert!(buf.read(&raw).is_err());
        // A record that is not a map.
        let mut w = Vec::new();
        crate::event::write_event_header(&mut w, EventTime::new(1, 0));
        w.push(0x01);
        assert_eq!(buf.read(&w).err(), Some(RecordError::NotAMap));
    }
}
