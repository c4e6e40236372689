//! `tail` with `multiline.parser` (built-in and `[MULTILINE_PARSER]` parsers) and
//! `Docker_Mode` through the real engine.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{build, build_errors, mp, props, Rec, Recorder};
use kb_config::values::RetryLimit;
use kb_config::{parse_classic_str, Env};
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::registry::ServiceContext;
use kb_core::tag::TagMatcher;
use kb_inputs::tail;
use kb_parsers::Parsers;
use std::collections::HashMap;
use tokio::time::Instant;

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Run a `tail` input over `path` until `want` records arrived (at most 15 s).
async fn records(path: &Path, extra: &[(&str, &str)], want: usize) -> Vec<Rec> {
    records_with(path, extra, "", want).await
}

/// The service context of a parsers file's text.
fn service(parsers: &str) -> ServiceContext {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(parsers, Path::new("parsers.conf"), &mut env).unwrap();
    let (p, _) = Parsers::from_sections(&pc.parsers, &pc.multiline_parsers).unwrap();
    ServiceContext {
        parsers: Arc::new(p),
        ..ServiceContext::default()
    }
}

/// [`records`] with the parsers defined by `parsers` (classic text).
async fn records_with(path: &Path, extra: &[(&str, &str)], parsers: &str, want: usize) -> Vec<Rec> {
    let p = path.to_str().unwrap().to_string();
    let mut kv = vec![("path", p.as_str()), ("read_from_head", "on")];
    kv.extend_from_slice(extra);
    let input = if parsers.is_empty() {
        build(&tail::PLUGIN, &kv).expect("valid configuration")
    } else {
        let props = props(&tail::PLUGIN, &kv).unwrap();
        (tail::PLUGIN.build)(&props, &service(parsers)).expect("valid configuration")
    };
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "tail".into(),
        name: "tail.0".into(),
        tag: "test".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: input,
    });
    engine.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "recorder.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(rec.clone()),
    });
    let watch = rec.clone();
    let report = engine
        .run(async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            while watch.events().len() < want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    rec.events()
}

#[tokio::test]
async fn docker_parts_are_joined_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &log,
        concat!(
            r#"{"log":"one, ","stream":"stdout","time":"2021-02-01T01:40:03.53412Z"}"#,
            "\n",
            r#"{"log":"err\n","stream":"stderr","time":"2021-02-01T01:40:03.6Z"}"#,
            "\n",
            r#"{"log":"two\n","stream":"stdout","time":"2021-02-01T01:40:04.7Z"}"#,
            "\n",
            "not json\n",
        ),
    );
    let got = records(&log, &[("multiline.parser", "docker")], 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0].record,
        mp(r#"{"log":"err\n","stream":"stderr","time":"2021-02-01T01:40:03.6Z"}"#)
    );
    assert_eq!(
        got[1].record,
        mp(r#"{"log":"one, two\n","stream":"stdout","time":"2021-02-01T01:40:03.53412Z"}"#)
    );
    assert_eq!(
        (got[1].time.secs, got[1].time.nanos),
        (1_612_143_603, 534_120_000)
    );
    assert_eq!(got[2].record, mp(r#"{"log":"not json"}"#));
}

#[tokio::test]
async fn cri_partials_are_joined_and_open_ones_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &log,
        concat!(
            "2019-05-07T18:57:50.904275087+00:00 stdout P part one \n",
            "2019-05-07T18:57:51.000000000+00:00 stdout F and two\n",
            "2019-05-07T18:57:52.000000000+00:00 stderr F single\n",
            "2019-05-07T18:57:53.000000000+00:00 stdout P dangling\n",
        ),
    );
    let got = records(
        &log,
        &[("multiline.parser", "docker, cri"), ("path_key", "file")],
        3,
    )
    .await;
    let p = log.to_str().unwrap();
    // Path_Key comes after the record's keys, as Fluent Bit appends it.
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0].record,
        mp(&format!(
            r#"{{"time":"2019-05-07T18:57:50.904275087+00:00","stream":"stdout","_p":"P","log":"part one and two","file":"{p}"}}"#
        ))
    );
    assert_eq!(
        (got[0].time.secs, got[0].time.nanos),
        (1_557_255_470, 904_275_087)
    );
    assert_eq!(
        got[1].record,
        mp(&format!(
            r#"{{"time":"2019-05-07T18:57:52.000000000+00:00","stream":"stderr","_p":"F","log":"single","file":"{p}"}}"#
        ))
    );
    // Never finished: delivered after the flush timeout.
    assert_eq!(
        got[2].record,
        mp(&format!(
            r#"{{"time":"2019-05-07T18:57:53.000000000+00:00","stream":"stdout","_p":"P","log":"dangling","file":"{p}"}}"#
        ))
    );
}

