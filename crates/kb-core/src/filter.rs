//! The filter stage, as Fluent Bit runs it (`flb_filter_do`): the filters whose `Match` or
//! `Match_Regex` takes the tag run in configuration order on every append, before the records
//! reach a chunk (so filesystem buffering stores filtered records). A filter changes a record
//! in place, drops it, or replaces it with other records, which go on through the filters
//! after it.
//!
//! Unlike Fluent Bit, which decodes and re-encodes every record in every filter, a record is
//! decoded once into a [`Record`] (a list of borrowed key/value byte ranges), passes every
//! filter, and is encoded once — or copied as it came when no filter changed it.
//!
//! Filters that put records back into the pipeline (`rewrite_tag`, `multiline`) do it through
//! an [`Emitter`]: an input instance of its own (with its own memory bound and metrics) whose
//! records run through the filters again, except the filter that owns it and any filter
//! already working further up the same call, so a record is never routed back into the same
//! rule forever.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use crate::event::EventReader;
use crate::input::InputContext;
use crate::plugin::{Input, PluginError};
use crate::record::{Record, RecordBuf};
use crate::tag::TagMatcher;

/// What a filter decided about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the record (changed or not).
    Keep,
    /// Drop the record.
    Drop,
    /// Replace the record with the events written through [`FilterCx::emit`] (none, one or
    /// several); they go on through the filters after this one.
    Replace,
}

/// What a filter knows of the call besides the record.
pub struct FilterCx<'a> {
    /// The records' tag.
    pub tag: &'a str,
    /// The input instance the records come from.
    pub input: &'a str,
    emitted: &'a mut Vec<u8>,
    emitted_count: usize,
}

impl FilterCx<'_> {
    /// Write one whole event (for [`Verdict::Replace`]) with `f`.
    pub fn emit(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(self.emitted);
        self.emitted_count += 1;
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> usize {
        self.emitted_count
    }
}

/// A filter instance.
pub trait Filter: Send + Sync {
    /// Decide on one record: change it in place and keep it, drop it, or replace it.
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict;

    /// The input through which this filter puts records back into the pipeline, if any.
    fn emitter(&self) -> Option<EmitterSpec> {
        None
    }
}

/// Counters of one filter instance, named after Fluent Bit's.
#[derive(Debug, Default)]
pub struct FilterMetrics {
    /// `fluentbit_filter_records_total`: records that entered the filter.
    pub records: AtomicU64,
    /// `fluentbit_filter_bytes_total`: bytes of the records it let through, as delivered.
    pub bytes: AtomicU64,
    /// `fluentbit_filter_add_records_total`: records it added.
    pub add_records: AtomicU64,
    /// `fluentbit_filter_drop_records_total`: records it dropped.
    pub drop_records: AtomicU64,
    /// `fluentbit_filter_drop_bytes_total`: bytes of the records it dropped.
    pub drop_bytes: AtomicU64,
}

/// A filter instance ready to run.
pub struct FilterInstance {
    /// `alias` or `<plugin>.<n>`.
    pub name: String,
    pub matcher: TagMatcher,
    pub plugin: Box<dyn Filter>,
}

/// The emitter input a filter asks for.
pub struct EmitterSpec {
    /// Instance name (`Emitter_Name`, e.g. `emitter_for_rewrite_tag.0`).
    pub name: String,
    /// `Emitter_Mem_Buf_Limit`.
    pub mem_buf_limit: Option<usize>,
    /// `Emitter_Storage.type filesystem`.
    pub filesystem: bool,
    /// The handle the filter appends through.
    pub emitter: Emitter,
}

/// What an emitter runs when inputs stop.
type StopHook = Box<dyn FnOnce() + Send>;

/// Where a filter's records re-enter the pipeline: the context of its emitter input, set by
/// the engine before any input runs.
#[derive(Clone, Default)]
pub struct Emitter {
    ctx: Arc<OnceLock<InputContext>>,
    /// Called when the engine stops inputs, before the final seal (a filter's last flush).
    on_stop: Arc<Mutex<Option<StopHook>>>,
}

