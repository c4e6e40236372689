//! The engine: runs inputs, seals their chunks every `Flush` seconds, routes each chunk to the
//! matching outputs, runs each output's worker pool, schedules retries with Fluent Bit's
//! backoff, and shuts down gracefully within `Grace` seconds.
//!
//! Accounting invariant: `inflight` counts route tasks not yet finished and `pending_records`
//! the records of those tasks not yet done; both reach zero exactly when everything routed has
//! been delivered or deliberately dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kb_config::values::RetryLimit;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::chunk::{Chunk, Progress};
pub use crate::filter::FilterInstance;
use crate::filter::FilterStage;
use crate::input::{InputContext, InputState, MemLimit};
use crate::metrics::{self, Metrics, OutputMetrics};
use crate::plugin::{FlushResult, Input, Output, OutputWorker, PluginError};
use crate::retry::{may_retry, Backoff};
use crate::store::file::SavedProgress;
use crate::store::{Journal, StorageConfig, Store, StoredChunk};
use crate::tag::TagMatcher;

/// Service-level settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `Flush`: how often open chunks are sealed and dispatched.
    pub flush: Duration,
    /// `Grace`: how long shutdown waits for pending flushes; inputs get half of it.
    pub grace: Duration,
    /// `scheduler.base` / `scheduler.cap`.
    pub backoff: Backoff,
    /// A chunk is sealed early once it holds this many bytes.
    pub chunk_max_bytes: usize,
    /// The memory bound of an input without `Mem_Buf_Limit`; `None` leaves it unbounded, as
    /// Fluent Bit does. Pausing at this bound is routine, so it is logged at debug level only.
    pub default_mem_buf_limit: Option<usize>,
    /// `storage.path` and the other `storage.*` keys; `None` buffers in memory only.
    pub storage: Option<StorageConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            flush: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            backoff: Backoff::default(),
            chunk_max_bytes: 2 * 1024 * 1024,
            default_mem_buf_limit: None,
            storage: None,
        }
    }
}

/// An input instance ready to run.
pub struct InputInstance {
    /// The plugin's name (`cpu`), for log lines (`[input:cpu:cpu.0]`).
    pub plugin_name: String,
    /// `alias` or `<plugin>.<n>`.
    pub name: String,
    pub tag: String,
    /// `Mem_Buf_Limit` in bytes.
    pub mem_buf_limit: Option<usize>,
    /// `storage.type filesystem` (needs [`EngineConfig::storage`]).
    pub filesystem: bool,
    pub plugin: Box<dyn Input>,
}

/// An output instance ready to run.
pub struct OutputInstance {
    /// The plugin's name (`stdout`), for log lines (`[output:stdout:stdout.0]`).
    pub plugin_name: String,
    /// `alias` or `<plugin>.<n>`.
    pub name: String,
    pub matcher: TagMatcher,
    pub retry_limit: RetryLimit,
    pub workers: usize,
    /// `storage.total_limit_size`: bytes of filesystem chunks queued for this output.
    pub total_limit_size: Option<u64>,
    pub plugin: Arc<dyn Output>,
}

/// What shutdown left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineReport {
    /// Route tasks still unfinished when `Grace` ran out.
    pub unfinished_tasks: usize,
    /// Records of those tasks that were never delivered and are lost (memory buffering).
    pub lost_records: usize,
    /// Undelivered records that stay in chunk files for the next start.
    pub kept_records: usize,
    /// The exit status an input asked the agent to exit with (exec's `Propagate_Exit_Code`).
    pub exit_status: Option<u8>,
}

struct Task {
    chunk: Arc<Chunk>,
    progress: Progress,
    retries: u32,
}

struct Route {
    name: Arc<str>,
    matcher: TagMatcher,
    retry_limit: RetryLimit,
    tx: mpsc::UnboundedSender<Task>,
    metrics: Arc<OutputMetrics>,
    /// `storage.total_limit_size` and the filesystem chunks charged against it, oldest first.
    fs_limit: Option<u64>,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    chunks: std::collections::VecDeque<Arc<StoredChunk>>,
    bytes: u64,
}

