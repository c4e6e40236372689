//! What an input sees of the engine: appending events (buffered per tag into open chunks),
//! waiting while its `Mem_Buf_Limit` is exceeded, and learning that it must stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::chunk::Chunk;
use crate::engine::Shared;
use crate::filter::StageBuf;
use crate::metrics::{self, InputMetrics};
use crate::store::file::ChunkWriter;
use crate::store::Store;

/// How an input's buffered bytes are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemLimit {
    /// No bound (Fluent Bit's behaviour without `Mem_Buf_Limit`).
    Unbounded,
    /// `Mem_Buf_Limit`: pausing is news, logged as a warning like Fluent Bit does.
    Configured(usize),
    /// The engine's default bound: pausing is routine (a file read faster than it ships).
    Default(usize),
}

impl MemLimit {
    fn bytes(self) -> Option<usize> {
        match self {
            MemLimit::Unbounded => None,
            MemLimit::Configured(l) | MemLimit::Default(l) => Some(l),
        }
    }
}

/// Bytes an input holds in memory (open plus sealed-but-undelivered chunks) against its limit.
#[derive(Debug)]
pub struct MemAccount {
    used: AtomicUsize,
    limit: Option<usize>,
    released: Notify,
    /// The input whose `mem_bytes` gauge follows this account.
    gauges: Option<Arc<InputMetrics>>,
}

impl MemAccount {
    /// An account with an optional limit in bytes.
    pub fn new(limit: Option<usize>) -> Self {
        MemAccount {
            used: AtomicUsize::new(0),
            limit,
            released: Notify::new(),
            gauges: None,
        }
    }

    pub(crate) fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
        if let Some(g) = &self.gauges {
            g.mem_bytes.fetch_add(n as i64, Ordering::Relaxed);
        }
    }

    pub(crate) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        if let Some(g) = &self.gauges {
            g.mem_bytes.fetch_sub(n as i64, Ordering::Relaxed);
        }
        self.released.notify_waiters();
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Whether the input is over its limit and must pause.
    pub fn is_over(&self) -> bool {
        self.limit.is_some_and(|l| self.used() >= l)
    }
}

struct OpenChunk {
    buf: Vec<u8>,
    records: usize,
    /// The chunk's file (filesystem inputs); `None` after a failed write.
    file: Option<ChunkWriter>,
}

/// One input instance's state shared by its task and the engine's flush timer.
pub(crate) struct InputState {
    pub(crate) name: Arc<str>,
    pub(crate) tag: Arc<str>,
    pub(crate) account: Arc<MemAccount>,
    /// Whether pause/resume is worth a warning (an explicit `Mem_Buf_Limit`).
    loud_pauses: bool,
    pub(crate) metrics: Arc<InputMetrics>,
    open: Mutex<HashMap<Arc<str>, OpenChunk>>,
    paused: AtomicBool,
    /// Set for `storage.type filesystem`: chunks are written to files as they fill.
    store: Option<Arc<Store>>,
    /// The filter this input is the emitter of (its records skip that filter).
    owner_filter: OnceLock<usize>,
    /// The filter stage's buffers for this input's appends.
    stage: Mutex<StageBuf>,
    /// Memory accounts of emitters this input's records were re-emitted into (rewrite_tag):
    /// the input pauses while one of them is over its limit, as Fluent Bit's pipeline does.
    downstream: Mutex<Vec<Arc<MemAccount>>>,
    /// `storage.pause_on_chunks_overlimit`: a filesystem input waits while chunks queue on
    /// disk.
    pause_on_overlimit: AtomicBool,
}

