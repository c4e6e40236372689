//! `Time_Format`: a strptime subset with Fluent Bit's additions and quirks.
//!
//! Conversions: `%Y %y %m %d %e %H %I %M %S %j %p %b %B %h %a %A %z %Z %s %L %T %F %D %R %r
//! %n %t %%`; whitespace in the format matches any run of whitespace (also none), other
//! characters must match exactly. As in Fluent Bit:
//! - text left over after the format is ignored;
//! - `%L` is a fraction of 1 to 9 digits (nanosecond precision; Fluent Bit goes through a
//!   `double`, kinesis-bit keeps the digits exactly);
//! - a format without `%Y`, `%y` or `%s` takes the current year, month and day (UTC) from
//!   `now`, fields the format sets overriding them (syslog's `%b %d %H:%M:%S`);
//! - `Time_Offset` applies when the format has no zone (`%z`, `%Z`, `%SZ`, `%S.%LZ`);
//! - with `Time_Strict Off` a value that stops matching part-way is not an error: the fields
//!   read so far are used (the rest default), as Fluent Bit does.
//!
//! `%Z` accepts `UTC`, `GMT` and `Z` only (Fluent Bit also knows the local zone's name).

use kb_core::event::EventTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Lit(u8),
    Space,
    Conv(u8),
}