/// State shared by the engine, inputs and workers.
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) filters: FilterStage,
    routes: Vec<Route>,
    inputs: Mutex<Vec<Arc<InputState>>>,
    inflight: AtomicUsize,
    pending_records: AtomicUsize,
    /// The part of `pending_records` that lives in chunk files.
    pending_stored: AtomicUsize,
    store: Option<Arc<Store>>,
    metrics: Arc<Metrics>,
    idle: Notify,
    exit_requested: AtomicBool,
    /// The status of [`InputContext::request_exit_with_status`]; -1 when none was asked for.
    exit_status: AtomicI32,
    exit: Notify,
    draining: watch::Sender<bool>,
}

impl Shared {
    /// Route a chunk an input sealed. A filesystem chunk waits on disk instead when memory
    /// is short or older chunks wait (they go first).
    pub(crate) fn dispatch(&self, chunk: Chunk) {
        if let Some(stored) = &chunk.stored {
            self.charge(stored);
            if chunk.account_is_over() || stored.store.must_go_down() {
                stored.store.push_down(stored.clone());
                return; // dropping the chunk frees its memory; the file stays
            }
        }
        self.route(chunk, &HashMap::new());
    }

    /// Route `chunk` to every matching output, resuming each route from `saved` (what a
    /// previous run delivered); routes that had finished are skipped.
    fn route(&self, chunk: Chunk, saved: &HashMap<String, SavedProgress>) {
        let chunk = Arc::new(chunk);
        let mut tasks = Vec::new();
        for (idx, route) in self.routes.iter().enumerate() {
            if !route.matcher.matches(&chunk.tag) {
                continue;
            }
            // A route that is done with the chunk: it finished in an earlier run, or
            // storage.total_limit_size gave the chunk up while it waited (counted then).
            let progress = match saved.get(&*route.name) {
                Some(s) if s.finished => None,
                Some(s) => Some(Progress::restore(chunk.records, s.words.clone(), s.dropped)),
                None => Some(Progress::new(chunk.records)),
            }
            .filter(|p| !p.is_complete())
            .filter(|_| !chunk.stored.as_ref().is_some_and(|s| s.is_cancelled(idx)));
            match (progress, &chunk.stored) {
                (Some(p), _) => tasks.push((idx, p)),
                (None, Some(stored)) => self.uncharge(idx, stored),
                (None, None) => {}
            }
        }
        if tasks.is_empty() {
            tracing::debug!(target: "router",
                "no output matches tag '{}' (or all are done): {} discarded", chunk.tag, crate::count(chunk.records as u64, "record"));
        }
        if let Some(stored) = &chunk.stored {
            stored.set_routes(tasks.len());
        }
        for (idx, mut progress) in tasks {
            let route = &self.routes[idx];
            self.inflight.fetch_add(1, Ordering::AcqRel);
            self.pending_records
                .fetch_add(progress.pending_count(), Ordering::AcqRel);
            if let Some(stored) = &chunk.stored {
                self.pending_stored
                    .fetch_add(progress.pending_count(), Ordering::AcqRel);
                progress.attach_journal(Journal::new(
                    stored.clone(),
                    route.name.clone(),
                    progress.done_count(),
                ));
            }
            let task = Task {
                progress,
                chunk: chunk.clone(),
                retries: 0,
            };
            if let Err(mpsc::error::SendError(task)) = route.tx.send(task) {
                // The output already stopped (end of shutdown): lost, or kept on disk.
                self.finish(idx, &task, false);
            }
        }
    }

