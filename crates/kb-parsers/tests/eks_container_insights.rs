//! The EKS Container Insights `parsers.conf` (fixture copied from aws-samples, see its header)
//! loads, and its regexes capture what Fluent Bit captures. The expected values are written by
//! hand from the patterns and Onigmo's semantics (the look-behind `(?<="log":")` pins the
//! start of `log`, the lazy `.*?` stops at the first `"` not preceded by a backslash, the
//! greedy `.*` before `time` backtracks to the last place a timestamp starts, the look-ahead
//! `(?=})` needs a `}` after what `.*` leaves).

use std::collections::HashMap;
use std::path::Path;

use kb_config::{load_parsers_file, Env};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_parsers::{ParseError, ParserRegistry};
use rmpv::Value;

const NOW: EventTime = EventTime {
    secs: 1_795_824_000, // 2026-11-28T00:00:00Z
    nanos: 0,
};
/// 2026-11-28T10:15:32Z
const T: u32 = 1_795_860_932;

fn registry() -> ParserRegistry {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eks-container-insights-parsers.conf");
    let mut env = Env::from_map(HashMap::new());
    let (parsers, multiline) = load_parsers_file(&path, &mut env).expect("the file loads");
    assert!(multiline.is_empty());
    let reg = ParserRegistry::from_sections(&parsers).expect("every parser is valid");
    assert!(reg.warnings.is_empty(), "{:?}", reg.warnings);
    assert_eq!(reg.len(), 4);
    reg
}

fn parse(reg: &ParserRegistry, name: &str, line: &str) -> Result<(EventTime, Value), ParseError> {
    let mut w = EventWriter::new();
    reg.get(name).unwrap().parse(line.as_bytes(), &mut w, NOW)?;
    let ev = EventReader::new(&w.buf).next().unwrap().unwrap();
    let mut rec = ev.record;
    Ok((ev.time, rmpv::decode::read_value(&mut rec).unwrap()))
}

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), Value::from(*v)))
            .collect(),
    )
}

#[test]
fn docker_json_takes_its_time_and_drops_the_key() {
    let reg = registry();
    let (t, v) = parse(
        &reg,
        "docker",
        r#"{"log":"hello\n","stream":"stdout","time":"2026-11-28T10:15:32.123456789Z"}"#,
    )
    .unwrap();
    assert_eq!(t, EventTime::new(T, 123_456_789));
    assert_eq!(v, map(&[("log", "hello\n"), ("stream", "stdout")]));
}

#[test]
fn syslog_with_and_without_pid() {
    let reg = registry();
    let (t, v) = parse(
        &reg,
        "syslog",
        "Nov 28 10:15:32 ip-10-0-1-17 kubelet[3120]: I1128 10:15:32.123456 3120 kubelet.go:2426] SyncLoop: ok",
    )
    .unwrap();
    // No year in the format: the current year (from the time of reading).
    assert_eq!(t, EventTime::new(T, 0));
    assert_eq!(
        v,
        map(&[
            ("host", "ip-10-0-1-17"),
            ("ident", "kubelet"),
            ("pid", "3120"),
            (
                "message",
                "I1128 10:15:32.123456 3120 kubelet.go:2426] SyncLoop: ok"
            ),
        ])
    );
    // `{1,2}` takes the two spaces syslog puts before a one-digit day; no pid: the optional
    // group does not take part and is left out.
    let (t, v) = parse(
        &reg,
        "syslog",
        "Nov  2 10:15:32 ip-10-0-1-17 kernel: [    0.000000] Linux version 6.1",
    )
    .unwrap();
    assert_eq!(t, EventTime::new(T - 26 * 86_400, 0));
    assert_eq!(
        v,
        map(&[
            ("host", "ip-10-0-1-17"),
            ("ident", "kernel"),
            ("message", "[    0.000000] Linux version 6.1"),
        ])
    );
}

