//! Shared test harness: build a filter from key/value pairs through its factory (validated
//! as the binary validates a `[FILTER]` section), run records through it with kb-core's
//! `Standalone` stage, and render what comes out as JSON lines, byte for byte as the stdout
//! output's `json_lines` writes a record.
#![allow(dead_code)]

use kb_config::schema::{validate_section, FILTER_GENERIC_KEYS};
use kb_config::{ConfigError, Location, Property, Props, Section, SectionKind};
use kb_core::event::{write_event_header, EventReader, EventTime};
use kb_core::filter::{Filter, FilterInstance, Standalone};
use kb_core::json::{write_json, JsonOptions, JsonStats};
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_core::tag::TagMatcher;

pub const CONF: &str = "/etc/kb/filter.conf";

/// Validate `kv` (each on its own line of a fake classic file, from line 2) against `plugin`.
pub fn props(plugin: &FilterPlugin, kv: &[(&str, &str)]) -> Result<Props, Vec<ConfigError>> {
    let mut s = Section::new(SectionKind::Filter, Location::classic(CONF, 1));
    for (i, (k, v)) in kv.iter().enumerate() {
        s.props.push(Property {
            key: k.to_string(),
            value: v.to_string(),
            location: Location::classic(CONF, i + 2),
        });
    }
    let name = format!("{}.0", plugin.spec.name);
    validate_section(&plugin.spec, FILTER_GENERIC_KEYS, &s, &name)
}

/// Build `plugin` from `kv` through its factory.
pub fn build(
    plugin: &FilterPlugin,
    kv: &[(&str, &str)],
) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let p = props(plugin, kv)?;
    (plugin.build)(&p, &ServiceContext::default())
}

/// The factory's (or validation's) errors as strings; panics when it succeeds.
pub fn build_errors(plugin: &FilterPlugin, kv: &[(&str, &str)]) -> Vec<String> {
    match build(plugin, kv) {
        Ok(_) => panic!("expected configuration errors for {kv:?}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// A stage running `filters` in order on every tag.
pub fn stage(filters: Vec<Box<dyn Filter>>) -> Standalone {
    Standalone::new(
        filters
            .into_iter()
            .enumerate()
            .map(|(i, plugin)| FilterInstance {
                name: format!("f.{i}"),
                matcher: TagMatcher::new(Some("*"), None).unwrap(),
                plugin,
            })
            .collect(),
    )
}

/// One event whose record is the JSON object `json` (key order kept).
pub fn event(json: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(json).expect("valid JSON in test");
    let mut buf = Vec::new();
    write_event_header(&mut buf, EventTime::new(1_700_000_000, 0));
    kb_core::event::write_json_map(&mut buf, v.as_object().expect("an object"));
    buf
}

/// One event whose record is the msgpack map `map`.
pub fn raw_event(map: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_event_header(&mut buf, EventTime::new(1_700_000_000, 0));
    buf.extend_from_slice(map);
    buf
}

/// The records of `events` as JSON lines (as the stdout output writes a record).
pub fn json_lines(events: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in EventReader::new(events) {
        let e = e.expect("well-formed event");
        let mut line = Vec::new();
        write_json(
            e.record,
            &mut line,
            &JsonOptions::default(),
            &mut JsonStats::default(),
        )
        .expect("valid msgpack");
        out.push(String::from_utf8(line).unwrap());
    }
    out
}

/// Run raw events through `filters`; the output records as JSON lines.
pub fn run_events(filters: Vec<Box<dyn Filter>>, events: &[u8], n: usize) -> Vec<String> {
    let mut st = stage(filters);
    let (out, count) = st.run("test", "test.0", events, n);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), count, "event count");
    lines
}

/// Run JSON records through `filters`; the output records as JSON lines.
pub fn run(filters: Vec<Box<dyn Filter>>, records: &[&str]) -> Vec<String> {
    let mut events = Vec::new();
    for r in records {
        events.extend_from_slice(&event(r));
    }
    run_events(filters, &events, records.len())
}

/// Build `plugin` from `kv` and run `records` through it.
pub fn filter(plugin: &FilterPlugin, kv: &[(&str, &str)], records: &[&str]) -> Vec<String> {
    let f = build(plugin, kv).unwrap_or_else(|e| panic!("{kv:?}: {e:?}"));
    run(vec![f], records)
}

/// A compact JSON text (`{"a": 1}` → `{"a":1}`), key order kept, to write expectations
/// readably.
pub fn compact(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("valid JSON in test");
    serde_json::to_string(&v).unwrap()
}

/// Msgpack map builder for records JSON cannot express (duplicate keys, bin, non-string
/// keys, invalid UTF-8).
#[derive(Default)]
pub struct Map {
    n: usize,
    body: Vec<u8>,
}

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entry with a string key and a raw msgpack value.
    pub fn raw(mut self, key: &[u8], value: &[u8]) -> Self {
        kb_core::record::write_str(&mut self.body, key);
        self.body.extend_from_slice(value);
        self.n += 1;
        self
    }

    /// Entry with raw msgpack key and value.
    pub fn raw_kv(mut self, key: &[u8], value: &[u8]) -> Self {
        self.body.extend_from_slice(key);
        self.body.extend_from_slice(value);
        self.n += 1;
        self
    }

    /// Entry with string key and string value.
    pub fn s(self, key: &str, value: &[u8]) -> Self {
        let mut v = Vec::new();
        kb_core::record::write_str(&mut v, value);
        self.raw(key.as_bytes(), &v)
    }

    /// Entry with a string key and a JSON value.
    pub fn j(self, key: &str, json: &str) -> Self {
        let mut v = Vec::new();
        kb_core::event::write_json_value(&mut v, &serde_json::from_str(json).unwrap());
        self.raw(key.as_bytes(), &v)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        kb_core::record::write_map_len(&mut out, self.n);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn event(&self) -> Vec<u8> {
        raw_event(&self.bytes())
    }
}

/// A msgpack bin value.
pub fn bin(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0xc4, data.len() as u8];
    v.extend_from_slice(data);
    v
}
