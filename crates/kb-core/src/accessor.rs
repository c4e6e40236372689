//! Fluent Bit's record accessor (`$key`, `$key['a']['b']`, `$key[0]`, also `$key["a"]`),
//! shared by filters (grep, modify conditions, rewrite_tag, nest) and outputs
//! (`partition_key`): evaluated on a record's msgpack without decoding it, or on a
//! [`Record`] being filtered. [`Template`] is Fluent Bit's record templating (`$TAG`,
//! `$TAG[n]`, accessors and literal text, as in rewrite_tag's new tag).

use std::fmt;

use crate::json::write_f64;
use crate::msgpack::{Cursor, Head};
use crate::record::Record;

/// One step of an accessor path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A map key (compared with string and bin keys, byte for byte).
    Key(String),
    /// An array position.
    Index(usize),
}

/// A parsed record accessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAccessor {
    source: String,
    path: Vec<Segment>,
}

/// Text that is not a record accessor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; expected $key, $key['sub']['subsub'] or $key[0]")]
pub struct AccessorError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl RecordAccessor {
    /// Parse an accessor; whitespace around the brackets is ignored, as in Fluent Bit.
    pub fn parse(text: &str) -> Result<RecordAccessor, AccessorError> {
        let err = |reason: String| AccessorError {
            text: text.to_owned(),
            reason,
        };
        let s = text.trim();
        let b = s.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(err("it must start with '$'".into()));
        }
        let mut path = Vec::new();
        let mut i = 1;
        // The top-level key: Fluent Bit's IDENTIFIER [_A-Za-z][A-Za-z0-9_.]*, or (beyond FB)
        // a bracketed string for names outside that alphabet.
        let ident_start = i;
        if b.get(i)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
            {
                i += 1;
            }
            path.push(Segment::Key(s[ident_start..i].to_owned()));
        }
        loop {
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            let Some(&c) = b.get(i) else { break };
            if c != b'[' {
                return Err(err(format!("unexpected '{}' at offset {i}", &s[i..])));
            }
            i += 1;
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            match b.get(i) {
                Some(&q @ (b'\'' | b'"')) => {
                    // A quoted key; the quote is doubled to include it ('it''s').
                    i += 1;
                    let mut key = String::new();
                    let mut run = i;
                    loop {
                        match b.get(i) {
                            None => return Err(err("unterminated quoted key".into())),
                            Some(&x) if x == q => {
                                key.push_str(&s[run..i]);
                                if b.get(i + 1) == Some(&q) {
                                    key.push(q as char);
                                    i += 2;
                                    run = i;
                                } else {
                                    i += 1;
                                    break;
                                }
                            }
                            Some(_) => i += 1,
                        }
                    }
                    path.push(Segment::Key(key));
                }
                Some(d) if d.is_ascii_digit() => {
                    let start = i;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    let digits = &s[start..i];
                    if digits.len() > 1 && digits.starts_with('0') {
                        return Err(err(format!("array index '{digits}' has a leading zero")));
                    }
                    let n = digits
                        .parse()
                        .map_err(|_| err(format!("array index '{digits}' is too large")))?;
                    path.push(Segment::Index(n));
                }
                _ => {
                    return Err(err(format!(
                        "expected a quoted key or an array index after '[' at offset {}",
                        i - 1
                    )))
                }
            }
            while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
                i += 1;
            }
            if b.get(i) != Some(&b']') {
                return Err(err(format!("missing ']' at offset {i}")));
            }
            i += 1;
        }
        match path.first() {
            None => Err(err("no key after '$'".into())),
            Some(Segment::Index(_)) => Err(err("the record is a map: start with a key".into())),
            Some(Segment::Key(_)) => Ok(RecordAccessor {
                source: text.to_owned(),
                path,
            }),
        }
    }

    /// The accessor text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed path.
    pub fn path(&self) -> &[Segment] {
        &self.path
    }

    /// The msgpack bytes of the value at the path in the msgpack map `record` (last
    /// occurrence of a duplicate key).
    pub fn lookup<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        let mut cur = record;
        for seg in &self.path {
            cur = step(cur, seg)?;
        }
        Some(cur)
    }

    /// The value at the path in a record being filtered (last occurrence of a duplicate
    /// top-level key, as on msgpack).
    pub fn lookup_record<'r>(&self, record: &'r Record<'_>) -> Option<&'r [u8]> {
        let Some(Segment::Key(first)) = self.path.first() else {
            return None;
        };
        let i = (0..record.len())
            .rev()
            .find(|&i| record.key(i) == Some(first.as_bytes()))?;
        let mut cur = record.value(i);
        for seg in &self.path[1..] {
            cur = step(cur, seg)?;
        }
        Some(cur)
    }

    /// The top-level key the path starts with.
    pub fn first_key(&self) -> &str {
        match self.path.first() {
            Some(Segment::Key(k)) => k,
            _ => "",
        }
    }
}