impl Emitter {
    /// A handle not yet attached to an engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `records` events under `tag`; `false` when the engine does not run (yet).
    pub fn append(&self, tag: &str, events: &[u8], records: usize) -> bool {
        match self.ctx.get() {
            Some(ctx) => {
                // The input feeding this emitter pauses while the emitter is over its limit
                // (a filesystem emitter never is: what memory cannot hold waits on disk).
                if !ctx.is_filesystem() {
                    crate::input::link_to_appending(ctx.account());
                }
                ctx.append_tagged(tag, events, records);
                true
            }
            None => false,
        }
    }

    /// Ask the engine to deliver what it holds and stop, the process then exiting with
    /// `status` (Fluent Bit's `flb_engine_exit_status`, used by `expect`'s `action exit`);
    /// `false` when the engine does not run (yet).
    pub fn request_exit(&self, status: u8) -> bool {
        match self.ctx.get() {
            Some(ctx) => {
                ctx.request_exit_with_status(status);
                true
            }
            None => false,
        }
    }

    /// Whether the emitter's input is over its memory bound.
    pub fn is_paused(&self) -> bool {
        self.ctx.get().is_some_and(|c| c.is_paused())
    }

    /// Run `f` once when inputs are asked to stop (records still pending in the filter are
    /// handed over there).
    pub fn on_stop(&self, f: impl FnOnce() + Send + 'static) {
        *self.on_stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// The input plugin that runs this emitter.
    pub fn input(&self) -> Box<dyn Input> {
        Box::new(EmitterInput(self.clone()))
    }

    pub(crate) fn attach(&self, ctx: &InputContext) {
        let _ = self.ctx.set(ctx.clone());
    }
}

/// The input of an [`Emitter`]: produces nothing itself; filters append through it.
struct EmitterInput(Emitter);

#[async_trait]
impl Input for EmitterInput {
    fn started(&mut self, ctx: &InputContext) {
        self.0.attach(ctx);
    }

    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        ctx.stopped().await;
        let f = self
            .0
            .on_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(f) = f {
            f();
        }
        Ok(())
    }
}

/// The filters of an engine with their counters.
pub(crate) struct FilterStage {
    filters: Vec<(FilterInstance, Arc<FilterMetrics>)>,
}

/// Per-input buffers of the stage, reused from append to append.
#[derive(Default)]
pub(crate) struct StageBuf {
    rec: RecordBuf,
    out: Vec<u8>,
    emitted: Vec<u8>,
    matching: Vec<usize>,
}

