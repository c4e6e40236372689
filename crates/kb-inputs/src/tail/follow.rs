//! One followed file: where reading stands, the [`Proof`] that the file still holds what was
//! read, and reading it in big positioned blocks split into lines.
//!
//! Every read starts [`TAIL_LEN`] bytes before the read position and compares those bytes
//! (and, further in, the file's first bytes) with what was read before. A file truncated and
//! written again since the last read, whatever its size now, fails the comparison and is read
//! again from its head; reading never goes on from a position inside other content, so no
//! record is a torn line.

use std::fs::File;
use std::os::unix::fs::FileExt;

use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::msgpack::Cursor;
use tokio::time::Instant;

use super::config::{NamedParser, TailConfig};
use super::multiline::{append_ml_event, FileMl};
use super::proof::{self, Proof, HEAD_LEN, TAIL_LEN};
use super::FileId;

/// Smallest block asked of one read (a larger `Buffer_Chunk_Size` is used as is).
const MIN_READ_BLOCK: usize = 128 * 1024;

/// One followed file.
pub(super) struct Tailed {
    pub path: String,
    pub tag: String,
    pub file: File,
    pub id: FileId,
    /// Offset of the first byte not yet delivered: the start of the unfinished line.
    pub offset: u64,
    /// Offset of the next byte to read.
    pub read_pos: u64,
    /// The unfinished line read so far.
    pub partial: Vec<u8>,
    /// Inside a line longer than the limit: its bytes are skipped up to the next `\n`.
    pub discarding: bool,
    /// Gave up on the file (a line too long with `Skip_Long_Lines` off).
    pub failed: bool,
    pub rotated_at: Option<Instant>,
    pub db_id: Option<i64>,
    /// The offset last written to the DB; `None` when the DB row must be written again.
    pub stored_offset: Option<u64>,
    /// Messages of `multiline.parser` or `Docker_Mode` still open.
    pub ml: FileMl,
    /// The file's first bytes, as read (at most [`HEAD_LEN`], none past `read_pos`).
    pub head: Vec<u8>,
    /// The bytes just before `read_pos` (at most [`TAIL_LEN`]).
    pub recent: Vec<u8>,
    /// May have data not read yet.
    pub dirty: bool,
    /// Watched by inotify; otherwise polled.
    pub watched: bool,
}

/// What one [`Tailed::read_block`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Read {
    /// Bytes were read.
    pub data: bool,
    /// Lines longer than `Buffer_Max_Size` met.
    pub long_lines: u64,
}

impl Tailed {
    /// A file followed from `offset`, with the proof of that position.
    pub fn new(
        path: &str,
        tag: String,
        file: File,
        id: FileId,
        offset: u64,
        proof: Proof,
        ml: FileMl,
    ) -> Self {
        Tailed {
            path: path.to_string(),
            tag,
            file,
            id,
            offset,
            read_pos: offset,
            partial: Vec::new(),
            discarding: false,
            failed: false,
            rotated_at: None,
            db_id: None,
            stored_offset: None,
            ml,
            head: proof.head,
            recent: proof.tail,
            dirty: true,
            watched: false,
        }
    }

    /// The proof of `offset` (what the DB stores with it).
    pub fn proof_at_offset(&self) -> Proof {
        if self.offset == self.read_pos {
            return Proof {
                head: self.head.clone(),
                tail: self.recent.clone(),
            };
        }
        Proof::read(&self.file, self.offset).unwrap_or_default()
    }

    /// The file no longer holds what was read: deliver open multiline messages and follow it
    /// again from its head.
    pub fn restart(&mut self, cfg: &TailConfig, w: &mut EventWriter, why: &str) {
        tracing::info!(target: "input", "tail: {} {why}; reading it again from its head", self.path);
        self.flush_multiline(cfg, true, w);
        if !self.partial.is_empty() {
            tracing::debug!(target: "input",
                "tail: {}: an unfinished line of {} bytes is dropped with the old content",
                self.path, self.partial.len());
        }
        self.offset = 0;
        self.read_pos = 0;
        self.partial.clear();
        self.discarding = false;
        self.failed = false;
        self.head.clear();
        self.recent.clear();
        self.stored_offset = None;
        self.dirty = true;
    }

    /// Whether the file still holds, before `read_pos`, what was read (`block` is scratch).
    fn unchanged(&self, block: &mut [u8]) -> bool {
        let back = self.recent.len();
        let start = self.read_pos - back as u64;
        if start > 0 && !matches!(proof::matches(&self.file, &self.head, 0), Ok(true)) {
            return false;
        }
        matches!(self.file.read_at(&mut block[..back], start), Ok(n) if n == back && block[..back] == self.recent[..])
    }

