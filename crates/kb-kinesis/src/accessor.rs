//! `partition_key` (spec §4): a record accessor (kb-core's, shared with the filters) turned
//! into a Kinesis partition key, and the random fallback key.

use kb_core::accessor::value_text;
pub use kb_core::accessor::{AccessorError, RecordAccessor, Segment};

/// Kinesis partition keys are at most this many Unicode characters.
pub const MAX_KEY_CHARS: usize = 256;

/// Length of a generated key.
pub const RANDOM_KEY_LEN: usize = 16;

/// A record accessor used as `partition_key`.
pub trait PartitionKey {
    /// Write the partition key taken from `record` (a msgpack map) into `out` (cleared
    /// first); `false` when the value is missing, null, a map, an array or empty, so the
    /// caller uses a random key. The key is cut to [`MAX_KEY_CHARS`] characters.
    fn extract(&self, record: &[u8], out: &mut String) -> bool;
}

impl PartitionKey for RecordAccessor {
    fn extract(&self, record: &[u8], out: &mut String) -> bool {
        out.clear();
        let Some(value) = self.lookup(record) else {
            return false;
        };
        if !value_text(value, out) {
            out.clear();
            return false;
        }
        truncate_chars(out, MAX_KEY_CHARS);
        !out.is_empty()
    }
}

/// Keep the first `max` characters (never splits a UTF-8 sequence).
fn truncate_chars(s: &mut String, max: usize) {
    if s.len() <= max {
        return; // fewer bytes than the limit: fewer characters too
    }
    if let Some((idx, _)) = s.char_indices().nth(max) {
        s.truncate(idx);
    }
}

/// A fresh random partition key of `len` characters of `[0-9A-Za-z]` (cleared first).
pub fn random_key_of(rng: &mut fastrand::Rng, out: &mut String, len: usize) {
    if len == RANDOM_KEY_LEN {
        return random_key(rng, out);
    }
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    out.clear();
    for _ in 0..len {
        out.push(char::from(ALPHABET[rng.usize(..62)]));
    }
}

/// A fresh random partition key: [`RANDOM_KEY_LEN`] characters of `[0-9A-Za-z]` (cleared first).
pub fn random_key(rng: &mut fastrand::Rng, out: &mut String) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    out.clear();
    // Eight base-62 digits from each random u64, by division by a constant (a multiply):
    // a character per random draw cost a third of filling the body. 62^8 is far below 2^64,
    // so the digits are uniform to within 1.2e-5.
    for _ in 0..RANDOM_KEY_LEN / 8 {
        let mut r = rng.u64(..);
        for _ in 0..8 {
            out.push(char::from(ALPHABET[(r % 62) as usize]));
            r /= 62;
        }
    }
}
