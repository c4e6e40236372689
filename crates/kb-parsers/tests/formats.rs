//! The four parser formats on Fluent Bit's documented examples (default `parsers.conf`).

use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_parsers::{ParseError, ParserRegistry};
use rmpv::Value;
use std::collections::HashMap;
use std::path::Path;

fn registry(text: &str) -> ParserRegistry {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    ParserRegistry::from_sections(&pc.parsers).unwrap()
}

fn parse(
    reg: &ParserRegistry,
    name: &str,
    line: &str,
    now: EventTime,
) -> Result<(EventTime, Value), ParseError> {
    let mut w = EventWriter::new();
    w.begin(EventTime::new(1, 1)); // an event already there must stay intact
    w.buf.push(0x80);
    let before = w.buf.clone();
    let r = reg.get(name).unwrap().parse(line.as_bytes(), &mut w, now);
    if let Err(e) = r {
        assert_eq!(w.buf, before, "a failed parse leaves the writer as it was");
        assert_eq!(w.count, 1);
        return Err(e);
    }
    assert_eq!(w.count, 2);
    assert_eq!(&w.buf[..before.len()], &before[..]);
    let events: Vec<_> = EventReader::new(&w.buf).collect::<Result<_, _>>().unwrap();
    assert_eq!(events.len(), 2);
    let mut rec = events[1].record;
    let v = rmpv::decode::read_value(&mut rec).unwrap();
    assert!(rec.is_empty());
    Ok((events[1].time, v))
}

fn rec(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

fn s(v: &str) -> Value {
    Value::from(v)
}

const NOW: EventTime = EventTime {
    secs: 1_795_824_000, // 2026-11-28T00:00:00Z
    nanos: 5,
};

/// Extracts of Fluent Bit's conf/parsers.conf.
const DEFAULT_PARSERS: &str = r#"
[PARSER]
    Name   apache2
    Format regex
    Regex  ^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>.*)")?$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z

[PARSER]
    Name   nginx
    Format regex
    Regex ^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z

[PARSER]
    Name         docker
    Format       json
    Time_Key     time
    Time_Format  %Y-%m-%dT%H:%M:%S.%L
    Time_Keep    On
    # Command      |     Decoder   | Field | Optional Action
    Decode_Field_As   escaped_utf8   log        do_next
    Decode_Field_As   escaped        log

[PARSER]
    Name        syslog-rfc5424
    Format      regex
    Regex       ^\<(?<pri>[0-9]{1,5})\>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[-0-9]+) (?<msgid>[^ ]+) (?<extradata>(\[(.*)\]|-)) (?<message>.+)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
    Time_Keep   On

[PARSER]
    Name        syslog-rfc3164
    Format      regex
    Regex       /^\<(?<pri>[0-9]+)\>(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\/\.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$/
    Time_Key    time
    Time_Format %b %d %H:%M:%S
    Time_Keep   On

[PARSER]
    Name        cri
    Format      regex
    Regex       ^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>[^ ]*) (?<message>.*)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z

[PARSER]
    Name        logfmt
    Format      logfmt

[PARSER]
    Name        logfmt_strict
    Format      logfmt
    Logfmt_No_Bare_Keys true

[PARSER]
    Name        logfmt_time
    Format      logfmt
    Time_Key    ts
    Time_Format %Y-%m-%dT%H:%M:%SZ

[PARSER]
    Name        ltsv
    Format      ltsv
    Time_Key    time
    Time_Format [%d/%b/%Y:%H:%M:%S %z]
    Types       status:integer size:integer

[PARSER]
    Name        json
    Format      json

[PARSER]
    Name        typed
    Format      regex
    Regex       ^(?<i>\S*) (?<f>\S*) (?<h>\S*) (?<b>\S*) (?<s>\S*)(?: (?<o>.*))?$
    Types       i:integer f:float h:hex b:bool s:string
"#;

#[test]
fn warnings_for_ignored_keys() {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(DEFAULT_PARSERS, Path::new("parsers.conf"), &mut env).unwrap();
    let reg = ParserRegistry::from_sections(&pc.parsers).unwrap();
    assert_eq!(reg.len(), 12);
    assert_eq!(reg.warnings.len(), 2);
    assert_eq!(
        reg.warnings[0].to_string(),
        "parsers.conf:23: parser 'docker': 'decode_field_as' is not supported, ignored"
    );
    assert!(reg.get("nope").is_none());
}

