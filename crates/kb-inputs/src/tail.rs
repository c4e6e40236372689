//! `tail`: follow text files matched by glob patterns, one record per line (Fluent Bit's
//! `in_tail`).
//!
//! * `Path` (comma-separated globs) is scanned at start and every `Refresh_Interval` seconds
//!   (fractions allowed); regular files matching an `Exclude_Path` pattern are ignored.
//! * Files present at start are read from their end unless `Read_from_Head` is on or `DB`
//!   holds their offset; "their end" is the start of their last line when it is unfinished,
//!   so that a line being written is delivered whole (Fluent Bit starts inside it). Files
//!   discovered later (new files, the file that replaces a rotated one) are read from the
//!   head, as Fluent Bit does after its first scan.
//! * Changes are learnt from inotify (`Inotify_Watcher on`, the default) or by polling every
//!   250 ms ([`watch`]). Files are read in big blocks with positioned reads, lines split with
//!   `memchr`, every line of a block appended in one call. Before each block the input waits
//!   for `Mem_Buf_Limit` room, so a paused input stops reading.
//! * Records are `{Path_Key: <path>, Offset_Key: <offset of the line's first byte>, Key:
//!   <line>}` (the first two only when set; `Key` defaults to `log`). Line bytes are kept as
//!   they are (no UTF-8 check), a trailing `\r` is removed; `Skip_Empty_Lines` drops empty
//!   lines. With `Parser`, a line it parses is its fields followed by `Path_Key` and
//!   `Offset_Key` (Fluent Bit's order); others stay `{Path_Key, Offset_Key, Key: line}`.
//! * `Tag` with a `*`: the `*` is replaced by the file's path with `/` turned into `.` and
//!   the leading one removed (`app.*` + `/var/log/x.log` = `app.var.log.x.log`).
//! * Rotation by rename (or deletion): the old file keeps being read for `Rotate_Wait`
//!   seconds, and the file now at the path is followed from its head at once.
//! * Copy-truncate: before every read the bytes before the read position and the file's first
//!   bytes are compared with what was read ([`proof`]); a file truncated, or truncated and
//!   written again to any size between two reads, is read again from its head.
//! * Lines longer than `Buffer_Max_Size` are skipped with a warning when `Skip_Long_Lines` is
//!   on; otherwise the file stops being followed (as Fluent Bit does).
//! * `DB`: offsets stored in SQLite (Fluent Bit's `in_tail_files` table, keyed by inode, with
//!   the proof of each offset beside it), so a restart resumes where the last run stopped and
//!   a file rewritten meanwhile is read from its head. `DB.sync`, `DB.locking`,
//!   `DB.journal_mode`.
//!
//! * `multiline.parser` (built-in `docker`, `cri`, `go`, `python`, `java`, `ruby` and
//!   `[MULTILINE_PARSER]`s) and `Docker_Mode`/`Docker_Mode_Flush`/`Docker_Mode_Parser` join
//!   lines (see [`multiline`]).
//!
//! Offsets (and so `DB`) count lines handed to the engine, not lines delivered by outputs, as
//! in Fluent Bit. Files are read on the input's task (local files; a stalled network file
//! system would stall it).
//!
//! Not supported (unknown keys): the old `multiline`/`parser_firstline`/`multiline_flush`
//! keys, `tag_regex`, `ignore_older`, `exit_on_eof`.

mod config;
mod db;
mod follow;
pub mod multiline;
pub mod proof;
pub mod watch;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, PluginSpec, Props, SectionKind};
use kb_core::event::EventWriter;
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::time::Instant;

use crate::util::{self, Throttle};
pub use config::{NamedParser, TailConfig};
pub use db::{OffsetDb, Save, Stored};
use follow::Tailed;
use multiline::MlConfig;
use proof::Proof;
use watch::{Change, Watcher, POLL_INTERVAL, SAFETY_INTERVAL};

/// Files forgotten after rotation whose positions are remembered (in case a scan finds them).
const MAX_RETIRED: usize = 4096;

