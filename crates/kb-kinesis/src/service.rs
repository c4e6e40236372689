//! The seam between the one flush loop and the two services it serves.
//!
//! Kinesis Data Streams (`PutRecords`) and Kinesis Data Firehose (`PutRecordBatch`) take the
//! same kind of request: a destination name and up to 500 base64 records, answered with a count
//! of failed records and one outcome per record, in order. Batching, signing, sending, the
//! per-record retry of only the failed entries, the backoff and the metrics are the same code
//! for both ([`crate::output`]); a [`Service`] only says what differs: the limits, the field
//! names of the request and of the answer, the API target, the signing name, which per-record
//! codes can never succeed, and the healthcheck call.
//!
//! The flush loop, the request body ([`crate::encode::RecordsBody`]) and the answer parser
//! ([`crate::response::parse_response`]) are generic over the service, so each plugin gets
//! its own monomorphised copy and the constants fold away: Streams pays nothing for Firehose.

use kb_aws::error::is_retryable_record_error;
use serde_json::Value;

/// What one AWS service of the Kinesis family needs from the shared sink.
pub trait Service: Send + Sync + 'static {
    /// The API name in messages: `PutRecords`, `PutRecordBatch`.
    const API: &'static str;
    /// The JSON-1.1 target prefix: `Kinesis_20131202`, `Firehose_20150804`.
    const TARGET_PREFIX: &'static str;
    /// `X-Amz-Target` of the put call.
    const TARGET: &'static str;
    /// SigV4 signing name, also the first label of the default endpoint.
    const SIGNING_NAME: &'static str;
    /// What the destination is called in messages: `stream`, `delivery stream`.
    const DESTINATION: &'static str;
    /// Records per request.
    const MAX_RECORDS: usize;
    /// Bytes of the whole serialised request body.
    const MAX_BODY: usize;
    /// The largest `max_record_size` the service accepts (Data, plus the partition key where
    /// there is one).
    const MAX_RECORD_SIZE: usize;
    /// The default `max_record_size`: the service's default record limit.
    const DEFAULT_RECORD_SIZE: usize;
    /// Whether records carry a partition key.
    const HAS_PARTITION_KEY: bool;
    /// `{"<name field>":` opening the body.
    const BODY_START: &'static [u8];
    /// The name field itself: `StreamName`, `DeliveryStreamName` (the CBOR body's first key).
    const NAME_FIELD: &'static str;
    /// Top-level member of the answer with the number of failed records.
    const FAILED_COUNT_FIELD: &'static str;
    /// Top-level member of the answer with the per-record outcomes.
    const ENTRIES_FIELD: &'static str;

    /// Whether a record that failed with this per-record `ErrorCode` may succeed when sent
    /// again (otherwise it is dropped and counted as rejected).
    fn retryable_record_error(code: &str) -> bool {
        is_retryable_record_error(code)
    }

    /// The healthcheck call: target (without the prefix) and body.
    fn describe_request(destination: &str) -> (&'static str, String);

    /// The healthcheck call for a destination named by its ARN; `None` for a service whose
    /// outputs cannot name one so.
    fn describe_request_by_arn(_arn: &str) -> Option<(&'static str, String)> {
        None
    }

    /// Reads the healthcheck answer: `Ok(status)` when the destination takes records,
    /// `Err(why)` otherwise; `max_record_size` is what the output is configured with, and a
    /// returned warning is logged.
    fn check_describe(
        answer: &Value,
        max_record_size: usize,
    ) -> Result<(String, Option<String>), String>;
}

/// Amazon Kinesis Data Streams: `PutRecords`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streams;

/// Amazon Kinesis Data Firehose: `PutRecordBatch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Firehose;

impl Service for Streams {
    const API: &'static str = "PutRecords";
    const TARGET_PREFIX: &'static str = "Kinesis_20131202";
    const TARGET: &'static str = "Kinesis_20131202.PutRecords";
    const SIGNING_NAME: &'static str = "kinesis";
    const DESTINATION: &'static str = "stream";
    const MAX_RECORDS: usize = 500;
    /// 10 MiB per PutRecords request (data and keys; the body bounds both).
    const MAX_BODY: usize = 10_485_760;
    /// Streams whose record limit was raised take up to 10 MiB.
    const MAX_RECORD_SIZE: usize = 10_485_760;
    const DEFAULT_RECORD_SIZE: usize = 1_048_576;
    const HAS_PARTITION_KEY: bool = true;
    const BODY_START: &'static [u8] = b"{\"StreamName\":";
    const NAME_FIELD: &'static str = "StreamName";
    const FAILED_COUNT_FIELD: &'static str = "FailedRecordCount";
    const ENTRIES_FIELD: &'static str = "Records";

    fn describe_request(stream: &str) -> (&'static str, String) {
        (
            "DescribeStreamSummary",
            serde_json::json!({ "StreamName": stream }).to_string(),
        )
    }

    fn describe_request_by_arn(arn: &str) -> Option<(&'static str, String)> {
        Some((
            "DescribeStreamSummary",
            serde_json::json!({ "StreamARN": arn }).to_string(),
        ))
    }

    fn check_describe(
        v: &Value,
        max_record_size: usize,
    ) -> Result<(String, Option<String>), String> {
        let summary = &v["StreamDescriptionSummary"];
        let status = summary["StreamStatus"].as_str().unwrap_or("").to_string();
        if status != "ACTIVE" && status != "UPDATING" {
            return Err(format!("stream status is '{status}'"));
        }
        let warning = summary["MaxRecordSizeInKiB"]
            .as_u64()
            .filter(|kib| kib * 1024 < max_record_size as u64)
            .map(|kib| {
                format!("the stream accepts records up to {kib} KiB but max_record_size is {max_record_size}: larger records will be rejected")
            });
        Ok((status, warning))
    }
}

impl Service for Firehose {
    const API: &'static str = "PutRecordBatch";
    const TARGET_PREFIX: &'static str = "Firehose_20150804";
    const TARGET: &'static str = "Firehose_20150804.PutRecordBatch";
    const SIGNING_NAME: &'static str = "firehose";
    const DESTINATION: &'static str = "delivery stream";
    const MAX_RECORDS: usize = 500;
    /// "up to a limit of 4 MB for the entire request": the serialised body, as Fluent Bit
    /// counts it (`PUT_RECORD_BATCH_PAYLOAD_SIZE`).
    const MAX_BODY: usize = 4_194_304;
    /// 1,000 KiB per record, before base64; not raisable.
    const MAX_RECORD_SIZE: usize = 1_024_000;
    const DEFAULT_RECORD_SIZE: usize = 1_024_000;
    const HAS_PARTITION_KEY: bool = false;
    const BODY_START: &'static [u8] = b"{\"DeliveryStreamName\":";
    const NAME_FIELD: &'static str = "DeliveryStreamName";
    const FAILED_COUNT_FIELD: &'static str = "FailedPutCount";
    const ENTRIES_FIELD: &'static str = "RequestResponses";

    fn describe_request(stream: &str) -> (&'static str, String) {
        (
            "DescribeDeliveryStream",
            serde_json::json!({ "DeliveryStreamName": stream }).to_string(),
        )
    }

    fn check_describe(v: &Value, _: usize) -> Result<(String, Option<String>), String> {
        let status = v["DeliveryStreamDescription"]["DeliveryStreamStatus"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status != "ACTIVE" {
            return Err(format!("delivery stream status is '{status}'"));
        }
        Ok((status, None))
    }
}
