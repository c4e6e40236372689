//! The multiline engine on the inputs and expected outputs of Fluent Bit's own tests
//! (`tests/internal/multiline.c`: docker, cri, container mix, java, python, go, a custom
//! Elasticsearch parser, endswith, issue 3817), plus flushing, streams and limits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventReader, EventTime};
use kb_parsers::multiline::{Flushed, MlParser, MlRegistry, Multiline, Status};
use kb_parsers::ParserRegistry;
use rmpv::Value;

/// One flushed event: stream, time, metadata, record.
#[derive(Debug, Clone)]
struct Out {
    stream: u64,
    time: EventTime,
    metadata: Value,
    record: Value,
}

impl Out {
    fn field(&self, key: &str) -> Option<String> {
        self.record.as_map()?.iter().find_map(|(k, v)| {
            (k.as_str() == Some(key)).then(|| match v {
                Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                other => other.to_string(),
            })
        })
    }

    fn log(&self) -> String {
        self.field("log").unwrap_or_default()
    }

    fn keys(&self) -> Vec<String> {
        self.record
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect()
    }
}

fn decode(stream: u64, ev: &[u8]) -> Out {
    let e = EventReader::new(ev).next().unwrap().unwrap();
    let (mut md, mut rec) = (e.metadata, e.record);
    Out {
        stream,
        time: e.time,
        metadata: rmpv::decode::read_value(&mut md).unwrap(),
        record: rmpv::decode::read_value(&mut rec).unwrap(),
    }
}

fn registry(text: &str) -> MlRegistry {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    let parsers = ParserRegistry::from_sections(&pc.parsers).unwrap();
    let mut warnings = Vec::new();
    MlRegistry::from_sections(&pc.multiline_parsers, &parsers, &mut warnings).unwrap()
}

fn parsers(reg: &MlRegistry, names: &[&str]) -> Vec<Arc<MlParser>> {
    names.iter().map(|n| reg.get(n).unwrap()).collect()
}

struct Run {
    ml: Multiline,
    out: Vec<Out>,
}

impl Run {
    fn new(reg: &MlRegistry, names: &[&str], key_content: Option<&str>) -> Self {
        Run {
            ml: Multiline::new(&parsers(reg, names), key_content, 2 * 1024 * 1024),
            out: Vec::new(),
        }
    }

    fn text(&mut self, stream: u64, line: &str) -> Status {
        let out = &mut self.out;
        self.ml.append_text(
            stream,
            EventTime::new(1_700_000_000, 0),
            line.as_bytes(),
            0,
            &mut |f: Flushed<'_>| out.push(decode(f.stream, f.event)),
        )
    }

    fn record(&mut self, stream: u64, time: EventTime, pairs: &[(&str, &str)]) -> Status {
        let mut map = Vec::new();
        rmp::encode::write_map_len(&mut map, pairs.len() as u32).unwrap();
        for (k, v) in pairs {
            rmp::encode::write_str(&mut map, k).unwrap();
            rmp::encode::write_str(&mut map, v).unwrap();
        }
        let out = &mut self.out;
        self.ml
            .append_record(stream, time, &[0x80], &map, &mut |f: Flushed<'_>| {
                out.push(decode(f.stream, f.event))
            })
    }

    fn flush(&mut self) {
        let out = &mut self.out;
        self.ml
            .flush_all(&mut |f: Flushed<'_>| out.push(decode(f.stream, f.event)));
    }

    fn logs(&self) -> Vec<String> {
        self.out.iter().map(Out::log).collect()
    }
}

