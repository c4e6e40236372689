//! `systemd`: reads the systemd journal (Fluent Bit's `in_systemd`).
//!
//! Semantics follow `plugins/in_systemd/` (`systemd.c`, `systemd_config.c`, `systemd_db.c`)
//! and the `systemd` page of Fluent Bit's manual:
//! * `Path` opens the journal files of that directory (`sd_journal_open_directory`), none the
//!   local journal (`SD_JOURNAL_LOCAL_ONLY`);
//! * each `Systemd_Filter` (`FIELD=value`, repeatable) is an `sd_journal_add_match` followed by
//!   a disjunction (`Systemd_Filter_Type Or`, the default) or a conjunction (`And`), as Fluent
//!   Bit adds them;
//! * a record is every field of an entry (`sd_journal_enumerate_data`, in the order
//!   libsystemd gives them), names and values as msgpack strings holding the journal's bytes
//!   (binary values included, not checked for UTF-8); a field met again in the same entry
//!   becomes an array of its values, moved to where its second value was met; at most
//!   `Max_Fields` fields (each repeat counts); fields without `=` are skipped and logged.
//!   `Strip_Underscores` drops one leading `_` of a name (`_PID` → `PID`), `Lowercase`
//!   lowercases names (ASCII). Values longer than libsystemd's data threshold (64 KiB) may
//!   come truncated, as in Fluent Bit, which keeps the default threshold too;
//! * the record time is the entry's `__REALTIME_TIMESTAMP` (`sd_journal_get_realtime_usec`,
//!   the time journald received it), microseconds as nanoseconds; `_SOURCE_REALTIME_TIMESTAMP`
//!   stays an ordinary field, as in Fluent Bit;
//! * a `Tag` holding `*` has its first `*` replaced by the entry's `_SYSTEMD_UNIT`, or by
//!   `unknown` when the entry has none (`host.*` → `host.kubelet.service`);
//! * at most `Max_Entries` entries, or about 1 MB of records, are read per round;
//! * the start position: the head of the journal; with `Read_From_Tail` the end (only new
//!   entries); with `Read_Since_Minutes_Ago` N the entries of the last N minutes; a cursor
//!   stored in `DB` beats all three. `DB` holds the cursor of the last entry read in Fluent
//!   Bit's `in_systemd_cursor` table (see [`db`]), saved after every round; `DB.Sync` sets
//!   SQLite's `PRAGMA synchronous` (`Extra`, `Full`, `Normal`, `Off`; unset leaves SQLite's
//!   default, FULL, which is the manual's `Full`). A database that cannot be opened is
//!   logged and the input reads on without one, as Fluent Bit does.
//!
//! Reading never blocks the async runtime: the journal lives on a thread of its own that reads
//! a round when asked and otherwise waits for the journal to change (`sd_journal_wait`, 250
//! ms at a time, so a stop is noticed quickly). The input asks for the next round only after
//! `ready()`, so `Mem_Buf_Limit` pauses the reading, and stores a round's cursor only once
//! its records were appended (a crash re-reads at most one round, never skips one).
//! libsystemd is loaded when the input starts ([`journal`]): the binary does not link it.
//!
//! Differences from Fluent Bit, deliberate:
//! * after a stored cursor is found, its entry is skipped only when it is still there
//!   (`sd_journal_test_cursor`); Fluent Bit skips one entry blindly
//!   (`sd_journal_next_skip(1)`), losing the first unread entry when the cursor's entry was
//!   rotated away. An error reading the journal resumes after the last entry read (Fluent
//!   Bit seeks to the head, reading everything again);
//! * `Read_From_Tail` positions on the last entry (`seek_tail` + `previous`) without Fluent
//!   Bit's extra `next_skip(350)`, a workaround for a systemd bug fixed long ago (v240) that
//!   can skip entries written meanwhile;
//! * after a full round the next one follows as soon as the input is not paused (Fluent
//!   Bit waits for a journal notification or its 1 s timer);
//! * a repeated field's first value is kept whole (Fluent Bit copies it with `strlen`, cutting
//!   a binary value at its first NUL);
//! * a `Systemd_Filter` sd-journal would refuse, an unknown `Systemd_Filter_Type` or `DB.Sync`
//!   is a configuration error with its location (Fluent Bit: an init failure, or for
//!   `DB.Sync` a logged error); a missing `Path` is an error when the input starts, as the
//!   configuration does not depend on the machine (so `--dry-run` passes elsewhere).

