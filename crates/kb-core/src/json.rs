//! MessagePack → JSON, byte-identical to Fluent Bit's `flb_msgpack_to_json` wherever Fluent Bit
//! produces valid JSON, and valid JSON where it does not (spec `kinesis_streams.md` §2.2).
//!
//! This is the per-record hot path, so the msgpack is walked header by header straight from the
//! byte slice with [`crate::msgpack::Cursor`] (no `rmpv::Value` tree) and the common case
//! allocates nothing per value: duplicate-key bookkeeping lives in thread-local scratch vectors
//! that are reused across calls.

use std::cell::Cell;
use std::fmt::Write as _;

use crate::msgpack::{Cursor, Head, MsgpackError};

/// Containers nested deeper than this are refused, so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 512;

/// Output options; mirrors Fluent Bit's service settings that affect JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonOptions {
    /// `json.escape_unicode`: write every non-ASCII code point as `\uXXXX` (default true).
    pub escape_unicode: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        // Fluent Bit's default (`src/flb_config.c`): escaping on.
        JsonOptions {
            escape_unicode: true,
        }
    }
}

/// Why a msgpack value could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The input ends in the middle of a value.
    #[error("msgpack input ends in the middle of a value")]
    Truncated,
    /// A byte that is not a msgpack marker (only 0xc1) where a value should start.
    #[error("invalid msgpack marker byte 0x{0:02x}")]
    InvalidMarker(u8),
    /// Arrays/maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl From<MsgpackError> for JsonError {
    #[inline]
    fn from(e: MsgpackError) -> Self {
        match e {
            MsgpackError::Truncated => JsonError::Truncated,
            MsgpackError::Unexpected(m) => JsonError::InvalidMarker(m),
        }
    }
}

/// Counters the caller turns into (rate-limited) warnings; accumulated across calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonStats {
    /// Invalid UTF-8 sequences replaced by U+FFFD (one per maximal invalid subsequence).
    pub invalid_utf8: u32,
}

/// Write the msgpack value at the start of `input` as JSON, appending to `out`; returns bytes consumed.
///
/// On error `out` may hold partial output: the caller truncates it back to its previous
/// length. Values of duplicate map keys that end up dropped are still converted first, so
/// their invalid UTF-8 is counted in `stats` too.
pub fn write_json(
    input: &[u8],
    out: &mut Vec<u8>,
    opts: &JsonOptions,
    stats: &mut JsonStats,
) -> Result<usize, JsonError> {
    // Move the reusable scratch out of the thread-local for the call rather than borrowing it:
    // no RefCell borrow spans the recursion, and a panic merely loses the buffers.
    let mut entries = SCRATCH_ENTRIES.take();
    let mut hashes = SCRATCH_HASHES.take();
    entries.clear();
    let mut w = Writer {
        input,
        cur: Cursor::new(input),
        escape_unicode: opts.escape_unicode,
        stats,
        entries: &mut entries,
        hashes: &mut hashes,
        key_depth: 0,
    };
    let result = w.value(out, 0).map(|()| w.cur.position());
    // Keep the capacity for the next record, but do not pin an unusually large allocation.
    if entries.capacity() <= 4096 {
        SCRATCH_ENTRIES.set(entries);
    }
    if hashes.capacity() <= 4096 {
        SCRATCH_HASHES.set(hashes);
    }
    result
}

/// Same, for a string/bin payload only (used by log_key later): escapes a raw byte string as JSON string content including quotes.
pub fn write_json_string(
    bytes: &[u8],
    out: &mut Vec<u8>,
    opts: &JsonOptions,
    stats: &mut JsonStats,
) {
    write_string(bytes, out, opts.escape_unicode, stats);
}

/// Write a double the way Fluent Bit does (`%.1f` if integral within i64, else `%.16g`); NaN/±Inf → `null`.
pub fn write_f64(v: f64, out: &mut Vec<u8>) {
    if !v.is_finite() {
        // FB writes `nan`/`inf`, which is not JSON.
        out.extend_from_slice(b"null");
        return;
    }
    // FB tests `v == (double)(long long)v`; this is the same test without the C cast's UB.
    if v == v.trunc() && (-9223372036854775808.0..9223372036854775808.0).contains(&v) {
        // `%.1f` of an integral value in i64 range: the integer, then ".0"; `as` is exact here.
        if v.is_sign_negative() && v == 0.0 {
            out.extend_from_slice(b"-0.0");
        } else {
            write_i64(v as i64, out);
            out.extend_from_slice(b".0");
        }
        return;
    }
    write_g16(v, out);
}