#[test]
fn docker() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["cri", "docker"], None);
    for l in [
        r#"{"log": "aa\n", "stream": "stdout", "time": "2021-02-01T16:45:03.01231z"}"#,
        r#"{"log": "aa\n", "stream": "stderr", "time": "2021-02-01T16:45:03.01231z"}"#,
        r#"{"log": "bb", "stream": "stdout", "time": "2021-02-01T16:45:03.01232z"}"#,
        // A raw newline inside the JSON string, as Fluent Bit's test has it.
        "{\"log\": \"cc\n\", \"stream\": \"stdout\", \"time\": \"2021-02-01T16:45:03.01233z\"}",
        r#"{"log": "dd", "stream": "stderr", "time": "2021-02-01T16:45:03.01233z"}"#,
        "single line to force pending flush of the previous line",
        r#"{"log": "ee\n", "stream": "stderr", "time": "2021-02-01T16:45:03.01234z"}"#,
    ] {
        assert_eq!(r.text(1, l), Status::Ok);
    }
    assert_eq!(
        r.logs(),
        [
            "aa\n",
            "aa\n",
            "bbcc\n",
            "dd",
            "single line to force pending flush of the previous line",
            "ee\n"
        ]
    );
    // The first part's record and time; `time` is kept.
    assert_eq!(r.out[2].keys(), ["log", "stream", "time"]);
    assert_eq!(
        r.out[2].field("time").unwrap(),
        "2021-02-01T16:45:03.01232z"
    );
    assert_eq!(r.out[2].time, EventTime::new(1_612_197_903, 12_320_000));
    // A line no parser takes: `{"log": line}` (docker's key_content, no newline added).
    assert_eq!(r.out[4].keys(), ["log"]);
}

#[test]
fn cri() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["docker", "cri"], None);
    for l in [
        "2019-05-07T18:57:50.904275087+00:00 stdout P 1a. some ",
        "2019-05-07T18:57:51.904275088+00:00 stdout P multiline ",
        "2019-05-07T18:57:52.904275089+00:00 stdout F log",
        "2019-05-07T18:57:50.904275087+00:00 stderr P 1b. some ",
        "2019-05-07T18:57:51.904275088+00:00 stderr P multiline ",
        "2019-05-07T18:57:52.904275089+00:00 stderr F log",
        "2019-05-07T18:57:53.904275090+00:00 stdout P 2a. another ",
        "2019-05-07T18:57:54.904275091+00:00 stdout P multiline ",
        "2019-05-07T18:57:55.904275092+00:00 stdout F log",
        "2019-05-07T18:57:53.904275090+00:00 stderr P 2b. another ",
        "2019-05-07T18:57:54.904275091+00:00 stderr P multiline ",
        "2019-05-07T18:57:55.904275092+00:00 stderr F log",
        "2019-05-07T18:57:56.904275093+00:00 stdout F 3a. non multiline 1",
        "2019-05-07T18:57:57.904275094+00:00 stdout F 4a. non multiline 2",
        "2019-05-07T18:57:56.904275093+00:00 stderr F 3b. non multiline 1",
        "2019-05-07T18:57:57.904275094+00:00 stderr F 4b. non multiline 2",
    ] {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            "1a. some multiline log",
            "1b. some multiline log",
            "2a. another multiline log",
            "2b. another multiline log",
            "3a. non multiline 1",
            "4a. non multiline 2",
            "3b. non multiline 1",
            "4b. non multiline 2"
        ]
    );
    let first = &r.out[0];
    assert_eq!(first.keys(), ["time", "stream", "_p", "log"]);
    assert_eq!(
        first.field("time").unwrap(),
        "2019-05-07T18:57:50.904275087+00:00"
    );
    assert_eq!(first.field("_p").unwrap(), "P");
    assert_eq!(first.time, EventTime::new(1_557_255_470, 904_275_087));
}