#[test]
fn unknown_multiline_parser_is_an_error() {
    let errs = build_errors(
        &tail::PLUGIN,
        &[("path", "/x"), ("multiline.parser", "java, nope")],
    );
    assert_eq!(
        errs,
        ["/etc/kb/test.conf:3: [input tail.0] 'multiline.parser': unknown multiline parser 'nope' (known: docker, cri, java, go, ruby, python)"]
    );
}

/// The example of Fluent Bit's multiline-parsing documentation (test.log, rules
/// `start_state` / `cont`): without `key_content` every record ends with a newline.
const DOCS_PARSER: &str = r#"
[MULTILINE_PARSER]
    name          multiline-regex-test
    type          regex
    flush_timeout 1000
    rule      "start_state"   "/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
    rule      "cont"          "/^\s+at.*/"                     "cont"
"#;

const DOCS_LOG: &str = "single line...
Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting!
    at com.myproject.module.MyProject.badMethod(MyProject.java:22)
    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)
    at com.myproject.module.MyProject.anotherMethod(MyProject.java:14)
    at com.myproject.module.MyProject.someMethod(MyProject.java:10)
    at com.myproject.module.MyProject.main(MyProject.java:6)
another line...
";

#[tokio::test]
async fn user_multiline_parser_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("test.log");
    append(&log, DOCS_LOG);
    let got = records_with(
        &log,
        &[("multiline.parser", "multiline-regex-test")],
        DOCS_PARSER,
        3,
    )
    .await;
    let lines: Vec<&str> = DOCS_LOG.lines().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].record, mp(r#"{"log":"single line...\n"}"#));
    let trace = format!("{}\n", lines[1..7].join("\n"));
    assert_eq!(
        got[1].record,
        mp(&serde_json::json!({ "log": trace }).to_string())
    );
    // The last message waits for its flush timeout (1 s), then goes out.
    assert_eq!(got[2].record, mp(r#"{"log":"another line...\n"}"#));
}

#[tokio::test]
async fn builtin_java_and_python_on_raw_lines_with_offset_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let text = "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\t... 3 more\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    f()\nValueError: bad\nplain\n";
    append(&log, text);
    let got = records(
        &log,
        &[
            ("multiline.parser", "java"),
            ("multiline.parser", "python"),
            ("offset_key", "off"),
        ],
        3,
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    // As in Fluent Bit, a line another parser takes (the traceback) does not end the Java
    // message: it waits until a line no parser takes ("plain") flushes the stream, after the
    // traceback that python completed on its own.
    let py = text.find("Traceback").unwrap();
    assert_eq!(
        got[0].record,
        mp(&format!(
            r#"{{"log":"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    f()\nValueError: bad\n","off":{py}}}"#
        ))
    );
    assert_eq!(
        got[1].record,
        mp(
            r#"{"log":"Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\t... 3 more\n","off":0}"#
        )
    );
    let plain = text.find("plain").unwrap();
    assert_eq!(
        got[2].record,
        mp(&format!(r#"{{"log":"plain\n","off":{plain}}}"#))
    );
}

#[tokio::test]
async fn a_message_still_open_at_stop_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("go.log");
    append(
        &log,
        "panic: oops\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d\n",
    );
    // The go parser waits 4 s; the engine stops before: the message goes out at stop.
    let p = log.to_str().unwrap().to_string();
    let input = build(
        &tail::PLUGIN,
        &[
            ("path", p.as_str()),
            ("read_from_head", "on"),
            ("multiline.parser", "go"),
        ],
    )
    .unwrap();
    let (rec, report) =
        common::run_input(input, None, tokio::time::sleep(Duration::from_millis(700))).await;
    assert_eq!(report.lost_records, 0);
    let got = rec.events();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].record,
        mp(
            r#"{"log":"panic: oops\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d\n"}"#
        )
    );
}

const DOCKER_PARSERS: &str = r#"
[PARSER]
    Name        docker
    Format      json
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%LZ

[PARSER]
    Name        container_firstline
    Format      regex
    Regex       (?<log>(?<="log":")\S(?!\.).*?)(?<!\\)".*(?<stream>(?<="stream":").*?)".*(?<time>\d{4}-\d{1,2}-\d{1,2}T\d{2}:\d{2}:\d{2}\.\w*).*(?=})
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%LZ
"#;

#[tokio::test]
async fn docker_mode_joins_split_lines_then_parses() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &log,
        concat!(
            r#"{"log":"part one, ","stream":"stdout","time":"2026-11-28T10:15:30.1Z"}"#,
            "\n",
            r#"{"log":"part two\n","stream":"stdout","time":"2026-11-28T10:15:31.2Z"}"#,
            "\n",
            "not json\n",
            r#"{"log":"whole\n","stream":"stderr","time":"2026-11-28T10:15:32.3Z"}"#,
            "\n",
        ),
    );
    let got = records_with(
        &log,
        &[
            ("docker_mode", "on"),
            ("parser", "docker"),
            ("path_key", "file"),
        ],
        DOCKER_PARSERS,
        3,
    )
    .await;
    let p = log.to_str().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    // The last part's JSON with the joined log, through Parser docker; Path_Key after it.
    assert_eq!(
        got[0].record,
        mp(&format!(
            r#"{{"log":"part one, part two\n","stream":"stdout","file":"{p}"}}"#
        ))
    );
    assert_eq!(
        (got[0].time.secs, got[0].time.nanos),
        (1_795_860_931, 200_000_000)
    );
    // Not Docker JSON: read as usual (the parser fails, so {Key: line}).
    assert_eq!(
        got[1].record,
        mp(&format!(r#"{{"file":"{p}","log":"not json"}}"#))
    );
    assert_eq!(
        got[2].record,
        mp(&format!(
            r#"{{"log":"whole\n","stream":"stderr","file":"{p}"}}"#
        ))
    );
}

#[tokio::test]
async fn docker_mode_parser_joins_until_the_next_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &log,
        concat!(
            r#"{"log":"2026-11-28 ERROR failed\n","stream":"stderr","time":"2026-11-28T10:15:30.1Z"}"#,
            "\n",
            r#"{"log":"    at a.B.c(B.java:1)\n","stream":"stderr","time":"2026-11-28T10:15:30.2Z"}"#,
            "\n",
            r#"{"log":"... 3 more\n","stream":"stderr","time":"2026-11-28T10:15:30.3Z"}"#,
            "\n",
            r#"{"log":"2026-11-28 INFO next\n","stream":"stderr","time":"2026-11-28T10:15:31.0Z"}"#,
            "\n",
        ),
    );
    let got = records_with(
        &log,
        &[
            ("docker_mode", "on"),
            ("docker_mode_flush", "1"),
            ("docker_mode_parser", "container_firstline"),
            ("parser", "docker"),
        ],
        DOCKER_PARSERS,
        2,
    )
    .await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0].record,
        mp(
            r#"{"log":"2026-11-28 ERROR failed\n    at a.B.c(B.java:1)\n... 3 more\n","stream":"stderr"}"#
        )
    );
    // The last message waits for Docker_Mode_Flush.
    assert_eq!(
        got[1].record,
        mp(r#"{"log":"2026-11-28 INFO next\n","stream":"stderr"}"#)
    );
}

#[test]
fn docker_mode_keys_are_checked() {
    let errs = build_errors(
        &tail::PLUGIN,
        &[
            ("path", "/x"),
            ("docker_mode", "maybe"),
            ("docker_mode_parser", "nope"),
        ],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("docker_mode"), "{errs:?}");
    let errs = build_errors(
        &tail::PLUGIN,
        &[
            ("path", "/x"),
            ("docker_mode", "on"),
            ("docker_mode_parser", "nope"),
        ],
    );
    assert_eq!(
        errs,
        ["/etc/kb/test.conf:4: [input tail.0] unknown parser 'nope': define it in a parsers file (-R / Parsers_File)"]
    );
    let errs = build_errors(
        &tail::PLUGIN,
        &[("path", "/x"), ("db.journal_mode", "fast")],
    );
    assert!(errs[0].contains("db.journal_mode"), "{errs:?}");
}