thread_local! {
    /// The inputs whose appends are running the filter stage on this thread (innermost last).
    static APPENDING: std::cell::RefCell<Vec<Arc<InputState>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Link the emitter account `to` to the input whose append is running here.
pub(crate) fn link_to_appending(to: &Arc<MemAccount>) {
    APPENDING.with(|a| {
        if let Some(src) = a.borrow().last() {
            if Arc::ptr_eq(&src.account, to) {
                return;
            }
            let mut d = src.downstream.lock().unwrap_or_else(|e| e.into_inner());
            if !d.iter().any(|x| Arc::ptr_eq(x, to)) {
                d.push(to.clone());
            }
        }
    });
}

struct AppendingGuard;

impl AppendingGuard {
    fn enter(state: &Arc<InputState>) -> Self {
        APPENDING.with(|a| a.borrow_mut().push(state.clone()));
        AppendingGuard
    }
}

impl Drop for AppendingGuard {
    fn drop(&mut self) {
        APPENDING.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

impl InputState {
    pub(crate) fn new(
        name: &str,
        tag: &str,
        limit: MemLimit,
        metrics: Arc<InputMetrics>,
        store: Option<Arc<Store>>,
    ) -> Self {
        metrics
            .mem_limit
            .store(limit.bytes().unwrap_or(0) as u64, Ordering::Relaxed);
        metrics.filesystem.store(store.is_some(), Ordering::Relaxed);
        let mut account = MemAccount::new(limit.bytes());
        account.gauges = Some(metrics.clone());
        InputState {
            name: Arc::from(name),
            tag: Arc::from(tag),
            account: Arc::new(account),
            loud_pauses: matches!(limit, MemLimit::Configured(_)),
            metrics,
            open: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            store,
            owner_filter: OnceLock::new(),
            stage: Mutex::new(StageBuf::default()),
            downstream: Mutex::new(Vec::new()),
            pause_on_overlimit: AtomicBool::new(false),
        }
    }

    /// Make this input the emitter of filter `idx`.
    pub(crate) fn set_owner_filter(&self, idx: usize) {
        let _ = self.owner_filter.set(idx);
    }

    /// Whether chunks of this input are written to files.
    pub(crate) fn is_filesystem(&self) -> bool {
        self.store.is_some()
    }

    /// Seal every open chunk (the flush timer and shutdown call this).
    pub(crate) fn seal_all(&self) -> Vec<Chunk> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.drain()
            .filter(|(_, c)| c.records > 0)
            .map(|(tag, c)| self.seal(tag, c))
            .collect()
    }

    fn seal(&self, tag: Arc<str>, c: OpenChunk) -> Chunk {
        self.metrics.chunks_open.fetch_sub(1, Ordering::Relaxed);
        let stored = match (c.file, &self.store) {
            (Some(w), Some(store)) => {
                let path = w.path().to_path_buf();
                match w.seal(c.records) {
                    Ok(header) => Some(store.stored(path, header)),
                    Err(e) => {
                        store.write_failed("seal", &path, &e);
                        let _ = std::fs::remove_file(&path);
                        None
                    }
                }
            }
            _ => None,
        };
        Chunk::with_account(
            tag,
            Bytes::from(c.buf),
            c.records,
            self.name.clone(),
            self.account.clone(),
            stored,
            self.metrics.clone(),
        )
    }

    /// Buffer `events`; returns a chunk when the tag's open chunk reached `max` bytes.
    fn append(&self, tag: &str, events: &[u8], records: usize, max: usize) -> Option<Chunk> {
        self.account.add(events.len());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let key: Arc<str> = match open.get_key_value(tag) {
            Some((k, _)) => k.clone(),
            None => Arc::from(tag),
        };
        let c = open.entry(key.clone()).or_insert_with(|| {
            self.metrics.chunks_open.fetch_add(1, Ordering::Relaxed);
            let file = self.store.as_ref().and_then(|store| {
                store
                    .create(&self.name, tag)
                    .map_err(|e| {
                        store.write_failed("create a chunk file in", &store.config.path, &e)
                    })
                    .ok()
            });
            OpenChunk {
                buf: Vec::with_capacity(events.len().max(4096)),
                records: 0,
                file,
            }
        });
        // Written before append returns: the input acknowledges (forward) or advances its
        // offset (tail) only after this.
        if let (Some(w), Some(store)) = (&mut c.file, &self.store) {
            if let Err(e) = w.append(events) {
                let path = w.path().to_path_buf();
                store.write_failed("write", &path, &e);
                c.file = None;
                let _ = std::fs::remove_file(&path);
            }
        }
        c.buf.extend_from_slice(events);
        c.records += records;
        if c.buf.len() >= max {
            let c = open.remove(&key)?;
            return Some(self.seal(key, c));
        }
        None
    }
}

/// The handle an input uses to produce events.
#[derive(Clone)]
pub struct InputContext {
    pub(crate) state: Arc<InputState>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: watch::Receiver<bool>,
}

impl InputContext {
    /// Instance name (`alias` or `<plugin>.<n>`).
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The instance's tag (`Tag`, or the instance name when unset).
    pub fn tag(&self) -> &str {
        &self.state.tag
    }

    /// Append `records` pre-encoded events with this input's tag.
    pub fn append(&self, events: &[u8], records: usize) {
        let tag = self.state.tag.clone();
        self.append_tagged(&tag, events, records);
    }

    /// Append `records` pre-encoded events under `tag`. Filters matching the tag run first.
    pub fn append_tagged(&self, tag: &str, events: &[u8], records: usize) {
        if records == 0 {
            return;
        }
        // Fluent Bit counts what an input produced, before filters.
        metrics::add(&self.state.metrics.records, records as u64);
        metrics::add(&self.state.metrics.bytes, events.len() as u64);
        let stage = &self.shared.filters;
        if !stage.is_empty() {
            let skip = self.state.owner_filter.get().copied();
            // Only a filter appending back into its own input could find the lock taken;
            // it then gets buffers of its own rather than a deadlock.
            let mut fresh = StageBuf::default();
            let mut guard = self.state.stage.try_lock();
            let buf = match guard.as_mut() {
                Ok(g) => &mut **g,
                Err(_) => &mut fresh,
            };
            let _appending = AppendingGuard::enter(&self.state);
            if let Some((data, count)) = stage.run(tag, self.name(), skip, events, buf) {
                if count > 0 {
                    self.buffer(tag, data, count);
                }
                return;
            }
        }
        self.buffer(tag, events, records);
    }

    /// Put filtered events into the tag's open chunk.
    fn buffer(&self, tag: &str, data: &[u8], count: usize) {
        if let Some(chunk) = self
            .state
            .append(tag, data, count, self.shared.config.chunk_max_bytes)
        {
            self.shared.dispatch(chunk);
        }
    }

    /// This input's memory account (emitters link it to the inputs that feed them).
    pub(crate) fn account(&self) -> &Arc<MemAccount> {
        &self.state.account
    }

    /// Whether this input's chunks are written to files (`storage.type filesystem`).
    pub fn is_filesystem(&self) -> bool {
        self.state.is_filesystem()
    }

    /// Whether the input is over its `Mem_Buf_Limit` (a filesystem input: whether it asked to
    /// pause on chunks over the limit and they are).
    pub fn is_paused(&self) -> bool {
        match &self.state.store {
            Some(store) => {
                self.state.pause_on_overlimit.load(Ordering::Acquire) && store.must_go_down()
            }
            None => self.state.account.is_over(),
        }
    }

    /// `storage.pause_on_chunks_overlimit`: with filesystem storage, make [`Self::ready`]
    /// wait while new chunks would have to wait on disk (`storage.max_chunks_up` chunks are
    /// in memory, or chunks queue on disk already), as Fluent Bit pauses such an input.
    pub fn pause_on_chunks_overlimit(&self, on: bool) {
        self.state.pause_on_overlimit.store(on, Ordering::Release);
    }

    /// Wait while chunks are over the filesystem limit (see
    /// [`Self::pause_on_chunks_overlimit`]), or until the engine stops.
    async fn ready_chunks_up(&self, store: &Store) {
        let mut stop = self.stop.clone();
        loop {
            let changed = store.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !store.must_go_down() || *stop.borrow() {
                if self.state.paused.swap(false, Ordering::AcqRel) {
                    tracing::info!(target: "input", "{} resume (storage buf overlimit)", self.name());
                }
                return;
            }
            if !self.state.paused.swap(true, Ordering::AcqRel) {
                tracing::warn!(target: "input",
                    "{} paused (storage buf overlimit {} chunks up)", self.name(), store.config.max_chunks_up);
            }
            tokio::select! {
                _ = changed => {}
                _ = stop.changed() => {}
                // Chunks going up again are not all announced: look again now and then.
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    }

    /// Wait until the input may produce more: returns at once when under `Mem_Buf_Limit`,
    /// otherwise when enough buffered data was delivered, or when the engine stops.
    /// A filesystem input never waits (what memory cannot hold waits on disk), unless it set
    /// [`Self::pause_on_chunks_overlimit`].
    pub async fn ready(&self) {
        if let Some(store) = &self.state.store {
            if self.state.pause_on_overlimit.load(Ordering::Acquire) {
                self.ready_chunks_up(store).await;
            }
            return;
        }
        let mut stop = self.stop.clone();
        loop {
            // This input's own account, else an emitter it feeds that is over its limit.
            let downstream = self
                .state
                .downstream
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|a| a.is_over())
                .cloned();
            let account = match &downstream {
                Some(d) if !self.state.account.is_over() => d,
                _ => &self.state.account,
            };
            let released = account.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !account.is_over() || *stop.borrow() {
                if self.state.paused.swap(false, Ordering::AcqRel) {
                    if self.state.loud_pauses {
                        tracing::info!(target: "input", "{} resume (mem buf overlimit)", self.name());
                    } else {
                        tracing::debug!(target: "input", "{} resume (default memory bound)", self.name());
                    }
                }
                return;
            }
            if !self.state.paused.swap(true, Ordering::AcqRel) {
                if self.state.loud_pauses {
                    tracing::warn!(target: "input", "{} paused (mem buf overlimit)", self.name());
                } else {
                    tracing::debug!(target: "input", "{} paused at the default memory bound (set Mem_Buf_Limit to choose it)", self.name());
                }
            }
            tokio::select! {
                _ = released => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Whether the engine asked inputs to stop.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the engine asks inputs to stop.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ask the whole agent to deliver what it has and exit, as Fluent Bit does when its stdin
    /// input reaches end of file.
    pub fn request_exit(&self) {
        self.shared.request_exit();
    }

    /// Ask the agent to exit as [`request_exit`](Self::request_exit) does, with `status` as
    /// its exit status (Fluent Bit's `exec` with `Propagate_Exit_Code`).
    pub fn request_exit_with_status(&self, status: u8) {
        self.shared.request_exit_with_status(status);
    }

    /// Bytes this input holds in memory.
    pub fn buffered_bytes(&self) -> usize {
        self.state.account.used()
    }
}
