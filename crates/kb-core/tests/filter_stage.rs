//! The filter stage in the engine: configuration order, tag matching, change/drop/replace,
//! Fluent Bit's filter counters, and emitters whose records re-enter the pipeline without
//! looping through the filter that emitted them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, FilterInstance, InputInstance, OutputInstance};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::filter::{Emitter, EmitterSpec, Filter, FilterCx, Verdict};
use kb_core::input::InputContext;
use kb_core::metrics::{self, Metrics};
use kb_core::plugin::{FlushResult, Input, Output, OutputWorker, PluginError};
use kb_core::record::{write_str, Record};
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};

/// Appends `n` records `{"seq": i}` in one batch, then waits to be stopped.
struct Numbers {
    n: usize,
    tag: &'static str,
}

#[async_trait]
impl Input for Numbers {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut w = EventWriter::new();
        for i in 0..self.n {
            let rec = serde_json::json!({ "seq": i });
            w.write_json_record(EventTime::new(1_700_000_000, 0), rec.as_object().unwrap());
        }
        ctx.append_tagged(self.tag, &w.buf, w.count);
        ctx.stopped().await;
        Ok(())
    }
}

/// Records (tag, record as JSON) of every flush.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(String, serde_json::Value)>>>);

#[async_trait]
impl Output for Collect {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

fn to_json(v: &rmpv::Value) -> serde_json::Value {
    match v {
        rmpv::Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), to_json(v)))
                .collect(),
        ),
        rmpv::Value::String(s) => serde_json::Value::from(s.as_str().unwrap()),
        rmpv::Value::Integer(i) => serde_json::Value::from(i.as_i64().unwrap()),
        _ => serde_json::Value::Null,
    }
}

#[async_trait]
impl OutputWorker for Collect {
    async fn flush(&mut self, chunk: &Chunk, _: &mut Progress) -> FlushResult {
        let mut v = self.0.lock().unwrap();
        for e in EventReader::new(&chunk.data) {
            let e = e.unwrap();
            let r = rmpv::decode::read_value(&mut &e.record[..]).unwrap();
            v.push((chunk.tag.to_string(), to_json(&r)));
        }
        FlushResult::Ok
    }
}

fn seq(r: &Record<'_>) -> i64 {
    let i = r.find(b"seq").unwrap();
    rmpv::decode::read_value(&mut r.value(i))
        .unwrap()
        .as_i64()
        .unwrap()
}

/// Adds `by: <name>`.
struct Mark(&'static str);
impl Filter for Mark {
    fn filter(&self, r: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        r.push_str(b"by", self.0.as_bytes());
        Verdict::Keep
    }
}

/// Drops odd seqs.
struct DropOdd;
impl Filter for DropOdd {
    fn filter(&self, r: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        if seq(r) % 2 == 1 {
            Verdict::Drop
        } else {
            Verdict::Keep
        }
    }
}

/// Replaces seq 0 with two records `{"copy": n}`.
struct Split;
impl Filter for Split {
    fn filter(&self, r: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        if seq(r) != 0 {
            return Verdict::Keep;
        }
        for n in 0..2 {
            cx.emit(|buf| {
                kb_core::event::write_event_header(buf, r.time);
                let rec = serde_json::json!({ "seq": 100 + n });
                kb_core::event::write_json_map(buf, rec.as_object().unwrap());
            });
        }
        Verdict::Replace
    }
}

/// Re-tags every record to `new.<tag>` through an emitter, dropping the original.
struct Retag(Emitter);
impl Filter for Retag {
    fn filter(&self, r: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let mut ev = Vec::new();
        r.write_event(&mut ev);
        assert!(self.0.append(&format!("new.{}", cx.tag), &ev, 1));
        Verdict::Drop
    }
    fn emitter(&self) -> Option<EmitterSpec> {
        Some(EmitterSpec {
            name: "emitter_for_retag.0".into(),
            mem_buf_limit: Some(1 << 20),
            filesystem: false,
            emitter: self.0.clone(),
        })
    }
}

fn filter(name: &str, m: &str, plugin: Box<dyn Filter>) -> FilterInstance {
    FilterInstance {
        name: name.into(),
        matcher: TagMatcher::new(Some(m), None).unwrap(),
        plugin,
    }
}

async fn run(n: usize, tag: &'static str, filters: Vec<FilterInstance>) -> (Collect, Arc<Metrics>) {
    let out = Collect::default();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(50),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "numbers".into(),
        name: "numbers.0".into(),
        tag: tag.into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(Numbers { n, tag }),
    });
    for f in filters {
        engine.add_filter(f);
    }
    engine.add_output(OutputInstance {
        plugin_name: "collect".into(),
        name: "collect.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(out.clone()),
    });
    let metrics = engine.metrics();
    engine
        .run(tokio::time::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    (out, metrics)
}