/// Length of the msgpack value at the start of `input`, without decoding it (no depth limit).
pub fn skip_value(input: &[u8]) -> Result<usize, JsonError> {
    Ok(Cursor::new(input).skip_value()?.len())
}

// ---------------------------------------------------------------------------------------------
// The writer

/// One written map entry, remembered until the map is closed to find duplicate keys.
#[derive(Clone, Copy)]
struct Entry {
    /// The key's identity (see [`KeyId`]), recorded while writing so the duplicate check
    /// never re-parses headers.
    key: KeyId,
    /// Where the entry's `"key":value` text starts in `out`.
    out_start: usize,
}

thread_local! {
    static SCRATCH_ENTRIES: Cell<Vec<Entry>> = const { Cell::new(Vec::new()) };
    static SCRATCH_HASHES: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
}

/// Up to this many keys, duplicates are looked for by comparing every pair; above it, by
/// sorting key hashes (cheaper than n²/2 comparisons, and allocation-free with the scratch).
const QUADRATIC_MAX: usize = 16;

struct Writer<'a, 's> {
    input: &'a [u8],
    cur: Cursor<'a>,
    escape_unicode: bool,
    stats: &'s mut JsonStats,
    /// A stack shared by all nesting levels: each open map pushes its entries above its
    /// parent's and pops them when it closes.
    entries: &'s mut Vec<Entry>,
    hashes: &'s mut Vec<u64>,
    /// How many container keys enclose the value being written (see `MAX_KEY_NESTING`).
    key_depth: usize,
}

/// A map or array used as a key is written as the string of its JSON text, so every nesting
/// of such keys escapes the text again and doubles it: past this depth the key is written as
/// `"(nested key)"`, keeping a tiny hostile record from taking gigabytes (found by fuzzing).
const MAX_KEY_NESTING: usize = 3;

