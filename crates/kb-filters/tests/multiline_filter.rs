//! The `multiline` filter through the real engine (its emitter input included), on Fluent
//! Bit's documentation example (pipeline/filters/multiline-stacktrace.md: a custom Java
//! parser and the built-in go parser), Python and Java traces, streams, timeouts, shutdown
//! and partial messages; outputs compared as the exact JSON text `json_lines` prints.

mod parse_common;

use kb_filters::multiline::PLUGIN;
use parse_common::{build_with, errors, logs, run_engine, service, Feed, Step};

/// parsers_multiline.conf of the documentation example.
const PARSERS: &str = r#"
[MULTILINE_PARSER]
  Name          multiline-regex-test
  Type          regex
  Flush_Timeout 1000
  Rule      "start_state"   "/([A-Za-z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
  Rule      "cont"          "/^\s+at.*/"                     "cont"
"#;

/// test.log of the documentation example.
const TEST_LOG: &str = r#"single line...
Dec 14 06:41:08 Exception in thread "main" java.lang.RuntimeException: Something has gone wrong, aborting!
    at com.myproject.module.MyProject.badMethod(MyProject.java:22)
    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)
    at com.myproject.module.MyProject.anotherMethod(MyProject.java:14)
    at com.myproject.module.MyProject.someMethod(MyProject.java:10)
    at com.myproject.module.MyProject.main(MyProject.java:6)
another line...
panic: my panic

goroutine 4 [running]:
panic(0x45cb40, 0x47ad70)
  /usr/local/go/src/runtime/panic.go:542 +0x46c fp=0xc42003f7b8 sp=0xc42003f710 pc=0x422f7c
main.main.func1(0xc420024120)
  foo.go:6 +0x39 fp=0xc42003f7d8 sp=0xc42003f7b8 pc=0x451339
runtime.goexit()
  /usr/local/go/src/runtime/asm_amd64.s:2337 +0x1 fp=0xc42003f7e0 sp=0xc42003f7d8 pc=0x44b4d1
created by main.main
  foo.go:5 +0x58

goroutine 1 [chan receive]:
runtime.gopark(0x4739b8, 0xc420024178, 0x46fcd7, 0xc, 0xc420028e17, 0x3)
  /usr/local/go/src/runtime/proc.go:280 +0x12c fp=0xc420053e30 sp=0xc420053e00 pc=0x42503c
runtime.goparkunlock(0xc420024178, 0x46fcd7, 0xc, 0x1000f010040c217, 0x3)
  /usr/local/go/src/runtime/proc.go:286 +0x5e fp=0xc420053e70 sp=0xc420053e30 pc=0x42512e
runtime.chanrecv(0xc420024120, 0x0, 0xc420053f01, 0x4512d8)
  /usr/local/go/src/runtime/chan.go:506 +0x304 fp=0xc420053f20 sp=0xc420053e70 pc=0x4046b4
runtime.chanrecv1(0xc420024120, 0x0)
  /usr/local/go/src/runtime/chan.go:388 +0x2b fp=0xc420053f50 sp=0xc420053f20 pc=0x40439b
main.main()
  foo.go:9 +0x6f fp=0xc420053f80 sp=0xc420053f50 pc=0x4512ef
runtime.main()
  /usr/local/go/src/runtime/proc.go:185 +0x20d fp=0xc420053fe0 sp=0xc420053f80 pc=0x424bad
runtime.goexit()
  /usr/local/go/src/runtime/asm_amd64.s:2337 +0x1 fp=0xc420053fe8 sp=0xc420053fe0 pc=0x44b4d1

goroutine 2 [force gc (idle)]:
runtime.gopark(0x4739b8, 0x4ad720, 0x47001e, 0xf, 0x14, 0x1)
  /usr/local/go/src/runtime/proc.go:280 +0x12c fp=0xc42003e768 sp=0xc42003e738 pc=0x42503c
runtime.goparkunlock(0x4ad720, 0x47001e, 0xf, 0xc420000114, 0x1)
  /usr/local/go/src/runtime/proc.go:286 +0x5e fp=0xc42003e7a8 sp=0xc42003e768 pc=0x42512e
runtime.forcegchelper()
  /usr/local/go/src/runtime/proc.go:238 +0xcc fp=0xc42003e7e0 sp=0xc42003e7a8 pc=0x424e5c
runtime.goexit()
  /usr/local/go/src/runtime/asm_amd64.s:2337 +0x1 fp=0xc42003e7e8 sp=0xc42003e7e0 pc=0x44b4d1
created by runtime.init.4
  /usr/local/go/src/runtime/proc.go:227 +0x35

