//! `tail` through the real engine over files in temporary directories.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{build, build_errors, mp, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::metrics::{self, Metrics};
use kb_core::plugin::{FlushResult, Output, OutputWorker, PluginError};
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};
use kb_inputs::tail;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running engine with one `tail` input and a recording output.
struct Running {
    rec: Recorder,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<EngineReport>,
}

impl Running {
    fn start(kv: &[(&str, &str)]) -> Self {
        Self::start_with(kv, "test", None, None)
    }

    fn start_with(
        kv: &[(&str, &str)],
        tag: &str,
        mem_buf_limit: Option<usize>,
        output: Option<Arc<dyn Output>>,
    ) -> Self {
        let input = build(&tail::PLUGIN, kv).expect("valid tail configuration");
        let rec = Recorder::default();
        let mut engine = Engine::new(EngineConfig {
            flush: Duration::from_millis(100),
            ..Default::default()
        });
        engine.add_input(InputInstance {
            plugin_name: "tail".into(),
            name: "tail.0".into(),
            tag: tag.into(),
            mem_buf_limit,
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
            plugin: output.unwrap_or_else(|| Arc::new(rec.clone())),
        });
        let metrics = engine.metrics();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("engine runs")
        });
        Running {
            rec,
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    /// The `log` values recorded so far.
    fn lines(&self) -> Vec<String> {
        self.rec
            .events()
            .iter()
            .map(|e| {
                e.record
                    .as_map()
                    .unwrap()
                    .iter()
                    .find(|(k, _)| k.as_str() == Some("log"))
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// Wait (at most 15 s) until every line of `want` has been recorded.
    async fn wait_lines(&self, want: &[&str]) {
        let lines = wait_for(|| {
            let got = self.lines();
            want.iter()
                .all(|w| got.iter().any(|g| g == w))
                .then_some(got)
        })
        .await;
        assert!(
            lines.is_some(),
            "waiting for {want:?}, got {:?}",
            self.lines()
        );
    }

    async fn stop(mut self) -> (Recorder, EngineReport) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let report = self.handle.await.expect("engine task");
        (self.rec, report)
    }
}

/// Poll `f` every 20 ms for at most 15 s.
async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Append probe lines until one is delivered: the input then surely follows the file.
async fn probe(run: &Running, path: &Path) {
    for i in 0..150 {
        let line = format!("probe-{i}");
        append(path, &format!("{line}\n"));
        let seen = wait_short(|| run.lines().iter().any(|l| l.starts_with("probe-"))).await;
        if seen {
            return;
        }
    }
    panic!("the input never followed {}", path.display());
}

async fn wait_short(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(100);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

fn count(lines: &[String], want: &str) -> usize {
    lines.iter().filter(|l| *l == want).count()
}

#[tokio::test]
async fn path_is_required_and_sizes_checked() {
    let errs = build_errors(&tail::PLUGIN, &[]);
    assert!(errs[0].contains("'path' is a required field"), "{errs:?}");
    let errs = build_errors(
        &tail::PLUGIN,
        &[
            ("path", "/x"),
            ("buffer_chunk_size", "64k"),
            ("buffer_max_size", "32k"),
        ],
    );
    assert!(errs[0].contains("buffer_max_size"), "{errs:?}");
    let errs = build_errors(&tail::PLUGIN, &[("path", "/x"), ("refresh_interval", "0")]);
    assert!(errs[0].contains("refresh_interval"), "{errs:?}");
}

#[tokio::test]
async fn read_from_head_then_follows_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "one\r\ntwo\n\n");
    let run = Running::start(&[("path", &s(&log)), ("read_from_head", "on")]);
    run.wait_lines(&["one", "two"]).await;
    append(&log, "three\nfour");
    run.wait_lines(&["three"]).await;
    // The unfinished line is delivered once its end arrives.
    append(&log, " and more\n");
    run.wait_lines(&["four and more"]).await;
    let (rec, _) = run.stop().await;
    let got: Vec<_> = rec.events().into_iter().map(|e| e.record).collect();
    assert_eq!(
        got,
        [
            mp(r#"{"log":"one"}"#),
            mp(r#"{"log":"two"}"#),
            mp(r#"{"log":""}"#),
            mp(r#"{"log":"three"}"#),
            mp(r#"{"log":"four and more"}"#),
        ]
    );
    assert!(rec.chunks().iter().all(|c| c.tag == "test"));
}

#[tokio::test]
async fn without_read_from_head_existing_content_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "old1\nold2\n");
    let run = Running::start(&[("path", &s(&log)), ("skip_empty_lines", "on")]);
    probe(&run, &log).await;
    append(&log, "new\n\n");
    run.wait_lines(&["new"]).await;
    let lines = run.lines();
    run.stop().await;
    assert!(!lines.iter().any(|l| l.starts_with("old")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.is_empty()), "{lines:?}");
    assert_eq!(count(&lines, "new"), 1);
}

#[tokio::test]
async fn glob_picks_up_new_files_from_head_with_expanded_tags() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.log");
    append(&first, "before start\n");
    fs::write(dir.path().join("skip.gz"), "compressed\n").unwrap();
    let pattern = format!("{}/*", s(dir.path()));
    let run = Running::start_with(
        &[
            ("path", &pattern),
            ("exclude_path", "*.gz,*.zip"),
            ("refresh_interval", "0.2"),
        ],
        "app.*",
        None,
        None,
    );
    probe(&run, &first).await;
    // Created after start: read from its head.
    let second = dir.path().join("second.log");
    append(&second, "s1\ns2\n");
    fs::write(dir.path().join("later.zip"), "zipped\n").unwrap();
    run.wait_lines(&["s1", "s2"]).await;
    let (rec, _) = run.stop().await;
    let lines: Vec<String> = rec
        .events()
        .iter()
        .map(|e| {
            e.record.as_map().unwrap()[0]
                .1
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!lines.contains(&"before start".to_string()), "{lines:?}");
    assert!(!lines.contains(&"compressed".to_string()), "{lines:?}");
    assert!(!lines.contains(&"zipped".to_string()), "{lines:?}");
    let want_tag = format!(
        "app.{}",
        s(&second).trim_start_matches('/').replace('/', ".")
    );
    let tags: Vec<String> = rec.chunks().iter().map(|c| c.tag.clone()).collect();
    assert!(tags.contains(&want_tag), "{tags:?} lacks {want_tag}");
    let first_tag = format!(
        "app.{}",
        s(&first).trim_start_matches('/').replace('/', ".")
    );
    assert!(
        tags.iter().all(|t| *t == want_tag || *t == first_tag),
        "{tags:?}"
    );
}

#[tokio::test]
async fn rename_rotation_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    append(&log, "a1\na2\n");
    let run = Running::start(&[
        ("path", &format!("{}/*.log", s(dir.path()))),
        ("read_from_head", "on"),
        ("rotate_wait", "2"),
    ]);
    run.wait_lines(&["a1", "a2"]).await;
    append(&log, "a3\na4\n");
    fs::rename(&log, &rotated).unwrap();
    // A writer still holding the old file writes after the rename.
    append(&rotated, "a5\n");
    append(&log, "b1\nb2\n");
    run.wait_lines(&["a3", "a4", "a5", "b1", "b2"]).await;
    append(&log, "b3\n");
    run.wait_lines(&["b3"]).await;
    let (rec, _) = run.stop().await;
    let lines: Vec<String> = rec
        .events()
        .iter()
        .map(|e| {
            e.record.as_map().unwrap()[0]
                .1
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for w in ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3"] {
        assert_eq!(count(&lines, w), 1, "{w} in {lines:?}");
    }
    assert_eq!(lines.len(), 8, "{lines:?}");
}

#[tokio::test]
async fn copy_truncate_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "long line number one\nlong line number two\n");
    let run = Running::start(&[("path", &s(&log)), ("read_from_head", "on")]);
    run.wait_lines(&["long line number one", "long line number two"])
        .await;
    // copytruncate: the content is copied elsewhere, then the file is emptied in place.
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "t1\nt2\n");
    run.wait_lines(&["t1", "t2"]).await;
    let (rec, _) = run.stop().await;
    let lines: Vec<String> = rec
        .events()
        .iter()
        .map(|e| {
            e.record.as_map().unwrap()[0]
                .1
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        lines,
        ["long line number one", "long line number two", "t1", "t2"]
    );
}

#[tokio::test]
async fn db_restart_neither_repeats_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let db = dir.path().join("tail.db");
    append(&log, "1\n2\n3\npart");
    let kv = [
        ("path", s(&log)),
        ("db", s(&db)),
        ("read_from_head", "on".to_string()),
    ];
    let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = Running::start(&kv);
    run.wait_lines(&["1", "2", "3"]).await;
    let (first, report) = run.stop().await;
    assert_eq!(report.lost_records, 0);
    append(&log, "ial\n4\n5\n");
    let run = Running::start(&kv);
    run.wait_lines(&["partial", "4", "5"]).await;
    let (second, _) = run.stop().await;
    let text = |r: &Recorder| -> Vec<String> {
        r.events()
            .iter()
            .map(|e| {
                e.record.as_map().unwrap()[0]
                    .1
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(text(&first), ["1", "2", "3"]);
    assert_eq!(text(&second), ["partial", "4", "5"]);
}

#[tokio::test]
async fn long_lines_skipped_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let long = "x".repeat(5000);
    // The long line also spans several reads.
    let huge = "y".repeat(300_000);
    append(&log, &format!("short1\n{long}\nshort2\n{huge}\nshort3\n"));
    let run = Running::start(&[
        ("path", &s(&log)),
        ("read_from_head", "on"),
        ("skip_long_lines", "on"),
        ("buffer_chunk_size", "1k"),
        ("buffer_max_size", "2k"),
    ]);
    run.wait_lines(&["short1", "short2", "short3"]).await;
    let lines = run.lines();
    run.stop().await;
    assert_eq!(lines, ["short1", "short2", "short3"]);
}

#[tokio::test]
async fn long_line_without_skip_stops_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let other = dir.path().join("other.log");
    append(&log, &format!("ok\n{}\nnever\n", "x".repeat(5000)));
    append(&other, "fine\n");
    let run = Running::start(&[
        ("path", &format!("{}/*.log", s(dir.path()))),
        ("read_from_head", "on"),
        ("buffer_chunk_size", "1k"),
        ("buffer_max_size", "2k"),
    ]);
    run.wait_lines(&["ok", "fine"]).await;
    // Later lines of other files still arrive; the file with the long line is given up.
    append(&other, "still\n");
    run.wait_lines(&["still"]).await;
    let lines = run.lines();
    run.stop().await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(!lines.contains(&"never".to_string()), "{lines:?}");
}

#[tokio::test]
async fn path_key_offset_key_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "ab\ncde\n");
    let run = Running::start(&[
        ("path", &s(&log)),
        ("read_from_head", "on"),
        ("path_key", "file"),
        ("offset_key", "off"),
        ("key", "message"),
    ]);
    let got = wait_for(|| {
        let ev = run.rec.events();
        (ev.len() >= 2).then_some(ev)
    })
    .await
    .expect("two records");
    run.stop().await;
    let p = s(&log);
    assert_eq!(
        got[0].record,
        mp(&format!(r#"{{"file":"{p}","off":0,"message":"ab"}}"#))
    );
    assert_eq!(
        got[1].record,
        mp(&format!(r#"{{"file":"{p}","off":3,"message":"cde"}}"#))
    );
}

/// An output whose flushes wait until it is opened.
#[derive(Clone)]
struct Gate {
    open: Arc<AtomicBool>,
    opened: Arc<Notify>,
    delivered: Arc<AtomicUsize>,
    rec: Recorder,
}

#[async_trait]
impl Output for Gate {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl OutputWorker for Gate {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        while !self.open.load(Ordering::Acquire) {
            let n = self.opened.notified();
            if self.open.load(Ordering::Acquire) {
                break;
            }
            n.await;
        }
        self.delivered.fetch_add(chunk.records, Ordering::AcqRel);
        let mut w = self.rec.clone();
        OutputWorker::flush(&mut w, chunk, progress).await
    }
}

#[tokio::test]
async fn paused_input_stops_reading_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let line = "z".repeat(99);
    let total = 40_000usize; // 4 MB
    let mut f = File::create(&log).unwrap();
    for _ in 0..total {
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let gate = Gate {
        open: Arc::new(AtomicBool::new(false)),
        opened: Arc::new(Notify::new()),
        delivered: Arc::new(AtomicUsize::new(0)),
        rec: Recorder::default(),
    };
    let run = Running::start_with(
        &[("path", &s(&log)), ("read_from_head", "on")],
        "test",
        Some(100_000),
        Some(Arc::new(gate.clone())),
    );
    let input = run.metrics.input("tail.0");
    let started = wait_for(|| (metrics::get(&input.bytes) > 0).then_some(())).await;
    assert!(started.is_some());
    // While the output is stalled the input stays paused: what it buffered is bounded by the
    // limit plus one read block, far below the file's size.
    let stalled_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < stalled_until {
        assert!(
            metrics::get(&input.bytes) < 400_000,
            "input kept reading: {} bytes",
            metrics::get(&input.bytes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "buffered while stalled: {} bytes",
        metrics::get(&input.bytes)
    );
    gate.open.store(true, Ordering::Release);
    gate.opened.notify_waiters();
    let done = wait_for(|| (gate.delivered.load(Ordering::Acquire) >= total).then_some(())).await;
    let delivered = gate.rec.events().len();
    let (_, report) = run.stop().await;
    assert!(done.is_some(), "only {delivered} of {total} delivered");
    assert_eq!(delivered, total);
    assert_eq!(report.lost_records, 0);
}

#[tokio::test]
async fn rotated_file_still_matching_the_glob_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let db = dir.path().join("t.db");
    append(&log, "a1\na2\n");
    let run = Running::start(&[
        ("path", &format!("{}/app.log*", s(dir.path()))),
        ("read_from_head", "on"),
        ("rotate_wait", "1"),
        ("refresh_interval", "0.2"),
        ("db", &s(&db)),
    ]);
    run.wait_lines(&["a1", "a2"]).await;
    fs::rename(&log, &rotated).unwrap();
    append(&log, "b1\n");
    run.wait_lines(&["b1"]).await;
    // Past Rotate_Wait the old file is let go; later scans find it under its new name and
    // resume at its offset instead of reading it again.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    append(&rotated, "a3\n");
    append(&log, "b2\n");
    run.wait_lines(&["a3", "b2"]).await;
    let (rec, _) = run.stop().await;
    let lines: Vec<String> = rec
        .events()
        .iter()
        .map(|e| {
            e.record.as_map().unwrap()[0]
                .1
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for w in ["a1", "a2", "a3", "b1", "b2"] {
        assert_eq!(count(&lines, w), 1, "{w} in {lines:?}");
    }
    assert_eq!(lines.len(), 5, "{lines:?}");
}

#[tokio::test]
async fn db_restart_without_read_from_head_and_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let db = dir.path().join("t.db");
    append(&log, "1\n2\n");
    let pattern = format!("{}/*.log", s(dir.path()));
    let kv = [
        ("path", pattern.as_str()),
        ("db", &s(&db)),
        ("db.sync", "full"),
        ("db.locking", "true"),
        ("refresh_interval", "0.2"),
    ];
    // Without Read_from_Head and without a stored offset, existing lines are skipped.
    let run = Running::start(&kv);
    probe(&run, &log).await;
    append(&log, "3\n");
    run.wait_lines(&["3"]).await;
    let (first, _) = run.stop().await;
    append(&log, "4\n");
    let other = dir.path().join("other.log");
    let run = Running::start(&kv);
    run.wait_lines(&["4"]).await;
    // A file created after start is read from its head.
    append(&other, "o1\n");
    run.wait_lines(&["o1"]).await;
    let (second, _) = run.stop().await;
    let text = |r: &Recorder| -> Vec<String> {
        r.events()
            .iter()
            .map(|e| {
                e.record.as_map().unwrap()[0]
                    .1
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let first = text(&first);
    assert!(!first.iter().any(|l| l == "1" || l == "2"), "{first:?}");
    assert_eq!(count(&first, "3"), 1);
    let second = text(&second);
    assert_eq!(second, ["4", "o1"]);
}
