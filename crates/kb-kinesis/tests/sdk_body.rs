//! Our PutRecords body against the AWS SDK's: the same request built with aws-sdk-kinesis
//! (its HTTP client replaced by one that captures the request instead of sending it) must be
//! JSON-equivalent: same StreamName, same Records in the same order, same Data base64, same
//! PartitionKey. Field order inside objects may differ, so parsed values are compared.

use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use kb_kinesis::encode::PutRecordsBody;

/// One captured request: its `X-Amz-Target` header and its body.
type Captured = (Option<String>, Vec<u8>);

/// Captures each request, answers 200 "all accepted".
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl HttpConnector for Capture {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").map(str::to_owned);
        let body = request.body().bytes().expect("in-memory body").to_vec();
        self.0.lock().unwrap().push((target, body));
        let resp = HttpResponse::new(
            StatusCode::try_from(200u16).unwrap(),
            SdkBody::from(r#"{"FailedRecordCount":0,"Records":[]}"#),
        );
        HttpConnectorFuture::ready(Ok(resp))
    }
}

impl HttpClient for Capture {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

async fn sdk_body(stream: &str, records: &[(Vec<u8>, String)]) -> Captured {
    let capture = Capture::default();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(capture.clone())
        .build();
    let client = aws_sdk_kinesis::Client::from_conf(conf);
    let entries = records
        .iter()
        .map(|(data, key)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data.clone()))
                .partition_key(key)
                .build()
                .unwrap()
        })
        .collect::<Vec<_>>();
    // The canned response may not satisfy the SDK's parser; only the request matters here.
    let _ = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await;
    let mut captured = capture.0.lock().unwrap();
    assert_eq!(captured.len(), 1, "exactly one request, no SDK retries");
    captured.pop().unwrap()
}

fn our_body(stream: &str, records: &[(Vec<u8>, String)]) -> Vec<u8> {
    let mut b = PutRecordsBody::new(stream);
    for (data, key) in records {
        assert!(b.try_push(data, key));
    }
    b.finish().to_vec()
}

fn sample() -> Vec<(Vec<u8>, String)> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut v = vec![
        (b"{\"log\":\"hello\"}\n".to_vec(), "k1".to_string()),
        (vec![0u8, 0xff, 0xfe, 0x80], "binary".to_string()),
        (b"a".to_vec(), "ab".to_string()),
        (b"ab".to_vec(), "quote\"back\\slash".to_string()),
        (b"abc".to_vec(), "ключ-😀".to_string()),
        ("é\t\u{1}".as_bytes().to_vec(), "tab\tnew\nline".to_string()),
    ];
    for i in 0..50 {
        let len = rng.usize(0..2000);
        v.push(((0..len).map(|_| rng.u8(..)).collect(), format!("key-{i}")));
    }
    v
}

#[tokio::test]
async fn sdk_body_json_equivalent_to_aws_sdk() {
    let stream = "my-stream_1.0";
    let records = sample();
    let (target, sdk) = sdk_body(stream, &records).await;
    assert_eq!(target.as_deref(), Some("Kinesis_20131202.PutRecords"));
    let sdk: serde_json::Value = serde_json::from_slice(&sdk).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&our_body(stream, &records)).unwrap();
    assert_eq!(ours["StreamName"], sdk["StreamName"]);
    let (o, s) = (
        ours["Records"].as_array().unwrap(),
        sdk["Records"].as_array().unwrap(),
    );
    assert_eq!(o.len(), s.len());
    for (i, (a, b)) in o.iter().zip(s).enumerate() {
        assert_eq!(a["Data"], b["Data"], "Data of record {i}");
        assert_eq!(
            a["PartitionKey"], b["PartitionKey"],
            "PartitionKey of record {i}"
        );
    }
    // Nothing else on either side (no StreamARN, no ExplicitHashKey).
    assert_eq!(ours, sdk);
}

#[tokio::test]
async fn sdk_body_single_record() {
    let records = vec![(b"x\n".to_vec(), "pk".to_string())];
    let (_, sdk) = sdk_body("s", &records).await;
    let sdk: serde_json::Value = serde_json::from_slice(&sdk).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&our_body("s", &records)).unwrap();
    assert_eq!(ours, sdk);
}

/// Our PutRecordBatch body against aws-sdk-firehose's for the same records.
async fn firehose_sdk_body(stream: &str, records: &[Vec<u8>]) -> Captured {
    let capture = Capture::default();
    let conf = aws_sdk_firehose::Config::builder()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .region(aws_sdk_firehose::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_firehose::config::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(capture.clone())
        .build();
    let client = aws_sdk_firehose::Client::from_conf(conf);
    let entries = records
        .iter()
        .map(|data| {
            aws_sdk_firehose::types::Record::builder()
                .data(aws_sdk_firehose::primitives::Blob::new(data.clone()))
                .build()
                .unwrap()
        })
        .collect::<Vec<_>>();
    let _ = client
        .put_record_batch()
        .delivery_stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await;
    let mut captured = capture.0.lock().unwrap();
    assert_eq!(captured.len(), 1, "exactly one request, no SDK retries");
    captured.pop().unwrap()
}

#[tokio::test]
async fn put_record_batch_body_json_equal_to_aws_sdk_firehose() {
    let records: Vec<Vec<u8>> = sample().into_iter().map(|(d, _)| d).collect();
    for (stream, records) in [("my-delivery_stream.1", &records[..]), ("s", &records[..1])] {
        let (target, sdk) = firehose_sdk_body(stream, records).await;
        assert_eq!(target.as_deref(), Some("Firehose_20150804.PutRecordBatch"));
        let mut b = kb_kinesis::encode::PutRecordBatchBody::new(stream);
        for data in records {
            assert!(b.try_push(data, "ignored"));
        }
        let ours: serde_json::Value = serde_json::from_slice(b.finish()).unwrap();
        let sdk: serde_json::Value = serde_json::from_slice(&sdk).unwrap();
        assert_eq!(ours, sdk);
        assert_eq!(ours["Records"].as_array().unwrap().len(), records.len());
    }
}
