//! Spec §4 (partition keys): accessor forms, value conversion, the 256-character cut, the
//! random key, and invalid accessors.

use kb_kinesis::accessor::{
    random_key, PartitionKey, RecordAccessor, Segment, MAX_KEY_CHARS, RANDOM_KEY_LEN,
};
use rmpv::Value;

fn enc(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

fn s(t: &str) -> Value {
    Value::from(t)
}

fn record() -> Vec<u8> {
    enc(&Value::Map(vec![
        (s("user"), s("alice")),
        (
            s("kubernetes"),
            Value::Map(vec![
                (s("pod_name"), s("web-1")),
                (
                    s("labels"),
                    Value::Map(vec![(s("app"), s("shop")), (s("it's"), s("quoted"))]),
                ),
            ]),
        ),
        (
            s("list"),
            Value::Array(vec![
                s("zero"),
                Value::from(1),
                Value::Map(vec![(s("k"), s("in array"))]),
            ]),
        ),
        (s("int"), Value::from(-42)),
        (s("uint"), Value::from(7u64)),
        (s("float"), Value::F64(1.5)),
        (s("whole"), Value::F64(3.0)),
        (s("bool"), Value::Boolean(true)),
        (s("nil"), Value::Nil),
        (s("map"), Value::Map(vec![(s("a"), Value::from(1))])),
        (s("arr"), Value::Array(vec![])),
        (s("empty"), s("")),
        (s("a.b"), s("dotted")),
        (s("dup"), s("first")),
        (s("dup"), s("last")),
        (s("nan"), Value::F64(f64::NAN)),
        (
            Value::Binary(b"binkey".to_vec()),
            Value::Binary(b"binval".to_vec()),
        ),
    ]))
}

fn get(acc: &str) -> Option<String> {
    let a = RecordAccessor::parse(acc).unwrap();
    let mut out = String::from("garbage from before");
    a.extract(&record(), &mut out).then_some(out)
}

#[test]
fn accessor_top_level_key() {
    assert_eq!(get("$user").as_deref(), Some("alice"));
    assert_eq!(
        get("$a.b").as_deref(),
        Some("dotted"),
        "dots belong to the key name"
    );
    assert_eq!(get("$binkey").as_deref(), Some("binval"));
}

#[test]
fn accessor_nested_keys_single_and_double_quotes() {
    assert_eq!(get("$kubernetes['pod_name']").as_deref(), Some("web-1"));
    assert_eq!(get("$kubernetes['labels']['app']").as_deref(), Some("shop"));
    assert_eq!(
        get("$kubernetes[\"labels\"][\"app\"]").as_deref(),
        Some("shop")
    );
    assert_eq!(
        get("$kubernetes['labels']['it''s']").as_deref(),
        Some("quoted")
    );
    assert_eq!(
        get(" $kubernetes [ 'labels' ] ['app'] ").as_deref(),
        Some("shop")
    );
}

#[test]
fn accessor_array_index() {
    assert_eq!(get("$list[0]").as_deref(), Some("zero"));
    assert_eq!(get("$list[1]").as_deref(), Some("1"));
    assert_eq!(get("$list[2]['k']").as_deref(), Some("in array"));
    assert_eq!(get("$list[3]"), None, "out of range");
    assert_eq!(get("$user[0]"), None, "not an array");
    assert_eq!(get("$list['k']"), None, "not a map");
}

#[test]
fn accessor_parsed_path() {
    let a = RecordAccessor::parse("$a['b'][3]").unwrap();
    assert_eq!(
        a.path(),
        &[
            Segment::Key("a".into()),
            Segment::Key("b".into()),
            Segment::Index(3)
        ]
    );
    assert_eq!(a.to_string(), "$a['b'][3]");
}

#[test]
fn accessor_scalars_as_json_text() {
    assert_eq!(get("$int").as_deref(), Some("-42"));
    assert_eq!(get("$uint").as_deref(), Some("7"));
    assert_eq!(get("$float").as_deref(), Some("1.5"));
    assert_eq!(get("$whole").as_deref(), Some("3.0"));
    assert_eq!(get("$bool").as_deref(), Some("true"));
}

#[test]
fn accessor_fallback_values() {
    for acc in [
        "$nil",
        "$map",
        "$arr",
        "$empty",
        "$missing",
        "$kubernetes['nope']",
        "$nan",
    ] {
        assert_eq!(get(acc), None, "{acc}");
    }
    let a = RecordAccessor::parse("$user").unwrap();
    let mut out = String::new();
    assert!(
        !a.extract(&enc(&Value::Array(vec![s("x")])), &mut out),
        "record not a map"
    );
    assert!(!a.extract(&[0x81, 0xa4], &mut out), "truncated msgpack");
    assert!(out.is_empty());
}

#[test]
fn accessor_duplicate_keys_last_wins() {
    assert_eq!(get("$dup").as_deref(), Some("last"));
}

#[test]
fn accessor_cut_to_256_chars_on_char_boundary() {
    let a = RecordAccessor::parse("$k").unwrap();
    let mut out = String::new();
    // 255 ASCII then multi-byte characters: the cut lands after the 256th character.
    let long = format!("{}é€😀tail", "x".repeat(255));
    assert!(a.extract(&enc(&Value::Map(vec![(s("k"), s(&long))])), &mut out));
    assert_eq!(out.chars().count(), MAX_KEY_CHARS);
    assert_eq!(out, format!("{}é", "x".repeat(255)));
    let wide = "😀".repeat(300);
    assert!(a.extract(&enc(&Value::Map(vec![(s("k"), s(&wide))])), &mut out));
    assert_eq!(out, "😀".repeat(256));
    assert_eq!(out.len(), 1024);
    let exact = "ü".repeat(256);
    assert!(a.extract(&enc(&Value::Map(vec![(s("k"), s(&exact))])), &mut out));
    assert_eq!(out, exact);
}

#[test]
fn accessor_invalid_utf8_replaced() {
    let a = RecordAccessor::parse("$k").unwrap();
    let mut out = String::new();
    let rec = enc(&Value::Map(vec![(
        s("k"),
        Value::Binary(b"a\xffb".to_vec()),
    )]));
    assert!(a.extract(&rec, &mut out));
    assert_eq!(out, "a\u{fffd}b");
}

#[test]
fn accessor_invalid_forms_are_errors() {
    for bad in [
        "", "user", "$", "$$a", "$1abc", "$a[", "$a['b'", "$a['b']x", "$a[b]", "$a[-1]", "$a[01]",
        "$a b", "$a-b", "$[0]", "${a}", "$a[]", "$a['x']]",
    ] {
        let e = RecordAccessor::parse(bad).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("expected $key, $key['sub']['subsub'] or $key[0]"),
            "{bad}: {msg}"
        );
        assert_eq!(e.text, bad);
    }
    let e = RecordAccessor::parse("user").unwrap_err();
    assert!(e.to_string().contains("must start with '$'"), "{e}");
    // Beyond FB: a bracketed top-level name for keys outside the identifier alphabet.
    assert!(RecordAccessor::parse("$['log-level']").is_ok());
}