#[test]
fn container_mix() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["docker", "cri"], None);
    for l in [
        r#"{"log": "a1\n", "stream": "stdout", "time": "2021-02-01T16:45:03.01231z"}"#,
        r#"{"log": "a2\n", "stream": "stderr", "time": "2021-02-01T16:45:03.01231z"}"#,
        r#"{"log": "bb", "stream": "stdout", "time": "2021-02-01T16:45:03.01232z"}"#,
        r#"{"log": "cc", "stream": "stdout", "time": "2021-02-01T16:45:03.01233z"}"#,
        r#"{"log": "dd", "stream": "stderr", "time": "2021-02-01T16:45:03.01232z"}"#,
        "{\"log\": \"ee\n\", \"stream\": \"stderr\", \"time\": \"2021-02-01T16:45:03.01233z\"}",
        "2019-05-07T18:57:52.904275089+00:00 stdout F single full",
        "2019-05-07T18:57:50.904275087+00:00 stdout P 1a. some ",
        "2019-05-07T18:57:51.904275088+00:00 stdout P multiline ",
        "2019-05-07T18:57:52.904275089+00:00 stdout F log",
        "2019-05-07T18:57:50.904275087+00:00 stderr P 1b. some ",
        "2019-05-07T18:57:51.904275088+00:00 stderr P multiline ",
        "2019-05-07T18:57:52.904275089+00:00 stderr F log",
        r#"{"log": "dd-out\n", "stream": "stdout", "time": "2021-02-01T16:45:03.01234z"}"#,
        r#"{"log": "dd-err\n", "stream": "stderr", "time": "2021-02-01T16:45:03.01234z"}"#,
    ] {
        r.text(1, l);
    }
    // Fluent Bit's expected list; "bbcc" is still pending (docker's stdout group) when the
    // CRI lines come, as in Fluent Bit's test, and goes out when it is flushed.
    assert_eq!(
        r.logs(),
        [
            "a1\n",
            "a2\n",
            "ddee\n",
            "single full",
            "1a. some multiline log",
            "1b. some multiline log",
            "bbccdd-out\n",
            "dd-err\n"
        ]
    );
}

/// Fluent Bit's Java test: records `{"log": line}` with `key_content log`.
#[test]
fn java_records() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["java"], Some("log"));
    let lines = [
        "Exception in thread \"main\" java.lang.IllegalStateException: ..null property\n",
        "     at com.example.myproject.Author.getBookIds(xx.java:38)\n",
        "     at com.example.myproject.Bootstrap.main(Bootstrap.java:14)\n",
        "Caused by: java.lang.NullPointerException\n",
        "     at com.example.myproject.Book.getId(Book.java:22)\n",
        "     at com.example.myproject.Author.getBookIds(Author.java:35)\n",
        "     ... 1 more\n",
        "single line\n",
    ];
    for (n, l) in lines.iter().enumerate() {
        r.record(1, EventTime::new(1_000 + n as u32, 0), &[("log", l)]);
    }
    assert_eq!(r.logs(), [lines[..7].concat(), "single line\n".to_string()]);
    // The message has the first record's time.
    assert_eq!(r.out[0].time, EventTime::new(1_000, 0));
    assert_eq!(r.out[1].time, EventTime::new(1_007, 0));
}

#[test]
fn python_text() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["python"], None);
    let lines = [
        "Traceback (most recent call last):\n",
        "  File \"/base/data/home/runtimes/python27/python27_lib/versions/third_party/webapp2-2.5.2/webapp2.py\", line 1535, in __call__\n",
        "    rv = self.handle_exception(request, response, e)\n",
        "  File \"/base/data/home/apps/s~nearfieldspy/1.378705245900539993/nearfieldspy.py\", line 17, in start\n",
        "    return get()\n",
        "  File \"/base/data/home/apps/s~nearfieldspy/1.378705245900539993/nearfieldspy.py\", line 5, in get\n",
        "    raise Exception('spam', 'eggs')\n",
        "Exception: ('spam', 'eggs')\n",
        "hello world, not multiline\n",
    ];
    for l in lines {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            lines[..8].concat(),
            "hello world, not multiline\n".to_string()
        ]
    );
}

#[test]
fn python_records_emit_the_last_line_once() {
    // Fluent Bit would emit "Exception: ..." a second time (see the engine's notes).
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["python"], Some("log"));
    for l in [
        "Traceback (most recent call last):",
        "  File \"x.py\", line 1, in <module>",
        "    f()",
        "ValueError: boom",
        "next line",
    ] {
        r.record(1, EventTime::new(5, 0), &[("log", l)]);
    }
    r.flush();
    assert_eq!(
        r.logs(),
        [
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    f()\nValueError: boom",
            "next line"
        ]
    );
}

