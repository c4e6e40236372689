//! `Format regex`: named captures become string fields, as Fluent Bit's `flb_parser_regex.c`
//! makes them.
//!
//! The pattern is compiled by [`kb_regex`] exactly as Fluent Bit compiles it (Onigmo's Ruby
//! syntax: look-around, atomic groups, `\h`, a literal `{`, `/pat/imx`). Fluent Bit walks the
//! named groups in definition order and, for every group carrying a name, writes one field:
//! - a group that did not take part in the match gives an empty value, so it is left out with
//!   `Skip_Empty_Values on` (the default) and written as `""` with it off;
//! - a name used by several groups gives one field per group (duplicate keys);
//! - a match in which no named group took part is not a match (Fluent Bit's
//!   `flb_regex_parse` then reports no last byte and the parse fails);
//! - with named groups present, plain `(...)` groups do not capture (Ruby syntax).
//!
//! Differences: a regex without any named group is a configuration error (Fluent Bit accepts
//! it and never matches, or writes a broken record when it has unnamed groups). A line that is
//! not valid UTF-8 is matched with its invalid sequences replaced by U+FFFD (see
//! [`kb_regex`]); the captured values carry the replacement characters.

use std::cell::RefCell;

use super::{patch_header, reserve_header, Header, ParseError, Parser, Value};
use kb_core::event::EventTime;
use kb_regex::{Captures, Regex};

#[derive(Debug, Clone)]
pub(super) struct RegexFormat {
    regex: Regex,
}

thread_local! {
    /// Group ranges of the last match, reused from line to line.
    static CAPS: RefCell<Captures> = RefCell::new(Captures::new());
}

impl RegexFormat {
    /// Compile a Fluent Bit (Ruby syntax) pattern; it needs at least one named group.
    pub(super) fn new(pattern: &str) -> Result<Self, String> {
        let regex =
            Regex::new(pattern.trim()).map_err(|e| format!("invalid regex: {}", e.reason))?;
        if regex.names().is_empty() {
            return Err("the regex has no named capture group such as (?<name>...)".into());
        }
        Ok(RegexFormat { regex })
    }

    /// The compiled pattern.
    pub(super) fn regex(&self) -> &Regex {
        &self.regex
    }

    pub(super) fn parse(
        &self,
        p: &Parser,
        line: &[u8],
        buf: &mut Vec<u8>,
        now: EventTime,
    ) -> Result<Option<EventTime>, ParseError> {
        CAPS.with(|caps| {
            let mut caps = caps.borrow_mut();
            let Some(text) = self.regex.captures(line, &mut caps) else {
                return Err(ParseError::NoMatch);
            };
            let mut time = None;
            let mut took_part = false;
            let map = reserve_header(buf);
            let mut n = 0;
            for (name, groups) in self.regex.names() {
                for &g in groups {
                    let value = match caps.get(g) {
                        Some((s, e)) => {
                            took_part = true;
                            &text[s..e]
                        }
                        None => &[][..],
                    };
                    if value.is_empty() && p.skip_empty {
                        continue;
                    }
                    if p.is_time_key(name.as_bytes()) {
                        // Fluent Bit drops a time field it cannot parse and keeps the
                        // record's time.
                        match p.lookup_time(value, now) {
                            Some(t) => time = Some(t),
                            None => continue,
                        }
                        if !p.time_keep {
                            continue;
                        }
                    }
                    p.write_field(buf, name.as_bytes(), Value::Raw(value));
                    n += 1;
                }
            }
            if !took_part {
                buf.truncate(map);
                return Err(ParseError::NoMatch);
            }
            patch_header(buf, map, Header::Map, n);
            Ok(time)
        })
    }
}
