//! The JSON bodies of Fluent Bit's monitoring API and the cmetrics text of `/api/v2/metrics`,
//! in Fluent Bit's key names and order so existing dashboards and scripts keep working.

use std::fmt::Write;

use std::sync::Arc;

use kb_core::metrics::Metrics;
use serde_json::{json, Map, Value as Json};

use crate::families::{
    input_chunks, storage_totals, EngineCounter, Family, Kind, Value, FILTER_COUNTERS,
    INPUT_COUNTERS, OUTPUT_COUNTERS,
};
use crate::health::{HealthConfig, HealthState};
use crate::prometheus::{format_labels, format_value};

/// `GET /`: build information. The key stays `fluent-bit` because tools look for it.
pub fn root(version: &str) -> Json {
    json!({
        "fluent-bit": {
            "version": version,
            "edition": "Community",
            // Fluent Bit's build flags whose features kinesis-bit has.
            "flags": [
                "FLB_HAVE_TLS",
                "FLB_HAVE_METRICS",
                "FLB_HAVE_HTTP_SERVER",
                "FLB_HAVE_SQLDB",
                "FLB_HAVE_REGEX",
                "FLB_HAVE_AWS",
                "FLB_HAVE_SIGNV4",
            ]
        }
    })
}

fn plural(n: u64) -> &'static str {
    if n > 1 {
        "s"
    } else {
        ""
    }
}

/// Fluent Bit's human-readable uptime, two spaces after the colon included.
pub fn uptime_hr(secs: u64) -> String {
    let days = secs / 86_400;
    let hours = secs % 86_400 / 3_600;
    let minutes = secs % 3_600 / 60;
    let seconds = secs % 60;
    format!(
        "Fluent Bit has been running:  {days} day{}, {hours} hour{}, {minutes} minute{} and {seconds} second{}",
        plural(days),
        plural(hours),
        plural(minutes),
        plural(seconds)
    )
}

/// `GET /api/v1/uptime`.
pub fn uptime(secs: u64) -> Json {
    json!({ "uptime_sec": secs, "uptime_hr": uptime_hr(secs) })
}

/// `GET /api/v1/metrics`: per instance counters, inputs, filters and outputs.
pub fn metrics(m: &Metrics) -> Json {
    json!({
        "input": instances(INPUT_COUNTERS, &m.inputs()),
        "filter": instances(FILTER_COUNTERS, &m.filters()),
        "output": instances(OUTPUT_COUNTERS, &m.outputs()),
    })
}

/// Fluent Bit's human-readable size: `512b`, `1.5K`, `8.0M`.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}b");
    }
    let mut v = bytes as f64 / 1024.0;
    for unit in ["K", "M", "G"] {
        if v < 1024.0 {
            return format!("{v:.1}{unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1}T")
}

/// `GET /api/v1/storage`: the storage layer's chunk counts and each input's chunks.
pub fn storage(m: &Metrics) -> Json {
    let inputs = input_chunks(m);
    let t = storage_totals(&inputs);
    let per_input: Map<String, Json> = inputs
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                json!({
                    "status": {
                        "overlimit": c.overlimit,
                        "mem_size": human_size(c.mem_bytes),
                        "mem_limit": human_size(c.mem_limit),
                    },
                    "chunks": {
                        "total": c.total(),
                        "up": c.up,
                        "down": c.down,
                        "busy": c.busy,
                        "busy_size": human_size(c.busy_bytes),
                    }
                }),
            )
        })
        .collect();
    json!({
        "storage_layer": {
            "chunks": {
                "total_chunks": t.total,
                "mem_chunks": t.mem,
                "fs_chunks": t.fs,
                "fs_chunks_up": t.fs_up,
                "fs_chunks_down": t.fs_down,
            }
        },
        "input_chunks": per_input,
    })
}

/// `{"<instance>": {"<key>": n, …}, …}`.
fn instances<M>(counters: &[EngineCounter<M>], list: &[(String, Arc<M>)]) -> Map<String, Json> {
    list.iter()
        .map(|(name, m)| {
            let fields = counters
                .iter()
                .map(|c| (c.key.to_string(), Json::from((c.read)(m))))
                .collect();
            (name.clone(), Json::Object(fields))
        })
        .collect()
}

/// `GET /api/v2/health`: the verdict and the numbers behind it.
pub fn health_v2(state: HealthState, config: HealthConfig) -> Json {
    json!({
        "status": if state.healthy { "ok" } else { "error" },
        "errors": state.errors,
        "retries_failed": state.retries_failed,
        "error_limit": config.errors_count,
        "retry_failure_limit": config.retry_failure_count,
        "period_limit": config.period_secs,
    })
}

