//! What proves that a followed file still holds the bytes read so far: its first bytes and
//! the bytes just before the read position. Checking the size alone misses a file truncated
//! and written again up to (or past) its old size between two looks (`copytruncate` followed
//! by a burst of writes); such a file differs in its first bytes or in the bytes before the
//! old position, and is read again from its head.
//!
//! Files whose rewritten content is byte for byte the same at both places (a file of identical
//! lines) cannot be told apart; nothing short of reading the whole file could.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// How many of a file's first bytes are remembered.
pub const HEAD_LEN: usize = 256;
/// How many bytes before the read position are remembered.
pub const TAIL_LEN: usize = 256;

/// The bytes that identify a position in a file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proof {
    /// The file's first bytes (at most [`HEAD_LEN`], none past the position).
    pub head: Vec<u8>,
    /// The bytes just before the position (at most [`TAIL_LEN`]).
    pub tail: Vec<u8>,
}

/// Read exactly `buf.len()` bytes at `pos`, or fewer at the end of the file.
pub fn read_full(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Proof {
    /// The proof of position `pos` of `file` as it is now (shorter when the file is).
    pub fn read(file: &File, pos: u64) -> io::Result<Proof> {
        let head_len = HEAD_LEN.min(usize::try_from(pos).unwrap_or(usize::MAX));
        let mut head = vec![0; head_len];
        let n = read_full(file, &mut head, 0)?;
        head.truncate(n);
        let tail_len = TAIL_LEN.min(usize::try_from(pos).unwrap_or(usize::MAX));
        let mut tail = vec![0; tail_len];
        let n = read_full(file, &mut tail, pos - tail_len as u64)?;
        tail.truncate(n);
        Ok(Proof { head, tail })
    }

    /// Whether `file` still holds these bytes for position `pos`.
    pub fn holds(&self, file: &File, pos: u64) -> io::Result<bool> {
        if (self.tail.len() as u64) > pos {
            return Ok(false);
        }
        Ok(matches(file, &self.head, 0)?
            && matches(file, &self.tail, pos - self.tail.len() as u64)?)
    }
}

/// Whether `file` holds `want` at `pos`.
pub fn matches(file: &File, want: &[u8], pos: u64) -> io::Result<bool> {
    if want.is_empty() {
        return Ok(true);
    }
    let mut buf = [0u8; 512];
    let mut at = 0;
    // Proofs are never longer than the buffer, but a caller's slice may be.
    while at < want.len() {
        let part = &want[at..want.len().min(at + buf.len())];
        let n = read_full(file, &mut buf[..part.len()], pos + at as u64)?;
        if n < part.len() || &buf[..n] != part {
            return Ok(false);
        }
        at += part.len();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn proof_of_a_short_position_is_the_bytes_before_it() {
        let (_t, f) = file_with(b"ab\ncd\nef");
        let p = Proof::read(&f, 6).unwrap();
        assert_eq!(p.head, b"ab\ncd\n");
        assert_eq!(p.tail, b"ab\ncd\n");
        assert!(p.holds(&f, 6).unwrap());
        assert!(!p.holds(&f, 5).unwrap());
        assert_eq!(Proof::read(&f, 0).unwrap(), Proof::default());
    }

    #[test]
    fn rewritten_content_is_told_apart_even_at_the_same_size() {
        let lines: String = (0..100).map(|i| format!("{{\"seq\":{i:05}}}\n")).collect();
        let (t, f) = file_with(lines.as_bytes());
        let pos = lines.len() as u64;
        let p = Proof::read(&f, pos).unwrap();
        assert_eq!(p.head.len(), HEAD_LEN);
        assert_eq!(p.tail.len(), TAIL_LEN);
        assert!(p.holds(&f, pos).unwrap());
        let again: String = (100..200)
            .map(|i| format!("{{\"seq\":{i:05}}}\n"))
            .collect();
        assert_eq!(again.len(), lines.len());
        std::fs::write(t.path(), again).unwrap();
        assert!(!p.holds(&f, pos).unwrap());
        // Truncated below the position: the tail cannot be read whole.
        std::fs::write(t.path(), &lines[..10]).unwrap();
        assert!(!p.holds(&f, pos).unwrap());
    }

    #[test]
    fn long_slices_are_compared_in_parts() {
        let data = vec![7u8; 3000];
        let (_t, f) = file_with(&data);
        assert!(matches(&f, &data[..2000], 500).unwrap());
        let mut other = data[..2000].to_vec();
        other[1999] = 8;
        assert!(!matches(&f, &other, 500).unwrap());
        assert!(!matches(&f, &data, 1).unwrap());
    }
}
