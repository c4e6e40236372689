//! `tail`: follow text files matched by glob patterns, one record per line (Fluent Bit's
//! `in_tail`).
//!
//! * `Path` (comma-separated globs) is scanned at start and every `Refresh_Interval` seconds
//!   (fractions allowed); regular files matching an `Exclude_Path` pattern are ignored.
//! * Files present at start are read from their end unless `Read_from_Head` is on or `DB`
//!   holds their offset; files discovered later (new files, the file that replaces a rotated
//!   one) are read from the head, as Fluent Bit does after its first scan.
//! * Followed files are polled for new data every 250 ms. Each poll reads big blocks with
//!   positioned reads, splits lines with `memchr` and appends every line of a block in one
//!   call. Before each block the input waits for `Mem_Buf_Limit` room, so a paused input
//!   stops reading.
//! * Records are `{Path_Key: <path>, Offset_Key: <offset of the line's first byte>, Key:
//!   <line>}` (the first two only when set; `Key` defaults to `log`). Line bytes are kept as
//!   they are (no UTF-8 check), a trailing `\r` is removed; `Skip_Empty_Lines` drops empty
//!   lines.
//! * `Tag` with a `*`: the `*` is replaced by the file's path with `/` turned into `.` and
//!   the leading one removed (`app.*` + `/var/log/x.log` = `app.var.log.x.log`).
//! * Rotation by rename (or deletion): the old file keeps being read for `Rotate_Wait`
//!   seconds, and the file now at the path is followed from its head at once. Copy-truncate:
//!   a file whose size drops below the read position is read again from offset 0.
//! * Lines longer than `Buffer_Max_Size` are skipped with a warning when `Skip_Long_Lines` is
//!   on; otherwise the file stops being followed (as Fluent Bit does).
//! * `DB`: offsets stored in SQLite (Fluent Bit's `in_tail_files` table, keyed by inode), so a
//!   restart resumes where the last run stopped. `DB.sync`, `DB.locking`, `DB.journal_mode`.
//!
//! * `multiline.parser docker, cri`: the built-in parsers join lines split by container
//!   runtimes (see [`multiline`]); other multiline parsers are refused.
//!
//! Offsets (and so `DB`) count lines handed to the engine, not lines delivered by outputs, as
//! in Fluent Bit. A truncation is only seen while the file is smaller than what was read.
//! Files are read on the input's task (local files; a stalled network file system would
//! stall it).
//!
//! Not supported (unknown keys): other `multiline*` keys, `docker_mode*`, `parser`,
//! `tag_regex`, `ignore_older`, `exit_on_eof`. `Inotify_Watcher` is accepted and ignored
//! (always polling).

