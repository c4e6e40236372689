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
            write_json(e.record, &mut out, &JsonOptions::default(), &mut JsonStats::default()).unwrap();
            (e.time, String::from_utf8(out).unwrap())
        })
        .collect()
}

/// Only the JSON texts.
pub fn texts(data: &[u8]) -> Vec<String> {
    json_lines(data).into_iter().map(|(_, j)| j).collect()
}
