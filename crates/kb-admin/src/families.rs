//! The metrics registry as metric families (name, help, type, samples): the one model both
//! text encoders (Prometheus, cmetrics) write, so they always agree.
//!
//! Engine counters get Fluent Bit's names (`fluentbit_input_*`, `fluentbit_output_*`) with the
//! instance as label `name`. Plugin counters come from [`Metrics::counters`] as registered; a
//! plugin histogram is registered as plain counters (`X_bucket{le}`, `X_sum_micros`, `X_count`)
//! and is reassembled here into one valid `histogram` family `X` (sum in seconds).
//! Storage gauges (`fluentbit_storage_*`, `fluentbit_input_storage_*`) are read from each
//! input's chunk gauges; kinesis-bit adds counters of the filesystem layer
//! (`fluentbit_storage_*_total`: corrupt, recovered, replayed, loaded chunks …).

use std::collections::HashSet;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use kb_core::metrics::{get, FilterMetrics, InputMetrics, Metrics, OutputMetrics, StorageCounters};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word after `# TYPE name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: counters are integers, a histogram's sum is seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// One line of a family: the family name plus `suffix` (`""`, `_bucket`, `_sum`, `_count`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub suffix: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: Value,
}

/// A metric family: one `# HELP` and one `# TYPE` line, then its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// What the process knows about itself, for `fluentbit_uptime` and friends.
#[derive(Debug, Clone)]
pub struct Process {
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Unix time of the start, seconds.
    pub start_epoch_secs: u64,
    /// The `hostname` label (Fluent Bit's v2 metrics carry it), when known.
    pub hostname: Option<String>,
    /// kinesis-bit's version.
    pub version: &'static str,
}

fn label(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn family(name: &str, help: &str, kind: Kind) -> Family {
    Family {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        samples: Vec::new(),
    }
}

/// Help text of the plugin metrics kinesis-bit knows (spec `kinesis_streams.md` §10).
fn plugin_help(name: &str) -> &'static str {
    match name {
        "fluentbit_kinesis_streams_requests_total" => "PutRecords requests by result.",
        "fluentbit_kinesis_streams_request_duration_seconds" => {
            "Latency of PutRecords requests in seconds."
        }
        "fluentbit_kinesis_streams_record_errors_total" => {
            "Per-record error codes returned by PutRecords."
        }
        "fluentbit_kinesis_streams_dropped_records_total" => {
            "Records dropped by the kinesis_streams output, by reason."
        }
        "fluentbit_kinesis_streams_truncated_records_total" => "Records truncated to fit.",
        "fluentbit_kinesis_streams_in_flush_retries_total" => {
            "Entries sent again within one flush."
        }
        "fluentbit_kinesis_streams_request_splits_total" => "Requests split in halves.",
        "fluentbit_kinesis_streams_sent_bytes_total" => "Data bytes accepted by Kinesis.",
        "fluentbit_kinesis_streams_credential_refreshes_total" => {
            "AWS credential refreshes by trigger."
        }
        "fluentbit_kinesis_streams_partition_key_fallbacks_total" => {
            "Random partition keys used because partition_key found no value."
        }
        "fluentbit_kinesis_streams_stream_fallbacks_total" => {
            "Records sent to stream_fallback, by reason."
        }
        "fluentbit_kinesis_firehose_requests_total" => "PutRecordBatch requests by result.",
        "fluentbit_kinesis_firehose_request_duration_seconds" => {
            "Latency of PutRecordBatch requests in seconds."
        }
        "fluentbit_kinesis_firehose_record_errors_total" => {
            "Per-record error codes returned by PutRecordBatch."
        }
        "fluentbit_kinesis_firehose_dropped_records_total" => {
            "Records dropped by the kinesis_firehose output, by reason."
        }
        "fluentbit_kinesis_firehose_truncated_records_total" => "Records truncated to fit.",
        "fluentbit_kinesis_firehose_in_flush_retries_total" => {
            "Entries sent again within one flush."
        }
        "fluentbit_kinesis_firehose_request_splits_total" => "Requests split in halves.",
        "fluentbit_kinesis_firehose_sent_bytes_total" => "Data bytes accepted by Firehose.",
        "fluentbit_kinesis_firehose_credential_refreshes_total" => {
            "AWS credential refreshes by trigger."
        }
        "fluentbit_kinesis_requests_total" => "PutRecords requests by result.",
        "fluentbit_kinesis_request_duration_seconds" => {
            "Latency of PutRecords requests in seconds."
        }
        "fluentbit_kinesis_record_errors_total" => "Per-record error codes returned by PutRecords.",
        "fluentbit_kinesis_dropped_records_total" => {
            "Records dropped by the kinesis output, by reason."
        }
        "fluentbit_kinesis_truncated_records_total" => "Records truncated to fit.",
        "fluentbit_kinesis_in_flush_retries_total" => "Entries sent again within one flush.",
        "fluentbit_kinesis_request_splits_total" => "Requests split in halves.",
        "fluentbit_kinesis_sent_bytes_total" => "Data bytes accepted by Kinesis.",
        "fluentbit_kinesis_credential_refreshes_total" => "AWS credential refreshes by trigger.",
        "fluentbit_firehose_requests_total" => "PutRecordBatch requests by result.",
        "fluentbit_firehose_request_duration_seconds" => {
            "Latency of PutRecordBatch requests in seconds."
        }
        "fluentbit_firehose_record_errors_total" => {
            "Per-record error codes returned by PutRecordBatch."
        }
        "fluentbit_firehose_dropped_records_total" => {
            "Records dropped by the firehose output, by reason."
        }
        "fluentbit_firehose_truncated_records_total" => "Records truncated to fit.",
        "fluentbit_firehose_in_flush_retries_total" => "Entries sent again within one flush.",
        "fluentbit_firehose_request_splits_total" => "Requests split in halves.",
        "fluentbit_firehose_sent_bytes_total" => "Data bytes accepted by Firehose.",
        "fluentbit_firehose_credential_refreshes_total" => "AWS credential refreshes by trigger.",
        "fluentbit_kinesis_partition_key_fallbacks_total" => {
            "Random partition keys used because partition_key found no value."
        }
        _ => "Fluent Bit plugin metric.",
    }
}

