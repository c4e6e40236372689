//! The common put answer — every entry accepted — recognised without serde.
//!
//! Parsing 500 entries with serde_json took about 80 µs per request, most of it per token,
//! on the one path every request takes. [`all_accepted`] checks the whole body as strict JSON
//! (RFC 8259) in one pass, with no allocation, and says yes only when the body is certainly
//! an all-accepted answer that the full parser in [`crate::response`] would also read as one.
//! Anything else — a failure, an escape in a string, a duplicate or mistyped field, invalid
//! JSON — is answered `false`, and the full parser decides (and gives the error text).

/// Deeper than this goes to the full parser (serde_json stops at 128).
const MAX_DEPTH: usize = 64;

/// Whether `body` is a valid put answer with `"<count>":0` (`FailedRecordCount`,
/// `FailedPutCount`): a JSON object with that member exactly once, `<entries>` (`Records`,
/// `RequestResponses`) at most once and then `null` or an array of objects whose
/// `ErrorCode`/`ErrorMessage` (each at most once) are strings or `null`.
pub(crate) fn all_accepted(body: &[u8], count: &[u8], entries: &[u8]) -> bool {
    // Checked once for the whole body, so strings need no UTF-8 check of their own.
    if std::str::from_utf8(body).is_err() {
        return false;
    }
    let mut s = Scan { b: body, i: 0 };
    s.ws();
    let ok = s.top_level(count, entries) == Some(true);
    s.ws();
    ok && s.i == body.len()
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// The members of the top-level object; `Some(true)` when it is an all-accepted answer.
    fn top_level(&mut self, count_field: &[u8], entries_field: &[u8]) -> Option<bool> {
        let (mut count, mut records) = (false, false);
        self.object(|s, key| {
            match key {
                k if k == count_field && !count => {
                    s.ws();
                    let start = s.i;
                    s.number()?;
                    if &s.b[start..s.i] != b"0" {
                        // Failures: the full parser reads the entries (Kinesis sends this
                        // member first, so nothing else was scanned in vain).
                        return None;
                    }
                    count = true;
                }
                k if k == entries_field && !records => {
                    records = true;
                    s.ws();
                    if s.peek() == Some(b'[') {
                        s.entries()?;
                    } else {
                        s.literal(b"null")?;
                    }
                }
                k if k == count_field || k == entries_field => return None,
                _ => s.value(1)?,
            }
            Some(())
        })?;
        Some(count)
    }

    /// `Records`: an array of entry objects.
    fn entries(&mut self) -> Option<()> {
        self.list(b'[', b']', |s| {
            let (mut code, mut message) = (false, false);
            s.object(|s, key| {
                let seen = match key {
                    b"ErrorCode" => &mut code,
                    b"ErrorMessage" => &mut message,
                    _ => return s.value(3),
                };
                if std::mem::replace(seen, true) {
                    return None;
                }
                s.ws();
                if s.peek() == Some(b'"') {
                    s.string().map(drop)
                } else {
                    s.literal(b"null")
                }
            })
        })
    }

    /// An object, handing each member's key to `member`, which reads the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.list(b'{', b'}', |s| {
            s.ws();
            let key = s.string()?;
            s.eat(b':')?;
            member(s, key)
        })
    }

    /// `open close`, or `open item (, item)* close` with each item read by `item`.
    fn list(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, nested at most [`MAX_DEPTH`].
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|s, _| s.value(depth + 1)),
            b'[' => self.list(b'[', b']', |s| s.value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A string without escapes (one with escapes goes to the full parser); its contents.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = start + string_end(&self.b[start..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits1()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits1()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn digits1(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

/// The index of the first `"`, `\\` or control byte of `s`: where a string without escapes
/// ends (or, if it is not a `"`, where it stops being one).
fn string_end(s: &[u8]) -> Option<usize> {
    let stop = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= s.len() {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline; the load reads s[i..i + 16], in bounds.
        let mask = unsafe {
            let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
            // Unsigned v < 0x20 is max(v, 0x1f) == 0x1f.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash)))
        };
        if mask != 0 {
            return Some(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    s[i..].iter().position(|&c| stop(c)).map(|p| i + p)
}
