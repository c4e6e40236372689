//! Shared test harness: a recording output, the real engine, and helpers to build properties
//! from a fake configuration file and to decode recorded events.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::schema::{validate_section, INPUT_GENERIC_KEYS};
use kb_config::values::RetryLimit;
use kb_config::{ConfigError, Location, Property, Props, Section, SectionKind};
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::event::{EventReader, EventTime};
use kb_core::plugin::{FlushResult, Input, Output, OutputWorker, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use kb_core::tag::TagMatcher;
use kb_core::{Chunk, Progress};
use tokio::time::Instant;

/// One recorded chunk: when it was flushed, its tag and its bytes.
#[derive(Debug, Clone)]
pub struct Flushed {
    pub at: Instant,
    pub tag: String,
    pub data: Vec<u8>,
}

/// An output that keeps every chunk it is given.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Flushed>>>);

#[async_trait]
impl Output for Recorder {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl OutputWorker for Recorder {
    async fn flush(&mut self, chunk: &Chunk, _: &mut Progress) -> FlushResult {
        self.0.lock().unwrap().push(Flushed {
            at: Instant::now(),
            tag: chunk.tag.to_string(),
            data: chunk.data.to_vec(),
        });
        FlushResult::Ok
    }
}

/// A decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub time: EventTime,
    pub metadata: rmpv::Value,
    pub record: rmpv::Value,
    /// The msgpack bytes of the metadata map.
    pub metadata_bytes: Vec<u8>,
}

impl Recorder {
    /// Every event recorded so far, in order.
    pub fn events(&self) -> Vec<Rec> {
        let chunks = self.0.lock().unwrap().clone();
        let mut out = Vec::new();
        for c in &chunks {
            for e in EventReader::new(&c.data) {
                let e = e.expect("well-formed event");
                out.push(Rec {
                    time: e.time,
                    metadata: rmpv::decode::read_value(&mut &e.metadata[..]).unwrap(),
                    record: rmpv::decode::read_value(&mut &e.record[..]).unwrap(),
                    metadata_bytes: e.metadata.to_vec(),
                });
            }
        }
        out
    }

    pub fn chunks(&self) -> Vec<Flushed> {
        self.0.lock().unwrap().clone()
    }
}

/// Run `input` under the real engine (flush every 100 ms) until `shutdown` resolves or the
/// input asks to exit; returns what the output received.
pub async fn run_input(
    input: Box<dyn Input>,
    mem_buf_limit: Option<usize>,
    shutdown: impl Future<Output = ()>,
) -> (Recorder, EngineReport) {
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "test".into(),
        name: "test.0".into(),
        tag: "test".into(),
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
        plugin: Arc::new(rec.clone()),
    });
    let report = engine.run(shutdown).await.expect("engine runs");
    (rec, report)
}

pub const CONF: &str = "/etc/kb/test.conf";

/// Validate `kv` (each on its own line of a fake classic file, from line 2) against `plugin`.
pub fn props(plugin: &InputPlugin, kv: &[(&str, &str)]) -> Result<Props, Vec<ConfigError>> {
    let mut s = Section::new(SectionKind::Input, Location::classic(CONF, 1));
    for (i, (k, v)) in kv.iter().enumerate() {
        s.props.push(Property {
            key: k.to_string(),
            value: v.to_string(),
            location: Location::classic(CONF, i + 2),
        });
    }
    let name = format!("{}.0", plugin.spec.name);
    validate_section(&plugin.spec, INPUT_GENERIC_KEYS, &s, &name)
}

/// Build `plugin` from `kv` through its factory.
pub fn build(
    plugin: &InputPlugin,
    kv: &[(&str, &str)],
) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let p = props(plugin, kv)?;
    (plugin.build)(&p, &ServiceContext::default())
}

/// The factory's errors as strings (panics when it succeeds).
pub fn build_errors(plugin: &InputPlugin, kv: &[(&str, &str)]) -> Vec<String> {
    match build(plugin, kv) {
        Ok(_) => panic!("expected configuration errors for {kv:?}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// A msgpack value from JSON text, keeping key order.
pub fn mp(json: &str) -> rmpv::Value {
    to_rmpv(&serde_json::from_str(json).expect("valid JSON in test"))
}

pub fn to_rmpv(v: &serde_json::Value) -> rmpv::Value {
    use serde_json::Value as J;
    match v {
        J::Null => rmpv::Value::Nil,
        J::Bool(b) => rmpv::Value::Boolean(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmpv::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                rmpv::Value::from(i)
            } else {
                rmpv::Value::F64(n.as_f64().unwrap())
            }
        }
        J::String(s) => rmpv::Value::from(s.as_str()),
        J::Array(a) => rmpv::Value::Array(a.iter().map(to_rmpv).collect()),
        J::Object(m) => rmpv::Value::Map(
            m.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_rmpv(v)))
                .collect(),
        ),
    }
}

/// The keys of a msgpack map, in order.
pub fn keys(v: &rmpv::Value) -> Vec<String> {
    v.as_map()
        .expect("a map")
        .iter()
        .map(|(k, _)| k.as_str().expect("string key").to_string())
        .collect()
}

/// A free loopback port (bound once and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recorder whose flushes wait until the gate is open (a stalled output).
#[derive(Clone)]
pub struct Gated {
    pub rec: Recorder,
    pub open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl kb_core::plugin::Output for Gated {
    async fn new_worker(
        &self,
        _: usize,
    ) -> Result<Box<dyn kb_core::plugin::OutputWorker>, kb_core::plugin::PluginError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl kb_core::plugin::OutputWorker for Gated {
    async fn flush(
        &mut self,
        chunk: &kb_core::Chunk,
        progress: &mut kb_core::Progress,
    ) -> kb_core::plugin::FlushResult {
        let _ = self.open.wait_for(|o| *o).await;
        self.rec.flush(chunk, progress).await
    }
}