pub mod db;
pub mod journal;
pub mod record;

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::sync::{mpsc, oneshot};

use self::db::CursorDb;
use self::journal::Journal;
use self::record::{compose_tag, FieldOptions, Fields};

/// Fluent Bit's `FLB_SYSTEMD_UNKNOWN`, the tag part of entries without `_SYSTEMD_UNIT`.
pub const UNKNOWN_UNIT: &str = "unknown";
/// A round ends once its records pass this many bytes (Fluent Bit's 1024000).
pub const ROUND_BYTES: usize = 1_024_000;
/// How long the reader waits for the journal to change before looking at `stop`.
const WAIT_USEC: u64 = 250_000;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "path",
        KeyType::Str,
        None,
        "the journal directory; unset: the local journal",
    ),
    KeySpec::new(
        "max_fields",
        KeyType::Int,
        Some("8000"),
        "the maximum fields per record",
    ),
    KeySpec::new(
        "max_entries",
        KeyType::Int,
        Some("5000"),
        "the maximum entries read per round",
    ),
    KeySpec::new(
        "systemd_filter_type",
        KeyType::Enum(&["and", "or"]),
        None,
        "how several systemd_filter combine: And or Or (default Or)",
    ),
    KeySpec::new(
        "systemd_filter",
        KeyType::Str,
        None,
        "a FIELD=value match, e.g. _SYSTEMD_UNIT=kubelet.service; may be repeated",
    )
    .multi(),
    KeySpec::new(
        "read_from_tail",
        KeyType::Bool,
        Some("false"),
        "start with new entries, skipping those already in the journal",
    ),
    KeySpec::new(
        "read_since_minutes_ago",
        KeyType::Int,
        Some("0"),
        "start with the entries of the last N minutes; 0: disabled",
    ),
    KeySpec::new(
        "lowercase",
        KeyType::Bool,
        Some("false"),
        "lowercase the field names",
    ),
    KeySpec::new(
        "strip_underscores",
        KeyType::Bool,
        Some("false"),
        "remove the leading underscore of field names (_PID -> PID)",
    ),
    KeySpec::new(
        "db.sync",
        KeyType::Enum(&["extra", "full", "normal", "off"]),
        None,
        "SQLite synchronous mode of the DB: Extra, Full, Normal or Off (default Full)",
    ),
    KeySpec::new(
        "db",
        KeyType::Str,
        None,
        "a database file keeping the journal cursor across restarts",
    ),
];

/// The `systemd` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "systemd",
        description: "Systemd (Journal) reader",
        keys: KEYS,
    },
    build,
};

/// A validated `systemd` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdConfig {
    pub path: Option<PathBuf>,
    /// `Systemd_Filter` matches, in order.
    pub filters: Vec<Vec<u8>>,
    /// `Systemd_Filter_Type And`.
    pub filter_and: bool,
    pub fields: FieldOptions,
    pub max_entries: usize,
    pub read_from_tail: bool,
    pub read_since_minutes_ago: u64,
    pub db: Option<PathBuf>,
    /// `DB.Sync` as `PRAGMA synchronous` level.
    pub db_sync: Option<u8>,
}