#[test]
fn go_text() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["go"], None);
    let lines = [
        "panic: my panic\n",
        "\n",
        "goroutine 4 [running]:\n",
        "panic(0x45cb40, 0x47ad70)\n",
        "\t/usr/local/go/src/runtime/panic.go:542 +0x46c fp=0xc42003f7b8 sp=0xc42003f710 pc=0x422f7c\n",
        "main.main.func1(0xc420024120)\n",
        "\tfoo.go:6 +0x39 fp=0xc42003f7d8 sp=0xc42003f7b8 pc=0x451339\n",
        "runtime.goexit()\n",
        "\t/usr/local/go/src/runtime/asm_amd64.s:2337 +0x1 fp=0xc42003f7e0 sp=0xc42003f7d8 pc=0x44b4d1\n",
        "created by main.main\n",
        "\tfoo.go:5 +0x58\n",
        "\n",
        "goroutine 1 [chan receive]:\n",
        "runtime.gopark(0x4739b8, 0xc420024178, 0x46fcd7, 0xc, 0xc420028e17, 0x3)\n",
        "\t/usr/local/go/src/runtime/proc.go:280 +0x12c fp=0xc420053e30 sp=0xc420053e00 pc=0x42503c\n",
        "main.main()\n",
        "\tfoo.go:9 +0x6f fp=0xc420053f80 sp=0xc420053f50 pc=0x4512ef\n",
        "one more line, no multiline",
    ];
    for l in lines {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            lines[..17].concat(),
            "one more line, no multiline\n".to_string()
        ]
    );
}

const CUSTOM: &str = r#"
[MULTILINE_PARSER]
    name          elastic
    type          regex
    flush_timeout 1000
    key_content   log
    rule          "start_state"   "/^\[/"    "elastic_cont"
    rule          "elastic_cont"  "/^\s+/"   "elastic_cont"

[MULTILINE_PARSER]
    name          endswith
    type          endswith
    match_string  \
    negate        true
    flush_timeout 1000

[MULTILINE_PARSER]
    name          parser_3817
    type          regex
    key_content   log
    flush_timeout 1000
    rule          "start_state"   "/- $/"        "cont"
    rule          "cont"          "/^([1-9]).*$/" "cont"
"#;

#[test]
fn elastic_records() {
    let reg = registry(CUSTOM);
    let mut r = Run::new(&reg, &["elastic"], None);
    let lines = [
        "[some weird test] IndexNotFoundException[no such index]\n",
        "    at org.elasticsearch.cluster.metadata.IndexNameExpressionResolver....\n",
        "    at org.elasticsearch.cluster.metadata.IndexNameExpressionResolver.java:133)\n",
        "    at org.elasticsearch.action.admin.indices.delete.java:75)\n",
        "another separate log line\n",
    ];
    for l in lines {
        r.record(1, EventTime::new(7, 0), &[("log", l)]);
    }
    assert_eq!(
        r.logs(),
        [
            lines[..4].concat(),
            "another separate log line\n".to_string()
        ]
    );
}

#[test]
fn endswith_negate() {
    let reg = registry(CUSTOM);
    let mut r = Run::new(&reg, &["endswith"], None);
    for l in [
        "1a. some multiline log \\",
        "1b. some multiline log",
        "2a. another multiline log\\",
        "2b. another multiline log",
        "3a. non multiline 1",
        "4a. non multiline 2",
    ] {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            "1a. some multiline log \\\n1b. some multiline log\n",
            "2a. another multiline log\\\n2b. another multiline log\n",
            "3a. non multiline 1\n",
            "4a. non multiline 2\n"
        ]
    );
}