/// A compiled `Time_Format`.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    source: String,
    items: Vec<Item>,
    with_year: bool,
    with_tz: bool,
    /// `Time_Offset` in seconds east of UTC.
    offset: i32,
    strict: bool,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl TimeFormat {
    /// Compile `fmt`; the error names the unsupported conversion.
    pub fn new(fmt: &str, offset: i32, strict: bool) -> Result<Self, String> {
        let mut items = Vec::new();
        compile(fmt.as_bytes(), &mut items)?;
        let with_year = fmt.contains("%Y") || fmt.contains("%y") || fmt.contains("%s");
        let with_tz = fmt.contains("%z")
            || fmt.contains("%Z")
            || fmt.contains("%SZ")
            || fmt.contains("%S.%LZ");
        Ok(TimeFormat {
            source: fmt.to_string(),
            items,
            with_year,
            with_tz,
            offset,
            strict,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Parse `value` into an event time; `None` when it does not match (strict mode) or falls
    /// outside the range of event times (1970 to 2106).
    pub fn parse(&self, value: &[u8], now: EventTime) -> Option<EventTime> {
        let mut tm = Tm::default();
        let ok = tm.read(&self.items, value);
        if !ok && self.strict {
            return None;
        }
        self.to_time(&tm, now)
    }

    fn to_time(&self, tm: &Tm, now: EventTime) -> Option<EventTime> {
        if let Some(epoch) = tm.epoch {
            let secs = u32::try_from(epoch).ok()?;
            return Some(EventTime::new(secs, tm.nanos));
        }
        let (ny, nm, nd) = civil_from_days(i64::from(now.secs) / 86_400);
        let (year, month, day) = if self.with_year {
            (
                tm.year.unwrap_or(1900),
                tm.month.unwrap_or(1),
                tm.day.unwrap_or(1),
            )
        } else {
            (
                tm.year.unwrap_or(ny),
                tm.month.unwrap_or(nm),
                tm.day.unwrap_or(nd),
            )
        };
        let days = match (tm.yday, tm.month, tm.day) {
            (Some(yd), None, None) => days_from_civil(year, 1, 1) + i64::from(yd) - 1,
            _ => days_from_civil(year, month, 1) + i64::from(day) - 1,
        };
        let mut hour = tm.hour;
        if let Some(pm) = tm.pm {
            hour %= 12;
            if pm {
                hour += 12;
            }
        }
        let offset = match tm.offset {
            Some(o) => o,
            None if self.with_tz => 0,
            None => self.offset,
        };
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(tm.min) * 60 + i64::from(tm.sec)
                - i64::from(offset);
        Some(EventTime::new(u32::try_from(secs).ok()?, tm.nanos))
    }
}

fn compile(fmt: &[u8], items: &mut Vec<Item>) -> Result<(), String> {
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c.is_ascii_whitespace() {
            items.push(Item::Space);
            continue;
        }
        if c != b'%' {
            items.push(Item::Lit(c));
            continue;
        }
        let Some(&conv) = fmt.get(i) else {
            return Err("the format ends with a lone '%'".into());
        };
        i += 1;
        let expansion: &[u8] = match conv {
            b'T' => b"%H:%M:%S",
            b'F' => b"%Y-%m-%d",
            b'D' => b"%m/%d/%y",
            b'R' => b"%H:%M",
            b'r' => b"%I:%M:%S %p",
            _ => b"",
        };
        if !expansion.is_empty() {
            compile(expansion, items)?;
            continue;
        }
        match conv {
            b'%' => items.push(Item::Lit(b'%')),
            b'n' | b't' => items.push(Item::Space),
            b'Y' | b'y' | b'm' | b'd' | b'e' | b'H' | b'I' | b'M' | b'S' | b'j' | b'p' | b'b'
            | b'B' | b'h' | b'a' | b'A' | b'z' | b'Z' | b's' | b'L' => items.push(Item::Conv(conv)),
            other => {
                return Err(format!(
                    "unsupported conversion '%{}'",
                    char::from(other).escape_default()
                ))
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tm {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: u32,
    min: u32,
    sec: u32,
    nanos: u32,
    pm: Option<bool>,
    offset: Option<i32>,
    epoch: Option<i64>,
}

/// Read up to `max_digits` digits as a number within `lo..=hi`.
fn num(s: &[u8], pos: &mut usize, max_digits: usize, lo: u32, hi: u32) -> Option<u32> {
    let start = *pos;
    let mut v: u32 = 0;
    while *pos < s.len() && *pos - start < max_digits && s[*pos].is_ascii_digit() {
        v = v * 10 + u32::from(s[*pos] - b'0');
        *pos += 1;
    }
    (*pos > start && (lo..=hi).contains(&v)).then_some(v)
}

/// Match one of `names` (full name or its first three letters), case-insensitively.
fn name(s: &[u8], pos: &mut usize, names: &[&str]) -> Option<u32> {
    let rest = &s[*pos..];
    for (i, n) in names.iter().enumerate() {
        for cand in [n.as_bytes(), &n.as_bytes()[..3]] {
            if rest.len() >= cand.len() && rest[..cand.len()].eq_ignore_ascii_case(cand) {
                *pos += cand.len();
                return Some(i as u32);
            }
        }
    }
    None
}

fn zone(s: &[u8], pos: &mut usize) -> Option<i32> {
    let rest = &s[*pos..];
    for (n, len) in [(&b"UTC"[..], 3), (b"GMT", 3), (b"Z", 1)] {
        if rest.len() >= len && rest[..len].eq_ignore_ascii_case(n) {
            *pos += len;
            return Some(0);
        }
    }
    None
}

fn numeric_offset(s: &[u8], pos: &mut usize) -> Option<i32> {
    if let Some(z) = zone(s, pos) {
        return Some(z);
    }
    let neg = match s.get(*pos)? {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    *pos += 1;
    let start = *pos;
    let h = num(s, pos, 2, 0, 23)?;
    if *pos - start != 2 {
        return None;
    }
    if s.get(*pos) == Some(&b':') {
        *pos += 1;
    }
    let before = *pos;
    let m = match num(s, pos, 2, 0, 59) {
        Some(m) if *pos - before == 2 => m,
        _ => {
            *pos = before;
            0
        }
    };
    let o = (h * 3600 + m * 60) as i32;
    Some(if neg { -o } else { o })
}

impl Tm {
    /// Apply `items` to `s`; false when the value stops matching (the fields read so far stay).
    fn read(&mut self, items: &[Item], s: &[u8]) -> bool {
        let mut pos = 0;
        for item in items {
            let ok = match *item {
                Item::Space => {
                    while pos < s.len() && s[pos].is_ascii_whitespace() {
                        pos += 1;
                    }
                    true
                }
                Item::Lit(c) => {
                    if s.get(pos) == Some(&c) {
                        pos += 1;
                        true
                    } else {
                        false
                    }
                }
                Item::Conv(c) => self.conv(c, s, &mut pos).is_some(),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn conv(&mut self, c: u8, s: &[u8], pos: &mut usize) -> Option<()> {
        match c {
            b'Y' => self.year = Some(i64::from(num(s, pos, 4, 0, 9999)?)),
            b'y' => {
                let y = num(s, pos, 2, 0, 99)?;
                self.year = Some(i64::from(if y < 69 { 2000 + y } else { 1900 + y }));
            }
            b'm' => self.month = Some(num(s, pos, 2, 1, 12)?),
            b'd' | b'e' => {
                while s.get(*pos) == Some(&b' ') {
                    *pos += 1;
                }
                self.day = Some(num(s, pos, 2, 1, 31)?);
            }
            b'H' => self.hour = num(s, pos, 2, 0, 23)?,
            b'I' => self.hour = num(s, pos, 2, 1, 12)?,
            b'M' => self.min = num(s, pos, 2, 0, 59)?,
            b'S' => self.sec = num(s, pos, 2, 0, 61)?,
            b'j' => self.yday = Some(num(s, pos, 3, 1, 366)?),
            b'p' => {
                let rest = &s[*pos..];
                let pm = if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"AM") {
                    false
                } else if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"PM") {
                    true
                } else {
                    return None;
                };
                *pos += 2;
                self.pm = Some(pm);
            }
            b'b' | b'B' | b'h' => self.month = Some(name(s, pos, &MONTHS)? + 1),
            b'a' | b'A' => {
                name(s, pos, &DAYS)?;
            }
            b'z' => self.offset = Some(numeric_offset(s, pos)?),
            b'Z' => self.offset = Some(zone(s, pos)?),
            b's' => {
                let neg = s.get(*pos) == Some(&b'-');
                if neg {
                    *pos += 1;
                }
                let start = *pos;
                let mut v: i64 = 0;
                while *pos < s.len() && s[*pos].is_ascii_digit() {
                    v = v
                        .saturating_mul(10)
                        .saturating_add(i64::from(s[*pos] - b'0'));
                    *pos += 1;
                }
                if *pos == start {
                    return None;
                }
                self.epoch = Some(if neg { -v } else { v });
            }
            b'L' => {
                let start = *pos;
                let mut nanos: u32 = 0;
                while *pos < s.len() && *pos - start < 9 && s[*pos].is_ascii_digit() {
                    nanos = nanos * 10 + u32::from(s[*pos] - b'0');
                    *pos += 1;
                }
                let digits = *pos - start;
                if digits == 0 {
                    return None;
                }
                self.nanos = nanos * 10u32.pow(9 - digits as u32);
            }
            _ => return None,
        }
        Some(())
    }
}

pub(crate) use kb_core::civil::{civil_from_days, days_from_civil};

/// Parse `Time_Offset`: `Z`, `+HHMM`, `-HHMM` or `±HH:MM`, in seconds east of UTC.
pub fn parse_offset(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    let mut pos = 0;
    let o = numeric_offset(b, &mut pos)?;
    (pos == b.len()).then_some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for d in [-1000, 0, 1, 59, 365, 10_957, 19_000, 50_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
