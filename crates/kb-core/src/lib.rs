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
