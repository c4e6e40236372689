//! Spec §2.2 (JSON rules, whole-body case) as the rules reach the Kinesis payload through
//! `RecordFormatter`: one test per row. kb-core's own tests cover the writer in depth; these
//! check that the payload is exactly that JSON plus the newline.

use kb_core::event::{Event, EventTime};
use kb_kinesis::format::{FormatOptions, RecordFormatter};
use rmpv::Value;

fn enc(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

fn s(t: &str) -> Value {
    Value::from(t)
}

fn payload_with(record: &[u8], opts: FormatOptions) -> (String, RecordFormatter) {
    let mut f = RecordFormatter::new(opts);
    let ev = Event {
        time: EventTime::new(1_700_000_000, 0),
        metadata: &[0x80],
        record,
        raw: &[],
    };
    let mut out = b"PREFIX".to_vec();
    f.format(&ev, &mut out).unwrap();
    assert!(out.starts_with(b"PREFIX"), "appends to the buffer");
    (String::from_utf8_lossy(&out[6..]).into_owned(), f)
}

fn payload(v: &Value) -> String {
    payload_with(&enc(v), FormatOptions::default()).0
}

fn raw_unicode() -> FormatOptions {
    FormatOptions {
        escape_unicode: false,
        ..FormatOptions::default()
    }
}

#[test]
fn fmt_json_layout_compact_in_original_order() {
    let v = Value::Map(vec![
        (s("z"), Value::from(1)),
        (s("a"), Value::Array(vec![Value::from(1), s("x")])),
        (s("m"), Value::Map(vec![(s("k"), Value::Nil)])),
    ]);
    assert_eq!(
        payload(&v),
        "{\"z\":1,\"a\":[1,\"x\"],\"m\":{\"k\":null}}\n"
    );
}

#[test]
fn fmt_json_duplicate_keys_last_wins_at_its_position_every_level() {
    let inner = Value::Map(vec![
        (s("x"), Value::from(1)),
        (s("y"), Value::from(2)),
        (s("x"), Value::from(3)),
    ]);
    let v = Value::Map(vec![
        (s("a"), Value::from(1)),
        (s("b"), inner),
        (s("a"), Value::from(3)),
    ]);
    assert_eq!(payload(&v), "{\"b\":{\"y\":2,\"x\":3},\"a\":3}\n");
}

#[test]
fn fmt_json_non_string_keys_become_json_strings() {
    let v = Value::Map(vec![
        (Value::from(1), s("a")),
        (Value::Boolean(true), s("b")),
        (Value::Nil, s("c")),
    ]);
    assert_eq!(payload(&v), "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\"}\n");
}

#[test]
fn fmt_json_nil_and_bool() {
    let v = Value::Map(vec![
        (s("n"), Value::Nil),
        (s("t"), Value::Boolean(true)),
        (s("f"), Value::Boolean(false)),
    ]);
    assert_eq!(payload(&v), "{\"n\":null,\"t\":true,\"f\":false}\n");
}

#[test]
fn fmt_json_integers_u64_i64() {
    let v = Value::Map(vec![
        (s("u"), Value::from(u64::MAX)),
        (s("i"), Value::from(i64::MIN)),
        (s("z"), Value::from(0)),
    ]);
    assert_eq!(
        payload(&v),
        "{\"u\":18446744073709551615,\"i\":-9223372036854775808,\"z\":0}\n"
    );
}

#[test]
fn fmt_json_floats_like_fluent_bit() {
    let v = Value::Map(vec![
        (s("a"), Value::F64(1.0)),
        (s("b"), Value::F64(-0.0)),
        (s("c"), Value::F64(1e15)),
        (s("d"), Value::F64(0.1)),
        (s("e"), Value::F64(1e20)),
        (s("f"), Value::F32(0.1)),
        (s("g"), Value::F64(1.5e-7)),
    ]);
    assert_eq!(
        payload(&v),
        "{\"a\":1.0,\"b\":-0.0,\"c\":1000000000000000.0,\"d\":0.1,\"e\":1e+20,\
         \"f\":0.1000000014901161,\"g\":1.5e-07}\n"
    );
}

#[test]
fn fmt_json_nan_and_infinities_are_null() {
    let v = Value::Map(vec![
        (s("n"), Value::F64(f64::NAN)),
        (s("p"), Value::F64(f64::INFINITY)),
        (s("m"), Value::F64(f64::NEG_INFINITY)),
    ]);
    assert_eq!(payload(&v), "{\"n\":null,\"p\":null,\"m\":null}\n");
}

#[test]
fn fmt_json_string_escapes() {
    let v = Value::Map(vec![(
        s("k"),
        s("q\" b\\ n\n r\r t\t b\u{8} f\u{c} c\u{1} d\u{7f} /"),
    )]);
    assert_eq!(
        payload(&v),
        "{\"k\":\"q\\\" b\\\\ n\\n r\\r t\\t b\\b f\\f c\\u0001 d\\u007f /\"}\n"
    );
}

#[test]
fn fmt_json_escape_unicode_on_by_default() {
    let v = Value::Map(vec![(s("k"), s("héllo €😀"))]);
    assert_eq!(
        payload(&v),
        "{\"k\":\"h\\u00e9llo \\u20ac\\ud83d\\ude00\"}\n"
    );
}

#[test]
fn fmt_json_escape_unicode_off_writes_raw_utf8() {
    let v = Value::Map(vec![(s("k"), s("héllo €😀"))]);
    assert_eq!(
        payload_with(&enc(&v), raw_unicode()).0,
        "{\"k\":\"héllo €😀\"}\n"
    );
}

#[test]
fn fmt_json_invalid_utf8_replaced_and_counted() {
    let v = Value::Map(vec![(s("k"), Value::Binary(b"a\xffb\xc3".to_vec()))]);
    let (p, f) = payload_with(&enc(&v), FormatOptions::default());
    assert_eq!(p, "{\"k\":\"a\\ufffdb\\ufffd\"}\n");
    assert_eq!(f.invalid_utf8_count(), 2);
    let (p, f) = payload_with(&enc(&v), raw_unicode());
    assert_eq!(p, "{\"k\":\"a\u{fffd}b\u{fffd}\"}\n");
    assert_eq!(f.invalid_utf8_count(), 2);
}

#[test]
fn fmt_json_bin_written_like_a_string() {
    let v = Value::Map(vec![(s("b"), Value::Binary(b"raw \"x\"".to_vec()))]);
    assert_eq!(payload(&v), "{\"b\":\"raw \\\"x\\\"\"}\n");
}

#[test]
fn fmt_json_ext_as_escaped_hex_string() {
    let v = Value::Map(vec![(s("e"), Value::Ext(5, vec![0x01, 0x80, 0xff]))]);
    let p = payload(&v);
    assert_eq!(p, "{\"e\":\"\\\\x01\\\\x80\\\\xff\"}\n");
    let parsed: serde_json::Value = serde_json::from_str(&p).unwrap();
    assert_eq!(parsed["e"], "\\x01\\x80\\xff");
}

#[test]
fn fmt_json_only_the_body_is_sent() {
    // Metadata and the timestamp stay out unless time_key (spec §2.1).
    let record = enc(&Value::Map(vec![(s("a"), Value::from(1))]));
    let mut f = RecordFormatter::new(FormatOptions::default());
    let meta = enc(&Value::Map(vec![(s("meta"), Value::from(1))]));
    let ev = Event {
        time: EventTime::new(1_700_000_000, 5),
        metadata: &meta,
        record: &record,
        raw: &[],
    };
    let mut out = Vec::new();
    f.format(&ev, &mut out).unwrap();
    assert_eq!(out, b"{\"a\":1}\n");
}