#[test]
fn apache2() {
    let reg = registry(DEFAULT_PARSERS);
    let line =
        r#"192.168.2.20 - - [29/Jul/2015:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395"#;
    let (t, v) = parse(&reg, "apache2", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_438_176_430, 0));
    assert_eq!(
        v,
        rec(&[
            ("host", s("192.168.2.20")),
            ("user", s("-")),
            ("method", s("GET")),
            ("path", s("/cgi-bin/try/")),
            ("code", s("200")),
            ("size", s("3395")),
        ])
    );
}

#[test]
fn nginx() {
    let reg = registry(DEFAULT_PARSERS);
    let line = r#"172.17.0.1 - bob [17/Dec/2020:11:06:12 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/7.64.0""#;
    let (t, v) = parse(&reg, "nginx", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_608_203_172, 0));
    assert_eq!(
        v,
        rec(&[
            ("remote", s("172.17.0.1")),
            ("host", s("-")),
            ("user", s("bob")),
            ("method", s("GET")),
            ("path", s("/index.html")),
            ("code", s("200")),
            ("size", s("612")),
            ("referer", s("-")),
            ("agent", s("curl/7.64.0")),
        ])
    );
    assert_eq!(
        parse(&reg, "nginx", "not an access log", NOW),
        Err(ParseError::NoMatch)
    );
}

#[test]
fn docker_json_keeps_time() {
    let reg = registry(DEFAULT_PARSERS);
    let line =
        r#"{"log":"hello \"world\"\n","stream":"stdout","time":"2018-04-20T16:14:36.123456789Z"}"#;
    let (t, v) = parse(&reg, "docker", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_524_240_876, 123_456_789));
    assert_eq!(
        v,
        rec(&[
            ("log", s("hello \"world\"\n")),
            ("stream", s("stdout")),
            ("time", s("2018-04-20T16:14:36.123456789Z")),
        ])
    );
}

#[test]
fn json_values_and_errors() {
    let reg = registry(DEFAULT_PARSERS);
    let line = r#" {"a": 1, "b": -2, "c": 1.5, "d": [true, false, null], "e": {"x": "\u00e9\ud83d\ude00"}, "a": 18446744073709551615, "big": 1e400} "#;
    let (t, v) = parse(&reg, "json", line, NOW).unwrap();
    assert_eq!(t, NOW);
    assert_eq!(
        v,
        rec(&[
            ("a", Value::from(1)),
            ("b", Value::from(-2)),
            ("c", Value::from(1.5)),
            (
                "d",
                Value::Array(vec![Value::from(true), Value::from(false), Value::Nil])
            ),
            ("e", rec(&[("x", s("é😀"))])),
            ("a", Value::from(u64::MAX)),
            ("big", Value::from(f64::INFINITY)),
        ])
    );
    // Long strings and many keys take the wider headers.
    let long = "x".repeat(70_000);
    let many: Vec<String> = (0..20).map(|i| format!("\"k{i}\":\"{long}\"")).collect();
    let line = format!("{{{}}}", many.join(","));
    let (_, v) = parse(&reg, "json", &line, NOW).unwrap();
    let m = v.as_map().unwrap();
    assert_eq!(m.len(), 20);
    assert_eq!(m[19].0, s("k19"));
    assert_eq!(m[19].1.as_str().unwrap().len(), 70_000);

    assert_eq!(
        parse(&reg, "json", "[1,2]", NOW),
        Err(ParseError::NotAnObject)
    );
    assert_eq!(
        parse(&reg, "json", "\"x\"", NOW),
        Err(ParseError::NotAnObject)
    );
    assert!(matches!(
        parse(&reg, "json", "{\"a\":1}{}", NOW),
        Err(ParseError::Json(7))
    ));
    assert!(matches!(
        parse(&reg, "json", "{\"a\":", NOW),
        Err(ParseError::Json(_))
    ));
    assert!(matches!(
        parse(&reg, "json", "plain text", NOW),
        Err(ParseError::Json(0))
    ));
    let deep = "[".repeat(10_000);
    assert!(matches!(
        parse(&reg, "json", &format!("{{\"a\":{deep}"), NOW),
        Err(ParseError::Json(_))
    ));
}

