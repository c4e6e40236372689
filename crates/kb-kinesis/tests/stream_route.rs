//! `stream` templates, `stream_fallback` and `stream_arn` (issue 15) from the key table to the
//! settings (region, endpoints) and to the prepared entries (each with its stream).

use std::sync::Arc;

use kb_core::chunk::{Chunk, Progress};
use kb_core::event::{write_event_header, EventTime};
use kb_core::metrics::Metrics;
use kb_kinesis::batch::{Prepared, Preparer};
use kb_kinesis::config::Settings;
use kb_kinesis::encode::PutRecordsBody;
use kb_kinesis::metrics::KinesisMetrics;
use kb_kinesis::ratelimit::LogLimiter;

mod common;
use common::{errors, settings};

const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/s";

#[test]
fn stream_arn_gives_region_and_account_endpoints() {
    let s = settings(&[("stream_arn", ARN)]).unwrap();
    assert_eq!(s.region, "eu-west-1");
    assert!(s.stream_by_arn && s.stream_route.is_none());
    assert_eq!(s.stream, ARN);
    assert_eq!(
        s.endpoint.url(),
        "https://123456789012.data-kinesis.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        s.control_endpoint.as_ref().map(|e| e.url()).as_deref(),
        Some("https://123456789012.control-kinesis.eu-west-1.amazonaws.com")
    );
    // `region` wins (same partition), as the SDKs' client region does.
    let s = settings(&[("stream_arn", ARN), ("region", "us-east-2")]).unwrap();
    assert_eq!(s.region, "us-east-2");
    assert_eq!(
        s.endpoint.url(),
        "https://123456789012.data-kinesis.us-east-2.amazonaws.com"
    );
    // China: the partition's DNS suffix.
    let s = settings(&[(
        "stream_arn",
        "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s",
    )])
    .unwrap();
    assert_eq!(
        s.endpoint.url(),
        "https://123456789012.data-kinesis.cn-north-1.amazonaws.com.cn"
    );
    // `endpoint` overrides both planes.
    let s = settings(&[("stream_arn", ARN), ("endpoint", "http://127.0.0.1:4567")]).unwrap();
    assert_eq!(s.endpoint.url(), "http://127.0.0.1:4567");
    assert!(s.control_endpoint.is_none());
    // A plain stream keeps the regional endpoint.
    let s = settings(&[("stream", "s"), ("region", "us-east-1")]).unwrap();
    assert_eq!(s.endpoint.url(), "https://kinesis.us-east-1.amazonaws.com");
    assert!(!s.stream_by_arn && s.control_endpoint.is_none());
}

#[test]
fn bad_stream_keys_are_located_errors() {
    let e = errors(&[("stream", "s"), ("stream_arn", ARN)]);
    assert!(
        e.contains("-p stream_arn=") && e.contains("can not be used together"),
        "{e}"
    );
    let e = errors(&[(
        "stream_arn",
        "arn:aws:kinesis:eu-west-1:12345678901x:stream/s",
    )]);
    assert!(e.contains("invalid account id '12345678901x'"), "{e}");
    assert!(!e.contains("'region' is a required field"), "{e}");
    let e = errors(&[(
        "stream_arn",
        "arn:aws:kinesis:eu-west-1:123456789012:table/s",
    )]);
    assert!(e.contains("the resource is 'table/s'"), "{e}");
    let e = errors(&[("stream_arn", ARN), ("region", "us-gov-west-1")]);
    assert!(
        e.contains(
            "region 'us-gov-west-1' is in partition 'aws-us-gov' but stream_arn is in 'aws'"
        ),
        "{e}"
    );
    let e = errors(&[("stream", "$TAG[x]"), ("region", "us-east-1")]);
    assert!(e.contains("invalid stream template '$TAG[x]'"), "{e}");
    let e = errors(&[
        ("stream", "a-$app"),
        ("region", "us-east-1"),
        ("stream_fallback", "b/c"),
    ]);
    assert!(e.contains("invalid stream_fallback 'b/c'"), "{e}");
    let e = errors(&[("stream", "bad name"), ("region", "us-east-1")]);
    assert!(e.contains("invalid stream name 'bad name'"), "{e}");
}

/// An ARN whose region is of another partition than the ARN's own is refused at
/// configuration, not at the first request.
#[test]
fn an_arn_of_mixed_partitions_is_a_located_error() {
    let e = errors(&[(
        "stream_arn",
        "arn:aws:kinesis:cn-north-1:123456789012:stream/s",
    )]);
    assert!(
        e.contains("stream_arn") && e.contains("stream_arn's region 'cn-north-1' is in partition 'aws-cn' but stream_arn is in 'aws'"),
        "{e}"
    );
    // With its own endpoint, the ARN is the user's to vouch for.
    settings(&[
        (
            "stream_arn",
            "arn:aws:kinesis:cn-north-1:123456789012:stream/s",
        ),
        ("endpoint", "http://127.0.0.1:4567"),
    ])
    .unwrap();
}

