//! The body of an HTTP 200 put answer (spec §6.1): which entries were accepted. PutRecords
//! answers `{"FailedRecordCount":n,"Records":[…]}`, PutRecordBatch
//! `{"FailedPutCount":n,"Encrypted":…,"RequestResponses":[…]}`; the [`Service`] names the two
//! members, everything else is the same.
//!
//! Entries are matched to the request by position. An entry is accepted when its `ErrorCode`
//! is absent or `null` (kinesis-local writes `"ErrorCode":null` for successes). Anything
//! inconsistent makes the whole response unparseable, and the caller re-sends every entry.
//! Strings are borrowed from the body (serde `Cow`), so entries do not allocate one by one.
//! The usual answer, every entry accepted, is recognised first by [`crate::response_scan`].
//!
//! With `protocol cbor` the answer is the same members in CBOR ([`parse_response_as`]), read by
//! kb-aws' strict reader with the same rules: a duplicate or mistyped member, malformed CBOR or
//! bytes after the map make the answer unparseable, exactly as invalid JSON does.

use std::borrow::Cow;
use std::fmt;

use kb_aws::cbor::{CborError, Item, Reader};
use serde::Deserialize;

use crate::encode::Protocol;
use crate::service::{Firehose, Service, Streams};

/// How much of an unparseable body the error shows.
pub const BODY_EXCERPT: usize = 512;

/// Both services' members are read; [`parse_response`] uses the ones of its service and
/// ignores the others, as it ignores any unknown member.
#[derive(Deserialize)]
struct RawResponse<'a> {
    #[serde(rename = "FailedRecordCount", default)]
    failed_record_count: Option<i64>,
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<RawEntry<'a>>>,
    #[serde(rename = "FailedPutCount", default)]
    failed_put_count: Option<i64>,
    #[serde(rename = "RequestResponses", borrow, default)]
    request_responses: Option<Vec<RawEntry<'a>>>,
}

#[derive(Debug, Deserialize)]
struct RawEntry<'a> {
    #[serde(rename = "ErrorCode", borrow, default)]
    error_code: Option<Cow<'a, str>>,
    #[serde(rename = "ErrorMessage", borrow, default)]
    error_message: Option<Cow<'a, str>>,
}

/// What happened to one entry of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOutcome<'a> {
    /// Stored by Kinesis; never send it again.
    Accepted,
    /// Not stored; `message` is empty when the response has none.
    Failed {
        /// `ErrorCode`, e.g. `ProvisionedThroughputExceededException`.
        code: &'a str,
        /// `ErrorMessage`.
        message: &'a str,
    },
}

/// A parsed put answer, borrowing from the body.
#[derive(Debug)]
pub struct PutRecordsResponse<'a> {
    sent: usize,
    failed: usize,
    /// Empty when every entry was accepted (the `Records` array is then not needed).
    entries: Vec<RawEntry<'a>>,
}

/// The body is not a consistent PutRecords response; acceptance of its entries is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError {
    api: &'static str,
    reason: String,
    body: String,
}

impl ResponseError {
    fn new<S: Service>(reason: impl Into<String>, body: &[u8]) -> Self {
        ResponseError {
            api: S::API,
            reason: reason.into(),
            body: excerpt(body, BODY_EXCERPT),
        }
    }

    /// A CBOR answer's error: the body shown in hex (as text it would be unreadable).
    fn cbor<S: Service>(reason: impl Into<String>, body: &[u8]) -> Self {
        let shown = &body[..body.len().min(BODY_EXCERPT / 2)];
        let mut hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
        if shown.len() < body.len() {
            hex.push('…');
        }
        ResponseError {
            api: S::API,
            reason: reason.into(),
            body: format!("CBOR {hex}"),
        }
    }

    /// What was wrong (for debug logs).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The start of the body (at most [`BODY_EXCERPT`] bytes, cut on a character boundary).
    pub fn body(&self) -> &str {
        &self.body
    }
}

impl fmt::Display for ResponseError {
    /// Fluent Bit's message: `PutRecords response could not be parsed, <body>` (or
    /// `PutRecordBatch response …`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} response could not be parsed, {}",
            self.api, self.body
        )
    }
}

