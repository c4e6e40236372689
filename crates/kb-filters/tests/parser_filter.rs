//! The `parser` filter on Fluent Bit's documentation examples (pipeline/filters/parser.md)
//! and its edge cases; outputs compared as the exact JSON text `json_lines` prints.

mod parse_common;

use kb_core::event::{EventTime, EventWriter};
use kb_filters::parser::PLUGIN;
use parse_common::{build_with, errors, events, json_lines, service, stage, texts};

/// The documentation's parser.
const DUMMY_TEST: &str = r#"
[PARSER]
    Name dummy_test
    Format regex
    Regex ^(?<INT>[^ ]+) (?<FLOAT>[^ ]+) (?<BOOL>[^ ]+) (?<STRING>.+)$

[PARSER]
    Name   json_time
    Format json
    Time_Key time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z

[PARSER]
    Name   syslog_time
    Format regex
    Regex  ^(?<time>\w+ \d+ \d+:\d+:\d+) (?<msg>.*)$
    Time_Key time
    Time_Format %b %d %H:%M:%S

[PARSER]
    Name   kv
    Format logfmt
"#;

const T: EventTime = EventTime {
    secs: 1_750_323_528,
    nanos: 603_308_000,
};

fn run(kv: &[(&str, &str)], records: &[&str]) -> Vec<(EventTime, String)> {
    let f = build_with(&PLUGIN, kv, &service(DUMMY_TEST)).expect("valid filter");
    let mut st = stage(f);
    let (data, n) = events(T, records);
    let (out, count) = st.run("dummy.data", "dummy.0", &data, n);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), count);
    lines
}

fn only_json(v: Vec<(EventTime, String)>) -> Vec<String> {
    v.into_iter().map(|(_, j)| j).collect()
}

