//! Engine behaviour under virtual time: routing, retry scheduling and limits, progress carried
//! across retries, backpressure, and graceful shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::metrics;
use kb_core::plugin::{FlushResult, Input, Output, OutputWorker, PluginError};
use kb_core::retry::Backoff;
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};
use tokio::time::Instant;

/// An input that appends `n` numbered records once, in batches of `batch`, waiting for
/// `ready()` before each batch.
struct Numbers {
    n: usize,
    batch: usize,
    tag: Option<&'static str>,
}

#[async_trait]
impl Input for Numbers {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut i = 0;
        while i < self.n {
            ctx.ready().await;
            if ctx.is_stopping() {
                break;
            }
            let mut w = EventWriter::new();
            for _ in 0..self.batch.min(self.n - i) {
                let rec = serde_json::json!({ "seq": i });
                w.write_json_record(EventTime::new(1_700_000_000, 0), rec.as_object().unwrap());
                i += 1;
            }
            match self.tag {
                Some(t) => ctx.append_tagged(t, &w.buf, w.count),
                None => ctx.append(&w.buf, w.count),
            }
            tokio::task::yield_now().await;
        }
        ctx.stopped().await;
        Ok(())
    }
}

fn seqs(chunk: &Chunk, progress: &Progress) -> Vec<u64> {
    EventReader::new(&chunk.data)
        .enumerate()
        .filter(|(i, _)| !progress.is_done(*i))
        .map(|(_, e)| {
            let v = rmpv::decode::read_value(&mut &e.unwrap().record[..]).unwrap();
            v.as_map().unwrap()[0].1.as_u64().unwrap()
        })
        .collect()
}

type Log = Arc<Mutex<Vec<(Instant, String, Vec<u64>)>>>;

/// An output that records what it was given and answers from a script (then Ok).
struct Scripted {
    name: &'static str,
    log: Log,
    script: Arc<Mutex<Vec<(FlushResult, usize)>>>,
}

#[async_trait]
impl Output for Scripted {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(Scripted {
            name: self.name,
            log: self.log.clone(),
            script: self.script.clone(),
        }))
    }
}

#[async_trait]
impl OutputWorker for Scripted {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        self.log.lock().unwrap().push((
            Instant::now(),
            format!("{}:{}", self.name, chunk.tag),
            seqs(chunk, progress),
        ));
        let next = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                None
            } else {
                Some(s.remove(0))
            }
        };
        match next {
            None => FlushResult::Ok,
            Some((r, accept_first)) => {
                // Accept the first `accept_first` still-pending records, as a partial success.
                let pending: Vec<usize> = progress.pending().take(accept_first).collect();
                for i in pending {
                    progress.mark_done(i);
                }
                r
            }
        }
    }
}

