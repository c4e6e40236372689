//! Sealed chunks (an immutable run of events for one tag, shared by every route) and the
//! per-route delivery progress that survives retries.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::input::MemAccount;
use crate::metrics::InputMetrics;
use crate::store::{Journal, StoredChunk};

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
    /// The chunk's file when its input buffers on the filesystem.
    pub(crate) stored: Option<Arc<StoredChunk>>,
    /// The input's gauges, which count this chunk as up and busy while it lives.
    gauges: Option<Arc<InputMetrics>>,
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
            stored: None,
            gauges: None,
        }
    }

    /// A chunk whose bytes are already charged to `account` (appended by an input, or
    /// loaded from its file), counted in `gauges` while it is in memory.
    pub(crate) fn with_account(
        tag: Arc<str>,
        data: Bytes,
        records: usize,
        input: Arc<str>,
        account: Arc<MemAccount>,
        stored: Option<Arc<StoredChunk>>,
        gauges: Arc<InputMetrics>,
    ) -> Self {
        gauges.chunk_up(data.len());
        if let Some(s) = &stored {
            s.store.chunk_up();
        }
        Chunk {
            id: NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed),
            tag,
            data,
            records,
            input,
            created: Instant::now(),
            account: Some(account),
            stored,
            gauges: Some(gauges),
        }
    }

    /// Whether the input that produced it is over its memory bound.
    pub(crate) fn account_is_over(&self) -> bool {
        self.account.as_ref().is_some_and(|a| a.is_over())
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
        if let Some(g) = &self.gauges {
            g.chunk_released(self.data.len());
        }
        // The file stays: it is deleted only when every route settled it.
        if let Some(s) = &self.stored {
            s.store.chunk_released();
        }
    }
}

/// Which records of a chunk one route has already delivered.
///
/// Kept across retries, so a retry sends only what is still pending. Records are numbered by
/// their position in the chunk. A bitset rather than a prefix because Kinesis accepts and
/// rejects individual entries anywhere in a request.
#[derive(Debug, Clone)]
pub struct Progress {
    words: Vec<u64>,
    total: usize,
    done: usize,
    dropped: usize,
    /// Where [`Progress::checkpoint`] persists it (filesystem-buffered chunks only).
    journal: Option<Journal>,
}

impl PartialEq for Progress {
    fn eq(&self, o: &Self) -> bool {
        self.words == o.words && self.total == o.total && self.dropped == o.dropped
    }
}

impl Eq for Progress {}

impl Progress {
    /// Nothing delivered yet of `total` records.
    pub fn new(total: usize) -> Self {
        Progress {
            words: vec![0; total.div_ceil(64)],
            total,
            done: 0,
            dropped: 0,
            journal: None,
        }
    }

    /// Progress read back from a chunk file: `words` is the saved bitset.
    pub fn restore(total: usize, mut words: Vec<u64>, dropped: usize) -> Self {
        words.resize(total.div_ceil(64), 0);
        if !total.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (total % 64)) - 1;
            }
        }
        let done = words.iter().map(|w| w.count_ones() as usize).sum();
        Progress {
            words,
            total,
            done,
            dropped: dropped.min(done),
            journal: None,
        }
    }

    pub(crate) fn attach_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// Persist what was marked since the last checkpoint, when the chunk lives in a file;
    /// a no-op otherwise. Outputs call it after each answer that accepted records, so a
    /// crash re-sends at most the requests in flight.
    pub fn checkpoint(&mut self) {
        let Progress {
            words,
            total,
            done,
            dropped,
            journal,
        } = self;
        if let Some(j) = journal {
            j.save(*done, *total, *dropped, words);
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
    fn restored_progress_counts_its_bits() {
        let p = Progress::restore(70, vec![0b1011, u64::MAX], 1);
        assert_eq!(p.done_count(), 3 + 6);
        assert!(p.is_done(69) && !p.is_done(2));
        assert_eq!(Progress::restore(3, vec![], 0).pending_count(), 3);
    }

    #[test]
    fn empty_progress_is_complete() {
        assert!(Progress::new(0).is_complete());
    }
}
