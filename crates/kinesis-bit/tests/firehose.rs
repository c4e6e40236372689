//! The Firehose outputs, `kinesis_firehose` (Fluent Bit's) and `firehose` (the Go plugin's):
//! against moto, whose Firehose delivers to its S3 mock (happy path, SigV4 checked by moto's
//! verifying mode), and against kb-sink's PutRecordBatch with the same fault injection as for
//! Streams (every record exactly once through partial failures, throttling, 500s and resets).

mod common;

use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr};
use kb_testkit::firehose::{FirehoseClient, S3Client};
use kb_testkit::peers::Moto;
use kb_testkit::sink::{FaultKind, FaultPlan, Sink, SinkConfig};

const REGION: &str = "us-east-1";

/// Ship `input` through stdin to output `plugin` with the given output keys (classic file);
/// retries fast and unlimited.
fn ship(plugin: &str, keys: &[(&str, &str)], input: &[u8]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    let mut text = format!(
        "[SERVICE]\n    Grace 120\n    scheduler.base 1\n    scheduler.cap 2\n\n[INPUT]\n    Name stdin\n    Buffer_Size 4M\n\n\
         [OUTPUT]\n    Name {plugin}\n    Match *\n    retry_limit no_limits\n"
    );
    for (k, v) in keys {
        text.push_str(&format!("    {k} {v}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    let mut cmd = agent();
    cmd.args(["-c", conf.to_str().unwrap()]);
    run_with_stdin(&mut cmd, input, Duration::from_secs(180))
}

async fn ship_async(
    plugin: &'static str,
    keys: Vec<(&'static str, String)>,
    input: Vec<u8>,
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ship(plugin, &keys, &input)
    })
    .await
    .unwrap()
}

fn seq_records(n: u64) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(
            format!("{{\"seq\":{i},\"msg\":\"record number {i}\"}}\n").as_bytes(),
        );
    }
    input
}

