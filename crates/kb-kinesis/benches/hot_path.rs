//! Micro-benchmarks of the output hot path (issue 6): a chunk of 500 tail-like events (one
//! Kubernetes JSON line of ~1 KiB under `log`) → formatted records → PutRecords body with random
//! partition keys → SHA-256 → SigV4; the same steps one by one; response parsing.
//!
//! `cargo bench -p kb-kinesis --bench hot_path`. After criterion's figures it prints the cost
//! of the whole output stage next to the floor it is held to: base64 + SHA-256 of the same
//! Data bytes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use kb_aws::sign::{sha256_hex, sign_request};
use kb_config::model::{Location, Property, Section, SectionKind};
use kb_config::schema::{validate_section, OUTPUT_GENERIC_KEYS};
use kb_core::chunk::{Chunk, Progress};
use kb_core::event::{write_event_header, EventTime};
use kb_core::metrics::Metrics;
use kb_kinesis::accessor::random_key;
use kb_kinesis::batch::{Key, Prepared, Preparer};
use kb_kinesis::encode::PutRecordsBody;
use kb_kinesis::metrics::KinesisMetrics;
use kb_kinesis::ratelimit::LogLimiter;
use kb_kinesis::response::parse_put_records_response;

const RECORDS: usize = 500;

/// A Kubernetes-like log line of 1023 bytes (the file's line without its newline).
fn k8s_line(seq: usize) -> String {
    let head = format!(
        r#"{{"time":"2026-11-27T23:50:00.{seq:09}Z","stream":"stdout","_p":"F","kubernetes":{{"pod_name":"web-7d9f8b-x2k4l","namespace_name":"prod","container_name":"web","host":"ip-10-0-1-17.ec2.internal","labels":{{"app":"web","tier":"frontend"}}}},"seq":{seq},"log":"GET /api/v1/items/{seq} HTTP/1.1 200 "#
    );
    let tail = r#""}"#;
    format!("{head}{}{tail}", "a".repeat(1023 - head.len() - tail.len()))
}

/// What the tail input makes of `RECORDS` lines: `{"log": line}` events.
fn tail_chunk() -> (Chunk, usize) {
    let mut data = Vec::new();
    let mut raw = 0;
    for i in 0..RECORDS {
        let line = k8s_line(i);
        raw += line.len() + 1;
        write_event_header(&mut data, EventTime::new(1_764_287_400, i as u32));
        rmp::encode::write_map_len(&mut data, 1).unwrap();
        rmp::encode::write_str(&mut data, "log").unwrap();
        rmp::encode::write_str(&mut data, &line).unwrap();
    }
    (Chunk::new("bench", data, RECORDS), raw)
}

fn preparer() -> Preparer {
    let mut section = Section::new(SectionKind::Output, Location::Default);
    for (k, v) in [
        ("match", "*"),
        ("region", "us-east-1"),
        ("stream", "bench"),
        ("endpoint", "https://127.0.0.1:4567"),
    ] {
        section.props.push(Property {
            key: k.into(),
            value: v.into(),
            location: Location::CommandLine {
                arg: format!("-p {k}={v}"),
            },
        });
    }
    let props = validate_section(
        &kb_kinesis::output::PLUGIN.spec,
        OUTPUT_GENERIC_KEYS,
        &section,
        "kinesis_streams.0",
    )
    .expect("valid section");
    let settings = kb_kinesis::config::parse(&props, true).expect("valid settings");
    Preparer::new(&settings)
}

/// Everything the output does to a chunk before the bytes reach TLS.
struct Stage {
    preparer: Preparer,
    prepared: Prepared,
    body: PutRecordsBody,
    key: String,
    rng: fastrand::Rng,
    metrics: KinesisMetrics,
    limiter: LogLimiter,
    creds: Credentials,
}

impl Stage {
    fn new() -> Self {
        Stage {
            preparer: preparer(),
            prepared: Prepared::default(),
            body: PutRecordsBody::new("bench"),
            key: String::new(),
            rng: fastrand::Rng::with_seed(7),
            metrics: KinesisMetrics::new(Arc::new(Metrics::default()), "kinesis_streams.0"),
            limiter: LogLimiter::default(),
            creds: Credentials::new("AKIDBENCH", "secret", None, None, "bench"),
        }
    }

    fn prepare(&mut self, chunk: &Chunk) {
        let mut progress = Progress::new(chunk.records);
        self.preparer.prepare(
            chunk,
            &mut progress,
            &mut self.prepared,
            &self.metrics,
            &self.limiter,
        );
    }

    fn fill_body(&mut self) -> usize {
        self.body.reset();
        for e in &self.prepared.entries {
            let key = match &e.key {
                Key::Fixed(r) => &self.prepared.keys[r.clone()],
                Key::Random => {
                    random_key(&mut self.rng, &mut self.key);
                    &self.key
                }
            };
            assert!(self
                .body
                .try_push(&self.prepared.arena[e.data.clone()], key));
        }
        self.body.finish().len()
    }

