//! `tail` with `multiline.parser docker, cri` through the real engine.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{build, build_errors, mp, Rec, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::tag::TagMatcher;
use kb_inputs::tail;
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
    let p = path.to_str().unwrap().to_string();
    let mut kv = vec![("path", p.as_str()), ("read_from_head", "on")];
    kv.extend_from_slice(extra);
    let input = build(&tail::PLUGIN, &kv).expect("valid configuration");
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
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0].record,
        mp(&format!(
            r#"{{"file":"{p}","time":"2019-05-07T18:57:50.904275087+00:00","stream":"stdout","_p":"P","log":"part one and two"}}"#
        ))
    );
    assert_eq!(
        (got[0].time.secs, got[0].time.nanos),
        (1_557_255_470, 904_275_087)
    );
    assert_eq!(
        got[1].record,
        mp(&format!(
            r#"{{"file":"{p}","time":"2019-05-07T18:57:52.000000000+00:00","stream":"stderr","_p":"F","log":"single"}}"#
        ))
    );
    // Never finished: delivered after the flush timeout.
    assert_eq!(
        got[2].record,
        mp(&format!(
            r#"{{"file":"{p}","time":"2019-05-07T18:57:53.000000000+00:00","stream":"stdout","_p":"P","log":"dangling"}}"#
        ))
    );
}

#[test]
fn unknown_multiline_parser_is_an_error() {
    let errs = build_errors(
        &tail::PLUGIN,
        &[("path", "/x"), ("multiline.parser", "java")],
    );
    assert!(errs[0].contains("'java' is not supported"), "{errs:?}");
}