/// Issue 3817: CRI first, then a custom parser over its records.
#[test]
fn issue_3817_cri_then_custom() {
    let reg = registry(CUSTOM);
    let mut cri = Run::new(&reg, &["cri"], None);
    for l in [
        "2021-05-17T17:35:01.184675702Z stdout F [DEBUG] 1 start multiline - ",
        "2021-05-17T17:35:01.184747208Z stdout F 1 cont A",
        "2021-05-17T17:35:01.184675702Z stdout F [DEBUG] 2 start multiline - ",
        "2021-05-17T17:35:01.184747208Z stdout F 2 cont B",
        "another isolated line",
    ] {
        cri.text(1, l);
    }
    assert_eq!(cri.out.len(), 5);
    let mut custom = Run::new(&reg, &["parser_3817"], None);
    for o in &cri.out {
        let pairs: Vec<(String, String)> = o
            .keys()
            .into_iter()
            .map(|k| {
                let v = o.field(&k).unwrap();
                (k, v)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        custom.record(2, o.time, &pairs);
    }
    custom.flush();
    assert_eq!(
        custom.logs(),
        [
            "[DEBUG] 1 start multiline - \n1 cont A",
            "[DEBUG] 2 start multiline - \n2 cont B",
            "another isolated line"
        ]
    );
    // The first line's CRI record, its log replaced.
    assert_eq!(custom.out[0].keys(), ["time", "stream", "_p", "log"]);
}

#[test]
fn streams_are_kept_apart() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["java"], Some("log"));
    let t = EventTime::new(1, 0);
    r.record(1, t, &[("log", "java.lang.RuntimeException: a")]);
    r.record(2, t, &[("log", "java.lang.IllegalStateException: b")]);
    r.record(1, t, &[("log", "\tat A.a(A.java:1)")]);
    r.record(2, t, &[("log", "\tat B.b(B.java:2)")]);
    r.record(1, t, &[("log", "\tat A.c(A.java:3)")]);
    assert!(r.out.is_empty());
    r.record(2, t, &[("log", "done 2")]);
    r.record(1, t, &[("log", "done 1")]);
    let got: Vec<(u64, String)> = r.out.iter().map(|o| (o.stream, o.log())).collect();
    assert_eq!(
        got,
        [
            (
                2,
                "java.lang.IllegalStateException: b\n\tat B.b(B.java:2)".to_string()
            ),
            (2, "done 2".to_string()),
            (
                1,
                "java.lang.RuntimeException: a\n\tat A.a(A.java:1)\n\tat A.c(A.java:3)".to_string()
            ),
            (1, "done 1".to_string()),
        ]
    );
}

#[test]
fn idle_messages_are_flushed_and_others_kept() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["java"], Some("log"));
    let t = EventTime::new(1, 0);
    r.record(1, t, &[("log", "java.lang.RuntimeException: a")]);
    std::thread::sleep(Duration::from_millis(30));
    r.record(2, t, &[("log", "java.lang.RuntimeException: b")]);
    assert!(r.ml.oldest_pending().is_some());
    let out = &mut r.out;
    r.ml.flush_idle(
        Instant::now(),
        Duration::from_millis(20),
        &mut |f: Flushed<'_>| out.push(decode(f.stream, f.event)),
    );
    assert_eq!(r.logs(), ["java.lang.RuntimeException: a"]);
    assert!(r.ml.is_pending(2) && !r.ml.is_pending(1));
    r.flush();
    assert_eq!(r.out.len(), 2);
    assert!(r.ml.oldest_pending().is_none());
}

