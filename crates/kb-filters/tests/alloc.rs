//! `record_modifier`, `grep` and `modify` are on the per-record path of most pipelines: once
//! the stage's buffers have grown, filtering a record must not touch the heap. A counting
//! global allocator (in its own test binary) checks it, through `Standalone::run_borrowed`
//! as the engine runs filters.
//!
//! Oniguruma's own C allocations are not seen here: the `onig` crate allocates (with C's
//! `malloc`) a small match-parameter block per search, outside Rust's allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;

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

/// 100 records of a Kubernetes-like log line parsed into 8 keys.
fn batch() -> Vec<u8> {
    let mut events = Vec::new();
    for i in 0..100 {
        let rec = serde_json::json!({
            "time": format!("2026-11-27T23:50:00.{i:09}Z"),
            "stream": "stdout",
            "level": if i % 3 == 0 { "error" } else { "info" },
            "kubernetes": {"pod_name": "web-7d9f8b-x2k4l", "namespace_name": "prod",
                           "labels": {"app": "web", "tier": "frontend"}},
            "host": "ip-10-0-1-17.ec2.internal",
            "seq": i,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "log": format!("GET /api/v1/items/{i} HTTP/1.1 200 {}", "a".repeat(600)),
        });
        events.extend_from_slice(&event(&rec.to_string()));
    }
    events
}

fn assert_no_alloc(name: &str, filters: Vec<Box<dyn kb_core::filter::Filter>>) {
    let events = batch();
    let mut st = stage(filters);
    // Warm up: buffers grow to the records' size.
    for _ in 0..3 {
        st.run_borrowed("kube.web", &events).expect("filters match");
    }
    let probe = allocs();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(allocs(), probe + 1, "the counter is live");
    let before = allocs();
    let mut kept = 0;
    for _ in 0..50 {
        kept += st.run_borrowed("kube.web", &events).unwrap().1;
    }
    assert_eq!(
        allocs() - before,
        0,
        "{name}: heap allocations in 5,000 warm records"
    );
    assert!(kept > 0, "{name}: some records pass");
}

#[test]
fn record_modifier_grep_and_modify_allocate_nothing_per_record() {
    assert_no_alloc(
        "record_modifier",
        vec![build(
            &kb_filters::record_modifier::PLUGIN,
            &[
                ("Record", "cluster prod-eu-1"),
                ("Record", "team payments"),
                ("Remove_key", "stream"),
                ("Remove_key", "user_*"),
            ],
        )
        .unwrap()],
    );
    assert_no_alloc(
        "record_modifier allowlist",
        vec![build(
            &kb_filters::record_modifier::PLUGIN,
            &[("Allowlist_key", "log"), ("Allowlist_key", "kube*")],
        )
        .unwrap()],
    );
    assert_no_alloc(
        "grep",
        vec![build(
            &kb_filters::grep::PLUGIN,
            &[
                ("Regex", "log ^GET /api/v1/items/[0-9]+ HTTP"),
                ("Exclude", "$kubernetes['labels']['tier'] ^backend$"),
                ("Exclude", "level ^debug$"),
            ],
        )
        .unwrap()],
    );
    assert_no_alloc(
        "modify",
        vec![build(
            &kb_filters::modify::PLUGIN,
            &[
                ("Condition", "Key_value_matches level ^(error|info)$"),
                ("Condition", "Key_exists $kubernetes['labels']['app']"),
                ("Set", "env prod"),
                ("Add", "region eu-west-1"),
                ("Rename", "stream source"),
                ("Copy", "host node"),
                ("Hard_copy", "seq sequence"),
                ("Hard_rename", "level severity"),
                ("Remove", "user_agent"),
                ("Remove_wildcard", "tim"),
                ("Remove_regex", "^node$"),
                ("Move_to_start", "log"),
                ("Move_to_end", "kube"),
            ],
        )
        .unwrap()],
    );
}