/// One step down from the msgpack value `cur`.
fn step<'a>(cur: &'a [u8], seg: &Segment) -> Option<&'a [u8]> {
    let mut c = Cursor::new(cur);
    match seg {
        Segment::Key(key) => {
            let Head::Map(n) = c.head().ok()? else {
                return None;
            };
            let mut found = None;
            for _ in 0..n {
                let k = c.skip_value().ok()?;
                let v = c.skip_value().ok()?;
                if matches!(Cursor::new(k).head(), Ok(Head::Str(s) | Head::Bin(s)) if s == key.as_bytes())
                {
                    found = Some(v);
                }
            }
            found
        }
        Segment::Index(idx) => {
            let Head::Array(n) = c.head().ok()? else {
                return None;
            };
            if *idx >= n {
                return None;
            }
            for _ in 0..*idx {
                c.skip_value().ok()?;
            }
            c.skip_value().ok()
        }
    }
}

impl fmt::Display for RecordAccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for RecordAccessor {
    type Err = AccessorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordAccessor::parse(s)
    }
}

/// Append the text of a scalar msgpack value to `out`: strings (invalid UTF-8 as U+FFFD),
/// numbers and booleans; `false` for nil, maps, arrays, ext and ±Inf/NaN.
pub fn value_text(value: &[u8], out: &mut String) -> bool {
    let Ok(head) = Cursor::new(value).head() else {
        return false;
    };
    match head {
        Head::Str(s) | Head::Bin(s) => push_lossy_utf8(s, out),
        Head::Bool(v) => out.push_str(if v { "true" } else { "false" }),
        Head::Uint(v) => push_display(out, v),
        Head::Int(v) => push_display(out, v),
        Head::Float(v) if v.is_finite() => {
            let mut bytes = std::mem::take(out).into_bytes();
            write_f64(v, &mut bytes);
            // write_f64 emits ASCII only.
            *out = String::from_utf8(bytes).unwrap_or_default();
        }
        _ => return false,
    }
    true
}