impl Writer<'_, '_> {
    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        if let Some(s) = self.cur.short_str() {
            write_string(s, out, self.escape_unicode, self.stats);
            return Ok(());
        }
        match self.cur.head()? {
            Head::Nil => out.extend_from_slice(b"null"),
            Head::Bool(true) => out.extend_from_slice(b"true"),
            Head::Bool(false) => out.extend_from_slice(b"false"),
            Head::Uint(v) => write_u64(v, out),
            Head::Int(v) => write_i64(v, out),
            Head::Float(v) => write_f64(v, out),
            Head::Str(s) | Head::Bin(s) => write_string(s, out, self.escape_unicode, self.stats),
            Head::Ext(_, data) => write_ext(data, out),
            Head::Array(n) => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.cur.check_count(n)?;
                out.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(out, depth + 1)?;
                }
                out.push(b']');
            }
            Head::Map(n) => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.cur.check_count(n.saturating_mul(2))?;
                self.map(n, out, depth + 1)?;
            }
        }
        Ok(())
    }

    fn map(&mut self, n: usize, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        out.push(b'{');
        let body_start = out.len();
        let base = self.entries.len();
        // Write every entry optimistically: duplicates are rare, and removing them afterwards
        // from `out` costs one memmove, while pre-scanning would re-walk every nested value.
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            let out_start = out.len();
            let key = self.key(out, depth)?;
            out.push(b':');
            self.value(out, depth)?;
            self.entries.push(Entry { key, out_start });
        }
        if n > 1 {
            self.drop_duplicates(base, body_start, out);
        }
        self.entries.truncate(base);
        out.push(b'}');
        Ok(())
    }

    /// Keys are always JSON strings: FB writes non-string keys as bare text, which is not JSON.
    fn key(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<KeyId, JsonError> {
        if let Some(s) = self.cur.short_str() {
            write_string(s, out, self.escape_unicode, self.stats);
            let end = self.cur.position();
            return Ok(KeyId {
                is_str: true,
                start: end - s.len(),
                end,
            });
        }
        let saved = self.cur.clone();
        let mut id = KeyId {
            is_str: false,
            start: saved.position(),
            end: 0,
        };
        match self.cur.head()? {
            Head::Str(s) => {
                write_string(s, out, self.escape_unicode, self.stats);
                id.is_str = true;
                id.start = self.cur.position() - s.len();
            }
            Head::Bin(b) => write_string(b, out, self.escape_unicode, self.stats),
            Head::Ext(_, data) => write_ext(data, out),
            // Their text needs no escaping (digits, sign, '.', 'e', letters).
            Head::Nil => out.extend_from_slice(b"\"null\""),
            Head::Bool(b) => out.extend_from_slice(if b { b"\"true\"" } else { b"\"false\"" }),
            Head::Uint(v) => {
                out.push(b'"');
                write_u64(v, out);
                out.push(b'"');
            }
            Head::Int(v) => {
                out.push(b'"');
                write_i64(v, out);
                out.push(b'"');
            }
            Head::Float(v) => {
                out.push(b'"');
                write_f64(v, out);
                out.push(b'"');
            }
            // Rare: render the container's JSON text, then write that text as a string.
            Head::Array(_) | Head::Map(_) => {
                self.cur = saved;
                if self.key_depth >= MAX_KEY_NESTING {
                    self.cur.skip_value()?;
                    out.extend_from_slice(b"\"(nested key)\"");
                } else {
                    self.key_depth += 1;
                    let mut text = Vec::new();
                    let written = self.value(&mut text, depth);
                    self.key_depth -= 1;
                    written?;
                    // `text` is valid UTF-8 already, so this cannot count invalid UTF-8 twice.
                    write_string(&text, out, self.escape_unicode, self.stats);
                }
            }
        }
        id.end = self.cur.position();
        Ok(id)
    }

    /// Keep only the last occurrence of each key, at its own position (FB's
    /// `key_exists_in_map`, applied at every level).
    fn drop_duplicates(&mut self, base: usize, body_start: usize, out: &mut Vec<u8>) {
        let entries = &self.entries[base..];
        let input = self.input;
        let ident = |e: &Entry| (e.key.is_str, &input[e.key.start..e.key.end]);
        let n = entries.len();

        let maybe_dup = if n <= QUADRATIC_MAX {
            // Compare a word per key first (its length, kind, first and last byte): keys of
            // one record almost always differ there, so the byte comparisons are skipped.
            let mut sigs = [0u64; QUADRATIC_MAX];
            for (sig, e) in sigs.iter_mut().zip(entries) {
                let (is_str, b) = ident(e);
                let edge = match b {
                    [] => 0,
                    [first, .., last] => (*first as u64) << 8 | *last as u64,
                    [only] => (*only as u64) << 8 | *only as u64,
                };
                *sig = (b.len() as u64) << 17 | (is_str as u64) << 16 | edge;
            }
            (0..n).any(|i| {
                (i + 1..n).any(|j| sigs[i] == sigs[j] && ident(&entries[i]) == ident(&entries[j]))
            })
        } else {
            let hashes = &mut *self.hashes;
            hashes.clear();
            hashes.extend(entries.iter().map(|e| hash_identity(ident(e))));
            hashes.sort_unstable();
            hashes.windows(2).any(|w| w[0] == w[1])
        };
        if !maybe_dup {
            return;
        }

        // Slow path (a duplicate, or a hash collision): decide exactly which entries to keep.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| ident(&entries[a]).cmp(&ident(&entries[b])).then(a.cmp(&b)));
        let mut keep = vec![true; n];
        for w in order.windows(2) {
            if ident(&entries[w[0]]) == ident(&entries[w[1]]) {
                keep[w[0]] = false; // a later entry has the same key
            }
        }
        if keep.iter().all(|&k| k) {
            return;
        }

        // Compact the kept `"key":value` texts leftwards over the dropped ones.
        let body_end = out.len();
        let mut dst = body_start;
        let mut first = true;
        for i in 0..n {
            let src = entries[i].out_start;
            // Each next entry starts right after the ',' that ends this one.
            let end = entries.get(i + 1).map_or(body_end, |e| e.out_start - 1);
            if !keep[i] {
                continue;
            }
            if !first {
                out[dst] = b',';
                dst += 1;
            }
            first = false;
            out.copy_within(src..end, dst);
            dst += end - src;
        }
        out.truncate(dst);
    }
}

/// What makes two keys "the same": string keys by their bytes (as FB compares them, whatever
/// the str8/16/32 encoding), any other key by its raw msgpack encoding (FB never merges those;
/// we do, so the JSON has no duplicates from e.g. two `1` keys).
#[derive(Clone, Copy)]
struct KeyId {
    is_str: bool,
    /// The string payload, or the whole encoded key, as a range of the input.
    start: usize,
    end: usize,
}

