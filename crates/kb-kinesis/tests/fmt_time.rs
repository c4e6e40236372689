//! Spec §2.3: `time_key` / `time_key_format`, one test per row and the examples.

use kb_core::event::{Event, EventTime};
use kb_kinesis::format::{FormatOptions, RecordFormatter, Skip};
use kb_kinesis::time_format::{TimeCache, TimeFormat, DEFAULT_TIME_FORMAT};
use rmpv::Value;

const T: EventTime = EventTime {
    secs: 1_700_000_000,
    nanos: 903_172_886,
};

fn enc(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

fn s(t: &str) -> Value {
    Value::from(t)
}

fn time_text(fmt: &str, t: EventTime) -> String {
    let (tf, warnings) = TimeFormat::compile(fmt);
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut out = Vec::new();
    tf.write(t, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn formatter(time_key: &str, fmt: &str) -> RecordFormatter {
    RecordFormatter::new(FormatOptions {
        time_key: Some(time_key.into()),
        time_format: TimeFormat::compile(fmt).0,
        ..FormatOptions::default()
    })
}

fn run(f: &mut RecordFormatter, record: &Value, t: EventTime) -> Result<String, Skip> {
    let record = enc(record);
    let ev = Event {
        time: t,
        metadata: &[0x80],
        record: &record,
        raw: &[],
    };
    let mut out = Vec::new();
    f.format(&ev, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn fmt_time_spec_example() {
    assert_eq!(
        time_text("%s|%9N|%L|%3N|%z|%Z", T),
        "1700000000|903172886|903172886|903|+0000|GMT"
    );
}

#[test]
fn fmt_time_default_format() {
    assert_eq!(DEFAULT_TIME_FORMAT, "%Y-%m-%dT%H:%M:%S");
    assert_eq!(time_text(DEFAULT_TIME_FORMAT, T), "2023-11-14T22:13:20");
    let mut out = Vec::new();
    TimeFormat::default().write(T, &mut out).unwrap();
    assert_eq!(out, b"2023-11-14T22:13:20");
}

#[test]
fn fmt_time_percent_percent_is_literal() {
    assert_eq!(time_text("%%L|%%3N|%%9N|100%%", T), "%L|%3N|%9N|100%");
}

#[test]
fn fmt_time_subsecond_digits() {
    let t = EventTime::new(0, 5_000_007);
    assert_eq!(time_text("%3N %9N %L", t), "005 005000007 005000007");
    assert_eq!(
        time_text("%S.%3NZ", EventTime::new(59, 999_999_999)),
        "59.999Z"
    );
}

#[test]
fn fmt_time_utc_c_locale_names() {
    assert_eq!(
        time_text("%a %A %b %B %p %c", T),
        "Tue Tuesday Nov November PM Tue Nov 14 22:13:20 2023"
    );
}

#[test]
fn fmt_time_unknown_conversion_copied_and_warned() {
    let (tf, w) = TimeFormat::compile("%Y%q%Q");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("%q"), "{w:?}");
    let mut out = Vec::new();
    tf.write(T, &mut out).unwrap();
    assert_eq!(out, b"2023%q%Q");
}

#[test]
fn fmt_time_key_appended_last() {
    let mut f = formatter("time", "%s.%3N");
    let rec = Value::Map(vec![(s("a"), Value::from(1)), (s("b"), s("x"))]);
    assert_eq!(
        run(&mut f, &rec, T).unwrap(),
        "{\"a\":1,\"b\":\"x\",\"time\":\"1700000000.903\"}\n"
    );
}

#[test]
fn fmt_time_key_replaces_every_existing_top_level_key() {
    let mut f = formatter("time", "%s");
    let rec = Value::Map(vec![
        (s("time"), s("old1")),
        (s("a"), Value::Map(vec![(s("time"), s("nested stays"))])),
        (s("time"), s("old2")),
        (s("b"), s("\"time\":")),
    ]);
    let out = run(&mut f, &rec, T).unwrap();
    assert_eq!(
        out,
        "{\"a\":{\"time\":\"nested stays\"},\"b\":\"\\\"time\\\":\",\"time\":\"1700000000\"}\n"
    );
    // What a JSON reader sees: exactly one "time", the event time.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["time"], "1700000000");
}

#[test]
fn fmt_time_key_only_key_replaced() {
    let mut f = formatter("time", "%s");
    let rec = Value::Map(vec![(s("time"), s("old"))]);
    assert_eq!(run(&mut f, &rec, T).unwrap(), "{\"time\":\"1700000000\"}\n");
}

#[test]
fn fmt_time_source_is_the_event_timestamp() {
    let mut f = formatter("t", "%F %T");
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    assert_eq!(
        run(&mut f, &rec, EventTime::new(0, 0)).unwrap(),
        "{\"a\":1,\"t\":\"1970-01-01 00:00:00\"}\n"
    );
    assert_eq!(
        run(&mut f, &rec, EventTime::new(951_782_400, 0)).unwrap(),
        "{\"a\":1,\"t\":\"2000-02-29 00:00:00\"}\n"
    );
}

#[test]
fn fmt_time_value_is_json_escaped() {
    let mut f = formatter("t", "\"%Y\"%n\\");
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    let out = run(&mut f, &rec, T).unwrap();
    assert_eq!(out, "{\"a\":1,\"t\":\"\\\"2023\\\"\\n\\\\\"}\n");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["t"], "\"2023\"\n\\");
}

#[test]
fn fmt_time_key_escaped_too() {
    let mut f = formatter("té\"k", "%Y");
    let rec = Value::Map(vec![(s("té\"k"), s("old")), (s("a"), Value::from(1))]);
    assert_eq!(
        run(&mut f, &rec, T).unwrap(),
        "{\"a\":1,\"t\\u00e9\\\"k\":\"2023\"}\n"
    );
}

#[test]
fn fmt_time_empty_result_adds_empty_value() {
    let mut f = formatter("t", "");
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    assert_eq!(run(&mut f, &rec, T).unwrap(), "{\"a\":1,\"t\":\"\"}\n");
}

#[test]
fn fmt_time_not_representable_is_dropped() {
    // Every u32 second is representable; an output beyond the limit is the failure case.
    let fmt = "%256Y".repeat(20);
    let mut f = formatter("t", &fmt);
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    let mut out = b"keep".to_vec();
    let record = enc(&rec);
    let ev = Event {
        time: T,
        metadata: &[0x80],
        record: &record,
        raw: &[],
    };
    assert_eq!(f.format(&ev, &mut out), Err(Skip::TimeFormat));
    assert_eq!(out, b"keep");
    assert_eq!(Skip::TimeFormat.reason(), "time_format");
}

#[test]
fn fmt_time_body_not_a_map_skips_time_key_and_counts() {
    let mut f = formatter("t", "%s");
    let rec = Value::Array(vec![Value::from(1), Value::from(2)]);
    assert_eq!(run(&mut f, &rec, T).unwrap(), "[1,2]\n");
    let rec = s("plain string");
    assert_eq!(run(&mut f, &rec, T).unwrap(), "\"plain string\"\n");
    assert_eq!(f.time_key_not_map_count(), 2);
}

#[test]
fn fmt_time_empty_body_dropped_even_with_time_key() {
    let mut f = formatter("t", "%s");
    assert_eq!(run(&mut f, &Value::Map(vec![]), T), Err(Skip::Empty));
}

#[test]
fn fmt_time_cached_text_changes_with_the_second_and_subseconds() {
    let mut f = formatter("t", "%s");
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    for secs in [10, 10, 11, 10] {
        assert_eq!(
            run(&mut f, &rec, EventTime::new(secs, 0)).unwrap(),
            format!("{{\"a\":1,\"t\":\"{secs}\"}}\n")
        );
    }
    let mut f = formatter("t", "%3N");
    for ms in [1, 2, 2, 3] {
        assert_eq!(
            run(&mut f, &rec, EventTime::new(10, ms * 1_000_000)).unwrap(),
            format!("{{\"a\":1,\"t\":\"00{ms}\"}}\n")
        );
    }
}

#[test]
fn fmt_time_cache_fills_subseconds_per_record() {
    let (tf, _) = TimeFormat::compile("%3N|%s|%9N|%L|%%|%Y");
    let (other, _) = TimeFormat::compile("%Y-%m");
    let mut cache = TimeCache::default();
    for (secs, nanos) in [
        (5, 1),
        (5, 999_999_999),
        (6, 0),
        (5, 120_000_000),
        (u32::MAX, 7),
    ] {
        let t = EventTime::new(secs, nanos);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tf.write(t, &mut a).unwrap();
        tf.write_cached(t, &mut cache, &mut b).unwrap();
        assert_eq!(a, b);
        // Another format through the same cache.
        let (mut c, mut d) = (Vec::new(), Vec::new());
        other.write(t, &mut c).unwrap();
        other.write_cached(t, &mut cache, &mut d).unwrap();
        assert_eq!(c, d);
    }
    let long = TimeFormat::compile(&"%256Y".repeat(20)).0;
    let mut out = b"x".to_vec();
    assert!(long.write_cached(T, &mut cache, &mut out).is_err());
    assert_eq!(out, b"x");
}

#[test]
fn fmt_time_key_replaces_non_string_keys_with_the_same_text() {
    // An integer key 1 is written as "1": a JSON reader would see it as the time key.
    let mut f = formatter("1", "%Y");
    let rec = Value::Map(vec![
        (Value::from(1), s("int key")),
        (s("b"), Value::from(2)),
    ]);
    assert_eq!(run(&mut f, &rec, T).unwrap(), "{\"b\":2,\"1\":\"2023\"}\n");
    let mut f = formatter("t", "%Y");
    let rec = Value::Map(vec![
        (Value::Binary(b"\xff".to_vec()), s("x")),
        (s("t"), s("old")),
    ]);
    assert_eq!(
        run(&mut f, &rec, T).unwrap(),
        "{\"\\ufffd\":\"x\",\"t\":\"2023\"}\n"
    );
}