#[test]
fn metadata_is_merged_and_truncation_marked() {
    let reg = MlRegistry::builtin();
    let mut ml = Multiline::new(&parsers(&reg, &["java"]), Some("log"), 40);
    let mut out = Vec::new();
    let rec = |s: &str| {
        let mut m = Vec::new();
        rmp::encode::write_map_len(&mut m, 1).unwrap();
        rmp::encode::write_str(&mut m, "log").unwrap();
        rmp::encode::write_str(&mut m, s).unwrap();
        m
    };
    let md = |k: &str| {
        let mut m = Vec::new();
        rmp::encode::write_map_len(&mut m, 1).unwrap();
        rmp::encode::write_str(&mut m, k).unwrap();
        rmp::encode::write_bool(&mut m, true).unwrap();
        m
    };
    let t = EventTime::new(1, 0);
    let mut sink = |f: Flushed<'_>| out.push(decode(f.stream, f.event));
    assert_eq!(
        ml.append_record(
            1,
            t,
            &md("a"),
            &rec("java.lang.RuntimeException: x"),
            &mut sink
        ),
        Status::Ok
    );
    assert_eq!(
        ml.append_record(1, t, &md("a"), &rec("\tat A.a(A.java:1)"), &mut sink),
        Status::Truncated
    );
    ml.flush_all(&mut sink);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].log().len(), 40);
    assert_eq!(
        out[0].metadata.to_string(),
        r#"{"a": true, "multiline_truncated": true}"#
    );
}

#[test]
fn the_docs_multiline_regex_test_on_tail_lines() {
    // administration/configuring-fluent-bit/multiline-parsing.md: without key_content every
    // message (the single lines too) ends with a newline.
    let reg = registry(
        r#"
[MULTILINE_PARSER]
    name          multiline-regex-test
    type          regex
    flush_timeout 1000
    rule      "start_state"   "/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
    rule      "cont"          "/^\s+at.*/"                     "cont"
"#,
    );
    let mut r = Run::new(&reg, &["multiline-regex-test"], None);
    let lines = [
        "single line...",
        "Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting!",
        "    at com.myproject.module.MyProject.badMethod(MyProject.java:22)",
        "    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)",
        "another line...",
    ];
    for l in lines {
        r.text(1, l);
    }
    r.flush();
    assert_eq!(
        r.logs(),
        [
            "single line...\n".to_string(),
            format!("{}\n{}\n{}\n", lines[1], lines[2], lines[3]),
            "another line...\n".to_string()
        ]
    );
}

#[test]
fn ruby_text() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["ruby"], None);
    let lines = [
        "/app/config/routes.rb:6:in `/': divided by 0 (ZeroDivisionError)",
        "\tfrom /app/config/routes.rb:6:in `block in <main>'",
        "\tfrom /var/lib/gems/3.0.0/gems/actionpack-7.0.4/lib/action_dispatch/routing/route_set.rb:428:in `instance_exec'",
        "\tfrom /app/config/routes.rb:1:in `<main>'",
        "hello world, not multiline\n",
    ];
    for l in lines {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            format!("{}\n", lines[..4].join("\n")),
            "hello world, not multiline\n".to_string()
        ]
    );
}

/// Docker first: CRI lines are declined by docker and joined by cri at once.
#[test]
fn docker_then_cri_chain() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["docker", "cri"], None);
    for l in [
        "2025-09-22T19:07:06.115398289Z stdout F first message",
        "2025-09-22T19:07:06.116725604Z stdout F second message",
        "2025-09-22T19:07:08.582112316Z stdout F third message",
    ] {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        ["first message", "second message", "third message"]
    );
    r.flush();
    assert_eq!(r.out.len(), 3);
}

/// Issue 4949: python and java listed together, a Python traceback.
#[test]
fn python_and_java_together() {
    let reg = MlRegistry::builtin();
    let mut r = Run::new(&reg, &["python", "java"], None);
    let lines = [
        "Traceback (most recent call last):\n",
        "  File \"/base/webapp2.py\", line 1535, in __call__\n",
        "    rv = self.handle_exception(request, response, e)\n",
        "Exception: ('spam', 'eggs')\n",
        "hello world, not multiline\n",
    ];
    for l in lines {
        r.text(1, l);
    }
    assert_eq!(
        r.logs(),
        [
            lines[..4].concat(),
            "hello world, not multiline\n".to_string()
        ]
    );
}
