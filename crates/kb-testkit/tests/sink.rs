//! The kb-testkit sink: plain and TLS, every fault kind, authentication and SigV4
//! verification, unique-id counting, and the `kb-sink` program.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kb_testkit::kds::{Kds, TEST_ACCESS_KEY_ID, TEST_SECRET};
use kb_testkit::peers::self_signed_cert;
use kb_testkit::sink::{Fault, FaultKind, FaultPlan, Sink, SinkConfig, SinkRecord};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PTE: &str = "ProvisionedThroughputExceededException";

fn records(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("pk{i}"), format!("data-{i}").into_bytes()))
        .collect()
}

async fn put(kds: &Kds, recs: &[(String, Vec<u8>)]) -> (u16, Value) {
    let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
    kds.put_records("s", &refs).await.unwrap()
}

/// Positions of failed entries and their codes.
fn failures(v: &Value) -> Vec<(usize, String)> {
    v["Records"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r["ErrorCode"].as_str().map(|c| (i, c.to_string())))
        .collect()
}

/// Raw HTTP/1.1 request with `Connection: close`; returns status, head and body.
async fn raw(port: u16, headers: &str, body: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

const AUTH: &str = "X-Amz-Target: Kinesis_20131202.PutRecords\r\nX-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n";
const BODY: &str = r#"{"StreamName":"s","Records":[{"Data":"aGVsbG8=","PartitionKey":"a"}]}"#;

#[tokio::test]
async fn plain_put_describe_and_store() {
    let sink = Sink::start(SinkConfig::default().store(true)).await;
    assert!(sink.endpoint().starts_with("http://127.0.0.1:"));
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let summary = kds.describe_summary("s").await.unwrap();
    assert_eq!(summary["StreamStatus"], "ACTIVE");
    assert_eq!(summary["StreamName"], "s");

    let recs = records(5);
    let (status, v) = put(&kds, &recs).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["FailedRecordCount"], 0);
    let entries = v["Records"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    let seqs: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["SequenceNumber"].as_str().unwrap())
        .collect();
    assert_eq!(seqs.len(), 5);
    assert!(seqs
        .iter()
        .all(|s| s.len() == 56 && s.bytes().all(|b| b.is_ascii_digit())));
    assert!(entries
        .iter()
        .all(|e| e["ShardId"] == "shardId-000000000000"));

    let want: Vec<SinkRecord> = recs
        .iter()
        .map(|(k, d)| SinkRecord {
            stream: "s".into(),
            partition_key: k.clone(),
            data: d.clone(),
        })
        .collect();
    assert_eq!(sink.records(), want);
    let st = sink.stats();
    assert_eq!((st.put_requests, st.ok, st.describe_requests), (1, 1, 1));
    assert_eq!(
        (st.entries_received, st.entries_accepted, st.entries_failed),
        (5, 5, 0)
    );
    assert_eq!(
        st.bytes_accepted,
        recs.iter().map(|r| r.1.len() as u64).sum::<u64>()
    );

    // GET /stats answers the same counters as JSON (benchmarks poll it) and is not counted.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        serde_json::to_value(sink.stats()).unwrap()
    );
    assert_eq!(sink.stats().requests, st.requests);

    let (status, head, body) = raw(sink.port(), AUTH, BODY).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-amz-json-1.1"),
        "{head}"
    );

    // bad base64 / bad JSON / unknown operation
    let (status, _, body) = raw(
        sink.port(),
        AUTH,
        r#"{"StreamName":"s","Records":[{"Data":"!!!","PartitionKey":"a"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");
    let (status, _, _) = raw(sink.port(), AUTH, "garbage").await;
    assert_eq!(status, 400);
    let (status, v) = kds.call("ListStreams", json!({})).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "UnknownOperationException");
}

#[tokio::test]
async fn tls_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path(), "localhost");
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let sink = Sink::start(SinkConfig::default().tls(&cert_pem, &key_pem)).await;
    assert!(sink.endpoint().starts_with("https://127.0.0.1:"));

    // a verifying client trusting the generated certificate
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();

    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let (status, v) = put(&kds, &records(3)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["FailedRecordCount"], 0);
    assert_eq!(sink.stats().entries_accepted, 3);
}