/// The `tail` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "tail",
        description: "Tail files",
        keys: config::KEYS,
    },
    build,
};

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let mut config = TailConfig::from_props(props)?;
    let mut errors = Vec::new();
    let mut named = |key: &str| -> Option<NamedParser> {
        let name = props.str(key)?;
        match svc.parsers.parser(name) {
            Some(p) => Some(NamedParser(p)),
            None => {
                errors.push(props.error(
                    key,
                    format!(
                        "unknown parser '{name}': define it in a parsers file (-R / Parsers_File)"
                    ),
                ));
                None
            }
        }
    };
    config.parser = named("parser");
    let first_line = named("docker_mode_parser");
    if let Some(d) = &mut config.docker_mode {
        d.first_line = first_line;
    }
    let ml_props: Vec<_> = props.get_all("multiline.parser").collect();
    if !ml_props.is_empty() {
        let parsers = kb_parsers::Parsers::of(svc.parsers.as_ref());
        match parsers.multiline.resolve(
            ml_props.iter().copied(),
            &format!("[input {}] ", props.instance),
        ) {
            Ok(list) if !list.is_empty() => {
                config.multiline = Some(MlConfig {
                    parsers: list,
                    buffer_limit: parsers.multiline_buffer_limit,
                });
            }
            Ok(_) => {}
            Err(e) => errors.extend(e),
        }
    }
    if config.multiline.is_some() && config.docker_mode.is_some() {
        svc.warn(
            props
                .get("docker_mode")
                .map_or(props.location.clone(), |p| p.location.clone()),
            format!(
                "[input {}] Docker_Mode is ignored with multiline.parser, as in Fluent Bit",
                props.instance
            ),
        );
        config.docker_mode = None;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(TailInput::new(config)))
}

/// The tag of the records of `path`: `tag` with its first `*` replaced by the path, `/`
/// turned into `.` and the leading one removed.
pub fn expand_tag(tag: &str, path: &str) -> String {
    if !tag.contains('*') {
        return tag.to_string();
    }
    let name = path.strip_prefix('/').unwrap_or(path).replace('/', ".");
    tag.replacen('*', &name, 1)
}

/// A configured `tail` input; records are tagged with the instance's tag, its `*` expanded
/// per file.
pub struct TailInput {
    config: TailConfig,
}

impl TailInput {
    /// An input with `config`.
    pub fn new(config: TailConfig) -> Self {
        TailInput { config }
    }
}

/// A file's identity: device and inode.
pub type FileId = (u64, u64);

struct Tailer {
    cfg: TailConfig,
    tag: String,
    files: Vec<Tailed>,
    /// Positions of files no longer followed after a rotation.
    retired: HashMap<FileId, (u64, Proof)>,
    db: Option<OffsetDb>,
    watcher: Watcher,
    block: Vec<u8>,
    writer: EventWriter,
    long_lines: u64,
    warn: Throttle,
    /// A rename, deletion or lost events were reported: look for rotations now.
    check_wanted: bool,
    last_save: Instant,
}

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// The value of a DB call, or `None` after logging its failure.
fn logged<T>(what: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(target: "input", "tail: DB {what} failed: {e}");
            None
        }
    }
}

