//! `storage.pause_on_chunks_overlimit` with `storage.type filesystem`: off, tail reads on and
//! what memory cannot hold queues on disk (kinesis-bit's filesystem inputs never pause); on,
//! tail stops reading while chunks queue (storage.max_chunks_up reached), as Fluent Bit
//! pauses the input, and goes on once they are delivered.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{build, Gated, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::store::StorageConfig;
use kb_core::tag::TagMatcher;
use kb_inputs::tail;

/// Chunk files on disk for the tail input.
fn chunk_files(dir: &std::path::Path) -> usize {
    walk(dir)
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                usize::from(
                    p.extension()
                        .is_some_and(|x| x == kb_core::store::CHUNK_EXT),
                )
            }
        })
        .sum()
}

/// Tail a 20 000-line file with a stalled output for 1.5 s; returns the chunk files on disk
/// then, and the records delivered once the output opens.
async fn run(pause: &str) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let text: String = (0..20_000)
        .map(|i| format!("line {i:06} {}\n", "x".repeat(40)))
        .collect();
    std::fs::write(&log, text).unwrap();
    let store = dir.path().join("store");
    let mut storage = StorageConfig::new(store.clone());
    storage.max_chunks_up = 1;
    let p = log.to_str().unwrap().to_string();
    let input = build(
        &tail::PLUGIN,
        &[
            ("path", p.as_str()),
            ("read_from_head", "on"),
            ("storage.pause_on_chunks_overlimit", pause),
        ],
    )
    .unwrap();
    let (open_tx, open) = tokio::sync::watch::channel(false);
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(50),
        chunk_max_bytes: 16 * 1024,
        storage: Some(storage),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "tail".into(),
        name: "tail.0".into(),
        tag: "t".into(),
        mem_buf_limit: None,
        filesystem: true,
        plugin: input,
    });
    engine.add_output(OutputInstance {
        plugin_name: "gated".into(),
        name: "gated.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(Gated {
            rec: rec.clone(),
            open,
        }),
    });
    let watch = rec.clone();
    let files = Arc::new(std::sync::Mutex::new(0));
    let seen = files.clone();
    engine
        .run(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            *seen.lock().unwrap() = chunk_files(&store);
            open_tx.send(true).unwrap();
            for _ in 0..500 {
                if watch.events().len() >= 20_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
    let n = *files.lock().unwrap();
    (n, rec.events().len())
}

#[tokio::test]
async fn off_reads_on_to_disk_and_on_pauses_reading() {
    let (files_off, delivered_off) = run("off").await;
    let (files_on, delivered_on) = run("on").await;
    // ~1 MB read in 128 KiB blocks, one chunk each: off, the whole file waits on disk; on,
    // reading stopped at the first chunks over the limit.
    assert!(
        files_off >= 8,
        "off: {files_off} chunk files (on: {files_on})"
    );
    assert!(
        files_on <= 3,
        "on: {files_on} chunk files (off: {files_off})"
    );
    // Nothing is lost either way once the output takes records again.
    assert_eq!(delivered_off, 20_000);
    assert_eq!(delivered_on, 20_000);
}

#[test]
fn forward_accepts_the_key() {
    assert!(build(
        &kb_inputs::forward::PLUGIN,
        &[("storage.pause_on_chunks_overlimit", "on")]
    )
    .is_ok());
    let errs = common::build_errors(
        &kb_inputs::forward::PLUGIN,
        &[("storage.pause_on_chunks_overlimit", "sometimes")],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("storage.pause_on_chunks_overlimit"),
        "{errs:?}"
    );
}