/// A cheap non-cryptographic hash (FxHash-style, 8 bytes at a time); collisions only cost the
/// exact slow path.
fn hash_identity((is_str, bytes): (bool, &[u8])) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h: u64 = (bytes.len() as u64) ^ ((is_str as u64) << 63);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().expect("chunk of 8"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

// ---------------------------------------------------------------------------------------------
// Scalars

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Ext as a JSON string whose text is `\xNN` per data byte (FB writes an unescaped backslash
/// and sign-extends bytes ≥ 0x80, which is not JSON).
fn write_ext(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() * 5 + 2);
    out.push(b'"');
    for &b in data {
        out.extend_from_slice(&[
            b'\\',
            b'\\',
            b'x',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]);
    }
    out.push(b'"');
}

fn write_u64(mut v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(v: i64, out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(v.unsigned_abs(), out);
}

/// A fixed stack buffer for `core::fmt` output, so float formatting does not allocate.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// C's `%.16g` for a finite value. Rust's `{:.15e}` is correctly rounded (ties to even, like
/// glibc), which gives the 16 significant digits and the exponent X; `%g` then uses fixed
/// notation if -4 <= X < 16, and strips trailing zeros (and a bare '.') in both forms.
fn write_g16(v: f64, out: &mut Vec<u8>) {
    let mut sb = StackBuf {
        buf: [0; 40],
        len: 0,
    };
    write!(sb, "{v:.15e}").expect("a formatted f64 fits in 40 bytes");
    let s = &sb.buf[..sb.len];
    // Shape: [-]d.ddddddddddddddde[-]X
    let (neg, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let e_pos = s.iter().position(|&b| b == b'e').expect("exponent");
    let mut digits = [0u8; 16];
    digits[0] = s[0];
    digits[1..].copy_from_slice(&s[2..e_pos]);
    let exp_text = &s[e_pos + 1..];
    let (exp_neg, exp_digits) = match exp_text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, exp_text),
    };
    let exp_abs = exp_digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + (d - b'0') as i32);
    let exp = if exp_neg { -exp_abs } else { exp_abs };

    // Significant digits after trailing-zero stripping (at least the leading one).
    let sig = 16 - digits[1..].iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &digits[..sig];

    if neg {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if sig <= int_len {
                out.extend_from_slice(digits);
                out.resize(out.len() + int_len - sig, b'0');
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-exp - 1) as usize, b'0');
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits[0]);
        if sig > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp_neg { b'-' } else { b'+' });
        if exp_abs < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(exp_digits);
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

/// Bytes that stop the copy loop: C0 controls, '"', '\\', DEL; and non-ASCII in escape mode.
const fn stop_table(non_ascii: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20
            || i == b'"' as usize
            || i == b'\\' as usize
            || i == 0x7f
            || (non_ascii && i >= 0x80);
        i += 1;
    }
    t
}

static STOP_ESCAPE: [bool; 256] = stop_table(true);

/// The letter of the two-byte escape of an ASCII byte (`"` → `\"`), 0 where it takes `\u00XX`.
static SHORT_ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};
static STOP_RAW: [bool; 256] = stop_table(false);

fn write_string(bytes: &[u8], out: &mut Vec<u8>, escape_unicode: bool, stats: &mut JsonStats) {
    out.reserve(bytes.len() + 2);
    // Keys and most field values of a structured record are short and plain: below one
    // AVX2 block, one table pass and one copy beat the block machinery's setup.
    if bytes.len() < 32 && is_plain_short(bytes) {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    // Most log text is ASCII: escaped in wide blocks up to the first non-ASCII byte, which
    // also spares a separate `is_ascii` pass over the line.
    #[cfg(target_arch = "x86_64")]
    let bytes = &bytes[escape_ascii(bytes, out)..];
    if bytes.is_ascii() {
        // Common case: no UTF-8 decoding needed at all.
        write_valid(bytes, out, escape_unicode);
    } else {
        // `utf8_chunks` splits off maximal invalid subsequences exactly as
        // `String::from_utf8_lossy` does: one U+FFFD each.
        for chunk in bytes.utf8_chunks() {
            write_valid(chunk.valid().as_bytes(), out, escape_unicode);
            if !chunk.invalid().is_empty() {
                stats.invalid_utf8 = stats.invalid_utf8.saturating_add(1);
                out.extend_from_slice(if escape_unicode {
                    b"\\ufffd"
                } else {
                    "\u{fffd}".as_bytes()
                });
            }
        }
    }
    out.push(b'"');
}

/// Whether `s` (under 32 bytes) is printable ASCII without `"` or `\`: eight bytes per
/// step, then the rest by table.
#[inline]
fn is_plain_short(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if special_bytes(w, true) != 0 {
            return false;
        }
    }
    !words.remainder().iter().any(|&b| STOP_ESCAPE[b as usize])
}

