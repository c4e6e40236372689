//! The output's own counters (spec §10), registered in the engine's registry with the
//! instance name as the `name` label. Handles are looked up once; the flush path only adds.
//! Each plugin has its own names, `fluentbit_<plugin>_…` ([`MetricNames`]), so the counters of
//! `kinesis_streams` keep their names and the Firehose plugins get theirs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use kb_core::metrics::{add, Metrics};

/// The counter names of one plugin (the registry takes `&'static str` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricNames {
    pub requests: &'static str,
    pub dropped: &'static str,
    pub record_errors: &'static str,
    pub duration_bucket: &'static str,
    pub duration_sum_micros: &'static str,
    pub duration_count: &'static str,
    pub in_flush_retries: &'static str,
    pub request_splits: &'static str,
    pub sent_bytes: &'static str,
    pub partition_key_fallbacks: &'static str,
    pub credential_refreshes: &'static str,
    pub truncated: &'static str,
    /// Records sent to `stream_fallback`, by reason (kinesis_streams only).
    pub stream_fallbacks: &'static str,
}

macro_rules! metric_names {
    ($prefix:literal) => {
        MetricNames {
            requests: concat!($prefix, "_requests_total"),
            dropped: concat!($prefix, "_dropped_records_total"),
            record_errors: concat!($prefix, "_record_errors_total"),
            duration_bucket: concat!($prefix, "_request_duration_seconds_bucket"),
            duration_sum_micros: concat!($prefix, "_request_duration_seconds_sum_micros"),
            duration_count: concat!($prefix, "_request_duration_seconds_count"),
            in_flush_retries: concat!($prefix, "_in_flush_retries_total"),
            request_splits: concat!($prefix, "_request_splits_total"),
            sent_bytes: concat!($prefix, "_sent_bytes_total"),
            partition_key_fallbacks: concat!($prefix, "_partition_key_fallbacks_total"),
            credential_refreshes: concat!($prefix, "_credential_refreshes_total"),
            truncated: concat!($prefix, "_truncated_records_total"),
            stream_fallbacks: concat!($prefix, "_stream_fallbacks_total"),
        }
    };
}

/// `kinesis_streams`: `fluentbit_kinesis_streams_*`.
pub const KINESIS_STREAMS: MetricNames = metric_names!("fluentbit_kinesis_streams");
/// `kinesis_firehose`: `fluentbit_kinesis_firehose_*`.
pub const KINESIS_FIREHOSE: MetricNames = metric_names!("fluentbit_kinesis_firehose");
/// `kinesis` (the Go plugin's name): `fluentbit_kinesis_*`.
pub const KINESIS_GO: MetricNames = metric_names!("fluentbit_kinesis");
/// `firehose` (the Go plugin's name): `fluentbit_firehose_*`.
pub const FIREHOSE_GO: MetricNames = metric_names!("fluentbit_firehose");

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const DURATION_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How one PutRecords request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    Ok,
    Partial,
    Throttled,
    ServerError,
    ClientError,
    AuthError,
    TransportError,
}

impl RequestResult {
    const ALL: [RequestResult; 7] = [
        RequestResult::Ok,
        RequestResult::Partial,
        RequestResult::Throttled,
        RequestResult::ServerError,
        RequestResult::ClientError,
        RequestResult::AuthError,
        RequestResult::TransportError,
    ];

    /// The `result` label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::Partial => "partial",
            RequestResult::Throttled => "throttled",
            RequestResult::ServerError => "server_error",
            RequestResult::ClientError => "client_error",
            RequestResult::AuthError => "auth_error",
            RequestResult::TransportError => "transport_error",
        }
    }
}

/// Why the output dropped a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Oversize,
    Empty,
    LogKeyMissing,
    Rejected,
    TimeFormat,
    Malformed,
    /// A per-record stream template gave no valid stream name, and no `stream_fallback`.
    StreamUnresolved,
    /// The record's stream does not exist (`ResourceNotFoundException`), and no fallback.
    StreamNotFound,
}

impl DropReason {
    const ALL: [DropReason; 8] = [
        DropReason::Oversize,
        DropReason::Empty,
        DropReason::LogKeyMissing,
        DropReason::Rejected,
        DropReason::TimeFormat,
        DropReason::Malformed,
        DropReason::StreamUnresolved,
        DropReason::StreamNotFound,
    ];

    /// Whether only outputs with per-record streams (kinesis_streams) can drop for it.
    fn routing_only(self) -> bool {
        matches!(
            self,
            DropReason::StreamUnresolved | DropReason::StreamNotFound
        )
    }

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Oversize => "oversize",
            DropReason::Empty => "empty",
            DropReason::LogKeyMissing => "log_key_missing",
            DropReason::Rejected => "rejected",
            DropReason::TimeFormat => "time_format",
            DropReason::Malformed => "malformed",
            DropReason::StreamUnresolved => "stream_unresolved",
            DropReason::StreamNotFound => "stream_not_found",
        }
    }
}