#[test]
fn fallbacks_are_addressed_like_the_stream() {
    let s = settings(&[
        (
            "stream_arn",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/$app",
        ),
        ("stream_fallback", "other"),
    ])
    .unwrap();
    assert_eq!(
        s.stream_fallback.as_deref(),
        Some("arn:aws:kinesis:eu-west-1:123456789012:stream/other")
    );
    let s = settings(&[
        (
            "stream_arn",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/$app",
        ),
        (
            "stream_fallback",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/x",
        ),
    ])
    .unwrap();
    assert_eq!(
        s.stream_fallback.as_deref(),
        Some("arn:aws:kinesis:eu-west-1:123456789012:stream/x")
    );
    // Another account's ARN would need another endpoint.
    let e = errors(&[
        (
            "stream_arn",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/$app",
        ),
        (
            "stream_fallback",
            "arn:aws:kinesis:eu-west-1:999999999999:stream/x",
        ),
    ]);
    assert!(e.contains("invalid stream_fallback"), "{e}");
    // Without a template the fallback has nothing to do: a warning.
    let s = settings(&[
        ("stream", "s"),
        ("region", "us-east-1"),
        ("stream_fallback", "f"),
    ])
    .unwrap();
    assert!(s.stream_fallback.is_none());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("'stream_fallback f' has no effect")),
        "{:?}",
        s.warnings
    );
}

/// A chunk of `{"app": <app>, "n": i}` events (`None`: no `app`).
fn chunk(tag: &str, apps: &[Option<&str>]) -> Chunk {
    let mut data = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        write_event_header(&mut data, EventTime::new(1_764_287_400, 0));
        rmp::encode::write_map_len(&mut data, if app.is_some() { 2 } else { 1 }).unwrap();
        if let Some(a) = app {
            rmp::encode::write_str(&mut data, "app").unwrap();
            rmp::encode::write_str(&mut data, a).unwrap();
        }
        rmp::encode::write_str(&mut data, "n").unwrap();
        rmp::encode::write_uint(&mut data, i as u64).unwrap();
    }
    Chunk::new(tag, data, apps.len())
}

fn prepare(s: &Settings, c: &Chunk) -> (Prepared, Progress, Arc<Metrics>) {
    let registry = Arc::new(Metrics::default());
    let metrics = KinesisMetrics::new(registry.clone(), "kinesis_streams.0");
    let mut preparer = Preparer::new(s);
    let mut out = Prepared::default();
    let mut progress = Progress::new(c.records);
    preparer.prepare(c, &mut progress, &mut out, &metrics, &LogLimiter::default());
    (out, progress, registry)
}

/// (stream, record numbers) of each entry.
fn routed(out: &Prepared) -> Vec<(String, Vec<usize>)> {
    out.entries
        .iter()
        .map(|e| (out.stream(e).to_string(), out.members(e).to_vec()))
        .collect()
}

fn counter(m: &Metrics, name: &str, reason: &str) -> u64 {
    m.counter_value(name, &[("name", "kinesis_streams.0"), ("reason", reason)])
}

#[test]
fn each_record_gets_its_stream_or_the_fallback() {
    let s = settings(&[
        ("stream", "logs-$app"),
        ("region", "us-east-1"),
        ("stream_fallback", "fb"),
    ])
    .unwrap();
    let c = chunk(
        "t",
        &[Some("a"), Some("b"), None, Some("a"), Some(""), Some("x y")],
    );
    let (out, progress, m) = prepare(&s, &c);
    assert_eq!(
        routed(&out),
        vec![
            ("logs-a".into(), vec![0]),
            ("logs-b".into(), vec![1]),
            ("fb".into(), vec![2]),
            ("logs-a".into(), vec![3]),
            // "logs-" is a valid name: an empty value is not an empty result here.
            ("logs-".into(), vec![4]),
            ("fb".into(), vec![5]),
        ]
    );
    assert_eq!(progress.pending_count(), 6);
    let f = "fluentbit_kinesis_streams_stream_fallbacks_total";
    assert_eq!(
        (
            counter(&m, f, "missing"),
            counter(&m, f, "invalid"),
            counter(&m, f, "empty")
        ),
        (1, 1, 0)
    );
}

#[test]
fn without_a_fallback_unresolved_records_are_dropped_and_counted() {
    let s = settings(&[("stream", "$app"), ("region", "us-east-1")]).unwrap();
    let c = chunk("t", &[Some("a"), None, Some(""), Some("ok")]);
    let (out, progress, m) = prepare(&s, &c);
    assert_eq!(
        routed(&out),
        vec![("a".into(), vec![0]), ("ok".into(), vec![3])]
    );
    assert!(progress.is_done(1) && progress.is_done(2));
    assert_eq!(
        counter(
            &m,
            "fluentbit_kinesis_streams_dropped_records_total",
            "stream_unresolved"
        ),
        2
    );
}