impl SystemdConfig {
    /// Validate the properties of a `systemd` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut int = |key: &str, default: u64| match props.u64(key) {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let max_fields = int("max_fields", 8000);
        let max_entries = int("max_entries", 5000);
        let read_since_minutes_ago = int("read_since_minutes_ago", 0);
        let mut flag = |key: &str| match props.bool(key) {
            Ok(v) => v.unwrap_or(false),
            Err(e) => {
                errors.push(e);
                false
            }
        };
        let read_from_tail = flag("read_from_tail");
        let lowercase = flag("lowercase");
        let strip_underscores = flag("strip_underscores");
        let filter_and = props
            .str("systemd_filter_type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("and"));
        let mut filters = Vec::new();
        for p in props.get_all("systemd_filter") {
            let m = p.value.trim().as_bytes().to_vec();
            if record::valid_match(&m) {
                filters.push(m);
            } else {
                errors.push(ConfigError::new(
                    p.location.clone(),
                    format!(
                        "[input {}] systemd_filter error: invalid input '{}': use FIELD=value, the field in upper case (e.g. _SYSTEMD_UNIT=kubelet.service)",
                        props.instance, p.value
                    ),
                ));
            }
        }
        let path = props
            .str("path")
            .filter(|p| !p.trim().is_empty())
            .map(|p| PathBuf::from(p.trim()));
        let db = props
            .str("db")
            .filter(|p| !p.trim().is_empty())
            .map(|p| PathBuf::from(p.trim()));
        let db_sync = props.str("db.sync").and_then(db::sync_level);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SystemdConfig {
            path,
            filters,
            filter_and,
            fields: FieldOptions {
                lowercase,
                strip_underscores,
                max_fields: usize::try_from(max_fields).unwrap_or(usize::MAX),
            },
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            read_from_tail,
            read_since_minutes_ago,
            db,
            db_sync,
        })
    }
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(SystemdInput {
        cfg: SystemdConfig::from_props(props)?,
    }))
}

/// A configured `systemd` input.
#[derive(Debug)]
pub struct SystemdInput {
    cfg: SystemdConfig,
}

impl SystemdInput {
    /// An input reading with `cfg`.
    pub fn new(cfg: SystemdConfig) -> Self {
        SystemdInput { cfg }
    }

    /// Its configuration.
    pub fn config(&self) -> &SystemdConfig {
        &self.cfg
    }
}

/// Records of one round, grouped by tag in the order read.
#[derive(Default)]
struct Round {
    groups: Vec<(String, EventWriter)>,
    entries: usize,
    bytes: usize,
    /// The cursor of the last entry of the round.
    cursor: Option<String>,
}

enum Request {
    /// Read the next round (waits for the journal to change when there is nothing to read).
    Read,
    /// The round ending at this cursor was appended: store it.
    Commit(String),
}

enum Reply {
    /// The journal could not be opened.
    Failed(String),
    Round(Round),
}

/// The journal side, on its own thread.
struct Reader {
    cfg: SystemdConfig,
    journal: Journal,
    db: Option<CursorDb>,
    tag: String,
    dynamic_tag: bool,
    /// The journal is on an entry not read yet (found where a stored cursor pointed).
    on_unread: bool,
    last_cursor: Option<String>,
    last_error_log: Option<Instant>,
}

const UNIT_FIELD: &CStr = c"_SYSTEMD_UNIT";

impl Reader {
    fn open(cfg: SystemdConfig, tag: String) -> Result<Reader, String> {
        if let Some(p) = &cfg.path {
            match std::fs::metadata(p) {
                Err(e) => return Err(format!("given path {} is invalid: {e}", p.display())),
                Ok(m) if !m.is_dir() => {
                    return Err(format!("given path is not a directory: {}", p.display()))
                }
                Ok(_) => {}
            }
        }
        let mut journal = Journal::open(cfg.path.as_deref())?;
        for m in &cfg.filters {
            tracing::debug!(
                "add filter: {} ({})",
                String::from_utf8_lossy(m),
                if cfg.filter_and { "and" } else { "or" }
            );
            journal.add_match(m).map_err(|e| {
                format!(
                    "systemd_filter error: input '{}': {e}",
                    String::from_utf8_lossy(m)
                )
            })?;
            journal.add_junction(cfg.filter_and)?;
        }
        let db = cfg.db.as_ref().and_then(|path| {
            CursorDb::open(path, cfg.db_sync)
                .map_err(|e| {
                    tracing::error!("could not open/create database '{}': {e}", path.display())
                })
                .ok()
        });
        let dynamic_tag = tag.contains('*');
        let mut r = Reader {
            cfg,
            journal,
            db,
            tag,
            dynamic_tag,
            on_unread: false,
            last_cursor: None,
            last_error_log: None,
        };
        r.position()?;
        Ok(r)
    }

