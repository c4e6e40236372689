//! Filesystem buffering (`storage.path` with an input's `storage.type filesystem`).
//!
//! A filesystem input writes every append into its open chunk's file before `append`
//! returns (so a forward ack or a tail offset never gets ahead of the disk). A sealed chunk is
//! either kept *up* (in memory, routed at once) or, when its input is over its memory bound,
//! `storage.max_chunks_up` is reached or older chunks wait, put *down*: its memory is freed
//! and it waits in the backlog. The backlog loader brings down chunks back up within
//! `storage.backlog.mem_limit`, oldest first; at start the backlog is every file left by the
//! last run. Each route appends its delivery progress to the chunk's file (see [`file`]), so a
//! replay sends only what was not accepted, and the file is deleted when every route settled.

pub mod file;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::chunk::{Chunk, Progress};
use crate::event::EventReader;
use crate::input::MemAccount;
use crate::metrics::{self, InputMetrics, Metrics};

/// `read_dir` whose error names the directory.
fn read_dir(dir: &Path) -> io::Result<std::fs::ReadDir> {
    std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", dir.display())))
}
use file::{Corrupt, Header, SyncMode};

/// File name extension of chunk files.
pub const CHUNK_EXT: &str = "kbc";

/// The service's `storage.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// `storage.path`: created when missing.
    pub path: PathBuf,
    /// `storage.sync`.
    pub sync: SyncMode,
    /// `storage.checksum`: CRC32 of each chunk's events, checked on load.
    pub checksum: bool,
    /// `storage.max_chunks_up`: filesystem chunks held in memory at once.
    pub max_chunks_up: usize,
    /// `storage.backlog.mem_limit`: memory for chunks loaded back from disk.
    pub backlog_mem_limit: usize,
    /// `storage.backlog.flush_on_shutdown`: keep loading the backlog during `Grace`.
    pub backlog_flush_on_shutdown: bool,
    /// `storage.delete_irrecoverable_chunks`: delete corrupt files instead of leaving them.
    pub delete_irrecoverable: bool,
    /// `storage.keep.rejected`: copy what an output gave up on to `rejected_path`.
    pub keep_rejected: bool,
    /// `storage.rejected.path`, relative to `path` unless absolute.
    pub rejected_path: PathBuf,
}

impl StorageConfig {
    /// Fluent Bit's defaults for a storage directory.
    pub fn new(path: PathBuf) -> Self {
        StorageConfig {
            path,
            sync: SyncMode::Normal,
            checksum: false,
            max_chunks_up: 128,
            backlog_mem_limit: 5 * 1024 * 1024,
            backlog_flush_on_shutdown: false,
            delete_irrecoverable: false,
            keep_rejected: false,
            rejected_path: PathBuf::from("rejected"),
        }
    }

    fn rejected_dir(&self) -> PathBuf {
        self.path.join(&self.rejected_path)
    }
}

