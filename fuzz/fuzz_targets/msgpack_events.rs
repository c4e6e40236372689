//! `EventReader` over arbitrary bytes, each record (and metadata) converted with
//! `write_json`: no panics, and a successful conversion yields valid UTF-8.
#![no_main]

use kb_core::event::EventReader;
use kb_core::json::{write_json, JsonOptions, JsonStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stats = JsonStats::default();
    let mut out = Vec::new();
    for (i, ev) in EventReader::new(data).enumerate() {
        let Ok(ev) = ev else { break };
        let opts = JsonOptions {
            escape_unicode: i % 2 == 0,
        };
        for part in [ev.record, ev.metadata] {
            out.clear();
            if let Ok(n) = write_json(part, &mut out, &opts, &mut stats) {
                assert!(n <= part.len());
                assert!(std::str::from_utf8(&out).is_ok(), "write_json produced invalid UTF-8");
            }
        }
    }
    // The raw bytes as a single value too.
    out.clear();
    let _ = write_json(data, &mut out, &JsonOptions::default(), &mut stats);
});