#[test]
fn documentation_example() {
    let got = run(
        &[("key_name", "data"), ("parser", "dummy_test")],
        &[r#"{"data":"100 0.5 true This is example"}"#],
    );
    assert_eq!(
        got,
        [(
            T,
            r#"{"INT":"100","FLOAT":"0.5","BOOL":"true","STRING":"This is example"}"#.to_string()
        )]
    );
}

#[test]
fn documentation_reserve_data() {
    let got = run(
        &[
            ("key_name", "data"),
            ("parser", "dummy_test"),
            ("reserve_data", "on"),
        ],
        &[r#"{"data":"100 0.5 true This is example", "key1":"value1", "key2":"value2"}"#],
    );
    assert_eq!(
        only_json(got),
        [
            r#"{"INT":"100","FLOAT":"0.5","BOOL":"true","STRING":"This is example","key1":"value1","key2":"value2"}"#
        ]
    );
}

#[test]
fn documentation_reserve_data_and_preserve_key() {
    let got = run(
        &[
            ("key_name", "data"),
            ("parser", "dummy_test"),
            ("reserve_data", "on"),
            ("preserve_key", "on"),
        ],
        &[r#"{"data":"100 0.5 true This is example", "key1":"value1", "key2":"value2"}"#],
    );
    assert_eq!(
        only_json(got),
        [
            r#"{"INT":"100","FLOAT":"0.5","BOOL":"true","STRING":"This is example","data":"100 0.5 true This is example","key1":"value1","key2":"value2"}"#
        ]
    );
}

#[test]
fn preserve_key_alone_keeps_only_the_parsed_field() {
    let got = run(
        &[
            ("key_name", "data"),
            ("parser", "dummy_test"),
            ("preserve_key", "on"),
        ],
        &[r#"{"k":"v","data":"1 2 3 four"}"#],
    );
    assert_eq!(
        only_json(got),
        [r#"{"INT":"1","FLOAT":"2","BOOL":"3","STRING":"four","data":"1 2 3 four"}"#]
    );
}

#[test]
fn parsed_time_replaces_the_record_time() {
    let got = run(
        &[("key_name", "log"), ("parser", "json_time")],
        &[
            r#"{"log":"{\"time\":\"2026-11-28T10:15:32.5+0000\",\"msg\":\"hi\"}"}"#,
            // No time key: the record keeps its time.
            r#"{"log":"{\"msg\":\"no time\"}"}"#,
            // A time that does not parse: the field stays, the record keeps its time.
            r#"{"log":"{\"time\":\"yesterday\",\"msg\":\"bad\"}"}"#,
        ],
    );
    assert_eq!(
        got,
        [
            (
                EventTime::new(1_795_860_932, 500_000_000),
                r#"{"msg":"hi"}"#.to_string()
            ),
            (T, r#"{"msg":"no time"}"#.to_string()),
            (T, r#"{"time":"yesterday","msg":"bad"}"#.to_string()),
        ]
    );
}

#[test]
fn several_parsers_first_match_wins() {
    let got = run(
        &[
            ("key_name", "log"),
            ("parser", "json_time"),
            ("parser", "dummy_test"),
            ("parser", "kv"),
        ],
        &[
            r#"{"log":"{\"a\":1}"}"#,
            r#"{"log":"1 2 3 rest of it"}"#,
            r#"{"log":"a=b c=d"}"#,
        ],
    );
    assert_eq!(
        only_json(got),
        [
            r#"{"a":1}"#,
            r#"{"INT":"1","FLOAT":"2","BOOL":"3","STRING":"rest of it"}"#,
            r#"{"a":"b","c":"d"}"#
        ]
    );
}

#[test]
fn records_left_alone() {
    let input = [
        r#"{"other":"1 2 3 4"}"#,
        r#"{"log":42,"x":1}"#,
        r#"{"log":{"nested":"1 2 3 4"}}"#,
        r#"{"log":"nomatch"}"#,
    ];
    let f = build_with(
        &PLUGIN,
        &[
            ("key_name", "log"),
            ("parser", "dummy_test"),
            ("reserve_data", "on"),
        ],
        &service(DUMMY_TEST),
    )
    .unwrap();
    let mut st = stage(f);
    let (data, n) = events(T, &input);
    let (out, count) = st.run("t", "i", &data, n);
    assert_eq!(count, 4);
    // Unchanged records come out byte for byte as they went in.
    assert_eq!(out, data);
}

#[test]
fn invalid_utf8_values_are_parsed_without_panic() {
    let f = build_with(
        &PLUGIN,
        &[("key_name", "log"), ("parser", "kv")],
        &service(DUMMY_TEST),
    )
    .unwrap();
    let mut st = stage(f);
    let mut w = EventWriter::new();
    w.begin(T);
    rmp::encode::write_map_len(&mut w.buf, 1).unwrap();
    rmp::encode::write_str(&mut w.buf, "log").unwrap();
    rmp::encode::write_str_len(&mut w.buf, 5).unwrap();
    w.buf.extend_from_slice(b"k=\xff\xfe ");
    let (out, n) = st.run("t", "i", &w.buf, 1);
    assert_eq!(n, 1);
    // logfmt keeps the bytes; JSON output replaces them.
    assert_eq!(texts(&out), ["{\"k\":\"\\ufffd\\ufffd\"}"]);
}

#[test]
fn nest_under_and_record_accessor() {
    let got = run(
        &[
            ("key_name", "$req['line']"),
            ("parser", "dummy_test"),
            ("nest_under", "parsed"),
            ("reserve_data", "on"),
        ],
        &[r#"{"req":{"line":"1 2 3 four"},"k":"v"}"#],
    );
    // With an accessor, Fluent Bit keeps every original field under Reserve_Data.
    assert_eq!(
        only_json(got),
        [
            r#"{"parsed":{"INT":"1","FLOAT":"2","BOOL":"3","STRING":"four"},"req":{"line":"1 2 3 four"},"k":"v"}"#
        ]
    );
}

#[test]
fn unescape_key_unescapes_before_parsing() {
    let got = run(
        &[
            ("key_name", "log"),
            ("parser", "json_time"),
            ("unescape_key", "on"),
        ],
        &[r#"{"log":"{\\\"a\\\":\\\"b\\\"}"}"#],
    );
    assert_eq!(only_json(got), [r#"{"a":"b"}"#]);
}

#[test]
fn configuration_errors() {
    assert_eq!(
        errors(&PLUGIN, &[("parser", "dummy_test")], DUMMY_TEST),
        ["/etc/kb/filters.conf:1: [filter parser.0] 'key_name' is a required field"]
    );
    assert_eq!(
        errors(&PLUGIN, &[("key_name", "log")], DUMMY_TEST),
        ["/etc/kb/filters.conf:1: [filter parser.0] 'parser' is a required field"]
    );
    assert_eq!(
        errors(&PLUGIN, &[("key_name", "log"), ("parser", "nope")], DUMMY_TEST),
        ["/etc/kb/filters.conf:3: [filter parser.0] no parser named by 'parser' is defined: define them in a parsers file (-R / Parsers_File)"]
    );
    // An unknown parser next to a known one is only reported.
    let svc = service(DUMMY_TEST);
    assert!(build_with(
        &PLUGIN,
        &[("key_name", "log"), ("parser", "nope"), ("parser", "kv")],
        &svc
    )
    .is_ok());
    let w = svc.take_warnings();
    assert_eq!(
        w[0].to_string(),
        "/etc/kb/filters.conf:3: [filter parser.0] requested parser 'nope' not found"
    );
    assert_eq!(
        errors(
            &PLUGIN,
            &[
                ("key_name", "log"),
                ("parser", "kv"),
                ("reserve_data", "maybe")
            ],
            DUMMY_TEST
        )
        .len(),
        1
    );
}
