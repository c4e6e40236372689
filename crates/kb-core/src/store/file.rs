//! One chunk file: a header, the chunk's events, then a journal of per-route progress.
//!
//! Layout (little-endian):
//!
//! ```text
//!  0  b"KBC1"
//!  4  crc32 of bytes 8..40 and the two names
//!  8  state: 0 open (events still being appended), 1 sealed
//!  9  flags: bit 0 = the data crc32 below is set (storage.checksum)
//! 10  tag length u16      12  input name length u16      14  reserved u16
//! 16  records u32         20  data crc32 u32              24  data length u64
//! 32  created, unix nanoseconds u64
//! 40  tag, input name, then the events, then journal entries
//! ```
//!
//! A journal entry is `length u32, crc32 u32, payload` with the payload
//! `route name length u16, route name, flags u8 (bit 0: route finished), total u32,
//! dropped u32, bitset words u64…`. Entries only ever add done records, so the last intact
//! entry of a route wins; a torn last entry (crash mid-write) is ignored.
//!
//! An open file is events appended one write at a time: after a crash it is recovered by
//! keeping the complete events and cutting the torn tail.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::event::EventReader;

const MAGIC: &[u8; 4] = b"KBC1";
const FIXED_LEN: usize = 40;
const STATE_OPEN: u8 = 0;
const STATE_SEALED: u8 = 1;
const FLAG_CHECKSUM: u8 = 1;
const ROUTE_FINISHED: u8 = 1;

/// `storage.sync`: whether writes are flushed to the device before they count as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Written to the kernel; survives a crash of the agent, not of the machine.
    #[default]
    Normal,
    /// `fdatasync` after every write: survives a power loss too.
    Full,
}

/// What a chunk file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sealed: bool,
    pub checksum: bool,
    pub records: u32,
    pub data_crc: u32,
    pub data_len: u64,
    pub created_ns: u64,
    pub tag: String,
    pub input: String,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_LEN + self.tag.len() + self.input.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&[0; 4]);
        b.push(if self.sealed {
            STATE_SEALED
        } else {
            STATE_OPEN
        });
        b.push(if self.checksum { FLAG_CHECKSUM } else { 0 });
        b.extend_from_slice(&(self.tag.len() as u16).to_le_bytes());
        b.extend_from_slice(&(self.input.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 2]);
        b.extend_from_slice(&self.records.to_le_bytes());
        b.extend_from_slice(&self.data_crc.to_le_bytes());
        b.extend_from_slice(&self.data_len.to_le_bytes());
        b.extend_from_slice(&self.created_ns.to_le_bytes());
        b.extend_from_slice(self.tag.as_bytes());
        b.extend_from_slice(self.input.as_bytes());
        let crc = crc32fast::hash(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Offset of the first event byte.
    pub fn data_offset(&self) -> u64 {
        (FIXED_LEN + self.tag.len() + self.input.len()) as u64
    }

    fn decode(b: &[u8]) -> Result<Header, Corrupt> {
        if b.len() < FIXED_LEN {
            return Err(Corrupt::Truncated("header"));
        }
        if &b[0..4] != MAGIC {
            return Err(Corrupt::NotAChunk);
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let (tag_len, input_len) = (u16_at(10), u16_at(12));
        let end = FIXED_LEN + tag_len + input_len;
        if b.len() < end {
            return Err(Corrupt::Truncated("header"));
        }
        if crc32fast::hash(&b[8..end]) != u32_at(4) || b[8] > STATE_SEALED {
            return Err(Corrupt::HeaderChecksum);
        }
        let text = |r: std::ops::Range<usize>| {
            std::str::from_utf8(&b[r])
                .map(str::to_string)
                .map_err(|_| Corrupt::HeaderChecksum)
        };
        Ok(Header {
            sealed: b[8] == STATE_SEALED,
            checksum: b[9] & FLAG_CHECKSUM != 0,
            records: u32_at(16),
            data_crc: u32_at(20),
            data_len: u64_at(24),
            created_ns: u64_at(32),
            tag: text(FIXED_LEN..FIXED_LEN + tag_len)?,
            input: text(FIXED_LEN + tag_len..end)?,
        })
    }
}

/// Why a chunk file cannot be used. Such a file is skipped and counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    #[error("not a kinesis-bit chunk file (bad magic)")]
    NotAChunk,
    #[error("file is truncated in its {0}")]
    Truncated(&'static str),
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("data checksum mismatch (storage.checksum)")]
    DataChecksum,
    #[error("events are malformed: {0}")]
    BadEvents(String),
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for Corrupt {
    fn from(e: io::Error) -> Self {
        Corrupt::Io(e.to_string())
    }
}

/// The saved progress of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedProgress {
    /// The route gave this chunk up for good (delivered, dropped or rejected).
    pub finished: bool,
    pub total: usize,
    pub dropped: usize,
    pub words: Vec<u64>,
}

