//! moto: default mode, request recorder, SigV4-verifying mode.

use kb_testkit::kds::Kds;
use kb_testkit::peers::Moto;
use serde_json::json;

#[tokio::test]
async fn kinesis_round_trip_and_recorder() {
    let moto = Moto::start();
    let kds = Kds::new(&moto.endpoint(), "us-east-1");
    moto.start_recording();
    kds.create_stream("m", 2).await.unwrap();
    let (status, v) = kds
        .put_records("m", &[("a", b"one"), ("b", &[0, 1, 2, 255])])
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let mut read: Vec<Vec<u8>> = kds
        .read_all("m")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    read.sort();
    assert_eq!(read, vec![vec![0, 1, 2, 255], b"one".to_vec()]);

    let rec = moto.recording();
    assert!(!rec.is_empty());
    let text = serde_json::to_string(&rec).unwrap();
    assert!(text.contains("Kinesis_20131202.PutRecords"), "{text}");
    moto.stop_recording();
    moto.reset_recording();
    assert!(moto.recording().is_empty());
}

#[tokio::test]
async fn verifying_mode_checks_signatures() {
    let moto = Moto::start_verifying(3);
    let (akid, secret) = moto.create_user_with_key("tester").await;
    assert!(!akid.is_empty() && !secret.is_empty());

    let good = Kds::with_credentials(&moto.endpoint(), "us-east-1", &akid, &secret, None);
    good.create_stream("v", 1).await.unwrap();
    let (status, v) = good.put_records("v", &[("k", b"signed")]).await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(good.read_all("v").await.unwrap()[0].data, b"signed");

    let bad = Kds::with_credentials(&moto.endpoint(), "us-east-1", &akid, "wrong-secret", None);
    let (status, v) = bad
        .call("DescribeStreamSummary", json!({"StreamName": "v"}))
        .await
        .unwrap();
    assert_eq!(status, 403, "{v}");
    // moto answers auth errors in XML
    let body = v.as_str().unwrap_or_default();
    assert!(
        body.contains("<Code>") || body.contains("Signature"),
        "{body}"
    );

    let unknown = Kds::new(&moto.endpoint(), "us-east-1");
    let (status, v) = unknown
        .call("DescribeStreamSummary", json!({"StreamName": "v"}))
        .await
        .unwrap();
    assert_eq!(status, 403, "{v}");
}

/// The sink's SigV4 verification accepts a request signed by an independent implementation
/// (botocore, from moto's venv) and rejects it under another secret.
#[test]
fn sink_verifies_botocore_signatures() {
    use kb_testkit::sink::{Sink, SinkConfig};
    let python = Moto::binary().with_file_name("python");
    let script = r#"
import sys, urllib.request, urllib.error
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, secret, body = sys.argv[1] + "/", sys.argv[2], sys.argv[3].encode()
req = AWSRequest(method="POST", url=url, data=body, headers={
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "Kinesis_20131202.PutRecords",
    "User-Agent": "kinesis-bit/0.1.0"})
SigV4Auth(Credentials("AKIDTESTKEY", secret), "kinesis", "us-east-1").add_auth(req)
r = urllib.request.Request(url, data=body, headers=dict(req.headers.items()), method="POST")
try:
    resp = urllib.request.urlopen(r)
    print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;
    let sink =
        Sink::start_blocking(SinkConfig::default().verify_sigv4("AKIDTESTKEY", "testsecret"));
    let body = r#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"p"}]}"#;
    let run = |secret: &str| {
        let out = std::process::Command::new(&python)
            .args(["-c", script, &sink.endpoint(), secret, body])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ok = run("testsecret");
    assert!(ok.starts_with("200 "), "{ok}");
    let bad = run("other");
    assert!(
        bad.starts_with("403 ") && bad.contains("InvalidSignatureException"),
        "{bad}"
    );
    assert_eq!(sink.stats().entries_accepted, 1);
}