impl std::error::Error for ResponseError {}

/// The first `max` bytes of `body` as text, not splitting a UTF-8 sequence.
fn excerpt(body: &[u8], max: usize) -> String {
    let mut cut = &body[..body.len().min(max)];
    if cut.len() < body.len() {
        if let Err(e) = std::str::from_utf8(cut) {
            // A sequence cut by the limit (not one invalid in the body itself).
            if e.error_len().is_none() {
                cut = &cut[..e.valid_up_to()];
            }
        }
    }
    String::from_utf8_lossy(cut).into_owned()
}

/// Parse the body of an HTTP 200 PutRecords response to a request of `sent` entries.
pub fn parse_put_records_response(
    body: &[u8],
    sent: usize,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    parse_response::<Streams>(body, sent)
}

/// Parse the body of an HTTP 200 PutRecordBatch response to a request of `sent` entries.
pub fn parse_put_record_batch_response(
    body: &[u8],
    sent: usize,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    parse_response::<Firehose>(body, sent)
}

/// Parse the body of an HTTP 200 answer of service `S` to a request of `sent` entries.
pub fn parse_response<S: Service>(
    body: &[u8],
    sent: usize,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    if body.iter().all(u8::is_ascii_whitespace)
        || crate::response_scan::all_accepted(
            body,
            S::FAILED_COUNT_FIELD.as_bytes(),
            S::ENTRIES_FIELD.as_bytes(),
        )
    {
        return Ok(PutRecordsResponse::all_accepted_of(sent));
    }
    parse_with_serde::<S>(body, sent)
}

/// Parse the answer to a request sent in `protocol`. A CBOR request's answer is read as CBOR
/// when it starts with a CBOR map head and as JSON otherwise (a JSON object starts with `{`,
/// which no CBOR map does), so a peer that answers CBOR requests in JSON is read as strictly.
pub fn parse_response_as<S: Service>(
    body: &[u8],
    sent: usize,
    protocol: Protocol,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    match protocol {
        Protocol::Cbor if body.first().is_some_and(|b| (0xa0..=0xbf).contains(b)) => {
            parse_cbor::<S>(body, sent)
        }
        _ => parse_response::<S>(body, sent),
    }
}

/// The CBOR answer: the members of [`RawResponse`] for service `S`, each at most once and of
/// the JSON parser's types (an integer or null count, an array or null of entries, text or
/// null codes and messages); anything else is read whole and ignored.
fn parse_cbor<S: Service>(
    body: &[u8],
    sent: usize,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    let mut r = Reader::new(body);
    let (count, records) =
        read_cbor::<S>(&mut r).map_err(|e| ResponseError::cbor::<S>(e.to_string(), body))?;
    check_answer::<S>(count, records, sent, body, |reason, body| {
        ResponseError::cbor::<S>(reason, body)
    })
}

fn bad(r: &Reader<'_>, what: &'static str) -> CborError {
    CborError {
        offset: r.offset(),
        what,
    }
}

/// The count and the entries of a CBOR answer (see [`parse_cbor`]).
#[allow(clippy::type_complexity)]
fn read_cbor<'a, S: Service>(
    r: &mut Reader<'a>,
) -> Result<(Option<i64>, Option<Vec<RawEntry<'a>>>), CborError> {
    let Item::Map(n) = r.item()? else {
        return Err(bad(r, "the answer is not a map"));
    };
    let (mut count, mut count_seen) = (None, false);
    let (mut records, mut records_seen) = (None, false);
    r.each(n, |r| {
        let key = r.text()?;
        if key == S::FAILED_COUNT_FIELD {
            if std::mem::replace(&mut count_seen, true) {
                return Err(bad(r, "duplicate failed-record count"));
            }
            count = match r.item()? {
                Item::Uint(n) => Some(i64::try_from(n).map_err(|_| bad(r, "count too large"))?),
                // -1 - n: negative, reported as such below.
                Item::Nint(n) => Some(-1 - i64::try_from(n).unwrap_or(i64::MAX - 1)),
                Item::Null => None,
                _ => return Err(bad(r, "the failed-record count is not an integer")),
            };
        } else if key == S::ENTRIES_FIELD {
            if std::mem::replace(&mut records_seen, true) {
                return Err(bad(r, "duplicate entries member"));
            }
            records = match r.item()? {
                Item::Null => None,
                Item::Array(n) => {
                    let mut entries = Vec::with_capacity(n.unwrap_or(0).min(512) as usize);
                    r.each(n, |r| {
                        entries.push(cbor_entry(r)?);
                        Ok(())
                    })?;
                    Some(entries)
                }
                _ => return Err(bad(r, "the entries member is not an array")),
            };
        } else {
            r.skip(1)?;
        }
        Ok(())
    })?;
    r.finish()?;
    Ok((count, records))
}

