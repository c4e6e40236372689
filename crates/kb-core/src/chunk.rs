//! Sealed chunks (an immutable run of events for one tag, shared by every route) and the
//! per-route delivery progress that survives retries.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::input::MemAccount;

/// A sealed chunk: events of one input and tag, in Fluent Bit's msgpack layout.
///
/// Shared between the routes it goes to (`Arc<Chunk>`); its memory is returned to the input's
/// `Mem_Buf_Limit` budget when the last route lets go of it.
#[derive(Debug)]
pub struct Chunk {
    /// Unique within the process, for logs (`chunk '<id>'`).
    pub id: u64,
    pub tag: Arc<str>,
    pub data: Bytes,
    /// Number of events in `data`.
    pub records: usize,
    /// Name of the input instance that produced it.
    pub input: Arc<str>,
    pub created: Instant,
    account: Option<Arc<MemAccount>>,
}

static NEXT_CHUNK_ID: AtomicU64 = AtomicU64::new(1);

impl Chunk {
    /// A chunk not tied to any input's memory budget (tests, replays).
    pub fn new(tag: &str, data: impl Into<Bytes>, records: usize) -> Self {
        Chunk {
            id: NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed),
            tag: Arc::from(tag),
            data: data.into(),
            records,
            input: Arc::from(""),
            created: Instant::now(),
            account: None,
        }
    }

    pub(crate) fn with_account(
        tag: Arc<str>,
        data: Bytes,
        records: usize,
        input: Arc<str>,
        account: Arc<MemAccount>,
    ) -> Self {
        // The bytes were charged to `account` when they were appended.
        Chunk {
            id: NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed),
            tag,
            data,
            records,
            input,
            created: Instant::now(),
            account: Some(account),
        }
    }

    /// Size of the event data in bytes.
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(a) = &self.account {
            a.release(self.data.len());
        }
    }
}

/// Which records of a chunk one route has already delivered.
///
/// Kept across retries, so a retry sends only what is still pending. Records are numbered by
/// their position in the chunk. A bitset rather than a prefix because Kinesis accepts and
/// rejects individual entries anywhere in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    words: Vec<u64>,
    total: usize,
    done: usize,
    dropped: usize,
}

impl Progress {
    /// Nothing delivered yet of `total` records.
    pub fn new(total: usize) -> Self {
        Progress {
            words: vec![0; total.div_ceil(64)],
            total,
            done: 0,
            dropped: 0,
        }
    }

    /// Number of records in the chunk.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Number of records delivered (or deliberately dropped) so far.
    pub fn done_count(&self) -> usize {
        self.done
    }

    /// Number of records still to deliver.
    pub fn pending_count(&self) -> usize {
        self.total - self.done
    }

    /// Whether every record is done.
    pub fn is_complete(&self) -> bool {
        self.done == self.total
    }

    /// Whether record `i` is done. Indexes past the end count as done.
    pub fn is_done(&self, i: usize) -> bool {
        if i >= self.total {
            return true;
        }
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Mark record `i` as done (idempotent).
    pub fn mark_done(&mut self, i: usize) {
        if i >= self.total {
            return;
        }
        let w = &mut self.words[i / 64];
        let bit = 1u64 << (i % 64);
        if *w & bit == 0 {
            *w |= bit;
            self.done += 1;
        }
    }

    /// Mark record `i` as done because the output deliberately dropped it (oversize, rejected,
    /// ...); the engine counts it in `dropped_records` instead of `proc_records`.
    pub fn mark_dropped(&mut self, i: usize) {
        if !self.is_done(i) {
            self.mark_done(i);
            self.dropped += 1;
        }
    }

    /// Number of records marked with [`Progress::mark_dropped`].
    pub fn dropped_count(&self) -> usize {
        self.dropped
    }

    /// Mark records `range` as done: "records 0..k of this chunk are done".
    pub fn mark_range_done(&mut self, range: std::ops::Range<usize>) {
        for i in range.start..range.end.min(self.total) {
            self.mark_done(i);
        }
    }

    /// Mark every record as done.
    pub fn mark_all_done(&mut self) {
        self.mark_range_done(0..self.total);
    }

    /// Indexes of the records still pending, in order.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.total).filter(move |i| !self.is_done(*i))
    }

    /// The bitset as little-endian words, for persisting beside a chunk.
    pub fn as_words(&self) -> &[u64] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_tracks_scattered_records() {
        let mut p = Progress::new(130);
        p.mark_range_done(0..10);
        p.mark_done(129);
        p.mark_done(129);
        p.mark_done(500);
        assert_eq!(p.done_count(), 11);
        assert_eq!(p.pending_count(), 119);
        assert!(p.is_done(5) && !p.is_done(10) && p.is_done(129));
        assert_eq!(p.pending().next(), Some(10));
        p.mark_all_done();
        assert!(p.is_complete());
        assert_eq!(p.pending().count(), 0);
    }

    #[test]
    fn empty_progress_is_complete() {
        assert!(Progress::new(0).is_complete());
    }
}
