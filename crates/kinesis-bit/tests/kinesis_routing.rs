//! Issue 15: one output, many streams (`stream` as a template, `stream_fallback`) against
//! ferrokinesis, records read back with GetRecords; and `stream_arn` (PutRecords and the
//! healthcheck by `StreamARN`, region from the ARN, signature checked) against kb-sink.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{agent, assert_success, run_with_stdin, stderr, wait_with_timeout};
use kb_testkit::kds::{Kds, TEST_ACCESS_KEY_ID, TEST_SECRET};
use kb_testkit::peers::{free_port, Ferrokinesis};
use kb_testkit::sink::{Sink, SinkConfig};

const LIMIT: Duration = Duration::from_secs(90);

/// The line of record `seq` for `app` (`None`: no `app` field), as stdin gives it and as
/// the output sends it (a JSON object with these keys in this order, and a newline).
fn line(seq: usize, app: Option<&str>) -> String {
    match app {
        Some(a) => format!("{{\"seq\":{seq},\"app\":\"{a}\"}}\n"),
        None => format!("{{\"seq\":{seq},\"other\":\"x\"}}\n"),
    }
}

/// 80 records: `a`, `b`, `c` (existing streams), `gone` (no such stream), no `app` at all,
/// and an `app` that makes no valid stream name. Returns the input and, per stream the
/// records must reach with `stream_fallback fallback`, the lines in input order.
fn routed_input() -> (String, BTreeMap<String, Vec<String>>) {
    let mut input = String::new();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for seq in 0..80 {
        let (app, stream) = match seq % 8 {
            0 | 1 => (Some("a"), "logs-a"),
            2 | 3 => (Some("b"), "logs-b"),
            4 => (Some("c"), "logs-c"),
            5 => (Some("gone"), "fallback"),
            6 => (None, "fallback"),
            _ => (Some("bad name"), "fallback"),
        };
        let l = line(seq, app);
        input.push_str(&l);
        want.entry(stream.to_string()).or_default().push(l);
    }
    (input, want)
}

async fn ferro_with_streams(streams: &[(&str, u32)]) -> (Ferrokinesis, Kds) {
    let ferro = Ferrokinesis::start();
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    for (s, shards) in streams {
        kds.create_stream(s, *shards).await.expect("create stream");
    }
    (ferro, kds)
}

/// Every record of `stream` through GetRecords, sorted (shards interleave).
async fn read_sorted(kds: &Kds, stream: &str) -> Vec<String> {
    let mut got: Vec<String> = kds
        .read_all(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.data).expect("UTF-8 record"))
        .collect();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn records_reach_their_streams_and_the_rest_goes_to_the_fallback() {
    let (ferro, kds) =
        ferro_with_streams(&[("logs-a", 1), ("logs-b", 2), ("logs-c", 1), ("fallback", 1)]).await;
    let (input, want) = routed_input();
    let ep = ferro.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args(["-p", "stream=logs-$app", "-p", "stream_fallback=fallback"])
            .args(["-p", "region=us-east-1", "-p", &format!("endpoint={ep}")]);
        run_with_stdin(&mut cmd, input.as_bytes(), LIMIT)
    })
    .await
    .unwrap();
    assert_success(&out);
    let log = stderr(&out);
    for (stream, lines) in &want {
        let mut lines = lines.clone();
        lines.sort();
        assert_eq!(
            read_sorted(&kds, stream).await,
            lines,
            "stream {stream}; log:\n{log}"
        );
    }
    // Exactly once, each in the stream it was meant for (ferrokinesis' capture).
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for r in ferro.captured() {
        let l = String::from_utf8(r.data).unwrap();
        assert!(
            seen.insert(l.clone(), r.stream.clone()).is_none(),
            "sent twice: {l}"
        );
    }
    assert_eq!(seen.len(), 80, "{log}");
    assert!(
        log.contains("stream logs-gone does not exist (")
            && log.contains("sent to stream_fallback fallback"),
        "{log}"
    );
    assert!(
        log.contains("stream logs-$app gave no stream for a record (a field or tag part is missing or not a string or number): sent to stream_fallback fallback"),
        "{log}"
    );
    assert!(
        log.contains("('logs-bad name' is not a stream name"),
        "{log}"
    );
}