/// One engine counter of an input or output instance: its key in `/api/v1/metrics`, which
/// also names the Prometheus family `fluentbit_<input|output>_<key>_total`.
pub struct EngineCounter<M> {
    pub key: &'static str,
    pub help: &'static str,
    pub read: fn(&M) -> u64,
}

/// The input counters, in Fluent Bit's order.
pub const INPUT_COUNTERS: &[EngineCounter<InputMetrics>] = &[
    EngineCounter {
        key: "records",
        help: "Number of input records.",
        read: |m| get(&m.records),
    },
    EngineCounter {
        key: "bytes",
        help: "Number of input bytes.",
        read: |m| get(&m.bytes),
    },
];

/// The filter counters, in Fluent Bit's order (`flb_filter_init`'s metrics).
pub const FILTER_COUNTERS: &[EngineCounter<FilterMetrics>] = &[
    EngineCounter {
        key: "drop_records",
        help: "Total number of dropped records.",
        read: |m| get(&m.drop_records),
    },
    EngineCounter {
        key: "add_records",
        help: "Total number of new added records.",
        read: |m| get(&m.add_records),
    },
    EngineCounter {
        key: "records",
        help: "Total number of new records processed.",
        read: |m| get(&m.records),
    },
    EngineCounter {
        key: "bytes",
        help: "Total number of new bytes processed.",
        read: |m| get(&m.bytes),
    },
    EngineCounter {
        key: "drop_bytes",
        help: "Total number of dropped bytes.",
        read: |m| get(&m.drop_bytes),
    },
];

