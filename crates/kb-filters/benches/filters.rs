//! Each filter on 1,000 records of a realistic log record: a ~1 KiB Kubernetes JSON line as
//! the tail input's JSON parser leaves it (8 top-level keys, a nested map), run through
//! kb-core's `Standalone` stage as the engine runs filters (decode once, filter, encode once
//! or copy as it came).
//!
//! `cargo bench -p kb-filters --bench filters`. After criterion's figures it prints the cost
//! of each filter in ns/record (best of several batches), next to the stage with a filter
//! that changes nothing (decode + copy).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use kb_core::filter::{Filter, Standalone};

#[path = "../tests/common/mod.rs"]
mod common;

const RECORDS: usize = 1000;

/// 1,000 events of a Kubernetes-like record of about 1 KiB of JSON, 8 top-level keys.
fn events() -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut json_bytes = 0;
    for i in 0..RECORDS {
        let head = format!(
            r#"{{"time":"2026-11-27T23:50:00.{i:09}Z","stream":"stdout","level":"{}","kubernetes":{{"pod_name":"web-7d9f8b-x2k4l","namespace_name":"prod","container_name":"web","host":"ip-10-0-1-17.ec2.internal","labels":{{"app":"web","tier":"frontend"}}}},"code":"{}","seq":{i},"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","log":"GET /api/v1/items/{i} HTTP/1.1 200 "#,
            if i % 10 == 0 { "error" } else { "info" },
            200 + i % 5
        );
        let tail = r#""}"#;
        let line = format!("{head}{}{tail}", "a".repeat(1023 - head.len() - tail.len()));
        json_bytes += line.len();
        out.extend_from_slice(&common::event(&line));
    }
    (out, json_bytes)
}

fn cases() -> Vec<(&'static str, Box<dyn Filter>)> {
    let b = |p: &kb_core::registry::FilterPlugin, kv: &[(&str, &str)]| {
        common::build(p, kv).unwrap_or_else(|e| panic!("{e:?}"))
    };
    vec![
        (
            "unchanged (grep keeping all)",
            b(&kb_filters::grep::PLUGIN, &[("Regex", "stream ^std")]),
        ),
        (
            "record_modifier",
            b(
                &kb_filters::record_modifier::PLUGIN,
                &[
                    ("Record", "cluster prod-eu-1"),
                    ("Record", "team payments"),
                    ("Remove_key", "user_agent"),
                ],
            ),
        ),
        (
            "record_modifier uuid",
            b(&kb_filters::record_modifier::PLUGIN, &[("Uuid_key", "id")]),
        ),
        (
            "grep (drops 90%)",
            b(
                &kb_filters::grep::PLUGIN,
                &[
                    ("Regex", "level ^error$"),
                    ("Exclude", "$kubernetes['labels']['tier'] ^backend$"),
                ],
            ),
        ),
        (
            "grep on log (1 KiB)",
            b(
                &kb_filters::grep::PLUGIN,
                &[("Regex", "log HTTP/1\\.1 [0-9]{3} a+$")],
            ),
        ),
        (
            "modify",
            b(
                &kb_filters::modify::PLUGIN,
                &[
                    ("Condition", "Key_value_matches stream ^std"),
                    ("Condition", "Key_exists $kubernetes['labels']['app']"),
                    ("Set", "env prod"),
                    ("Rename", "stream source"),
                    ("Copy", "level severity"),
                    ("Remove", "user_agent"),
                    ("Move_to_start", "log"),
                ],
            ),
        ),
        (
            "nest lift",
            b(
                &kb_filters::nest::PLUGIN,
                &[
                    ("Operation", "lift"),
                    ("Nested_under", "kubernetes"),
                    ("Add_prefix", "k8s."),
                ],
            ),
        ),
        (
            "nest nest",
            b(
                &kb_filters::nest::PLUGIN,
                &[
                    ("Operation", "nest"),
                    ("Wildcard", "time"),
                    ("Wildcard", "s*"),
                    ("Nest_under", "meta"),
                ],
            ),
        ),
        (
            "type_converter",
            b(
                &kb_filters::type_converter::PLUGIN,
                &[
                    ("str_key", "code code_int int"),
                    ("int_key", "seq seq_str string"),
                ],
            ),
        ),
        (
            "expect (passing, warn)",
            b(
                &kb_filters::expect::PLUGIN,
                &[
                    ("key_exists", "$kubernetes['labels']['app']"),
                    ("key_val_eq", "stream stdout"),
                    ("key_val_is_not_null", "log"),
                ],
            ),
        ),
        (
            "throttle (under rate)",
            b(&kb_filters::throttle::PLUGIN, &[("Rate", "1e12")]),
        ),
    ]
}

fn stage(f: Box<dyn Filter>) -> Standalone {
    common::stage(vec![f])
}

fn benches(c: &mut Criterion) {
    let (events, _) = events();
    let mut g = c.benchmark_group("filters_1000_records");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(2));
    g.warm_up_time(std::time::Duration::from_millis(500));
    for (name, f) in cases() {
        let mut st = stage(f);
        g.bench_function(name, |b| {
            b.iter(|| black_box(st.run_borrowed("kube.web", &events).map(|(_, n)| n)))
        });
    }
    g.finish();
}

fn print_ns_per_record() {
    let (events, json_bytes) = events();
    println!(
        "\nns/record, {RECORDS} records of {} bytes of JSON, 8 keys (best of 15 batches of 20 runs):",
        json_bytes / RECORDS
    );
    for (name, f) in cases() {
        let mut st = stage(f);
        let mut kept = 0;
        for _ in 0..5 {
            kept = st.run_borrowed("kube.web", &events).unwrap().1;
        }
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..20 {
                black_box(st.run_borrowed("kube.web", &events));
            }
            best = best.min(t.elapsed().as_secs_f64() / 20.0);
        }
        println!(
            "  {name:30} {:8.0} ns/record  ({kept} of {RECORDS} kept)",
            best * 1e9 / RECORDS as f64
        );
    }
}

criterion_group!(filter_benches, benches);

fn main() {
    filter_benches();
    Criterion::default().configure_from_args().final_summary();
    print_ns_per_record();
}