#[tokio::test]
async fn filters_run_in_order_on_matching_tags_and_count() {
    let (out, m) = run(
        4,
        "app.x",
        vec![
            filter("drop.0", "app.*", Box::new(DropOdd)),
            filter("split.1", "*", Box::new(Split)),
            filter("mark.2", "app.*", Box::new(Mark("two"))),
            filter("other.3", "db.*", Box::new(Mark("never"))),
        ],
    )
    .await;
    let got: Vec<String> = out
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| format!("{t} {r}"))
        .collect();
    assert_eq!(
        got,
        [
            r#"app.x {"seq":100,"by":"two"}"#,
            r#"app.x {"seq":101,"by":"two"}"#,
            r#"app.x {"seq":2,"by":"two"}"#,
        ]
    );
    let f = m.filters();
    let by = |n: &str| f.iter().find(|(name, _)| name == n).unwrap().1.clone();
    assert_eq!(metrics::get(&by("drop.0").records), 4);
    assert_eq!(metrics::get(&by("drop.0").drop_records), 2);
    assert_eq!(metrics::get(&by("split.1").records), 2);
    assert_eq!(metrics::get(&by("split.1").add_records), 1);
    assert_eq!(metrics::get(&by("mark.2").records), 3);
    assert_eq!(metrics::get(&by("other.3").records), 0);
    // Input counters count what the input produced, before filters.
    assert_eq!(metrics::get(&m.input("numbers.0").records), 4);
}

#[tokio::test]
async fn emitted_records_reenter_the_pipeline_but_not_their_own_filter() {
    let (out, m) = run(
        2,
        "app",
        vec![
            filter("retag.0", "*", Box::new(Retag(Emitter::new()))),
            filter("mark.1", "new.*", Box::new(Mark("after"))),
        ],
    )
    .await;
    let got: Vec<String> = out
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| format!("{t} {r}"))
        .collect();
    // Each record went through the emitter once (never re-tagged to new.new.app).
    assert_eq!(
        got,
        [
            r#"new.app {"seq":0,"by":"after"}"#,
            r#"new.app {"seq":1,"by":"after"}"#,
        ]
    );
    assert_eq!(metrics::get(&m.input("emitter_for_retag.0").records), 2);
    let f = m.filters();
    assert_eq!(metrics::get(&f[0].1.drop_records), 2);
}

#[test]
fn a_key_written_by_a_filter_is_a_msgpack_string() {
    let mut b = Vec::new();
    write_str(&mut b, &[b'x'; 40]);
    assert_eq!(b[0], 0xd9);
    assert_eq!(b[1], 40);
}

/// Appends `n` records in batches of 100, waiting for `ready()` before each batch.
struct Paced {
    n: usize,
}

#[async_trait]
impl Input for Paced {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut i = 0;
        while i < self.n {
            ctx.ready().await;
            if ctx.is_stopping() {
                break;
            }
            let mut w = EventWriter::new();
            for _ in 0..100 {
                let rec = serde_json::json!({ "seq": i, "pad": "x".repeat(200) });
                w.write_json_record(EventTime::new(1, 0), rec.as_object().unwrap());
                i += 1;
            }
            ctx.append(&w.buf, w.count);
            tokio::task::yield_now().await;
        }
        ctx.stopped().await;
        Ok(())
    }
}

/// An output that delivers nothing until opened.
#[derive(Clone)]
struct Gated {
    open: Arc<std::sync::atomic::AtomicBool>,
    got: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Output for Gated {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl OutputWorker for Gated {
    async fn flush(&mut self, chunk: &Chunk, _: &mut Progress) -> FlushResult {
        while !self.open.load(std::sync::atomic::Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.got
            .fetch_add(chunk.records, std::sync::atomic::Ordering::AcqRel);
        FlushResult::Ok
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_pauses_while_the_emitter_it_feeds_is_full() {
    use std::sync::atomic::Ordering;
    let gate = Gated {
        open: Arc::default(),
        got: Arc::default(),
    };
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(20),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "paced".into(),
        name: "paced.0".into(),
        tag: "app".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(Paced { n: 20_000 }),
    });
    struct SmallRetag(Emitter);
    impl Filter for SmallRetag {
        fn filter(&self, r: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
            let mut ev = Vec::new();
            r.write_event(&mut ev);
            self.0.append(&format!("new.{}", cx.tag), &ev, 1);
            Verdict::Drop
        }
        fn emitter(&self) -> Option<EmitterSpec> {
            Some(EmitterSpec {
                name: "small_emitter".into(),
                mem_buf_limit: Some(100_000),
                filesystem: false,
                emitter: self.0.clone(),
            })
        }
    }
    engine.add_filter(filter(
        "retag.0",
        "app",
        Box::new(SmallRetag(Emitter::new())),
    ));
    engine.add_output(OutputInstance {
        plugin_name: "gated".into(),
        name: "gated.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(gate.clone()),
    });
    let m = engine.metrics();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(engine.run(async {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // 20,000 records of ~230 bytes would be 4.6 MB: the emitter holds its limit plus at most
    // one batch of the source, and the source stopped producing.
    let held = metrics::get(&m.input("small_emitter").bytes);
    let produced = metrics::get(&m.input("paced.0").records);
    assert!(held < 200_000, "emitter took {held} bytes");
    assert!(produced < 2_000, "the source produced {produced} records");
    gate.open.store(true, Ordering::Release);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gate.got.load(Ordering::Acquire) < 20_000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gate.got.load(Ordering::Acquire), 20_000);
    let _ = tx.send(());
    run.await.unwrap().unwrap();
}