#[test]
fn accessor_random_key_alphabet_and_length() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut out = String::from("old");
    let mut seen = std::collections::HashSet::new();
    let mut chars = std::collections::HashSet::new();
    for _ in 0..2000 {
        random_key(&mut rng, &mut out);
        assert_eq!(out.len(), RANDOM_KEY_LEN);
        assert_eq!(RANDOM_KEY_LEN, 16);
        assert!(out.bytes().all(|b| b.is_ascii_alphanumeric()), "{out}");
        chars.extend(out.chars());
        seen.insert(out.clone());
    }
    assert_eq!(seen.len(), 2000, "fresh key every time");
    assert_eq!(chars.len(), 62, "the whole [0-9A-Za-z] alphabet is used");
}

/// Every position of the key draws the 62 characters evenly (the shard a record lands on is
/// the MD5 of its key, but a skewed alphabet would still shrink the key space).
#[test]
fn accessor_random_key_positions_are_uniform() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut out = String::new();
    let mut counts = vec![[0u32; 128]; RANDOM_KEY_LEN];
    for _ in 0..62_000 {
        random_key(&mut rng, &mut out);
        for (pos, b) in out.bytes().enumerate() {
            counts[pos][b as usize] += 1;
        }
    }
    for (pos, c) in counts.iter().enumerate() {
        for b in (b'0'..=b'9').chain(b'A'..=b'Z').chain(b'a'..=b'z') {
            let n = c[b as usize];
            // Expected 1000 each, standard deviation about 32.
            assert!(
                (850..=1150).contains(&n),
                "position {pos}: '{}' drawn {n} times",
                b as char
            );
        }
    }
}
