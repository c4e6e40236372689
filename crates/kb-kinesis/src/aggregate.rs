//! Packing several user records into one Kinesis record.
//!
//! * [`SimpleAggregate`] (`simple_aggregation`, spec §2.7): plain concatenation of formatted
//!   records (each normally ending in its newline) up to a size limit.
//! * [`KplAggregate`] (`aggregation`, spec §2.8): the KPL format read by KCL and the
//!   kinesis-aggregation libraries: magic `F3 89 9A C2` ‖ protobuf `AggregatedRecord` ‖
//!   MD5(protobuf). One partition-key table entry; every record has `partition_key_index` 0.
//!   The protobuf is written by hand (it is three fields), and sizes are predicted exactly so
//!   the caller can close an aggregate before it would exceed the limit.

use md5::{Digest, Md5};

/// The four bytes that start a KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 trailer.
const MD5_LEN: usize = 16;

/// Protobuf tags: (field number << 3) | wire type.
const TAG_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2; // AggregatedRecord.partition_key_table, bytes
const TAG_RECORDS: u8 = (3 << 3) | 2; // AggregatedRecord.records, message
const TAG_PARTITION_KEY_INDEX: u8 = 1 << 3; // Record.partition_key_index, varint
const TAG_DATA: u8 = (3 << 3) | 2; // Record.data, bytes

/// Bytes of `v` as a protobuf varint.
pub const fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length of an encoded `Record` message holding `data_len` bytes of data.
const fn record_msg_len(data_len: usize) -> usize {
    // partition_key_index = 0 is written: the field is `required` in the KPL's proto2 schema.
    2 + 1 + varint_len(data_len as u64) + data_len
}

/// Bytes a `records` entry of `data_len` data bytes adds to the `AggregatedRecord`.
const fn record_entry_len(data_len: usize) -> usize {
    let m = record_msg_len(data_len);
    1 + varint_len(m as u64) + m
}

/// [`record_msg_len`] for a record of key `index` in the table.
const fn keyed_msg_len(index: u64, data_len: usize) -> usize {
    1 + varint_len(index) + 1 + varint_len(data_len as u64) + data_len
}

/// [`record_entry_len`] for a record of key `index` in the table.
const fn keyed_entry_len(index: u64, data_len: usize) -> usize {
    let m = keyed_msg_len(index, data_len);
    1 + varint_len(m as u64) + m
}

/// A KPL aggregated record under construction; reuse it (see [`KplAggregate::reset`]).
#[derive(Debug, Clone, Default)]
pub struct KplAggregate {
    /// The `AggregatedRecord` protobuf.
    proto: Vec<u8>,
    /// Where the key's bytes sit in `proto`.
    key: std::ops::Range<usize>,
    count: usize,
    /// Where the last record's data sits in `proto` (for [`KplAggregate::single_record`]).
    last_data: std::ops::Range<usize>,
    /// [`KplAggregate::push_keyed`]: the keys of the table and their indexes (empty until
    /// a record of another key than the first is added).
    table: std::collections::HashMap<String, u64>,
}

impl KplAggregate {
    /// An empty aggregate; call [`KplAggregate::reset`] before pushing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begin a new aggregate whose single partition key (also the outer key) is `key`.
    pub fn reset(&mut self, key: &str) {
        self.proto.clear();
        self.proto.push(TAG_PARTITION_KEY_TABLE);
        put_varint(&mut self.proto, key.len() as u64);
        let s = self.proto.len();
        self.proto.extend_from_slice(key.as_bytes());
        self.key = s..self.proto.len();
        self.count = 0;
        self.last_data = 0..0;
        self.table.clear();
    }

    /// The partition key given to [`KplAggregate::reset`].
    pub fn key(&self) -> &str {
        // Only `reset` writes these bytes, from a `&str`.
        std::str::from_utf8(&self.proto[self.key.clone()]).unwrap_or("")
    }

