//! The request body of a put call (spec §5), built in one reusable buffer:
//! `{"StreamName":"…","Records":[{"Data":"<base64>","PartitionKey":"…"},…]}` for PutRecords,
//! `{"DeliveryStreamName":"…","Records":[{"Data":"<base64>"},…]}` for PutRecordBatch — no
//! whitespace, this field order, standard base64 with padding written straight into the body.
//! The [`Service`] decides the name field, whether entries carry a key and the limits.
//!
//! The limits of spec §3 are enforced exactly: at most `S::MAX_RECORDS` entries, and the
//! serialised body (header, entries, commas, footer) at most `S::MAX_BODY` bytes, except that a
//! single entry larger than that is accepted into an empty body (it is then sent alone).

use std::marker::PhantomData;

use bytes::Bytes;
use kb_core::json::{write_json_string, JsonOptions, JsonStats};

use crate::service::{Firehose, Service, Streams};

/// Records per PutRecords request (service limit).
pub const MAX_RECORDS: usize = Streams::MAX_RECORDS;

/// Bytes per serialised PutRecords body.
pub const MAX_BODY: usize = Streams::MAX_BODY;

const HEADER_END: &[u8] = b",\"Records\":[";
/// `{"StreamARN":` opening a PutRecords body that names its stream by ARN (`stream_arn`).
const ARN_BODY_START: &[u8] = b"{\"StreamARN\":";
const FOOTER: &[u8] = b"]}";
const ENTRY_START: &[u8] = b"{\"Data\":\"";
const ENTRY_MID: &[u8] = b"\",\"PartitionKey\":";
const ENTRY_END: &[u8] = b"}";
/// The end of an entry without a key: the Data string's quote and the brace.
const ENTRY_END_NO_KEY: &[u8] = b"\"}";

/// Stream names and keys are written as raw UTF-8 JSON (only `"`, `\` and controls escaped):
/// shorter than `\u` escapes, and what the service counts anyway.
const KEY_JSON: JsonOptions = JsonOptions {
    escape_unicode: false,
};

