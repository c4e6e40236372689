//! The crate's one MessagePack decoder: a borrowed cursor that decodes a value's header
//! ([`Head`]) straight from a byte slice without allocating, plus typed readers and an
//! iterative [`Cursor::skip_value`] built on it. Events, `stdout` and the JSON writer (the
//! per-record hot path) all read msgpack through it.

/// Why a MessagePack byte sequence could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    #[error("msgpack data ends in the middle of a value")]
    Truncated,
    #[error("unexpected msgpack marker 0x{0:02x}")]
    Unexpected(u8),
}

/// One decoded msgpack header; payloads borrow from the input. Arrays and maps give only their
/// element counts: their elements follow as further values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head<'a> {
    Nil,
    Bool(bool),
    /// Positive fixint and uint 8..64.
    Uint(u64),
    /// Negative fixint and int 8..64 (whatever the value's sign).
    Int(i64),
    /// float 64, or float 32 widened to double (as msgpack-c does).
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    /// The ext type and the data bytes.
    Ext(i8, &'a [u8]),
    Array(usize),
    /// Number of key/value pairs.
    Map(usize),
}

/// A position in a MessagePack byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    /// The next marker byte, without consuming it.
    pub fn peek(&self) -> Result<u8, MsgpackError> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or(MsgpackError::Truncated)
    }

    /// Fail early on a claimed element count the unread bytes cannot hold (every value takes
    /// at least one byte), rather than after looping or allocating up to 2³² times.
    #[inline]
    pub fn check_count(&self, n: usize) -> Result<(), MsgpackError> {
        if n > self.data.len() - self.pos {
            return Err(MsgpackError::Truncated);
        }
        Ok(())
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::Truncated)?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(MsgpackError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let s = self.take(N)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.arr::<1>()?[0])
    }

    /// A big-endian length or count of `N` (1, 2 or 4) bytes.
    #[inline]
    fn len<const N: usize>(&mut self) -> Result<usize, MsgpackError> {
        Ok(self
            .arr::<N>()?
            .iter()
            .fold(0, |n, &b| (n << 8) | b as usize))
    }

    /// A str/bin payload: an `N`-byte length, then that many bytes.
    #[inline]
    fn sized<const N: usize>(&mut self) -> Result<&'a [u8], MsgpackError> {
        let n = self.len::<N>()?;
        self.take(n)
    }

    /// Ext payload after its length: the type byte, then `len` data bytes.
    #[inline]
    fn ext(&mut self, len: usize) -> Result<Head<'a>, MsgpackError> {
        let ty = self.u8()? as i8;
        Ok(Head::Ext(ty, self.take(len)?))
    }

    /// A fixstr or str8 at the cursor, consumed; `None`, with nothing consumed, for any other
    /// value (or a truncated one). The JSON writer's shortcut past [`Cursor::head`] for the
    /// keys and values most records are made of.
    #[inline]
    pub fn short_str(&mut self) -> Option<&'a [u8]> {
        let m = *self.data.get(self.pos)?;
        let (hdr, n) = match m {
            0xa0..=0xbf => (1, (m & 0x1f) as usize),
            0xd9 => (2, *self.data.get(self.pos + 1)? as usize),
            _ => return None,
        };
        let s = self.data.get(self.pos + hdr..self.pos + hdr + n)?;
        self.pos += hdr + n;
        Some(s)
    }

    /// Decode the next value's header (and a scalar's payload); on error the position is
    /// unspecified.
    #[inline]
    pub fn head(&mut self) -> Result<Head<'a>, MsgpackError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Head::Uint(m as u64),
            0x80..=0x8f => Head::Map((m & 0x0f) as usize),
            0x90..=0x9f => Head::Array((m & 0x0f) as usize),
            0xa0..=0xbf => Head::Str(self.take((m & 0x1f) as usize)?),
            0xc0 => Head::Nil,
            0xc1 => return Err(MsgpackError::Unexpected(m)),
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.sized::<1>()?),
            0xc5 => Head::Bin(self.sized::<2>()?),
            0xc6 => Head::Bin(self.sized::<4>()?),
            0xc7..=0xc9 => {
                let n = match m {
                    0xc7 => self.len::<1>()?,
                    0xc8 => self.len::<2>()?,
                    _ => self.len::<4>()?,
                };
                self.ext(n)?
            }
            0xca => Head::Float(f32::from_be_bytes(self.arr()?) as f64),
            0xcb => Head::Float(f64::from_be_bytes(self.arr()?)),
            0xcc => Head::Uint(self.u8()? as u64),
            0xcd => Head::Uint(u16::from_be_bytes(self.arr()?) as u64),
            0xce => Head::Uint(u32::from_be_bytes(self.arr()?) as u64),
            0xcf => Head::Uint(u64::from_be_bytes(self.arr()?)),
            0xd0 => Head::Int(i8::from_be_bytes(self.arr()?) as i64),
            0xd1 => Head::Int(i16::from_be_bytes(self.arr()?) as i64),
            0xd2 => Head::Int(i32::from_be_bytes(self.arr()?) as i64),
            0xd3 => Head::Int(i64::from_be_bytes(self.arr()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => Head::Str(self.sized::<1>()?),
            0xda => Head::Str(self.sized::<2>()?),
            0xdb => Head::Str(self.sized::<4>()?),
            0xdc => Head::Array(self.len::<2>()?),
            0xdd => Head::Array(self.len::<4>()?),
            0xde => Head::Map(self.len::<2>()?),
            0xdf => Head::Map(self.len::<4>()?),
            0xe0..=0xff => Head::Int(m as i8 as i64),
        })
    }

    /// Read one value's header with [`Cursor::head`] and let `pick` accept it; a header it
    /// rejects is an error naming the value's marker.
    #[inline]
    fn read<T>(&mut self, pick: impl FnOnce(Head<'a>) -> Option<T>) -> Result<T, MsgpackError> {
        let m = self.peek()?;
        pick(self.head()?).ok_or(MsgpackError::Unexpected(m))
    }

    /// Read an array header and return its length.
    pub fn read_array_len(&mut self) -> Result<usize, MsgpackError> {
        self.read(|h| match h {
            Head::Array(n) => Some(n),
            _ => None,
        })
    }

    /// Read a map header and return its number of pairs.
    pub fn read_map_len(&mut self) -> Result<usize, MsgpackError> {
        self.read(|h| match h {
            Head::Map(n) => Some(n),
            _ => None,
        })
    }

    /// Read a string (or bin) and return its bytes.
    pub fn read_str(&mut self) -> Result<&'a [u8], MsgpackError> {
        self.read(|h| match h {
            Head::Str(s) | Head::Bin(s) => Some(s),
            _ => None,
        })
    }

    /// Read an ext value: its type and data bytes.
    pub fn read_ext(&mut self) -> Result<(i8, &'a [u8]), MsgpackError> {
        self.read(|h| match h {
            Head::Ext(ty, data) => Some((ty, data)),
            _ => None,
        })
    }

    /// Read any number (int or float) as f64, for legacy timestamps.
    pub fn read_number(&mut self) -> Result<f64, MsgpackError> {
        self.read(|h| match h {
            Head::Float(v) => Some(v),
            Head::Uint(v) => Some(v as f64),
            Head::Int(v) => Some(v as f64),
            _ => None,
        })
    }

    /// Read an unsigned integer (positive fixint or uint8..64).
    pub fn read_uint(&mut self) -> Result<u64, MsgpackError> {
        self.read(|h| match h {
            Head::Uint(v) => Some(v),
            _ => None,
        })
    }

    /// Read a signed integer (any int marker; a uint only if it fits in i64).
    pub fn read_int(&mut self) -> Result<i64, MsgpackError> {
        self.read(|h| match h {
            Head::Int(v) => Some(v),
            Head::Uint(v) => i64::try_from(v).ok(),
            _ => None,
        })
    }

    /// Skip one whole value and return its bytes (no depth limit).
    pub fn skip_value(&mut self) -> Result<&'a [u8], MsgpackError> {
        let start = self.pos;
        // Iterative: `pending` counts values still to skip, so deep nesting costs no stack.
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            // Records are mostly short strings, small ints and small maps: size those from
            // their marker alone instead of decoding a `Head` (filters and the record
            // reader skip every value they pass over).
            let m = self.peek()?;
            let (size, n) = match m {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0),
                0xa0..=0xbf => (1 + (m & 0x1f) as usize, 0),
                0x80..=0x8f => (1, (m & 0x0f) as usize * 2),
                0x90..=0x9f => (1, (m & 0x0f) as usize),
                0xd9 | 0xc4 => match self.data.get(self.pos + 1) {
                    Some(&len) => (2 + len as usize, 0),
                    None => return Err(MsgpackError::Truncated),
                },
                _ => {
                    let n = match self.head()? {
                        Head::Array(n) => n,
                        Head::Map(n) => n.saturating_mul(2),
                        _ => 0,
                    };
                    // Saturating: an overflowing count fails the check just as surely.
                    pending = pending.saturating_add(n);
                    self.check_count(pending)?;
                    continue;
                }
            };
            if size > self.data.len() - self.pos {
                return Err(MsgpackError::Truncated);
            }
            self.pos += size;
            if n > 0 {
                pending += n;
                self.check_count(pending)?;
            }
        }
        Ok(&self.data[start..self.pos])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nested_values() {
        let v = rmpv::Value::Map(vec![(
            rmpv::Value::from("a"),
            rmpv::Value::Array(vec![
                rmpv::Value::from(1),
                rmpv::Value::from(-300),
                rmpv::Value::from(1.5),
                rmpv::Value::Binary(vec![1, 2, 3]),
                rmpv::Value::Ext(0, vec![0; 8]),
                rmpv::Value::Nil,
            ]),
        )]);
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        buf.push(0xc3);
        let mut c = Cursor::new(&buf);
        assert_eq!(c.skip_value().unwrap().len(), buf.len() - 1);
        assert_eq!(c.rest(), &[0xc3]);
    }

    #[test]
    fn truncated_and_bogus_counts_are_errors() {
        assert_eq!(
            Cursor::new(&[0x92, 0x01]).skip_value(),
            Err(MsgpackError::Truncated)
        );
        assert_eq!(
            Cursor::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip_value(),
            Err(MsgpackError::Truncated)
        );
        assert_eq!(
            Cursor::new(&[0xc1]).skip_value(),
            Err(MsgpackError::Unexpected(0xc1))
        );
    }

    #[test]
    fn heads_and_typed_readers() {
        let mut c = Cursor::new(&[
            0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2, // ext 8, type 0
            0xca, 0x3f, 0xc0, 0, 0, // float32 1.5
            0xd0, 0xff, // int8 -1
            0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // uint64 max
            0xc4, 0x01, 0xaa, // bin
        ]);
        assert_eq!(
            c.clone().head(),
            Ok(Head::Ext(0, &[0, 0, 0, 1, 0, 0, 0, 2]))
        );
        assert_eq!(c.read_ext(), Ok((0, &[0, 0, 0, 1, 0, 0, 0, 2][..])));
        assert_eq!(c.read_number(), Ok(1.5));
        assert_eq!(c.clone().read_uint(), Err(MsgpackError::Unexpected(0xd0)));
        assert_eq!(c.read_int(), Ok(-1));
        assert_eq!(c.clone().read_int(), Err(MsgpackError::Unexpected(0xcf)));
        assert_eq!(c.read_uint(), Ok(u64::MAX));
        assert_eq!(c.read_str(), Ok(&[0xaa][..]));
        assert!(c.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut c = Cursor::new(&bytes);
            while !c.is_empty() && c.skip_value().is_ok() {}
        }

        /// The marker-only fast path of `skip_value` agrees with an independent decoder on
        /// where a value ends, and on whether it is complete.
        #[test]
        fn skip_value_ends_where_rmpv_does(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            // rmpv reads the never-used marker 0xc1 as a value; msgpack-c (and we) refuse it.
            let bytes: Vec<u8> = bytes.into_iter().map(|b| if b == 0xc1 { 0xc0 } else { b }).collect();
            let mut r = &bytes[..];
            let theirs = rmpv::decode::read_value(&mut r).ok().map(|_| bytes.len() - r.len());
            let ours = Cursor::new(&bytes).skip_value().ok().map(<[u8]>::len);
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
