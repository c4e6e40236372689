//! `tail` under copy-truncate and rename rotation, with inotify and with polling: every line
//! delivered exactly once, none torn, also across a restart with `DB`.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{build, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::tag::TagMatcher;
use kb_inputs::tail;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running engine with one `tail` input and a recording output.
struct Running {
    rec: Recorder,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<EngineReport>,
}

impl Running {
    fn start(kv: &[(&str, &str)]) -> Self {
        let input = build(&tail::PLUGIN, kv).expect("valid tail configuration");
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
            plugin: std::sync::Arc::new(rec.clone()),
        });
        let (stop, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("engine runs")
        });
        Running { rec, stop, handle }
    }

    /// Every `log` value recorded so far.
    fn lines(&self) -> Vec<String> {
        lines_of(&self.rec)
    }

    /// Wait (at most 30 s) until `n` lines of the `seq` batches are recorded.
    async fn wait_count(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.lines();
            let seqs = got.iter().filter(|l| l.starts_with("{\"seq\"")).count();
            if seqs >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> (Recorder, EngineReport) {
        let _ = self.stop.send(());
        let report = self.handle.await.expect("engine task");
        (self.rec, report)
    }
}

fn lines_of(rec: &Recorder) -> Vec<String> {
    rec.events()
        .iter()
        .map(|e| {
            let m = e.record.as_map().unwrap();
            assert_eq!(m.len(), 1, "{:?}", e.record);
            m[0].1.as_str().unwrap().to_string()
        })
        .collect()
}

/// Lines of equal length, so that a rewritten file comes back at exactly its old size.
fn batch(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| format!("{{\"seq\":{i:>7},\"msg\":\"a line of the copy-truncate test\"}}\n"))
        .collect()
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// `copytruncate`: copy the file away, empty it in place, and write `text` at once.
fn copy_truncate_and_write(path: &Path, copy: &Path, text: &str) {
    fs::copy(path, copy).unwrap();
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(0).unwrap();
    // The writer keeps appending (O_APPEND), right after the truncation.
    drop(f);
    append(path, text);
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Check that `lines` hold every seq of `0..n` exactly once and nothing else but probes.
fn assert_exactly_once(lines: &[String], n: u32) {
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for l in lines {
        if l.starts_with("{\"probe\"") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
        *seen.entry(v["seq"].as_u64().unwrap() as u32).or_default() += 1;
    }
    let missing: Vec<u32> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    let dups: Vec<(u32, usize)> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, c)| (*k, *c))
        .collect();
    let extra: Vec<u32> = seen.keys().copied().filter(|k| *k >= n).collect();
    assert!(
        missing.is_empty() && dups.is_empty() && extra.is_empty(),
        "{} missing (first {:?}), duplicated {:?}, unexpected {:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        &dups[..dups.len().min(10)],
        &extra[..extra.len().min(10)],
    );
}