#[test]
fn json_time_removed_without_time_keep_and_kept_when_invalid() {
    let reg = registry(
        r#"
[PARSER]
    Name        j
    Format      json
    Time_Key    ts
    Time_Format %s
"#,
    );
    let line = r#"{"a":"1","ts":"1700000000","b":2}"#;
    let (t, v) = parse(&reg, "j", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_700_000_000, 0));
    assert_eq!(v, rec(&[("a", s("1")), ("b", Value::from(2))]));
    // 16 keys before removal: the header shrinks from map16 to fixmap.
    let keys: Vec<String> = (0..15).map(|i| format!("\"k{i}\":{i}")).collect();
    let line = format!(r#"{{{},"ts":"1700000001"}}"#, keys.join(","));
    let (t, v) = parse(&reg, "j", &line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_700_000_001, 0));
    assert_eq!(v.as_map().unwrap().len(), 15);
    // Invalid time: Fluent Bit keeps the field and the current time.
    let (t, v) = parse(&reg, "j", r#"{"ts":"soon","a":1}"#, NOW).unwrap();
    assert_eq!(t, NOW);
    assert_eq!(v, rec(&[("ts", s("soon")), ("a", Value::from(1))]));
    // Numbers are not read as times.
    let (t, v) = parse(&reg, "j", r#"{"ts":5}"#, NOW).unwrap();
    assert_eq!(t, NOW);
    assert_eq!(v, rec(&[("ts", Value::from(5))]));
}

#[test]
fn syslog_rfc5424() {
    let reg = registry(DEFAULT_PARSERS);
    let line = r#"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su 1234 ID47 [exampleSDID@32473 iut="3"] 'su root' failed for lonvick"#;
    let (t, v) = parse(&reg, "syslog-rfc5424", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_065_910_455, 3_000_000));
    assert_eq!(
        v,
        rec(&[
            ("pri", s("34")),
            ("time", s("2003-10-11T22:14:15.003Z")),
            ("host", s("mymachine.example.com")),
            ("ident", s("su")),
            ("pid", s("1234")),
            ("msgid", s("ID47")),
            ("extradata", s(r#"[exampleSDID@32473 iut="3"]"#)),
            ("message", s("'su root' failed for lonvick")),
        ])
    );
    let line = "<165>1 2003-10-11T22:14:15.000003-02:00 host app - - - hi";
    let (t, v) = parse(&reg, "syslog-rfc5424", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_065_910_455 + 7200, 3_000));
    assert_eq!(v.as_map().unwrap()[4], (s("pid"), s("-")));
}

#[test]
fn syslog_rfc3164_without_year_takes_the_current_year() {
    let reg = registry(DEFAULT_PARSERS);
    let line = "<13>Feb  5 14:03:09 myhost sshd[42]: Accepted publickey";
    let (t, v) = parse(&reg, "syslog-rfc3164", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_770_300_189, 0)); // 2026-02-05T14:03:09Z
    assert_eq!(
        v,
        rec(&[
            ("pri", s("13")),
            ("time", s("Feb  5 14:03:09")),
            ("host", s("myhost")),
            ("ident", s("sshd")),
            ("pid", s("42")),
            ("message", s("Accepted publickey")),
        ])
    );
}

#[test]
fn cri_removes_time_and_regex_drops_bad_time() {
    let reg = registry(DEFAULT_PARSERS);
    let line = "2003-10-11T22:14:15.5+02:00 stdout F hello world";
    let (t, v) = parse(&reg, "cri", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_065_903_255, 500_000_000));
    assert_eq!(
        v,
        rec(&[
            ("stream", s("stdout")),
            ("logtag", s("F")),
            ("message", s("hello world")),
        ])
    );
    // An unparsable time: the field is dropped, the current time kept (Fluent Bit).
    let (t, v) = parse(&reg, "cri", "yesterday stderr P x", NOW).unwrap();
    assert_eq!(t, NOW);
    assert_eq!(
        v,
        rec(&[
            ("stream", s("stderr")),
            ("logtag", s("P")),
            ("message", s("x"))
        ])
    );
}

#[test]
fn regex_empty_values() {
    let text = r#"
[PARSER]
    Name   skip
    Format regex
    Regex  ^(?<a>[^,]*),(?<b>[^,]*)(?:,(?<c>.*))?$

[PARSER]
    Name   keep
    Format regex
    Regex  ^(?<a>[^,]*),(?<b>[^,]*)(?:,(?<c>.*))?$
    Skip_Empty_Values off
"#;
    let reg = registry(text);
    let (_, v) = parse(&reg, "skip", "x,", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("x"))]));
    // `c` did not take part: Fluent Bit sees an empty value, kept as "" when empty values
    // are not skipped.
    let (_, v) = parse(&reg, "keep", "x,", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("x")), ("b", s("")), ("c", s(""))]));
    let (_, v) = parse(&reg, "keep", ",,", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("")), ("b", s("")), ("c", s(""))]));
}

