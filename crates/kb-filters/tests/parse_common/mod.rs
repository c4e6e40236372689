//! Shared harness for the filter tests: a filter built from `key value` pairs and a parsers
//! text, run with kb-core's `Standalone` stage, its output as JSON lines.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use kb_config::schema::{validate_section, FILTER_GENERIC_KEYS};
use kb_config::{parse_classic_str, ConfigError, Env, Location, Property, Section, SectionKind};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::filter::{Filter, FilterInstance, Standalone};
use kb_core::json::{write_json, JsonOptions, JsonStats};
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_core::tag::TagMatcher;
use kb_parsers::Parsers;

pub const CONF: &str = "/etc/kb/filters.conf";

/// The service context of a parsers file's text.
pub fn service(parsers: &str) -> ServiceContext {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(parsers, Path::new("parsers.conf"), &mut env).unwrap();
    let (p, _) = Parsers::from_sections(&pc.parsers, &pc.multiline_parsers).unwrap();
    ServiceContext {
        parsers: Arc::new(p),
        ..ServiceContext::default()
    }
}

/// Build `plugin` from `kv` (lines 2.. of a fake classic file) with `svc`.
pub fn build_with(
    plugin: &FilterPlugin,
    kv: &[(&str, &str)],
    svc: &ServiceContext,
) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut s = Section::new(SectionKind::Filter, Location::classic(CONF, 1));
    for (i, (k, v)) in kv.iter().enumerate() {
        s.props.push(Property {
            key: k.to_string(),
            value: v.to_string(),
            location: Location::classic(CONF, i + 2),
        });
    }
    let name = format!("{}.0", plugin.spec.name);
    let props = validate_section(&plugin.spec, FILTER_GENERIC_KEYS, &s, &name)?;
    (plugin.build)(&props, svc)
}

/// The errors of building `plugin`, as strings.
pub fn errors(plugin: &FilterPlugin, kv: &[(&str, &str)], parsers: &str) -> Vec<String> {
    match build_with(plugin, kv, &service(parsers)) {
        Ok(_) => panic!("expected errors for {kv:?}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// A stage of one filter matching every tag.
pub fn stage(filter: Box<dyn Filter>) -> Standalone {
    Standalone::new(vec![FilterInstance {
        name: "f.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        plugin: filter,
    }])
}

/// Events from JSON objects, all at `time`.
pub fn events(time: EventTime, records: &[&str]) -> (Vec<u8>, usize) {
    let mut w = EventWriter::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        w.write_json_record(time, v.as_object().unwrap());
    }
    (w.buf, w.count)
}

/// Events as Fluent Bit's `json_lines` prints records (without the date key), with times.
pub fn json_lines(data: &[u8]) -> Vec<(EventTime, String)> {
    EventReader::new(data)
        .map(|e| {
            let e = e.unwrap();
            let mut out = Vec::new();
            write_json(
                e.record,
                &mut out,
                &JsonOptions::default(),
                &mut JsonStats::default(),
            )
            .unwrap();
            (e.time, String::from_utf8(out).unwrap())
        })
        .collect()
}

/// Only the JSON texts.
pub fn texts(data: &[u8]) -> Vec<String> {
    json_lines(data).into_iter().map(|(_, j)| j).collect()
}

/// What an engine run delivered: `(tag, time, JSON text)` per record, in order.
pub type Delivered = Vec<(String, EventTime, String)>;

/// An output keeping every chunk it is given.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<std::sync::Mutex<Delivered>>);

#[async_trait::async_trait]
impl kb_core::plugin::Output for Recorder {
    async fn new_worker(
        &self,
        _: usize,
    ) -> Result<Box<dyn kb_core::plugin::OutputWorker>, kb_core::plugin::PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl kb_core::plugin::OutputWorker for Recorder {
    async fn flush(
        &mut self,
        chunk: &kb_core::Chunk,
        _: &mut kb_core::Progress,
    ) -> kb_core::FlushResult {
        let mut got = self.0.lock().unwrap();
        for (t, j) in json_lines(&chunk.data) {
            got.push((chunk.tag.to_string(), t, j));
        }
        kb_core::FlushResult::Ok
    }
}

impl Recorder {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn get(&self) -> Delivered {
        self.0.lock().unwrap().clone()
    }
}

/// One step of a [`Feed`]: wait, then append records (JSON objects) under a tag.
pub struct Step {
    pub wait_ms: u64,
    pub tag: &'static str,
    pub records: Vec<String>,
}

/// An input appending its steps, then waiting to be stopped.
pub struct Feed(pub Vec<Step>);

#[async_trait::async_trait]
impl kb_core::plugin::Input for Feed {
    async fn run(
        self: Box<Self>,
        ctx: kb_core::input::InputContext,
    ) -> Result<(), kb_core::plugin::PluginError> {
        for (n, step) in self.0.into_iter().enumerate() {
            tokio::time::sleep(std::time::Duration::from_millis(step.wait_ms)).await;
            let refs: Vec<&str> = step.records.iter().map(String::as_str).collect();
            let (data, count) = events(EventTime::new(1_700_000_000 + n as u32, 0), &refs);
            ctx.append_tagged(step.tag, &data, count);
        }
        ctx.stopped().await;
        Ok(())
    }
}

/// Run `feed` through `filter` under the real engine until `want` records were delivered
/// (or `max_ms`), then stop; also returns the engine's report.
pub async fn run_engine(
    filter: Box<dyn Filter>,
    feed: Feed,
    want: usize,
    max_ms: u64,
) -> (Delivered, kb_core::engine::EngineReport) {
    use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: std::time::Duration::from_millis(50),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "feed".into(),
        name: "feed.0".into(),
        tag: "feed".into(),
        mem_buf_limit: None,
        filesystem: false,
        plugin: Box::new(feed),
    });
    engine.add_filter(FilterInstance {
        name: "multiline.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        plugin: filter,
    });
    engine.add_output(OutputInstance {
        plugin_name: "recorder".into(),
        name: "recorder.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: kb_config::values::RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(rec.clone()),
    });
    let watch = rec.clone();
    let report = engine
        .run(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(max_ms);
            while watch.len() < want && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("engine runs");
    (rec.get(), report)
}

/// `{"log": line}` for each line.
pub fn logs(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| serde_json::json!({ "log": l }).to_string())
        .collect()
}