fn output(
    name: &'static str,
    m: &str,
    limit: RetryLimit,
    log: &Log,
    script: Vec<(FlushResult, usize)>,
) -> OutputInstance {
    OutputInstance {
        plugin_name: "test".into(),
        name: name.to_string(),
        matcher: TagMatcher::new(Some(m), None).unwrap(),
        retry_limit: limit,
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(Scripted {
            name,
            log: log.clone(),
            script: Arc::new(Mutex::new(script)),
        }),
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        flush: Duration::from_secs(1),
        grace: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

fn numbers(n: usize) -> InputInstance {
    InputInstance {
        plugin_name: "test".into(),
        name: "numbers.0".into(),
        tag: "app.log".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(Numbers {
            n,
            batch: n.max(1),
            tag: None,
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn chunk_is_shared_by_every_matching_output() {
    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(3));
    e.add_output(output("a", "app.*", RetryLimit::Limited(1), &log, vec![]));
    e.add_output(output("b", "*", RetryLimit::Limited(1), &log, vec![]));
    e.add_output(output("c", "other", RetryLimit::Limited(1), &log, vec![]));
    let metrics = e.metrics();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let mut got: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(_, n, s)| (n.clone(), s.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a:app.log".into(), vec![0, 1, 2]),
            ("b:app.log".into(), vec![0, 1, 2])
        ]
    );
    let outs = metrics.outputs();
    assert_eq!(metrics::get(&outs[0].1.proc_records), 3);
    assert_eq!(metrics::get(&outs[2].1.proc_records), 0);
    assert_eq!(metrics::get(&metrics.inputs()[0].1.records), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_sends_only_the_remainder_with_backoff_delays() {
    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(10));
    // First flush: 4 accepted, Retry; second: 3 more accepted, Retry; then Ok.
    e.add_output(output(
        "k",
        "*",
        RetryLimit::Limited(5),
        &log,
        vec![(FlushResult::Retry, 4), (FlushResult::Retry, 3)],
    ));
    let metrics = e.metrics();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(200)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].2, (0..10).collect::<Vec<_>>());
    assert_eq!(log[1].2, (4..10).collect::<Vec<_>>());
    assert_eq!(log[2].2, (7..10).collect::<Vec<_>>());
    // Retry n waits uniform [base, min(cap, base*2^n)] + 1 s: 6..=11 s, then 6..=21 s.
    let d1 = (log[1].0 - log[0].0).as_secs();
    let d2 = (log[2].0 - log[1].0).as_secs();
    assert!((6..=11).contains(&d1), "first retry after {d1} s");
    assert!((6..=21).contains(&d2), "second retry after {d2} s");
    let m = &metrics.outputs()[0].1;
    assert_eq!(metrics::get(&m.retries), 2);
    assert_eq!(metrics::get(&m.proc_records), 10);
}

#[tokio::test(start_paused = true)]
async fn retry_limit_exhausted_drops_the_remainder_and_counts_it() {
    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(5));
    e.add_output(output(
        "k",
        "*",
        RetryLimit::Limited(1),
        &log,
        vec![
            (FlushResult::Retry, 2),
            (FlushResult::Retry, 1),
            (FlushResult::Retry, 0),
        ],
    ));
    let metrics = e.metrics();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(100)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    assert_eq!(log.lock().unwrap().len(), 2, "1 try + 1 retry");
    let m = &metrics.outputs()[0].1;
    assert_eq!(metrics::get(&m.retries), 1);
    assert_eq!(metrics::get(&m.retries_failed), 1);
    assert_eq!(metrics::get(&m.dropped_records), 2);
    assert_eq!(metrics::get(&m.proc_records), 3);
}

/// `Later` (a rate-limited destination) hands the chunk back after exactly its delay, sends
/// only the remainder, and is no retry: with `Retry_Limit 1` three of them lose nothing.
#[tokio::test(start_paused = true)]
async fn later_hands_the_chunk_back_after_its_delay_without_counting_a_retry() {
    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(6));
    let later = FlushResult::Later(Duration::from_millis(300));
    e.add_output(output(
        "k",
        "*",
        RetryLimit::Limited(1),
        &log,
        vec![(later, 2), (later, 1), (later, 0)],
    ));
    let metrics = e.metrics();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(100)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[1].2, (2..6).collect::<Vec<_>>());
    assert_eq!(log[2].2, (3..6).collect::<Vec<_>>());
    assert_eq!(log[3].2, (3..6).collect::<Vec<_>>());
    for w in log.windows(2) {
        assert_eq!((w[1].0 - w[0].0).as_millis(), 300);
    }
    let m = &metrics.outputs()[0].1;
    assert_eq!(metrics::get(&m.retries), 0);
    assert_eq!(metrics::get(&m.dropped_records), 0);
    assert_eq!(metrics::get(&m.proc_records), 6);
}

