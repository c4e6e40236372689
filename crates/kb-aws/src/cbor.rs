//! The CBOR (RFC 8949) of the AWS `application/x-amz-cbor-1.1` protocol, as the AWS Java SDK and
//! the KPL speak it to Kinesis: the same members as JSON 1.1, with blobs as byte strings.
//!
//! Writing is a handful of heads ([`write_head`]) that the request encoder puts straight into
//! its body buffer. Reading is a strict, allocation-free pull [`Reader`] over a borrowed body:
//! every item is checked to be well-formed (reserved additional information, a break outside an
//! indefinite container, text that is not UTF-8, lengths past the end, nesting deeper than
//! [`MAX_DEPTH`] and bytes after the top-level item are errors), so an answer is either read
//! exactly or rejected, never guessed at. Definite and indefinite lengths are both read: Kinesis
//! answers with indefinite maps (as Jackson writes them).

use std::borrow::Cow;

/// Unsigned integer.
pub const MAJOR_UINT: u8 = 0;
/// Negative integer (`-1 - n`).
pub const MAJOR_NINT: u8 = 1;
/// Byte string.
pub const MAJOR_BYTES: u8 = 2;
/// UTF-8 text string.
pub const MAJOR_TEXT: u8 = 3;
/// Array.
pub const MAJOR_ARRAY: u8 = 4;
/// Map.
pub const MAJOR_MAP: u8 = 5;
/// Tagged item.
pub const MAJOR_TAG: u8 = 6;
/// Simple values and floats.
pub const MAJOR_SIMPLE: u8 = 7;

/// The start of an indefinite-length array.
pub const ARRAY_INDEFINITE: u8 = 0x9f;
/// The end of an indefinite-length item.
pub const BREAK: u8 = 0xff;

/// Containers nested deeper than this are rejected (as the JSON scanner does).
pub const MAX_DEPTH: usize = 64;