/// `GET /api/v2/metrics`: cmetrics' text format, one line per series,
/// `<RFC 3339 time> name{labels} = value`; a histogram's series on one line as
/// `= { buckets = { le=n, … }, sum=s, count=c }`.
pub fn cmetrics_text(families: &[Family], now: &str) -> String {
    let mut out = String::new();
    for f in families {
        if f.kind != Kind::Histogram {
            for s in &f.samples {
                let _ = writeln!(
                    out,
                    "{now} {}{} = {}",
                    f.name,
                    format_labels(&s.labels),
                    format_value(s.value)
                );
            }
            continue;
        }
        // Samples are grouped per series (see `families::order_histogram`): buckets, sum, count.
        let mut buckets: Vec<String> = Vec::new();
        let mut sum = Value::Int(0);
        for s in &f.samples {
            match s.suffix {
                "_bucket" => {
                    let le = s
                        .labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("+Inf");
                    buckets.push(format!("{le}={}", format_value(s.value)));
                }
                "_sum" => sum = s.value,
                _ => {
                    let labels: Vec<(String, String)> = s
                        .labels
                        .iter()
                        .filter(|(k, _)| k != "le")
                        .cloned()
                        .collect();
                    let _ = writeln!(
                        out,
                        "{now} {}{} = {{ buckets = {{ {} }}, sum={}, count={} }}",
                        f.name,
                        format_labels(&labels),
                        buckets.join(", "),
                        format_value(sum),
                        format_value(s.value)
                    );
                    buckets.clear();
                    sum = Value::Int(0);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::Sample;
    use kb_core::metrics::add;

    #[test]
    fn uptime_reads_like_fluent_bit() {
        assert_eq!(
            uptime_hr(8_950_000),
            "Fluent Bit has been running:  103 days, 14 hours, 6 minutes and 40 seconds"
        );
        assert_eq!(
            uptime_hr(3_661),
            "Fluent Bit has been running:  0 day, 1 hour, 1 minute and 1 second"
        );
        assert_eq!(uptime(5)["uptime_sec"], 5);
    }

    #[test]
    fn metrics_json_has_fluent_bit_keys_in_order() {
        let m = Metrics::default();
        add(&m.input("cpu.0").records, 8);
        add(&m.output("kinesis_streams.0").retries, 1);
        let body = serde_json::to_string(&metrics(&m)).unwrap();
        assert_eq!(
            body,
            r#"{"input":{"cpu.0":{"records":8,"bytes":0}},"filter":{},"output":{"kinesis_streams.0":{"proc_records":0,"proc_bytes":0,"errors":0,"retries":1,"retries_failed":0,"dropped_records":0,"retried_records":0}}}"#
        );
    }

    #[test]
    fn root_keeps_the_fluent_bit_key() {
        let r = root("1.2.3");
        assert_eq!(r["fluent-bit"]["version"], "1.2.3");
        assert_eq!(r["fluent-bit"]["edition"], "Community");
    }

    #[test]
    fn cmetrics_text_lines() {
        let counter = Family {
            name: "c_total".into(),
            help: String::new(),
            kind: Kind::Counter,
            samples: vec![Sample {
                suffix: "",
                labels: vec![("name".into(), "x".into())],
                value: Value::Int(3),
            }],
        };
        let lbl = |le: &str| vec![("name".into(), "x".into()), ("le".into(), le.into())];
        let hist = Family {
            name: "h".into(),
            help: String::new(),
            kind: Kind::Histogram,
            samples: vec![
                Sample {
                    suffix: "_bucket",
                    labels: lbl("0.5"),
                    value: Value::Int(1),
                },
                Sample {
                    suffix: "_bucket",
                    labels: lbl("+Inf"),
                    value: Value::Int(2),
                },
                Sample {
                    suffix: "_sum",
                    labels: vec![("name".into(), "x".into())],
                    value: Value::Float(0.75),
                },
                Sample {
                    suffix: "_count",
                    labels: vec![("name".into(), "x".into())],
                    value: Value::Int(2),
                },
            ],
        };
        assert_eq!(
            cmetrics_text(&[counter, hist], "T"),
            "T c_total{name=\"x\"} = 3\n\
             T h{name=\"x\"} = { buckets = { 0.5=1, +Inf=2 }, sum=0.75, count=2 }\n"
        );
    }
}
