//! The per-record hot path allocates nothing once warm (a counting global allocator, in its own
//! test binary): formatting an event, taking its partition key, compressing it and adding it to
//! the PutRecords body, for 1,000 records of about 1 KiB across request boundaries.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kb_core::event::{Event, EventTime};
use kb_kinesis::accessor::{random_key, PartitionKey, RecordAccessor};
use kb_kinesis::aggregate::KplAggregate;
use kb_kinesis::compress::{Compression, Compressor};
use kb_kinesis::encode::PutRecordsBody;
use kb_kinesis::format::{FormatOptions, RecordFormatter};
use kb_kinesis::time_format::TimeFormat;
use rmpv::Value;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

/// 1,000 records of about 1 KiB each, with escapes, unicode, numbers and nesting.
fn records() -> Vec<Vec<u8>> {
    (0..1000)
        .map(|i| {
            let v = Value::Map(vec![
                (
                    Value::from("log"),
                    Value::from(format!("{i} GET /index.html \"ok\" é {}", "x".repeat(900))),
                ),
                (
                    Value::from("level"),
                    Value::from(if i % 2 == 0 { "info" } else { "warn" }),
                ),
                (Value::from("n"), Value::F64(i as f64 * 0.25)),
                (Value::from("time"), Value::from("replaced by time_key")),
                (
                    Value::from("kubernetes"),
                    Value::Map(vec![
                        (
                            Value::from("pod_name"),
                            Value::from(format!("pod-{}", i % 7)),
                        ),
                        (
                            Value::from("labels"),
                            Value::Map(vec![(Value::from("app"), Value::from("web"))]),
                        ),
                    ]),
                ),
            ]);
            let mut buf = Vec::new();
            rmpv::encode::write_value(&mut buf, &v).unwrap();
            buf
        })
        .collect()
}

/// The output's loop for one flush: format, key, (compress), batch; bodies are "sent" when full.
struct Pipeline {
    formatter: RecordFormatter,
    accessor: RecordAccessor,
    rng: fastrand::Rng,
    key: String,
    data: Vec<u8>,
    compressed: Vec<u8>,
    compressor: Compressor,
    body: PutRecordsBody,
    bodies: usize,
}

impl Pipeline {
    fn new() -> Self {
        Pipeline {
            formatter: RecordFormatter::new(FormatOptions {
                time_key: Some("time".into()),
                time_format: TimeFormat::compile("%Y-%m-%dT%H:%M:%S.%3NZ").0,
                ..FormatOptions::default()
            }),
            accessor: RecordAccessor::parse("$kubernetes['pod_name']").unwrap(),
            rng: fastrand::Rng::with_seed(3),
            key: String::with_capacity(256),
            data: Vec::new(),
            compressed: Vec::new(),
            compressor: Compressor::new(),
            body: PutRecordsBody::new("stream"),
            bodies: 0,
        }
    }

    fn run(&mut self, records: &[Vec<u8>], compression: Option<Compression>, random: bool) {
        for (i, rec) in records.iter().enumerate() {
            let ev = Event {
                time: EventTime::new(1_700_000_000 + i as u32 / 100, i as u32 * 1000),
                metadata: &[0x80],
                record: rec,
                raw: &[],
            };
            if random || !self.accessor.extract(rec, &mut self.key) {
                random_key(&mut self.rng, &mut self.key);
            }
            self.data.clear();
            self.formatter.format(&ev, &mut self.data).unwrap();
            let payload = match compression {
                Some(c) => {
                    self.compressed.clear();
                    self.compressor
                        .compress(c, &self.data, &mut self.compressed);
                    &self.compressed
                }
                None => &self.data,
            };
            if !self.body.try_push(payload, &self.key) {
                std::hint::black_box(self.body.finish());
                self.bodies += 1;
                self.body.reset();
                assert!(self.body.try_push(payload, &self.key));
            }
        }
        std::hint::black_box(self.body.finish());
        self.body.reset();
    }
}

fn assert_counter_live() {
    let probe = allocs();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(allocs(), probe + 1, "the counter sees allocations");
}

#[test]
fn encode_alloc_format_and_push_allocate_nothing_when_warm() {
    let recs = records();
    let mut p = Pipeline::new();
    p.run(&recs, None, false); // warm-up: buffers reach their steady sizes
    p.run(&recs, None, true);
    assert_counter_live();
    let before = allocs();
    p.run(&recs, None, false);
    p.run(&recs, None, true);
    assert_eq!(allocs() - before, 0, "heap allocations per warm flush");
    assert!(p.bodies >= 4, "requests were split by the 500-record cap");
}

#[test]
fn encode_alloc_compression_allocates_nothing_when_warm() {
    let recs = records();
    let mut p = Pipeline::new();
    for c in [Compression::Gzip, Compression::Zstd, Compression::Snappy] {
        p.run(&recs, Some(c), true);
    }
    assert_counter_live();
    let before = allocs();
    for c in [Compression::Gzip, Compression::Zstd, Compression::Snappy] {
        p.run(&recs, Some(c), true);
    }
    assert_eq!(allocs() - before, 0, "heap allocations with compression");
}

#[test]
fn encode_alloc_kpl_aggregate_allocates_nothing_when_warm() {
    let recs = records();
    let mut agg = KplAggregate::new();
    let mut out = Vec::new();
    let run = |agg: &mut KplAggregate, out: &mut Vec<u8>| {
        agg.reset("key");
        out.clear();
        for r in &recs {
            if agg.size_with(r.len()) > 1_048_576 {
                agg.finish(out);
                agg.reset("key");
            }
            agg.push(r);
        }
        agg.finish(out);
    };
    run(&mut agg, &mut out);
    assert_counter_live();
    let before = allocs();
    run(&mut agg, &mut out);
    assert_eq!(allocs() - before, 0, "heap allocations building aggregates");
}