/// Escape the ASCII prefix of `s` in blocks of 32 (AVX2) or 16 (SSE2) bytes; returns where it
/// stopped: at the first non-ASCII byte, or in front of the last partial block. Everything
/// before that index has been written.
#[cfg(target_arch = "x86_64")]
#[inline]
fn escape_ascii(s: &[u8], out: &mut Vec<u8>) -> usize {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected at run time just above.
        unsafe { escape_ascii_avx2(s, out) }
    } else {
        escape_ascii_sse2(s, out)
    }
}

/// The block loop of [`escape_ascii`], for one block width. `$masks(i)` gives three bit masks
/// of `s[i..i + $width]`: its quotes and backslashes, its other bytes to escape (controls,
/// DEL), and its non-ASCII bytes. `$expand(out, i, quotes)` may write a whole block whose only
/// escapes are `quotes` and return true, or return false to leave it to the byte loop.
///
/// Plain bytes are not copied block by block: a run of them is copied in one piece when an
/// escape (or the end) is reached, and a short run as one fixed-size store cut back.
#[cfg(target_arch = "x86_64")]
macro_rules! escape_ascii_blocks {
    ($s:ident, $out:ident, $width:expr, $masks:expr, $expand:expr) => {{
        let s: &[u8] = $s;
        let out: &mut Vec<u8> = $out;
        let copy = |out: &mut Vec<u8>, from: usize, to: usize| match s.get(from..from + $width) {
            Some(block) if to - from <= $width => {
                let len = out.len();
                out.extend_from_slice(block);
                out.truncate(len + (to - from));
            }
            _ => out.extend_from_slice(&s[from..to]),
        };
        let mut i = 0;
        // The first byte not yet written.
        let mut run = 0;
        while i + $width <= s.len() {
            let (quotes, others, high): (u32, u32, u32) = $masks(i);
            let mut special = (quotes | others) & !high;
            if special == 0 && high == 0 {
                i += $width;
                continue;
            }
            if high == 0 && others == 0 {
                copy(out, run, i);
                if $expand(&mut *out, i, quotes) {
                    i += $width;
                    run = i;
                    continue;
                }
                run = i;
            }
            let stop = high != 0;
            if stop {
                // Only the escapes in front of the first non-ASCII byte.
                special &= (1u32 << high.trailing_zeros()) - 1;
            }
            while special != 0 {
                let j = i + special.trailing_zeros() as usize;
                special &= special - 1;
                copy(out, run, j);
                match SHORT_ESCAPE[s[j] as usize] {
                    0 => write_u_escape(s[j] as u16, out),
                    c => out.extend_from_slice(&[b'\\', c]),
                }
                run = j + 1;
            }
            if stop {
                i += high.trailing_zeros() as usize;
                break;
            }
            i += $width;
        }
        copy(out, run, i);
        i
    }};
}

