//! How `tail` learns that a followed file changed: inotify (`Inotify_Watcher on`, the
//! default, as in Fluent Bit) or polling every [`POLL_INTERVAL`].
//!
//! With inotify a write, a truncation, a rename or a deletion wakes the input at once. Each
//! file is watched through its open descriptor (`/proc/self/fd/N`), so the watch is on the
//! very file being read even when its path was renamed meanwhile. When inotify cannot be
//! used (no instance left, `max_user_watches` reached), the files concerned are polled, and a
//! full event queue makes every file be read again: events only say when to look, never what
//! was written, so a lost event delays a line and loses nothing.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::FileId;

/// How often polled files are checked for new data, rotation and truncation.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// With inotify, how often every file is looked at anyway (a safety net for lost events).
pub const SAFETY_INTERVAL: Duration = Duration::from_secs(1);

/// What an event asks of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The file was written or truncated: read it.
    Modified(FileId),
    /// The file was renamed, deleted or its metadata changed: check for rotation.
    Moved(FileId),
    /// Events were lost: read and check every file.
    Overflow,
}

/// The source of change notifications.
pub struct Watcher {
    inotify: Option<InotifyWatch>,
}

struct InotifyWatch {
    fd: AsyncFd<Inotify>,
    buf: Vec<u8>,
    by_wd: HashMap<i32, FileId>,
    by_file: HashMap<FileId, WatchDescriptor>,
    warned_limit: bool,
}

const MASK: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF);

impl Watcher {
    /// A watcher using inotify when `use_inotify` and the system allows it, else polling.
    pub fn new(use_inotify: bool) -> Watcher {
        if !use_inotify {
            return Watcher { inotify: None };
        }
        let made = Inotify::init().and_then(|i| {
            // SAFETY: the Inotify owns its descriptor, never replaces it, and closes it only
            // when dropped, which happens after the AsyncFd that owns it lets it go.
            unsafe { AsyncFd::register_with_interest(i, Interest::READABLE) }
                .map_err(io::Error::from)
        });
        match made {
            Ok(fd) => Watcher {
                inotify: Some(InotifyWatch {
                    fd,
                    buf: vec![0; 16 * 1024],
                    by_wd: HashMap::new(),
                    by_file: HashMap::new(),
                    warned_limit: false,
                }),
            },
            Err(e) => {
                tracing::warn!(target: "input",
                    "tail: inotify is not available ({e}); polling files every {} ms instead (raise fs.inotify.max_user_instances, or set inotify_watcher off to silence this)",
                    POLL_INTERVAL.as_millis());
                Watcher { inotify: None }
            }
        }
    }

    /// A watcher that polls.
    pub fn polling() -> Watcher {
        Watcher { inotify: None }
    }

    /// Whether events come from inotify.
    pub fn is_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    /// Watch the open `file` known as `id`; false when it must be polled instead.
    pub fn watch(&mut self, file: &File, id: FileId, path: &str) -> bool {
        let Some(w) = &mut self.inotify else {
            return false;
        };
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        let added =
            w.fd.get_ref()
                .watches()
                .add(&by_fd, MASK)
                .or_else(|_| w.fd.get_ref().watches().add(path, MASK));
        match added {
            Ok(wd) => {
                w.by_wd.insert(wd.get_watch_descriptor_id(), id);
                w.by_file.insert(id, wd);
                true
            }
            Err(e) => {
                if !w.warned_limit {
                    w.warned_limit = true;
                    tracing::warn!(target: "input",
                        "tail: cannot watch {path} with inotify ({e}); it is polled every {} ms (raise fs.inotify.max_user_watches)",
                        POLL_INTERVAL.as_millis());
                }
                false
            }
        }
    }

    /// Stop watching file `id` (it is no longer followed).
    pub fn unwatch(&mut self, id: FileId) {
        let Some(w) = &mut self.inotify else {
            return;
        };
        if let Some(wd) = w.by_file.remove(&id) {
            w.by_wd.remove(&wd.get_watch_descriptor_id());
            // Fails when the file is gone (the kernel dropped the watch already).
            let _ = w.fd.get_ref().watches().remove(wd);
        }
    }