/// One CBOR entry: a map whose `ErrorCode` / `ErrorMessage` are text or null, each at most once.
fn cbor_entry<'a>(r: &mut Reader<'a>) -> Result<RawEntry<'a>, CborError> {
    let at = r.offset();
    let Item::Map(n) = r.item()? else {
        return Err(CborError {
            offset: at,
            what: "an entry is not a map",
        });
    };
    let mut entry = RawEntry {
        error_code: None,
        error_message: None,
    };
    let (mut code_seen, mut message_seen) = (false, false);
    r.each(n, |r| {
        let key = r.text()?;
        let (slot, seen) = match &*key {
            "ErrorCode" => (&mut entry.error_code, &mut code_seen),
            "ErrorMessage" => (&mut entry.error_message, &mut message_seen),
            _ => return r.skip(2),
        };
        let at = r.offset();
        if std::mem::replace(seen, true) {
            return Err(CborError {
                offset: at,
                what: "duplicate ErrorCode or ErrorMessage",
            });
        }
        *slot = match r.item()? {
            Item::Text(t) => Some(t),
            Item::Null => None,
            _ => {
                return Err(CborError {
                    offset: at,
                    what: "ErrorCode or ErrorMessage is not text",
                })
            }
        };
        Ok(())
    })?;
    Ok(entry)
}

/// The full parser: every answer, with the reason when it is not a consistent one.
fn parse_with_serde<S: Service>(
    body: &[u8],
    sent: usize,
) -> Result<PutRecordsResponse<'_>, ResponseError> {
    let raw: RawResponse<'_> =
        serde_json::from_slice(body).map_err(|e| ResponseError::new::<S>(e.to_string(), body))?;
    let (failed_count, records) = if S::HAS_PARTITION_KEY {
        (raw.failed_record_count, raw.records)
    } else {
        (raw.failed_put_count, raw.request_responses)
    };
    check_answer::<S>(failed_count, records, sent, body, |reason, body| {
        ResponseError::new::<S>(reason, body)
    })
}

/// The rules both formats share: the count is there and not negative; when it is not 0 there
/// is one entry per record sent and exactly `count` of them carry an `ErrorCode`.
fn check_answer<'a, S: Service>(
    failed_count: Option<i64>,
    records: Option<Vec<RawEntry<'a>>>,
    sent: usize,
    body: &[u8],
    error: fn(String, &[u8]) -> ResponseError,
) -> Result<PutRecordsResponse<'a>, ResponseError> {
    let count = match failed_count {
        Some(0) => return Ok(PutRecordsResponse::all_accepted_of(sent)),
        Some(n) if n < 0 => {
            return Err(error(
                format!("negative {} {n}", S::FAILED_COUNT_FIELD),
                body,
            ))
        }
        Some(n) => n as u64,
        None => return Err(error(format!("{} missing", S::FAILED_COUNT_FIELD), body)),
    };
    let Some(entries) = records else {
        return Err(error(format!("{} missing", S::ENTRIES_FIELD), body));
    };
    if entries.len() != sent {
        return Err(error(
            format!(
                "{} in {} for {} sent",
                kb_core::count(entries.len() as u64, "entry"),
                S::ENTRIES_FIELD,
                kb_core::count(sent as u64, "entry")
            ),
            body,
        ));
    }
    let failed = entries.iter().filter(|e| e.error_code.is_some()).count();
    if failed as u64 != count {
        return Err(error(
            format!(
                "{} {count} but {failed} {} with an ErrorCode",
                S::FAILED_COUNT_FIELD,
                S::ENTRIES_FIELD
            ),
            body,
        ));
    }
    Ok(PutRecordsResponse {
        sent,
        failed,
        entries,
    })
}

