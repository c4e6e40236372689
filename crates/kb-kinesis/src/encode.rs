//! The request body of a put call (spec §5), built in one reusable buffer:
//! `{"StreamName":"…","Records":[{"Data":"<base64>","PartitionKey":"…"},…]}` for PutRecords,
//! `{"DeliveryStreamName":"…","Records":[{"Data":"<base64>"},…]}` for PutRecordBatch — no
//! whitespace, this field order, standard base64 with padding written straight into the body.
//! The [`Service`] decides the name field, whether entries carry a key and the limits.
//!
//! With [`Protocol::Cbor`] (`protocol cbor`, Streams only) the same members are written as the
//! AWS Java SDK and the KPL send them with `application/x-amz-cbor-1.1`: a map
//! `{"StreamName": text, "Records": [_ {"Data": bytes, "PartitionKey": text}, …]}` whose
//! `Records` is an indefinite-length array (the count is not known while entries are added, and
//! the SDK's Jackson generator writes arrays the same way) and whose `Data` is a byte string of
//! the raw record: no base64, a quarter fewer bytes to hash, encrypt and send.
//!
//! The limits of spec §3 are enforced exactly: at most `S::MAX_RECORDS` entries, and the
//! serialised body (header, entries, commas, footer) at most `S::MAX_BODY` bytes, except that a
//! single entry larger than that is accepted into an empty body (it is then sent alone).

use std::marker::PhantomData;

use bytes::Bytes;
use kb_core::json::{write_json_string, JsonOptions, JsonStats};

use kb_aws::cbor;

use crate::service::{Firehose, Service, Streams};

/// The wire protocol of the put calls (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `application/x-amz-json-1.1`, Data in base64.
    #[default]
    Json,
    /// `application/x-amz-cbor-1.1`, Data as a CBOR byte string.
    Cbor,
}

impl Protocol {
    /// The request's `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

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

/// CBOR: the break closing the indefinite `Records` array.
const CBOR_FOOTER: &[u8] = &[cbor::BREAK];
/// CBOR: `"Records"` and the head of an indefinite array.
const CBOR_HEADER_END: &[u8] = b"\x67Records\x9f";
/// CBOR: a map of two pairs and the key `"Data"` (a byte string head follows).
const CBOR_ENTRY_START: &[u8] = b"\xa2\x64Data";
/// CBOR: a map of one pair (no partition key) and the key `"Data"`.
const CBOR_ENTRY_START_NO_KEY: &[u8] = b"\xa1\x64Data";
/// CBOR: the key `"PartitionKey"` (a text head follows).
const CBOR_ENTRY_MID: &[u8] = b"\x6cPartitionKey";

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
    protocol: Protocol,
    service: PhantomData<S>,
}

impl<S: Service> Clone for RecordsBody<S> {
    fn clone(&self) -> Self {
        RecordsBody {
            buf: self.buf.clone(),
            header_len: self.header_len,
            count: self.count,
            finished: self.finished,
            protocol: self.protocol,
            service: PhantomData,
        }
    }
}

impl<S: Service> RecordsBody<S> {
    /// An empty JSON body for `stream` (JSON-escaped here, once).
    pub fn new(stream: &str) -> Self {
        Self::with_protocol(stream, Protocol::Json)
    }

    /// An empty body for `stream` in `protocol`.
    pub fn with_protocol(stream: &str, protocol: Protocol) -> Self {
        let mut b = RecordsBody {
            buf: Vec::new(),
            header_len: 0,
            count: 0,
            finished: false,
            protocol,
            service: PhantomData,
        };
        b.set_stream(stream);
        b
    }