    fn record_done(&self, chunk: &Chunk, n: usize) {
        self.pending_records.fetch_sub(n, Ordering::AcqRel);
        if chunk.stored.is_some() {
            self.pending_stored.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// A route task ends: its still-pending records stop counting as pending. `settled`
    /// says the route is done with the chunk for good (delivered or dropped); otherwise it
    /// was abandoned at shutdown and a chunk file keeps it for the next start.
    fn finish(&self, route_idx: usize, task: &Task, settled: bool) {
        self.record_done(&task.chunk, task.progress.pending_count());
        if let (true, Some(stored)) = (settled, &task.chunk.stored) {
            self.uncharge(route_idx, stored);
            stored.settle_route(&self.routes[route_idx].name, task.progress.total());
        }
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Charge a new filesystem chunk to the `storage.total_limit_size` of every route it
    /// goes to; over a limit, the route gives up its oldest chunks (counted, logged).
    fn charge(&self, stored: &Arc<StoredChunk>) {
        for (idx, route) in self.routes.iter().enumerate() {
            let Some(limit) = route.fs_limit else {
                continue;
            };
            if !route.matcher.matches(&stored.header.tag) {
                continue;
            }
            let mut ledger = route.ledger.lock().unwrap_or_else(|e| e.into_inner());
            ledger.bytes += stored.header.data_len;
            ledger.chunks.push_back(stored.clone());
            while ledger.bytes > limit && ledger.chunks.len() > 1 {
                let Some(victim) = ledger.chunks.pop_front() else {
                    break;
                };
                ledger.bytes -= victim.header.data_len;
                self.give_up(idx, &victim);
                tracing::warn!(target: "storage",
                    "output {} is over storage.total_limit_size ({limit} bytes): its oldest chunk ({}, {} bytes) is dropped for it",
                    route.name, crate::count(victim.header.records as u64, "record"), victim.header.data_len);
            }
        }
    }

    /// Route `idx` gives `victim` up. The journal remembers it across a restart; a chunk
    /// waiting on disk that no route wants any more is deleted now, so the limit bounds the
    /// disk too. A chunk in a route's queue is dropped when a worker picks it.
    fn give_up(&self, idx: usize, victim: &Arc<StoredChunk>) {
        victim.cancel(idx);
        victim.record_finished(&self.routes[idx].name);
        metrics::add(&self.metrics.storage.dropped_chunks, 1);
        let Some(store) = &self.store else { return };
        if !store.is_down(victim) {
            return;
        }
        metrics::add(
            &self.routes[idx].metrics.dropped_records,
            victim.header.records as u64,
        );
        let wanted = self
            .routes
            .iter()
            .enumerate()
            .any(|(i, r)| r.matcher.matches(&victim.header.tag) && !victim.is_cancelled(i));
        if !wanted && store.remove_down(victim) {
            victim.set_routes(0);
        }
    }

    fn uncharge(&self, route_idx: usize, stored: &Arc<StoredChunk>) {
        let route = &self.routes[route_idx];
        if route.fs_limit.is_none() {
            return;
        }
        let mut ledger = route.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = ledger.chunks.iter().position(|c| Arc::ptr_eq(c, stored)) {
            ledger.chunks.remove(i);
            ledger.bytes -= stored.header.data_len;
        }
    }

    /// `storage.keep.rejected`: copy what a route gives up on before it is dropped.
    fn keep_rejected(&self, route_idx: usize, task: &Task) {
        if let Some(store) = self.store.as_ref().filter(|s| s.config.keep_rejected) {
            store.reject(&self.routes[route_idx].name, &task.chunk, &task.progress);
        }
    }

    pub(crate) fn request_exit(&self) {
        self.exit_requested.store(true, Ordering::Release);
        self.exit.notify_one();
    }

    pub(crate) fn request_exit_with_status(&self, status: u8) {
        self.exit_status.store(i32::from(status), Ordering::Release);
        self.request_exit();
    }

    fn seal_all(&self) {
        let inputs = self
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for input in inputs {
            for chunk in input.seal_all() {
                self.dispatch(chunk);
            }
        }
    }
}

/// The pipeline: inputs, filters and outputs wired by tag.
pub struct Engine {
    config: EngineConfig,
    inputs: Vec<InputInstance>,
    filters: Vec<FilterInstance>,
    outputs: Vec<OutputInstance>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// An engine with no instances yet.
    pub fn new(config: EngineConfig) -> Self {
        Self::with_metrics(config, Arc::new(Metrics::default()))
    }

    /// An engine that records into `metrics` (shared with plugins built before it).
    pub fn with_metrics(config: EngineConfig, metrics: Arc<Metrics>) -> Self {
        Engine {
            config,
            inputs: Vec::new(),
            filters: Vec::new(),
            outputs: Vec::new(),
            metrics,
        }
    }

    /// Add an input.
    pub fn add_input(&mut self, input: InputInstance) {
        self.inputs.push(input);
    }

    /// Add a filter (filters run in the order added).
    pub fn add_filter(&mut self, filter: FilterInstance) {
        self.filters.push(filter);
    }

    /// Add an output.
    pub fn add_output(&mut self, output: OutputInstance) {
        self.outputs.push(output);
    }

    /// The counters of every instance, readable while the engine runs.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Run until `shutdown` resolves or an input asks to exit, then shut down gracefully.
    /// Fails at start when an output cannot create its workers.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<EngineReport, PluginError> {
        let Engine {
            config,
            mut inputs,
            filters,
            outputs,
            metrics,
        } = self;

        // Filters that put records back into the pipeline get an input of their own.
        let mut emitter_of = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            if let Some(spec) = f.plugin.emitter() {
                emitter_of.push((spec.name.clone(), i));
                inputs.push(InputInstance {
                    plugin_name: "emitter".into(),
                    name: spec.name,
                    tag: f.name.clone(),
                    mem_buf_limit: spec.mem_buf_limit,
                    filesystem: spec.filesystem,
                    plugin: spec.emitter.input(),
                });
            }
        }
        let filters = FilterStage::new(
            filters
                .into_iter()
                .map(|f| {
                    let m = metrics.filter(&f.name);
                    (f, m)
                })
                .collect(),
        );

        // Create every worker before anything runs, so a broken output fails the start.
        let mut receivers = Vec::new();
        let mut routes = Vec::new();
        for out in &outputs {
            let mut workers = Vec::new();
            for i in 0..out.workers.max(1) {
                workers.push(out.plugin.new_worker(i).await.map_err(|e| {
                    PluginError::new(format!("[output {}] cannot start: {e}", out.name))
                })?);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            receivers.push((rx, workers));
            routes.push(Route {
                name: Arc::from(out.name.as_str()),
                matcher: out.matcher.clone(),
                retry_limit: out.retry_limit,
                tx,
                metrics: metrics.output(&out.name),
                fs_limit: out.total_limit_size,
                ledger: Mutex::new(Ledger::default()),
            });
        }

        let store = match &config.storage {
            Some(cfg) => Some(
                Store::open(cfg.clone(), metrics.clone())
                    .map_err(|e| PluginError::new(format!("[storage] {e}")))?,
            ),
            None => None,
        };
        for input in inputs.iter().filter(|i| i.filesystem) {
            let Some(store) = &store else {
                return Err(PluginError::new(format!(
                    "[input {}] storage.type filesystem needs storage.path (-b)",
                    input.name
                )));
            };
            store.prepare_input(&input.name).map_err(|e| {
                PluginError::new(format!(
                    "[storage] cannot create the directory of {}: {e}",
                    input.name
                ))
            })?;
        }

        let (draining, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: config.clone(),
            filters,
            routes,
            inputs: Mutex::new(Vec::new()),
            inflight: AtomicUsize::new(0),
            pending_records: AtomicUsize::new(0),
            pending_stored: AtomicUsize::new(0),
            store,
            metrics: metrics.clone(),
            idle: Notify::new(),
            exit_requested: AtomicBool::new(false),
            exit_status: AtomicI32::new(-1),
            exit: Notify::new(),
            draining,
        });

        let components: Vec<String> = outputs.iter().map(|o| o.plugin_name.clone()).collect();
        let mut worker_set = JoinSet::new();
        for (route_idx, (rx, workers)) in receivers.into_iter().enumerate() {
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for (i, worker) in workers.into_iter().enumerate() {
                let span = tracing::info_span!("plugin",
                    component = %format!("output:{}:{}", components[route_idx], shared.routes[route_idx].name));
                worker_set.spawn(
                    run_worker(shared.clone(), route_idx, rx.clone(), worker, i).instrument(span),
                );
            }
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut input_set = JoinSet::new();
        // Every input's context exists before any input runs: a filter may hand records to an
        // emitter input from the first record on.
        let mut ready = Vec::new();
        for mut input in inputs {
            let limit = match input.mem_buf_limit {
                Some(l) => MemLimit::Configured(l),
                None => match config.default_mem_buf_limit {
                    Some(l) => MemLimit::Default(l),
                    None => MemLimit::Unbounded,
                },
            };
            let state = Arc::new(InputState::new(
                &input.name,
                &input.tag,
                limit,
                metrics.input(&input.name),
                if input.filesystem {
                    shared.store.clone()
                } else {
                    None
                },
            ));
            if let Some((_, idx)) = emitter_of.iter().find(|(n, _)| *n == input.name) {
                state.set_owner_filter(*idx);
            }
            shared
                .inputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(state.clone());
            let ctx = InputContext {
                state,
                shared: shared.clone(),
                stop: stop_rx.clone(),
            };
            input.plugin.started(&ctx);
            ready.push((input, ctx));
        }
        for (input, ctx) in ready {
            let name = input.name.clone();
            let span = tracing::info_span!("plugin",
                component = %format!("input:{}:{name}", input.plugin_name));
            input_set.spawn(
                async move {
                    if let Err(e) = input.plugin.run(ctx).await {
                        tracing::error!("{e}");
                    }
                }
                .instrument(span),
            );
        }

        let flusher = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(shared.config.flush);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    shared.seal_all();
                }
            })
        };

        if let Some(store) = &shared.store {
            for c in store.backlog_snapshot() {
                shared.charge(&c);
            }
        }
        let loader = shared.store.clone().map(|store| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut draining = shared.draining.subscribe();
                loop {
                    let (chunk, saved) = tokio::select! {
                        loaded = store.next_loaded() => loaded,
                        _ = draining.wait_for(|d| *d), if !store.config.backlog_flush_on_shutdown => return,
                    };
                    shared.route(chunk, &saved);
                }
            })
        });

        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {}
            _ = shared.exit.notified() => {}
        }

        let grace = config.grace;
        tracing::info!(target: "engine", "service will shutdown in max {} seconds", grace.as_secs());
        let deadline = tokio::time::Instant::now() + grace;
        // Inputs get half of the grace period to finish what they are reading.
        let _ = stop_tx.send(true);
        let input_deadline = tokio::time::Instant::now() + grace / 2;
        loop {
            tokio::select! {
                r = input_set.join_next() => if r.is_none() { break },
                _ = tokio::time::sleep_until(input_deadline) => {
                    tracing::warn!(target: "engine", "inputs did not stop in time; stopping them");
                    input_set.abort_all();
                    break;
                }
            }
        }
        tracing::info!(target: "engine", "pausing all inputs..");
        flusher.abort();
        shared.seal_all();
        let _ = shared.draining.send(true);

        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.inflight.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::select! {
                _ = idle => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Some(l) = loader {
            l.abort();
        }
        let pending = shared.pending_records.load(Ordering::Acquire);
        let kept = shared.pending_stored.load(Ordering::Acquire);
        let report = EngineReport {
            unfinished_tasks: shared.inflight.load(Ordering::Acquire),
            lost_records: pending - kept,
            kept_records: kept,
            exit_status: u8::try_from(shared.exit_status.load(Ordering::Acquire)).ok(),
        };
        worker_set.abort_all();
        while worker_set.join_next().await.is_some() {}
        if report.lost_records > 0 {
            tracing::warn!(target: "engine",
                "grace period ended with {}: {} not delivered",
                crate::count(report.unfinished_tasks as u64, "pending task"),
                crate::count(report.lost_records as u64, "record"));
        }
        if let Some(store) = &shared.store {
            let waiting = store.backlog_len();
            if kept > 0 || waiting > 0 {
                tracing::info!(target: "storage",
                    "{} of busy chunks and {} waiting on disk stay in {} for the next start",
                    crate::count(kept as u64, "undelivered record"),
                    crate::count(waiting as u64, "chunk"),
                    store.config.path.display());
            }
        }
        tracing::info!(target: "engine", "service has stopped ({})", crate::count(report.unfinished_tasks as u64, "pending task"));
        Ok(report)
    }
}