/// The output counters, in Fluent Bit's order.
pub const OUTPUT_COUNTERS: &[EngineCounter<OutputMetrics>] = &[
    EngineCounter {
        key: "proc_records",
        help: "Number of processed output records.",
        read: |m| get(&m.proc_records),
    },
    EngineCounter {
        key: "proc_bytes",
        help: "Number of processed output bytes.",
        read: |m| get(&m.proc_bytes),
    },
    EngineCounter {
        key: "errors",
        help: "Number of output errors.",
        read: |m| get(&m.errors),
    },
    EngineCounter {
        key: "retries",
        help: "Number of output retries.",
        read: |m| get(&m.retries),
    },
    EngineCounter {
        key: "retries_failed",
        help: "Number of abandoned batches because the maximum number of re-tries was reached.",
        read: |m| get(&m.retries_failed),
    },
    EngineCounter {
        key: "dropped_records",
        help: "Number of dropped records.",
        read: |m| get(&m.dropped_records),
    },
    EngineCounter {
        key: "retried_records",
        help: "Number of retried records.",
        read: |m| get(&m.retried_records),
    },
];

/// A family with one sample.
fn single(name: &str, help: &str, kind: Kind, labels: Vec<(String, String)>, v: u64) -> Family {
    let mut f = family(name, help, kind);
    f.samples.push(Sample {
        suffix: "",
        labels,
        value: Value::Int(v),
    });
    f
}

/// A family with one sample per instance, labelled `name`.
fn per_instance<T>(
    name: &str,
    help: &str,
    kind: Kind,
    instances: &[(String, T)],
    read: impl Fn(&T) -> u64,
) -> Family {
    let mut f = family(name, help, kind);
    for (instance, m) in instances {
        f.samples.push(Sample {
            suffix: "",
            labels: vec![label("name", instance)],
            value: Value::Int(read(m)),
        });
    }
    f
}

/// One counter family per entry of `counters`, a sample per instance labelled `name`.
fn engine_families<M>(
    out: &mut Vec<Family>,
    kind: &str,
    counters: &[EngineCounter<M>],
    instances: &[(String, Arc<M>)],
) {
    for c in counters {
        out.push(per_instance(
            &format!("fluentbit_{kind}_{}_total", c.key),
            c.help,
            Kind::Counter,
            instances,
            |m| (c.read)(m),
        ));
    }
}

/// Every family, in a stable order: process, inputs, filters, outputs, then plugin metrics.
pub fn collect(metrics: &Metrics, p: &Process) -> Vec<Family> {
    let host: Vec<(String, String)> = p.hostname.iter().map(|h| label("hostname", h)).collect();
    let mut out = Vec::new();

    out.push(single(
        "fluentbit_uptime",
        "Number of seconds that Fluent Bit has been running.",
        Kind::Counter,
        host.clone(),
        p.uptime_secs,
    ));

    engine_families(&mut out, "input", INPUT_COUNTERS, &metrics.inputs());
    engine_families(&mut out, "filter", FILTER_COUNTERS, &metrics.filters());
    engine_families(&mut out, "output", OUTPUT_COUNTERS, &metrics.outputs());

    out.push(single(
        "fluentbit_process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Kind::Gauge,
        host.clone(),
        p.start_epoch_secs,
    ));
    let mut labels = host;
    labels.push(label("version", p.version));
    labels.push(label("os", std::env::consts::OS));
    out.push(single(
        "fluentbit_build_info",
        "Build version information.",
        Kind::Gauge,
        labels,
        1,
    ));

    storage_families(&mut out, metrics);
    out.extend(plugin_families(metrics));
    out.retain(|f| !f.samples.is_empty());
    out
}

/// One input's chunk gauges, as `/api/v1/storage` and the storage families show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputChunks {
    pub filesystem: bool,
    pub overlimit: bool,
    pub mem_bytes: u64,
    pub mem_limit: u64,
    pub up: u64,
    pub down: u64,
    pub busy: u64,
    pub busy_bytes: u64,
}

