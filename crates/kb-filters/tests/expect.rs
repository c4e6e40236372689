//! `expect` against Fluent Bit's "Validate your data and structure" example and every rule.

mod common;

use common::*;
use kb_filters::expect::PLUGIN;

const DATA: [&str; 3] = [
    r#"{"color": "blue", "label": {"name": null}}"#,
    r#"{"color": "red", "label": {"name": "abc"}, "meta": "data"}"#,
    r#"{"color": "green", "label": {"name": "abc"}, "meta": null}"#,
];

fn matched(kv: &[(&str, &str)], records: &[&str]) -> Vec<bool> {
    let mut kv = kv.to_vec();
    kv.push(("action", "result_key"));
    filter(&PLUGIN, &kv, records)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v.as_object().unwrap().keys().next().unwrap(), "matched");
            v["matched"].as_bool().unwrap()
        })
        .collect()
}

#[test]
fn doc_validating_data_and_structure() {
    let check1 = build(
        &PLUGIN,
        &[
            ("key_exists", "color"),
            ("key_exists", "$label['name']"),
            ("action", "warn"),
        ],
    )
    .unwrap();
    let grep = build(
        &kb_filters::grep::PLUGIN,
        &[("regex", "$label['name'] ^abc$")],
    )
    .unwrap();
    let check2 = build(
        &PLUGIN,
        &[("key_val_eq", "$label['name'] abc"), ("action", "warn")],
    )
    .unwrap();
    let modifier = build(
        &kb_filters::record_modifier::PLUGIN,
        &[("record", "hostname localhost")],
    )
    .unwrap();
    let check3 = build(
        &PLUGIN,
        &[
            ("key_exists", "hostname"),
            ("action", "result_key"),
            ("result_key", "valid"),
        ],
    )
    .unwrap();
    let out = run(vec![check1, grep, check2, modifier, check3], &DATA);
    assert_eq!(
        out,
        [
            r#"{"valid":true,"color":"red","label":{"name":"abc"},"meta":"data","hostname":"localhost"}"#,
            r#"{"valid":true,"color":"green","label":{"name":"abc"},"meta":null,"hostname":"localhost"}"#
        ]
    );
    // The first check passes for all three records (a null value exists).
    assert_eq!(
        matched(
            &[("key_exists", "color"), ("key_exists", "$label['name']")],
            &DATA
        ),
        [true, true, true]
    );
}

#[test]
fn every_rule() {
    let r = [r#"{"a":null,"b":"x","n":5,"t":true,"m":{"k":[1]},"arr":[1]}"#];
    let cases: &[(&str, &str, bool)] = &[
        ("key_exists", "a", true),
        ("key_exists", "arr", true),
        ("key_exists", "$m['k'][0]", true),
        ("key_exists", "zz", false),
        ("key_not_exists", "zz", true),
        ("key_not_exists", "b", false),
        ("key_val_is_null", "a", true),
        ("key_val_is_null", "b", false),
        ("key_val_is_null", "zz", false),
        ("key_val_is_not_null", "b", true),
        ("key_val_is_not_null", "a", false),
        ("key_val_is_not_null", "zz", false),
        ("key_val_eq", "b x", true),
        ("key_val_eq", "b y", false),
        ("key_val_eq", "n 5", true),
        ("key_val_eq", "n 6", false),
        ("key_val_eq", "t true", true),
        ("key_val_eq", "a null", false),
        ("key_val_eq", "zz x", false),
    ];
    for (k, v, want) in cases {
        assert_eq!(matched(&[(k, v)], &r), [*want], "{k} {v}");
    }
    // Rules are ANDed, each record decided on its own.
    assert_eq!(
        matched(
            &[("key_exists", "b"), ("key_val_eq", "b x")],
            &[r#"{"b":"x"}"#, r#"{"b":"y"}"#, "{}"]
        ),
        [true, false, false]
    );
    // A value with spaces.
    assert_eq!(
        matched(
            &[("key_val_eq", "msg hello  world")],
            &[r#"{"msg":"hello  world"}"#]
        ),
        [true]
    );
}

#[test]
fn warn_lets_every_record_through_unchanged() {
    let ev = event(DATA[0]);
    let f = build(&PLUGIN, &[("key_exists", "nope")]).unwrap();
    let mut st = stage(vec![f]);
    assert_eq!(st.run("t", "i", &ev, 1), (ev.clone(), 1));
}

#[test]
fn exit_owns_an_emitter_to_stop_the_engine() {
    let f = build(&PLUGIN, &[("key_exists", "a"), ("action", "exit")]).unwrap();
    let spec = f.emitter().expect("an emitter for action exit");
    assert_eq!(spec.name, "emitter_for_expect.0");
    // Without an engine the record still goes on.
    let out = run(vec![f], &["{}"]);
    assert_eq!(out, ["{}"]);
    let f = build(&PLUGIN, &[("key_exists", "a")]).unwrap();
    assert!(f.emitter().is_none());
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[("key_exists", "a"), ("key_val_eq", "lonely")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:3: [filter expect.0] key_val_eq 'lonely' needs a key and a value"]
    );
    let e = build_errors(&PLUGIN, &[("action", "panic")]);
    assert!(
        e[0].contains("expected one of: warn, exit, result_key"),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("key_exists", "$a['b'")]);
    assert!(e[0].contains("error processing accessor key"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("key_exist", "a")]);
    assert!(e[0].contains("did you mean 'key_exists'"), "{e:?}");
}
