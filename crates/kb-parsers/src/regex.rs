//! `Format regex`: named captures become string fields, in the order of the groups.
//!
//! Fluent Bit compiles its patterns with Onigmo's Ruby syntax; the few Ruby escapes the
//! `regex` crate reads differently are rewritten first (`\<` and `\>` are literal `<`/`>` in
//! Ruby but word boundaries in `regex`; `\h`/`\H` are hex digits; `\Z` is end of input before an
//! optional final newline); one pair of enclosing slashes is removed. As in Ruby, `^` and `$` also match at line breaks.

use super::{patch_header, reserve_header, Header, ParseError, Parser, Value};
use kb_core::event::EventTime;
use regex::bytes::{Regex, RegexBuilder};

#[derive(Debug, Clone)]
pub(super) struct RegexFormat {
    regex: Regex,
    /// (group index, name) of every named group.
    names: Vec<(usize, String)>,
}

/// Rewrite the Ruby-only escapes of `pattern` for the `regex` crate.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('<') => out.push('<'),
                Some('>') => out.push('>'),
                Some('h') if in_class => out.push_str("0-9a-fA-F"),
                Some('h') => out.push_str("[0-9a-fA-F]"),
                Some('H') if !in_class => out.push_str("[^0-9a-fA-F]"),
                Some('Z') if !in_class => out.push_str("(?:\\n?\\z)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A ']' (possibly after '^') right at the start is a literal.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                for _ in 0..skip {
                    if let Some(x) = chars.next() {
                        if x == ']' {
                            out.push_str("\\]");
                        } else {
                            out.push(x);
                        }
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

impl RegexFormat {
    /// Compile a Fluent Bit (Ruby syntax) pattern; it needs at least one named group.
    pub(super) fn new(pattern: &str) -> Result<Self, String> {
        // Fluent Bit strips one pair of enclosing slashes (`/^...$/`).
        let pattern = pattern.trim();
        let pattern = match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
            Some(inner) => inner,
            None => pattern,
        };
        let regex = RegexBuilder::new(&translate(pattern))
            .multi_line(true)
            .build()
            .map_err(|e| format!("invalid regex: {e}"))?;
        let names: Vec<(usize, String)> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        if names.is_empty() {
            return Err("the regex has no named capture group such as (?<name>...)".into());
        }
        Ok(RegexFormat { regex, names })
    }

    pub(super) fn parse(
        &self,
        p: &Parser,
        line: &[u8],
        buf: &mut Vec<u8>,
        now: EventTime,
    ) -> Result<EventTime, ParseError> {
        let mut locs = self.regex.capture_locations();
        if self.regex.captures_read(&mut locs, line).is_none() {
            return Err(ParseError::NoMatch);
        }
        let mut time = now;
        let map = reserve_header(buf);
        let mut n = 0;
        for (i, name) in &self.names {
            let Some((s, e)) = locs.get(*i) else {
                continue;
            };
            let value = &line[s..e];
            if value.is_empty() && p.skip_empty {
                continue;
            }
            if p.is_time_key(name.as_bytes()) {
                // Fluent Bit drops a time field it cannot parse and keeps the current time.
                match p.lookup_time(value, now) {
                    Some(t) => time = t,
                    None => continue,
                }
                if !p.time_keep {
                    continue;
                }
            }
            p.write_field(buf, name.as_bytes(), Value::Raw(value));
            n += 1;
        }
        patch_header(buf, map, Header::Map, n);
        Ok(time)
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn ruby_escapes() {
        assert_eq!(translate(r"^\<(?<pri>\d+)\>"), r"^<(?<pri>\d+)>");
        assert_eq!(translate(r"[\h]+\h"), r"[0-9a-fA-F]+[0-9a-fA-F]");
        assert_eq!(translate(r"[^]\<]"), r"[^\]<]");
        assert_eq!(translate(r"\\<"), r"\\<");
    }
}
