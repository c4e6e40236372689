//! A borrowed MessagePack cursor: reads headers and scalars from a byte slice without
//! allocating, and skips whole values. Used to walk chunks event by event.

/// Why a MessagePack byte sequence could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    #[error("msgpack data ends in the middle of a value")]
    Truncated,
    #[error("unexpected msgpack marker 0x{0:02x}")]
    Unexpected(u8),
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
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos.min(self.data.len())..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::Truncated)?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(MsgpackError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    /// The next marker byte, without consuming it.
    pub fn peek(&self) -> Result<u8, MsgpackError> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or(MsgpackError::Truncated)
    }

    fn be(&mut self, n: usize) -> Result<u64, MsgpackError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Read an array header and return its length.
    pub fn read_array_len(&mut self) -> Result<usize, MsgpackError> {
        let m = self.byte()?;
        match m {
            0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            0xdc => Ok(self.be(2)? as usize),
            0xdd => Ok(self.be(4)? as usize),
            _ => Err(MsgpackError::Unexpected(m)),
        }
    }

    /// Read a map header and return its number of pairs.
    pub fn read_map_len(&mut self) -> Result<usize, MsgpackError> {
        let m = self.byte()?;
        match m {
            0x80..=0x8f => Ok(usize::from(m & 0x0f)),
            0xde => Ok(self.be(2)? as usize),
            0xdf => Ok(self.be(4)? as usize),
            _ => Err(MsgpackError::Unexpected(m)),
        }
    }

    /// Read a string (or bin) and return its bytes.
    pub fn read_str(&mut self) -> Result<&'a [u8], MsgpackError> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            _ => return Err(MsgpackError::Unexpected(m)),
        };
        self.take(n)
    }

    /// Read an ext value: its type and data bytes.
    pub fn read_ext(&mut self) -> Result<(i8, &'a [u8]), MsgpackError> {
        let m = self.byte()?;
        let n = match m {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => self.be(1)? as usize,
            0xc8 => self.be(2)? as usize,
            0xc9 => self.be(4)? as usize,
            _ => return Err(MsgpackError::Unexpected(m)),
        };
        let ty = self.byte()? as i8;
        Ok((ty, self.take(n)?))
    }

    /// Read any number (int or float) as f64, for legacy timestamps.
    pub fn read_number(&mut self) -> Result<f64, MsgpackError> {
        let m = self.peek()?;
        match m {
            0xca => {
                self.pos += 1;
                Ok(f64::from(f32::from_bits(self.be(4)? as u32)))
            }
            0xcb => {
                self.pos += 1;
                Ok(f64::from_bits(self.be(8)?))
            }
            0xd0..=0xd3 => Ok(self.read_int()? as f64),
            _ => Ok(self.read_uint()? as f64),
        }
    }

    /// Read an unsigned integer (positive fixint or uint8..64).
    pub fn read_uint(&mut self) -> Result<u64, MsgpackError> {
        let m = self.byte()?;
        match m {
            0x00..=0x7f => Ok(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => Err(MsgpackError::Unexpected(m)),
        }
    }

    /// Read a signed integer (any int marker).
    pub fn read_int(&mut self) -> Result<i64, MsgpackError> {
        let m = self.peek()?;
        match m {
            0xe0..=0xff => {
                self.pos += 1;
                Ok(i64::from(m as i8))
            }
            0xd0 => {
                self.pos += 1;
                Ok(i64::from(self.be(1)? as u8 as i8))
            }
            0xd1 => {
                self.pos += 1;
                Ok(i64::from(self.be(2)? as u16 as i16))
            }
            0xd2 => {
                self.pos += 1;
                Ok(i64::from(self.be(4)? as u32 as i32))
            }
            0xd3 => {
                self.pos += 1;
                Ok(self.be(8)? as i64)
            }
            _ => i64::try_from(self.read_uint()?).map_err(|_| MsgpackError::Unexpected(m)),
        }
    }

    /// Skip one whole value and return its bytes.
    pub fn skip_value(&mut self) -> Result<&'a [u8], MsgpackError> {
        let start = self.pos;
        // Iterative: `pending` counts values still to skip, so deep nesting costs no stack.
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let skip = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => {
                    pending += 2 * usize::from(m & 0x0f);
                    0
                }
                0x90..=0x9f => {
                    pending += usize::from(m & 0x0f);
                    0
                }
                0xa0..=0xbf => usize::from(m & 0x1f),
                0xc4 | 0xd9 => self.be(1)? as usize,
                0xc5 | 0xda => self.be(2)? as usize,
                0xc6 | 0xdb => self.be(4)? as usize,
                0xc7 => self.be(1)? as usize + 1,
                0xc8 => self.be(2)? as usize + 1,
                0xc9 => self.be(4)? as usize + 1,
                0xca => 4,
                0xcb => 8,
                0xcc | 0xd0 => 1,
                0xcd | 0xd1 => 2,
                0xce | 0xd2 => 4,
                0xcf | 0xd3 => 8,
                0xd4 => 2,
                0xd5 => 3,
                0xd6 => 5,
                0xd7 => 9,
                0xd8 => 17,
                0xdc | 0xdd => {
                    let n = self.be(if m == 0xdc { 2 } else { 4 })? as usize;
                    pending = pending.checked_add(n).ok_or(MsgpackError::Truncated)?;
                    0
                }
                0xde | 0xdf => {
                    let n = self.be(if m == 0xde { 2 } else { 4 })? as usize;
                    pending = n
                        .checked_mul(2)
                        .and_then(|n| pending.checked_add(n))
                        .ok_or(MsgpackError::Truncated)?;
                    0
                }
                0xc1 => return Err(MsgpackError::Unexpected(m)),
            };
            self.take(skip)?;
            // A claimed element count larger than the remaining bytes cannot be valid.
            if pending > self.data.len() - self.pos {
                return Err(MsgpackError::Truncated);
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

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut c = Cursor::new(&bytes);
            while !c.is_empty() && c.skip_value().is_ok() {}
        }
    }
}
