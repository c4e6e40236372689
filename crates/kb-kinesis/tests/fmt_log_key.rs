//! Spec §2.4 (`log_key`) and §2.5 (empty records, the newline), one test per row.

use kb_core::event::{Event, EventTime};
use kb_kinesis::format::{FormatOptions, RecordFormatter, Skip};
use rmpv::Value;

fn enc(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

fn s(t: &str) -> Value {
    Value::from(t)
}

fn with_log_key(k: &str) -> RecordFormatter {
    RecordFormatter::new(FormatOptions {
        log_key: Some(k.into()),
        ..FormatOptions::default()
    })
}

fn run(f: &mut RecordFormatter, record: &Value) -> Result<Vec<u8>, Skip> {
    let record = enc(record);
    let ev = Event {
        time: EventTime::new(1_700_000_000, 0),
        metadata: &[0x80],
        record: &record,
        raw: &[],
    };
    let mut out = b"keep".to_vec();
    match f.format(&ev, &mut out) {
        Ok(()) => Ok(out[4..].to_vec()),
        Err(e) => {
            assert_eq!(out, b"keep", "out restored on skip");
            Err(e)
        }
    }
}

fn log(v: Value) -> Value {
    Value::Map(vec![(s("other"), Value::from(1)), (s("log"), v)])
}

#[test]
fn fmt_log_key_string_value_raw_unescaped() {
    let mut f = with_log_key("log");
    assert_eq!(
        run(&mut f, &log(s("he said \"hi\"\t"))).unwrap(),
        b"he said \"hi\"\t\n"
    );
}

#[test]
fn fmt_log_key_string_ignores_escape_unicode() {
    let mut f = with_log_key("log");
    assert_eq!(
        run(&mut f, &log(s("héllo 😀"))).unwrap(),
        "héllo 😀\n".as_bytes()
    );
}

#[test]
fn fmt_log_key_bin_value_raw_bytes() {
    let mut f = with_log_key("log");
    assert_eq!(
        run(&mut f, &log(Value::Binary(vec![0xff, 0x00, b'x']))).unwrap(),
        b"\xff\x00x\n"
    );
}

#[test]
fn fmt_log_key_non_string_values_compact_json() {
    let mut f = with_log_key("log");
    let map = Value::Map(vec![(s("a"), Value::from(1))]);
    assert_eq!(run(&mut f, &log(map)).unwrap(), b"{\"a\":1}\n");
    assert_eq!(run(&mut f, &log(Value::from(12345))).unwrap(), b"12345\n");
    assert_eq!(run(&mut f, &log(Value::Boolean(true))).unwrap(), b"true\n");
    assert_eq!(run(&mut f, &log(Value::Nil)).unwrap(), b"null\n");
    assert_eq!(run(&mut f, &log(Value::from(12))).unwrap(), b"12\n");
    assert_eq!(run(&mut f, &log(Value::F64(0.5))).unwrap(), b"0.5\n");
    let arr = Value::Array(vec![s("é")]);
    assert_eq!(run(&mut f, &log(arr)).unwrap(), b"[\"\\u00e9\"]\n");
}

#[test]
fn fmt_log_key_missing_skips() {
    let mut f = with_log_key("log");
    let rec = Value::Map(vec![(s("message"), s("x"))]);
    assert_eq!(run(&mut f, &rec), Err(Skip::LogKeyMissing));
    assert_eq!(Skip::LogKeyMissing.reason(), "log_key_missing");
    // Not a map at all: the key is missing too.
    assert_eq!(run(&mut f, &s("x")), Err(Skip::LogKeyMissing));
    assert_eq!(f.log_key(), Some("log"));
}

#[test]
fn fmt_log_key_exact_case_sensitive_match() {
    let mut f = with_log_key("log");
    // FB's prefix match would take "lo", "" or "Log"; KB matches exactly.
    let rec = Value::Map(vec![(s("lo"), s("a")), (s(""), s("b")), (s("Log"), s("c"))]);
    assert_eq!(run(&mut f, &rec), Err(Skip::LogKeyMissing));
    let rec = Value::Map(vec![(s("logs"), s("a")), (s("log"), s("yes"))]);
    assert_eq!(run(&mut f, &rec).unwrap(), b"yes\n");
}

#[test]
fn fmt_log_key_bin_key_matches() {
    let mut f = with_log_key("log");
    let rec = Value::Map(vec![(Value::Binary(b"log".to_vec()), s("yes"))]);
    assert_eq!(run(&mut f, &rec).unwrap(), b"yes\n");
}

#[test]
fn fmt_log_key_duplicates_last_wins() {
    let mut f = with_log_key("log");
    let rec = Value::Map(vec![
        (s("log"), s("first")),
        (s("x"), Value::Nil),
        (s("log"), s("last")),
    ]);
    assert_eq!(run(&mut f, &rec).unwrap(), b"last\n");
}

#[test]
fn fmt_log_key_top_level_only() {
    let mut f = with_log_key("log");
    let rec = Value::Map(vec![(s("inner"), Value::Map(vec![(s("log"), s("deep"))]))]);
    assert_eq!(run(&mut f, &rec), Err(Skip::LogKeyMissing));
}

#[test]
fn fmt_log_key_newline_only_if_append_newline() {
    let mut f = RecordFormatter::new(FormatOptions {
        log_key: Some("log".into()),
        append_newline: false,
        ..FormatOptions::default()
    });
    assert_eq!(run(&mut f, &log(s("x"))).unwrap(), b"x");
}

#[test]
fn fmt_empty_payloads_dropped() {
    let mut f = RecordFormatter::new(FormatOptions::default());
    assert_eq!(run(&mut f, &Value::Map(vec![])), Err(Skip::Empty));
    assert_eq!(run(&mut f, &Value::Array(vec![])), Err(Skip::Empty));
    assert_eq!(Skip::Empty.reason(), "empty");
    let mut f = with_log_key("log");
    assert_eq!(run(&mut f, &log(s(""))), Err(Skip::Empty));
    assert_eq!(run(&mut f, &log(Value::Map(vec![]))), Err(Skip::Empty));
    assert_eq!(run(&mut f, &log(Value::Array(vec![]))), Err(Skip::Empty));
}

#[test]
fn fmt_short_payloads_are_not_empty() {
    // FB drops anything of at most 2 bytes; KB only "", {} and [].
    let mut f = with_log_key("log");
    assert_eq!(run(&mut f, &log(s("a"))).unwrap(), b"a\n");
    assert_eq!(run(&mut f, &log(s("{}x"))).unwrap(), b"{}x\n");
    assert_eq!(run(&mut f, &log(Value::from(12))).unwrap(), b"12\n");
    let mut f = RecordFormatter::new(FormatOptions::default());
    assert_eq!(run(&mut f, &s("")).unwrap(), b"\"\"\n");
}

#[test]
fn fmt_newline_appended_by_default_and_optional() {
    let rec = Value::Map(vec![(s("a"), Value::from(1))]);
    let mut f = RecordFormatter::new(FormatOptions::default());
    assert_eq!(run(&mut f, &rec).unwrap(), b"{\"a\":1}\n");
    let mut f = RecordFormatter::new(FormatOptions {
        append_newline: false,
        ..FormatOptions::default()
    });
    assert_eq!(run(&mut f, &rec).unwrap(), b"{\"a\":1}");
}

#[test]
fn fmt_too_deep_record_skipped_and_counted() {
    let mut v = Value::from(1);
    for _ in 0..600 {
        v = Value::Array(vec![v]);
    }
    let mut f = RecordFormatter::new(FormatOptions::default());
    assert_eq!(
        run(&mut f, &Value::Map(vec![(s("a"), v)])),
        Err(Skip::Empty)
    );
    assert_eq!(f.invalid_count(), 1);
}