impl InputChunks {
    /// Read the gauges of one input (transient negative values read as 0).
    pub fn read(m: &InputMetrics) -> Self {
        let g = |a: &std::sync::atomic::AtomicI64| a.load(Ordering::Relaxed).max(0) as u64;
        let mem_bytes = g(&m.mem_bytes);
        let mem_limit = m.mem_limit.load(Ordering::Relaxed);
        let filesystem = m.filesystem.load(Ordering::Relaxed);
        InputChunks {
            filesystem,
            // A filesystem input never pauses: it is over its limit only in the sense that
            // new chunks wait on disk.
            overlimit: mem_limit > 0 && mem_bytes >= mem_limit,
            mem_bytes,
            mem_limit,
            up: m.chunks_up().max(0) as u64,
            down: g(&m.chunks_down),
            busy: g(&m.chunks_busy),
            busy_bytes: g(&m.busy_bytes),
        }
    }

    /// Chunks up plus down.
    pub fn total(&self) -> u64 {
        self.up + self.down
    }
}

/// The storage layer's totals over every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageTotals {
    pub total: u64,
    pub mem: u64,
    pub fs: u64,
    pub fs_up: u64,
    pub fs_down: u64,
}

/// Sum the inputs' chunk gauges.
pub fn storage_totals(inputs: &[(String, InputChunks)]) -> StorageTotals {
    let mut t = StorageTotals::default();
    for (_, c) in inputs {
        t.total += c.total();
        if c.filesystem {
            t.fs += c.total();
            t.fs_up += c.up;
            t.fs_down += c.down;
        } else {
            t.mem += c.total();
        }
    }
    t
}

/// Every input's chunk gauges.
pub fn input_chunks(metrics: &Metrics) -> Vec<(String, InputChunks)> {
    metrics
        .inputs()
        .iter()
        .map(|(n, m)| (n.clone(), InputChunks::read(m)))
        .collect()
}

type StorageCounter = (&'static str, &'static str, fn(&StorageCounters) -> u64);

/// kinesis-bit's counters of the filesystem layer: name suffix, help, reader.
const STORAGE_COUNTERS: &[StorageCounter] = &[
    (
        "corrupt_chunks",
        "Chunk files skipped because they were torn or corrupt (kinesis-bit).",
        |s| get(&s.corrupt_chunks),
    ),
    (
        "recovered_chunks",
        "Chunk files left open by a crash and sealed at start (kinesis-bit).",
        |s| get(&s.recovered_chunks),
    ),
    (
        "replayed_chunks",
        "Chunk files found at start and queued for delivery (kinesis-bit).",
        |s| get(&s.replayed_chunks),
    ),
    (
        "loaded_chunks",
        "Chunks loaded back from disk into memory (kinesis-bit).",
        |s| get(&s.loaded_chunks),
    ),
    (
        "write_errors",
        "Failed writes of chunk files (kinesis-bit).",
        |s| get(&s.write_errors),
    ),
    (
        "dropped_chunks",
        "Chunks dropped by storage.total_limit_size (kinesis-bit).",
        |s| get(&s.dropped_chunks),
    ),
    (
        "rejected_chunks",
        "Chunks copied to storage.rejected.path (kinesis-bit).",
        |s| get(&s.rejected_chunks),
    ),
];

