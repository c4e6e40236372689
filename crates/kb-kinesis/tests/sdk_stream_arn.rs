//! `stream_arn` against the AWS SDK itself: aws-sdk-kinesis (its HTTP client replaced by one
//! that captures the request) sends PutRecords and DescribeStreamSummary by `StreamARN`; the
//! URL it resolves with its own endpoint rules must be the endpoint our configuration derives,
//! for each partition, and its PutRecords body must equal ours.

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
use kb_kinesis::config::Settings;
use kb_kinesis::encode::PutRecordsBody;

/// One captured request: URI and body.
type Captured = (String, Vec<u8>);

#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl HttpConnector for Capture {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let uri = request.uri().to_string();
        let body = request.body().bytes().expect("in-memory body").to_vec();
        self.0.lock().unwrap().push((uri, body));
        let resp = HttpResponse::new(StatusCode::try_from(400u16).unwrap(), SdkBody::from("{}"));
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

/// What the SDK sends for PutRecords and DescribeStreamSummary by `arn` with client region
/// `region`: (PutRecords URI, PutRecords body, DescribeStreamSummary URI).
async fn sdk_requests(region: &str, arn: &str) -> (String, Vec<u8>, String) {
    let capture = Capture::default();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "t"))
        .retry_config(RetryConfig::disabled())
        .http_client(capture.clone())
        .build();
    let client = aws_sdk_kinesis::Client::from_conf(conf);
    let entry = PutRecordsRequestEntry::builder()
        .data(Blob::new(b"{\"a\":1}\n".to_vec()))
        .partition_key("k")
        .build()
        .unwrap();
    // Only the requests matter; the canned answer is an error.
    let _ = client
        .put_records()
        .stream_arn(arn)
        .records(entry)
        .send()
        .await;
    let _ = client
        .describe_stream_summary()
        .stream_arn(arn)
        .send()
        .await;
    let mut captured = capture.0.lock().unwrap();
    assert_eq!(captured.len(), 2, "one request each, no SDK retries");
    let (describe_uri, _) = captured.pop().unwrap();
    let (put_uri, put_body) = captured.pop().unwrap();
    (put_uri, put_body, describe_uri)
}

mod common;

fn settings(props: &[(&str, &str)]) -> Settings {
    common::settings(props).expect("valid settings")
}

#[tokio::test]
async fn our_arn_endpoints_are_the_sdks() {
    for (arn, region) in [
        ("arn:aws:kinesis:us-east-1:123456789012:stream/s", None),
        (
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s",
            Some("eu-central-1"),
        ),
        ("arn:aws-cn:kinesis:cn-north-1:111122223333:stream/s", None),
        (
            "arn:aws-us-gov:kinesis:us-gov-west-1:111122223333:stream/s",
            None,
        ),
        // The SDK keeps the regional endpoint in aws-iso.
        (
            "arn:aws-iso:kinesis:us-iso-east-1:111122223333:stream/s",
            None,
        ),
    ] {
        let mut props = vec![("stream_arn", arn)];
        if let Some(r) = region {
            props.push(("region", r));
        }
        let s = settings(&props);
        let (put_uri, put_body, describe_uri) = sdk_requests(&s.region, arn).await;
        assert_eq!(
            format!("{}/", s.endpoint.url()),
            put_uri,
            "{arn} {region:?}"
        );
        let control = s.control_endpoint.as_ref().unwrap_or(&s.endpoint);
        assert_eq!(
            format!("{}/", control.url()),
            describe_uri,
            "{arn} {region:?}"
        );

        let mut ours = PutRecordsBody::new("unused");
        ours.set_stream_arn(arn);
        assert!(ours.try_push(b"{\"a\":1}\n", "k"));
        let ours: serde_json::Value = serde_json::from_slice(ours.finish()).unwrap();
        let sdk: serde_json::Value = serde_json::from_slice(&put_body).unwrap();
        assert_eq!(ours, sdk, "{arn}");
    }
}