/// Length of the standard, padded base64 of `n` bytes.
pub const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Length of `s` as a JSON string including the quotes, written with raw UTF-8 (as the body
/// writes keys).
pub fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f | 0x7f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A PutRecords body (Kinesis Data Streams).
pub type PutRecordsBody = RecordsBody<Streams>;

/// A PutRecordBatch body (Kinesis Data Firehose): entries carry no key, and the `key`
/// arguments of the methods are ignored.
pub type PutRecordBatchBody = RecordsBody<Firehose>;

/// A put request body under construction; reuse it for every request of a worker.
#[derive(Debug)]
pub struct RecordsBody<S: Service> {
    buf: Vec<u8>,
    /// Length of `{"StreamName":"…","Records":[`.
    header_len: usize,
    count: usize,
    /// Whether `buf` currently ends with the footer (after [`RecordsBody::finish`]).
    finished: bool,
    service: PhantomData<S>,
}

impl<S: Service> Clone for RecordsBody<S> {
    fn clone(&self) -> Self {
        RecordsBody {
            buf: self.buf.clone(),
            header_len: self.header_len,
            count: self.count,
            finished: self.finished,
            service: PhantomData,
        }
    }
}

impl<S: Service> RecordsBody<S> {
    /// An empty body for `stream` (JSON-escaped here, once).
    pub fn new(stream: &str) -> Self {
        let mut b = RecordsBody {
            buf: Vec::new(),
            header_len: 0,
            count: 0,
            finished: false,
            service: PhantomData,
        };
        b.set_stream(stream);
        b
    }

    /// Empty the body and address it to another stream, keeping the buffer's capacity.
    pub fn set_stream(&mut self, stream: &str) {
        self.set_header(S::BODY_START, stream);
    }

    /// Empty the body and address it to the stream with ARN `arn` (`"StreamARN"`, PutRecords
    /// only), keeping the buffer's capacity.
    pub fn set_stream_arn(&mut self, arn: &str) {
        self.set_header(ARN_BODY_START, arn);
    }

    fn set_header(&mut self, start: &[u8], stream: &str) {
        self.buf.clear();
        self.buf.extend_from_slice(start);
        write_json_string(
            stream.as_bytes(),
            &mut self.buf,
            &KEY_JSON,
            &mut JsonStats::default(),
        );
        self.buf.extend_from_slice(HEADER_END);
        self.header_len = self.buf.len();
        self.count = 0;
        self.finished = false;
    }

    /// Remove every entry, keeping the stream and the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.truncate(self.header_len);
        self.count = 0;
        self.finished = false;
    }

    /// Reuse the body for the next request (same as [`RecordsBody::clear`]).
    pub fn reset(&mut self) {
        self.clear();
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the complete body as it stands (header, entries, footer).
    pub fn body_len(&self) -> usize {
        let entries_end = if self.finished {
            self.buf.len() - FOOTER.len()
        } else {
            self.buf.len()
        };
        entries_end + FOOTER.len()
    }

    /// Exact bytes an entry of `data_len` Data bytes with `key` would add now, including the
    /// separating comma when the body already has entries.
    pub fn entry_size(&self, data_len: usize, key: &str) -> usize {
        self.entry_size_with(data_len, Self::key_json_len(key))
    }

    /// JSON length of the key as written (0 for a service without keys).
    fn key_json_len(key: &str) -> usize {
        if S::HAS_PARTITION_KEY {
            json_string_len(key)
        } else {
            0
        }
    }

    fn entry_size_with(&self, data_len: usize, key_json_len: usize) -> usize {
        usize::from(self.count > 0) + Self::entry_len_with(data_len, key_json_len)
    }

    /// Bytes of one `{"Data":"…","PartitionKey":"…"}` (or `{"Data":"…"}`) entry, without a
    /// comma.
    pub fn entry_len(data_len: usize, key: &str) -> usize {
        Self::entry_len_with(data_len, Self::key_json_len(key))
    }

    fn entry_len_with(data_len: usize, key_json_len: usize) -> usize {
        if S::HAS_PARTITION_KEY {
            ENTRY_START.len()
                + base64_len(data_len)
                + ENTRY_MID.len()
                + key_json_len
                + ENTRY_END.len()
        } else {
            ENTRY_START.len() + base64_len(data_len) + ENTRY_END_NO_KEY.len()
        }
    }

    /// Whether an entry of this size would be accepted now (see [`RecordsBody::try_push`]).
    pub fn fits(&self, data_len: usize, key: &str) -> bool {
        self.fits_with(self.entry_size(data_len, key))
    }

    fn fits_with(&self, entry_size: usize) -> bool {
        self.count == 0
            || (self.count < S::MAX_RECORDS && self.body_len() + entry_size <= S::MAX_BODY)
    }

    /// Append an entry if it fits in `S::MAX_RECORDS` and `S::MAX_BODY` (footer included); an
    /// entry that alone exceeds `S::MAX_BODY` is accepted only into an empty body.
    pub fn try_push(&mut self, data: &[u8], key: &str) -> bool {
        // The key's JSON length once per entry: it sizes both the check and the reservation.
        let add = self.entry_size_with(data.len(), Self::key_json_len(key));
        if !self.fits_with(add) {
            return false;
        }
        if self.finished {
            self.buf.truncate(self.buf.len() - FOOTER.len());
            self.finished = false;
        }
        // Amortised growth here, so the base64 writer's exact reservation never reallocates.
        self.buf.reserve(add + FOOTER.len());
        #[cfg(debug_assertions)]
        let before = self.buf.len();
        if self.count > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(ENTRY_START);
        base64_simd::STANDARD.encode_append(data, &mut self.buf);
        if S::HAS_PARTITION_KEY {
            self.buf.extend_from_slice(ENTRY_MID);
            write_json_string(
                key.as_bytes(),
                &mut self.buf,
                &KEY_JSON,
                &mut JsonStats::default(),
            );
            self.buf.extend_from_slice(ENTRY_END);
        } else {
            self.buf.extend_from_slice(ENTRY_END_NO_KEY);
        }
        #[cfg(debug_assertions)]
        debug_assert_eq!(self.buf.len() - before, add, "entry_size is exact");
        self.count += 1;
        true
    }

    /// The complete body as [`Bytes`] without copying it; the body is empty afterwards. Give
    /// the bytes back with [`RecordsBody::recycle`] once the request is done, so the next
    /// body is written into the same (already mapped) memory.
    pub fn take_bytes(&mut self) -> Bytes {
        self.finish();
        let header = self.buf[..self.header_len].to_vec();
        let body = std::mem::replace(&mut self.buf, header);
        self.count = 0;
        self.finished = false;
        Bytes::from(body)
    }

    /// Take back the buffer of a body from [`RecordsBody::take_bytes`] when nothing else
    /// holds it any more and this body has no entries (otherwise keep the current buffer).
    pub fn recycle(&mut self, body: Bytes) {
        if self.count > 0 {
            return;
        }
        let Ok(body) = body.try_into_mut() else {
            return;
        };
        let mut buf = Vec::from(body);
        if buf.len() >= self.header_len {
            buf.truncate(self.header_len);
            if buf[..] == self.buf[..self.header_len] {
                self.buf = buf;
                self.count = 0;
                self.finished = false;
            }
        }
    }

    /// The complete body; entries may still be added afterwards.
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            self.buf.extend_from_slice(FOOTER);
            self.finished = true;
        }
        &self.buf
    }
}