goroutine 3 [GC sweep wait]:
runtime.gopark(0x4739b8, 0x4ad7e0, 0x46fdd2, 0xd, 0x419914, 0x1)
  /usr/local/go/src/runtime/proc.go:280 +0x12c fp=0xc42003ef60 sp=0xc42003ef30 pc=0x42503c
runtime.goparkunlock(0x4ad7e0, 0x46fdd2, 0xd, 0x14, 0x1)
  /usr/local/go/src/runtime/proc.go:286 +0x5e fp=0xc42003efa0 sp=0xc42003ef60 pc=0x42512e
runtime.bgsweep(0xc42001e150)
  /usr/local/go/src/runtime/mgcsweep.go:52 +0xa3 fp=0xc42003efd8 sp=0xc42003efa0 pc=0x419973
runtime.goexit()
  /usr/local/go/src/runtime/asm_amd64.s:2337 +0x1 fp=0xc42003efe0 sp=0xc42003efd8 pc=0x44b4d1
created by runtime.gcenable
  /usr/local/go/src/runtime/mgc.go:216 +0x58
one more line, no multiline"#;

fn filter(kv: &[(&str, &str)]) -> Box<dyn kb_core::filter::Filter> {
    build_with(&PLUGIN, kv, &service(PARSERS)).expect("valid filter")
}

fn json_of(texts: &[(String, kb_core::event::EventTime, String)]) -> Vec<String> {
    texts.iter().map(|(_, _, j)| j.clone()).collect()
}

fn one_log(text: &str) -> String {
    serde_json::json!({ "log": text }).to_string()
}

#[tokio::test]
async fn documentation_example_go_and_custom_parser() {
    let lines: Vec<&str> = TEST_LOG.lines().collect();
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "go, multiline-regex-test"),
    ]);
    let feed = Feed(vec![Step {
        wait_ms: 0,
        tag: "tail.0",
        records: logs(&lines),
    }]);
    let (got, report) = run_engine(f, feed, 5, 8000).await;
    assert_eq!(report.lost_records, 0);
    let go_end = lines.len() - 1;
    assert_eq!(
        json_of(&got),
        [
            one_log("single line..."),
            one_log(&lines[1..7].join("\n")),
            one_log("another line..."),
            one_log(&lines[8..go_end].join("\n")),
            one_log("one more line, no multiline"),
        ]
    );
    // Every record keeps its tag.
    assert!(got.iter().all(|(tag, _, _)| tag == "tail.0"));
}

#[tokio::test]
async fn python_and_java_traces_with_other_fields() {
    let rec = |log: &str| serde_json::json!({ "stream": "stderr", "log": log }).to_string();
    let records = vec![
        rec("Traceback (most recent call last):"),
        rec("  File \"/app/x.py\", line 3, in <module>"),
        rec("    main()"),
        rec("ZeroDivisionError: division by zero"),
        rec("java.lang.IllegalStateException: bad state"),
        rec("\tat com.example.A.run(A.java:10)"),
        rec("\tat com.example.Main.main(Main.java:3)"),
        rec("done"),
    ];
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "python"),
        ("multiline.parser", "java"),
    ]);
    let feed = Feed(vec![Step {
        wait_ms: 0,
        tag: "app",
        records,
    }]);
    let (got, _) = run_engine(f, feed, 3, 8000).await;
    // The first record's fields, its log holding the joined lines.
    assert_eq!(
        json_of(&got),
        [
            rec("Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in <module>\n    main()\nZeroDivisionError: division by zero"),
            rec("java.lang.IllegalStateException: bad state\n\tat com.example.A.run(A.java:10)\n\tat com.example.Main.main(Main.java:3)"),
            rec("done"),
        ]
    );
}

#[tokio::test]
async fn two_tags_interleaved_stay_apart() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
    ]);
    let step = |tag, log: &str| Step {
        wait_ms: 5,
        tag,
        records: vec![one_log(log)],
    };
    let feed = Feed(vec![
        step("a", "java.lang.RuntimeException: a"),
        step("b", "java.lang.RuntimeException: b"),
        step("a", "\tat A.a(A.java:1)"),
        step("b", "\tat B.b(B.java:1)"),
        step("a", "end a"),
        step("b", "end b"),
    ]);
    let (got, _) = run_engine(f, feed, 4, 8000).await;
    // A joined message has the time of its first record (the feed's step 0 and 1).
    let first_a = got.iter().find(|(t, _, _)| t == "a").unwrap();
    assert_eq!(first_a.1, kb_core::event::EventTime::new(1_700_000_000, 0));
    let first_b = got.iter().find(|(t, _, _)| t == "b").unwrap();
    assert_eq!(first_b.1, kb_core::event::EventTime::new(1_700_000_001, 0));
    let mut by_tag: Vec<(String, String)> = got.into_iter().map(|(t, _, j)| (t, j)).collect();
    by_tag.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        by_tag,
        [
            (
                "a".to_string(),
                one_log("java.lang.RuntimeException: a\n\tat A.a(A.java:1)")
            ),
            ("a".to_string(), one_log("end a")),
            (
                "b".to_string(),
                one_log("java.lang.RuntimeException: b\n\tat B.b(B.java:1)")
            ),
            ("b".to_string(), one_log("end b")),
        ]
    );
}