fn storage_families(out: &mut Vec<Family>, metrics: &Metrics) {
    let inputs = input_chunks(metrics);
    let t = storage_totals(&inputs);
    for (name, help, v) in [
        (
            "fluentbit_storage_chunks",
            "Total number of chunks in the storage layer.",
            t.total,
        ),
        (
            "fluentbit_storage_mem_chunks",
            "Total number of memory chunks.",
            t.mem,
        ),
        (
            "fluentbit_storage_fs_chunks",
            "Total number of filesystem chunks.",
            t.fs,
        ),
        (
            "fluentbit_storage_fs_chunks_up",
            "Total number of filesystem chunks up in memory.",
            t.fs_up,
        ),
        (
            "fluentbit_storage_fs_chunks_down",
            "Total number of filesystem chunks down.",
            t.fs_down,
        ),
    ] {
        out.push(single(name, help, Kind::Gauge, Vec::new(), v));
    }
    type Read = fn(&InputChunks) -> u64;
    let per_input: [(&str, &str, Read); 7] = [
        ("overlimit", "Is the input memory usage overlimit ?.", |c| {
            c.overlimit as u64
        }),
        ("memory_bytes", "Memory bytes used by the chunks.", |c| {
            c.mem_bytes
        }),
        ("chunks", "Total number of chunks.", |c| c.total()),
        ("chunks_up", "Total number of chunks up in memory.", |c| {
            c.up
        }),
        ("chunks_down", "Total number of chunks down.", |c| c.down),
        (
            "chunks_busy",
            "Total number of chunks in a busy state.",
            |c| c.busy,
        ),
        (
            "chunks_busy_bytes",
            "Total number of bytes used by chunks in a busy state.",
            |c| c.busy_bytes,
        ),
    ];
    for (key, help, read) in per_input {
        let name = format!("fluentbit_input_storage_{key}");
        out.push(per_instance(&name, help, Kind::Gauge, &inputs, read));
    }
    if metrics.storage.enabled.load(Ordering::Relaxed) {
        for (key, help, read) in STORAGE_COUNTERS {
            let name = format!("fluentbit_storage_{key}_total");
            let v = read(&metrics.storage);
            out.push(single(&name, help, Kind::Counter, Vec::new(), v));
        }
    }
}

/// The plugin counters, histograms reassembled.
fn plugin_families(metrics: &Metrics) -> Vec<Family> {
    let counters = metrics.counters();
    let histograms: HashSet<&str> = counters
        .iter()
        .filter(|((_, l), _)| l.iter().any(|(k, _)| *k == "le"))
        .filter_map(|((n, _), _)| n.strip_suffix("_bucket"))
        .collect();
    let mut families: Vec<Family> = Vec::new();
    for ((name, labels), value) in &counters {
        let hist_part = |suffix: &str| {
            name.strip_suffix(suffix)
                .filter(|base| histograms.contains(base))
        };
        let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| label(k, v)).collect();
        let int = Value::Int(*value);
        let (fname, kind, suffix, value) = if let Some(base) = hist_part("_bucket") {
            (base, Kind::Histogram, "_bucket", int)
        } else if let Some(base) = hist_part("_sum_micros") {
            // The registry keeps integer microseconds; Prometheus wants base units.
            let secs = Value::Float(*value as f64 / 1e6);
            (base, Kind::Histogram, "_sum", secs)
        } else if let Some(base) = hist_part("_count") {
            (base, Kind::Histogram, "_count", int)
        } else {
            (*name, Kind::Counter, "", int)
        };
        let sample = Sample {
            suffix,
            labels,
            value,
        };
        match families.iter_mut().find(|f| f.name == fname) {
            Some(f) => f.samples.push(sample),
            None => {
                let mut f = family(fname, plugin_help(fname), kind);
                f.samples.push(sample);
                families.push(f);
            }
        }
    }
    for f in &mut families {
        if f.kind == Kind::Histogram {
            f.samples = order_histogram(std::mem::take(&mut f.samples));
        }
    }
    families
}

fn le_of(s: &Sample) -> f64 {
    s.labels
        .iter()
        .find(|(k, _)| k == "le")
        .map(|(_, v)| match v.as_str() {
            "+Inf" | "Inf" => f64::INFINITY,
            v => v.parse().unwrap_or(f64::INFINITY),
        })
        .unwrap_or(f64::INFINITY)
}