    /// The start position (Fluent Bit's order: tail / since / head, then a stored cursor).
    fn position(&mut self) -> Result<(), String> {
        if self.cfg.read_from_tail {
            self.journal.seek_tail()?;
            let _ = self.journal.previous_entry()?;
            tracing::debug!("jump to the end of journal");
        } else if self.cfg.read_since_minutes_ago > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let since = now.saturating_sub(Duration::from_secs(
                self.cfg.read_since_minutes_ago.saturating_mul(60),
            ));
            let usec = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
            self.journal.seek_realtime_usec(usec)?;
        } else {
            self.journal.seek_head()?;
        }
        let stored = match &self.db {
            Some(db) => db.cursor().unwrap_or_else(|e| {
                tracing::error!("db: cannot read the cursor: {e}");
                None
            }),
            None => None,
        };
        if let Some(c) = stored {
            let short: String = c.chars().take(40).collect();
            match self.resume_at(&c) {
                Ok(()) => tracing::info!("seek_cursor={short}... OK"),
                Err(e) => tracing::warn!("seek_cursor failed: {e}"),
            }
        }
        Ok(())
    }

    /// Go to the entry after the one of `cursor`: seek, step on the entry found there, and
    /// keep it as unread unless it is the cursor's own.
    fn resume_at(&mut self, cursor: &str) -> Result<(), String> {
        self.journal.seek_cursor(cursor)?;
        if self.journal.next_entry()? && !self.journal.test_cursor(cursor) {
            // The cursor's entry is gone (rotated, vacuumed): this one was never read.
            self.on_unread = true;
        }
        self.last_cursor = Some(cursor.to_string());
        Ok(())
    }

    fn log_error(&mut self, msg: &str) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.last_error_log = Some(now);
            tracing::error!("{msg}");
        }
    }

    /// After a read error: back to the last entry read (Fluent Bit: the head).
    fn recover(&mut self, what: &str) {
        let outcome = match self.last_cursor.clone() {
            Some(c) => self
                .resume_at(&c)
                .map(|_| "resuming after the last entry read"),
            None => self
                .journal
                .seek_head()
                .map(|_| "nothing read yet: reading from the head"),
        };
        match outcome {
            Ok(how) => self.log_error(&format!("error reading the journal: {what}; {how}")),
            Err(e) => self.log_error(&format!(
                "error reading the journal: {what}; cannot reposition: {e}"
            )),
        }
    }

    /// Read one round: up to `Max_Entries` entries or [`ROUND_BYTES`].
    fn read_round(&mut self) -> Round {
        let mut round = Round::default();
        loop {
            let has = if std::mem::take(&mut self.on_unread) {
                Ok(true)
            } else {
                self.journal.next_entry()
            };
            match has {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.recover(&e);
                    break;
                }
            }
            let usec = match self.journal.realtime_usec() {
                Ok(u) => u,
                Err(e) => {
                    // The file went away under us (rotated).
                    self.recover(&e);
                    break;
                }
            };
            let time = EventTime::new(
                u32::try_from(usec / 1_000_000).unwrap_or(u32::MAX),
                u32::try_from((usec % 1_000_000) * 1000).unwrap_or(0),
            );
            self.journal.restart_data();
            let tag = if self.dynamic_tag {
                let unit = self
                    .journal
                    .data(UNIT_FIELD)
                    .and_then(|d| d.get(UNIT_FIELD.to_bytes().len() + 1..))
                    .map(<[u8]>::to_vec);
                compose_tag(
                    &self.tag,
                    unit.as_deref().unwrap_or(UNKNOWN_UNIT.as_bytes()),
                )
            } else {
                self.tag.clone()
            };
            self.journal.restart_data();
            let mut fields = Fields::new(self.cfg.fields);
            while fields.wants_more() {
                match self.journal.enumerate_data() {
                    Ok(Some(d)) => fields.add(d),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("{e}");
                        break;
                    }
                }
            }
            if fields.broken() > 0 {
                tracing::error!("Skip {} broken entries", fields.broken());
            }
            // A new group whenever the tag changes, as Fluent Bit appends at each change.
            if round.groups.last().is_none_or(|(t, _)| *t != tag) {
                round.groups.push((tag, EventWriter::new()));
            }
            if let Some((_, w)) = round.groups.last_mut() {
                let before = w.buf.len();
                fields.write_event(w, time);
                round.bytes += w.buf.len() - before;
            }
            round.entries += 1;
            match self.journal.cursor() {
                Ok(c) => self.last_cursor = Some(c),
                Err(e) => tracing::debug!("{e}"),
            }
            if round.bytes > ROUND_BYTES || round.entries >= self.cfg.max_entries {
                break;
            }
        }
        if round.entries > 0 {
            round.cursor = self.last_cursor.clone();
        }
        round
    }

    fn commit(&mut self, cursor: &str) {
        if let Some(db) = &self.db {
            if let Err(e) = db.save(cursor) {
                let msg = format!("db: cannot store the cursor: {e}");
                self.log_error(&msg);
            }
        }
    }

    /// Serve requests until the input goes away or `stop` is set.
    fn serve(
        &mut self,
        requests: &std_mpsc::Receiver<Request>,
        replies: &mpsc::Sender<Reply>,
        stop: &AtomicBool,
    ) {
        while let Ok(req) = requests.recv() {
            match req {
                Request::Commit(c) => self.commit(&c),
                Request::Read => loop {
                    if stop.load(Ordering::Acquire) {
                        self.drain_commits(requests);
                        return;
                    }
                    let round = self.read_round();
                    if round.entries > 0 {
                        if replies.blocking_send(Reply::Round(round)).is_err() {
                            return;
                        }
                        break;
                    }
                    if let Err(e) = self.journal.wait(WAIT_USEC) {
                        self.log_error(&e);
                        std::thread::sleep(Duration::from_micros(WAIT_USEC));
                    }
                },
            }
        }
    }

    fn drain_commits(&mut self, requests: &std_mpsc::Receiver<Request>) {
        while let Ok(req) = requests.try_recv() {
            if let Request::Commit(c) = req {
                self.commit(&c);
            }
        }
    }
}

