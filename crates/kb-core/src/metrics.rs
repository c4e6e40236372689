//! Per-instance counters the engine keeps, named after Fluent Bit's metrics so the admin
//! server exports them as `fluentbit_input_*` / `fluentbit_filter_*` / `fluentbit_output_*`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::filter::FilterMetrics;

/// Counters of one input instance.
#[derive(Debug, Default)]
pub struct InputMetrics {
    /// `fluentbit_input_records_total`
    pub records: AtomicU64,
    /// `fluentbit_input_bytes_total`
    pub bytes: AtomicU64,
    /// `storage.type filesystem`.
    pub filesystem: AtomicBool,
    /// The memory bound in bytes (0: none), for `/api/v1/storage` and the overlimit gauge.
    pub mem_limit: AtomicU64,
    /// `fluentbit_input_storage_memory_bytes`: bytes held in memory.
    pub mem_bytes: AtomicI64,
    /// Chunks being filled (open).
    pub chunks_open: AtomicI64,
    /// Sealed chunks in memory, handed to outputs (`chunks_busy`).
    pub chunks_busy: AtomicI64,
    /// Bytes of the busy chunks.
    pub busy_bytes: AtomicI64,
    /// Sealed chunks only on disk, waiting to be loaded (`chunks_down`).
    pub chunks_down: AtomicI64,
}

impl InputMetrics {
    pub(crate) fn chunk_up(&self, bytes: usize) {
        self.chunks_busy.fetch_add(1, Ordering::Relaxed);
        self.busy_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    pub(crate) fn chunk_released(&self, bytes: usize) {
        self.chunks_busy.fetch_sub(1, Ordering::Relaxed);
        self.busy_bytes.fetch_sub(bytes as i64, Ordering::Relaxed);
    }

    /// Chunks in memory: open plus busy (`chunks_up`).
    pub fn chunks_up(&self) -> i64 {
        self.chunks_open.load(Ordering::Relaxed) + self.chunks_busy.load(Ordering::Relaxed)
    }
}

/// Storage-layer counters (filesystem buffering).
#[derive(Debug, Default)]
pub struct StorageCounters {
    /// `storage.path` is set.
    pub enabled: AtomicBool,
    /// Chunk files skipped because they were torn or corrupt.
    pub corrupt_chunks: AtomicU64,
    /// Open chunk files left by a crash and sealed at start.
    pub recovered_chunks: AtomicU64,
    /// Chunk files replayed at start.
    pub replayed_chunks: AtomicU64,
    /// Chunks loaded back from disk (replayed ones and those that waited on disk).
    pub loaded_chunks: AtomicU64,
    /// Failed writes of chunk files or their journal.
    pub write_errors: AtomicU64,
    /// Chunks dropped by `storage.total_limit_size`.
    pub dropped_chunks: AtomicU64,
    /// Chunks copied to `storage.rejected.path`.
    pub rejected_chunks: AtomicU64,
}

/// Counters of one output instance.
#[derive(Debug, Default)]
pub struct OutputMetrics {
    /// `fluentbit_output_proc_records_total`: records delivered.
    pub proc_records: AtomicU64,
    /// `fluentbit_output_proc_bytes_total`
    pub proc_bytes: AtomicU64,
    /// `fluentbit_output_errors_total`: flushes that ended in Error.
    pub errors: AtomicU64,
    /// `fluentbit_output_retries_total`
    pub retries: AtomicU64,
    /// `fluentbit_output_retries_failed_total`: retries exhausted.
    pub retries_failed: AtomicU64,
    /// `fluentbit_output_dropped_records_total`
    pub dropped_records: AtomicU64,
    /// `fluentbit_output_retried_records_total`: records handed back for a retry.
    pub retried_records: AtomicU64,
}

/// Add `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Read a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A plugin's own counter: metric name plus label pairs (e.g.
/// `fluentbit_kinesis_streams_dropped_records_total{name="…",reason="oversize"}`).
pub type CounterKey = (&'static str, Vec<(&'static str, String)>);

/// Every instance's counters, by instance name, in configuration order.
#[derive(Debug, Default)]
pub struct Metrics {
    inputs: Mutex<Vec<(String, Arc<InputMetrics>)>>,
    outputs: Mutex<Vec<(String, Arc<OutputMetrics>)>>,
    filters: Mutex<Vec<(String, Arc<FilterMetrics>)>>,
    counters: Mutex<Vec<(CounterKey, Arc<AtomicU64>)>>,
    /// The storage layer's counters.
    pub storage: StorageCounters,
}

impl Metrics {
    /// Register (or find) the counters of input `name`.
    pub fn input(&self, name: &str) -> Arc<InputMetrics> {
        let mut v = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = v.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(InputMetrics::default());
        v.push((name.to_string(), m.clone()));
        m
    }

    /// Register (or find) the counters of output `name`.
    pub fn output(&self, name: &str) -> Arc<OutputMetrics> {
        let mut v = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = v.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(OutputMetrics::default());
        v.push((name.to_string(), m.clone()));
        m
    }

    /// Register (or find) the counters of filter `name`.
    pub fn filter(&self, name: &str) -> Arc<FilterMetrics> {
        let mut v = self.filters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = v.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(FilterMetrics::default());
        v.push((name.to_string(), m.clone()));
        m
    }

    /// Snapshot of the filter counters.
    pub fn filters(&self) -> Vec<(String, Arc<FilterMetrics>)> {
        self.filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Register (or find) a plugin-specific counter. Call once per label set and keep the
    /// handle: the lookup is linear and meant for setup, not for the per-record path.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Arc<AtomicU64> {
        let labels: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut v = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = v.iter().find(|((n, l), _)| *n == name && *l == labels) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        v.push(((name, labels), c.clone()));
        c
    }

    /// Current value of a plugin-specific counter (0 when never registered).
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        v.iter()
            .find(|((n, l), _)| {
                *n == name
                    && l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((k, v), (k2, v2))| k == k2 && v == v2)
            })
            .map(|(_, c)| get(c))
            .unwrap_or(0)
    }

    /// Snapshot of every plugin-specific counter.
    pub fn counters(&self) -> Vec<(CounterKey, u64)> {
        let v = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().map(|(k, c)| (k.clone(), get(c))).collect()
    }

    /// Snapshot of the input counters.
    pub fn inputs(&self) -> Vec<(String, Arc<InputMetrics>)> {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Snapshot of the output counters.
    pub fn outputs(&self) -> Vec<(String, Arc<OutputMetrics>)> {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
