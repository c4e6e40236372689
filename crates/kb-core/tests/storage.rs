//! Filesystem buffering through the engine: chunk files outlive a stop, a restart replays
//! only what no route delivered, memory overflow waits on disk, bad files are skipped and
//! counted, and rejected records are kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::metrics::{self, Metrics};
use kb_core::plugin::{FlushResult, Input, Output, OutputWorker, PluginError};
use kb_core::store::file::{self, ChunkWriter, SyncMode};
use kb_core::store::StorageConfig;
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};

/// Appends records `from..to` in batches, then waits for the stop.
struct Numbers {
    from: usize,
    to: usize,
    batch: usize,
}

#[async_trait]
impl Input for Numbers {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut i = self.from;
        while i < self.to {
            ctx.ready().await;
            let mut w = EventWriter::new();
            for _ in 0..self.batch.min(self.to - i) {
                let rec = serde_json::json!({ "seq": i });
                w.write_json_record(EventTime::new(1_700_000_000, 0), rec.as_object().unwrap());
                i += 1;
            }
            ctx.append(&w.buf, w.count);
            tokio::task::yield_now().await;
        }
        ctx.stopped().await;
        Ok(())
    }
}

fn seq_of(raw: &[u8]) -> u64 {
    let v = rmpv::decode::read_value(&mut &raw[..]).unwrap();
    v.as_map().unwrap()[0].1.as_u64().unwrap()
}

fn pending_seqs(chunk: &Chunk, progress: &Progress) -> Vec<u64> {
    EventReader::new(&chunk.data)
        .enumerate()
        .filter(|(i, _)| !progress.is_done(*i))
        .map(|(_, e)| seq_of(e.unwrap().record))
        .collect()
}

/// How the test output answers each flush.
#[derive(Clone, Copy)]
enum Mode {
    /// Accept everything.
    Accept,
    /// Accept the first `n` pending records of the first flush, then never again.
    AcceptThenStall(usize),
    /// Accept the first `n` pending records, then give up with Error.
    AcceptThenError(usize),
}

#[derive(Clone)]
struct Collect {
    mode: Mode,
    /// How long each flush takes.
    delay: Duration,
    delivered: Arc<Mutex<Vec<u64>>>,
    flushes: Arc<Mutex<usize>>,
}

impl Collect {
    /// Accepts everything, 5 ms per flush: an input that never pauses outruns it.
    fn slow() -> Self {
        Collect {
            delay: Duration::from_millis(5),
            ..Collect::new(Mode::Accept)
        }
    }

    fn new(mode: Mode) -> Self {
        Collect {
            mode,
            delay: Duration::ZERO,
            delivered: Arc::default(),
            flushes: Arc::default(),
        }
    }
}

#[async_trait]
impl Output for Collect {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl OutputWorker for Collect {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        tokio::time::sleep(self.delay).await;
        let first = {
            let mut f = self.flushes.lock().unwrap();
            *f += 1;
            *f == 1
        };
        let seqs = pending_seqs(chunk, progress);
        let (accept, result) = match self.mode {
            Mode::Accept => (seqs.len(), FlushResult::Ok),
            Mode::AcceptThenStall(n) if first => (n, FlushResult::Retry),
            Mode::AcceptThenStall(_) => (0, FlushResult::Retry),
            Mode::AcceptThenError(n) => (n, FlushResult::Error),
        };
        let idx: Vec<usize> = progress.pending().take(accept).collect();
        for i in idx {
            progress.mark_done(i);
        }
        self.delivered
            .lock()
            .unwrap()
            .extend_from_slice(&seqs[..accept.min(seqs.len())]);
        result
    }
}

fn storage(dir: &Path) -> StorageConfig {
    StorageConfig {
        checksum: true,
        ..StorageConfig::new(dir.to_path_buf())
    }
}

async fn run(
    cfg: StorageConfig,
    input: Numbers,
    mem_buf_limit: Option<usize>,
    out: Collect,
    metrics: Arc<Metrics>,
    run_for: Duration,
) -> EngineReport {
    run_limited(cfg, input, mem_buf_limit, out, metrics, run_for, None).await
}

async fn run_limited(
    cfg: StorageConfig,
    input: Numbers,
    mem_buf_limit: Option<usize>,
    out: Collect,
    metrics: Arc<Metrics>,
    run_for: Duration,
    total_limit_size: Option<u64>,
) -> EngineReport {
    let mut e = Engine::with_metrics(
        EngineConfig {
            flush: Duration::from_millis(200),
            grace: Duration::from_secs(2),
            chunk_max_bytes: 1024,
            storage: Some(cfg),
            ..EngineConfig::default()
        },
        metrics,
    );
    e.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "numbers.0".into(),
        tag: "app.log".into(),
        mem_buf_limit,
        filesystem: true,
        plugin: Box::new(input),
    });
    e.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "out.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Unlimited,
        workers: 1,
        total_limit_size,
        plugin: Arc::new(out),
    });
    e.run(tokio::time::sleep(run_for)).await.unwrap()
}