async fn run_worker(
    shared: Arc<Shared>,
    route_idx: usize,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Task>>>,
    mut worker: Box<dyn OutputWorker>,
    index: usize,
) {
    let mut rng = fastrand::Rng::new();
    loop {
        let task = { rx.lock().await.recv().await };
        let Some(mut task) = task else { break };
        let route = &shared.routes[route_idx];
        let m = &route.metrics;
        if task
            .chunk
            .stored
            .as_ref()
            .is_some_and(|s| s.is_cancelled(route_idx))
        {
            // storage.total_limit_size gave this chunk up while it was queued.
            metrics::add(&m.dropped_records, task.progress.pending_count() as u64);
            shared.finish(route_idx, &task, true);
            continue;
        }
        let before_done = task.progress.done_count();
        let before_dropped = task.progress.dropped_count();
        let result = worker.flush(&task.chunk, &mut task.progress).await;
        task.progress.checkpoint();
        let newly_done = task.progress.done_count() - before_done;
        let dropped = task.progress.dropped_count() - before_dropped;
        metrics::add(&m.dropped_records, dropped as u64);
        let chunk_id = task.chunk.id;
        // On Ok, whatever is still pending counts as delivered (plain outputs mark nothing).
        let delivered = newly_done - dropped
            + if result == FlushResult::Ok {
                task.progress.pending_count()
            } else {
                0
            };
        metrics::add(&m.proc_records, delivered as u64);
        let total = task.progress.total().max(1);
        metrics::add(
            &m.proc_bytes,
            (task.chunk.size() * delivered / total) as u64,
        );
        shared.record_done(&task.chunk, newly_done);
        match result {
            FlushResult::Ok => {
                if task.retries > 0 {
                    tracing::info!(target: "engine",
                        "flush chunk '{chunk_id}' succeeded at retry {}: input={} > output={} (worker {index})",
                        task.retries, task.chunk.input, route.name);
                }
                // finish() retires the still-pending records: they were just delivered.
                shared.finish(route_idx, &task, true);
            }
            FlushResult::Retry | FlushResult::Later(_) if task.progress.is_complete() => {
                shared.finish(route_idx, &task, true)
            }
            FlushResult::Later(delay) => {
                tracing::debug!(target: "engine",
                    "chunk '{chunk_id}' waits {} ms for the destination's rate limit: input={} > output={} ({} pending)",
                    delay.as_millis(), task.chunk.input, route.name,
                    crate::count(task.progress.pending_count() as u64, "record"));
                schedule_later(shared.clone(), route_idx, task, delay);
            }
            FlushResult::Retry => {
                if may_retry(route.retry_limit, task.retries) {
                    task.retries += 1;
                    metrics::add(&m.retries, 1);
                    metrics::add(&m.retried_records, task.progress.pending_count() as u64);
                    let draining = *shared.draining.borrow();
                    let delay = if draining {
                        Duration::from_secs(1)
                    } else {
                        shared.config.backoff.delay(task.retries, &mut rng)
                    };
                    tracing::warn!(target: "engine",
                        "failed to flush chunk '{chunk_id}', retry in {} seconds: input={} > output={} ({} of {} pending)",
                        delay.as_secs(), task.chunk.input, route.name,
                        task.progress.pending_count(),
                        crate::count(task.progress.total() as u64, "record"));
                    schedule_retry(shared.clone(), route_idx, task, delay);
                } else {
                    let pending = task.progress.pending_count();
                    metrics::add(&m.retries_failed, 1);
                    metrics::add(&m.dropped_records, pending as u64);
                    tracing::error!(target: "engine",
                        "chunk '{chunk_id}' cannot be retried: input={} > output={}; {} dropped",
                        task.chunk.input, route.name, crate::count(pending as u64, "record"));
                    shared.keep_rejected(route_idx, &task);
                    shared.finish(route_idx, &task, true);
                }
            }
            FlushResult::Error => {
                let pending = task.progress.pending_count();
                metrics::add(&m.errors, 1);
                metrics::add(&m.dropped_records, pending as u64);
                tracing::error!(target: "engine",
                    "chunk '{chunk_id}' could not be delivered: input={} > output={}; {} dropped",
                    task.chunk.input, route.name, crate::count(pending as u64, "record"));
                shared.keep_rejected(route_idx, &task);
                shared.finish(route_idx, &task, true);
            }
        }
    }
}

/// Re-queue `task` after `delay`, draining or not: a rate-limited chunk sent again at once
/// would only be told to wait again.
fn schedule_later(shared: Arc<Shared>, route_idx: usize, task: Task, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Err(mpsc::error::SendError(task)) = shared.routes[route_idx].tx.send(task) {
            shared.finish(route_idx, &task, false);
        }
    });
}

/// Re-queue `task` after `delay`, or at once when shutdown starts draining.
fn schedule_retry(shared: Arc<Shared>, route_idx: usize, task: Task, delay: Duration) {
    let mut draining = shared.draining.subscribe();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = draining.wait_for(|d| *d) => {}
        }
        if let Err(mpsc::error::SendError(task)) = shared.routes[route_idx].tx.send(task) {
            shared.finish(route_idx, &task, false);
        }
    });
}