#[test]
fn logfmt() {
    let reg = registry(DEFAULT_PARSERS);
    let line = r#"key=value key2="quoted \"x\"" flag empty= quoted="" u="\u00e9\t" =junk k3=v3"#;
    let (t, v) = parse(&reg, "logfmt", line, NOW).unwrap();
    assert_eq!(t, NOW);
    assert_eq!(
        v,
        rec(&[
            ("key", s("value")),
            ("key2", s("quoted \"x\"")),
            ("flag", Value::from(true)),
            ("empty", Value::from(true)),
            ("quoted", s("")),
            ("u", s("é\t")),
            ("junk", Value::from(true)),
            ("k3", s("v3")),
        ])
    );
    // The documented example.
    let (_, v) = parse(&reg, "logfmt", "key1=val1 key2=val2 key3", NOW).unwrap();
    assert_eq!(
        v,
        rec(&[
            ("key1", s("val1")),
            ("key2", s("val2")),
            ("key3", Value::from(true))
        ])
    );
    // Reading stops at a line break right after a pair.
    let (_, v) = parse(&reg, "logfmt", "a=1\nb=2", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("1"))]));
    // An unterminated quote takes the rest of the line.
    let (_, v) = parse(&reg, "logfmt", r#"a="open \"#, NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("open \\"))]));
    assert_eq!(
        parse(&reg, "logfmt", " = \"\" ", NOW),
        Err(ParseError::Empty)
    );
    assert_eq!(
        parse(&reg, "logfmt_strict", "key1=val1 key3", NOW),
        Err(ParseError::BareKey)
    );
    let (_, v) = parse(&reg, "logfmt_strict", "key1=val1 key3=", NOW).unwrap();
    assert_eq!(v, rec(&[("key1", s("val1")), ("key3", Value::from(true))]));
}

#[test]
fn logfmt_time() {
    let reg = registry(DEFAULT_PARSERS);
    let (t, v) = parse(&reg, "logfmt_time", "ts=2003-10-11T22:14:15Z msg=hi", NOW).unwrap();
    assert_eq!(t, EventTime::new(1_065_910_455, 0));
    assert_eq!(v, rec(&[("msg", s("hi"))]));
    // Fluent Bit rejects a logfmt line whose time does not parse.
    assert!(matches!(
        parse(&reg, "logfmt_time", "ts=never msg=hi", NOW),
        Err(ParseError::Time { .. })
    ));
}

#[test]
fn ltsv() {
    let reg = registry(DEFAULT_PARSERS);
    let line = "host:127.0.0.1\tident:-\ttime:[11/Oct/2003:22:14:15 +0000]\treq:GET / HTTP/1.1\tstatus:200\tsize:777\tempty:\t:nolabel\tua:curl";
    let (t, v) = parse(&reg, "ltsv", line, NOW).unwrap();
    assert_eq!(t, EventTime::new(1_065_910_455, 0));
    assert_eq!(
        v,
        rec(&[
            ("host", s("127.0.0.1")),
            ("ident", s("-")),
            ("req", s("GET / HTTP/1.1")),
            ("status", Value::from(200)),
            ("size", Value::from(777)),
            ("empty", s("")),
            ("ua", s("curl")),
        ])
    );
    // Reading stops at a label without ':' or at a line break.
    let (_, v) = parse(&reg, "ltsv", "a:1\tb c:2", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("1"))]));
    let (_, v) = parse(&reg, "ltsv", "a:1\r\nb:2", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("1"))]));
    assert_eq!(
        parse(&reg, "ltsv", "no labels", NOW),
        Err(ParseError::Empty)
    );
    assert!(matches!(
        parse(&reg, "ltsv", "time:bad\ta:1", NOW),
        Err(ParseError::Time { .. })
    ));
}