/// For each byte mask `m` of an 8-byte group, the `pshufb` indexes that write the group with a
/// backslash (lane 8 of the source) in front of every byte flagged in `m`; 0x80 writes zero.
#[cfg(target_arch = "x86_64")]
static BACKSLASH_BEFORE: [[u8; 16]; 256] = {
    let mut t = [[0x80u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let mut p = 0;
        let mut k = 0;
        while k < 8 {
            if m >> k & 1 == 1 {
                t[m][p] = 8;
                p += 1;
            }
            t[m][p] = k as u8;
            p += 1;
            k += 1;
        }
        m += 1;
    }
    t
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn escape_ascii_avx2(s: &[u8], out: &mut Vec<u8>) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm_loadl_epi64, _mm_loadu_si128, _mm_or_si128,
        _mm_set_epi8, _mm_shuffle_epi8, _mm_storeu_si128,
    };
    // JSON inside JSON (a Kubernetes line under `log`) has a quote every few bytes: such a
    // block is written in four 8-byte groups, each one table lookup and one shuffle, with no
    // branch per quote.
    let expand = |out: &mut Vec<u8>, i: usize, quotes: u32| {
        // Four groups of at most 16 bytes, each stored as 16: at most 48 + 16 bytes written.
        out.reserve(64);
        let backslash = _mm_set_epi8(0, 0, 0, 0, 0, 0, 0, b'\\' as i8, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut written = 0;
        for g in 0..4 {
            let m = (quotes >> (8 * g)) as u8;
            // SAFETY: the group s[i + 8g..][..8] lies in the block the loop checked; the 16-byte
            // store lands within the 64 bytes reserved above; AVX2 (so SSSE3) is enabled here.
            unsafe {
                let group = _mm_loadl_epi64(s.as_ptr().add(i + 8 * g).cast::<__m128i>());
                let index = _mm_loadu_si128(BACKSLASH_BEFORE[m as usize].as_ptr().cast());
                let bytes = _mm_shuffle_epi8(_mm_or_si128(group, backslash), index);
                let dst = out.as_mut_ptr().add(out.len() + written);
                _mm_storeu_si128(dst.cast(), bytes);
            }
            written += 8 + m.count_ones() as usize;
        }
        // SAFETY: the first `written` bytes after the length were just initialised.
        unsafe { out.set_len(out.len() + written) };
        true
    };
    escape_ascii_blocks!(
        s,
        out,
        32,
        |i: usize| {
            // SAFETY: the loop only asks for whole blocks inside `s`; AVX2 is enabled here.
            unsafe {
                let v = _mm256_loadu_si256(s.as_ptr().add(i).cast());
                let quotes = _mm256_or_si256(
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8)),
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8)),
                );
                // Signed compare: bytes >= 0x80 are below 0x20 too; the caller drops them.
                let others = _mm256_or_si256(
                    _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v),
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f)),
                );
                let high = _mm256_movemask_epi8(v) as u32;
                (
                    _mm256_movemask_epi8(quotes) as u32,
                    _mm256_movemask_epi8(others) as u32 & !high,
                    high,
                )
            }
        },
        expand
    )
}

#[cfg(target_arch = "x86_64")]
fn escape_ascii_sse2(s: &[u8], out: &mut Vec<u8>) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    escape_ascii_blocks!(
        s,
        out,
        16,
        |i: usize| {
            // SAFETY: SSE2 is in the x86_64 baseline; the loop only asks for whole blocks in `s`.
            unsafe {
                let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
                let quotes = _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                );
                let others = _mm_or_si128(
                    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)),
                );
                let high = _mm_movemask_epi8(v) as u32;
                (
                    _mm_movemask_epi8(quotes) as u32,
                    _mm_movemask_epi8(others) as u32 & !high,
                    high,
                )
            }
        },
        // No byte shuffle in SSE2: every escape goes through the byte loop.
        |_: &mut Vec<u8>, _: usize, _: u32| false
    )
}

/// Escape valid UTF-8.
fn write_valid(s: &[u8], out: &mut Vec<u8>, escape_unicode: bool) {
    #[cfg(target_arch = "x86_64")]
    let i = escape_blocks(s, out, escape_unicode);
    #[cfg(not(target_arch = "x86_64"))]
    let i = 0;
    write_valid_words(s, i, out, escape_unicode);
}

/// Escape `s` sixteen bytes at a time with SSE2 (part of every x86_64), up to the last whole
/// block; returns where it stopped. One compare pass gives a 16-bit mask of the bytes to
/// escape, and every escape in the block is found from the mask: a quote-dense line (JSON
/// inside JSON) costs one scan per block, not one per escape.
#[cfg(target_arch = "x86_64")]
fn escape_blocks(s: &[u8], out: &mut Vec<u8>, escape_unicode: bool) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut i = 0;
    while i + 16 <= s.len() {
        // SAFETY: SSE2 is in the x86_64 baseline; the load reads s[i..i + 16], in bounds.
        let mask = unsafe {
            let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
            let named = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)),
            );
            // Signed: bytes >= 0x80 compare below 0x20 too; `high` tells them apart.
            let below_space = _mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20))) as u32;
            let high = _mm_movemask_epi8(v) as u32;
            let mut m = _mm_movemask_epi8(named) as u32 | (below_space & !high);
            if escape_unicode {
                m |= high;
            }
            m
        };
        let end = i + 16;
        if mask == 0 {
            out.extend_from_slice(&s[i..end]);
            i = end;
            continue;
        }
        let mut m = mask;
        let mut pos = i;
        while m != 0 {
            let j = i + m.trailing_zeros() as usize;
            m &= m - 1;
            if j < pos {
                continue; // a continuation byte of a character already escaped
            }
            copy_run(s, pos, j, out);
            pos = escape_at(s, j, out);
        }
        if pos < end {
            copy_run(s, pos, end, out);
            pos = end;
        }
        // A multi-byte character may end past the block.
        i = pos;
    }
    i
}

