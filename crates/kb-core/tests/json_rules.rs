//! One test per row of spec §2.2 "JSON rules", plus property tests. Test names start with
//! `json_` so `cargo test -p kb-core json` selects them.

use kb_core::json::{
    skip_value, write_f64, write_json, write_json_string, JsonError, JsonOptions, JsonStats,
};
use proptest::prelude::*;
use rmpv::Value;

const RAW: JsonOptions = JsonOptions {
    escape_unicode: false,
};

fn enc(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

fn map(entries: Vec<(Value, Value)>) -> Value {
    Value::Map(entries)
}

fn s(text: &str) -> Value {
    Value::from(text)
}

/// Convert raw msgpack bytes, checking the whole input is consumed.
fn conv_bytes(input: &[u8], opts: &JsonOptions) -> (String, JsonStats) {
    let mut out = Vec::new();
    let mut st = JsonStats::default();
    let n = write_json(input, &mut out, opts, &mut st).unwrap();
    assert_eq!(n, input.len());
    assert_eq!(skip_value(input), Ok(n));
    (String::from_utf8(out).unwrap(), st)
}

fn conv(v: &Value) -> String {
    conv_bytes(&enc(v), &JsonOptions::default()).0
}

fn f64_text(v: f64) -> String {
    let mut out = Vec::new();
    write_f64(v, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn json_layout_compact_in_order() {
    let v = map(vec![
        (s("z"), Value::from(1)),
        (
            s("a"),
            Value::Array(vec![Value::from(1), s("x"), Value::Array(vec![])]),
        ),
        (s("m"), map(vec![(s("k"), Value::Nil)])),
        (s("e"), map(vec![])),
    ]);
    assert_eq!(conv(&v), r#"{"z":1,"a":[1,"x",[]],"m":{"k":null},"e":{}}"#);
}

#[test]
fn json_duplicate_keys_last_wins_at_its_position() {
    let v = map(vec![
        (s("a"), Value::from(1)),
        (s("b"), Value::from(2)),
        (s("a"), Value::from(3)),
    ]);
    assert_eq!(conv(&v), r#"{"b":2,"a":3}"#);

    let v = map(vec![
        (s("a"), Value::from(1)),
        (s("a"), Value::from(2)),
        (s("b"), Value::from(0)),
        (s("a"), Value::from(3)),
        (s("c"), Value::from(4)),
    ]);
    assert_eq!(conv(&v), r#"{"b":0,"a":3,"c":4}"#);

    // Every entry is the same key.
    let v = map(vec![(s("k"), Value::from(1)), (s("k"), Value::from(2))]);
    assert_eq!(conv(&v), r#"{"k":2}"#);
}

#[test]
fn json_duplicate_keys_nested() {
    let inner = map(vec![
        (s("x"), Value::from(1)),
        (
            s("y"),
            map(vec![(s("q"), Value::from(1)), (s("q"), Value::from(2))]),
        ),
        (s("x"), Value::from(2)),
    ]);
    let v = map(vec![
        (s("o"), inner.clone()),
        (s("arr"), Value::Array(vec![inner])),
        (s("o"), Value::from("last")),
    ]);
    assert_eq!(conv(&v), r#"{"arr":[{"y":{"q":2},"x":2}],"o":"last"}"#);
}

#[test]
fn json_duplicate_keys_compare_string_bytes_not_encoding() {
    // fixstr "a" and str8 "a" are the same key (FB compares the string bytes).
    let mut m = vec![0x82, 0xa1, b'a', 0x01];
    m.extend_from_slice(&[0xd9, 0x01, b'a', 0x02]);
    assert_eq!(conv_bytes(&m, &JsonOptions::default()).0, r#"{"a":2}"#);
    // "a" and "a\0" differ.
    let v = map(vec![(s("a"), Value::from(1)), (s("a\0"), Value::from(2))]);
    assert_eq!(conv(&v), r#"{"a":1,"a\u0000":2}"#);
}

#[test]
fn json_non_string_keys_become_strings() {
    let v = map(vec![
        (Value::from(1), s("a")),
        (Value::from(-5), s("b")),
        (Value::Nil, s("c")),
        (Value::Boolean(true), s("d")),
        (Value::F64(1.5), s("e")),
        (Value::F64(2.0), s("f")),
        (Value::Array(vec![Value::from(1), s("a")]), s("g")),
        (map(vec![(s("k"), s("v"))]), s("h")),
        (Value::Binary(b"bin".to_vec()), s("i")),
        (Value::Ext(1, vec![0xab]), s("j")),
    ]);
    assert_eq!(
        conv(&v),
        r#"{"1":"a","-5":"b","null":"c","true":"d","1.5":"e","2.0":"f","[1,\"a\"]":"g","{\"k\":\"v\"}":"h","bin":"i","\\xab":"j"}"#
    );
    // Two identical non-string keys are merged too, so the JSON has no duplicates.
    let v = map(vec![(Value::from(1), s("a")), (Value::from(1), s("b"))]);
    assert_eq!(conv(&v), r#"{"1":"b"}"#);
}

#[test]
fn json_nil_and_bools() {
    let v = Value::Array(vec![
        Value::Nil,
        Value::Boolean(true),
        Value::Boolean(false),
    ]);
    assert_eq!(conv(&v), "[null,true,false]");
}

#[test]
fn json_integers_all_widths() {
    use rmp::encode::*;
    let mut b = Vec::new();
    write_array_len(&mut b, 18).unwrap();
    write_pfix(&mut b, 0).unwrap();
    write_pfix(&mut b, 127).unwrap();
    write_nfix(&mut b, -1).unwrap();
    write_nfix(&mut b, -32).unwrap();
    write_u8(&mut b, 255).unwrap();
    write_u16(&mut b, 65535).unwrap();
    write_u32(&mut b, 4294967295).unwrap();
    write_u64(&mut b, u64::MAX).unwrap();
    write_i8(&mut b, -128).unwrap();
    write_i16(&mut b, -32768).unwrap();
    write_i32(&mut b, i32::MIN).unwrap();
    write_i64(&mut b, i64::MIN).unwrap();
    // Wide encodings of small values.
    write_u64(&mut b, 1).unwrap();
    write_i64(&mut b, 7).unwrap();
    write_i8(&mut b, 5).unwrap();
    write_u8(&mut b, 0).unwrap();
    write_i64(&mut b, i64::MAX).unwrap();
    write_i32(&mut b, -1).unwrap();
    assert_eq!(
        conv_bytes(&b, &JsonOptions::default()).0,
        "[0,127,-1,-32,255,65535,4294967295,18446744073709551615,-128,-32768,-2147483648,\
         -9223372036854775808,1,7,5,0,9223372036854775807,-1]"
    );
}

#[test]
fn json_floats() {
    let v = Value::Array(vec![
        Value::F64(1.0),
        Value::F64(-0.0),
        Value::F64(1e15),
        Value::F64(0.1),
        Value::F64(1e20),
        Value::F64(1.5e-7),
        Value::F32(0.1),
        Value::F32(2.0),
        Value::F64(-9223372036854775808.0),
        Value::F64(9223372036854775808.0),
        Value::F64(123456.789),
    ]);
    assert_eq!(
        conv(&v),
        "[1.0,-0.0,1000000000000000.0,0.1,1e+20,1.5e-07,0.1000000014901161,2.0,\
         -9223372036854775808.0,9.223372036854776e+18,123456.789]"
    );
}

#[test]
fn json_nan_and_inf_are_null() {
    let v = Value::Array(vec![
        Value::F64(f64::NAN),
        Value::F64(f64::INFINITY),
        Value::F64(f64::NEG_INFINITY),
        Value::F32(f32::NAN),
        Value::F32(f32::NEG_INFINITY),
    ]);
    assert_eq!(conv(&v), "[null,null,null,null,null]");
}

#[test]
fn json_string_escapes() {
    let mut text: String = (0u8..0x20).map(char::from).collect();
    text.push_str("\"\\/\x7f ok");
    let expect = r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\"\\/\u007f ok""#;
    assert_eq!(conv(&s(&text)), expect);
    assert_eq!(conv_bytes(&enc(&s(&text)), &RAW).0, expect);
    assert_eq!(conv(&s("")), r#""""#);
}

#[test]
fn json_non_ascii_escape_unicode_on_and_off() {
    let v = s("héllo €😀");
    assert_eq!(conv(&v), r#""h\u00e9llo \u20ac\ud83d\ude00""#);
    assert_eq!(conv_bytes(&enc(&v), &RAW).0, "\"héllo €😀\"");
    assert!(JsonOptions::default().escape_unicode);
    // Highest code points of each length.
    assert_eq!(
        conv(&s("\u{7ff}\u{ffff}\u{10ffff}")),
        r#""\u07ff\uffff\udbff\udfff""#
    );
}

#[test]
fn json_invalid_utf8_like_from_utf8_lossy() {
    let cases: &[&[u8]] = &[
        b"\xff",
        b"a\xc3",
        b"a\xc3b",
        b"\xe2\x82",
        b"\xe2\x82\xe2\x82\xac",
        b"\xf0\x9f\x98",
        b"\xf0\x9f\x98\x80\xf0\x9f",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80\x80\x80",
        b"ok \xfe\xfe \xc3\xa9\"\n",
    ];
    for &bytes in cases {
        let lossy = String::from_utf8_lossy(bytes);
        let replacements = lossy.matches('\u{fffd}').count() as u32;
        for opts in [JsonOptions::default(), RAW] {
            let mut out = Vec::new();
            let mut st = JsonStats::default();
            write_json_string(bytes, &mut out, &opts, &mut st);
            let text = std::str::from_utf8(&out).unwrap();
            let parsed: String = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, lossy, "{bytes:x?}");
            assert_eq!(st.invalid_utf8, replacements, "{bytes:x?}");
            if opts.escape_unicode {
                assert!(text.is_ascii());
            } else {
                assert_eq!(text.matches('\u{fffd}').count() as u32, replacements);
            }
        }
    }
    // Via msgpack, counted into the stats, escape mode writes \ufffd.
    let (text, st) = conv_bytes(&[0xa2, b'a', 0xff], &JsonOptions::default());
    assert_eq!(text, r#""a\ufffd""#);
    assert_eq!(st.invalid_utf8, 1);
}

#[test]
fn json_bin_like_string() {
    let v = Value::Binary(b"h\xc3\xa9\"\xff".to_vec());
    assert_eq!(conv(&v), r#""h\u00e9\"\ufffd""#);
    assert_eq!(conv_bytes(&enc(&v), &RAW).0, "\"hé\\\"\u{fffd}\"");
}

#[test]
fn json_ext_hex_bytes() {
    let v = Value::Array(vec![
        Value::Ext(5, vec![0x80]),
        Value::Ext(-1, vec![0, 1, 0xfe, 0xff]),
        Value::Ext(7, vec![1, 2, 3]),
        Value::Ext(7, vec![]),
    ]);
    let text = conv(&v);
    assert_eq!(
        text,
        r#"["\\x80","\\x00\\x01\\xfe\\xff","\\x01\\x02\\x03",""]"#
    );
    let parsed: Vec<String> = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed[0], r"\x80");
    // Every ext marker: fixext 1/2/4/8/16, ext8/16/32.
    for len in [1usize, 2, 4, 8, 16, 3, 300, 70000] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut b = Vec::new();
        rmp::encode::write_ext_meta(&mut b, len as u32, 9).unwrap();
        b.extend_from_slice(&data);
        let (text, _) = conv_bytes(&b, &JsonOptions::default());
        assert_eq!(text.len(), 2 + 5 * len);
        let last = format!("\\\\x{:02x}\"", (len - 1) as u8);
        assert!(
            text.starts_with(r#""\\x00"#) && text.ends_with(&last),
            "{len}"
        );
    }
}

#[test]
fn json_arrays() {
    let v = Value::Array(vec![Value::Array(vec![Value::from(1)]), s("x"), Value::Nil]);
    assert_eq!(conv(&v), r#"[[1],"x",null]"#);
    // array16 / array32 / map16 / map32 headers.
    let mut b = vec![0xdc, 0x00, 0x02, 0x01, 0x02];
    assert_eq!(conv_bytes(&b, &JsonOptions::default()).0, "[1,2]");
    b = vec![0xdd, 0, 0, 0, 1, 0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xde, 0, 0];
    assert_eq!(conv_bytes(&b, &JsonOptions::default()).0, r#"[{"k":{}}]"#);
}

#[test]
fn json_errors() {
    let opts = JsonOptions::default();
    let mut st = JsonStats::default();
    let mut out = Vec::new();
    assert_eq!(
        write_json(&[], &mut out, &opts, &mut st),
        Err(JsonError::Truncated)
    );
    assert_eq!(
        write_json(&[0xc1], &mut out, &opts, &mut st),
        Err(JsonError::InvalidMarker(0xc1))
    );
    assert_eq!(
        write_json(&[0x92, 0x01], &mut out, &opts, &mut st),
        Err(JsonError::Truncated)
    );
    assert_eq!(
        write_json(&[0xa3, b'a'], &mut out, &opts, &mut st),
        Err(JsonError::Truncated)
    );
    assert_eq!(
        write_json(&[0xdf, 0xff, 0xff, 0xff, 0xff], &mut out, &opts, &mut st),
        Err(JsonError::Truncated)
    );
    assert_eq!(
        write_json(&[0xcb, 0, 0], &mut out, &opts, &mut st),
        Err(JsonError::Truncated)
    );
    assert!(JsonError::InvalidMarker(0xc1).to_string().contains("0xc1"));
}

#[test]
fn json_depth_limit() {
    let opts = JsonOptions::default();
    let mut st = JsonStats::default();
    let mut out = Vec::new();
    // 512 nested arrays are fine, 513 are not; 200 000 do not overflow the stack.
    let mut ok = vec![0x91u8; 511];
    ok.push(0x90);
    assert_eq!(write_json(&ok, &mut out, &opts, &mut st), Ok(512));
    let mut deep = vec![0x91u8; 512];
    deep.push(0x90);
    assert_eq!(
        write_json(&deep, &mut out, &opts, &mut st),
        Err(JsonError::TooDeep)
    );
    let mut deep = [0x81u8, 0xa1, b'k'].repeat(200_000);
    deep.push(0xc0);
    out.clear();
    assert_eq!(
        write_json(&deep, &mut out, &opts, &mut st),
        Err(JsonError::TooDeep)
    );
    assert_eq!(skip_value(&deep), Ok(deep.len()));
}

#[test]
fn json_returns_consumed_and_appends() {
    let mut b = enc(&map(vec![(s("a"), Value::from(1))]));
    let first = b.len();
    b.extend_from_slice(&enc(&Value::from(2)));
    let mut out = b"prefix:".to_vec();
    let mut st = JsonStats::default();
    assert_eq!(
        write_json(&b, &mut out, &JsonOptions::default(), &mut st),
        Ok(first)
    );
    assert_eq!(out, br#"prefix:{"a":1}"#);
}

// ---------------------------------------------------------------------------------------------
// Property tests

/// C's formatting of the rule: `%.1f` if integral within i64, else `%.16g`.
fn c_format(v: f64) -> String {
    let fmt: &[u8] =
        if v == v.trunc() && (-9223372036854775808.0..9223372036854775808.0).contains(&v) {
            b"%.1f\0"
        } else {
            b"%.16g\0"
        };
    let mut buf = [0u8; 512];
    // SAFETY: NUL-terminated format with one double conversion; the buffer size is passed.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr().cast(), v) };
    String::from_utf8(buf[..n as usize].to_vec()).unwrap()
}

fn interesting_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<i64>().prop_map(|i| i as f64),
        any::<i64>().prop_map(|i| i as f64 + 0.5),
        (any::<i32>(), -30i32..30).prop_map(|(m, e)| m as f64 * 10f64.powi(e)),
        any::<u32>().prop_map(|b| f32::from_bits(b) as f64),
        (0u64..1 << 53, 0i32..80).prop_map(|(m, e)| m as f64 * 2f64.powi(e)),
    ]
    .prop_filter("finite", |v| v.is_finite())
}

/// The JSON we expect for an rmpv value, built independently of the writer.
fn expected(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else {
                J::from(i.as_i64().unwrap())
            }
        }
        Value::F32(f) => float_json(*f as f64),
        Value::F64(f) => float_json(*f),
        Value::String(st) => J::String(String::from_utf8_lossy(st.as_bytes()).into_owned()),
        Value::Binary(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Ext(_, d) => J::String(d.iter().map(|b| format!("\\x{b:02x}")).collect()),
        Value::Array(a) => J::Array(a.iter().map(expected).collect()),
        Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (i, (k, val)) in m.iter().enumerate() {
                let key = k.as_str().expect("string keys in the generator");
                if m[i + 1..].iter().any(|(k2, _)| k2.as_str() == Some(key)) {
                    continue;
                }
                out.insert(key.to_owned(), expected(val));
            }
            J::Object(out)
        }
    }
}

fn float_json(f: f64) -> serde_json::Value {
    if f.is_finite() {
        serde_json::from_str(&c_format(f)).unwrap()
    } else {
        serde_json::Value::Null
    }
}

/// Random bytes, and valid encodings with a few bytes overwritten (which get much further
/// into the parser than pure noise).
fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            arb_value(true),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        )
            .prop_map(|(v, edits)| {
                let mut b = enc(&v);
                for (i, byte) in edits {
                    let i = i.index(b.len());
                    b[i] = byte;
                }
                b
            }),
    ]
}

fn arb_value(floats: bool) -> impl Strategy<Value = Value> {
    let text = prop_oneof!["[a-c]{0,2}", any::<String>(), "[\\x00-\\x7f]{0,8}",];
    let float = if floats {
        prop_oneof![
            interesting_f64().prop_map(Value::F64),
            any::<f32>().prop_map(Value::F32),
            Just(Value::F64(f64::NAN)),
        ]
        .boxed()
    } else {
        Just(Value::Nil).boxed()
    };
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text.clone().prop_map(Value::from),
        float,
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-e]{0,2}", inner), 0..40).prop_map(|kv| {
                Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
            }),
        ]
    })
}

proptest! {
    // No persistence: a failure must not write regression files into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn json_prop_f64_matches_libc(v in interesting_f64()) {
        prop_assert_eq!(f64_text(v), c_format(v));
    }

    #[test]
    fn json_prop_arbitrary_bytes_never_panic(bytes in arb_bytes()) {
        for opts in [JsonOptions::default(), RAW] {
            let mut out = Vec::new();
            let mut st = JsonStats::default();
            let r = write_json(&bytes, &mut out, &opts, &mut st);
            if let Ok(n) = r {
                prop_assert_eq!(skip_value(&bytes), Ok(n));
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            }
        }
    }
}

proptest! {
    // No persistence: a failure must not write regression files into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn json_prop_roundtrip_through_serde_json(v in arb_value(true)) {
        let want = serde_json::to_string(&expected(&v)).unwrap();
        for opts in [JsonOptions::default(), RAW] {
            let (text, _) = conv_bytes(&enc(&v), &opts);
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            // to_string keeps key order (preserve_order), so this also checks the order.
            prop_assert_eq!(serde_json::to_string(&parsed).unwrap(), want.clone());
        }
    }

    #[test]
    fn json_prop_raw_mode_matches_serde_json_bytes(v in arb_value(false)) {
        // Without floats, raw mode writes exactly what serde_json writes, except that we
        // escape DEL (as FB does) and serde_json does not.
        let want = serde_json::to_string(&expected(&v)).unwrap().replace('\x7f', "\\u007f");
        let (text, _) = conv_bytes(&enc(&v), &RAW);
        prop_assert_eq!(text, want);
    }
}

/// Found by fuzzing: maps used as keys of maps used as keys… double their escaped text at every
/// level. A 78-byte record must not take more than a small, bounded output.
#[test]
fn deeply_nested_container_keys_stay_small() {
    let depth = 40;
    let mut input = vec![0x81u8; depth];
    input.extend(std::iter::repeat_n(0xc0u8, depth + 1));
    let mut out = Vec::new();
    let mut stats = JsonStats::default();
    let used = write_json(&input, &mut out, &JsonOptions::default(), &mut stats).unwrap();
    assert_eq!(used, input.len());
    assert!(out.len() < 4096, "{} bytes", out.len());
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("(nested key)"), "{text}");
    serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
    // Shallow container keys keep their JSON text.
    let mut out = Vec::new();
    write_json(
        &[0x81, 0x81, 0x01, 0x02, 0x03],
        &mut out,
        &JsonOptions::default(),
        &mut stats,
    )
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"{\"1\":2}":3}"#);
}

/// The escaping rules written out one char at a time: the reference for the word-at-a-time
/// scanner in `write_json_string`.
fn reference_escape(text: &str, escape_unicode: bool) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || (escape_unicode && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Long strings that mix plain runs of every length with every kind of byte the scanner must
/// stop at, at every offset within an 8-byte word.
fn arb_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 /:.{}=-]{0,20}",
        // Plain runs longer than one SIMD block.
        1 => "[a-z]{20,90}",
        1 => prop::sample::select(vec![
            "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "\u{7f}",
            "é", "€", "😀", "\u{80}", "\u{7ff}", "\u{ffff}",
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn json_prop_string_escaping_matches_reference(text in arb_text()) {
        for opts in [JsonOptions::default(), RAW] {
            let mut out = b"prefix".to_vec();
            write_json_string(text.as_bytes(), &mut out, &opts, &mut JsonStats::default());
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("prefix{}", reference_escape(&text, opts.escape_unicode))
            );
        }
    }
}