/// Bytes of the head of an item of major type `_` with argument `n`.
pub const fn head_len(n: u64) -> usize {
    match n {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Append the shortest head of major type `major` with argument `n` (RFC 8949 §3: the
/// preferred serialisation).
pub fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Append a text string.
pub fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, MAJOR_TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Append a byte string.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, MAJOR_BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// Bytes of `s` written as a text string.
pub const fn text_len(s: &str) -> usize {
    head_len(s.len() as u64) + s.len()
}

/// Why a body is not the CBOR it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CBOR at byte {offset}: {what}")]
pub struct CborError {
    /// Where the problem was found.
    pub offset: usize,
    /// What it was.
    pub what: &'static str,
}

/// One item's head, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// Major type 0.
    Uint(u64),
    /// Major type 1: the value is `-1 - n`.
    Nint(u64),
    /// Major type 2 (chunks of an indefinite string joined).
    Bytes(Cow<'a, [u8]>),
    /// Major type 3 (chunks of an indefinite string joined), valid UTF-8.
    Text(Cow<'a, str>),
    /// Major type 4 with its length, `None` when indefinite (ends at a break).
    Array(Option<u64>),
    /// Major type 5 with its number of pairs, `None` when indefinite (ends at a break).
    Map(Option<u64>),
    /// Major type 6: the tag number; the tagged item follows.
    Tag(u64),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Any other simple value.
    Simple(u8),
    /// Half, single or double float, as f64.
    Float(f64),
}

/// A strict pull reader over one CBOR body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }

    /// Offset of the next byte.
    pub fn offset(&self) -> usize {
        self.i
    }

    /// Whether every byte was read.
    pub fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    fn err(&self, what: &'static str) -> CborError {
        CborError {
            offset: self.i,
            what,
        }
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CborError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err("bytes after the top-level item"))
        }
    }

    /// Whether the next byte is a break (and then consumes it).
    pub fn take_break(&mut self) -> bool {
        if self.b.get(self.i) == Some(&BREAK) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.err("truncated"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    /// Major type, additional information and argument; `None` argument for indefinite length
    /// (additional information 31).
    fn head(&mut self) -> Result<(u8, u8, Option<u64>), CborError> {
        let first = *self.b.get(self.i).ok_or_else(|| self.err("truncated"))?;
        let at = self.i;
        self.i += 1;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.take(1)?[0])),
            25 => Some(u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().unwrap_or_default(),
            ))),
            26 => Some(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().unwrap_or_default(),
            ))),
            27 => Some(u64::from_be_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            28..=30 => {
                self.i = at;
                return Err(self.err("reserved additional information"));
            }
            _ => None,
        };
        if arg.is_none() && matches!(major, MAJOR_UINT | MAJOR_NINT | MAJOR_TAG) {
            self.i = at;
            return Err(self.err("indefinite length on an integer or tag"));
        }
        if arg.is_none() && major == MAJOR_SIMPLE {
            self.i = at;
            return Err(self.err("break outside an indefinite-length item"));
        }
        Ok((major, info, arg))
    }

    /// The next item's head (strings are read whole).
    pub fn item(&mut self) -> Result<Item<'a>, CborError> {
        let (major, info, arg) = self.head()?;
        Ok(match (major, arg) {
            (MAJOR_UINT, Some(n)) => Item::Uint(n),
            (MAJOR_NINT, Some(n)) => Item::Nint(n),
            (MAJOR_BYTES, _) => Item::Bytes(self.string_body(MAJOR_BYTES, arg)?),
            (MAJOR_TEXT, _) => {
                let at = self.i;
                match self.string_body(MAJOR_TEXT, arg)? {
                    Cow::Borrowed(b) => {
                        Item::Text(Cow::Borrowed(std::str::from_utf8(b).map_err(|_| {
                            CborError {
                                offset: at,
                                what: "text that is not UTF-8",
                            }
                        })?))
                    }
                    Cow::Owned(v) => {
                        Item::Text(Cow::Owned(String::from_utf8(v).map_err(|_| CborError {
                            offset: at,
                            what: "text that is not UTF-8",
                        })?))
                    }
                }
            }
            (MAJOR_ARRAY, n) => Item::Array(n),
            (MAJOR_MAP, n) => Item::Map(n),
            (MAJOR_TAG, Some(n)) => Item::Tag(n),
            (_, Some(n)) => match info {
                20 => Item::Bool(false),
                21 => Item::Bool(true),
                22 => Item::Null,
                23 => Item::Undefined,
                24 if n < 32 => return Err(self.err("simple value in two bytes below 32")),
                0..=24 => Item::Simple(n as u8),
                25 => Item::Float(half_to_f64(n as u16)),
                26 => Item::Float(f64::from(f32::from_bits(n as u32))),
                _ => Item::Float(f64::from_bits(n)),
            },
            _ => return Err(self.err("malformed head")),
        })
    }

    /// The contents of a byte or text string whose head was read; an indefinite one is its
    /// definite chunks of the same major type, up to a break, joined.
    fn string_body(&mut self, major: u8, arg: Option<u64>) -> Result<Cow<'a, [u8]>, CborError> {
        if let Some(n) = arg {
            let n = usize::try_from(n).map_err(|_| self.err("truncated"))?;
            return Ok(Cow::Borrowed(self.take(n)?));
        }
        let mut joined = Vec::new();
        loop {
            if self.take_break() {
                return Ok(Cow::Owned(joined));
            }
            let (m, _, n) = self.head()?;
            let Some(n) = n.filter(|_| m == major) else {
                return Err(self.err("bad chunk in an indefinite-length string"));
            };
            let n = usize::try_from(n).map_err(|_| self.err("truncated"))?;
            joined.extend_from_slice(self.take(n)?);
        }
    }

    /// Read (and check) one whole item, whatever it is, nested at most `MAX_DEPTH - depth`.
    pub fn skip(&mut self, depth: usize) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        match self.item()? {
            Item::Array(n) => self.each(n, |r| r.skip(depth + 1)),
            Item::Map(n) => self.each(n, |r| {
                r.skip(depth + 1)?;
                r.skip(depth + 1)
            }),
            Item::Tag(_) => self.skip(depth + 1),
            _ => Ok(()),
        }
    }

    /// Call `f` once per element of an array or pair of a map whose head said `n` (`None`:
    /// until the break).
    pub fn each(
        &mut self,
        n: Option<u64>,
        mut f: impl FnMut(&mut Self) -> Result<(), CborError>,
    ) -> Result<(), CborError> {
        match n {
            Some(n) => {
                for _ in 0..n {
                    f(self)?;
                }
            }
            None => loop {
                if self.take_break() {
                    break;
                }
                if self.at_end() {
                    return Err(self.err("truncated"));
                }
                f(self)?;
            },
        }
        Ok(())
    }

    /// The next item, which must be a text string (a map key).
    pub fn text(&mut self) -> Result<Cow<'a, str>, CborError> {
        let at = self.i;
        match self.item()? {
            Item::Text(t) => Ok(t),
            _ => Err(CborError {
                offset: at,
                what: "expected a text string",
            }),
        }
    }
}