    /// The protocol the body is written in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn footer(&self) -> &'static [u8] {
        match self.protocol {
            Protocol::Json => FOOTER,
            Protocol::Cbor => CBOR_FOOTER,
        }
    }

    /// Empty the body and address it to another stream, keeping the buffer's capacity.
    pub fn set_stream(&mut self, stream: &str) {
        self.set_header(S::BODY_START, S::NAME_FIELD, stream);
    }

    /// Empty the body and address it to the stream with ARN `arn` (`"StreamARN"`, PutRecords
    /// only), keeping the buffer's capacity.
    pub fn set_stream_arn(&mut self, arn: &str) {
        self.set_header(ARN_BODY_START, "StreamARN", arn);
    }

    /// `start` opens the JSON body up to the name's value; `field` is the same member's name
    /// for CBOR.
    fn set_header(&mut self, start: &[u8], field: &str, stream: &str) {
        self.buf.clear();
        match self.protocol {
            Protocol::Json => {
                self.buf.extend_from_slice(start);
                write_json_string(
                    stream.as_bytes(),
                    &mut self.buf,
                    &KEY_JSON,
                    &mut JsonStats::default(),
                );
                self.buf.extend_from_slice(HEADER_END);
            }
            Protocol::Cbor => {
                // {"StreamName" (or "StreamARN"): "…", "Records": [_
                self.buf.push(0xa2);
                cbor::write_text(&mut self.buf, field);
                cbor::write_text(&mut self.buf, stream);
                self.buf.extend_from_slice(CBOR_HEADER_END);
            }
        }
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
        let footer = self.footer().len();
        let entries_end = if self.finished {
            self.buf.len() - footer
        } else {
            self.buf.len()
        };
        entries_end + footer
    }

    /// Exact bytes an entry of `data_len` Data bytes with `key` would add now, including the
    /// separating comma when the body already has entries.
    pub fn entry_size(&self, data_len: usize, key: &str) -> usize {
        match self.protocol {
            Protocol::Json => self.entry_size_with(data_len, Self::key_json_len(key)),
            Protocol::Cbor => Self::cbor_entry_len(data_len, key),
        }
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

    /// Bytes of one CBOR entry (CBOR needs no separator).
    pub fn cbor_entry_len(data_len: usize, key: &str) -> usize {
        let data = CBOR_ENTRY_START.len() + cbor::head_len(data_len as u64) + data_len;
        if S::HAS_PARTITION_KEY {
            data + CBOR_ENTRY_MID.len() + cbor::text_len(key)
        } else {
            data
        }
    }

    /// Bytes of one JSON `{"Data":"…","PartitionKey":"…"}` (or `{"Data":"…"}`) entry, without
    /// a comma ([`RecordsBody::cbor_entry_len`] for CBOR).
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
        if self.protocol == Protocol::Cbor {
            return self.try_push_cbor(data, key);
        }
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

    /// [`RecordsBody::try_push`] in CBOR: heads and the raw bytes, nothing to escape.
    fn try_push_cbor(&mut self, data: &[u8], key: &str) -> bool {
        let add = Self::cbor_entry_len(data.len(), key);
        if !self.fits_with(add) {
            return false;
        }
        if self.finished {
            self.buf.truncate(self.buf.len() - CBOR_FOOTER.len());
            self.finished = false;
        }
        self.buf.reserve(add + CBOR_FOOTER.len());
        #[cfg(debug_assertions)]
        let before = self.buf.len();
        if S::HAS_PARTITION_KEY {
            self.buf.extend_from_slice(CBOR_ENTRY_START);
            cbor::write_bytes(&mut self.buf, data);
            self.buf.extend_from_slice(CBOR_ENTRY_MID);
            cbor::write_text(&mut self.buf, key);
        } else {
            self.buf.extend_from_slice(CBOR_ENTRY_START_NO_KEY);
            cbor::write_bytes(&mut self.buf, data);
        }
        #[cfg(debug_assertions)]
        debug_assert_eq!(self.buf.len() - before, add, "cbor_entry_len is exact");
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
            let footer = self.footer();
            self.buf.extend_from_slice(footer);
            self.finished = true;
        }
        &self.buf
    }
}
