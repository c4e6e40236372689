//! The core of kinesis-bit: Fluent Bit's MessagePack event layout, chunks, tag routing, the
//! plugin traits and the engine that moves chunks from inputs to outputs with retries,
//! backpressure and graceful shutdown.

pub mod accessor;
pub mod chunk;
pub mod civil;
pub mod engine;
pub mod event;
pub mod filter;
pub mod input;
pub mod json;
pub mod metrics;
pub mod msgpack;
pub mod outputs;
pub mod plugin;
pub mod record;
pub mod registry;
pub mod retry;
pub mod store;
pub mod tag;

pub use chunk::{Chunk, Progress};
pub use event::{EventTime, EventWriter};
pub use plugin::{FlushResult, Input, Output, OutputWorker, PluginError};

/// A count with its noun in the right number: `1 record`, `0 records`, `3 entries`; log lines
/// with counts otherwise read "1 records handed back".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(1, "record"), "1 record");
        assert_eq!(count(0, "record"), "0 records");
        assert_eq!(count(2, "pending task"), "2 pending tasks");
        assert_eq!(count(1, "entry"), "1 entry");
        assert_eq!(count(5, "entry"), "5 entries");
        assert_eq!(count(2, "day"), "2 days");
    }
}
