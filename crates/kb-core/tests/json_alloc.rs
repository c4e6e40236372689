//! The JSON writer is the per-record hot path: once warmed up, converting a record into an
//! output buffer with enough capacity must not touch the heap. A counting global allocator
//! (in its own test binary, so it affects nothing else) checks that.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kb_core::json::{write_json, JsonOptions, JsonStats};
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

#[test]
fn json_no_allocation_per_record_when_warm() {
    // A typical record: small and large maps (both duplicate-check paths), nesting, floats,
    // non-ASCII and escapes.
    let mut big: Vec<(Value, Value)> = (0..40)
        .map(|i| (Value::from(format!("field{i}")), Value::from(i)))
        .collect();
    big.push((
        Value::from("nested"),
        Value::Map(vec![(Value::from("x"), Value::F64(0.25))]),
    ));
    let record = Value::Map(vec![
        (Value::from("log"), Value::from("héllo \"world\"\n😀")),
        (Value::from("level"), Value::from("info")),
        (Value::from("n"), Value::F64(1e20)),
        (
            Value::from("tags"),
            Value::Array(vec![Value::from(1), Value::Nil]),
        ),
        (Value::from("big"), Value::Map(big)),
    ]);
    let mut input = Vec::new();
    rmpv::encode::write_value(&mut input, &record).unwrap();

    let opts = JsonOptions::default();
    let mut stats = JsonStats::default();
    let mut out = Vec::with_capacity(4096);
    write_json(&input, &mut out, &opts, &mut stats).unwrap();
    let first = out.clone();

    // The counter is live (so a 0 below means something).
    let probe = allocs();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(allocs(), probe + 1);

    out.clear();
    let before = allocs();
    write_json(&input, &mut out, &opts, &mut stats).unwrap();
    assert_eq!(
        allocs() - before,
        0,
        "heap allocations in a warm write_json"
    );
    assert_eq!(out, first);
}