    fn sign(&self, body: Bytes) -> http::Request<Bytes> {
        let hash = sha256_hex(&body);
        let mut req = http::Request::builder()
            .method("POST")
            .uri("https://127.0.0.1:4567/")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Kinesis_20131202.PutRecords")
            .body(body)
            .unwrap();
        sign_request(
            &mut req,
            &hash,
            &self.creds,
            "us-east-1",
            "kinesis",
            SystemTime::now(),
        )
        .unwrap();
        req
    }

    /// Chunk → signed request, as one flush does it (the request is dropped unsent).
    fn run(&mut self, chunk: &Chunk) -> usize {
        self.prepare(chunk);
        self.fill_body();
        let body = self.body.take_bytes();
        let req = self.sign(body.clone());
        drop(req);
        self.body.recycle(body);
        self.body.len()
    }
}

/// base64 + SHA-256 of `data`: the least any Kinesis client must do with these bytes.
fn floor(data: &[u8], out: &mut Vec<u8>) -> String {
    out.clear();
    base64_simd::STANDARD.encode_append(data, out);
    sha256_hex(out)
}

fn benches(c: &mut Criterion) {
    let (chunk, raw) = tail_chunk();
    let mut stage = Stage::new();
    stage.prepare(&chunk);
    let data = stage.prepared.arena.clone();

    let mut g = c.benchmark_group("output_stage");
    g.throughput(Throughput::Bytes(raw as u64));
    g.bench_function("chunk_to_signed_request", |b| {
        b.iter(|| black_box(stage.run(&chunk)))
    });
    let mut out = Vec::new();
    g.bench_function("floor_base64_sha256", |b| {
        b.iter(|| black_box(floor(&data, &mut out)))
    });
    g.bench_function("format_records", |b| b.iter(|| stage.prepare(&chunk)));
    g.bench_function("fill_body_base64_keys", |b| {
        b.iter(|| black_box(stage.fill_body()))
    });
    let body = Bytes::copy_from_slice(stage.body.finish());
    g.bench_function("sha256_body", |b| b.iter(|| black_box(sha256_hex(&body))));
    g.bench_function("sha256_and_sign", |b| {
        b.iter(|| black_box(stage.sign(body.clone())))
    });
    g.finish();

    let mut g = c.benchmark_group("response");
    let ok = response(None);
    let partial = response(Some(10));
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("parse_500_accepted", |b| {
        b.iter(|| {
            black_box(
                parse_put_records_response(&ok, RECORDS)
                    .unwrap()
                    .accepted_count(),
            )
        })
    });
    g.bench_function("parse_500_with_10pct_failed", |b| {
        b.iter(|| {
            black_box(
                parse_put_records_response(&partial, RECORDS)
                    .unwrap()
                    .failed_count(),
            )
        })
    });
    g.finish();
}

/// A PutRecords answer for `RECORDS` entries; with `fail_every`, every such entry (from the
/// fourth) failed with ProvisionedThroughputExceededException.
fn response(fail_every: Option<usize>) -> Vec<u8> {
    let failed = |i: usize| fail_every.is_some_and(|k| i % k == 3);
    let entries: Vec<String> = (0..RECORDS)
        .map(|i| {
            if failed(i) {
                r#"{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000000 in stream bench under account 111122223333."}"#.to_string()
            } else {
                format!(
                    r#"{{"SequenceNumber":"49543463076548007577105092703039560359975228518395{i:06}","ShardId":"shardId-000000000000"}}"#
                )
            }
        })
        .collect();
    let failed_count = (0..RECORDS).filter(|&i| failed(i)).count();
    format!(
        r#"{{"FailedRecordCount":{failed_count},"Records":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// The ratio the issue asks for, timed in one process right after criterion's runs.
fn print_ratio() {
    let (chunk, raw) = tail_chunk();
    let mut stage = Stage::new();
    stage.prepare(&chunk);
    let data = stage.prepared.arena.clone();
    let mut out = Vec::new();
    let batch = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        t.elapsed().as_secs_f64() / 20.0
    };
    let mut run_stage = || {
        black_box(stage.run(&chunk));
    };
    let mut run_floor = || {
        black_box(floor(&data, &mut out));
    };
    run_stage();
    run_floor();
    // Alternating batches, best of each: a burst of noise on this shared machine then hits
    // both sides alike instead of one.
    let (mut stage_s, mut floor_s) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..15 {
        stage_s = stage_s.min(batch(&mut run_stage));
        floor_s = floor_s.min(batch(&mut run_floor));
    }
    let mib = raw as f64 / (1 << 20) as f64;
    println!(
        "\noutput stage, {RECORDS} records of 1 KiB ({:.2} MiB of log, {:.2} MiB of Data):",
        mib,
        data.len() as f64 / (1 << 20) as f64
    );
    println!(
        "  chunk → signed request: {:8.1} µs  ({:6.0} MiB/s of log)",
        stage_s * 1e6,
        mib / stage_s
    );
    println!(
        "  base64 + SHA-256 floor: {:8.1} µs  ({:6.0} MiB/s of log)",
        floor_s * 1e6,
        mib / floor_s
    );
    println!("  ratio: {:.2}× (target ≤ 1.5×)", stage_s / floor_s);
}

criterion_group!(hot_path, benches);

fn main() {
    hot_path();
    Criterion::default().configure_from_args().final_summary();
    print_ratio();
}