fn none(n: usize) -> Numbers {
    Numbers {
        from: n,
        to: n,
        batch: 1,
    }
}

fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(dir).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            for f in std::fs::read_dir(&d).unwrap() {
                v.push(f.unwrap().path());
            }
        }
    }
    v.sort();
    v
}

#[tokio::test]
async fn restart_replays_only_what_was_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // The first run's output accepts 7 of the 20 records, then stalls until the stop.
    let stall = Collect::new(Mode::AcceptThenStall(7));
    let input = Numbers {
        from: 0,
        to: 20,
        batch: 20,
    };
    let report = run(
        storage(dir.path()),
        input,
        None,
        stall.clone(),
        Arc::default(),
        Duration::from_millis(700),
    )
    .await;
    assert_eq!(*stall.delivered.lock().unwrap(), (0..7).collect::<Vec<_>>());
    assert_eq!(report.lost_records, 0, "{report:?}");
    assert_eq!(report.kept_records, 13, "{report:?}");
    assert_eq!(chunk_files(dir.path()).len(), 1);

    // The next start delivers exactly the 13 records the first run did not, then deletes
    // the file.
    let metrics = Arc::new(Metrics::default());
    let next = Collect::new(Mode::Accept);
    let report = run(
        storage(dir.path()),
        none(0),
        None,
        next.clone(),
        metrics.clone(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(*next.delivered.lock().unwrap(), (7..20).collect::<Vec<_>>());
    assert_eq!(report, EngineReport::default());
    assert_eq!(metrics::get(&metrics.storage.replayed_chunks), 1);
    assert!(chunk_files(dir.path()).is_empty());
}

#[tokio::test]
async fn over_the_memory_bound_chunks_wait_on_disk_and_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // The input (never paused) outruns the slow output and chunks pile up.
    let out = Collect::slow();
    let metrics = Arc::new(Metrics::default());
    let report = run(
        StorageConfig {
            backlog_mem_limit: 2048,
            ..storage(dir.path())
        },
        Numbers {
            from: 0,
            to: 3000,
            batch: 25,
        },
        Some(2048),
        out.clone(),
        metrics.clone(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(report, EngineReport::default());
    assert_eq!(
        *out.delivered.lock().unwrap(),
        (0..3000).collect::<Vec<_>>()
    );
    assert!(
        metrics::get(&metrics.storage.loaded_chunks) > 10,
        "chunks went down and back up"
    );
    let input = metrics.input("numbers.0");
    assert_eq!(input.chunks_down.load(Ordering::Relaxed), 0);
    assert_eq!(input.chunks_up(), 0);
    assert!(chunk_files(dir.path()).is_empty());
}

fn events(range: std::ops::Range<usize>) -> Vec<u8> {
    let mut w = EventWriter::new();
    for i in range {
        let rec = serde_json::json!({ "seq": i });
        w.write_json_record(EventTime::new(1_700_000_000, 0), rec.as_object().unwrap());
    }
    w.buf
}

#[tokio::test]
async fn corrupt_files_are_skipped_and_counted_and_open_ones_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = dir.path().join("numbers.0");
    std::fs::create_dir_all(&chunks).unwrap();
    // A good sealed file, records 0..5.
    let mut w = ChunkWriter::create(
        chunks.join("1.kbc"),
        "app.log",
        "numbers.0",
        true,
        SyncMode::Normal,
    )
    .unwrap();
    w.append(&events(0..5)).unwrap();
    w.seal(5).unwrap();
    // A file whose events were damaged after sealing.
    let mut w = ChunkWriter::create(
        chunks.join("2.kbc"),
        "app.log",
        "numbers.0",
        true,
        SyncMode::Normal,
    )
    .unwrap();
    w.append(&events(100..105)).unwrap();
    let h = w.seal(5).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(chunks.join("2.kbc"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"\xff\xff", h.data_offset() + 3).unwrap();
    // Not a chunk at all, and a file the agent does not own.
    std::fs::write(chunks.join("3.kbc"), b"garbage").unwrap();
    std::fs::write(chunks.join("notes.txt"), b"mine").unwrap();
    // Left open by a crash in the middle of record 12.
    let mut w = ChunkWriter::create(
        chunks.join("4.kbc"),
        "app.log",
        "numbers.0",
        true,
        SyncMode::Normal,
    )
    .unwrap();
    let open = events(10..13);
    w.append(&open[..open.len() - 2]).unwrap();
    drop(w);

    let metrics = Arc::new(Metrics::default());
    let out = Collect::new(Mode::Accept);
    let report = run(
        storage(dir.path()),
        none(0),
        None,
        out.clone(),
        metrics.clone(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(report, EngineReport::default());
    assert_eq!(*out.delivered.lock().unwrap(), vec![0, 1, 2, 3, 4, 10, 11]);
    assert_eq!(metrics::get(&metrics.storage.corrupt_chunks), 2);
    assert_eq!(metrics::get(&metrics.storage.recovered_chunks), 1);
    // Corrupt files and foreign files stay for a human to look at.
    let left: Vec<String> = chunk_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["2.kbc", "3.kbc", "notes.txt"]);
}

#[tokio::test]
async fn keep_rejected_copies_the_undelivered_remainder() {
    let dir = tempfile::tempdir().unwrap();
    let out = Collect::new(Mode::AcceptThenError(4));
    let metrics = Arc::new(Metrics::default());
    run(
        StorageConfig {
            keep_rejected: true,
            ..storage(dir.path())
        },
        Numbers {
            from: 0,
            to: 10,
            batch: 10,
        },
        None,
        out.clone(),
        metrics.clone(),
        Duration::from_millis(600),
    )
    .await;
    assert_eq!(metrics::get(&metrics.storage.rejected_chunks), 1);
    let rejected = dir.path().join("rejected").join("out.0");
    let files: Vec<_> = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let kept = file::read_chunk(&files[0]).unwrap();
    let seqs: Vec<u64> = EventReader::new(&kept.data)
        .map(|e| seq_of(e.unwrap().record))
        .collect();
    assert_eq!(seqs, (4..10).collect::<Vec<_>>());
    // The chunk itself is gone: the route settled it.
    assert!(!chunk_files(dir.path())
        .iter()
        .any(|p| p.starts_with(dir.path().join("numbers.0"))));
}

#[tokio::test]
async fn total_limit_size_drops_the_oldest_chunks_and_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    // The output never accepts while 3000 records arrive in ~1 KiB chunks; the output may
    // hold 8 KiB of them, so the oldest are given up as new ones come.
    let stuck = Collect::new(Mode::AcceptThenStall(0));
    let cfg = StorageConfig {
        backlog_mem_limit: 2048,
        ..storage(dir.path())
    };
    let input = Numbers {
        from: 0,
        to: 3000,
        batch: 25,
    };
    run_limited(
        cfg.clone(),
        input,
        Some(2048),
        stuck,
        metrics.clone(),
        Duration::from_millis(1500),
        Some(8192),
    )
    .await;
    let dropped_chunks = metrics::get(&metrics.storage.dropped_chunks);
    assert!(dropped_chunks > 20, "{dropped_chunks}");
    let on_disk: u64 = chunk_files(dir.path())
        .iter()
        .map(|p| file::read_header(p).unwrap().data_len)
        .sum();
    assert!(on_disk <= 8192 + 1100, "{on_disk} bytes left on disk");

    // The next start delivers what was kept: the newest records, in order, none twice; with
    // what the first run counted dropped, every record is accounted for.
    let out = Collect::new(Mode::Accept);
    let m2 = Arc::new(Metrics::default());
    run_limited(
        cfg,
        none(0),
        None,
        out.clone(),
        m2.clone(),
        Duration::from_millis(800),
        Some(8192),
    )
    .await;
    let got = out.delivered.lock().unwrap().clone();
    assert!(!got.is_empty());
    assert_eq!(*got.last().unwrap(), 2999);
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "a contiguous newest run: {got:?}"
    );
    let dropped = metrics::get(&metrics.output("out.0").dropped_records)
        + metrics::get(&m2.output("out.0").dropped_records);
    assert_eq!(dropped + got.len() as u64, 3000);
    assert!(chunk_files(dir.path()).is_empty());
}

#[tokio::test]
async fn max_chunks_up_sends_the_rest_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let out = Collect::slow();
    let metrics = Arc::new(Metrics::default());
    let input = Numbers {
        from: 0,
        to: 2000,
        batch: 25,
    };
    let cfg = StorageConfig {
        max_chunks_up: 1,
        ..storage(dir.path())
    };
    let report = run(
        cfg,
        input,
        None,
        out.clone(),
        metrics.clone(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(report, EngineReport::default());
    assert_eq!(
        *out.delivered.lock().unwrap(),
        (0..2000).collect::<Vec<_>>()
    );
    assert!(metrics::get(&metrics.storage.loaded_chunks) > 10);
}

#[tokio::test]
async fn delete_irrecoverable_chunks_removes_bad_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = dir.path().join("numbers.0");
    std::fs::create_dir_all(&chunks).unwrap();
    // A whole header whose checksum does not match.
    std::fs::write(chunks.join("bad.kbc"), [&b"KBC1"[..], &[0xab; 60]].concat()).unwrap();
    // Cut while being created: never held a record, removed whatever the setting.
    std::fs::write(chunks.join("torn.kbc"), b"KBC1\0\0").unwrap();
    std::fs::write(chunks.join("notes.txt"), b"mine").unwrap();
    let metrics = Arc::new(Metrics::default());
    let cfg = StorageConfig {
        delete_irrecoverable: true,
        ..storage(dir.path())
    };
    run(
        cfg,
        none(0),
        None,
        Collect::new(Mode::Accept),
        metrics.clone(),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(metrics::get(&metrics.storage.corrupt_chunks), 1);
    assert_eq!(metrics::get(&metrics.storage.recovered_chunks), 1);
    assert_eq!(chunk_files(dir.path()), vec![chunks.join("notes.txt")]);
}