    /// Number of user records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no user record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the Data [`KplAggregate::finish`] would write now.
    pub fn size(&self) -> usize {
        KPL_MAGIC.len() + self.proto.len() + MD5_LEN
    }

    /// Size of the Data after adding a user record of `next_len` bytes.
    pub fn size_with(&self, next_len: usize) -> usize {
        self.size() + record_entry_len(next_len)
    }

    /// Add a user record (check [`KplAggregate::size_with`] against the limit first).
    pub fn push(&mut self, data: &[u8]) {
        self.proto.push(TAG_RECORDS);
        put_varint(&mut self.proto, record_msg_len(data.len()) as u64);
        self.proto
            .extend_from_slice(&[TAG_PARTITION_KEY_INDEX, 0, TAG_DATA]);
        put_varint(&mut self.proto, data.len() as u64);
        let s = self.proto.len();
        self.proto.extend_from_slice(data);
        self.last_data = s..self.proto.len();
        self.count += 1;
    }

    /// The index `key` has (or would get) in the table.
    fn index_of(&self, key: &str) -> (u64, bool) {
        if key == self.key() {
            return (0, true);
        }
        match self.table.get(key) {
            Some(&i) => (i, true),
            None => (self.table.len().max(1) as u64, false),
        }
    }

    /// [`KplAggregate::size_with`] for a record of partition key `key` (added to the table
    /// when new).
    pub fn size_with_keyed(&self, key: &str, next_len: usize) -> usize {
        let (index, known) = self.index_of(key);
        let table = if known {
            0
        } else {
            1 + varint_len(key.len() as u64) + key.len()
        };
        self.size() + table + keyed_entry_len(index, next_len)
    }

    /// Add a user record of partition key `key`, which may differ from the aggregate's (its
    /// outer key): each record names its key in the table, as the KPL packs the records of one
    /// shard (check [`KplAggregate::size_with_keyed`] against the limit first).
    pub fn push_keyed(&mut self, key: &str, data: &[u8]) {
        let (index, known) = self.index_of(key);
        if !known {
            if self.table.is_empty() {
                // The first key, written by `reset`, is index 0.
                self.table.insert(self.key().to_string(), 0);
            }
            // Repeated fields may interleave: the table keeps the order of appearance.
            self.proto.push(TAG_PARTITION_KEY_TABLE);
            put_varint(&mut self.proto, key.len() as u64);
            self.proto.extend_from_slice(key.as_bytes());
            self.table.insert(key.to_string(), index);
        }
        self.proto.push(TAG_RECORDS);
        put_varint(&mut self.proto, keyed_msg_len(index, data.len()) as u64);
        self.proto.push(TAG_PARTITION_KEY_INDEX);
        put_varint(&mut self.proto, index);
        self.proto.push(TAG_DATA);
        put_varint(&mut self.proto, data.len() as u64);
        let s = self.proto.len();
        self.proto.extend_from_slice(data);
        self.last_data = s..self.proto.len();
        self.count += 1;
    }

    /// The only user record, when there is exactly one: it is sent as a plain record, since
    /// deaggregators pass non-aggregated records through unchanged.
    pub fn single_record(&self) -> Option<&[u8]> {
        (self.count == 1).then(|| &self.proto[self.last_data.clone()])
    }

    /// Append the aggregated Data (magic ‖ protobuf ‖ MD5) to `out`.
    pub fn finish(&self, out: &mut Vec<u8>) {
        out.reserve(self.size());
        out.extend_from_slice(&KPL_MAGIC);
        out.extend_from_slice(&self.proto);
        out.extend_from_slice(&Md5::digest(&self.proto));
    }
}

/// One user record found by [`deaggregate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// Its partition key, from the aggregate's table.
    pub partition_key: &'a str,
    /// Its data.
    pub data: &'a [u8],
}