/// Append `s[from..to]` (at most 16 bytes): a fixed 16-byte copy cut back when the input has
/// room for it, so short runs between escapes cost no memcpy call.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn copy_run(s: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
    match s.get(from..from + 16) {
        Some(block) => {
            let len = out.len();
            out.extend_from_slice(block);
            out.truncate(len + (to - from));
        }
        None => out.extend_from_slice(&s[from..to]),
    }
}

/// Escape `s[start..]` eight bytes at a time (SWAR), then byte by byte.
fn write_valid_words(s: &[u8], start: usize, out: &mut Vec<u8>, escape_unicode: bool) {
    // A log line quoted inside JSON has a quote every dozen bytes or so, so the cost per
    // escaped byte matters as much as the scan: the plain bytes in front of it are written as
    // a whole word and cut back (a fixed-size store, never a memcpy call).
    let mut i = start;
    while let Some(word) = s.get(i..i + 8) {
        let word: [u8; 8] = word.try_into().expect("8 bytes");
        let mask = special_bytes(u64::from_le_bytes(word), escape_unicode);
        let len = out.len();
        out.extend_from_slice(&word);
        if mask == 0 {
            i += 8;
            continue;
        }
        let plain = (mask.trailing_zeros() / 8) as usize;
        out.truncate(len + plain);
        i = escape_at(s, i + plain, out);
    }
    let stop = if escape_unicode {
        &STOP_ESCAPE
    } else {
        &STOP_RAW
    };
    while let Some(&b) = s.get(i) {
        if stop[b as usize] {
            i = escape_at(s, i, out);
        } else {
            out.push(b);
            i += 1;
        }
    }
}