#[tokio::test(start_paused = true)]
async fn no_retries_and_error_drop_at_once() {
    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(4));
    e.add_output(output(
        "a",
        "*",
        RetryLimit::Limited(0),
        &log,
        vec![(FlushResult::Retry, 0)],
    ));
    e.add_output(output(
        "b",
        "*",
        RetryLimit::Unlimited,
        &log,
        vec![(FlushResult::Error, 1)],
    ));
    let metrics = e.metrics();
    e.run(tokio::time::sleep(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap().len(), 2);
    let outs = metrics.outputs();
    assert_eq!(metrics::get(&outs[0].1.dropped_records), 4);
    assert_eq!(metrics::get(&outs[0].1.retries_failed), 1);
    assert_eq!(metrics::get(&outs[1].1.dropped_records), 3);
    assert_eq!(metrics::get(&outs[1].1.errors), 1);
}

#[tokio::test(start_paused = true)]
async fn unlimited_retries_keep_going_with_capped_backoff() {
    let log: Log = Arc::default();
    let mut e = Engine::new(EngineConfig {
        backoff: Backoff { base: 1, cap: 4 },
        ..config()
    });
    e.add_input(numbers(1));
    e.add_output(output(
        "k",
        "*",
        RetryLimit::Unlimited,
        &log,
        vec![(FlushResult::Retry, 0); 20],
    ));
    e.run(tokio::time::sleep(Duration::from_secs(200)))
        .await
        .unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 21);
    for w in log.windows(2) {
        let d = (w[1].0 - w[0].0).as_secs();
        assert!((2..=5).contains(&d), "delay {d} outside [base, cap] + 1");
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_fires_pending_retries_at_once_and_delivers_buffered_records() {
    let log: Log = Arc::default();
    let mut e = Engine::new(EngineConfig {
        flush: Duration::from_secs(60),
        ..config()
    });
    e.add_input(numbers(7));
    e.add_output(output("k", "*", RetryLimit::Limited(3), &log, vec![]));
    let started = Instant::now();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(report, Default::default());
    {
        let log = log.lock().unwrap();
        // Flush is 60 s, so only shutdown's final seal delivered the records.
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].2, (0..7).collect::<Vec<_>>());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    let log: Log = Arc::default();
    let mut e = Engine::new(config());
    e.add_input(numbers(3));
    e.add_output(output(
        "k",
        "*",
        RetryLimit::Limited(3),
        &log,
        vec![(FlushResult::Retry, 1)],
    ));
    let started = Instant::now();
    // Shutdown at 1.5 s, while the retry (>= 6 s away) is pending: it must run at once.
    let report = e
        .run(tokio::time::sleep(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].2, vec![1, 2]);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// An output whose flush never returns.
struct Stuck;

#[async_trait]
impl Output for Stuck {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(Stuck))
    }
}

#[async_trait]
impl OutputWorker for Stuck {
    async fn flush(&mut self, _: &Chunk, _: &mut Progress) -> FlushResult {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn grace_bounds_shutdown_and_reports_what_is_lost() {
    let mut e = Engine::new(config());
    e.add_input(numbers(5));
    e.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "stuck".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(Stuck),
    });
    let started = Instant::now();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(report.unfinished_tasks, 1);
    assert_eq!(report.lost_records, 5);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

/// Run `Numbers` into a stuck output for 30 virtual seconds and check the input stopped at
/// `expect` bytes (one batch of 100 records may overshoot: the check happens before it).
async fn stalled_input_stops_at(
    mem_buf_limit: Option<usize>,
    default: Option<usize>,
    expect: usize,
) {
    let mut e = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        default_mem_buf_limit: default,
        ..config()
    });
    e.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "numbers.0".into(),
        tag: "t".into(),
        mem_buf_limit,
        filesystem: false,
        plugin: Box::new(Numbers {
            n: 1_000_000,
            batch: 100,
            tag: None,
        }),
    });
    e.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "stuck".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 2,
        total_limit_size: None,
        plugin: Arc::new(Stuck),
    });
    let metrics = e.metrics();
    let probe = {
        let metrics = metrics.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let input = &metrics.inputs()[0].1;
            let bytes = metrics::get(&input.bytes) as usize;
            let records = metrics::get(&input.records);
            assert!(bytes >= expect, "input should reach its limit: {bytes}");
            assert!(
                bytes < expect + 100 * 64,
                "buffered {bytes} bytes past the {expect} limit"
            );
            assert!(records < 5_000, "{records} records produced while stalled");
        }
    };
    e.run(probe).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stalled_output_pauses_input_at_mem_buf_limit() {
    stalled_input_stops_at(Some(64 * 1024), None, 64 * 1024).await;
}

