//! The agent against kinesis-local (kinesis-mock), the second independent Kinesis
//! implementation of `docs/test-peers.md`: its `"ErrorCode":null` success entries, stream
//! maximum record sizes above 1 MiB, per-record `InvalidArgumentException` inside a 200 answer,
//! and its TLS listener (`tls.ca_file`, `tls.verify`, `tls.verify_hostname`). What arrived is
//! read back with GetRecords and compared byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{self_signed_cert, KinesisLocal};

const REGION: &str = "us-east-1";
const LIMIT: Duration = Duration::from_secs(90);

/// Runs the agent with `input` on stdin through a classic config file: stdin (4 MB lines) →
/// kinesis_streams with `stream`, `region`, `endpoint` and the `extra` output keys; debug log,
/// `Grace 5`, fast engine retries.
fn ship(endpoint: &str, stream: &str, extra: &[(&str, &str)], input: Vec<u8>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    let mut text = format!(
        "[SERVICE]\n    Grace 5\n    Log_Level debug\n    scheduler.base 1\n    scheduler.cap 1\n\n\
         [INPUT]\n    Name stdin\n    buffer_size 4M\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream {stream}\n    region {REGION}\n    \
         endpoint {endpoint}\n"
    );
    for (k, v) in extra {
        text.push_str(&format!("    {k} {v}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    let mut cmd = agent();
    cmd.args(["-c", conf.to_str().unwrap()]);
    run_with_stdin(&mut cmd, &input, LIMIT)
}

/// [`ship`] on a blocking thread (the peers are polled from the async test).
async fn ship_async(
    endpoint: String,
    stream: &str,
    extra: &[(&str, &str)],
    input: Vec<u8>,
) -> Output {
    let stream = stream.to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ship(&endpoint, &stream, &extra, input)
    })
    .await
    .unwrap()
}

/// Everything in `stream`, data only, sorted (the order across shards is not defined).
async fn stream_data(kds: &Kds, stream: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = kds
        .read_all(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Lines of the log at `[ warn]` or `[error]`, except the stdin end-of-file notice.
fn warnings(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.contains("[ warn]") || l.contains("[error]"))
        .filter(|l| !l.contains("[input:stdin"))
        .map(str::to_string)
        .collect()
}

/// Number of records over all `PutRecords with N records` debug lines.
fn records_sent(out: &Output) -> usize {
    stderr(out)
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("PutRecords with ")? + "PutRecords with ".len()..];
            rest.split(' ').next()?.parse::<usize>().ok()
        })
        .sum()
}

/// `{"big":"<n bytes of a repeating pattern>"}` (compact JSON) without the newline.
fn big_record(n: usize) -> Vec<u8> {
    let pattern = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
    let mut v = b"{\"big\":\"".to_vec();
    v.extend(pattern.iter().cycle().take(n));
    v.extend_from_slice(b"\"}");
    v
}

// ------------------------------------------------------------------------------------------------
// 1. happy path over plain http, null ErrorCode entries

#[tokio::test(flavor = "multi_thread")]
async fn records_arrive_byte_exact_and_null_error_codes_are_success() {
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("happy", 4).await.unwrap();

    // The peer quirk this test relies on: success entries carry "ErrorCode":null.
    kds.create_stream("probe", 1).await.unwrap();
    let (st, resp) = kds.put_records("probe", &[("k", b"x")]).await.unwrap();
    assert_eq!(st, 200, "{resp}");
    let entry = &resp["Records"][0];
    assert!(
        entry.get("ErrorCode").is_some_and(|c| c.is_null()) && entry["SequenceNumber"].is_string(),
        "kinesis-local no longer answers ErrorCode:null: {resp}"
    );

    let mut input = String::new();
    let mut want: Vec<Vec<u8>> = Vec::new();
    input.push_str("{\"msg\":\"h\u{e9}llo \\\"q\\\"\",\"n\":1,\"f\":0.5}\n");
    want.push(b"{\"msg\":\"h\\u00e9llo \\\"q\\\"\",\"n\":1,\"f\":0.5}\n".to_vec());
    input.push_str("plain text line\n");
    want.push(b"{\"log\":\"plain text line\"}\n".to_vec());
    input.push_str("{ \"a\" : { \"b\" : [1, 2, null] }, \"t\" : true }\n");
    want.push(b"{\"a\":{\"b\":[1,2,null]},\"t\":true}\n".to_vec());
    for i in 0..60 {
        input.push_str(&format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i)));
        want.push(format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i)).into_bytes());
    }
    let n = want.len();

    let out = ship_async(kl.endpoint(), "happy", &[], input.into_bytes()).await;
    assert_success(&out);
    let log = stderr(&out);
    // Exactly one copy of every record, byte for byte.
    assert_eq!(
        stream_data(&kds, "happy").await,
        sorted(want),
        "log:\n{log}"
    );
    // Accepted at the first attempt: nothing re-sent, nothing failed, no warning.
    assert_eq!(records_sent(&out), n, "log:\n{log}");
    assert!(
        log.contains(&format!(
            "processed {n} records: {n} done, 0 to retry, happy"
        )),
        "{log}"
    );
    assert_eq!(warnings(&out), Vec::<String>::new(), "log:\n{log}");
}