/// Append the bytes as UTF-8, each invalid sequence replaced by U+FFFD (no allocation).
pub fn push_lossy_utf8(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

fn push_display(out: &mut String, v: impl fmt::Display) {
    use fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text as written.
    Literal(String),
    /// `$TAG`: the whole tag.
    Tag,
    /// `$TAG[n]`: the n-th dot-separated part of the tag.
    TagPart(usize),
    /// A record accessor.
    Field(RecordAccessor),
    /// `$0`, `$1`, …: a regex group of the match that chose the template (rewrite_tag).
    Group(usize),
}

/// Fluent Bit's record templating: literal text with `$TAG`, `$TAG[n]` and record accessors
/// (`$key`, `$key['sub'][0]`) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse a template; an accessor runs from `$` up to the end of its name and brackets.
    pub fn parse(text: &str) -> Result<Template, AccessorError> {
        let b = text.as_bytes();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let mut j = i + 1;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(Part::Group(text[i + 1..j].parse().unwrap_or(usize::MAX)));
                i = j;
                continue;
            }
            let starts_name = b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'[');
            if b[i] != b'$' || !starts_name {
                let ch = text[i..].chars().next().unwrap_or('$');
                lit.push(ch);
                i += ch.len_utf8();
                continue;
            }
            // The accessor's extent: name characters, then bracket groups. In a template a
            // '.' ends the name (`from.$TAG.new.$tool.out`), as in Fluent Bit.
            let mut j = i + 1;
            while b
                .get(j)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                j += 1;
            }
            while b.get(j) == Some(&b'[') {
                let mut k = j + 1;
                let mut quote = None;
                while let Some(&c) = b.get(k) {
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == b'\'' || c == b'"' => quote = Some(c),
                        None if c == b']' => break,
                        None => {}
                    }
                    k += 1;
                }
                if b.get(k) != Some(&b']') {
                    return Err(AccessorError {
                        text: text.to_owned(),
                        reason: format!("'[' at offset {j} is never closed"),
                    });
                }
                j = k + 1;
            }
            let piece = &text[i..j];
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            if piece == "$TAG" {
                parts.push(Part::Tag);
            } else if let Some(n) = piece
                .strip_prefix("$TAG[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.trim().parse::<usize>().ok())
            {
                parts.push(Part::TagPart(n));
            } else {
                parts.push(Part::Field(RecordAccessor::parse(piece)?));
            }
            i = j;
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Template { parts })
    }

    /// The pieces of the template.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the template is only literal text.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Render for a record: `value` looks an accessor up (`None`: missing). Missing fields
    /// and tag parts render as nothing, as in Fluent Bit; returns whether all were found.
    pub fn render<'r>(
        &self,
        tag: &str,
        value: impl FnMut(&RecordAccessor) -> Option<&'r [u8]>,
        out: &mut String,
    ) -> bool {
        self.render_with_groups(tag, value, |_| None, out)
    }

    /// [`Template::render`] with `group` giving the text of regex group `n` (`$n`).
    pub fn render_with_groups<'r, 'g>(
        &self,
        tag: &str,
        mut value: impl FnMut(&RecordAccessor) -> Option<&'r [u8]>,
        mut group: impl FnMut(usize) -> Option<&'g [u8]>,
        out: &mut String,
    ) -> bool {
        out.clear();
        let mut complete = true;
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Tag => out.push_str(tag),
                Part::TagPart(n) => match tag.split('.').nth(*n) {
                    Some(s) => out.push_str(s),
                    None => complete = false,
                },
                Part::Field(ra) => match value(ra) {
                    Some(v) if value_text(v, out) => {}
                    _ => complete = false,
                },
                Part::Group(n) => match group(*n) {
                    Some(g) => push_lossy_utf8(g, out),
                    None => complete = false,
                },
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{write_map_len, write_str, RecordBuf};

    fn map(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut m = Vec::new();
        write_map_len(&mut m, pairs.len());
        for (k, v) in pairs {
            write_str(&mut m, k.as_bytes());
            write_str(&mut m, v.as_bytes());
        }
        m
    }

    #[test]
    fn templates_render_tag_parts_and_fields() {
        let t = Template::parse("logs.$TAG[1].$kubernetes['ns'].$level-x").unwrap();
        assert!(!t.is_literal());
        let mut inner = map(&[("ns", "prod")]);
        let mut rec = Vec::new();
        write_map_len(&mut rec, 2);
        write_str(&mut rec, b"kubernetes");
        rec.append(&mut inner);
        write_str(&mut rec, b"level");
        write_str(&mut rec, b"warn");
        let mut out = String::new();
        assert!(t.render("kube.app.x", |ra| ra.lookup(&rec), &mut out));
        assert_eq!(out, "logs.app.prod.warn-x");
        // Missing pieces render as nothing.
        assert!(!t.render("kube", |_| None, &mut out));
        assert_eq!(out, "logs...-x");
        assert_eq!(Template::parse("$TAG").unwrap().parts(), &[Part::Tag][..]);
        assert!(Template::parse("plain text, 5$").unwrap().is_literal());
        let t = Template::parse("x.$1.$TAG[0]").unwrap();
        assert_eq!(t.parts()[1], Part::Group(1));
        assert!(t.render_with_groups(
            "a.b",
            |_| None,
            |n| (n == 1).then_some(&b"one"[..]),
            &mut out
        ));
        assert_eq!(out, "x.one.a");
        assert!(Template::parse("$a['unterminated").is_err());
    }

    #[test]
    fn lookup_on_a_filtered_record_takes_the_last_duplicate() {
        let mut raw = Vec::new();
        crate::event::write_event_header(&mut raw, crate::EventTime::new(1, 0));
        raw.extend_from_slice(&map(&[("k", "first"), ("k", "second")]));
        let mut buf = RecordBuf::new();
        let r = buf.read(&raw).unwrap();
        let ra = RecordAccessor::parse("$k").unwrap();
        assert_eq!(
            crate::record::as_str(ra.lookup_record(&r).unwrap()),
            Some(&b"second"[..])
        );
        assert!(RecordAccessor::parse("$nope")
            .unwrap()
            .lookup_record(&r)
            .is_none());
    }
}