#[tokio::test]
async fn a_pending_message_is_flushed_after_flush_ms() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
        ("flush_ms", "500"),
    ]);
    let feed = Feed(vec![Step {
        wait_ms: 0,
        tag: "app",
        records: logs(&["java.lang.RuntimeException: x", "\tat A.a(A.java:1)"]),
    }]);
    let started = std::time::Instant::now();
    let (got, _) = run_engine(f, feed, 1, 8000).await;
    let waited = started.elapsed();
    assert_eq!(
        json_of(&got),
        [one_log("java.lang.RuntimeException: x\n\tat A.a(A.java:1)")]
    );
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn pending_messages_are_flushed_at_shutdown() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
        ("flush_ms", "60000"),
    ]);
    let feed = Feed(vec![
        Step {
            wait_ms: 0,
            tag: "a",
            records: logs(&["java.lang.RuntimeException: x", "\tat A.a(A.java:1)"]),
        },
        Step {
            wait_ms: 0,
            tag: "b",
            records: logs(&["java.lang.Error: y"]),
        },
    ]);
    // Stop well before flush_ms: nothing may be lost.
    let (got, report) = run_engine(f, feed, 99, 600).await;
    assert_eq!(report.lost_records, 0);
    let mut got: Vec<(String, String)> = got.into_iter().map(|(t, _, j)| (t, j)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "a".to_string(),
                one_log("java.lang.RuntimeException: x\n\tat A.a(A.java:1)")
            ),
            ("b".to_string(), one_log("java.lang.Error: y")),
        ]
    );
}

#[tokio::test]
async fn records_without_the_content_go_on_unchanged() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
    ]);
    let feed = Feed(vec![Step {
        wait_ms: 0,
        tag: "app",
        records: vec![
            r#"{"message":"no log key"}"#.to_string(),
            r#"{"log":42}"#.to_string(),
            r#"{"log":"plain","n":1}"#.to_string(),
        ],
    }]);
    let (got, _) = run_engine(f, feed, 3, 8000).await;
    assert_eq!(
        json_of(&got),
        [
            r#"{"message":"no log key"}"#,
            r#"{"log":42}"#,
            r#"{"log":"plain","n":1}"#
        ]
    );
}

/// An input whose records carry invalid UTF-8 in `log`.
struct RawFeed;

#[async_trait::async_trait]
impl kb_core::plugin::Input for RawFeed {
    async fn run(
        self: Box<Self>,
        ctx: kb_core::input::InputContext,
    ) -> Result<(), kb_core::plugin::PluginError> {
        let mut w = kb_core::event::EventWriter::new();
        for log in [
            &b"java.lang.Error: bad \xff byte"[..],
            b"\tat A.a(A.java:1) \xfe",
            b"end",
        ] {
            w.begin(kb_core::event::EventTime::new(1, 0));
            rmp::encode::write_map_len(&mut w.buf, 1).unwrap();
            rmp::encode::write_str(&mut w.buf, "log").unwrap();
            rmp::encode::write_str_len(&mut w.buf, log.len() as u32).unwrap();
            w.buf.extend_from_slice(log);
        }
        ctx.append_tagged("raw", &w.buf, w.count);
        ctx.stopped().await;
        Ok(())
    }
}

