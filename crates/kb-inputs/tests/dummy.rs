//! `dummy` through the real engine under virtual time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{build, mp, run_input, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::event::EventTime;
use kb_core::plugin::{FlushResult, Output, OutputWorker, PluginError};
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};
use kb_inputs::dummy;
use tokio::sync::watch;
use tokio::time::sleep;

const START: u32 = 1_700_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn defaults_one_record_per_second() {
    let input = build(&dummy::PLUGIN, &[]).unwrap();
    let before = EventTime::now();
    let (rec, report) = run_input(input, None, sleep(ms(3_500))).await;
    let events = rec.events();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.record, mp(r#"{"message":"dummy"}"#));
        assert_eq!(e.metadata_bytes, [0x80]);
        assert!(e.time >= before, "wall-clock timestamps");
    }
    assert_eq!(report.lost_records, 0);
    assert!(rec.chunks().iter().all(|c| c.tag == "test"));
}

#[tokio::test(start_paused = true)]
async fn rate_copies_and_start_time() {
    let input = build(
        &dummy::PLUGIN,
        &[
            ("Rate", "4"),
            ("copies", "2"),
            ("start_time_sec", "1700000000"),
        ],
    )
    .unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(1_100))).await;
    let times: Vec<EventTime> = rec.events().iter().map(|e| e.time).collect();
    // Periods of 250 ms; the start time advances with the time elapsed since start.
    let expected: Vec<EventTime> = [250, 250, 500, 500, 750, 750, 1000, 1000]
        .iter()
        .map(|ms| EventTime::new(START + ms / 1000, (ms % 1000) * 1_000_000))
        .collect();
    assert_eq!(times, expected);
}

#[tokio::test(start_paused = true)]
async fn interval_overrides_rate() {
    let input = build(
        &dummy::PLUGIN,
        &[
            ("rate", "10"),
            ("interval_sec", "2"),
            ("interval_nsec", "500000000"),
            ("start_time_sec", "1700000000"),
            ("start_time_nsec", "7"),
        ],
    )
    .unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(5_600))).await;
    let times: Vec<EventTime> = rec.events().iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        [
            EventTime::new(START + 2, 500_000_007),
            EventTime::new(START + 5, 7)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn samples_limit_generations() {
    let input = build(
        &dummy::PLUGIN,
        &[("samples", "3"), ("copies", "2"), ("rate", "10")],
    )
    .unwrap();
    let (rec, report) = run_input(input, None, sleep(ms(10_000))).await;
    assert_eq!(rec.events().len(), 6);
    assert_eq!(report.unfinished_tasks, 0);
}

#[tokio::test(start_paused = true)]
async fn fixed_timestamp_with_and_without_start_time() {
    let input = build(
        &dummy::PLUGIN,
        &[
            ("fixed_timestamp", "on"),
            ("start_time_sec", "1700000000"),
            ("start_time_nsec", "123"),
        ],
    )
    .unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(3_500))).await;
    let times: Vec<EventTime> = rec.events().iter().map(|e| e.time).collect();
    assert_eq!(times, vec![EventTime::new(START, 123); 3]);

    let input = build(&dummy::PLUGIN, &[("fixed_timestamp", "yes"), ("rate", "2")]).unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(2_100))).await;
    let times: Vec<EventTime> = rec.events().iter().map(|e| e.time).collect();
    assert_eq!(times.len(), 4);
    assert!(times.iter().all(|t| *t == times[0]));
}

#[tokio::test(start_paused = true)]
async fn record_and_metadata_bytes() {
    let input = build(
        &dummy::PLUGIN,
        &[
            (
                "dummy",
                r#"{"b": 2, "a": {"x": [1, 2.5, null, true]}, "s": "é"}"#,
            ),
            ("metadata", r#"{"k":"v","n":-1}"#),
            ("samples", "1"),
            ("flush_on_startup", "on"),
            ("start_time_sec", "1700000000"),
        ],
    )
    .unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(2_500))).await;
    let events = rec.events();
    assert_eq!(events.len(), 1, "flush_on_startup counts against samples");
    let e = &events[0];
    assert_eq!(e.time, EventTime::new(START, 0), "generated at start");
    assert_eq!(
        e.record,
        mp(r#"{"b": 2, "a": {"x": [1, 2.5, null, true]}, "s": "é"}"#)
    );
    assert_eq!(common::keys(&e.record), ["b", "a", "s"]);
    // fixmap 2, "k", "v", "n", -1 (negative fixint)
    assert_eq!(
        e.metadata_bytes,
        [0x82, 0xa1, b'k', 0xa1, b'v', 0xa1, b'n', 0xff]
    );
}

/// An output whose flushes wait until the gate opens.
#[derive(Clone)]
struct Gated {
    rec: Recorder,
    gate: watch::Receiver<bool>,
}

#[async_trait]
impl Output for Gated {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl OutputWorker for Gated {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        let _ = self.gate.wait_for(|open| *open).await;
        self.rec.flush(chunk, progress).await
    }
}

#[tokio::test(start_paused = true)]
async fn pauses_while_over_mem_buf_limit() {
    let (open, gate) = watch::channel(false);
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: ms(100),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "dummy.0".into(),
        tag: "dummy.0".into(),
        mem_buf_limit: Some(1),
        filesystem: false,
        plugin: build(
            &dummy::PLUGIN,
            &[("rate", "10"), ("start_time_sec", "1700000000")],
        )
        .unwrap(),
    });
    engine.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "gated.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(Gated {
            rec: rec.clone(),
            gate,
        }),
    });
    let opened_at = Arc::new(Mutex::new(None));
    let shutdown = {
        let opened_at = opened_at.clone();
        async move {
            sleep(ms(3_000)).await;
            *opened_at.lock().unwrap() = Some(tokio::time::Instant::now());
            open.send_replace(true);
            sleep(ms(1_050)).await;
        }
    };
    engine.run(shutdown).await.unwrap();
    let times: Vec<EventTime> = rec.events().iter().map(|e| e.time).collect();
    // One record at 100 ms fills the budget; nothing is generated until the output took it.
    assert_eq!(times[0], EventTime::new(START, 100_000_000));
    assert!(times[1] >= EventTime::new(START + 3, 0), "{times:?}");
    assert!(times.len() > 3, "resumes after the release: {times:?}");
}

/// Real time: periods shorter than the timer resolution are caught up in batches (a few
/// more can come while the stop propagates).
#[tokio::test]
async fn high_rate_in_real_time() {
    let input = build(&dummy::PLUGIN, &[("rate", "5000")]).unwrap();
    let (rec, _) = run_input(input, None, sleep(ms(1_000))).await;
    let n = rec.events().len();
    assert!((2_500..=5_250).contains(&n), "{n} records in one second");
}
