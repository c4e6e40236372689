//! Per-record streams cost a plain `stream` nothing: preparing a chunk for a plain stream
//! allocates nothing once warm (a counting global allocator, in its own test binary), and a
//! template allocates per distinct stream of a flush, not per record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use kb_core::chunk::{Chunk, Progress};
use kb_core::event::{write_event_header, EventTime};
use kb_core::metrics::Metrics;
use kb_kinesis::batch::{Prepared, Preparer};
use kb_kinesis::metrics::KinesisMetrics;
use kb_kinesis::ratelimit::LogLimiter;

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

mod common;

fn preparer(stream: &str) -> Preparer {
    let s = common::settings(&[("region", "us-east-1"), ("stream", stream)]);
    Preparer::new(&s.expect("valid settings"))
}

/// 500 `{"app": "a|b|c", "log": …}` events.
fn chunk() -> Chunk {
    let mut data = Vec::new();
    for i in 0..500 {
        write_event_header(&mut data, EventTime::new(1_764_287_400, i));
        rmp::encode::write_map_len(&mut data, 2).unwrap();
        rmp::encode::write_str(&mut data, "app").unwrap();
        rmp::encode::write_str(&mut data, ["a", "b", "c"][i as usize % 3]).unwrap();
        rmp::encode::write_str(&mut data, "log").unwrap();
        rmp::encode::write_str(&mut data, &format!("line {i} {}", "x".repeat(200))).unwrap();
    }
    Chunk::new("t", data, 500)
}

/// Allocations of the third prepare of `chunk` (the first two warm the buffers).
fn warm_allocs(p: &mut Preparer, c: &Chunk) -> (usize, Prepared) {
    let metrics = KinesisMetrics::new(Arc::new(Metrics::default()), "kinesis_streams.0");
    let limiter = LogLimiter::default();
    let mut out = Prepared::default();
    for _ in 0..2 {
        let mut progress = Progress::new(c.records);
        p.prepare(c, &mut progress, &mut out, &metrics, &limiter);
    }
    let mut progress = Progress::new(c.records);
    let before = allocs();
    p.prepare(c, &mut progress, &mut out, &metrics, &limiter);
    (allocs() - before, out)
}

#[test]
fn a_plain_stream_prepares_without_allocating() {
    let c = chunk();
    let (n, out) = warm_allocs(&mut preparer("plain"), &c);
    assert_eq!(out.entries.len(), 500);
    assert_eq!(n, 0, "allocations preparing 500 records for a plain stream");
}

#[test]
fn a_template_allocates_per_stream_not_per_record() {
    let c = chunk();
    let (n, out) = warm_allocs(&mut preparer("logs-$app"), &c);
    assert_eq!(out.streams.len(), 3);
    // Each new stream of the flush: its name in the table and in the index.
    assert!(n <= 3 * 2, "{n} allocations for 500 records of 3 streams");
}