impl Tailer {
    /// Every regular file matching `Path` and none of `Exclude_Path`.
    fn matching_files(&self) -> Vec<(String, std::fs::Metadata)> {
        let mut out = Vec::new();
        for pattern in &self.cfg.paths {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for p in paths.flatten() {
                let Some(name) = p.to_str() else { continue };
                if self.cfg.exclude.iter().any(|x| x.matches(name)) {
                    continue;
                }
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_file() => out.push((name.to_string(), m)),
                    _ => {}
                }
            }
        }
        out
    }

    /// Scan `Path`; `at_start` chooses where files without a stored offset start.
    fn scan(&mut self, at_start: bool) {
        for (path, meta) in self.matching_files() {
            self.add(&path, &meta, at_start);
        }
    }

    fn is_followed(&self, id: FileId) -> bool {
        self.files.iter().any(|f| f.id == id)
    }

    /// Follow `path` unless its file is followed already.
    fn add(&mut self, path: &str, meta: &std::fs::Metadata, at_start: bool) {
        let id = file_id(meta);
        if self.is_followed(id) {
            return;
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(target: "input", "tail: cannot open {path}: {e}");
                return;
            }
        };
        // The file opened may differ from the one stat'ed (a rotation in between).
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            _ => return,
        };
        let id = file_id(&meta);
        if self.is_followed(id) {
            return;
        }
        let size = meta.len();
        let mut db_id = None;
        let mut resume = None;
        if let Some(db) = &self.db {
            if let Some(Some(stored)) = logged("lookup", db.lookup(id.1)) {
                db_id = Some(stored.id);
                resume = Some((stored.offset, stored.proof));
                logged("update", db.rename(stored.id, path));
            }
        }
        if resume.is_none() {
            resume = self.retired.remove(&id).map(|(o, p)| (o, Some(p)));
        }
        let mut discarding = false;
        let offset = match resume {
            Some((o, Some(p))) if o <= size && !p.holds(&file, o).unwrap_or(false) => {
                tracing::info!(target: "input",
                    "tail: {path} was rewritten since offset {o} was stored; reading it from its head");
                0
            }
            Some((o, proof)) if o <= size => {
                // An offset without proof (a DB Fluent Bit wrote) is trusted only at a line
                // start; elsewhere the rest of that line is skipped rather than torn.
                discarding = proof.is_none() && o > 0 && !follow::ends_line(&file, o);
                o
            }
            Some((o, _)) => {
                tracing::info!(target: "input",
                    "tail: {path} is shorter than its stored offset {o} (truncated); reading it from its head");
                0
            }
            None if at_start && !self.cfg.read_from_head => {
                let (o, skip) = follow::last_line_start(&file, size, self.cfg.buffer_max_size);
                discarding = skip;
                o
            }
            None => 0,
        };
        let proof = match Proof::read(&file, offset) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "input", "tail: cannot read {path}: {e}");
                return;
            }
        };
        if db_id.is_none() {
            if let Some(db) = &self.db {
                db_id = logged("insert", db.insert(path, id.1, offset));
            }
        }
        tracing::debug!(target: "input", "tail: following {path} (inode {}) from offset {offset}", id.1);
        let tag = expand_tag(&self.tag, path);
        let ml = multiline::FileMl::new(self.cfg.multiline.as_ref());
        let mut f = Tailed::new(path, tag, file, id, offset, proof, ml);
        f.db_id = db_id;
        f.discarding = discarding;
        f.watched = self.watcher.watch(&f.file, id, path);
        self.files.push(f);
    }

    /// Hand what the writer holds to the engine under `tag`.
    fn append(&mut self, ctx: &InputContext, tag: &str) {
        if self.writer.count > 0 {
            ctx.append_tagged(tag, &self.writer.buf, self.writer.count);
        }
        self.writer.clear();
    }

    /// Mark the files named by `changes` for reading (and ask for a rotation check).
    fn apply(&mut self, changes: &mut Vec<Change>) {
        changes.sort_unstable_by_key(|c| match c {
            Change::Modified(id) | Change::Moved(id) => (*id, 0),
            Change::Overflow => ((0, 0), 1),
        });
        changes.dedup();
        for c in changes.iter() {
            match c {
                Change::Modified(id) | Change::Moved(id) => {
                    if let Some(f) = self.files.iter_mut().find(|f| f.id == *id) {
                        f.dirty = true;
                    }
                    self.check_wanted |= matches!(c, Change::Moved(_));
                }
                Change::Overflow => {
                    tracing::debug!(target: "input", "tail: inotify queue overflowed; reading every file");
                    self.mark_all_dirty();
                    self.check_wanted = true;
                }
            }
        }
        changes.clear();
    }

    fn mark_all_dirty(&mut self) {
        for f in &mut self.files {
            f.dirty = true;
        }
    }

    /// Whether some file needs looking at without an event: polled files, rotated files (whose
    /// replacement may appear), open multiline messages (their flush timeout).
    fn needs_polling(&self) -> bool {
        !self.watcher.is_inotify()
            || self
                .files
                .iter()
                .any(|f| !f.watched || f.rotated_at.is_some() || f.ml.is_open())
    }

    /// Detect rotations, deletions and truncations; drop rotated files past `Rotate_Wait`.
    fn check_files(&mut self, ctx: &InputContext) {
        let now = Instant::now();
        let mut replaced = Vec::new();
        for i in 0..self.files.len() {
            let f = &mut self.files[i];
            if let Ok(m) = f.file.metadata() {
                if m.len() < f.read_pos {
                    f.restart(&self.cfg, &mut self.writer, "was truncated");
                    let tag = f.tag.clone();
                    self.append(ctx, &tag);
                }
            }
            let f = &mut self.files[i];
            // Rotated files are checked too: the file replacing them may appear later.
            let at_path = std::fs::metadata(&f.path);
            if matches!(&at_path, Ok(m) if file_id(m) == f.id) {
                continue;
            }
            // The last lines written before a rename are read before the file counts as rotated.
            f.dirty = true;
            if f.rotated_at.is_none() {
                tracing::info!(target: "input", "tail: {} rotated or removed; reading it {}s more", f.path, self.cfg.rotate_wait.as_secs());
                f.rotated_at = Some(now);
                if let (Some(db), Some(id)) = (&self.db, f.db_id) {
                    logged("update", db.mark_rotated(id));
                }
            }
            if let Ok(m) = at_path {
                if m.is_file() && !replaced.iter().any(|(_, r)| file_id(r) == file_id(&m)) {
                    replaced.push((f.path.clone(), m));
                }
            }
        }
        // The file now at a rotated path is new: follow it from its head at once.
        for (path, meta) in replaced {
            if !self.cfg.exclude.iter().any(|x| x.matches(&path)) {
                self.add(&path, &meta, false);
            }
        }
        let wait = self.cfg.rotate_wait;
        let mut i = 0;
        while i < self.files.len() {
            let expired = self.files[i]
                .rotated_at
                .is_some_and(|t| now.saturating_duration_since(t) >= wait);
            if !expired {
                i += 1;
                continue;
            }
            // Whatever was written until now is read first.
            while self.files[i].dirty {
                if !self.read_block(i, ctx) {
                    break;
                }
            }
            let mut f = self.files.swap_remove(i);
            f.flush_multiline(&self.cfg, true, &mut self.writer);
            self.append(ctx, &f.tag);
            self.watcher.unwatch(f.id);
            tracing::debug!(target: "input", "tail: done with rotated {} (inode {})", f.path, f.id.1);
            if self.retired.len() >= MAX_RETIRED {
                self.retired.clear();
            }
            self.retired.insert(f.id, (f.offset, f.proof_at_offset()));
            if let (Some(db), Some(id)) = (&self.db, f.db_id) {
                logged("delete", db.delete(id));
            }
        }
    }

    /// Deliver `multiline.parser` messages open too long (all of them when `all`).
    fn flush_multiline(&mut self, ctx: &InputContext, all: bool) {
        if self.cfg.multiline.is_none() && self.cfg.docker_mode.is_none() {
            return;
        }
        for i in 0..self.files.len() {
            let f = &mut self.files[i];
            if !f.ml.is_open() {
                continue;
            }
            f.flush_multiline(&self.cfg, all, &mut self.writer);
            let tag = f.tag.clone();
            self.append(ctx, &tag);
        }
    }

    /// Store offsets that moved (and their proofs).
    fn save_offsets(&mut self) {
        self.last_save = Instant::now();
        let Some(db) = self.db.as_mut() else {
            return;
        };
        let rows: Vec<Save> = self
            .files
            .iter()
            .filter(|f| f.stored_offset != Some(f.offset))
            .filter_map(|f| {
                Some(Save {
                    id: f.db_id?,
                    offset: f.offset,
                    proof: f.proof_at_offset(),
                })
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        if logged("update", db.update_offsets(&rows)).is_some() {
            for f in &mut self.files {
                if rows.iter().any(|r| Some(r.id) == f.db_id) {
                    f.stored_offset = Some(f.offset);
                }
            }
        }
    }

    /// Read one block of file `i` and append its lines. Returns whether data was read.
    fn read_block(&mut self, i: usize, ctx: &InputContext) -> bool {
        let Some(f) = self.files.get_mut(i) else {
            return false;
        };
        let read = f.read_block(&self.cfg, &mut self.block, &mut self.writer);
        let tag = f.tag.clone();
        if read.long_lines > 0 && self.cfg.skip_long_lines {
            self.long_lines += read.long_lines;
            if let Some(s) = self.warn.allow() {
                tracing::warn!(target: "input",
                    "tail: line longer than buffer_max_size ({} bytes) skipped in {}; {} skipped so far{}",
                    self.cfg.buffer_max_size, self.files[i].path, self.long_lines, util::suppressed_note(s));
            }
        }
        self.append(ctx, &tag);
        read.data
    }

    /// Read every file that may have data until none has or `budget` has passed (so that
    /// rotation checks and scans still happen while files keep growing), pausing while over
    /// `Mem_Buf_Limit`.
    async fn drain(&mut self, ctx: &InputContext, budget: Duration) -> Drain {
        let until = Instant::now() + budget;
        loop {
            let mut progressed = false;
            for i in 0..self.files.len() {
                if !self.files[i].dirty {
                    continue;
                }
                ctx.ready().await;
                if ctx.is_stopping() {
                    return Drain::Stop;
                }
                progressed |= self.read_block(i, ctx);
            }
            // With filesystem storage what was read is on disk already: the offset follows
            // every round, so a crash re-reads at most one block. In memory, a crash loses
            // the buffer anyway, and inotify rounds (one per write) would each cost a commit.
            if ctx.is_filesystem() || self.last_save.elapsed() >= POLL_INTERVAL {
                self.save_offsets();
            }
            if !progressed {
                return Drain::Idle;
            }
            if Instant::now() >= until {
                return Drain::Busy;
            }
            // Let the engine (flush timer, outputs) run between rounds.
            tokio::task::yield_now().await;
        }
    }
}

/// How a [`Tailer::drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Every file was read to its end.
    Idle,
    /// Files still have data.
    Busy,
    /// The input must stop.
    Stop,
}