// ------------------------------------------------------------------------------------------------
// 2. max_record_size above 1 MiB

#[tokio::test(flavor = "multi_thread")]
async fn raised_stream_maximum_takes_a_2_mib_record() {
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), REGION);
    let big = big_record(2 * 1024 * 1024);
    let mut big_nl = big.clone();
    big_nl.push(b'\n');
    let mut input = b"{\"n\":1}\n".to_vec();
    input.extend_from_slice(&big_nl);
    input.extend_from_slice(b"{\"n\":2}\n");

    // Stream maximum raised to 3 MiB, max_record_size 3M (3,000,000): arrives intact.
    kds.create_stream("large", 1).await.unwrap();
    kds.update_max_record_size("large", 3072).await.unwrap();
    kds.wait_active("large", Duration::from_secs(10))
        .await
        .unwrap();
    let summary = kds.describe_summary("large").await.unwrap();
    assert_eq!(
        summary["MaxRecordSizeInKiB"].as_u64(),
        Some(3072),
        "{summary}"
    );
    let out = ship_async(
        kl.endpoint(),
        "large",
        &[("max_record_size", "3M")],
        input.clone(),
    )
    .await;
    assert_success(&out);
    let got = stream_data(&kds, "large").await;
    let want = sorted(vec![
        b"{\"n\":1}\n".to_vec(),
        big_nl.clone(),
        b"{\"n\":2}\n".to_vec(),
    ]);
    assert!(
        got == want,
        "records differ: got sizes {:?}, want {:?}; log:\n{}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        want.iter().map(Vec::len).collect::<Vec<_>>(),
        stderr(&out)
    );
    assert_eq!(warnings(&out), Vec::<String>::new(), "{}", stderr(&out));

    // Default max_record_size (1 MiB): the same record is dropped before sending, the others
    // arrive.
    kds.create_stream("default", 1).await.unwrap();
    kds.update_max_record_size("default", 3072).await.unwrap();
    kds.wait_active("default", Duration::from_secs(10))
        .await
        .unwrap();
    let out = ship_async(kl.endpoint(), "default", &[], input).await;
    assert_success(&out);
    let log = stderr(&out);
    assert_eq!(
        stream_data(&kds, "default").await,
        sorted(vec![b"{\"n\":1}\n".to_vec(), b"{\"n\":2}\n".to_vec()]),
        "log:\n{log}"
    );
    let line = format!(
        "[size={}] Discarding record which is larger than max_record_size=1048576, default",
        big_nl.len()
    );
    assert!(log.contains(&line), "no {line:?} in:\n{log}");
    assert_eq!(
        records_sent(&out),
        2,
        "the big record must not be sent:\n{log}"
    );
}

// ------------------------------------------------------------------------------------------------
// 3. per-record InvalidArgumentException in a 200 answer

