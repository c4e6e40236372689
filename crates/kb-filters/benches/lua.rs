//! The `lua` filter's cost per record: 1,000 records of ~1 KiB through a script that adds one
//! key (`record.env = "prod"`, code 2), run as the engine runs filters (kb-core's
//! `Standalone`). Two record shapes: the tail input's `{"log": <1 KiB line>}` (one key) and the
//! same line parsed into 17 keys with a nested `kubernetes` map, where the msgpack ↔ Lua
//! conversion of every key dominates. A pass-through script (code 0) shows the fixed cost of a
//! call.
//!
//! `cargo bench -p kb-filters --bench lua`. After criterion's figures it prints ns/record.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use kb_config::schema::{validate_section, FILTER_GENERIC_KEYS};
use kb_config::{Location, Property, Section, SectionKind};
use kb_core::event::{write_json_map, EventTime};
use kb_core::filter::{FilterInstance, Standalone};
use kb_core::record::write_event_start;
use kb_core::registry::ServiceContext;
use kb_core::tag::TagMatcher;

const RECORDS: usize = 1000;

const ADD_KEY: &str =
    r#"function cb(tag, ts, record) record.env = "prod" return 2, ts, record end"#;
const PASS: &str = "function cb(tag, ts, record) return 0, ts, record end";

fn stage(code: &str) -> Standalone {
    let mut s = Section::new(SectionKind::Filter, Location::Default);
    for (k, v) in [("match", "*"), ("call", "cb"), ("code", code)] {
        s.props.push(Property {
            key: k.into(),
            value: v.into(),
            location: Location::CommandLine {
                arg: format!("-p {k}={v}"),
            },
        });
    }
    let props = validate_section(
        &kb_filters::lua::PLUGIN.spec,
        FILTER_GENERIC_KEYS,
        &s,
        "lua.0",
    )
    .expect("valid section");
    let plugin = (kb_filters::lua::PLUGIN.build)(&props, &ServiceContext::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    Standalone::new(vec![FilterInstance {
        name: "lua.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        plugin,
    }])
}

/// A Kubernetes-like log line of 1023 bytes.
fn k8s_line(seq: usize) -> String {
    let head =
        format!(r#"2026-11-27T23:50:00.{seq:09}Z stdout F GET /api/v1/items/{seq} HTTP/1.1 200 "#);
    format!("{head}{}", "a".repeat(1023 - head.len()))
}

/// `RECORDS` events of one of the two shapes, and their size.
fn events(parsed: bool) -> (Vec<u8>, usize) {
    let mut data = Vec::new();
    for i in 0..RECORDS {
        let rec = if parsed {
            let line = k8s_line(i);
            serde_json::json!({
                "time": format!("2026-11-27T23:50:00.{i:09}Z"),
                "stream": "stdout",
                "_p": "F",
                "method": "GET",
                "path": format!("/api/v1/items/{i}"),
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 5120 + i,
                "duration_ms": 12.5,
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) kinesis-bit-bench",
                "request_id": format!("2e9d38f8-36a9-40a6-bdb2-{i:012}"),
                "upstream": "10.11.6.90:80",
                "cached": false,
                "tags": ["web", "prod", "frontend"],
                "kubernetes": {
                    "pod_name": "web-7d9f8b-x2k4l",
                    "namespace_name": "prod",
                    "container_name": "web",
                    "host": "ip-10-0-1-17.ec2.internal",
                    "labels": {"app": "web", "tier": "frontend"}
                },
                "seq": i,
                "log": &line[..620],
            })
        } else {
            serde_json::json!({ "log": k8s_line(i) })
        };
        write_event_start(&mut data, EventTime::new(1_764_287_400, i as u32));
        data.push(0x80);
        write_json_map(&mut data, rec.as_object().unwrap());
    }
    let n = data.len();
    (data, n)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("lua_1000_records");
    for (name, parsed, code) in [
        ("log_key_add_key", false, ADD_KEY),
        ("parsed_17_keys_add_key", true, ADD_KEY),
        ("parsed_17_keys_pass_through", true, PASS),
    ] {
        let (data, bytes) = events(parsed);
        let mut st = stage(code);
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(st.run_borrowed("app", &data).map(|(o, n)| (o.len(), n))))
        });
    }
    g.finish();
}

fn print_per_record() {
    println!("\nlua filter, {RECORDS} records per batch (best of 15 batches of 5 runs):");
    for (name, parsed, code) in [
        ("{\"log\": 1 KiB line}, add a key", false, ADD_KEY),
        ("17 keys (~1 KiB), add a key", true, ADD_KEY),
        ("17 keys (~1 KiB), code 0", true, PASS),
    ] {
        let (data, bytes) = events(parsed);
        let mut st = stage(code);
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..5 {
                black_box(st.run_borrowed("app", &data).map(|(o, n)| (o.len(), n)));
            }
            best = best.min(t.elapsed().as_secs_f64() / 5.0);
        }
        println!(
            "  {name:<34} {:>7.0} ns/record  ({} bytes/record in)",
            best * 1e9 / RECORDS as f64,
            bytes / RECORDS
        );
    }
}

criterion_group!(lua, benches);

fn main() {
    lua();
    Criterion::default().configure_from_args().final_summary();
    print_per_record();
}