/// What ended a wait for changes.
enum Woke {
    Stop,
    Changes(Vec<Change>),
    /// Nothing reported in time: look at every file.
    Timer,
}

#[async_trait]
impl Input for TailInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let config = self.config;
        ctx.pause_on_chunks_overlimit(config.pause_on_chunks_overlimit);
        let db = match &config.db {
            Some(path) => Some(
                OffsetDb::open(
                    path,
                    &config.db_sync,
                    &config.db_journal_mode,
                    config.db_locking,
                )
                .map_err(|e| {
                    PluginError::new(format!("tail: cannot open DB {}: {e}", path.display()))
                })?,
            ),
            None => None,
        };
        let refresh = config.refresh_interval;
        let watcher = if config.inotify_watcher {
            Watcher::new(true)
        } else {
            Watcher::polling()
        };
        let mut t = Tailer {
            tag: ctx.tag().to_string(),
            cfg: config,
            files: Vec::new(),
            retired: HashMap::new(),
            db,
            watcher,
            block: Vec::new(),
            writer: EventWriter::new(),
            long_lines: 0,
            warn: Throttle::per_minute(),
            check_wanted: false,
            last_save: Instant::now(),
        };
        t.scan(true);
        // Rows of files not found at start are stale: forget them, so that an inode reused
        // by a new file does not resume at an old offset.
        let keep: Vec<i64> = t.files.iter().filter_map(|f| f.db_id).collect();
        if let Some(db) = t.db.as_mut() {
            if let Some(n) = logged("cleanup", db.delete_others(&keep)) {
                if n > 0 {
                    tracing::debug!(target: "input", "tail: {n} stale DB entries removed");
                }
            }
        }
        let mut changes = Vec::new();
        let mut next_scan = Instant::now() + refresh;
        let mut next_check = Instant::now();
        loop {
            let drained = t.drain(&ctx, POLL_INTERVAL).await;
            if drained == Drain::Stop {
                break;
            }
            let now = Instant::now();
            if t.check_wanted || now >= next_check {
                t.check_wanted = false;
                next_check = now + POLL_INTERVAL;
                t.check_files(&ctx);
            }
            t.flush_multiline(&ctx, false);
            if now >= next_scan {
                t.scan(false);
                next_scan = Instant::now() + refresh;
            }
            if drained == Drain::Busy {
                continue;
            }
            // Read what arrived meanwhile (a replaced rotated file, new files) before sleeping.
            match t.drain(&ctx, POLL_INTERVAL).await {
                Drain::Stop => break,
                Drain::Busy => continue,
                Drain::Idle => {}
            }
            let idle = if t.needs_polling() {
                POLL_INTERVAL
            } else {
                SAFETY_INTERVAL
            };
            let wait = idle.min(next_scan.saturating_duration_since(Instant::now()));
            let woke = tokio::select! {
                _ = ctx.stopped() => Woke::Stop,
                got = t.watcher.changes(std::mem::take(&mut changes)) => Woke::Changes(got),
                _ = tokio::time::sleep(wait) => Woke::Timer,
            };
            match woke {
                Woke::Stop => break,
                Woke::Timer => t.mark_all_dirty(),
                Woke::Changes(got) => {
                    changes = got;
                    t.apply(&mut changes);
                }
            }
        }
        t.flush_multiline(&ctx, true);
        t.save_offsets();
        Ok(())
    }
}

/// Whether `path` is excluded by `patterns` (exposed for tests of the matching rules).
pub fn is_excluded(patterns: &[glob::Pattern], path: &Path) -> bool {
    path.to_str()
        .is_some_and(|p| patterns.iter().any(|x| x.matches(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::parse_interval;

    #[test]
    fn tag_expansion() {
        assert_eq!(expand_tag("app.*", "/var/log/x.log"), "app.var.log.x.log");
        assert_eq!(expand_tag("kube.*", "rel/a.log"), "kube.rel.a.log");
        assert_eq!(expand_tag("plain", "/var/log/x.log"), "plain");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_interval("0"), None);
        assert_eq!(parse_interval("x"), None);
    }

    #[test]
    fn exclusion_matches_whole_path() {
        let pats = vec![glob::Pattern::new("*.gz").unwrap()];
        assert!(is_excluded(&pats, Path::new("/var/log/a.log.gz")));
        assert!(!is_excluded(&pats, Path::new("/var/log/a.log")));
    }
}
