//! Journal files for the `systemd` input's tests, written by journald's own tool: entries in
//! the journal export format are piped into `systemd-journal-remote -o FILE -` (Debian's
//! `systemd-journal-remote` package, installed by `scripts/install-peers.sh`).
//! Shared by kb-inputs' and the binary's systemd tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian puts the tool.
pub const JOURNAL_REMOTE: &[&str] = &[
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
];

/// The boot all fixture entries claim (entries of one boot are ordered by monotonic time).
pub const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// One journal entry: its receive time, its monotonic time and its fields in order.
#[derive(Debug, Clone)]
pub struct Entry {
    pub realtime_usec: u64,
    pub monotonic_usec: u64,
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub fn new(realtime_usec: u64, monotonic_usec: u64) -> Self {
        Entry {
            realtime_usec,
            monotonic_usec,
            fields: Vec::new(),
        }
    }

    pub fn field(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.fields
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// The export format of `entries` (binary-safe fields where a value holds a newline or
/// any byte outside printable ASCII).
pub fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        writeln!(out, "__REALTIME_TIMESTAMP={}", e.realtime_usec).unwrap();
        writeln!(out, "__MONOTONIC_TIMESTAMP={}", e.monotonic_usec).unwrap();
        writeln!(out, "_BOOT_ID={BOOT_ID}").unwrap();
        for (k, v) in &e.fields {
            let plain = v.iter().all(|b| (0x20..0x7f).contains(b));
            if plain {
                out.extend_from_slice(k.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v);
                out.push(b'\n');
            } else {
                out.extend_from_slice(k.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// The tool, or a failure that says how to install it (never a skipped test).
pub fn journal_remote() -> PathBuf {
    for p in JOURNAL_REMOTE {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "systemd-journal-remote is missing (looked in {JOURNAL_REMOTE:?}): the systemd input's \
         tests write their journal files with it. Install it with \
         `apt-get install systemd-journal-remote` or run scripts/install-peers.sh"
    );
}

/// Write `entries` as the journal file `file` (its name must end in `.journal`).
pub fn write_journal(file: &Path, entries: &[Entry]) {
    let mut child = Command::new(journal_remote())
        .arg("-o")
        .arg(file)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-journal-remote");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&export(entries))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        file.exists(),
        "no journal file written at {}",
        file.display()
    );
}

/// Base of the fixture's receive times (µs): 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000_000;

/// The first batch: kubelet, containerd, docker (with a binary message), an entry of no unit
/// and kubelet again with a repeated field.
pub fn batch1() -> Vec<Entry> {
    vec![
        Entry::new(T0 + 100_000, 10_000_000)
            .field("MESSAGE", "Started kubelet")
            .field("_SYSTEMD_UNIT", "kubelet.service")
            .field("_PID", "1001")
            .field("PRIORITY", "6")
            .field("_HOSTNAME", "node-1")
            .field("_SOURCE_REALTIME_TIMESTAMP", "1699999999000001"),
        Entry::new(T0 + 200_000, 10_100_000)
            .field("MESSAGE", "containerd is up")
            .field("_SYSTEMD_UNIT", "containerd.service")
            .field("_PID", "1002")
            .field("PRIORITY", "5")
            .field("_HOSTNAME", "node-1"),
        Entry::new(T0 + 300_000, 10_200_000)
            .field("MESSAGE", b"bin\x00ary\xff\nline".as_slice())
            .field("_SYSTEMD_UNIT", "docker.service")
            .field("_PID", "1003")
            .field("PRIORITY", "3")
            .field("_HOSTNAME", "node-1"),
        Entry::new(T0 + 400_000, 10_300_000)
            .field("MESSAGE", "a kernel message")
            .field("PRIORITY", "4")
            .field("_TRANSPORT", "kernel")
            .field("_HOSTNAME", "node-1"),
        Entry::new(T0 + 500_000, 10_400_000)
            .field("MESSAGE", "kubelet again")
            .field("_SYSTEMD_UNIT", "kubelet.service")
            .field("_PID", "1001")
            .field("PRIORITY", "6")
            .field("_HOSTNAME", "node-1")
            .field("TAGS", "a")
            .field("TAGS", "b"),
    ]
}

/// A later batch (after every entry of [`batch1`]).
pub fn batch2() -> Vec<Entry> {
    vec![
        Entry::new(T0 + 10_000_000, 20_000_000)
            .field("MESSAGE", "later kubelet")
            .field("_SYSTEMD_UNIT", "kubelet.service")
            .field("_PID", "1001")
            .field("PRIORITY", "6")
            .field("_HOSTNAME", "node-1"),
        Entry::new(T0 + 10_100_000, 20_100_000)
            .field("MESSAGE", "later docker")
            .field("_SYSTEMD_UNIT", "docker.service")
            .field("_PID", "1003")
            .field("PRIORITY", "6")
            .field("_HOSTNAME", "node-1"),
    ]
}