#[test]
fn tag_templates_name_the_chunk_stream() {
    let s = settings(&[("stream", "k-$TAG[1]"), ("region", "us-east-1")]).unwrap();
    let (out, _, _) = prepare(&s, &chunk("app.web.x", &[Some("a"), None]));
    assert_eq!(out.streams, vec!["k-web".to_string()]);
    assert_eq!(out.entries.len(), 2);
    let (out, progress, _) = prepare(&s, &chunk("single", &[Some("a"), None]));
    assert!(out.entries.is_empty() && progress.pending_count() == 0);
}

#[test]
fn aggregates_hold_one_stream() {
    let s = settings(&[
        ("stream", "$app"),
        ("region", "us-east-1"),
        ("simple_aggregation", "on"),
    ])
    .unwrap();
    let (out, _, _) = prepare(
        &s,
        &chunk("t", &[Some("a"), Some("b"), Some("a"), Some("b")]),
    );
    assert_eq!(
        routed(&out),
        vec![("a".into(), vec![0, 2]), ("b".into(), vec![1, 3])]
    );
    let s = settings(&[
        ("stream", "$app"),
        ("region", "us-east-1"),
        ("aggregation", "on"),
        ("partition_key", "$n"),
    ])
    .unwrap();
    let (out, _, _) = prepare(&s, &chunk("t", &[Some("a"), Some("b"), Some("a")]));
    assert!(out.entries.iter().all(|e| out
        .members(e)
        .iter()
        .all(|&r| (r % 2 == 1) == (out.stream(e) == "b"))));
}

#[test]
fn a_plain_stream_is_one_stream_without_routing() {
    let s = settings(&[("stream", "plain"), ("region", "us-east-1")]).unwrap();
    assert!(s.stream_route.is_none());
    let (out, _, _) = prepare(&s, &chunk("t", &[Some("a"), None]));
    assert_eq!(out.streams, vec!["plain".to_string()]);
    assert!(out.entries.iter().all(|e| e.stream == 0));
}

#[test]
fn bodies_name_the_stream_by_arn() {
    let mut body = PutRecordsBody::new("s");
    body.set_stream_arn(ARN);
    assert!(body.try_push(b"x", "k"));
    assert_eq!(
        String::from_utf8(body.finish().to_vec()).unwrap(),
        format!("{{\"StreamARN\":\"{ARN}\",\"Records\":[{{\"Data\":\"eA==\",\"PartitionKey\":\"k\"}}]}}")
    );
    body.set_stream("n");
    assert!(body.is_empty());
    assert!(String::from_utf8(body.finish().to_vec())
        .unwrap()
        .starts_with("{\"StreamName\":\"n\","));
}

#[test]
fn recently_missing_streams_skip_the_request() {
    use kb_kinesis::route::MissingStreams;
    let missing = Arc::new(MissingStreams::default());
    missing.note("logs-gone");
    missing.note("fb");
    let run = |props: &[(&str, &str)]| {
        let s = settings(props).unwrap();
        let registry = Arc::new(Metrics::default());
        let metrics = KinesisMetrics::new(registry.clone(), "kinesis_streams.0");
        let mut preparer = Preparer::new(&s);
        preparer.set_missing_streams(missing.clone());
        let c = chunk("t", &[Some("a"), Some("gone"), Some("gone"), None]);
        let mut out = Prepared::default();
        let mut progress = Progress::new(c.records);
        preparer.prepare(
            &c,
            &mut progress,
            &mut out,
            &metrics,
            &LogLimiter::default(),
        );
        (routed(&out), progress, registry)
    };
    // With a fallback: straight to it, counted as not found. The fallback itself is sent to
    // even though it is remembered missing (its failure keeps the records for a retry).
    let (r, _, m) = run(&[
        ("stream", "logs-$app"),
        ("region", "us-east-1"),
        ("stream_fallback", "fb"),
    ]);
    assert_eq!(
        r,
        vec![
            ("logs-a".into(), vec![0]),
            ("fb".into(), vec![1]),
            ("fb".into(), vec![2]),
            ("fb".into(), vec![3]),
        ]
    );
    let f = "fluentbit_kinesis_streams_stream_fallbacks_total";
    assert_eq!(
        (counter(&m, f, "not_found"), counter(&m, f, "missing")),
        (2, 1)
    );
    // Without: dropped and counted.
    let (r, progress, m) = run(&[("stream", "logs-$app"), ("region", "us-east-1")]);
    assert_eq!(r, vec![("logs-a".into(), vec![0])]);
    assert!(progress.is_done(1) && progress.is_done(2) && progress.is_done(3));
    let d = "fluentbit_kinesis_streams_dropped_records_total";
    assert_eq!(
        (
            counter(&m, d, "stream_not_found"),
            counter(&m, d, "stream_unresolved")
        ),
        (2, 1)
    );
}