mod db;
pub mod multiline;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::msgpack::Cursor;
use kb_core::plugin::{Input, LineParser, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::time::Instant;

use crate::util::{self, Throttle};
pub use db::{OffsetDb, Stored};
use multiline::{MlConfig, MlState, RecordStart};

/// How often followed files are checked for new data, rotation and truncation.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Smallest block asked of one read (a larger `Buffer_Chunk_Size` is used as is).
const MIN_READ_BLOCK: usize = 128 * 1024;
/// Files forgotten after rotation whose offsets are remembered (in case a scan finds them).
const MAX_RETIRED: usize = 4096;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "path",
        KeyType::Str,
        None,
        "comma-separated glob patterns of the files to follow",
    ),
    KeySpec::new(
        "exclude_path",
        KeyType::Str,
        None,
        "comma-separated shell patterns of files to ignore, e.g. *.gz,*.zip",
    ),
    KeySpec::new(
        "read_from_head",
        KeyType::Bool,
        Some("false"),
        "read files found at start from their head instead of their end",
    ),
    KeySpec::new(
        "refresh_interval",
        KeyType::Str,
        Some("60"),
        "seconds between scans of path for new files (fractions allowed)",
    ),
    KeySpec::new(
        "rotate_wait",
        KeyType::Time,
        Some("5"),
        "seconds a rotated file is still read after its rotation",
    ),
    KeySpec::new("key", KeyType::Str, Some("log"), "record key of the line"),
    KeySpec::new(
        "path_key",
        KeyType::Str,
        None,
        "when set, the file's path is added under this key",
    ),
    KeySpec::new(
        "offset_key",
        KeyType::Str,
        None,
        "when set, the line's offset in the file is added under this key",
    ),
    KeySpec::new(
        "skip_long_lines",
        KeyType::Bool,
        Some("off"),
        "skip lines longer than buffer_max_size instead of giving up the file",
    ),
    KeySpec::new(
        "skip_empty_lines",
        KeyType::Bool,
        Some("off"),
        "drop empty lines",
    ),
    KeySpec::new(
        "buffer_chunk_size",
        KeyType::Size,
        Some("32k"),
        "initial read buffer size per file",
    ),
    KeySpec::new(
        "buffer_max_size",
        KeyType::Size,
        Some("32k"),
        "longest line accepted",
    ),
    KeySpec::new(
        "db",
        KeyType::Str,
        None,
        "SQLite file keeping the offsets of followed files",
    ),
    KeySpec::new(
        "db.sync",
        KeyType::Enum(&["extra", "full", "normal", "off"]),
        Some("normal"),
        "SQLite synchronous mode of the DB",
    ),
    KeySpec::new(
        "db.locking",
        KeyType::Bool,
        Some("false"),
        "lock the DB exclusively",
    ),
    KeySpec::new(
        "db.journal_mode",
        KeyType::Str,
        Some("WAL"),
        "SQLite journal mode of the DB",
    ),
    KeySpec::new(
        "parser",
        KeyType::Str,
        None,
        "name of a [PARSER] applied to each line (after multiline joining); unmatched lines stay {key: line}",
    ),
    KeySpec::new(
        "multiline.parser",
        KeyType::Str,
        None,
        "built-in multiline parsers joining split container lines: docker, cri",
    ),
    KeySpec::new(
        "inotify_watcher",
        KeyType::Bool,
        Some("true"),
        "accepted for compatibility; files are always polled",
    ),
];

/// The `tail` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "tail",
        description: "Tail files",
        keys: KEYS,
    },
    build,
};

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let mut config = TailConfig::from_props(props)?;
    if let Some(name) = props.str("parser") {
        let parser = svc.parsers.parser(name).ok_or_else(|| {
            vec![props.error(
                "parser",
                format!("unknown parser '{name}': define it in a parsers file (-R / Parsers_File)"),
            )]
        })?;
        config.parser = Some(NamedParser(parser));
    }
    Ok(Box::new(TailInput::new(config)))
}

/// A `[PARSER]` held by the tail settings (the trait object has no Debug of its own).
#[derive(Clone)]
pub struct NamedParser(pub Arc<dyn LineParser>);

impl std::fmt::Debug for NamedParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NamedParser")
    }
}

/// The validated settings of a `tail` input.
#[derive(Debug, Clone)]
pub struct TailConfig {
    pub paths: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub read_from_head: bool,
    pub refresh_interval: Duration,
    pub rotate_wait: Duration,
    pub key: String,
    pub path_key: Option<String>,
    pub offset_key: Option<String>,
    pub skip_long_lines: bool,
    pub skip_empty_lines: bool,
    pub buffer_chunk_size: usize,
    pub buffer_max_size: usize,
    pub db: Option<PathBuf>,
    pub db_sync: String,
    pub db_locking: bool,
    pub db_journal_mode: String,
    /// `multiline.parser`: the built-in `docker`/`cri` parsers.
    pub multiline: Option<MlConfig>,
    /// `parser`: applied to each (joined) line.
    pub parser: Option<NamedParser>,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return (v.is_finite() && v > 0.0 && v < 1e9).then(|| Duration::from_secs_f64(v));
    }
    kb_config::values::parse_time_secs(s)
        .filter(|v| *v > 0)
        .map(Duration::from_secs)
}