    /// Wait for events and return what they ask, appended to `out` (a buffer handed back and
    /// forth so that waking allocates nothing). Never returns with a polling watcher (callers
    /// select it against their timers).
    pub async fn changes(&mut self, mut out: Vec<Change>) -> Vec<Change> {
        let Some(w) = &mut self.inotify else {
            return std::future::pending().await;
        };
        loop {
            let mut guard = match w.fd.readable_mut().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(target: "input", "tail: inotify wait failed: {e}");
                    out.push(Change::Overflow);
                    return out;
                }
            };
            let buf = &mut w.buf;
            let (by_wd, by_file) = (&mut w.by_wd, &mut w.by_file);
            let read = guard.try_io(|fd| {
                let events = fd.get_mut().read_events(buf)?;
                for e in events {
                    decode(
                        e.wd.get_watch_descriptor_id(),
                        e.mask,
                        by_wd,
                        by_file,
                        &mut out,
                    );
                }
                Ok(())
            });
            match read {
                Ok(Ok(())) if !out.is_empty() => return out,
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(Err(e)) => {
                    tracing::error!(target: "input", "tail: reading inotify events failed: {e}");
                    out.push(Change::Overflow);
                    return out;
                }
                // Not readable after all: readiness was cleared, wait again.
                Err(_) => {}
            }
        }
    }
}

/// What the event `mask` on watch `wd` asks, appended to `out`.
fn decode(
    wd: i32,
    mask: EventMask,
    by_wd: &mut HashMap<i32, FileId>,
    by_file: &mut HashMap<FileId, WatchDescriptor>,
    out: &mut Vec<Change>,
) {
    if mask.contains(EventMask::Q_OVERFLOW) {
        out.push(Change::Overflow);
        return;
    }
    let Some(&id) = by_wd.get(&wd) else { return };
    if mask.contains(EventMask::IGNORED) {
        // The kernel dropped the watch: the file is gone.
        by_wd.remove(&wd);
        by_file.remove(&id);
        out.push(Change::Moved(id));
    } else if mask.intersects(EventMask::ATTRIB | EventMask::MOVE_SELF | EventMask::DELETE_SELF) {
        out.push(Change::Moved(id));
    } else if mask.contains(EventMask::MODIFY) {
        out.push(Change::Modified(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    async fn next(w: &mut Watcher) -> Vec<Change> {
        tokio::time::timeout(Duration::from_secs(5), w.changes(Vec::new()))
            .await
            .expect("an inotify event within 5 s")
    }

    #[tokio::test]
    async fn writes_truncations_and_renames_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let file = File::open(&path).unwrap();
        let m = file.metadata().unwrap();
        let id = (m.dev(), m.ino());
        let mut w = Watcher::new(true);
        assert!(w.is_inotify());
        assert!(w.watch(&file, id, path.to_str().unwrap()));

        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        out.write_all(b"y\n").unwrap();
        assert!(next(&mut w).await.contains(&Change::Modified(id)));
        out.set_len(0).unwrap();
        assert!(next(&mut w).await.contains(&Change::Modified(id)));
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        assert!(next(&mut w).await.contains(&Change::Moved(id)));
        std::fs::remove_file(dir.path().join("a.log.1")).unwrap();
        assert!(next(&mut w).await.contains(&Change::Moved(id)));

        // Unwatched: no more events for it.
        w.unwatch(id);
        out.write_all(b"z\n").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), w.changes(Vec::new())).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }

    #[tokio::test]
    async fn a_polling_watcher_never_reports() {
        let mut w = Watcher::polling();
        assert!(!w.is_inotify());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let file = File::open(&path).unwrap();
        assert!(!w.watch(&file, (0, 1), path.to_str().unwrap()));
        let quiet = tokio::time::timeout(Duration::from_millis(100), w.changes(Vec::new())).await;
        assert!(quiet.is_err());
    }
}
