//! The contracts between the engine and its plugins.

use std::sync::Arc;

use crate::chunk::{Chunk, Progress};
use crate::event::{EventTime, EventWriter};
use crate::input::InputContext;
use async_trait::async_trait;

/// A plugin failure at start or while running; the message says what to do next.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

impl PluginError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        PluginError(msg.into())
    }
}

/// What an output reports for one flush, as in Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushResult {
    /// Everything pending in the chunk is done (delivered or deliberately dropped).
    Ok,
    /// Try again later; records marked done in the progress are not sent again.
    Retry,
    /// Give up on what is pending; the engine drops it and counts it.
    Error,
    /// Not a failure: what is pending cannot be sent before this much time has passed (a
    /// rate limit of the destination). The engine hands the chunk back after the delay without
    /// counting a retry, and the worker takes other chunks meanwhile.
    Later(std::time::Duration),
}

/// An input plugin instance. `run` produces events through the context until the context
/// says stop (or the input has nothing more, as stdin at end of file).
#[async_trait]
pub trait Input: Send {
    /// Called with the input's context once every input's context exists, before any input
    /// runs (emitters use it to be ready for the first record another input sends them).
    fn started(&mut self, _ctx: &InputContext) {}

    /// Produce events until stopped.
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError>;
}

/// An output plugin instance: makes one worker per configured `workers`.
#[async_trait]
pub trait Output: Send + Sync {
    /// Create worker number `index` (each worker owns its connections and buffers).
    async fn new_worker(&self, index: usize) -> Result<Box<dyn OutputWorker>, PluginError>;
}

/// One flush worker of an output.
#[async_trait]
pub trait OutputWorker: Send {
    /// Deliver the records of `chunk` that `progress` does not mark done. On `Retry`, mark in
    /// `progress` whatever the destination accepted so it is never sent again.
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult;
}

/// A named parser (`[PARSER]`): one line in, one event out. Implemented by kb-inputs; the
/// contract lives here so inputs get parsers through [`crate::registry::ServiceContext`].
pub trait LineParser: Send + Sync {
    /// Parse `line` into one event appended to `out` (`now` unless the line carries a time);
    /// on failure `out` is unchanged and the reason is returned.
    fn parse_line(&self, line: &[u8], out: &mut EventWriter, now: EventTime) -> Result<(), String>;
}

/// Finds parsers by name.
pub trait ParserLookup: Send + Sync {
    /// The parser called `name`.
    fn parser(&self, name: &str) -> Option<Arc<dyn LineParser>>;

    /// The lookup as its concrete type: plugins that need more than lines (the parser and
    /// multiline filters, tail's multiline parsers) downcast it to kb-parsers' registry.
    /// Lookups that do not say give a value nothing downcasts to.
    fn as_any(&self) -> &dyn std::any::Any {
        &()
    }
}

/// The lookup when no parsers are configured.
pub struct NoParsers;

impl ParserLookup for NoParsers {
    fn parser(&self, _: &str) -> Option<Arc<dyn LineParser>> {
        None
    }
}