#[tokio::test]
async fn scripted_faults() {
    let plan = FaultPlan::new()
        .at(0, FaultKind::Throttle)
        .at(1, FaultKind::InternalFailure)
        .at(2, FaultKind::ServiceUnavailable)
        .at(3, FaultKind::ExpiredToken)
        .at(4, FaultKind::Unparseable)
        .at(5, FaultKind::MissingFailedRecordCount)
        .at(6, FaultKind::Drop)
        .at(7, FaultKind::Delay(Duration::from_millis(300)))
        .at(
            8,
            FaultKind::FailEntries {
                indices: vec![1, 3],
                code: "InternalFailure".into(),
            },
        )
        .at(
            9,
            FaultKind::FailAllEntries("KMSThrottlingException".into()),
        )
        .script(vec![Fault::new(
            10,
            FaultKind::Error {
                status: 400,
                code: "ValidationException".into(),
                message: "bad".into(),
            },
        )]);
    let sink = Sink::start(SinkConfig::default().faults(plan).store(true)).await;
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let recs = records(4);

    let expect_error = |(status, v): (u16, Value), want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{v}");
        assert_eq!(v["__type"], code, "{v}");
    };
    expect_error(put(&kds, &recs).await, 400, PTE);
    expect_error(put(&kds, &recs).await, 500, "InternalFailure");
    expect_error(put(&kds, &recs).await, 503, "ServiceUnavailable");
    expect_error(put(&kds, &recs).await, 403, "ExpiredTokenException");

    let (status, v) = put(&kds, &recs).await; // 4: unparseable
    assert_eq!(status, 200);
    assert!(v.is_string(), "body must not be JSON: {v}");
    let (status, v) = put(&kds, &recs).await; // 5: no FailedRecordCount
    assert_eq!(status, 200);
    assert!(v.get("FailedRecordCount").is_none(), "{v}");
    assert_eq!(v["Records"].as_array().unwrap().len(), 4);

    let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
    let err = kds.put_records("s", &refs).await.unwrap_err(); // 6: dropped
    assert!(!err.to_string().is_empty());

    let t0 = Instant::now();
    let (status, v) = put(&kds, &recs).await; // 7: delayed
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!((status, &v["FailedRecordCount"]), (200, &json!(0)));

    let (status, v) = put(&kds, &recs).await; // 8: entries 1 and 3 fail
    assert_eq!(status, 200);
    assert_eq!(v["FailedRecordCount"], 2);
    assert_eq!(
        failures(&v),
        vec![(1, "InternalFailure".into()), (3, "InternalFailure".into())]
    );
    assert!(v["Records"][0]["SequenceNumber"].is_string());
    assert!(v["Records"][1]["ErrorMessage"].is_string());

    let (_, v) = put(&kds, &recs).await; // 9: all fail
    assert_eq!(v["FailedRecordCount"], 4);
    assert!(failures(&v)
        .iter()
        .all(|(_, c)| c == "KMSThrottlingException"));

    expect_error(put(&kds, &recs).await, 400, "ValidationException"); // 10

    let (status, v) = put(&kds, &recs).await; // 11: normal
    assert_eq!((status, &v["FailedRecordCount"]), (200, &json!(0)));

    let st = sink.stats();
    assert_eq!(st.put_requests, 12);
    assert_eq!(
        (
            st.throttled,
            st.error500,
            st.error503,
            st.expired_token,
            st.unparseable
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(
        (st.missing_failed_count, st.dropped, st.other_errors),
        (1, 1, 1)
    );
    assert_eq!(st.ok, 4); // 7, 8, 9, 11
                          // accepted: 4 (unparseable) + 4 (missing count) + 4 (dropped) + 4 + 2 + 0 + 4
    assert_eq!(st.entries_accepted, 22);
    assert_eq!(st.entries_failed, 6);
    assert_eq!(sink.records().len(), 22);

    // a new plan counts its requests from when it is installed
    sink.set_faults(FaultPlan::new().at(1, FaultKind::Throttle));
    assert_eq!(put(&kds, &recs).await.0, 200);
    assert_eq!(put(&kds, &recs).await.0, 400);
    assert_eq!(put(&kds, &recs).await.0, 200);
}

async fn run_random(
    plan: FaultPlan,
    requests: usize,
    entries: usize,
) -> (Vec<(u16, Vec<(usize, String)>)>, Sink) {
    let sink = Sink::start(SinkConfig::default().faults(plan)).await;
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let recs = records(entries);
    let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
    let mut out = Vec::new();
    for _ in 0..requests {
        match kds.put_records("s", &refs).await {
            Ok((200, v)) if v.get("FailedRecordCount").is_some() => out.push((200, failures(&v))),
            Ok((status, _)) => out.push((status, vec![])),
            Err(_) => out.push((0, vec![])), // dropped
        }
    }
    (out, sink)
}

#[tokio::test]
async fn random_entry_faults_are_deterministic() {
    let plan = || {
        FaultPlan::new()
            .seed(42)
            .fail_entries(0.2, &[PTE, "InternalFailure"])
            .reject_entries(0.05)
    };
    let (a, sink) = run_random(plan(), 20, 100).await;
    let (b, _) = run_random(plan(), 20, 100).await;
    assert_eq!(a, b, "same seed, same faults");
    let (c, _) = run_random(plan().seed(43), 20, 100).await;
    assert_ne!(a, c, "another seed, other faults");

    let st = sink.stats();
    assert_eq!(st.entries_received, 2000);
    assert_eq!(st.entries_accepted + st.entries_failed, 2000);
    let failed = st.entries_failed as f64 / 2000.0;
    assert!((0.18..0.32).contains(&failed), "{failed}");
    let rejected = st.entries_rejected as f64 / 2000.0;
    assert!((0.02..0.09).contains(&rejected), "{rejected}");
    let codes: std::collections::BTreeSet<String> = a
        .iter()
        .flat_map(|(_, f)| f.iter().map(|(_, c)| c.clone()))
        .collect();
    let want: std::collections::BTreeSet<String> =
        [PTE, "InternalFailure", "InvalidArgumentException"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_eq!(codes, want);
}

#[tokio::test]
async fn random_request_faults_are_deterministic() {
    let plan = || {
        FaultPlan::new()
            .seed(7)
            .throttle(0.15)
            .error500(0.1)
            .error503(0.1)
            .expired_token(0.05)
            .unparseable(0.05)
            .missing_failed_count(0.05)
            .drop_connection(0.1)
    };
    let (a, sink) = run_random(plan(), 100, 5).await;
    let (b, _) = run_random(plan(), 100, 5).await;
    assert_eq!(a, b);
    let st = sink.stats();
    assert_eq!(st.put_requests, 100);
    for (name, n) in [
        ("throttled", st.throttled),
        ("500", st.error500),
        ("503", st.error503),
        ("dropped", st.dropped),
        ("ok", st.ok),
    ] {
        assert!(n > 0, "{name}: {st:?}");
    }
    assert_eq!(
        st.ok
            + st.throttled
            + st.error500
            + st.error503
            + st.expired_token
            + st.unparseable
            + st.missing_failed_count
            + st.dropped,
        100
    );
    let statuses: std::collections::BTreeSet<u16> = a.iter().map(|(s, _)| *s).collect();
    assert!(
        statuses.is_superset(&[0, 200, 400, 500, 503].into_iter().collect()),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn fixed_delay() {
    let sink = Sink::start(
        SinkConfig::default().faults(FaultPlan::new().delay(Duration::from_millis(200))),
    )
    .await;
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let t0 = Instant::now();
    assert_eq!(put(&kds, &records(1)).await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn stall_holds_answers_until_it_ends() {
    let sink = Sink::start(SinkConfig::default()).await;
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    sink.stall(Duration::from_millis(400));
    let t0 = Instant::now();
    let (status, v) = put(&kds, &records(2)).await;
    assert_eq!(status, 200, "{v}");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(sink.stats().entries_accepted, 2);
    assert_eq!(put(&kds, &records(1)).await.0, 200);
    assert_eq!(sink.stats().entries_accepted, 3);
}

#[tokio::test]
async fn authentication_headers_required() {
    let sink = Sink::start(SinkConfig::default()).await;
    let (status, _, body) = raw(
        sink.port(),
        "X-Amz-Target: Kinesis_20131202.PutRecords\r\n",
        BODY,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("MissingAuthenticationToken"), "{body}");
    let (status, _, body) =
        raw(sink.port(), "X-Amz-Target: Kinesis_20131202.PutRecords\r\nX-Amz-Date: 20260101T000000Z\r\nAuthorization: foo\r\n", BODY).await;
    assert_eq!(status, 403);
    assert!(body.contains("IncompleteSignatureException"), "{body}");
    let no_date = AUTH.replace("X-Amz-Date: 20260101T000000Z\r\n", "");
    let (status, _, _) = raw(sink.port(), &no_date, BODY).await;
    assert_eq!(status, 403);
    assert_eq!(sink.stats().auth_errors, 3);
    assert_eq!(sink.stats().entries_received, 0);
}

#[tokio::test]
async fn sigv4_verification() {
    let sink =
        Sink::start(SinkConfig::default().verify_sigv4(TEST_ACCESS_KEY_ID, TEST_SECRET)).await;
    let good = Kds::new(&sink.endpoint(), "eu-west-1");
    let (status, v) = put(&good, &records(3)).await;
    assert_eq!(status, 200, "{v}");
    // with a session token (signed x-amz-security-token)
    let tok = Kds::with_credentials(
        &sink.endpoint(),
        "us-east-1",
        TEST_ACCESS_KEY_ID,
        TEST_SECRET,
        Some("session/token=="),
    );
    assert_eq!(put(&tok, &records(1)).await.0, 200);

    let wrong = Kds::with_credentials(
        &sink.endpoint(),
        "us-east-1",
        TEST_ACCESS_KEY_ID,
        "nope",
        None,
    );
    let (status, v) = put(&wrong, &records(3)).await;
    assert_eq!(status, 403);
    assert_eq!(v["__type"], "InvalidSignatureException");
    let other = Kds::with_credentials(
        &sink.endpoint(),
        "us-east-1",
        "AKIDOTHER",
        TEST_SECRET,
        None,
    );
    let (status, v) = put(&other, &records(3)).await;
    assert_eq!(status, 403);
    assert_eq!(v["__type"], "UnrecognizedClientException");
    // a syntactically complete but bogus signature
    let forged = AUTH.replace("AKIDTEST/", &format!("{TEST_ACCESS_KEY_ID}/"));
    let (status, _, body) = raw(sink.port(), &forged, BODY).await;
    assert_eq!(status, 403);
    assert!(body.contains("InvalidSignatureException"), "{body}");

    let st = sink.stats();
    assert_eq!(st.entries_accepted, 4);
    assert_eq!(st.auth_errors, 3);
}

#[tokio::test]
async fn unique_id_counting() {
    let sink = Sink::start(SinkConfig::default().id_field("seq")).await;
    let kds = Kds::new(&sink.endpoint(), "us-east-1");
    let mut ids: Vec<u64> = (0..100).filter(|i| !(50..55).contains(i)).collect();
    ids.extend([10, 11, 11]);
    let mut recs: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|i| {
            (
                "k".to_string(),
                format!("{{\"msg\":\"x\",\"seq\":{i}}}\n").into_bytes(),
            )
        })
        .collect();
    recs.push(("k".into(), b"not json".to_vec()));
    for chunk in recs.chunks(30) {
        assert_eq!(put(&kds, chunk).await.0, 200);
    }
    assert_eq!(sink.duplicates(), vec![(10, 2), (11, 3)]);
    assert_eq!(sink.missing(0..100), vec![50, 51, 52, 53, 54]);
    assert_eq!(sink.unexpected(0..100), Vec::<u64>::new());
    assert_eq!(sink.id_count(11), 3);
    let st = sink.stats();
    assert_eq!(st.unique_ids, 95);
    assert_eq!(st.duplicate_entries, 3);
    assert_eq!(st.entries_without_id, 1);
    assert!(
        sink.records().is_empty(),
        "nothing stored without store: true"
    );

    // failed entries are not counted
    sink.set_faults(FaultPlan::new().at(0, FaultKind::FailAllEntries(PTE.into())));
    let again: Vec<(String, Vec<u8>)> = vec![("k".into(), b"{\"seq\":50}".to_vec())];
    assert_eq!(put(&kds, &again).await.1["FailedRecordCount"], 1);
    assert_eq!(sink.id_count(50), 0);
    assert_eq!(put(&kds, &again).await.1["FailedRecordCount"], 0);
    assert_eq!(sink.id_count(50), 1);
}

#[tokio::test]
async fn kb_sink_program() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kb-sink"))
        .args([
            "--port",
            "0",
            "--id-field",
            "seq",
            "--fail-entries",
            "0.5",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut endpoint = String::new();
    out.read_line(&mut endpoint).unwrap();
    let endpoint = endpoint.trim().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    let kds = Kds::new(&endpoint, "us-east-1");
    let recs: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| ("k".to_string(), format!("{{\"seq\":{i}}}").into_bytes()))
        .collect();
    let (status, v) = put(&kds, &recs).await;
    assert_eq!(status, 200);
    let failed = v["FailedRecordCount"].as_u64().unwrap();
    assert!((20..80).contains(&failed), "{failed}");

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut summary = String::new();
    out.read_line(&mut summary).unwrap();
    assert!(child.wait().unwrap().success());
    let s: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["entries_received"], 100);
    assert_eq!(s["entries_failed"], failed);
    assert_eq!(s["unique_ids"], 100 - failed);
    assert_eq!(s["duplicate_ids"], 0);
    assert_eq!(s["endpoint"], endpoint.as_str());
}