/// An aggregate whose protobuf does not decode (the magic and MD5 matched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed KPL aggregate: {0}")]
pub struct DeaggregateError(pub &'static str);

/// Split a KPL aggregated record like KCL does; `Ok(None)` for a record that is not an
/// aggregate (no magic, or an MD5 mismatch), which a consumer takes as one plain record.
/// Used by tests and tools, not on the send path.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<UserRecord<'_>>>, DeaggregateError> {
    if data.len() < KPL_MAGIC.len() + MD5_LEN || data[..4] != KPL_MAGIC {
        return Ok(None);
    }
    let proto = &data[4..data.len() - MD5_LEN];
    if Md5::digest(proto)[..] != data[data.len() - MD5_LEN..] {
        return Ok(None);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut records = Vec::new();
    let mut p = Proto { b: proto, i: 0 };
    while !p.done() {
        let (field, wire) = p.tag()?;
        match (field, wire) {
            (1, 2) => {
                let k = p.bytes()?;
                keys.push(std::str::from_utf8(k).map_err(|_| DeaggregateError("key not UTF-8"))?);
            }
            (3, 2) => {
                let mut r = Proto {
                    b: p.bytes()?,
                    i: 0,
                };
                let (mut index, mut rec_data) = (None, None);
                while !r.done() {
                    match r.tag()? {
                        (1, 0) => index = Some(r.varint()?),
                        (3, 2) => rec_data = Some(r.bytes()?),
                        (_, w) => r.skip(w)?,
                    }
                }
                let index = index.ok_or(DeaggregateError("record without partition_key_index"))?;
                let rec_data = rec_data.ok_or(DeaggregateError("record without data"))?;
                records.push((index, rec_data));
            }
            (_, w) => p.skip(w)?,
        }
    }
    records
        .into_iter()
        .map(|(index, data)| {
            let partition_key = usize::try_from(index)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or(DeaggregateError("partition_key_index out of range"))?;
            Ok(UserRecord {
                partition_key,
                data,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A minimal protobuf reader for [`deaggregate`].
struct Proto<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Proto<'a> {
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }

    fn varint(&mut self) -> Result<u64, DeaggregateError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.i)
                .ok_or(DeaggregateError("truncated varint"))?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(DeaggregateError("varint too long"))
    }

    fn tag(&mut self) -> Result<(u64, u64), DeaggregateError> {
        let t = self.varint()?;
        Ok((t >> 3, t & 7))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DeaggregateError> {
        let n =
            usize::try_from(self.varint()?).map_err(|_| DeaggregateError("length too large"))?;
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(DeaggregateError("truncated field"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<(), DeaggregateError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            _ => Err(DeaggregateError("unsupported wire type")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), DeaggregateError> {
        if self.b.len() - self.i < n {
            return Err(DeaggregateError("truncated field"));
        }
        self.i += n;
        Ok(())
    }
}

/// `simple_aggregation`: formatted records concatenated into one Kinesis record of at most
/// `limit` bytes (`max_record_size` minus the partition key's length, before compression).
#[derive(Debug, Clone)]
pub struct SimpleAggregate {
    buf: Vec<u8>,
    count: usize,
    limit: usize,
}

impl SimpleAggregate {
    /// An empty aggregate holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SimpleAggregate {
            buf: Vec::new(),
            count: 0,
            limit,
        }
    }

    /// The size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Change the size limit (e.g. for a key of another length); applies to later pushes.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Whether a record of `len` bytes would still fit.
    pub fn fits(&self, len: usize) -> bool {
        self.buf.len() + len <= self.limit
    }

    /// Append `record` if it fits; `false` means: close this aggregate first (or, when it is
    /// empty, the record alone exceeds the limit and follows the oversize policy).
    pub fn try_push(&mut self, record: &[u8]) -> bool {
        if !self.fits(record.len()) {
            return false;
        }
        self.buf.extend_from_slice(record);
        self.count += 1;
        true
    }

    /// The concatenated records.
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Number of records inside.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Empty it, keeping the buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}