#[test]
fn container_firstline_captures_log_stream_and_time() {
    let reg = registry();
    // The raw Docker JSON line: `\n` is two characters; `\"` inside the log is skipped by
    // `(?<!\\)"`.
    let line = r#"{"log":"2026-11-28 10:15:32 ERROR say \"hi\" failed\n","stream":"stderr","time":"2026-11-28T10:15:32.123456789Z"}"#;
    let (t, v) = parse(&reg, "container_firstline", line).unwrap();
    assert_eq!(t, EventTime::new(T, 123_456_789));
    assert_eq!(
        v,
        map(&[
            ("log", r#"2026-11-28 10:15:32 ERROR say \"hi\" failed\n"#),
            ("stream", "stderr"),
        ])
    );
    // A timestamp inside the log does not become `time`: the greedy `.*` before it keeps the
    // last one, the record's.
    let line = r#"{"log":"at 2020-01-01T00:00:00.5Z it broke\n","stream":"stdout","time":"2026-11-28T10:15:32.5Z"}"#;
    let (t, v) = parse(&reg, "container_firstline", line).unwrap();
    assert_eq!(t, EventTime::new(T, 500_000_000));
    assert_eq!(
        v,
        map(&[
            ("log", r#"at 2020-01-01T00:00:00.5Z it broke\n"#),
            ("stream", "stdout")
        ])
    );
}

#[test]
fn container_firstline_continuations() {
    let reg = registry();
    // Leading spaces: `\S` fails at the only place the look-behind allows: no match.
    let spaces = r#"{"log":"    at com.example.Foo.bar(Foo.java:10)\n","stream":"stderr","time":"2026-11-28T10:15:32.1Z"}"#;
    assert_eq!(
        parse(&reg, "container_firstline", spaces),
        Err(ParseError::NoMatch)
    );
    // `...` (a "... 3 more" line): `\S` takes a dot that `(?!\.)` refuses.
    let more = r#"{"log":"... 3 more\n","stream":"stderr","time":"2026-11-28T10:15:32.1Z"}"#;
    assert_eq!(
        parse(&reg, "container_firstline", more),
        Err(ParseError::NoMatch)
    );
    // A tab is escaped in Docker's JSON: `\S` takes the backslash of `\t`, so a tab-indented
    // frame counts as a first line (Onigmo sees the raw JSON text, as Fluent Bit gives it).
    let tab = r#"{"log":"\tat com.example.Foo.bar(Foo.java:10)\n","stream":"stderr","time":"2026-11-28T10:15:32.1Z"}"#;
    let (_, v) = parse(&reg, "container_firstline", tab).unwrap();
    assert_eq!(
        v,
        map(&[
            ("log", r#"\tat com.example.Foo.bar(Foo.java:10)\n"#),
            ("stream", "stderr"),
        ])
    );
    // Not a Docker line at all.
    assert_eq!(
        parse(&reg, "container_firstline", "plain text"),
        Err(ParseError::NoMatch)
    );
}

#[test]
fn cwagent_firstline_needs_a_date_without_fraction() {
    let reg = registry();
    let line = r#"{"log":"2026/11/28 10:15:32 I! Config has been translated into TOML\n","stream":"stderr","time":"2026-11-28T10:15:32.500000000Z"}"#;
    let (t, v) = parse(&reg, "cwagent_firstline", line).unwrap();
    assert_eq!(t, EventTime::new(T, 500_000_000));
    assert_eq!(
        v,
        map(&[
            (
                "log",
                r#"2026/11/28 10:15:32 I! Config has been translated into TOML\n"#
            ),
            ("stream", "stderr"),
        ])
    );
    // `(?!\.)` after the seconds: a date with a fraction is not a first line.
    let frac = r#"{"log":"2026-11-28T10:15:32.5Z D! tick\n","stream":"stderr","time":"2026-11-28T10:15:32.6Z"}"#;
    assert_eq!(
        parse(&reg, "cwagent_firstline", frac),
        Err(ParseError::NoMatch)
    );
    let cont = r#"{"log":"  continuation\n","stream":"stderr","time":"2026-11-28T10:15:32.6Z"}"#;
    assert_eq!(
        parse(&reg, "cwagent_firstline", cont),
        Err(ParseError::NoMatch)
    );
}