#[tokio::test]
async fn invalid_utf8_content_is_joined() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
    ]);
    let rec = parse_common::Recorder::default();
    let mut engine = kb_core::engine::Engine::new(kb_core::engine::EngineConfig {
        flush: std::time::Duration::from_millis(50),
        ..Default::default()
    });
    engine.add_input(kb_core::engine::InputInstance {
        plugin_name: "raw".into(),
        name: "raw.0".into(),
        tag: "raw".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(RawFeed),
    });
    engine.add_filter(kb_core::filter::FilterInstance {
        name: "multiline.0".into(),
        matcher: kb_core::tag::TagMatcher::new(Some("*"), None).unwrap(),
        plugin: f,
    });
    engine.add_output(kb_core::engine::OutputInstance {
        plugin_name: "recorder".into(),
        name: "recorder.0".into(),
        matcher: kb_core::tag::TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: kb_config::values::RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: std::sync::Arc::new(rec.clone()),
    });
    let watch = rec.clone();
    engine
        .run(async move {
            for _ in 0..300 {
                if watch.len() >= 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
    // The bytes are joined as they are; JSON shows them as U+FFFD.
    assert_eq!(
        json_of(&rec.get()),
        [
            r#"{"log":"java.lang.Error: bad \ufffd byte\n\tat A.a(A.java:1) \ufffd"}"#,
            r#"{"log":"end"}"#
        ]
    );
}

#[tokio::test]
async fn partial_messages_are_joined() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("mode", "partial_message"),
    ]);
    let part = |log: &str, ordinal: u32, last: bool| {
        serde_json::json!({
            "source": "stdout",
            "log": log,
            "partial_message": "true",
            "partial_id": "dc37eb08",
            "partial_ordinal": ordinal.to_string(),
            "partial_last": if last { "true" } else { "false" },
            "container_name": "/hopeful_taussig",
        })
        .to_string()
    };
    let feed = Feed(vec![Step {
        wait_ms: 0,
        tag: "docker",
        records: vec![
            part("first, ", 1, false),
            r#"{"log":"not partial","source":"stderr"}"#.to_string(),
            part("second, ", 2, false),
            part("third", 3, true),
        ],
    }]);
    let (got, _) = run_engine(f, feed, 2, 8000).await;
    assert_eq!(
        json_of(&got),
        [
            r#"{"log":"not partial","source":"stderr"}"#,
            r#"{"source":"stdout","container_name":"/hopeful_taussig","log":"first, second, third"}"#,
        ]
    );
}

#[test]
fn configuration_errors() {
    assert_eq!(
        errors(&PLUGIN, &[("multiline.key_content", "log")], PARSERS),
        ["/etc/kb/filters.conf:1: [filter multiline.0] the default 'mode parser' requires at least one 'multiline.parser'"]
    );
    assert_eq!(
        errors(&PLUGIN, &[("multiline.parser", "java, nope")], PARSERS),
        ["/etc/kb/filters.conf:2: [filter multiline.0] 'multiline.parser': unknown multiline parser 'nope' (known: docker, cri, java, go, ruby, python, multiline-regex-test)"]
    );
    assert_eq!(
        errors(&PLUGIN, &[("multiline.parser", "go")], PARSERS),
        ["/etc/kb/filters.conf:2: [filter multiline.0] multiline parser 'go' has no key_content: set 'multiline.key_content' to the field holding the lines"]
    );
    assert_eq!(
        errors(&PLUGIN, &[("mode", "partial_message")], PARSERS),
        ["/etc/kb/filters.conf:1: [filter multiline.0] 'mode partial_message' requires 'multiline.key_content'"]
    );
    assert_eq!(
        errors(
            &PLUGIN,
            &[("multiline.parser", "docker"), ("flush_ms", "100")],
            PARSERS
        ),
        ["/etc/kb/filters.conf:3: [filter multiline.0] flush timeout '100' is too low (at least 500 ms)"]
    );
    assert_eq!(
        errors(
            &PLUGIN,
            &[("multiline.parser", "docker"), ("mode", "other")],
            PARSERS
        )
        .len(),
        1
    );
    // docker and cri have their key_content.
    assert!(build_with(
        &PLUGIN,
        &[("multiline.parser", "docker, cri")],
        &service(PARSERS)
    )
    .is_ok());
}

#[test]
fn the_emitter_is_named_as_in_fluent_bit() {
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
    ]);
    let spec = f.emitter().unwrap();
    assert_eq!(spec.name, "emitter_for_multiline.0");
    // Fluent Bit's sizes are decimal here: 10M is 10,000,000 bytes.
    assert_eq!(spec.mem_buf_limit, Some(10_000_000));
    assert!(!spec.filesystem);
    let f = filter(&[
        ("multiline.key_content", "log"),
        ("multiline.parser", "java"),
        ("emitter_name", "joined"),
        ("emitter_storage.type", "filesystem"),
        ("emitter_mem_buf_limit", "1M"),
    ]);
    let spec = f.emitter().unwrap();
    assert_eq!(spec.name, "joined");
    assert_eq!(spec.mem_buf_limit, Some(1_000_000));
    assert!(spec.filesystem);
}