async fn moto_with_stream(moto: &Moto, stream: &str, bucket: &str) -> S3Client {
    let s3 = S3Client::new(&moto.endpoint(), REGION);
    s3.create_bucket(bucket).await.unwrap();
    FirehoseClient::new(&moto.endpoint(), REGION)
        .create_delivery_stream(stream, bucket)
        .await
        .unwrap();
    s3
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_firehose_delivers_to_moto_s3_byte_for_byte() {
    let moto = Moto::start();
    let s3 = moto_with_stream(&moto, "fh", "fh-bucket").await;
    let input = "{\"msg\":\"h\u{e9}llo\",\"n\":1}\nplain line\n{\"a\":{\"b\":[1,null]}}\n";
    let out = ship_async(
        "kinesis_firehose",
        vec![
            ("delivery_stream", "fh".into()),
            ("region", REGION.into()),
            ("endpoint", moto.endpoint()),
        ],
        input.as_bytes().to_vec(),
    )
    .await;
    assert_success(&out);
    let mut got = s3.wait_for_lines("fh-bucket", 3).await.unwrap();
    got.sort();
    let mut want = vec![
        b"{\"msg\":\"h\\u00e9llo\",\"n\":1}\n".to_vec(),
        b"{\"log\":\"plain line\"}\n".to_vec(),
        b"{\"a\":{\"b\":[1,null]}}\n".to_vec(),
    ];
    want.sort();
    assert_eq!(got, want, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_firehose_sigv4_is_accepted_by_a_verifying_moto_and_a_wrong_secret_is_not() {
    let moto = Moto::start_verifying(3);
    let (akid, secret) = moto.create_user_with_key("kb-firehose").await;
    let s3 = S3Client::with_credentials(&moto.endpoint(), REGION, &akid, &secret);
    s3.create_bucket("signed").await.unwrap();
    let fh = FirehoseClient::with_credentials(&moto.endpoint(), REGION, &akid, &secret);
    fh.create_delivery_stream("signed", "signed").await.unwrap();
    // The server really verifies: the default test key is refused.
    let (st, body) = FirehoseClient::new(&moto.endpoint(), REGION)
        .call("ListDeliveryStreams", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(st, 403, "moto is not verifying signatures: {body}");

    let keys = |retry: &str| {
        vec![
            ("delivery_stream", "signed".to_string()),
            ("region", REGION.to_string()),
            ("endpoint", moto.endpoint()),
            ("retry_limit", retry.to_string()),
        ]
    };
    let run = |secret: String, keys: Vec<(&'static str, String)>, input: Vec<u8>| {
        let akid = akid.clone();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("kb.conf");
            let mut text = "[SERVICE]\n    Grace 10\n    scheduler.base 1\n    scheduler.cap 1\n[INPUT]\n    Name stdin\n[OUTPUT]\n    Name kinesis_firehose\n    Match *\n".to_string();
            for (k, v) in &keys {
                text.push_str(&format!("    {k} {v}\n"));
            }
            std::fs::write(&conf, text).unwrap();
            let mut cmd = agent();
            cmd.env("AWS_ACCESS_KEY_ID", akid)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .args(["-c", conf.to_str().unwrap()]);
            run_with_stdin(&mut cmd, &input, Duration::from_secs(90))
        })
    };
    let out = run(secret.clone(), keys("1"), seq_records(20))
        .await
        .unwrap();
    assert_success(&out);
    let lines = s3.wait_for_lines("signed", 20).await.unwrap();
    assert_eq!(lines.len(), 20, "{}", stderr(&out));
    assert!(!stderr(&out).contains("auth error"), "{}", stderr(&out));

    let out = run(
        "not-the-secret".into(),
        keys("1"),
        b"{\"bad\":1}\n".to_vec(),
    )
    .await
    .unwrap();
    let log = stderr(&out);
    assert!(
        log.contains("PutRecordBatch API responded with error='SignatureDoesNotMatch'")
            || log.contains("PutRecordBatch API responded with error='InvalidClientTokenId'"),
        "{log}"
    );
    assert_eq!(s3.wait_for_lines("signed", 21).await.unwrap().len(), 20);
}

/// The Go plugin's README example (`replace_dots _`) plus `data_keys` and `time_key`: the
/// records the Go plugin writes (sorted keys, dots replaced, HTML-safe escaping, raw UTF-8).
#[tokio::test(flavor = "multi_thread")]
async fn go_firehose_readme_config_writes_what_the_go_plugin_writes() {
    let moto = Moto::start();
    let s3 = moto_with_stream(&moto, "my-stream", "go-bucket").await;
    let input = concat!(
        r#"{"z":1,"kubernetes.pod":"web-1","a.b":{"c.d":true},"log":"<b> & caf\u00e9","drop":"x","f":0.5}"#,
        "\n"
    );
    let out = ship_async(
        "firehose",
        vec![
            ("region", REGION.into()),
            ("delivery_stream", "my-stream".into()),
            ("replace_dots", "_".into()),
            ("data_keys", "z,kubernetes.pod,a.b,log,f,time".into()),
            ("time_key", "time".into()),
            ("time_key_format", "%Y".into()),
            ("endpoint", moto.endpoint()),
        ],
        input.as_bytes().to_vec(),
    )
    .await;
    assert_success(&out);
    let got = s3.wait_for_lines("go-bucket", 1).await.unwrap();
    let year = {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Good enough for the test: the year of now (days / 365.2425).
        1970 + (secs as f64 / 86_400.0 / 365.2425) as u64
    };
    assert_eq!(
        String::from_utf8_lossy(&got[0]),
        format!("{{\"a_b\":{{\"c_d\":true}},\"f\":0.5,\"kubernetes_pod\":\"web-1\",\"log\":\"\\u003cb\\u003e \\u0026 caf\u{e9}\",\"time\":\"{year}\",\"z\":1}}\n"),
        "{}",
        stderr(&out)
    );
}

async fn sink(faults: FaultPlan) -> Sink {
    Sink::start(SinkConfig::default().id_field("seq").faults(faults)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_firehose_every_record_exactly_once_through_failures_throttles_500s_and_resets() {
    const N: u64 = 20_000;
    let sink = sink(
        FaultPlan::new()
            .seed(42)
            .fail_entries(0.10, &[])
            .throttle(0.1)
            .error500(0.1)
            .drop_connection(0.1),
    )
    .await;
    let out = ship_async(
        "kinesis_firehose",
        vec![
            ("delivery_stream", "faults".into()),
            ("region", REGION.into()),
            ("endpoint", sink.endpoint()),
        ],
        seq_records(N),
    )
    .await;
    let st = sink.stats();
    let missing = sink.missing(0..N);
    assert!(
        missing.is_empty(),
        "lost {}; {st:?}\n{}",
        missing.len(),
        stderr(&out)
    );
    let dups = sink.duplicates();
    assert!(
        dups.is_empty(),
        "duplicated: {:?}",
        &dups[..dups.len().min(10)]
    );
    assert!(sink.unexpected(0..N).is_empty());
    assert_success(&out);
    assert!(
        st.entries_failed > 0 && st.throttled > 0 && st.error500 > 0 && st.dropped > 0,
        "the faults did not all happen: {st:?}"
    );
    let log = stderr(&out);
    assert!(
        log.contains("records failed to be delivered, retrying only the failed records, faults (")
            && log.contains("ServiceUnavailableException="),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_partial_failure_resends_only_the_failed_records_and_batches_500() {
    let sink = Sink::start(SinkConfig::default().id_field("seq").store(true).faults(
        FaultPlan::new().at(
            0,
            FaultKind::FailEntries {
                indices: vec![3, 7],
                code: "ServiceUnavailableException".into(),
            },
        ),
    ))
    .await;
    let out = ship_async(
        "firehose",
        vec![
            ("delivery_stream", "fh".into()),
            ("region", REGION.into()),
            ("endpoint", sink.endpoint()),
        ],
        seq_records(1200),
    )
    .await;
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![500, 500, 202]);
    assert!(sink.missing(0..1200).is_empty() && sink.duplicates().is_empty());
    // The Go plugin's record: sorted keys, newline.
    let rec = &sink.records()[0];
    assert_eq!(rec.data, b"{\"msg\":\"record number 0\",\"seq\":0}\n");
    assert_eq!(
        (rec.stream.as_str(), rec.partition_key.as_str()),
        ("fh", "")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_requests_stay_within_4_mib_and_records_within_1000_kib() {
    let sink = Sink::start(SinkConfig::default().store(true)).await;
    // 12 records of ~600 KB: at most 6 fit in a 4 MiB body (base64 ≈ 800 KB each); one of
    // 1,100,000 bytes is over 1,000 KiB and dropped.
    let mut input = Vec::new();
    for i in 0..12 {
        input.extend_from_slice(
            format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(600_000)).as_bytes(),
        );
    }
    input.extend_from_slice(format!("{{\"big\":\"{}\"}}\n", "y".repeat(1_100_000)).as_bytes());
    let out = ship_async(
        "kinesis_firehose",
        vec![
            ("delivery_stream", "fh".into()),
            ("region", REGION.into()),
            ("endpoint", sink.endpoint()),
        ],
        input,
    )
    .await;
    assert_success(&out);
    let sizes = sink.request_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 12, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 5), "{sizes:?}");
    assert!(
        stderr(&out).contains("Discarding record which is larger than max_record_size=1024000, fh"),
        "{}",
        stderr(&out)
    );
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    Some(raw.split_once("\r\n\r\n")?.1.to_string())
}

/// Each output of the family exports its counters under its own name; kinesis_streams' keep
/// theirs.
#[test]
fn each_output_counts_under_its_own_name() {
    let sink = Sink::start_blocking(SinkConfig::default());
    let port = kb_testkit::peers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    let mut text = format!(
        "[SERVICE]\n    Flush 1\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n\n\
         [INPUT]\n    Name dummy\n    Rate 10\n    Samples 5\n\n"
    );
    for (plugin, dest) in [
        ("kinesis_streams", "stream"),
        ("kinesis_firehose", "delivery_stream"),
        ("kinesis", "stream"),
        ("firehose", "delivery_stream"),
    ] {
        text.push_str(&format!(
            "[OUTPUT]\n    Name {plugin}\n    Match *\n    {dest} s\n    region us-east-1\n    endpoint {}\n\n",
            sink.endpoint()
        ));
    }
    std::fs::write(&conf, text).unwrap();
    let mut child = agent()
        .args(["-c", conf.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let prom = loop {
        let done = http_get(port, "/api/v1/metrics")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|m| {
                [
                    "kinesis_streams.0",
                    "kinesis_firehose.0",
                    "kinesis.0",
                    "firehose.0",
                ]
                .iter()
                .all(|o| m["output"][o]["proc_records"] == 5)
            });
        if done {
            break http_get(port, "/api/v1/metrics/prometheus").unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not all delivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    for (prefix, name) in [
        ("fluentbit_kinesis_streams", "kinesis_streams.0"),
        ("fluentbit_kinesis_firehose", "kinesis_firehose.0"),
        ("fluentbit_kinesis", "kinesis.0"),
        ("fluentbit_firehose", "firehose.0"),
    ] {
        let line = format!("{prefix}_sent_bytes_total{{name=\"{name}\"}}");
        assert!(prom.contains(&line), "no {line} in:\n{prom}");
        assert!(
            prom.contains(&format!(
                "{prefix}_requests_total{{name=\"{name}\",result=\"ok\"}}"
            )),
            "{prom}"
        );
        assert!(
            !prom.contains(&format!(
                "# HELP {prefix}_requests_total Fluent Bit plugin metric."
            )),
            "no help text for {prefix}"
        );
    }
    // Firehose has no partition keys, so no fallbacks counter.
    assert!(!prom.contains("fluentbit_kinesis_firehose_partition_key_fallbacks_total"));
    assert!(prom.contains("fluentbit_kinesis_streams_partition_key_fallbacks_total"));
}