/// Write the escape of the character at `s[i]` (a byte the stop tables stop at); returns the
/// index after it.
#[inline(always)]
fn escape_at(s: &[u8], i: usize, out: &mut Vec<u8>) -> usize {
    let b = s[i];
    if b < 0x80 {
        // A table instead of a `match`: the match compiled to a jump table whose mispredictions
        // were a third of the escaping time on quote-dense lines.
        match SHORT_ESCAPE[b as usize] {
            0 => write_u_escape(b as u16, out),
            c => out.extend_from_slice(&[b'\\', c]),
        }
        return i + 1;
    }
    // Valid UTF-8 is guaranteed here, so the lead byte gives the length.
    let (len, init) = match b {
        0xc0..=0xdf => (2, (b & 0x1f) as u32),
        0xe0..=0xef => (3, (b & 0x0f) as u32),
        _ => (4, (b & 0x07) as u32),
    };
    let cp = s[i + 1..i + len]
        .iter()
        .fold(init, |acc, &c| (acc << 6) | (c & 0x3f) as u32);
    if cp >= 0x10000 {
        let c = cp - 0x10000;
        write_u_escape(0xd800 | (c >> 10) as u16, out);
        write_u_escape(0xdc00 | (c & 0x3ff) as u16, out);
    } else {
        write_u_escape(cp as u16, out);
    }
    i + len
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` (little-endian) that [`STOP_ESCAPE`]/[`STOP_RAW`] would
/// stop at. Bytes above the first such byte may be flagged wrongly (borrows carry upwards),
/// the lowest flag is always exact, and the caller only uses the lowest.
#[inline]
fn special_bytes(w: u64, non_ascii: bool) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = zero_byte(w ^ (ONES * b'"' as u64));
    let backslash = zero_byte(w ^ (ONES * b'\\' as u64));
    let del = zero_byte(w ^ (ONES * 0x7f));
    let high = if non_ascii { w } else { 0 };
    (control | quote | backslash | del | high) & HIGHS
}

#[inline]
fn write_u_escape(u: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(u >> 12) as usize],
        HEX[((u >> 8) & 15) as usize],
        HEX[((u >> 4) & 15) as usize],
        HEX[(u & 15) as usize],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both block widths of the ASCII escaper, followed by the general path for what they leave,
    /// write what the word-at-a-time path writes alone (the proptests cover only the width this
    /// machine picks).
    #[cfg(target_arch = "x86_64")]
    type Escaper = fn(&[u8], &mut Vec<u8>) -> usize;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn ascii_block_escapers_match_the_word_path() {
        let pieces: [&[u8]; 12] = [
            b"a",
            b"plain text of some length, longer than one block of 32",
            b"\"",
            b"\\",
            b"\n",
            b"\x00",
            b"\x1f",
            b"\x7f",
            b" ",
            "é".as_bytes(),
            "😀".as_bytes(),
            b"0123456789abcdef",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let mut s = Vec::new();
            for _ in 0..rng.usize(0..24) {
                s.extend_from_slice(pieces[rng.usize(0..pieces.len())]);
            }
            for escape_unicode in [true, false] {
                let mut want = Vec::new();
                write_valid_words(&s, 0, &mut want, escape_unicode);
                let blockwise: [Escaper; 2] = [escape_ascii_sse2, |s, out| {
                    // SAFETY: only called when the CPU has AVX2.
                    unsafe { escape_ascii_avx2(s, out) }
                }];
                let widths = if std::arch::is_x86_feature_detected!("avx2") {
                    2
                } else {
                    1
                };
                for escape in &blockwise[..widths] {
                    let mut got = Vec::new();
                    let i = escape(&s, &mut got);
                    assert!(s[..i].is_ascii());
                    write_valid(&s[i..], &mut got, escape_unicode);
                    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&s));
                }
            }
        }
    }

    fn g16(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_f64_forms() {
        assert_eq!(g16(1.0), "1.0");
        assert_eq!(g16(-0.0), "-0.0");
        assert_eq!(g16(0.0), "0.0");
        assert_eq!(g16(1e15), "1000000000000000.0");
        assert_eq!(g16(-9223372036854775808.0), "-9223372036854775808.0");
        assert_eq!(g16(9223372036854775808.0), "9.223372036854776e+18");
        assert_eq!(g16(0.1), "0.1");
        assert_eq!(g16(1e20), "1e+20");
        assert_eq!(g16(1.5e-7), "1.5e-07");
        assert_eq!(g16(0.0001), "0.0001");
        assert_eq!(g16(0.00001234), "1.234e-05");
        assert_eq!(g16(1e300), "1e+300");
        assert_eq!(g16(-2.5), "-2.5");
        assert_eq!(g16(0.1f32 as f64), "0.1000000014901161");
        assert_eq!(g16(f64::NAN), "null");
        assert_eq!(g16(f64::INFINITY), "null");
        assert_eq!(g16(f64::NEG_INFINITY), "null");
        assert_eq!(g16(5e-324), "4.940656458412465e-324");
        // Ties at the 16th digit round to even, like glibc.
        assert_eq!(g16(1e15 + 0.5), "1000000000000000");
        assert_eq!(g16(1e15 + 1.5), "1000000000000002");
    }

    #[test]
    fn json_skip_value_counts() {
        // [1, {"a": [nil]}, "xy"]
        let v = [
            0x93, 0x01, 0x81, 0xa1, b'a', 0x91, 0xc0, 0xa2, b'x', b'y', 0xff,
        ];
        assert_eq!(skip_value(&v), Ok(10));
        assert_eq!(skip_value(&v[..9]), Err(JsonError::Truncated));
        assert_eq!(skip_value(&[0xc1]), Err(JsonError::InvalidMarker(0xc1)));
        assert_eq!(
            skip_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(JsonError::Truncated)
        );
    }

    #[test]
    fn json_hash_path_finds_duplicates() {
        // 40 distinct keys plus a repeat of the first: exercises the sorted-hash path.
        let mut m = vec![0xde, 0x00, 41];
        for i in 0..40u8 {
            m.extend_from_slice(&[0xa2, b'k', b'0' + i, i]);
        }
        m.extend_from_slice(&[0xa2, b'k', b'0', 0x7f]);
        let mut out = Vec::new();
        let mut st = JsonStats::default();
        write_json(&m, &mut out, &JsonOptions::default(), &mut st).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("{\"k1\":1,"), "{s}");
        assert!(s.ends_with(",\"k0\":127}"), "{s}");
        assert_eq!(s.matches("\"k0\"").count(), 1);
    }
}
