//! The keys of `tail` and their validation into [`TailConfig`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kb_config::{ConfigError, KeySpec, KeyType, Props};
use kb_core::plugin::LineParser;

use super::multiline::{DockerModeConfig, MlConfig};

pub(super) const KEYS: &[KeySpec] = &[
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
        KeyType::Enum(&["delete", "truncate", "persist", "memory", "wal", "off"]),
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
        "multiline parsers joining lines (comma list): built-in docker, cri, go, python, java, ruby or [MULTILINE_PARSER] names",
    )
    .multi(),
    KeySpec::new(
        "docker_mode",
        KeyType::Bool,
        Some("off"),
        "join Docker JSON lines split by the container runtime before parsing them",
    ),
    KeySpec::new(
        "docker_mode_flush",
        KeyType::SignedInt,
        Some("4"),
        "seconds an unfinished Docker line waits for its next part",
    ),
    KeySpec::new(
        "docker_mode_parser",
        KeyType::Str,
        None,
        "parser telling a first line in Docker mode (complete lines are joined until it matches)",
    ),
    KeySpec::new(
        "storage.pause_on_chunks_overlimit",
        KeyType::Bool,
        Some("off"),
        "with storage.type filesystem, pause reading while chunks wait on disk (storage.max_chunks_up reached)",
    ),
    KeySpec::new(
        "inotify_watcher",
        KeyType::Bool,
        Some("true"),
        "watch files with inotify; off polls them every 250 ms",
    ),
];

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
    /// `multiline.parser`, resolved at build time.
    pub multiline: Option<MlConfig>,
    /// `Docker_Mode On` (resolved at build time; ignored with `multiline.parser`).
    pub docker_mode: Option<DockerModeConfig>,
    /// `storage.pause_on_chunks_overlimit`.
    pub pause_on_chunks_overlimit: bool,
    /// `parser`: applied to each (joined) line.
    pub parser: Option<NamedParser>,
    /// `Inotify_Watcher`: learn of changes from inotify instead of polling.
    pub inotify_watcher: bool,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_interval(s: &str) -> Option<Duration> {
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
        let inotify_watcher = flag("inotify_watcher", true);
        let docker = flag("docker_mode", false);
        let pause_on_chunks_overlimit = flag("storage.pause_on_chunks_overlimit", false);

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
        // Fluent Bit reads it with atoi(); zero or less means one second.
        let docker_flush = match props.i64("docker_mode_flush") {
            Ok(v) => v.unwrap_or(4).max(1) as u64,
            Err(e) => {
                errors.push(e);
                4
            }
        };
        let docker_mode = docker.then(|| DockerModeConfig {
            flush: Duration::from_secs(docker_flush),
            first_line: None,
        });
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
            multiline: None,
            docker_mode,
            pause_on_chunks_overlimit,
            parser: None,
            inotify_watcher,
        };
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}
