//! `grep` against Fluent Bit's documentation examples and its edge cases.

mod common;

use common::*;
use kb_filters::grep::PLUGIN;

const LINES: [&str; 8] = [
    r#"{"log": "aaa"}"#,
    r#"{"log": "aab"}"#,
    r#"{"log": "bbb"}"#,
    r#"{"log": "ccc"}"#,
    r#"{"log": "ddd"}"#,
    r#"{"log": "eee"}"#,
    r#"{"log": "fff"}"#,
    r#"{"log": "ggg"}"#,
];

const K8S: &str = r#"{
    "log": "something",
    "kubernetes": {
        "pod_name": "myapp-0",
        "namespace_name": "default",
        "pod_id": "216cd7ae-1c7e-11e8-bb40-000c298df552",
        "labels": {
            "app": "myapp"
        },
        "host": "minikube",
        "container_name": "myapp",
        "docker_id": "370face382c7603fdd309d8c6aaaf434fd98b92421ce"
    }
}"#;

#[test]
fn doc_filter_records() {
    let out = filter(&PLUGIN, &[("regex", "log aa")], &LINES);
    assert_eq!(out, [r#"{"log":"aaa"}"#, r#"{"log":"aab"}"#]);
}

#[test]
fn doc_nested_fields() {
    let out = filter(
        &PLUGIN,
        &[("Exclude", "$kubernetes['labels']['app'] myapp")],
        &[
            K8S,
            r#"{"log":"x","kubernetes":{"labels":{"app":"other"}}}"#,
        ],
    );
    assert_eq!(
        out,
        [r#"{"log":"x","kubernetes":{"labels":{"app":"other"}}}"#]
    );
}

#[test]
fn doc_excluding_records_with_missing_or_invalid_fields() {
    let out = filter(
        &PLUGIN,
        &[
            ("Alias", "filter-iots-grep"),
            ("Regex", r"iot_timestamp ^\d{4}-\d{2}-\d{2}"),
        ],
        &[
            r#"{"iot_timestamp":"2024-01-02T03:04:05Z","v":1}"#,
            r#"{"v":2}"#,
            r#"{"iot_timestamp":"","v":3}"#,
            r#"{"iot_timestamp":"yesterday","v":4}"#,
        ],
    );
    assert_eq!(out, [r#"{"iot_timestamp":"2024-01-02T03:04:05Z","v":1}"#]);
}

#[test]
fn doc_multiple_conditions_with_logical_op_or() {
    let out = filter(
        &PLUGIN,
        &[
            ("Logical_Op", "or"),
            ("Regex", "value something"),
            ("Regex", "value error"),
        ],
        &[
            r#"{"endpoint":"localhost", "value":"something"}"#,
            r#"{"endpoint":"localhost", "value":"an error"}"#,
            r#"{"endpoint":"localhost", "value":"fine"}"#,
        ],
    );
    assert_eq!(
        out,
        [
            r#"{"endpoint":"localhost","value":"something"}"#,
            r#"{"endpoint":"localhost","value":"an error"}"#
        ]
    );
}

#[test]
fn legacy_mode_ands_regexes_and_ors_excludes_as_documented() {
    let recs = [
        r#"{"a":"x1","b":"y1"}"#,
        r#"{"a":"x1","b":"n"}"#,
        r#"{"a":"n","b":"y1"}"#,
    ];
    // Fluent Bit stops at the first matching Regex and would keep the second record too.
    let out = filter(&PLUGIN, &[("Regex", "a ^x"), ("Regex", "b ^y")], &recs);
    assert_eq!(out, [r#"{"a":"x1","b":"y1"}"#]);
    let out = filter(&PLUGIN, &[("Exclude", "a ^x"), ("Exclude", "b ^y")], &recs);
    assert!(out.is_empty(), "{out:?}");
    // An Exclude after a matching Regex still applies.
    let out = filter(&PLUGIN, &[("Regex", "a ^x"), ("Exclude", "b ^n")], &recs);
    assert_eq!(out, [r#"{"a":"x1","b":"y1"}"#]);
}

#[test]
fn and_mode() {
    let recs = [
        r#"{"a":"x1","b":"y1"}"#,
        r#"{"a":"x1","b":"n"}"#,
        r#"{"a":"n","b":"n"}"#,
    ];
    let out = filter(
        &PLUGIN,
        &[("Logical_Op", "AND"), ("Regex", "a ^x"), ("Regex", "b ^y")],
        &recs,
    );
    assert_eq!(out, [r#"{"a":"x1","b":"y1"}"#]);
    let out = filter(
        &PLUGIN,
        &[
            ("Logical_Op", "and"),
            ("Exclude", "a ^x"),
            ("Exclude", "b ^y"),
        ],
        &recs,
    );
    assert_eq!(out, [r#"{"a":"x1","b":"n"}"#, r#"{"a":"n","b":"n"}"#]);
    let out = filter(
        &PLUGIN,
        &[
            ("Logical_Op", "or"),
            ("Exclude", "a ^x"),
            ("Exclude", "b ^y"),
        ],
        &recs,
    );
    assert_eq!(out, [r#"{"a":"n","b":"n"}"#]);
}

#[test]
fn only_string_values_match() {
    let recs = [
        r#"{"v":123}"#,
        r#"{"v":true}"#,
        r#"{"v":null}"#,
        r#"{"v":1.5}"#,
        r#"{"v":{"x":"1"}}"#,
        r#"{"v":["1"]}"#,
        r#"{"v":"1"}"#,
    ];
    let out = filter(&PLUGIN, &[("Regex", "v .")], &recs);
    assert_eq!(out, [r#"{"v":"1"}"#]);
    let out = filter(&PLUGIN, &[("Exclude", "v .")], &recs);
    assert_eq!(out.len(), 6);
    // Bin values do not match either.
    let ev = Map::new().raw(b"v", &bin(b"abc")).event();
    let f = build(&PLUGIN, &[("Regex", "v abc")]).unwrap();
    assert!(run_events(vec![f], &ev, 1).is_empty());
}

#[test]
fn duplicates_read_the_last_and_invalid_utf8_is_replaced() {
    let ev = Map::new().s("k", b"first").s("k", b"second").event();
    let f = build(&PLUGIN, &[("Regex", "k ^second$")]).unwrap();
    assert_eq!(run_events(vec![f], &ev, 1).len(), 1);
    let f = build(&PLUGIN, &[("Regex", "k ^first$")]).unwrap();
    assert!(run_events(vec![f], &ev, 1).is_empty());
    let ev = Map::new().s("k", b"a\xffb").event();
    let f = build(&PLUGIN, &[("Regex", "k ^a\u{fffd}b$")]).unwrap();
    assert_eq!(run_events(vec![f], &ev, 1), [r#"{"k":"a\ufffdb"}"#]);
}

#[test]
fn regex_options_and_spaces_in_patterns() {
    let out = filter(
        &PLUGIN,
        &[("Regex", "log /^GET .* 200$/i")],
        &[
            r#"{"log":"get /x 200"}"#,
            r#"{"log":"GET /x 500"}"#,
            r#"{"log":"POST"}"#,
        ],
    );
    assert_eq!(out, [r#"{"log":"get /x 200"}"#]);
}

#[test]
fn empty_records_and_kept_records_are_copied_as_they_came() {
    let out = filter(&PLUGIN, &[("Exclude", "log x")], &["{}"]);
    assert_eq!(out, ["{}"]);
    let ev = event(K8S);
    let f = build(&PLUGIN, &[("Regex", "log thing")]).unwrap();
    let mut st = stage(vec![f]);
    assert_eq!(st.run("t", "i", &ev, 1), (ev.clone(), 1));
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(
        &PLUGIN,
        &[("Logical_Op", "or"), ("Regex", "a x"), ("Exclude", "b y")],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "/etc/kb/filter.conf:4: [filter grep.0] Both 'regex' and 'exclude' are set"
        ),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("Regex", "log (unclosed")]);
    assert!(
        e[0].starts_with(
            "/etc/kb/filter.conf:2: [filter grep.0] could not compile regex pattern '(unclosed'"
        ),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("Regex", "ok a"), ("Exclude", "lonely")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:3: [filter grep.0] invalid exclude 'lonely', expected field and regular expression"]
    );
    let e = build_errors(&PLUGIN, &[("Regex", "$a['b' x")]);
    assert!(e[0].contains("invalid record accessor"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Logical_Op", "xor")]);
    assert!(e[0].contains("expected one of: legacy, and, or"), "{e:?}");
}