/// Group a histogram's samples per series (labels without `le`): buckets by ascending `le`,
/// then `_sum`, then `_count`. The counters are read one by one while requests may be counted,
/// so a snapshot can catch a smaller bucket already incremented and a larger one not yet:
/// buckets are made cumulative again (running maximum) and `_count` is the `+Inf` bucket, so
/// the exported histogram is always consistent.
fn order_histogram(samples: Vec<Sample>) -> Vec<Sample> {
    let series_key = |s: &Sample| -> Vec<(String, String)> {
        s.labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect()
    };
    let mut keys: Vec<Vec<(String, String)>> = Vec::new();
    for s in &samples {
        let k = series_key(s);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut out = Vec::with_capacity(samples.len());
    for key in keys {
        let mine: Vec<&Sample> = samples.iter().filter(|s| series_key(s) == key).collect();
        let mut buckets: Vec<Sample> = mine
            .iter()
            .filter(|s| s.suffix == "_bucket")
            .map(|s| (*s).clone())
            .collect();
        buckets.sort_by(|a, b| le_of(a).total_cmp(&le_of(b)));
        let mut running = 0;
        for b in &mut buckets {
            if let Value::Int(v) = b.value {
                running = running.max(v);
                b.value = Value::Int(running);
            }
        }
        let inf = buckets
            .last()
            .filter(|b| le_of(b).is_infinite())
            .map(|b| b.value);
        out.extend(buckets);
        out.extend(
            mine.iter()
                .filter(|s| s.suffix == "_sum")
                .map(|s| (*s).clone()),
        );
        for c in mine.iter().filter(|s| s.suffix == "_count") {
            let mut c = (*c).clone();
            if let Some(v) = inf {
                c.value = v;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_core::metrics::add;

    fn process() -> Process {
        Process {
            uptime_secs: 7,
            start_epoch_secs: 1_700_000_000,
            hostname: Some("host-a".into()),
            version: "9.9.9",
        }
    }

    #[test]
    fn engine_counters_get_fluent_bit_names_and_the_instance_label() {
        let m = Metrics::default();
        add(&m.input("cpu.0").records, 3);
        add(&m.output("null.0").proc_records, 2);
        let fams = collect(&m, &process());
        let find = |n: &str| fams.iter().find(|f| f.name == n).unwrap();
        let rec = find("fluentbit_input_records_total");
        assert_eq!(rec.samples[0].labels, vec![label("name", "cpu.0")]);
        assert_eq!(rec.samples[0].value, Value::Int(3));
        assert_eq!(
            find("fluentbit_output_proc_records_total").samples[0].value,
            Value::Int(2)
        );
        assert_eq!(find("fluentbit_uptime").samples[0].value, Value::Int(7));
    }

    #[test]
    fn histogram_is_reassembled_with_sum_in_seconds_and_consistent_count() {
        let m = Metrics::default();
        let b = "x_seconds_bucket";
        // Registered out of order, with a torn snapshot: le=1 lags behind le=0.5.
        add(&m.counter(b, &[("name", "o"), ("le", "+Inf")]), 3);
        add(&m.counter(b, &[("name", "o"), ("le", "1")]), 1);
        add(&m.counter(b, &[("name", "o"), ("le", "0.5")]), 2);
        add(
            &m.counter("x_seconds_sum_micros", &[("name", "o")]),
            1_500_000,
        );
        add(&m.counter("x_seconds_count", &[("name", "o")]), 2);
        add(&m.counter("y_total", &[("name", "o")]), 4);
        let fams = plugin_families(&m);
        assert_eq!(fams.len(), 2);
        let h = &fams[0];
        assert_eq!((h.name.as_str(), h.kind), ("x_seconds", Kind::Histogram));
        let got: Vec<(&str, Value)> = h.samples.iter().map(|s| (s.suffix, s.value)).collect();
        assert_eq!(
            got,
            vec![
                ("_bucket", Value::Int(2)),
                ("_bucket", Value::Int(2)),
                ("_bucket", Value::Int(3)),
                ("_sum", Value::Float(1.5)),
                ("_count", Value::Int(3)),
            ]
        );
        assert_eq!(le_of(&h.samples[0]), 0.5);
        assert_eq!(
            (fams[1].name.as_str(), fams[1].kind),
            ("y_total", Kind::Counter)
        );
    }

    #[test]
    fn a_count_counter_without_buckets_stays_a_counter() {
        let m = Metrics::default();
        add(&m.counter("jobs_count", &[]), 1);
        let fams = plugin_families(&m);
        assert_eq!(fams[0].kind, Kind::Counter);
        assert_eq!(fams[0].name, "jobs_count");
    }
}
