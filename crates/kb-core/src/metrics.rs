//! Per-instance counters the engine keeps, named after Fluent Bit's metrics so the admin
//! server of a later issue can export them as `fluentbit_input_*` / `fluentbit_output_*`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one input instance.
#[derive(Debug, Default)]
pub struct InputMetrics {
    /// `fluentbit_input_records_total`
    pub records: AtomicU64,
    /// `fluentbit_input_bytes_total`
    pub bytes: AtomicU64,
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
    counters: Mutex<Vec<(CounterKey, Arc<AtomicU64>)>>,
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