/// A chunk file read back: its events and what each route had delivered.
#[derive(Debug)]
pub struct LoadedFile {
    pub header: Header,
    /// The events: a slice of the file as read, not a copy.
    pub data: bytes::Bytes,
    pub progress: HashMap<String, SavedProgress>,
}

/// Writes a new chunk file while its chunk is open.
#[derive(Debug)]
pub struct ChunkWriter {
    file: File,
    path: PathBuf,
    header: Header,
    crc: crc32fast::Hasher,
    sync: SyncMode,
}

impl ChunkWriter {
    /// Create `path` with an open header.
    pub fn create(
        path: PathBuf,
        tag: &str,
        input: &str,
        checksum: bool,
        sync: SyncMode,
    ) -> io::Result<ChunkWriter> {
        let header = Header {
            sealed: false,
            checksum,
            records: 0,
            data_crc: 0,
            data_len: 0,
            created_ns: unix_nanos(),
            tag: truncate_name(tag),
            input: truncate_name(input),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(&header.encode())?;
        Ok(ChunkWriter {
            file,
            path,
            header,
            crc: crc32fast::Hasher::new(),
            sync,
        })
    }

    /// Append events. With `storage.sync full` they are on the device when this returns.
    pub fn append(&mut self, events: &[u8]) -> io::Result<()> {
        self.file.write_all(events)?;
        if self.header.checksum {
            self.crc.update(events);
        }
        self.header.data_len += events.len() as u64;
        if self.sync == SyncMode::Full {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Path of the file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seal the file with its record count: from now on only journal entries are appended.
    pub fn seal(mut self, records: usize) -> io::Result<Header> {
        self.header.sealed = true;
        self.header.records = records as u32;
        self.header.data_crc = if self.header.checksum {
            self.crc.clone().finalize()
        } else {
            0
        };
        self.file.write_all_at(&self.header.encode(), 0)?;
        if self.sync == SyncMode::Full {
            self.file.sync_data()?;
        }
        Ok(self.header)
    }
}

/// Names longer than a header can hold are cut (tags are short in practice).
fn truncate_name(s: &str) -> String {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Read only the header (startup scan).
pub fn read_header(path: &Path) -> Result<Header, Corrupt> {
    let mut f = File::open(path)?;
    let mut b = vec![0u8; FIXED_LEN];
    let n = read_up_to(&mut f, &mut b)?;
    if n < FIXED_LEN {
        return Err(if n >= 4 && &b[..4] != MAGIC {
            Corrupt::NotAChunk
        } else {
            Corrupt::Truncated("header")
        });
    }
    let names =
        u16::from_le_bytes([b[10], b[11]]) as usize + u16::from_le_bytes([b[12], b[13]]) as usize;
    b.resize(FIXED_LEN + names, 0);
    let n = read_up_to(&mut f, &mut b[FIXED_LEN..])?;
    b.truncate(FIXED_LEN + n);
    Header::decode(&b)
}

/// Whether `path` is shorter than a header and starts like one: a crash during
/// [`ChunkWriter::create`], before any record could be appended.
pub fn is_torn_create(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    b.len() < FIXED_LEN && b.iter().zip(MAGIC.iter()).all(|(x, y)| x == y)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What [`recover_open`] did to an open file left by a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub header: Header,
    /// Bytes of a torn last event that were cut.
    pub torn_bytes: u64,
}

/// Seal an open file left by a crash: keep its complete events, cut a torn tail.
pub fn recover_open(path: &Path) -> Result<Recovered, Corrupt> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut all = Vec::new();
    f.read_to_end(&mut all)?;
    let mut header = Header::decode(&all)?;
    if header.sealed {
        return Ok(Recovered {
            header,
            torn_bytes: 0,
        });
    }
    let start = header.data_offset() as usize;
    let data = &all[start..];
    let mut records = 0u32;
    let mut good = 0usize;
    for ev in EventReader::new(data) {
        match ev {
            Ok(e) => {
                records += 1;
                good += e.raw.len();
            }
            Err(_) => break,
        }
    }
    let torn = (data.len() - good) as u64;
    header.sealed = true;
    header.records = records;
    header.data_len = good as u64;
    header.data_crc = if header.checksum {
        crc32fast::hash(&data[..good])
    } else {
        0
    };
    f.set_len((start + good) as u64)?;
    f.write_all_at(&header.encode(), 0)?;
    f.sync_all()?;
    Ok(Recovered {
        header,
        torn_bytes: torn,
    })
}

/// Read a sealed file whole: check it and collect the journal.
pub fn read_chunk(path: &Path) -> Result<LoadedFile, Corrupt> {
    let mut f = File::open(path)?;
    let mut all = Vec::new();
    f.read_to_end(&mut all)?;
    let header = Header::decode(&all)?;
    if !header.sealed {
        return Err(Corrupt::Truncated("data (the file was never sealed)"));
    }
    let start = header.data_offset() as usize;
    let end = start
        .checked_add(header.data_len as usize)
        .filter(|e| *e <= all.len())
        .ok_or(Corrupt::Truncated("data"))?;
    let data = &all[start..end];
    if header.checksum && crc32fast::hash(data) != header.data_crc {
        return Err(Corrupt::DataChecksum);
    }
    let mut n = 0u32;
    for ev in EventReader::new(data) {
        ev.map_err(|e| Corrupt::BadEvents(e.to_string()))?;
        n += 1;
    }
    if n != header.records {
        return Err(Corrupt::BadEvents(format!(
            "{n} events where the header says {}",
            header.records
        )));
    }
    let progress = parse_journal(&all[end..]);
    Ok(LoadedFile {
        header,
        data: bytes::Bytes::from(all).slice(start..end),
        progress,
    })
}

fn parse_journal(mut b: &[u8]) -> HashMap<String, SavedProgress> {
    let mut out = HashMap::new();
    while b.len() >= 8 {
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let crc = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let Some(payload) = b.get(8..8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        if let Some((route, saved)) = decode_entry(payload) {
            out.insert(route, saved);
        }
        b = &b[8 + len..];
    }
    out
}

fn decode_entry(p: &[u8]) -> Option<(String, SavedProgress)> {
    let name_len = u16::from_le_bytes([*p.first()?, *p.get(1)?]) as usize;
    let route = std::str::from_utf8(p.get(2..2 + name_len)?)
        .ok()?
        .to_string();
    let rest = p.get(2 + name_len..)?;
    let flags = *rest.first()?;
    let total = u32::from_le_bytes(rest.get(1..5)?.try_into().ok()?) as usize;
    let dropped = u32::from_le_bytes(rest.get(5..9)?.try_into().ok()?) as usize;
    let words: Vec<u64> = rest
        .get(9..)?
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
        .collect();
    Some((
        route,
        SavedProgress {
            finished: flags & ROUTE_FINISHED != 0,
            total,
            dropped,
            words,
        },
    ))
}

/// Append one journal entry to a sealed file opened for appending (`O_APPEND`).
pub fn append_journal(
    file: &mut File,
    route: &str,
    finished: bool,
    total: usize,
    dropped: usize,
    words: &[u64],
    sync: SyncMode,
) -> io::Result<()> {
    let route = truncate_name(route);
    let mut p = Vec::with_capacity(2 + route.len() + 9 + words.len() * 8);
    p.extend_from_slice(&(route.len() as u16).to_le_bytes());
    p.extend_from_slice(route.as_bytes());
    p.push(if finished { ROUTE_FINISHED } else { 0 });
    p.extend_from_slice(&(total as u32).to_le_bytes());
    p.extend_from_slice(&(dropped as u32).to_le_bytes());
    if !finished {
        for w in words {
            p.extend_from_slice(&w.to_le_bytes());
        }
    }
    let mut entry = Vec::with_capacity(8 + p.len());
    entry.extend_from_slice(&(p.len() as u32).to_le_bytes());
    entry.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    entry.extend_from_slice(&p);
    // One write to a file opened for appending: an entry is either whole or a torn tail
    // that parse_journal ignores.
    file.write_all(&entry)?;
    if sync == SyncMode::Full {
        file.sync_data()?;
    }
    Ok(())
}

/// Write a sealed file holding `data` in one go (rejected chunks).
pub fn write_sealed(
    path: &Path,
    tag: &str,
    input: &str,
    data: &[u8],
    records: usize,
    sync: SyncMode,
) -> io::Result<()> {
    let mut w = ChunkWriter::create(path.to_path_buf(), tag, input, true, sync)?;
    w.append(data)?;
    w.seal(records)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, EventWriter};

    fn events(n: usize) -> Vec<u8> {
        let mut w = EventWriter::new();
        for i in 0..n {
            let rec = serde_json::json!({ "seq": i, "log": "line" });
            let rec = rec.as_object().unwrap();
            w.write_json_record(EventTime::new(1_700_000_000 + i as u32, 0), rec);
        }
        w.buf.clone()
    }

    fn new_file(dir: &Path, checksum: bool) -> (PathBuf, Vec<u8>) {
        let path = dir.join("a.kbc");
        let data = events(10);
        let mut w =
            ChunkWriter::create(path.clone(), "app.log", "tail.0", checksum, SyncMode::Full)
                .unwrap();
        w.append(&data[..100]).unwrap();
        w.append(&data[100..]).unwrap();
        w.seal(10).unwrap();
        (path, data)
    }

    #[test]
    fn sealed_file_reads_back_with_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = new_file(dir.path(), true);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        append_journal(&mut f, "kinesis.0", false, 10, 1, &[0b11], SyncMode::Normal).unwrap();
        append_journal(
            &mut f,
            "kinesis.0",
            false,
            10,
            1,
            &[0b111],
            SyncMode::Normal,
        )
        .unwrap();
        append_journal(&mut f, "stdout.1", true, 10, 0, &[], SyncMode::Normal).unwrap();
        // A torn last entry is ignored.
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let got = read_chunk(&path).unwrap();
        assert_eq!(got.data, data);
        assert_eq!(got.header.tag, "app.log");
        assert_eq!(got.header.input, "tail.0");
        assert_eq!(got.header.records, 10);
        assert_eq!(got.progress["kinesis.0"].words, vec![0b111]);
        assert_eq!(got.progress["kinesis.0"].dropped, 1);
        assert!(got.progress["stdout.1"].finished);
        assert_eq!(read_header(&path).unwrap(), got.header);
    }

    #[test]
    fn flipped_data_byte_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = new_file(dir.path(), true);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let off = read_header(&path).unwrap().data_offset() + 20;
        f.write_all_at(b"X", off).unwrap();
        assert_eq!(read_chunk(&path).unwrap_err(), Corrupt::DataChecksum);
    }

    #[test]
    fn cut_file_is_reported_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = new_file(dir.path(), false);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        assert_eq!(read_chunk(&path).unwrap_err(), Corrupt::Truncated("data"));
        std::fs::write(&path, b"KBC1garbage").unwrap();
        assert!(read_chunk(&path).is_err());
        assert!(is_torn_create(&path));
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_header(&path).unwrap_err(), Corrupt::NotAChunk);
        assert!(!is_torn_create(&path));
    }

    #[test]
    fn open_file_recovers_its_complete_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.kbc");
        let data = events(5);
        let mut w =
            ChunkWriter::create(path.clone(), "t", "dummy.0", true, SyncMode::Normal).unwrap();
        // The crash came in the middle of the last event.
        w.append(&data[..data.len() - 3]).unwrap();
        drop(w);
        let r = recover_open(&path).unwrap();
        let got = read_chunk(&path).unwrap();
        assert_eq!(got.header.records, 4);
        assert_eq!(r.header.records, 4);
        assert!(r.torn_bytes > 0);
        let four = EventReader::new(&data)
            .take(4)
            .map(|e| e.unwrap().raw.len())
            .sum::<usize>();
        assert_eq!(got.data, data[..four]);
    }
}