    /// Read the next block (after checking the proof; a rewritten file is read again from its
    /// head) and encode its complete lines into `w`.
    pub fn read_block(
        &mut self,
        cfg: &TailConfig,
        block: &mut Vec<u8>,
        w: &mut EventWriter,
    ) -> Read {
        let block_len = cfg.buffer_chunk_size.max(MIN_READ_BLOCK) + TAIL_LEN;
        if block.len() != block_len {
            block.resize(block_len, 0);
        }
        if self.failed {
            self.dirty = false;
            if !self.unchanged(block) {
                self.restart(cfg, w, "was truncated or rewritten");
                return self.read_block(cfg, block, w);
            }
            return Read::default();
        }
        let back = self.recent.len();
        let start = self.read_pos - back as u64;
        if start > 0 && !matches!(proof::matches(&self.file, &self.head, 0), Ok(true)) {
            self.restart(cfg, w, "was rewritten");
            return self.read_block(cfg, block, w);
        }
        let n = match self.file.read_at(block, start) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(target: "input", "tail: read error on {}: {e}", self.path);
                self.dirty = false;
                return Read::default();
            }
        };
        if n < back || block[..back] != self.recent[..] {
            let why = if n < back {
                "was truncated"
            } else {
                "was truncated and written again"
            };
            self.restart(cfg, w, why);
            return self.read_block(cfg, block, w);
        }
        // A full block: more is probably waiting.
        self.dirty = n == block.len();
        if n == back {
            return Read::default();
        }
        if start == 0 && self.head.len() < HEAD_LEN {
            self.head.clear();
            self.head.extend_from_slice(&block[..n.min(HEAD_LEN)]);
        }
        let long_lines = self.split_lines(cfg, &block[back..n], w);
        if !self.failed {
            let keep = n.min(TAIL_LEN);
            self.recent.clear();
            self.recent.extend_from_slice(&block[n - keep..n]);
        }
        Read {
            data: true,
            long_lines,
        }
    }

    /// Encode the complete lines of `data` (the bytes at `read_pos`); returns the number of
    /// long lines met.
    fn split_lines(&mut self, cfg: &TailConfig, data: &[u8], w: &mut EventWriter) -> u64 {
        let base = self.read_pos;
        let time = EventTime::now();
        let enc = Encoder {
            cfg,
            path: &self.path,
        };
        let max = cfg.buffer_max_size;
        let mut long = 0u64;
        let mut start = 0usize;
        for nl in memchr::memchr_iter(b'\n', data) {
            let piece = &data[start..nl];
            if self.discarding {
                self.discarding = false;
            } else if self.partial.is_empty() {
                let line_start = base + start as u64;
                if piece.len() > max {
                    long += 1;
                } else {
                    enc.line(&mut self.ml, w, time, piece, line_start);
                }
            } else {
                let line_start = self.offset;
                self.partial.extend_from_slice(piece);
                if self.partial.len() > max {
                    long += 1;
                } else {
                    enc.line(&mut self.ml, w, time, &self.partial, line_start);
                }
                self.partial.clear();
            }
            start = nl + 1;
            self.offset = base + start as u64;
            if long > 0 && !cfg.skip_long_lines {
                break;
            }
        }
        let mut give_up = long > 0 && !cfg.skip_long_lines;
        if !give_up {
            let rest = &data[start..];
            if !self.discarding && !rest.is_empty() {
                if self.partial.len() + rest.len() > max {
                    long += 1;
                    if cfg.skip_long_lines {
                        self.partial.clear();
                        self.discarding = true;
                    } else {
                        give_up = true;
                    }
                } else {
                    self.partial.extend_from_slice(rest);
                }
            }
        }
        if give_up {
            tracing::error!(target: "input",
                "tail: {} has a line longer than buffer_max_size ({max} bytes); the file is no longer read (set skip_long_lines on to skip such lines)",
                self.path);
            self.failed = true;
            self.partial.clear();
        } else {
            self.read_pos = base + data.len() as u64;
        }
        long
    }

    /// Deliver joined messages open too long (all of them when `all`) into `w`.
    pub fn flush_multiline(&mut self, cfg: &TailConfig, all: bool, w: &mut EventWriter) {
        if !self.ml.is_open() {
            return;
        }
        let enc = Encoder {
            cfg,
            path: &self.path,
        };
        let docker_flush = cfg.docker_mode.as_ref().map(|d| d.flush);
        let time = EventTime::now();
        let w = std::cell::RefCell::new(w);
        self.ml.flush(
            all,
            docker_flush,
            &mut |f| enc.ml_event(&mut w.borrow_mut(), f),
            &mut |line, at| enc.raw(&mut w.borrow_mut(), time, line, at),
        );
    }
}