/// The storage layer of one engine run.
pub struct Store {
    pub(crate) config: StorageConfig,
    metrics: Arc<Metrics>,
    backlog: Mutex<VecDeque<Arc<StoredChunk>>>,
    pub(crate) changed: Notify,
    /// Filesystem chunks in memory.
    up: AtomicUsize,
    /// Memory of chunks loaded back from disk (`storage.backlog.mem_limit`).
    pub(crate) loaded: Arc<MemAccount>,
    seq: AtomicU64,
    last_warning: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Create the directory if needed and queue every chunk file a previous run left.
    pub fn open(config: StorageConfig, metrics: Arc<Metrics>) -> io::Result<Arc<Store>> {
        std::fs::create_dir_all(&config.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create storage.path {}: {e}", config.path.display()),
            )
        })?;
        metrics.storage.enabled.store(true, Ordering::Relaxed);
        let store = Arc::new(Store {
            loaded: Arc::new(MemAccount::new(Some(config.backlog_mem_limit))),
            config,
            metrics,
            backlog: Mutex::new(VecDeque::new()),
            changed: Notify::new(),
            up: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
        });
        let found = store.scan()?;
        if !found.is_empty() {
            let records: u64 = found.iter().map(|c| c.header.records as u64).sum();
            tracing::info!(target: "storage",
                "backlog: {} ({}) left by the last run will be delivered",
                crate::count(found.len() as u64, "chunk"), crate::count(records, "record"));
            metrics::add(&store.metrics.storage.replayed_chunks, found.len() as u64);
        }
        for c in found {
            store.push_down(c);
        }
        Ok(store)
    }

    /// The chunk files under `path/<input>/`, oldest first; open ones are recovered.
    fn scan(self: &Arc<Self>) -> io::Result<Vec<Arc<StoredChunk>>> {
        let rejected = self.config.rejected_dir();
        let mut found = Vec::new();
        for dir in read_dir(&self.config.path)? {
            let dir = dir?.path();
            if !dir.is_dir() {
                tracing::warn!(target: "storage", "{} is not a chunk directory: left untouched", dir.display());
                continue;
            }
            if dir == rejected {
                continue;
            }
            for f in read_dir(&dir)? {
                let path = f?.path();
                if path.extension().and_then(|e| e.to_str()) != Some(CHUNK_EXT) {
                    tracing::warn!(target: "storage", "{} is not a chunk file: left untouched", path.display());
                    continue;
                }
                match self.examine(&path) {
                    Ok(Some(header)) => found.push(self.stored(path, header)),
                    Ok(None) => {}
                    Err(reason) => self.corrupt(&path, &reason),
                }
            }
        }
        found.sort_by(|a, b| (a.header.created_ns, &a.path).cmp(&(b.header.created_ns, &b.path)));
        Ok(found)
    }

    /// The header of a file found at start, once an open file is recovered; `None` when the
    /// file was removed because it never held a record.
    fn examine(&self, path: &Path) -> Result<Option<Header>, Corrupt> {
        let header = match file::read_header(path) {
            Err(Corrupt::Truncated(_)) if file::is_torn_create(path) => {
                // The crash came while the file was being created: it never held a record.
                tracing::info!(target: "storage", "chunk {} was cut while being created (no records): removed", path.display());
                metrics::add(&self.metrics.storage.recovered_chunks, 1);
                std::fs::remove_file(path)?;
                return Ok(None);
            }
            r => r?,
        };
        if header.sealed {
            return Ok(Some(header));
        }
        let r = file::recover_open(path)?;
        metrics::add(&self.metrics.storage.recovered_chunks, 1);
        tracing::info!(target: "storage",
            "chunk {} was still open at the last stop: {} kept{}",
            path.display(), crate::count(r.header.records as u64, "complete record"),
            if r.torn_bytes > 0 { format!(", a torn record of {} bytes cut", r.torn_bytes) } else { String::new() });
        Ok(Some(r.header))
    }

    /// A file that cannot be used: counted, logged, left (or deleted when configured).
    pub(crate) fn corrupt(&self, path: &Path, reason: &Corrupt) {
        metrics::add(&self.metrics.storage.corrupt_chunks, 1);
        if self.config.delete_irrecoverable {
            let _ = std::fs::remove_file(path);
            tracing::error!(target: "storage", "chunk {} skipped and deleted: {reason}", path.display());
        } else {
            tracing::error!(target: "storage",
                "chunk {} skipped: {reason} (left in place; storage.delete_irrecoverable_chunks on deletes such files)",
                path.display());
        }
    }

    /// The stored chunk of a sealed file (found at start, or just sealed by an input).
    pub(crate) fn stored(self: &Arc<Self>, path: PathBuf, header: Header) -> Arc<StoredChunk> {
        let gauges = self.metrics.input(&header.input);
        Arc::new(StoredChunk {
            store: self.clone(),
            path,
            header,
            gauges,
            journal: Mutex::new(None),
            routes_left: AtomicUsize::new(0),
            cancelled: AtomicU64::new(0),
        })
    }

    /// Create `path/<input>/`.
    pub(crate) fn prepare_input(&self, input: &str) -> io::Result<()> {
        let dir = self.config.path.join(dir_name(input));
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))
    }

    /// Start the file of a new open chunk.
    pub(crate) fn create(&self, input: &str, tag: &str) -> io::Result<file::ChunkWriter> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{:020}-{}-{seq}.{CHUNK_EXT}",
            file::unix_nanos(),
            std::process::id()
        );
        let path = self.config.path.join(dir_name(input)).join(name);
        file::ChunkWriter::create(path, tag, input, self.config.checksum, self.config.sync)
    }

    /// Log a failed write, at most once every 10 s, and count it.
    pub(crate) fn write_failed(&self, what: &str, path: &Path, e: &io::Error) {
        metrics::add(&self.metrics.storage.write_errors, 1);
        let now = file::unix_nanos() / 1_000_000_000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(target: "storage",
                "cannot {what} {}: {e} (the chunk stays in memory only; check space and permissions of storage.path)",
                path.display());
        }
    }

    pub(crate) fn chunk_up(&self) {
        self.up.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn chunk_released(&self) {
        self.up.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Whether a newly sealed chunk must wait on disk.
    pub(crate) fn must_go_down(&self) -> bool {
        self.has_backlog() || self.up.load(Ordering::Acquire) >= self.config.max_chunks_up
    }

    /// Whether chunks wait on disk.
    pub fn has_backlog(&self) -> bool {
        !self.lock_backlog().is_empty()
    }

    /// The chunks waiting on disk, oldest first.
    pub(crate) fn backlog_snapshot(&self) -> Vec<Arc<StoredChunk>> {
        self.lock_backlog().iter().cloned().collect()
    }

    /// Chunks waiting on disk.
    pub fn backlog_len(&self) -> usize {
        self.lock_backlog().len()
    }

    fn lock_backlog(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<StoredChunk>>> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a sealed chunk whose memory is (being) freed.
    pub(crate) fn push_down(&self, c: Arc<StoredChunk>) {
        c.gauges.chunks_down.fetch_add(1, Ordering::Relaxed);
        self.lock_backlog().push_back(c);
        self.changed.notify_waiters();
    }

    /// Whether `c` waits on disk.
    pub(crate) fn is_down(&self, c: &Arc<StoredChunk>) -> bool {
        self.lock_backlog().iter().any(|x| Arc::ptr_eq(x, c))
    }

    /// Take `c` out of the backlog; false when it was not there (already loaded).
    pub(crate) fn remove_down(&self, c: &Arc<StoredChunk>) -> bool {
        let mut backlog = self.lock_backlog();
        match backlog.iter().position(|x| Arc::ptr_eq(x, c)) {
            Some(i) => {
                backlog.remove(i);
                c.gauges.chunks_down.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The oldest down chunk, when memory allows loading it.
    fn take_loadable(&self) -> Option<Arc<StoredChunk>> {
        let mut backlog = self.lock_backlog();
        let front = backlog.front()?;
        let used = self.loaded.used();
        let up = self.up.load(Ordering::Acquire);
        // Something must always be loadable when nothing is up, or a chunk bigger than the
        // limit would wait forever.
        if (used > 0 && used + front.header.data_len as usize > self.config.backlog_mem_limit)
            || (up > 0 && up >= self.config.max_chunks_up)
        {
            return None;
        }
        let c = backlog.pop_front()?;
        c.gauges.chunks_down.fetch_sub(1, Ordering::Relaxed);
        Some(c)
    }

    /// Load the next down chunk with what its routes already delivered, or wait until one
    /// can be loaded. Corrupt files are skipped and counted.
    pub(crate) async fn next_loaded(&self) -> (Chunk, HashMap<String, file::SavedProgress>) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(c) = self.take_loadable() {
                match file::read_chunk(&c.path) {
                    Ok(l) => {
                        metrics::add(&self.metrics.storage.loaded_chunks, 1);
                        self.loaded.add(l.data.len());
                        let chunk = Chunk::with_account(
                            Arc::from(l.header.tag.as_str()),
                            l.data,
                            l.header.records as usize,
                            Arc::from(l.header.input.as_str()),
                            self.loaded.clone(),
                            Some(c.clone()),
                            c.gauges.clone(),
                        );
                        return (chunk, l.progress);
                    }
                    Err(reason) => {
                        self.corrupt(&c.path, &reason);
                        continue;
                    }
                }
            }
            changed.await;
        }
    }

    /// Copy the records `progress` has not delivered to `storage.rejected.path/<output>/`.
    pub(crate) fn reject(&self, output: &str, chunk: &Chunk, progress: &Progress) {
        let mut data = Vec::new();
        let mut n = 0;
        for (i, ev) in EventReader::new(&chunk.data).enumerate() {
            let Ok(ev) = ev else { break };
            if !progress.is_done(i) {
                data.extend_from_slice(ev.raw);
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        let dir = self.config.rejected_dir().join(dir_name(output));
        let path = dir.join(format!("{}-{}.{CHUNK_EXT}", chunk.id, std::process::id()));
        let r = std::fs::create_dir_all(&dir).and_then(|_| {
            file::write_sealed(&path, &chunk.tag, &chunk.input, &data, n, self.config.sync)
        });
        match r {
            Ok(()) => {
                metrics::add(&self.metrics.storage.rejected_chunks, 1);
                tracing::warn!(target: "storage", "{} of chunk '{}' kept in {}", crate::count(n as u64, "undelivered record"), chunk.id, path.display());
            }
            Err(e) => self.write_failed("write the rejected chunk", &path, &e),
        }
    }
}

/// An input or output name as a directory name.
fn dir_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A sealed chunk file, shared by the chunk in memory, its routes' journals and the backlog.
pub struct StoredChunk {
    pub(crate) store: Arc<Store>,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    gauges: Arc<InputMetrics>,
    journal: Mutex<Option<File>>,
    routes_left: AtomicUsize,
    /// Routes (bit = route index) that gave the chunk up (`storage.total_limit_size`).
    cancelled: AtomicU64,
}

impl std::fmt::Debug for StoredChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredChunk")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StoredChunk {
    /// Route `idx` gives this chunk up (routes past the 64th are never cancelled).
    pub(crate) fn cancel(&self, idx: usize) {
        if idx < 64 {
            self.cancelled.fetch_or(1 << idx, Ordering::AcqRel);
        }
    }

    /// Whether route `idx` gave this chunk up.
    pub(crate) fn is_cancelled(&self, idx: usize) -> bool {
        idx < 64 && self.cancelled.load(Ordering::Acquire) & (1 << idx) != 0
    }

    /// The number of routes that must settle before the file goes.
    pub(crate) fn set_routes(&self, n: usize) {
        self.routes_left.store(n, Ordering::Release);
        if n == 0 {
            self.delete();
        }
    }

    /// A route is done with the chunk for good: the last one deletes the file; others
    /// record it so a replay skips this route.
    pub(crate) fn settle_route(&self, route: &str, total: usize) {
        if self.routes_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.delete();
        } else {
            self.write_entry(route, true, total, 0, &[]);
        }
    }

    /// Record in the journal that `route` is done with this chunk.
    pub(crate) fn record_finished(&self, route: &str) {
        self.write_entry(route, true, self.header.records as usize, 0, &[]);
    }

    fn delete(&self) {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.store.write_failed("delete", &self.path, &e),
        }
    }

    fn write_entry(
        &self,
        route: &str,
        finished: bool,
        total: usize,
        dropped: usize,
        words: &[u64],
    ) {
        let mut guard = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            match OpenOptions::new().append(true).open(&self.path) {
                Ok(f) => *guard = Some(f),
                Err(e) => return self.store.write_failed("open", &self.path, &e),
            }
        }
        let Some(f) = guard.as_mut() else { return };
        if let Err(e) = file::append_journal(
            f,
            route,
            finished,
            total,
            dropped,
            words,
            self.store.config.sync,
        ) {
            self.store
                .write_failed("append progress to", &self.path, &e);
        }
    }
}

/// Where a route's [`Progress`] is persisted.
#[derive(Clone)]
pub(crate) struct Journal {
    chunk: Arc<StoredChunk>,
    route: Arc<str>,
    written: usize,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.route)
    }
}

impl Journal {
    pub(crate) fn new(chunk: Arc<StoredChunk>, route: Arc<str>, written: usize) -> Self {
        Journal {
            chunk,
            route,
            written,
        }
    }

    pub(crate) fn save(&mut self, done: usize, total: usize, dropped: usize, words: &[u64]) {
        if done != self.written {
            self.chunk
                .write_entry(&self.route, false, total, dropped, words);
            self.written = done;
        }
    }
}