thread_local! {
    /// Filters running further up this thread's stack (an emitter append inside a filter):
    /// they are skipped, so no record loops through the same filter.
    static ACTIVE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

struct ActiveGuard;

impl ActiveGuard {
    fn enter(idx: usize) -> ActiveGuard {
        ACTIVE.with(|a| a.borrow_mut().push(idx));
        ActiveGuard
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

impl FilterStage {
    pub(crate) fn new(filters: Vec<(FilterInstance, Arc<FilterMetrics>)>) -> Self {
        FilterStage { filters }
    }

    /// Whether any filter exists.
    pub(crate) fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Run the filters matching `tag` (but `skip`) on `events`. Returns `None` when no filter
    /// matched (the events go on as they are); else the filtered events and their count,
    /// in `buf.out`.
    pub(crate) fn run<'b>(
        &self,
        tag: &str,
        input: &str,
        skip: Option<usize>,
        events: &[u8],
        buf: &'b mut StageBuf,
    ) -> Option<(&'b [u8], usize)> {
        buf.matching.clear();
        ACTIVE.with(|a| {
            let active = a.borrow();
            for (i, (f, _)) in self.filters.iter().enumerate() {
                if Some(i) != skip && !active.contains(&i) && f.matcher.matches(tag) {
                    buf.matching.push(i);
                }
            }
        });
        if buf.matching.is_empty() {
            return None;
        }
        buf.out.clear();
        let matching = std::mem::take(&mut buf.matching);
        let mut count = 0;
        for ev in EventReader::new(events) {
            let Ok(ev) = ev else {
                // Inputs frame their events; a bad one ends the batch as the reader does.
                break;
            };
            count += self.chain(tag, input, &matching, 0, ev.raw, buf);
        }
        buf.matching = matching;
        Some((&buf.out, count))
    }

    /// One event through `filters[from..]`, written to `buf.out`; returns the events written.
    fn chain(
        &self,
        tag: &str,
        input: &str,
        filters: &[usize],
        from: usize,
        raw: &[u8],
        buf: &mut StageBuf,
    ) -> usize {
        let StageBuf {
            rec, out, emitted, ..
        } = buf;
        let mut record = match rec.read(raw) {
            Ok(r) => r,
            // Not a map record: filters cannot read it; it goes on unchanged.
            Err(_) => {
                out.extend_from_slice(raw);
                return 1;
            }
        };
        for (pos, &fi) in filters.iter().enumerate().skip(from) {
            let (f, m) = &self.filters[fi];
            m.records.fetch_add(1, Ordering::Relaxed);
            emitted.clear();
            let mut cx = FilterCx {
                tag,
                input,
                emitted,
                emitted_count: 0,
            };
            let verdict = {
                let _active = ActiveGuard::enter(fi);
                f.plugin.filter(&mut record, &mut cx)
            };
            match verdict {
                Verdict::Keep => {}
                Verdict::Drop => {
                    m.drop_records.fetch_add(1, Ordering::Relaxed);
                    m.drop_bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
                    return 0;
                }
                Verdict::Replace => {
                    let n = cx.emitted_count;
                    if n == 0 {
                        m.drop_records.fetch_add(1, Ordering::Relaxed);
                        m.drop_bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
                        return 0;
                    }
                    if n > 1 {
                        m.add_records.fetch_add(n as u64 - 1, Ordering::Relaxed);
                    }
                    // The replacement events go on through the rest of the chain; they need
                    // buffers of their own (rare: Lua arrays, joined multiline messages).
                    let replacement = std::mem::take(emitted);
                    let mut nested = StageBuf {
                        out: std::mem::take(out),
                        ..StageBuf::default()
                    };
                    let start = nested.out.len();
                    let mut written = 0;
                    for ev in EventReader::new(&replacement).flatten() {
                        written += self.chain(tag, input, filters, pos + 1, ev.raw, &mut nested);
                    }
                    let size = (nested.out.len() - start) as u64;
                    for &fi in &filters[from..=pos] {
                        self.filters[fi].1.bytes.fetch_add(size, Ordering::Relaxed);
                    }
                    *out = nested.out;
                    *emitted = replacement;
                    return written;
                }
            }
        }
        let start = out.len();
        record.write_event(out);
        let size = (out.len() - start) as u64;
        for &fi in &filters[from..] {
            self.filters[fi].1.bytes.fetch_add(size, Ordering::Relaxed);
        }
        1
    }
}

/// Filters run as the engine runs them, without an engine (tests, benchmarks, tools).
pub struct Standalone {
    stage: FilterStage,
    buf: StageBuf,
}

impl Standalone {
    /// A stage of `filters`, in this order.
    pub fn new(filters: Vec<FilterInstance>) -> Self {
        Standalone {
            stage: FilterStage::new(
                filters
                    .into_iter()
                    .map(|f| (f, Arc::new(FilterMetrics::default())))
                    .collect(),
            ),
            buf: StageBuf::default(),
        }
    }

    /// Filter `records` events of tag `tag` from input `input`; returns the events that
    /// come out and their count (the events themselves when no filter matches the tag).
    pub fn run(
        &mut self,
        tag: &str,
        input: &str,
        events: &[u8],
        records: usize,
    ) -> (Vec<u8>, usize) {
        match self.stage.run(tag, input, None, events, &mut self.buf) {
            Some((out, n)) => (out.to_vec(), n),
            None => (events.to_vec(), records),
        }
    }

    /// Like [`Standalone::run`] without copying the output (benchmarks); `None` when no
    /// filter matches the tag.
    pub fn run_borrowed(&mut self, tag: &str, events: &[u8]) -> Option<(&[u8], usize)> {
        self.stage.run(tag, "bench", None, events, &mut self.buf)
    }

    /// The counters of filter `i`.
    pub fn metrics(&self, i: usize) -> &FilterMetrics {
        &self.stage.filters[i].1
    }
}