/// Append probe lines until one is delivered: the input then surely follows the file.
async fn probe(run: &Running, path: &Path) {
    for i in 0..150 {
        append(path, &format!("{{\"probe\":{i}}}\n"));
        let deadline = Instant::now() + Duration::from_millis(100);
        while Instant::now() < deadline {
            if run.lines().iter().any(|l| l.starts_with("{\"probe\"")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("the input never followed {}", path.display());
}

/// The scenario: rename rotation, copy-truncate with immediate regrowth to the old
/// size and beyond, then a new file; `Refresh_Interval 1`, `Rotate_Wait`, `DB`.
async fn rotation_scenario(inotify: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("app.log");
    fs::write(&log, "").unwrap();
    let db = s(&d.join("tail.db"));
    let pattern = format!("{}/*.log", s(d));
    let run = Running::start(&[
        ("path", &pattern),
        ("refresh_interval", "1"),
        ("rotate_wait", "2"),
        ("db", &db),
        ("inotify_watcher", inotify),
    ]);
    probe(&run, &log).await;
    append(&log, &batch(0..5000));
    run.wait_count(5000).await;
    // Rotation by rename: a new app.log gets 5,000 lines.
    fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, &batch(5000..10_000));
    run.wait_count(10_000).await;
    // copytruncate: back at exactly the old size at once, then 5,000 lines more.
    copy_truncate_and_write(&log, &d.join("app.log.copy"), &batch(10_000..15_000));
    append(&log, &batch(15_000..20_000));
    // A new file, found by the next scan and read from its head.
    append(&d.join("late.log"), &batch(20_000..21_000));
    let got = run.wait_count(21_000).await;
    // Nothing more arrives later (no re-read of anything).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (rec, report) = run.stop().await;
    assert_eq!(report.lost_records, 0);
    let all = lines_of(&rec);
    assert!(all.len() >= got.len());
    assert_exactly_once(&all, 21_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_copy_truncate_with_inotify() {
    rotation_scenario("on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_copy_truncate_polling() {
    rotation_scenario("off").await;
}

/// Truncations to a smaller size, to exactly the old size, and past it.
async fn truncations(inotify: &str) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &batch(0..300));
    let run = Running::start(&[
        ("path", &s(&log)),
        ("read_from_head", "on"),
        ("inotify_watcher", inotify),
    ]);
    run.wait_count(300).await;
    let copy = dir.path().join("copy");
    // Smaller.
    copy_truncate_and_write(&log, &copy, &batch(300..400));
    run.wait_count(400).await;
    // Exactly the old size (100 lines of the same length).
    copy_truncate_and_write(&log, &copy, &batch(400..500));
    run.wait_count(500).await;
    // Past the old size.
    copy_truncate_and_write(&log, &copy, &batch(500..800));
    run.wait_count(800).await;
    // Emptied, then written again after a pause.
    copy_truncate_and_write(&log, &copy, "");
    tokio::time::sleep(Duration::from_millis(600)).await;
    append(&log, &batch(800..810));
    run.wait_count(810).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (rec, _) = run.stop().await;
    assert_exactly_once(&lines_of(&rec), 810);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncations_with_inotify() {
    truncations("on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncations_polling() {
    truncations("off").await;
}

/// With `DB`: a file copy-truncated and written again while the agent was down (to its old
/// size, then past it) is read from its head; one only appended to resumes at its offset.
async fn restart_with_db(inotify: &str) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let other = dir.path().join("other.log");
    let copy = dir.path().join("copy");
    let db = s(&dir.path().join("tail.db"));
    let pattern = format!("{}/*.log", s(dir.path()));
    let kv = [
        ("path", pattern.as_str()),
        ("read_from_head", "on"),
        ("db", db.as_str()),
        ("inotify_watcher", inotify),
    ];
    append(&log, &batch(0..200));
    append(&other, &batch(1000..1100));
    let run = Running::start(&kv);
    run.wait_count(300).await;
    let (first, _) = run.stop().await;

    // Down: app.log is rewritten to exactly its old size; other.log only grows.
    copy_truncate_and_write(&log, &copy, &batch(200..400));
    append(&other, &batch(1100..1200));
    let run = Running::start(&kv);
    run.wait_count(300).await;
    let (second, _) = run.stop().await;

    // Down again: rewritten past its old size.
    copy_truncate_and_write(&log, &copy, &batch(400..700));
    let run = Running::start(&kv);
    run.wait_count(300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (third, _) = run.stop().await;

    let mut all = lines_of(&first);
    all.extend(lines_of(&second));
    all.extend(lines_of(&third));
    // seqs 0..700 from app.log and 1000..1200 from other.log.
    let shifted: Vec<String> = all
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            let seq = v["seq"].as_u64().unwrap();
            let seq = if seq >= 1000 { seq - 300 } else { seq };
            format!("{{\"seq\":{seq}}}")
        })
        .collect();
    assert_exactly_once(&shifted, 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_db_after_copy_truncate_with_inotify() {
    restart_with_db("on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_db_after_copy_truncate_polling() {
    restart_with_db("off").await;
}

/// A file found at start is read from the start of its last line, not from inside it.
#[tokio::test]
async fn a_line_being_written_at_start_is_delivered_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "{\"seq\":0,\"old\":1}\n{\"seq\":1,\"msg\":\"half");
    let run = Running::start(&[("path", &s(&log)), ("inotify_watcher", "on")]);
    // Give the input its first scan before the line is finished.
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&log, " and the rest\"}\n");
    let got = run.wait_count(1).await;
    run.stop().await;
    assert_eq!(got, ["{\"seq\":1,\"msg\":\"half and the rest\"}"]);
}