#[tokio::test(flavor = "multi_thread")]
async fn record_rejected_in_a_200_answer_is_dropped_not_retried() {
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("reject", 2).await.unwrap();
    let big = big_record(1_500_000);
    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in 0..3 {
        input.extend_from_slice(format!("{{\"small\":{i}}}\n").as_bytes());
        want.push(format!("{{\"small\":{i}}}\n").into_bytes());
    }
    input.extend_from_slice(&big);
    input.push(b'\n');
    for i in 3..6 {
        input.extend_from_slice(format!("{{\"small\":{i}}}\n").as_bytes());
        want.push(format!("{{\"small\":{i}}}\n").into_bytes());
    }

    // retry_limit no_limits: a record wrongly kept for retry would hold the agent until Grace
    // ends, with a non-zero number of undelivered records.
    let started = std::time::Instant::now();
    let out = ship_async(
        kl.endpoint(),
        "reject",
        &[("max_record_size", "2M"), ("retry_limit", "no_limits")],
        input,
    )
    .await;
    let took = started.elapsed();
    assert_success(&out);
    let log = stderr(&out);
    assert_eq!(
        stream_data(&kds, "reject").await,
        sorted(want),
        "log:\n{log}"
    );
    assert!(
        log.contains("record rejected by Kinesis and dropped: InvalidArgumentException"),
        "{log}"
    );
    // Sent once (7 entries), never again; the flush ends with nothing left to retry.
    assert_eq!(records_sent(&out), 7, "log:\n{log}");
    assert!(
        log.contains("processed 7 records: 7 done, 0 to retry, reject"),
        "{log}"
    );
    assert!(!log.contains("handed back"), "{log}");
    assert!(
        log.contains("service has stopped (0 pending tasks)"),
        "{log}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}; log:\n{log}");
}

// ------------------------------------------------------------------------------------------------
// 3b. protocol cbor

/// kinesis-local takes CBOR PutRecords (as the AWS Java SDK sends) and answers in CBOR, its
/// success entries with `ErrorCode: null` and an oversized record with a per-record
/// `InvalidArgumentException`: records arrive byte for byte, the rejected one is dropped, and
/// the logged body size is the CBOR body's (the request really was CBOR).
#[tokio::test(flavor = "multi_thread")]
async fn cbor_records_arrive_byte_exact_and_rejections_are_read() {
    use kb_kinesis::encode::{Protocol, PutRecordsBody};
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("cbor", 2).await.unwrap();
    let big = big_record(1_500_000);
    let mut input = Vec::new();
    let mut sent = Vec::new();
    let mut want = Vec::new();
    for i in 0..40 {
        let line = format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i * 7));
        input.extend_from_slice(line.as_bytes());
        sent.push(line.clone().into_bytes());
        want.push(line.into_bytes());
        if i == 20 {
            input.extend_from_slice(&big);
            input.push(b'\n');
            let mut b = big.clone();
            b.push(b'\n');
            sent.push(b);
        }
    }
    let out = ship_async(
        kl.endpoint(),
        "cbor",
        &[("max_record_size", "2M"), ("protocol", "cbor")],
        input,
    )
    .await;
    assert_success(&out);
    let log = stderr(&out);
    assert_eq!(stream_data(&kds, "cbor").await, sorted(want), "log:\n{log}");
    assert!(
        log.contains("record rejected by Kinesis and dropped: InvalidArgumentException"),
        "{log}"
    );
    assert_eq!(records_sent(&out), 41, "log:\n{log}");
    let mut body = PutRecordsBody::with_protocol("cbor", Protocol::Cbor);
    for d in &sent {
        assert!(body.try_push(d, "0123456789abcdef"));
    }
    let line = format!(
        "PutRecords with 41 records ({} bytes), cbor",
        body.body_len()
    );
    assert!(log.contains(&line), "no '{line}' in:\n{log}");
}

// ------------------------------------------------------------------------------------------------
// 4. TLS