/// IEEE 754 half precision to f64.
fn half_to_f64(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

/// `__type` (or `code`) and `message` (or `Message`) of a CBOR error body, when it is a
/// well-formed CBOR map; other members are skipped, non-text values ignored.
pub fn error_fields(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let mut r = Reader::new(body);
    let Ok(Item::Map(n)) = r.item() else {
        return None;
    };
    let (mut code, mut message) = (None, None);
    r.each(n, |r| {
        let key = r.text()?;
        let at = r.clone();
        match r.item()? {
            Item::Text(v) if !v.is_empty() => match &*key {
                "__type" | "code" | "Code" if code.is_none() => code = Some(v.into_owned()),
                "message" | "Message" | "errorMessage" if message.is_none() => {
                    message = Some(v.into_owned())
                }
                _ => {}
            },
            _ => {
                // Whatever it is, read it whole.
                *r = at;
                r.skip(1)?;
            }
        }
        Ok(())
    })
    .ok()?;
    r.finish().ok()?;
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_the_shortest() {
        for (n, want) in [
            (0u64, vec![0x40]),
            (23, vec![0x57]),
            (24, vec![0x58, 24]),
            (255, vec![0x58, 0xff]),
            (256, vec![0x59, 1, 0]),
            (65_536, vec![0x5a, 0, 1, 0, 0]),
            (1 << 32, vec![0x5b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut out = Vec::new();
            write_head(&mut out, MAJOR_BYTES, n);
            assert_eq!(out, want, "{n}");
            assert_eq!(head_len(n), want.len());
        }
    }

    #[test]
    fn reads_what_it_wrote() {
        let mut b = vec![0xa2];
        write_text(&mut b, "a");
        write_bytes(&mut b, &[1, 2, 3]);
        write_text(&mut b, "é");
        b.extend_from_slice(&[ARRAY_INDEFINITE, 0x01, 0x38, 0x63, 0xf5, 0xf6, BREAK]);
        let mut r = Reader::new(&b);
        assert_eq!(r.item().unwrap(), Item::Map(Some(2)));
        assert_eq!(r.text().unwrap(), "a");
        assert_eq!(
            r.item().unwrap(),
            Item::Bytes(Cow::Borrowed(&[1, 2, 3][..]))
        );
        assert_eq!(r.text().unwrap(), "é");
        assert_eq!(r.item().unwrap(), Item::Array(None));
        assert_eq!(r.item().unwrap(), Item::Uint(1));
        assert_eq!(r.item().unwrap(), Item::Nint(99));
        assert_eq!(r.item().unwrap(), Item::Bool(true));
        assert_eq!(r.item().unwrap(), Item::Null);
        assert!(r.take_break());
        r.finish().unwrap();
        assert!(Reader::new(&b).skip(0).is_ok());
    }

    #[test]
    fn indefinite_strings_are_joined() {
        // (_ "ab" "c")
        let b = [0x7f, 0x62, b'a', b'b', 0x61, b'c', BREAK];
        assert_eq!(Reader::new(&b).text().unwrap(), "abc");
        // A byte chunk inside a text string.
        let b = [0x7f, 0x41, b'a', BREAK];
        assert!(Reader::new(&b).text().is_err());
    }

    #[test]
    fn malformed_items_are_errors() {
        for bad in [
            &[][..],
            &[0x1c],       // reserved additional information
            &[0x1f],       // indefinite integer
            &[0xff],       // lone break
            &[0x62, b'a'], // truncated text
            &[0x61, 0xff], // not UTF-8
            &[0x9f, 0x01], // unterminated indefinite array
            &[0x82, 0x01], // array shorter than its head says
            &[0xf8, 0x10], // two-byte simple value below 32
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // length past the end
        ] {
            assert!(Reader::new(bad).skip(0).is_err(), "{bad:02x?}");
        }
        let deep = vec![0x81; MAX_DEPTH + 2];
        assert!(Reader::new(&deep).skip(0).is_err());
        let mut r = Reader::new(&[0x01, 0x02]);
        r.skip(0).unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn floats() {
        let mut r = Reader::new(&[0xf9, 0x3c, 0x00, 0xfa, 0x3f, 0xc0, 0x00, 0x00]);
        assert_eq!(r.item().unwrap(), Item::Float(1.0));
        assert_eq!(r.item().unwrap(), Item::Float(1.5));
    }

    #[test]
    fn error_bodies() {
        // What Kinesis (and kinesalite) send: an indefinite map.
        let mut b = vec![0xbf];
        write_text(&mut b, "__type");
        write_text(&mut b, "ResourceNotFoundException");
        write_text(&mut b, "n");
        b.extend_from_slice(&[0x82, 0x01, 0xa0]);
        write_text(&mut b, "message");
        write_text(&mut b, "Stream s not found");
        b.push(BREAK);
        assert_eq!(
            error_fields(&b),
            Some((
                Some("ResourceNotFoundException".into()),
                Some("Stream s not found".into())
            ))
        );
        assert_eq!(error_fields(&b[..b.len() - 1]), None);
        assert_eq!(error_fields(b"{\"__type\":\"x\"}"), None);
    }
}