#[test]
fn types() {
    let reg = registry(DEFAULT_PARSERS);
    let (_, v) = parse(&reg, "typed", "42 1.5e2 ff TRUE text rest", NOW).unwrap();
    assert_eq!(
        v,
        rec(&[
            ("i", Value::from(42)),
            ("f", Value::from(150.0)),
            ("h", Value::from(255u64)),
            ("b", Value::from(true)),
            ("s", s("text")),
            ("o", s("rest")),
        ])
    );
    // C conversions: leading part or zero; a bad boolean stays a string.
    let (_, v) = parse(&reg, "typed", "-7x abc 0x1G falsey 1", NOW).unwrap();
    assert_eq!(
        v,
        rec(&[
            ("i", Value::from(-7)),
            ("f", Value::from(0.0)),
            ("h", Value::from(1u64)),
            ("b", Value::from(false)),
            ("s", s("1")),
        ])
    );
    let (_, v) = parse(&reg, "typed", "x 2 z maybe s", NOW).unwrap();
    assert_eq!(v.as_map().unwrap()[0].1, Value::from(0));
    assert_eq!(v.as_map().unwrap()[2].1, Value::from(0u64));
    assert_eq!(v.as_map().unwrap()[3].1, s("maybe"));

    let reg = registry(
        "[PARSER]\n    Name t\n    Format logfmt\n    Types n:integer flag:bool q:string\n",
    );
    let (_, v) = parse(&reg, "t", r#"n=12 flag q="a\"b" other"#, NOW).unwrap();
    assert_eq!(
        v,
        rec(&[
            ("n", Value::from(12)),
            ("flag", s("")),
            ("q", s("a\"b")),
            ("other", Value::from(true)),
        ])
    );
}

#[test]
fn invalid_utf8_is_passed_through() {
    let reg = registry(DEFAULT_PARSERS);
    let mut w = EventWriter::new();
    reg.get("logfmt")
        .unwrap()
        .parse(b"k=\xff\xfe", &mut w, NOW)
        .unwrap();
    let ev = EventReader::new(&w.buf).next().unwrap().unwrap();
    assert_eq!(ev.record, b"\x81\xa1k\xa2\xff\xfe");
}

#[test]
fn regex_syntax_variants() {
    // Onigmo's Ruby syntax: `(?'name')`, `\h`, `\>` (a literal `>`), look-behind and
    // look-ahead, a literal `{`, an atomic group.
    let reg = registry(
        r#"
[PARSER]
    Name   rb
    Format regex
    Regex  (?'word'\w+)-(?<hex>\h+)(?:(?<x>x)|(?<y>y))\>$

[PARSER]
    Name   look
    Format regex
    Regex  ^{name=\"(?<name>[^"]*)\"(?=,), (?<=, )(?>(?<rest>.*))$
"#,
    );
    let (_, v) = parse(&reg, "rb", "pre abc-0fA9y>", NOW).unwrap();
    assert_eq!(
        v,
        rec(&[("word", s("abc")), ("hex", s("0fA9")), ("y", s("y"))])
    );
    assert_eq!(parse(&reg, "rb", "abc-zz", NOW), Err(ParseError::NoMatch));
    let (_, v) = parse(&reg, "look", r#"{name="web", x=1}"#, NOW).unwrap();
    assert_eq!(v, rec(&[("name", s("web")), ("rest", s("x=1}"))]));
}

#[test]
fn python_named_groups_are_refused_as_onigmo_does() {
    let mut env = Env::from_map(HashMap::new());
    let text = "[PARSER]\n    Name py\n    Format regex\n    Regex (?P<word>\\w+)\n";
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    let e = ParserRegistry::from_sections(&pc.parsers).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "parsers.conf:4: parser 'py': 'regex': invalid regex: undefined group option"
    );
}

#[test]
fn named_groups_that_did_not_take_part() {
    let reg = registry(
        r#"
[PARSER]
    Name   dup
    Format regex
    Regex  ^(?:(?<v>a+)|(?<v>b+))(?<opt>!)?$

[PARSER]
    Name   dup_keep
    Format regex
    Regex  ^(?:(?<v>a+)|(?<v>b+))(?<opt>!)?$
    Skip_Empty_Values off

[PARSER]
    Name   none
    Format regex
    Regex  ^(?<a>x)?y$
"#,
    );
    // A name given to two groups: one field per group that took part...
    let (_, v) = parse(&reg, "dup", "bb", NOW).unwrap();
    assert_eq!(v, rec(&[("v", s("bb"))]));
    // ... and, with Skip_Empty_Values off, an empty one for each group that did not.
    let (_, v) = parse(&reg, "dup_keep", "bb", NOW).unwrap();
    assert_eq!(v, rec(&[("v", s("")), ("v", s("bb")), ("opt", s(""))]));
    let (_, v) = parse(&reg, "dup_keep", "a!", NOW).unwrap();
    assert_eq!(v, rec(&[("v", s("a")), ("v", s("")), ("opt", s("!"))]));
    // A match where no named group took part is no match for Fluent Bit.
    assert_eq!(parse(&reg, "none", "y", NOW), Err(ParseError::NoMatch));
    let (_, v) = parse(&reg, "none", "xy", NOW).unwrap();
    assert_eq!(v, rec(&[("a", s("x"))]));
}