impl TailConfig {
    /// Validate the properties of a `tail` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let paths = match props.required("path") {
            Ok(p) => split_list(p),
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        };
        if paths.is_empty() && errors.is_empty() {
            errors.push(props.error("path", "'path' names no file pattern"));
        }
        for p in &paths {
            if let Err(e) = glob::Pattern::new(p) {
                errors.push(props.error("path", format!("invalid pattern '{p}': {e}")));
            }
        }
        let mut exclude = Vec::new();
        for p in split_list(props.str("exclude_path").unwrap_or("")) {
            match glob::Pattern::new(&p) {
                Ok(pat) => exclude.push(pat),
                Err(e) => {
                    errors.push(props.error("exclude_path", format!("invalid pattern '{p}': {e}")))
                }
            }
        }
        let mut flag = |key: &str, default: bool| match props.bool(key) {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let read_from_head = flag("read_from_head", false);
        let skip_long_lines = flag("skip_long_lines", false);
        let skip_empty_lines = flag("skip_empty_lines", false);
        let db_locking = flag("db.locking", false);

        let refresh_text = props.str("refresh_interval").unwrap_or("60");
        let refresh_interval = parse_interval(refresh_text).unwrap_or_else(|| {
            errors.push(props.error(
                "refresh_interval",
                format!(
                    "'refresh_interval' must be a positive number of seconds, got '{refresh_text}'"
                ),
            ));
            Duration::from_secs(60)
        });
        let rotate_wait = match props.time_secs("rotate_wait") {
            Ok(v) => Duration::from_secs(v.unwrap_or(5)),
            Err(e) => {
                errors.push(e);
                Duration::from_secs(5)
            }
        };
        let mut size = |key: &str, default: u64| match props.size(key) {
            Ok(v) => usize::try_from(v.unwrap_or(default)).unwrap_or(usize::MAX),
            Err(e) => {
                errors.push(e);
                default as usize
            }
        };
        let buffer_chunk_size = size("buffer_chunk_size", 32_000);
        let buffer_max_size = size("buffer_max_size", 32_000);
        if buffer_chunk_size == 0 {
            errors.push(props.error("buffer_chunk_size", "'buffer_chunk_size' must not be 0"));
        }
        if buffer_max_size < buffer_chunk_size {
            errors.push(props.error(
                "buffer_max_size",
                format!(
                    "'buffer_max_size' ({buffer_max_size}) must be at least 'buffer_chunk_size' ({buffer_chunk_size})"
                ),
            ));
        }
        let key = props.str("key").unwrap_or("log").to_string();
        if key.is_empty() {
            errors.push(props.error("key", "'key' must not be empty"));
        }
        let multiline = match MlConfig::parse(props.str("multiline.parser").unwrap_or("")) {
            Ok(m) => m,
            Err(e) => {
                errors.push(props.error("multiline.parser", e));
                None
            }
        };
        let opt = |k: &str| props.str(k).filter(|v| !v.is_empty()).map(str::to_string);
        let config = TailConfig {
            paths,
            exclude,
            read_from_head,
            refresh_interval,
            rotate_wait,
            key,
            path_key: opt("path_key"),
            offset_key: opt("offset_key"),
            skip_long_lines,
            skip_empty_lines,
            buffer_chunk_size,
            buffer_max_size,
            db: opt("db").map(PathBuf::from),
            db_sync: props
                .str("db.sync")
                .unwrap_or("normal")
                .to_ascii_lowercase(),
            db_locking,
            db_journal_mode: props.str("db.journal_mode").unwrap_or("WAL").to_string(),
            multiline,
            parser: None,
        };
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
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

type FileId = (u64, u64);

/// One followed file.
struct Tailed {
    path: String,
    tag: String,
    file: File,
    id: FileId,
    /// Offset of the first byte not yet delivered: the start of the unfinished line.
    offset: u64,
    /// Offset of the next byte to read.
    read_pos: u64,
    /// The unfinished line read so far.
    partial: Vec<u8>,
    /// Inside a line longer than the limit: its bytes are skipped up to the next `\n`.
    discarding: bool,
    /// Gave up on the file (a line too long with `Skip_Long_Lines` off).
    failed: bool,
    rotated_at: Option<Instant>,
    db_id: Option<i64>,
    stored_offset: u64,
    /// Messages of `multiline.parser` still open.
    ml: MlState,
}

struct Tailer {
    cfg: TailConfig,
    tag: String,
    files: Vec<Tailed>,
    /// Offsets of files no longer followed after a rotation.
    retired: HashMap<FileId, u64>,
    db: Option<OffsetDb>,
    block: Vec<u8>,
    writer: EventWriter,
    long_lines: u64,
    warn: Throttle,
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
        let mut offset = None;
        if let Some(db) = &self.db {
            let r = db.lookup(id.1);
            if let Some(Some(stored)) = logged("lookup", r) {
                db_id = Some(stored.id);
                offset = Some(stored.offset);
                if let Some(db) = &self.db {
                    let r = db.rename(stored.id, path);
                    logged("update", r);
                }
            }
        }
        if offset.is_none() {
            offset = self.retired.remove(&id);
        }
        let offset = match offset {
            // A stored offset past the end: the file was truncated meanwhile.
            Some(o) if o <= size => o,
            Some(_) => 0,
            None if at_start && !self.cfg.read_from_head => size,
            None => 0,
        };
        if db_id.is_none() {
            if let Some(db) = &self.db {
                let r = db.insert(path, id.1, offset);
                db_id = logged("insert", r);
            }
        }
        tracing::debug!(target: "input", "tail: following {path} (inode {}) from offset {offset}", id.1);
        let tag = expand_tag(&self.tag, path);
        self.files.push(Tailed {
            path: path.to_string(),
            tag,
            file,
            id,
            offset,
            read_pos: offset,
            partial: Vec::new(),
            discarding: false,
            failed: false,
            ml: MlState::default(),
            rotated_at: None,
            db_id,
            stored_offset: offset,
        });
    }

    /// Detect rotations, deletions and truncations; drop rotated files past `Rotate_Wait`.
    fn check_files(&mut self, ctx: &InputContext) {
        let now = Instant::now();
        let mut replaced = Vec::new();
        for f in &mut self.files {
            if let Ok(m) = f.file.metadata() {
                if m.len() < f.read_pos {
                    tracing::info!(target: "input", "tail: {} truncated, reading it again from the head", f.path);
                    f.offset = 0;
                    f.read_pos = 0;
                    f.partial.clear();
                    f.discarding = false;
                    f.failed = false;
                }
            }
            // Rotated files are checked too: the file replacing them may appear later.
            let at_path = std::fs::metadata(&f.path);
            if matches!(&at_path, Ok(m) if file_id(m) == f.id) {
                continue;
            }
            if f.rotated_at.is_none() {
                tracing::info!(target: "input", "tail: {} rotated or removed; reading it {}s more", f.path, self.cfg.rotate_wait.as_secs());
                f.rotated_at = Some(now);
                if let (Some(db), Some(id)) = (&self.db, f.db_id) {
                    if let Err(e) = db.mark_rotated(id) {
                        tracing::error!(target: "input", "tail: DB update failed: {e}");
                    }
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
            if expired {
                let mut f = self.files.swap_remove(i);
                if f.ml.is_open() {
                    let enc = Encoder {
                        cfg: &self.cfg,
                        path: &f.path,
                    };
                    f.ml.flush(true, &mut self.writer, &enc);
                    ctx.append_tagged(&f.tag, &self.writer.buf, self.writer.count);
                    self.writer.clear();
                }
                tracing::debug!(target: "input", "tail: done with rotated {} (inode {})", f.path, f.id.1);
                if self.retired.len() >= MAX_RETIRED {
                    self.retired.clear();
                }
                self.retired.insert(f.id, f.offset);
                if let (Some(db), Some(id)) = (&self.db, f.db_id) {
                    if let Err(e) = db.delete(id) {
                        tracing::error!(target: "input", "tail: DB delete failed: {e}");
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Deliver `multiline.parser` messages open too long (all of them when `all`).
    fn flush_multiline(&mut self, ctx: &InputContext, all: bool) {
        if self.cfg.multiline.is_none() {
            return;
        }
        for f in &mut self.files {
            if !f.ml.is_open() {
                continue;
            }
            let enc = Encoder {
                cfg: &self.cfg,
                path: &f.path,
            };
            f.ml.flush(all, &mut self.writer, &enc);
            ctx.append_tagged(&f.tag, &self.writer.buf, self.writer.count);
            self.writer.clear();
        }
    }

    /// Store offsets that moved.
    fn save_offsets(&mut self) {
        if self.db.is_none() {
            return;
        }
        let rows: Vec<(i64, u64)> = self
            .files
            .iter()
            .filter(|f| f.offset != f.stored_offset)
            .filter_map(|f| f.db_id.map(|id| (id, f.offset)))
            .collect();
        if rows.is_empty() {
            return;
        }
        let r = self
            .db
            .as_mut()
            .map_or(Ok(()), |db| db.update_offsets(&rows));
        if logged("update", r).is_some() {
            for f in &mut self.files {
                f.stored_offset = f.offset;
            }
        }
    }

    /// Read one block of file `i` and append its lines. Returns whether data was read.
    fn read_block(&mut self, i: usize, ctx: &InputContext) -> bool {
        let block_len = self.cfg.buffer_chunk_size.max(MIN_READ_BLOCK);
        if self.block.len() != block_len {
            self.block.resize(block_len, 0);
        }
        let Some(f) = self.files.get_mut(i) else {
            return false;
        };
        if f.failed {
            return false;
        }
        let n = match f.file.read_at(&mut self.block, f.read_pos) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(target: "input", "tail: read error on {}: {e}", f.path);
                return false;
            }
        };
        if n == 0 {
            return false;
        }
        let data = &self.block[..n];
        let base = f.read_pos;
        let time = EventTime::now();
        let enc = Encoder {
            cfg: &self.cfg,
            path: &f.path,
        };
        let max = self.cfg.buffer_max_size;
        let mut long = 0u64;
        let mut start = 0usize;
        for nl in memchr::memchr_iter(b'\n', data) {
            let piece = &data[start..nl];
            if f.discarding {
                f.discarding = false;
            } else if f.partial.is_empty() {
                let line_start = base + start as u64;
                if piece.len() > max {
                    long += 1;
                } else {
                    enc.line(&mut f.ml, &mut self.writer, time, piece, line_start);
                }
            } else {
                let line_start = f.offset;
                f.partial.extend_from_slice(piece);
                if f.partial.len() > max {
                    long += 1;
                } else {
                    enc.line(&mut f.ml, &mut self.writer, time, &f.partial, line_start);
                }
                f.partial.clear();
            }
            start = nl + 1;
            f.offset = base + start as u64;
            if long > 0 && !self.cfg.skip_long_lines {
                break;
            }
        }
        let mut give_up = long > 0 && !self.cfg.skip_long_lines;
        if !give_up {
            let rest = &data[start..];
            if !f.discarding && !rest.is_empty() {
                if f.partial.len() + rest.len() > max {
                    long += 1;
                    if self.cfg.skip_long_lines {
                        f.partial.clear();
                        f.discarding = true;
                    } else {
                        give_up = true;
                    }
                } else {
                    f.partial.extend_from_slice(rest);
                }
            }
            f.read_pos = base + n as u64;
        }
        if give_up {
            tracing::error!(target: "input",
                "tail: {} has a line longer than buffer_max_size ({max} bytes); the file is no longer read (set skip_long_lines on to skip such lines)",
                f.path);
            f.failed = true;
            f.partial.clear();
        }
        let tag = f.tag.clone();
        if long > 0 && self.cfg.skip_long_lines {
            self.long_lines += long;
            if let Some(s) = self.warn.allow() {
                tracing::warn!(target: "input",
                    "tail: line longer than buffer_max_size ({max} bytes) skipped in {}; {} skipped so far{}",
                    self.files[i].path, self.long_lines, util::suppressed_note(s));
            }
        }
        ctx.append_tagged(&tag, &self.writer.buf, self.writer.count);
        self.writer.clear();
        true
    }

    /// Read every file until none has more data or `budget` has passed (so that rotation
    /// checks and scans still happen while files keep growing), pausing while over
    /// `Mem_Buf_Limit`.
    async fn drain(&mut self, ctx: &InputContext, budget: Duration) -> Drain {
        let until = Instant::now() + budget;
        loop {
            let mut progressed = false;
            for i in 0..self.files.len() {
                ctx.ready().await;
                if ctx.is_stopping() {
                    return Drain::Stop;
                }
                progressed |= self.read_block(i, ctx);
            }
            self.save_offsets();
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

/// Encodes lines as records.
struct Encoder<'a> {
    cfg: &'a TailConfig,
    path: &'a str,
}

impl Encoder<'_> {
    /// Encode one line (without its `\n`), through `multiline.parser` when set.
    fn line(&self, ml: &mut MlState, w: &mut EventWriter, time: EventTime, line: &[u8], at: u64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && self.cfg.skip_empty_lines {
            return;
        }
        match &self.cfg.multiline {
            Some(m) => ml.feed(m, line, at, time, w, self),
            None => self.raw(w, time, line, at),
        }
    }
}

impl RecordStart for Encoder<'_> {
    fn start(&self, w: &mut EventWriter, time: EventTime, entries: u32, line_start: u64) {
        w.begin(time);
        let buf = &mut w.buf;
        let entries = entries
            + u32::from(self.cfg.path_key.is_some())
            + u32::from(self.cfg.offset_key.is_some());
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_map_len(buf, entries);
        if let Some(k) = &self.cfg.path_key {
            let _ = rmp::encode::write_str(buf, k);
            let _ = rmp::encode::write_str(buf, self.path);
        }
        if let Some(k) = &self.cfg.offset_key {
            let _ = rmp::encode::write_str(buf, k);
            let _ = rmp::encode::write_uint(buf, line_start);
        }
    }

    fn raw(&self, w: &mut EventWriter, time: EventTime, line: &[u8], line_start: u64) {
        if let Some(NamedParser(p)) = &self.cfg.parser {
            let mut parsed = EventWriter::new();
            if p.parse_line(line, &mut parsed, time).is_ok() {
                // Re-emit the parsed record with the path/offset keys in front of its fields.
                if let Some(Ok(ev)) = EventReader::new(&parsed.buf).next() {
                    let mut c = Cursor::new(ev.record);
                    if let Ok(n) = c.read_map_len() {
                        self.start(w, ev.time, n as u32, line_start);
                        w.buf.extend_from_slice(c.rest());
                        return;
                    }
                }
            }
        }
        self.start(w, time, 1, line_start);
        let buf = &mut w.buf;
        let _ = rmp::encode::write_str(buf, &self.cfg.key);
        let _ = rmp::encode::write_str_len(buf, line.len() as u32);
        buf.extend_from_slice(line);
    }
}

#[async_trait]
impl Input for TailInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let config = self.config;
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
        let mut t = Tailer {
            tag: ctx.tag().to_string(),
            cfg: config,
            files: Vec::new(),
            retired: HashMap::new(),
            db,
            block: Vec::new(),
            writer: EventWriter::new(),
            long_lines: 0,
            warn: Throttle::per_minute(),
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
        let mut next_scan = Instant::now() + refresh;
        loop {
            let drained = t.drain(&ctx, POLL_INTERVAL).await;
            if drained == Drain::Stop {
                break;
            }
            t.check_files(&ctx);
            t.flush_multiline(&ctx, false);
            if Instant::now() >= next_scan {
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
            tokio::select! {
                _ = ctx.stopped() => break,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
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