/// Counter handles of one output instance.
#[derive(Debug, Clone)]
pub struct KinesisMetrics {
    registry: Arc<Metrics>,
    names: MetricNames,
    name: String,
    requests: Vec<Arc<AtomicU64>>,
    dropped: Vec<Arc<AtomicU64>>,
    duration_buckets: Vec<Arc<AtomicU64>>,
    duration_sum_micros: Arc<AtomicU64>,
    duration_count: Arc<AtomicU64>,
    /// `…_in_flush_retries_total`: entries re-sent inside a flush.
    pub in_flush_retries: Arc<AtomicU64>,
    /// `…_request_splits_total`: requests split in halves.
    pub request_splits: Arc<AtomicU64>,
    /// `…_sent_bytes_total`: Data bytes accepted.
    pub sent_bytes: Arc<AtomicU64>,
    /// `…_partition_key_fallbacks_total`.
    pub partition_key_fallbacks: Arc<AtomicU64>,
    /// `…_credential_refreshes_total{trigger="auth_error"}`.
    pub refreshes_auth_error: Arc<AtomicU64>,
    /// `…_truncated_records_total`.
    pub truncated: Arc<AtomicU64>,
    /// `…_stream_fallbacks_total{reason}`, in [`FallbackReason`] order.
    stream_fallbacks: Vec<Arc<AtomicU64>>,
}

/// Why a record went to `stream_fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The template's field or tag part is missing or not a scalar.
    Missing,
    /// The template rendered as nothing.
    Empty,
    /// The rendered name is not a valid stream name.
    Invalid,
    /// The stream does not exist (`ResourceNotFoundException`).
    NotFound,
}

impl FallbackReason {
    const ALL: [FallbackReason; 4] = [
        FallbackReason::Missing,
        FallbackReason::Empty,
        FallbackReason::Invalid,
        FallbackReason::NotFound,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Missing => "missing",
            FallbackReason::Empty => "empty",
            FallbackReason::Invalid => "invalid",
            FallbackReason::NotFound => "not_found",
        }
    }
}

impl KinesisMetrics {
    /// Register every `kinesis_streams` counter of instance `name`.
    pub fn new(registry: Arc<Metrics>, name: &str) -> Self {
        Self::with_names(registry, KINESIS_STREAMS, name)
    }

    /// Register every counter of instance `name` under the plugin's `names`; the partition
    /// key fallbacks only for `partition_key`, which only Streams outputs have.
    pub fn with_names(registry: Arc<Metrics>, names: MetricNames, name: &str) -> Self {
        let c = |metric: &'static str, extra: &[(&'static str, &str)]| {
            let mut labels = vec![("name", name)];
            labels.extend_from_slice(extra);
            registry.counter(metric, &labels)
        };
        let mut buckets: Vec<Arc<AtomicU64>> = DURATION_BOUNDS
            .iter()
            .map(|b| c(names.duration_bucket, &[("le", &b.to_string())]))
            .collect();
        buckets.push(c(names.duration_bucket, &[("le", "+Inf")]));
        let keys = names != KINESIS_FIREHOSE && names != FIREHOSE_GO;
        // Per-record streams are kinesis_streams' alone; the others do not export their counters.
        let routing = names == KINESIS_STREAMS;
        let unexported = || Arc::new(AtomicU64::new(0));
        KinesisMetrics {
            requests: RequestResult::ALL
                .iter()
                .map(|r| c(names.requests, &[("result", r.label())]))
                .collect(),
            dropped: DropReason::ALL
                .iter()
                .map(|r| {
                    if r.routing_only() && !routing {
                        unexported()
                    } else {
                        c(names.dropped, &[("reason", r.label())])
                    }
                })
                .collect(),
            stream_fallbacks: FallbackReason::ALL
                .iter()
                .map(|r| {
                    if routing {
                        c(names.stream_fallbacks, &[("reason", r.label())])
                    } else {
                        unexported()
                    }
                })
                .collect(),
            duration_buckets: buckets,
            duration_sum_micros: c(names.duration_sum_micros, &[]),
            duration_count: c(names.duration_count, &[]),
            in_flush_retries: c(names.in_flush_retries, &[]),
            request_splits: c(names.request_splits, &[]),
            sent_bytes: c(names.sent_bytes, &[]),
            // Not registered (so not exported) for a service without keys.
            partition_key_fallbacks: if keys {
                c(names.partition_key_fallbacks, &[])
            } else {
                unexported()
            },
            refreshes_auth_error: c(names.credential_refreshes, &[("trigger", "auth_error")]),
            truncated: c(names.truncated, &[]),
            names,
            name: name.to_string(),
            registry,
        }
    }

    /// The names these counters are registered under.
    pub fn names(&self) -> MetricNames {
        self.names
    }

    /// Count one request and its latency.
    pub fn request(&self, result: RequestResult, took: Duration) {
        let i = RequestResult::ALL
            .iter()
            .position(|r| *r == result)
            .unwrap_or(0);
        add(&self.requests[i], 1);
        let secs = took.as_secs_f64();
        for (b, bound) in self.duration_buckets.iter().zip(DURATION_BOUNDS.iter()) {
            if secs <= *bound {
                add(b, 1);
            }
        }
        if let Some(inf) = self.duration_buckets.last() {
            add(inf, 1);
        }
        add(&self.duration_sum_micros, took.as_micros() as u64);
        add(&self.duration_count, 1);
    }

    /// Count `n` records dropped for `reason`.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        add(&self.dropped[i], n);
    }

    /// Count `n` records sent to `stream_fallback` for `reason`.
    pub fn fell_back(&self, reason: FallbackReason, n: u64) {
        let i = FallbackReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        add(&self.stream_fallbacks[i], n);
    }

    /// Count `n` entries that failed with per-record `code` (error path only: looks it up).
    pub fn record_errors(&self, code: &str, n: u64) {
        add(
            &self.registry.counter(
                self.names.record_errors,
                &[("name", &self.name), ("error_code", code)],
            ),
            n,
        );
    }
}