#[async_trait]
impl Input for SystemdInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let (req_tx, req_rx) = std_mpsc::channel::<Request>();
        let (reply_tx, mut reply_rx) = mpsc::channel::<Reply>(1);
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let span = tracing::Span::current();
        let cfg = self.cfg;
        let tag = ctx.tag().to_string();
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kb-systemd".into())
                .spawn(move || {
                    let _span = span.enter();
                    match Reader::open(cfg, tag) {
                        Ok(mut reader) => reader.serve(&req_rx, &reply_tx, &stop),
                        Err(e) => {
                            let _ = reply_tx.blocking_send(Reply::Failed(e));
                        }
                    }
                    let _ = done_tx.send(());
                })
                .map_err(|e| PluginError::new(format!("cannot start the journal reader: {e}")))?;
        }
        let result = loop {
            ctx.ready().await;
            if ctx.is_stopping() || req_tx.send(Request::Read).is_err() {
                break Ok(());
            }
            let reply = tokio::select! {
                _ = ctx.stopped() => break Ok(()),
                r = reply_rx.recv() => r,
            };
            match reply {
                None => {
                    ctx.stopped().await;
                    break Ok(());
                }
                Some(Reply::Failed(e)) => break Err(PluginError::new(e)),
                Some(Reply::Round(round)) => {
                    for (tag, w) in &round.groups {
                        ctx.append_tagged(tag, &w.buf, w.count);
                    }
                    if let Some(c) = round.cursor {
                        let _ = req_tx.send(Request::Commit(c));
                    }
                }
            }
        };
        stop.store(true, Ordering::Release);
        drop(req_tx);
        // The reader notices within one wait; its last commit is in before the agent exits.
        let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
        result
    }
}