impl<'a> PutRecordsResponse<'a> {
    /// The answer that accepted all `sent` entries.
    fn all_accepted_of(sent: usize) -> Self {
        PutRecordsResponse {
            sent,
            failed: 0,
            entries: Vec::new(),
        }
    }

    /// Number of entries in the request.
    pub fn len(&self) -> usize {
        self.sent
    }

    /// Whether the request had no entries.
    pub fn is_empty(&self) -> bool {
        self.sent == 0
    }

    /// Entries not accepted.
    pub fn failed_count(&self) -> usize {
        self.failed
    }

    /// Entries accepted.
    pub fn accepted_count(&self) -> usize {
        self.sent - self.failed
    }

    /// Whether every entry was accepted.
    pub fn all_accepted(&self) -> bool {
        self.failed == 0
    }

    /// The outcome of entry `i` (in request order); `i` must be below [`Self::len`].
    pub fn outcome(&self, i: usize) -> EntryOutcome<'_> {
        match self.entries.get(i) {
            Some(RawEntry {
                error_code: Some(code),
                error_message,
            }) => EntryOutcome::Failed {
                code,
                message: error_message.as_deref().unwrap_or(""),
            },
            _ => EntryOutcome::Accepted,
        }
    }

    /// Every entry's outcome, in request order.
    pub fn outcomes(&self) -> impl Iterator<Item = EntryOutcome<'_>> + '_ {
        (0..self.sent).map(move |i| self.outcome(i))
    }

    /// Failed entries per `ErrorCode`, in order of first appearance (one small allocation;
    /// responses hold only a handful of distinct codes).
    pub fn error_counts(&self) -> Vec<(&str, usize)> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for code in self.entries.iter().filter_map(|e| e.error_code.as_deref()) {
            match counts.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => counts.push((code, 1)),
            }
        }
        counts
    }

    /// The first failed entry's code and message (the example a log summary shows).
    pub fn first_failure(&self) -> Option<(&str, &str)> {
        self.outcomes().find_map(|o| match o {
            EntryOutcome::Failed { code, message } => Some((code, message)),
            EntryOutcome::Accepted => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response_scan;

    fn all_accepted(body: &[u8]) -> bool {
        response_scan::all_accepted(body, b"FailedRecordCount", b"Records")
    }

    /// What Kinesis, kinesis-local (`"ErrorCode":null`) and a pretty-printing peer answer.
    fn accepted_bodies() -> Vec<Vec<u8>> {
        let entry = r#"{"SequenceNumber":"49590000000000000000000000000000000000000000000000000001","ShardId":"shardId-000000000000"}"#;
        let entries = [entry; 5].join(",");
        vec![
            format!(r#"{{"FailedRecordCount":0,"Records":[{entries}],"EncryptionType":"NONE"}}"#),
            format!(
                r#"{{"Records":[{{"SequenceNumber":"1","ShardId":"s","ErrorCode":null,"ErrorMessage":null}}],"FailedRecordCount":0}}"#
            ),
            "{\n  \"FailedRecordCount\" : 0 ,\n  \"Records\" : [ { \"SequenceNumber\" : \"1\", \"x\" : [1, -2.5e+3, true, false, null, {}] } ]\n}\n".to_string(),
            r#"{"FailedRecordCount":0,"Records":null}"#.to_string(),
            r#"{"FailedRecordCount":0,"Records":[]}"#.to_string(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    #[test]
    fn usual_answers_take_the_fast_path() {
        for body in accepted_bodies() {
            assert!(all_accepted(&body), "{}", String::from_utf8_lossy(&body));
            assert!(parse_with_serde::<Streams>(&body, 5)
                .unwrap()
                .all_accepted());
        }
    }

    #[test]
    fn anything_unusual_goes_to_the_full_parser() {
        for body in [
            &br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure"}]}"#[..],
            br#"{"FailedRecordCount":0,"FailedRecordCount":0}"#,
            br#"{"FailedRecordCount":0.0}"#,
            br#"{"FailedRecordCount":"0"}"#,
            br#"{"FailedRecordCount":0,"Records":[{"ErrorCode":1}]}"#,
            br#"{"FailedRecordCount":0,"Records":[{"ErrorCode":null,"ErrorCode":null}]}"#,
            br#"{"FailedRecordCount":0,"Records":{}}"#,
            br#"{"FailedRecordCount":0,"Records":[]} x"#,
            br#"{"FailedRecordCount":0,"x":"a\"b"}"#,
            br#"{"FailedRecordCount":0,"x":01}"#,
            br#"{"FailedRecordCount":0,"x":[1,]}"#,
            br#"{"FailedRecordCount":0,}"#,
            br#"[{"FailedRecordCount":0}]"#,
            b"{\"FailedRecordCount\":0,\"x\":\"\x01\"}",
        ] {
            assert!(!all_accepted(body), "{}", String::from_utf8_lossy(body));
        }
    }

    /// Whatever the fast path accepts, the full parser reads as all accepted too: checked on
    /// every truncation and on single-byte changes of the usual answers.
    #[test]
    fn fast_path_never_accepts_what_the_full_parser_would_not() {
        let mut rng = fastrand::Rng::with_seed(11);
        let bytes = b"{}[],:\"\\0-1.eE+ntrufalsFRecodCunt \n\x01\xff";
        let mut checked = 0;
        for body in accepted_bodies() {
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|n| body[..n].to_vec()).collect();
            for _ in 0..20_000 {
                let mut v = body.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(0..v.len());
                    match rng.u8(0..3) {
                        0 => v[at] = bytes[rng.usize(0..bytes.len())],
                        1 => v.insert(at, bytes[rng.usize(0..bytes.len())]),
                        _ => {
                            v.remove(at);
                        }
                    }
                }
                variants.push(v);
            }
            for v in variants {
                if all_accepted(&v) {
                    checked += 1;
                    let full = parse_with_serde::<Streams>(&v, 5);
                    assert!(
                        full.as_ref().is_ok_and(|r| r.all_accepted()),
                        "fast path accepted {:?}, full parser: {:?}",
                        String::from_utf8_lossy(&v),
                        full.map(|r| r.failed_count())
                    );
                }
            }
        }
        assert!(checked > 1000, "only {checked} variants were accepted");
    }

    /// PutRecordBatch answers: the same rules with Firehose's member names; a Streams answer
    /// is not a Firehose one and the other way round.
    #[test]
    fn firehose_answers() {
        let ok = br#"{"Encrypted":false,"FailedPutCount":0,"RequestResponses":[{"RecordId":"Me0Cq+/Ay"},{"RecordId":"NRAZ"}]}"#;
        assert!(response_scan::all_accepted(
            ok,
            b"FailedPutCount",
            b"RequestResponses"
        ));
        assert!(parse_response::<Firehose>(ok, 2).unwrap().all_accepted());
        let partial = br#"{"Encrypted":false,"FailedPutCount":1,"RequestResponses":[{"RecordId":"a"},{"ErrorCode":"ServiceUnavailableException","ErrorMessage":"Slow down."}]}"#;
        let r = parse_response::<Firehose>(partial, 2).unwrap();
        assert_eq!(r.failed_count(), 1);
        assert_eq!(r.outcome(0), EntryOutcome::Accepted);
        assert_eq!(
            r.outcome(1),
            EntryOutcome::Failed {
                code: "ServiceUnavailableException",
                message: "Slow down."
            }
        );
        let e =
            parse_response::<Firehose>(br#"{"FailedRecordCount":0,"Records":[]}"#, 1).unwrap_err();
        assert_eq!(e.reason(), "FailedPutCount missing");
        assert!(e
            .to_string()
            .starts_with("PutRecordBatch response could not be parsed, "));
        assert!(parse_response::<Streams>(ok, 2).is_err());
    }
}