/// One GET over a fresh connection: the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The value of the Prometheus sample `family{…labels…}` whose labels contain `label`.
fn sample(text: &str, family: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_fallback_they_are_dropped_and_counted() {
    let (ferro, kds) = ferro_with_streams(&[("logs-a", 1), ("logs-b", 1)]).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Flush 0.5\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n\n\
             [INPUT]\n    Name stdin\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream logs-$app\n    region us-east-1\n    \
             endpoint {}\n",
            ferro.endpoint()
        ),
    )
    .unwrap();
    let mut input = String::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for seq in 0..40 {
        let l = match seq % 4 {
            0 => line(seq, Some("a")),
            1 => line(seq, Some("b")),
            2 => line(seq, Some("gone")),
            _ => line(seq, None),
        };
        match seq % 4 {
            0 => a.push(l.clone()),
            1 => b.push(l.clone()),
            _ => {}
        }
        input.push_str(&l);
    }
    let mut child = agent()
        .args(["-c", conf.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    // stdin stays open until the counters are read, so the agent (and its API) keeps running.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let family = "fluentbit_kinesis_streams_dropped_records_total";
    let start = Instant::now();
    let counted = loop {
        let text = http_get(port, "/api/v1/metrics/prometheus");
        let counts = text.as_deref().map(|t| {
            (
                sample(t, family, "reason=\"stream_not_found\""),
                sample(t, family, "reason=\"stream_unresolved\""),
            )
        });
        if let Some((Some(nf), Some(un))) = counts {
            if nf >= 10.0 && un >= 10.0 {
                break (nf, un, text.unwrap_or_default());
            }
        }
        if start.elapsed() > LIMIT {
            drop(stdin);
            let out = wait_with_timeout(child, Duration::from_secs(30));
            panic!("counters not reached: {counts:?}; log:\n{}", stderr(&out));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || wait_with_timeout(child, LIMIT))
        .await
        .unwrap();
    assert_success(&out);
    let log = stderr(&out);
    assert_eq!((counted.0, counted.1), (10.0, 10.0), "{}", counted.2);
    assert_eq!(
        sample(
            &counted.2,
            "fluentbit_kinesis_streams_stream_fallbacks_total",
            "reason=\"not_found\""
        ),
        Some(0.0),
        "{}",
        counted.2
    );
    a.sort();
    b.sort();
    assert_eq!(read_sorted(&kds, "logs-a").await, a, "{log}");
    assert_eq!(read_sorted(&kds, "logs-b").await, b, "{log}");
    assert_eq!(ferro.captured().len(), 20, "{log}");
    assert!(
        log.contains("stream logs-gone does not exist (")
            && log.contains("and stream_fallback is not set: "),
        "{log}"
    );
    assert!(
        log.contains("and stream_fallback is not set: record dropped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_templates_route_whole_chunks() {
    let (ferro, kds) = ferro_with_streams(&[("t-app1", 1), ("t-app2", 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    // Two inputs with their own tags; `$TAG[1]` names the stream.
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name dummy\n    Tag logs.app1\n    Dummy {{\"n\":1}}\n    Samples 3\n    Rate 20\n\n\
             [INPUT]\n    Name dummy\n    Tag logs.app2\n    Dummy {{\"n\":2}}\n    Samples 2\n    Rate 20\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match logs.*\n    stream t-$TAG[1]\n    region us-east-1\n    \
             endpoint {}\n",
            ferro.endpoint()
        ),
    )
    .unwrap();
    let child = agent()
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got1 = kds
        .wait_for_count("t-app1", 3, Duration::from_secs(30))
        .await;
    let got2 = kds
        .wait_for_count("t-app2", 2, Duration::from_secs(30))
        .await;
    let out = common::terminate_and_wait(child, LIMIT).await;
    assert_success(&out);
    let (got1, got2) = (got1.unwrap(), got2.unwrap());
    assert!(got1.iter().all(|r| r.data == b"{\"n\":1}\n"), "{got1:?}");
    assert!(got2.iter().all(|r| r.data == b"{\"n\":2}\n"), "{got2:?}");
    assert_eq!((got1.len(), got2.len()), (3, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn per_stream_retries_resend_only_the_failed_records_once() {
    use kb_testkit::sink::{FaultKind, FaultPlan};
    // A fifth of the entries fail, and the second and fifth requests are throttled: every
    // record must still reach its own stream exactly once.
    let sink = Sink::start(
        SinkConfig::default().id_field("seq").store(true).faults(
            FaultPlan::new()
                .seed(15)
                .fail_entries(0.2, &["ProvisionedThroughputExceededException"])
                .at(1, FaultKind::Throttle)
                .at(4, FaultKind::Throttle),
        ),
    )
    .await;
    let n = 1500u64;
    let input: String = (0..n)
        .map(|i| format!("{{\"seq\":{i},\"app\":\"s{}\"}}\n", i % 3))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Grace 120\n    scheduler.base 1\n    scheduler.cap 2\n\n[INPUT]\n    Name stdin\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream r-$app\n    region us-east-1\n    \
             endpoint {}\n    retry_limit no_limits\n",
            sink.endpoint()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-c", conf.to_str().unwrap()]);
        run_with_stdin(&mut cmd, input.as_bytes(), Duration::from_secs(180))
    })
    .await
    .unwrap();
    assert_success(&out);
    let log = stderr(&out);
    assert!(sink.missing(0..n).is_empty(), "{log}");
    assert_eq!(sink.duplicates(), vec![], "{log}");
    let recs = sink.records();
    assert_eq!(recs.len() as u64, n);
    for r in &recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
        let seq = v["seq"].as_u64().unwrap();
        assert_eq!(r.stream, format!("r-s{}", seq % 3), "record {seq}");
    }
    assert!(log.contains("retrying only the failed records"), "{log}");
    let st = sink.stats();
    assert!(st.entries_failed > 0 && st.throttled > 0, "{st:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_variables_expand_before_the_template() {
    let (ferro, kds) = ferro_with_streams(&[("logs-prod-web", 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name stdin\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream logs-${{KB_ROUTING_ENV}}-$app\n    \
             region us-east-1\n    endpoint {}\n",
            ferro.endpoint()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.env("KB_ROUTING_ENV", "prod")
            .args(["-c", conf.to_str().unwrap()]);
        run_with_stdin(&mut cmd, b"{\"app\":\"web\"}\n", LIMIT)
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(
        read_sorted(&kds, "logs-prod-web").await,
        vec!["{\"app\":\"web\"}\n".to_string()],
        "{}",
        stderr(&out)
    );
}

const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/by-arn";

#[tokio::test(flavor = "multi_thread")]
async fn stream_arn_is_sent_signed_in_the_arn_region() {
    // The sink checks every signature with the agent's test key, and that a StreamARN is in
    // the region the request is signed for.
    let sink = Sink::start(
        SinkConfig::default()
            .store(true)
            .verify_sigv4(TEST_ACCESS_KEY_ID, TEST_SECRET),
    )
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        // No region: eu-west-1 comes from the ARN.
        cmd.args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args(["-p", &format!("stream_arn={ARN}"), "-p", "healthcheck=on"])
            .args(["-p", &format!("endpoint={ep}")]);
        run_with_stdin(&mut cmd, b"{\"x\":1}\n{\"x\":2}\n", LIMIT)
    })
    .await
    .unwrap();
    assert_success(&out);
    let st = sink.stats();
    assert_eq!(
        (st.auth_errors, st.bad_requests, st.describe_requests),
        (0, 0, 1),
        "{st:?}\n{}",
        stderr(&out)
    );
    let recs = sink.records();
    assert_eq!(recs.len(), 2, "{}", stderr(&out));
    assert!(recs.iter().all(|r| r.stream == ARN), "{recs:?}");
    assert!(
        stderr(&out).contains(&format!("healthcheck: stream {ARN} is ACTIVE")),
        "{}",
        stderr(&out)
    );

    // A region of its own must be the ARN's too: signed for us-east-1, the sink refuses it.
    sink.reset();
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args(["-p", &format!("stream_arn={ARN}"), "-p", "region=us-east-1"])
            .args(["-p", &format!("endpoint={ep}"), "-p", "Retry_Limit=False"]);
        run_with_stdin(&mut cmd, b"{\"x\":1}\n", LIMIT)
    })
    .await
    .unwrap();
    assert!(sink.records().is_empty());
    assert!(
        stderr(&out).contains("StreamARN arn:aws:kinesis:eu-west-1:123456789012:stream/by-arn is not in the request's region 'us-east-1'"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_arn_templates_name_each_record_by_arn() {
    let sink = Sink::start(
        SinkConfig::default()
            .store(true)
            .verify_sigv4(TEST_ACCESS_KEY_ID, TEST_SECRET),
    )
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args([
                "-p",
                "stream_arn=arn:aws:kinesis:us-west-2:123456789012:stream/s-$app",
                "-p",
                "stream_fallback=other",
            ])
            .args(["-p", &format!("endpoint={ep}")]);
        run_with_stdin(
            &mut cmd,
            b"{\"app\":\"x\"}\n{\"app\":\"y\"}\n{\"no\":1}\n{\"app\":\"x\"}\n",
            LIMIT,
        )
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut by_stream: BTreeMap<String, usize> = BTreeMap::new();
    for r in sink.records() {
        *by_stream.entry(r.stream).or_default() += 1;
    }
    let p = "arn:aws:kinesis:us-west-2:123456789012:stream/";
    assert_eq!(
        by_stream,
        BTreeMap::from([
            (format!("{p}other"), 1),
            (format!("{p}s-x"), 2),
            (format!("{p}s-y"), 1)
        ]),
        "{}",
        stderr(&out)
    );
    // One stream per request: three streams, at least three requests.
    assert!(sink.stats().put_requests >= 3);
}

#[test]
fn stream_keys_are_validated_with_their_location() {
    let dry = |props: &[&str]| {
        let mut cmd = agent();
        cmd.args(["-i", "cpu", "-o", "kinesis_streams", "-m", "*", "--dry-run"]);
        for p in props {
            cmd.args(["-p", p]);
        }
        cmd.output().unwrap()
    };
    // (properties, the property the error is located at, the message)
    let arn_prop = format!("stream_arn={ARN}");
    let bad_account = "stream_arn=arn:aws:kinesis:us-east-1:1234:stream/s";
    let bad_name = "stream_arn=arn:aws:kinesis:us-east-1:123456789012:stream/bad name";
    for (props, at, want) in [
        (
            &["stream=s", arn_prop.as_str()][..],
            format!("-p {arn_prop}"),
            "'stream' and 'stream_arn' can not be used together: set one of them",
        ),
        (
            &[bad_account][..],
            format!("-p {bad_account}"),
            "invalid stream_arn 'arn:aws:kinesis:us-east-1:1234:stream/s': invalid account id '1234': it must be 12 digits",
        ),
        (
            &[bad_name][..],
            format!("-p {bad_name}"),
            "invalid stream name in stream_arn 'bad name'",
        ),
        (
            &[arn_prop.as_str(), "region=cn-north-1"][..],
            "-p region=cn-north-1".to_string(),
            "region 'cn-north-1' is in partition 'aws-cn' but stream_arn is in 'aws'",
        ),
        (
            &["region=us-east-1", "stream=logs-$a['x"][..],
            "-p stream=logs-$a['x".to_string(),
            "invalid stream template 'logs-$a['x'",
        ),
        (
            &["region=us-east-1", "stream=$app", "stream_fallback=no way"][..],
            "-p stream_fallback=no way".to_string(),
            "invalid stream_fallback 'no way'",
        ),
        (
            &["region=us-east-1"][..],
            "-o kinesis_streams".to_string(),
            "'stream' is a required field (or 'stream_arn')",
        ),
    ] {
        let out = dry(props);
        assert_eq!(out.status.code(), Some(1), "{props:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "command line: {at}: [output kinesis_streams.0] {want}"
            )),
            "{props:?}: {}",
            stderr(&out)
        );
    }
    // Valid: a template with a fallback, and an ARN without region.
    for props in [
        &[
            "region=us-east-1",
            "stream=logs-$kubernetes['namespace_name']",
            "stream_fallback=other",
        ][..],
        &[arn_prop.as_str()][..],
    ] {
        let out = dry(props);
        assert_eq!(out.status.code(), Some(0), "{props:?}: {}", stderr(&out));
    }
}

#[test]
fn help_lists_the_stream_keys() {
    let out = agent()
        .args(["-o", "kinesis_streams", "-h"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for k in ["stream_arn", "stream_fallback", "$TAG[n]"] {
        assert!(text.contains(k), "{k} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_arn_against_a_signature_verifying_moto() {
    use kb_testkit::peers::Moto;
    // moto keeps streams per region and checks signatures: delivery into the eu-west-1 stream
    // shows the region came from the ARN and the request was signed for it.
    let moto = Moto::start_verifying(3);
    let (akid, secret) = moto.create_user_with_key("kb-arn").await;
    let kds = Kds::with_credentials(&moto.endpoint(), "eu-west-1", &akid, &secret, None);
    kds.create_stream("arn-moto", 1).await.unwrap();
    let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/arn-moto";
    let ep = moto.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.env("AWS_ACCESS_KEY_ID", &akid)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args(["-p", &format!("stream_arn={arn}"), "-p", "healthcheck=on"])
            .args(["-p", &format!("endpoint={ep}")]);
        run_with_stdin(&mut cmd, b"{\"m\":\"one\"}\n{\"m\":\"two\"}\n", LIMIT)
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut got: Vec<Vec<u8>> = kds
        .read_all("arn-moto")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![b"{\"m\":\"one\"}\n".to_vec(), b"{\"m\":\"two\"}\n".to_vec()],
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("healthcheck: stream {arn} is ACTIVE")),
        "{}",
        stderr(&out)
    );
}