/// A self-signed server certificate for `name` only (CN and DNS subjectAltName, no IP), usable
/// as its own CA file.
fn cert_for_other_name(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join("other-cert.pem");
    let key = dir.join("other-key.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "3650", "-subj"])
        .arg(format!("/CN={name}"))
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Ships one record to `stream` over TLS with `tls` keys, no retries; returns the output and
/// the record it sent.
async fn ship_tls(kl: &KinesisLocal, stream: &str, tls: &[(&str, &str)]) -> (Output, Vec<u8>) {
    let mut extra = vec![("retry_limit", "no_retries")];
    extra.extend_from_slice(tls);
    let line = format!("{{\"case\":\"{stream}\"}}\n").into_bytes();
    let out = ship_async(kl.tls_endpoint(), stream, &extra, line.clone()).await;
    (out, line)
}

/// The run delivered `line`, and only once, without a TLS error.
async fn assert_delivered(kds: &Kds, stream: &str, out: &Output, line: &[u8]) {
    assert_success(out);
    let log = stderr(out);
    assert_eq!(
        stream_data(kds, stream).await,
        vec![line.to_vec()],
        "log:\n{log}"
    );
    assert!(!log.contains("TLS handshake failed"), "{log}");
}

/// The run failed the TLS handshake with `hint` in the log, and nothing arrived.
async fn assert_refused(kds: &Kds, kl: &KinesisLocal, stream: &str, out: &Output, hint: &str) {
    let log = stderr(out);
    let prefix = format!("TLS handshake failed with 127.0.0.1:{}", kl.tls_port());
    assert!(
        log.lines().any(|l| l.contains(&prefix) && l.contains(hint)),
        "expected a TLS error ({prefix} … {hint}) in:\n{log}"
    );
    assert_eq!(
        stream_data(kds, stream).await,
        Vec::<Vec<u8>>::new(),
        "log:\n{log}"
    );
    assert!(
        log.contains("1 record handed back for a later retry"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_ca_file_delivers_and_without_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path(), "localhost");
    let kl = KinesisLocal::start_with_cert(&read(&cert), &read(&key));
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("ca", 1).await.unwrap();
    kds.create_stream("noca", 1).await.unwrap();
    let ca = cert.to_str().unwrap();

    let (out, line) = ship_tls(&kl, "ca", &[("tls.ca_file", ca)]).await;
    assert_delivered(&kds, "ca", &out, &line).await;

    // System trust store only: the self-signed certificate is not trusted.
    let (out, _) = ship_tls(&kl, "noca", &[]).await;
    assert_refused(&kds, &kl, "noca", &out, "not signed by a trusted CA").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_bundled_certificate_needs_verify_off() {
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("verify-on", 1).await.unwrap();
    kds.create_stream("verify-off", 1).await.unwrap();

    let (out, _) = ship_tls(&kl, "verify-on", &[]).await;
    assert_refused(&kds, &kl, "verify-on", &out, "not signed by a trusted CA").await;

    let (out, line) = ship_tls(&kl, "verify-off", &[("tls.verify", "off")]).await;
    assert_delivered(&kds, "verify-off", &out, &line).await;
    assert!(
        stderr(&out).contains("tls.verify is off: the server certificate is not checked"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_verify_hostname_off_forgives_only_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_for_other_name(dir.path(), "other.example");
    let kl = KinesisLocal::start_with_cert(&read(&cert), &read(&key));
    let kds = Kds::new(&kl.endpoint(), REGION);
    kds.create_stream("name-on", 1).await.unwrap();
    kds.create_stream("name-off", 1).await.unwrap();
    kds.create_stream("name-off-noca", 1).await.unwrap();
    let ca = cert.to_str().unwrap();

    // Trusted chain, but the certificate names other.example, not 127.0.0.1.
    let (out, _) = ship_tls(&kl, "name-on", &[("tls.ca_file", ca)]).await;
    assert_refused(&kds, &kl, "name-on", &out, "does not name this host").await;

    let (out, line) = ship_tls(
        &kl,
        "name-off",
        &[("tls.ca_file", ca), ("tls.verify_hostname", "off")],
    )
    .await;
    assert_delivered(&kds, "name-off", &out, &line).await;

    // verify_hostname off still checks the chain.
    let (out, _) = ship_tls(&kl, "name-off-noca", &[("tls.verify_hostname", "off")]).await;
    assert_refused(
        &kds,
        &kl,
        "name-off-noca",
        &out,
        "not signed by a trusted CA",
    )
    .await;
}