/// Where reading a file found at start (not from its head) begins: after its last complete
/// line, so that a line being written is delivered whole. A last line already longer than
/// `max` is skipped up to its end (`true`).
pub(super) fn last_line_start(file: &File, size: u64, max: usize) -> (u64, bool) {
    let window = size.min(max as u64 + 1);
    if window == 0 {
        return (size, false);
    }
    let mut buf = vec![0; window as usize];
    let Ok(n) = proof::read_full(file, &mut buf, size - window) else {
        return (size, false);
    };
    match memchr::memrchr(b'\n', &buf[..n]) {
        Some(i) => (size - window + i as u64 + 1, false),
        None if window == size => (0, false),
        None => (size, true),
    }
}

/// Whether the byte before `offset` is a `\n` (`offset` starts a line).
pub(super) fn ends_line(file: &File, offset: u64) -> bool {
    let mut b = [0u8; 1];
    matches!(file.read_at(&mut b, offset - 1), Ok(1)) && b[0] == b'\n'
}

/// Encodes lines as records.
struct Encoder<'a> {
    cfg: &'a TailConfig,
    path: &'a str,
}

impl Encoder<'_> {
    /// Encode one line (without its `\n`), through `multiline.parser` or `Docker_Mode` when
    /// set.
    fn line(&self, ml: &mut FileMl, w: &mut EventWriter, time: EventTime, line: &[u8], at: u64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && self.cfg.skip_empty_lines {
            return;
        }
        if ml.engine_line(time, line, at, &mut |f| self.ml_event(w, f)) {
            return;
        }
        if let Some(d) = &self.cfg.docker_mode {
            if ml.docker_line(d, line, at, time, &mut |l, at| self.raw(w, time, l, at)) {
                return;
            }
        }
        self.raw(w, time, line, at);
    }

    /// A message of the multiline engine, with `Path_Key`/`Offset_Key` after its keys.
    fn ml_event(&self, w: &mut EventWriter, f: kb_parsers::multiline::Flushed<'_>) {
        let path = self.cfg.path_key.as_deref().map(|k| (k, self.path));
        append_ml_event(w, f, path, self.cfg.offset_key.as_deref());
    }

    /// Write the `Path_Key`/`Offset_Key` entries.
    fn keys(&self, buf: &mut Vec<u8>, line_start: u64) {
        // Writing into a Vec cannot fail.
        if let Some(k) = &self.cfg.path_key {
            let _ = rmp::encode::write_str(buf, k);
            let _ = rmp::encode::write_str(buf, self.path);
        }
        if let Some(k) = &self.cfg.offset_key {
            let _ = rmp::encode::write_str(buf, k);
            let _ = rmp::encode::write_uint(buf, line_start);
        }
    }

    fn extra_keys(&self) -> u32 {
        u32::from(self.cfg.path_key.is_some()) + u32::from(self.cfg.offset_key.is_some())
    }

    /// One line as a record: `{Path_Key, Offset_Key, Key: line}`, or through `Parser` the
    /// parsed fields followed by `Path_Key`, `Offset_Key` (Fluent Bit's order in both cases).
    fn raw(&self, w: &mut EventWriter, time: EventTime, line: &[u8], line_start: u64) {
        if let Some(NamedParser(p)) = &self.cfg.parser {
            let mut parsed = EventWriter::new();
            if p.parse_line(line, &mut parsed, time).is_ok() {
                if let Some(Ok(ev)) = EventReader::new(&parsed.buf).next() {
                    let mut c = Cursor::new(ev.record);
                    if let Ok(n) = c.read_map_len() {
                        w.begin(ev.time);
                        let _ =
                            rmp::encode::write_map_len(&mut w.buf, n as u32 + self.extra_keys());
                        w.buf.extend_from_slice(c.rest());
                        self.keys(&mut w.buf, line_start);
                        return;
                    }
                }
            }
        }
        w.begin(time);
        let buf = &mut w.buf;
        let _ = rmp::encode::write_map_len(buf, 1 + self.extra_keys());
        self.keys(buf, line_start);
        let _ = rmp::encode::write_str(buf, &self.cfg.key);
        let _ = rmp::encode::write_str_len(buf, line.len() as u32);
        buf.extend_from_slice(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_core::event::EventReader;
    use std::io::Write;
    use std::time::Duration;

    fn config() -> TailConfig {
        TailConfig {
            paths: vec![],
            exclude: vec![],
            read_from_head: true,
            refresh_interval: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(5),
            key: "log".into(),
            path_key: None,
            offset_key: None,
            skip_long_lines: false,
            skip_empty_lines: false,
            buffer_chunk_size: 32_000,
            buffer_max_size: 32_000,
            db: None,
            db_sync: "normal".into(),
            db_locking: false,
            db_journal_mode: "WAL".into(),
            multiline: None,
            docker_mode: None,
            pause_on_chunks_overlimit: false,
            parser: None,
            inotify_watcher: false,
        }
    }

    fn lines(range: std::ops::Range<u32>) -> String {
        range
            .map(|i| format!("line {i:06} of the test\n"))
            .collect()
    }

    /// Follow `path` from 0 and return a reader of its new lines.
    fn follow(path: &std::path::Path) -> (Tailed, TailConfig, Vec<u8>) {
        let file = File::open(path).unwrap();
        let t = Tailed::new(
            "t.log",
            "t".into(),
            file,
            (0, 0),
            0,
            Proof::default(),
            FileMl::default(),
        );
        (t, config(), Vec::new())
    }

    fn read_all(t: &mut Tailed, cfg: &TailConfig, block: &mut Vec<u8>) -> Vec<String> {
        let mut w = EventWriter::new();
        t.dirty = true;
        while t.dirty {
            t.read_block(cfg, block, &mut w);
        }
        EventReader::new(&w.buf)
            .map(|e| {
                let mut record = e.unwrap().record;
                let v = rmpv::decode::read_value(&mut record).unwrap();
                v.as_map().unwrap()[0].1.as_str().unwrap().to_string()
            })
            .collect()
    }

    fn want(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("line {i:06} of the test")).collect()
    }

    #[test]
    fn a_file_rewritten_to_its_old_size_between_reads_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, lines(0..1000)).unwrap();
        let (mut t, cfg, mut block) = follow(&p);
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(0..1000));
        // copytruncate, then as many bytes again before the next read: the size is unchanged.
        std::fs::write(&p, lines(1000..2000)).unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(1000..2000));
        assert_eq!(read_all(&mut t, &cfg, &mut block), Vec::<String>::new());
    }

    #[test]
    fn a_file_rewritten_past_its_old_size_or_below_it_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, lines(0..100)).unwrap();
        let (mut t, cfg, mut block) = follow(&p);
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(0..100));
        std::fs::write(&p, lines(100..400)).unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(100..400));
        std::fs::write(&p, lines(400..410)).unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(400..410));
        // Emptied: nothing to read, and the next lines come from the head.
        std::fs::write(&p, "").unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), Vec::<String>::new());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(lines(410..412).as_bytes())
            .unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), want(410..412));
    }

    #[test]
    fn a_rewrite_that_keeps_the_bytes_before_the_offset_is_caught_by_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        // Long lines ending in the same 300 bytes: the tail proof alone cannot tell them apart.
        let suffix = "x".repeat(300);
        let text = |range: std::ops::Range<u32>| -> String {
            range.map(|i| format!("{i:06} {suffix}\n")).collect()
        };
        std::fs::write(&p, text(0..50)).unwrap();
        let (mut t, cfg, mut block) = follow(&p);
        assert_eq!(read_all(&mut t, &cfg, &mut block).len(), 50);
        std::fs::write(&p, text(50..100)).unwrap();
        let got = read_all(&mut t, &cfg, &mut block);
        assert_eq!(got.len(), 50);
        assert!(got[0].starts_with("000050 "), "{}", got[0]);
    }

    #[test]
    fn appends_after_an_unfinished_line_are_not_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, "one\ntw").unwrap();
        let (mut t, cfg, mut block) = follow(&p);
        assert_eq!(read_all(&mut t, &cfg, &mut block), ["one"]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"o\nthree\n").unwrap();
        assert_eq!(read_all(&mut t, &cfg, &mut block), ["two", "three"]);
        assert_eq!(t.offset, 14);
        assert_eq!(t.proof_at_offset(), Proof::read(&t.file, 14).unwrap());
    }

    #[test]
    fn reading_at_start_begins_at_the_last_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.log");
        std::fs::write(&p, "done\nhalf a li").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(last_line_start(&f, 14, 100), (5, false));
        assert_eq!(last_line_start(&f, 5, 100), (5, false));
        // No newline within the limit: the line in progress is too long and is skipped.
        assert_eq!(last_line_start(&f, 14, 4), (14, true));
        std::fs::write(&p, "no newline").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(last_line_start(&f, 10, 100), (0, false));
        assert_eq!(last_line_start(&f, 0, 100), (0, false));
    }
}