#[tokio::test(start_paused = true)]
async fn without_mem_buf_limit_the_default_bound_holds() {
    stalled_input_stops_at(None, Some(48 * 1024), 48 * 1024).await;
}

#[tokio::test(start_paused = true)]
async fn mem_buf_limit_wins_over_the_default_bound() {
    stalled_input_stops_at(Some(32 * 1024), Some(1024 * 1024), 32 * 1024).await;
}

#[tokio::test(start_paused = true)]
async fn input_resumes_when_output_drains() {
    const LIMIT: usize = 16 * 1024;
    let log: Log = Arc::default();
    let mut e = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        ..config()
    });
    e.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "numbers.0".into(),
        tag: "t".into(),
        mem_buf_limit: Some(LIMIT),
        filesystem: false,
        plugin: Box::new(Numbers {
            n: 5_000,
            batch: 50,
            tag: None,
        }),
    });
    e.add_output(output("k", "*", RetryLimit::Limited(1), &log, vec![]));
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let mut all: Vec<u64> = log
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, _, s)| s.clone())
        .collect();
    all.sort();
    assert_eq!(all, (0..5_000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn big_appends_seal_chunks_early_and_tags_get_their_own_chunks() {
    let log: Log = Arc::default();
    let mut e = Engine::new(EngineConfig {
        flush: Duration::from_secs(60),
        chunk_max_bytes: 1000,
        ..config()
    });
    e.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "a".into(),
        tag: "a".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(Numbers {
            n: 300,
            batch: 10,
            tag: None,
        }),
    });
    e.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "b".into(),
        tag: "ignored".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(Numbers {
            n: 5,
            batch: 5,
            tag: Some("b.custom"),
        }),
    });
    e.add_output(output("k", "*", RetryLimit::Limited(1), &log, vec![]));
    e.run(tokio::time::sleep(Duration::from_secs(1)))
        .await
        .unwrap();
    let log = log.lock().unwrap();
    let a: Vec<_> = log.iter().filter(|(_, n, _)| n == "k:a").collect();
    assert!(
        a.len() >= 5,
        "chunks of ~1000 bytes expected, got {}",
        a.len()
    );
    assert_eq!(a.iter().map(|x| x.2.len()).sum::<usize>(), 300);
    assert_eq!(log.iter().filter(|(_, n, _)| n == "k:b.custom").count(), 1);
}

/// Drops every even record, delivers the rest.
struct DropsEven;

#[async_trait]
impl Output for DropsEven {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(DropsEven))
    }
}

#[async_trait]
impl OutputWorker for DropsEven {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        for i in (0..chunk.records).step_by(2) {
            progress.mark_dropped(i);
        }
        FlushResult::Ok
    }
}

#[tokio::test(start_paused = true)]
async fn records_an_output_drops_are_counted_as_dropped_not_processed() {
    let mut e = Engine::new(config());
    e.add_input(numbers(9));
    e.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "drops".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(DropsEven),
    });
    let metrics = e.metrics();
    let report = e
        .run(tokio::time::sleep(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(report.lost_records, 0);
    let m = &metrics.outputs()[0].1;
    assert_eq!(metrics::get(&m.dropped_records), 5);
    assert_eq!(metrics::get(&m.proc_records), 4);
}
