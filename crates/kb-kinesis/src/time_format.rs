//! `time_key_format`: glibc's `strftime` in UTC and the C locale, plus Fluent Bit's `%3N`
//! (milliseconds), `%9N` and `%L` (nanoseconds) (spec §2.3).
//!
//! The format is parsed once ([`TimeFormat::compile`]) into items, and everything that does not
//! depend on the time (literal text, `%%`, `%n`, `%t`, `%z`, `%Z`, unknown conversions) is folded
//! into literal bytes then. [`TimeFormat::write`] only does the civil-time arithmetic and the
//! numbers, appending to the caller's buffer without allocating.
//!
//! glibc details reproduced (checked against glibc 2.36 by `tests/fmt_time_libc.rs`): the
//! flags `_` `-` `0` `^` `#`, a field width, the `E`/`O` modifiers (no effect in the C locale;
//! invalid combinations are copied literally like glibc does), the width padding of text
//! conversions, and the copying of an unknown conversion (`%q` → `%q`, padded to its width).

use kb_core::civil::{civil_from_days, days_from_civil};
use kb_core::event::EventTime;

/// The default `time_key_format` (Fluent Bit's `oks/kinesis.h`).
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Widths above this are clamped (with a warning): glibc would happily pad to any size, but a
/// timestamp kilobytes wide is a typo.
pub const MAX_WIDTH: usize = 256;

/// The formatted text of one timestamp may not exceed this many bytes.
pub const MAX_OUTPUT: usize = 4096;

/// The timestamp could not be formatted (its text would exceed [`MAX_OUTPUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Could not create time stamp for {secs} unix seconds")]
pub struct TimeFormatError {
    /// The event's seconds since the epoch.
    pub secs: u32,
}

/// A compiled `time_key_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    source: String,
    items: Vec<Item>,
    /// Literal bytes referenced by [`Item::Lit`].
    lits: Vec<u8>,
    subsecond: bool,
}

/// One piece of the compiled format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// `lits[start..end]`.
    Lit(u32, u32),
    /// `%3N`.
    Millis,
    /// `%9N`, `%L`.
    Nanos,
    /// `%f` of the Go plugins' strftime: microseconds.
    Micros,
    /// A time-dependent glibc conversion.
    Conv(Spec),
}

/// A parsed `%[flags][width][modifier]conv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    conv: u8,
    /// 0, `_`, `-` or `0` (the last one given wins, as in glibc).
    pad: u8,
    /// -1 when absent (glibc's convention, which the padding rules below rely on).
    width: i32,
    /// `^`.
    upper: bool,
    /// `#`.
    change_case: bool,
}

/// The broken-down UTC time the conversions read.
#[derive(Debug, Clone, Copy)]
struct Tm {
    year: i64,
    /// 0..=11
    mon: i64,
    /// 1..=31
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    /// 0 = Sunday
    wday: i64,
    /// 0..=365
    yday: i64,
    epoch: u64,
}

impl Tm {
    fn from_secs(secs: u32) -> Tm {
        let secs = u64::from(secs);
        let days = (secs / 86_400) as i64;
        let sod = (secs % 86_400) as i64;
        let (year, mon, mday) = civil_from_days(days);
        let (mon, mday) = (i64::from(mon), i64::from(mday));
        Tm {
            year,
            mon: mon - 1,
            mday,
            hour: sod / 3600,
            min: sod / 60 % 60,
            sec: sod % 60,
            // 1970-01-01 was a Thursday.
            wday: (days + 4).rem_euclid(7),
            yday: days - days_from_civil(year, 1, 1),
            epoch: secs,
        }
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// glibc's `iso_week_days`: days since the Monday starting the ISO week-based year that
/// contains day `yday` (negative: it belongs to the previous year).
fn iso_week_days(yday: i64, wday: i64) -> i64 {
    const BIG_ENOUGH_MULTIPLE_OF_7: i64 = (366 / 7 + 2) * 7;
    yday - (yday - wday + 4 + BIG_ENOUGH_MULTIPLE_OF_7) % 7 + 4 - 1
}

/// (ISO week-based year, days since its first Monday).
fn iso_year_and_days(tm: &Tm) -> (i64, i64) {
    let mut year = tm.year;
    let mut days = iso_week_days(tm.yday, tm.wday);
    if days < 0 {
        year -= 1;
        days = iso_week_days(tm.yday + 365 + i64::from(is_leap(year)), tm.wday);
    } else {
        let d = iso_week_days(tm.yday - (365 + i64::from(is_leap(year))), tm.wday);
        if d >= 0 {
            year += 1;
            days = d;
        }
    }
    (year, days)
}

const WDAY_ABBR: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WDAY_FULL: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MON_ABBR: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MON_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// What a conversion character means for compilation.
enum Kind {
    /// Depends on the time.
    Time,
    /// Same text for every time (folded into a literal).
    Constant,
    /// Not a glibc conversion, or a modifier glibc rejects for it: copied literally.
    Bad,
}

fn classify(conv: u8, modifier: u8) -> Kind {
    let e = modifier == b'E';
    let o = modifier == b'O';
    let any = modifier != 0;
    match conv {
        b'a' | b'A' if any => Kind::Bad,
        b'b' | b'h' | b'B' if e => Kind::Bad,
        b'c' | b'x' | b'X' if o => Kind::Bad,
        b'Y' if o => Kind::Bad,
        b'D' | b'F' if any => Kind::Bad,
        b'd' | b'e' | b'g' | b'G' | b'H' | b'I' | b'j' | b'k' | b'l' | b'm' | b'M' | b'S'
        | b'U' | b'V' | b'w' | b'W'
            if e =>
        {
            Kind::Bad
        }
        b'%' | b'n' | b't' | b'z' | b'Z' => Kind::Constant,
        b'a' | b'A' | b'b' | b'B' | b'c' | b'C' | b'd' | b'D' | b'e' | b'F' | b'g' | b'G'
        | b'h' | b'H' | b'I' | b'j' | b'k' | b'l' | b'm' | b'M' | b'p' | b'P' | b'r' | b'R'
        | b's' | b'S' | b'T' | b'u' | b'U' | b'V' | b'w' | b'W' | b'x' | b'X' | b'y' | b'Y' => {
            Kind::Time
        }
        _ => Kind::Bad,
    }
}

impl TimeFormat {
    /// Compile a `time_key_format`; the warnings name conversions glibc does not know (they are
    /// copied literally, as `strftime` does) and clamped widths.
    pub fn compile(fmt: &str) -> (TimeFormat, Vec<String>) {
        let mut warnings = Vec::new();
        let mut tf = TimeFormat {
            source: fmt.to_owned(),
            items: Vec::new(),
            lits: Vec::new(),
            subsecond: false,
        };
        let b = fmt.as_bytes();
        // Literal bytes not yet closed into an item.
        let mut lit_start = 0usize;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                tf.lits.push(b[i]);
                i += 1;
                continue;
            }
            let pct = i;
            // Fluent Bit's own conversions are recognised before strftime sees the format.
            let special = if b[i + 1..].starts_with(b"3N") {
                Some((Item::Millis, 3))
            } else if b[i + 1..].starts_with(b"9N") {
                Some((Item::Nanos, 3))
            } else if b[i + 1..].starts_with(b"L") {
                Some((Item::Nanos, 2))
            } else {
                None
            };
            if let Some((item, len)) = special {
                tf.close_lit(&mut lit_start);
                tf.items.push(item);
                tf.subsecond = true;
                i += len;
                continue;
            }

            // %[flags][width][modifier]conv, parsed exactly as glibc's loop does.
            i += 1;
            let mut spec = Spec {
                conv: 0,
                pad: 0,
                width: -1,
                upper: false,
                change_case: false,
            };
            while let Some(&f) = b.get(i) {
                match f {
                    b'_' | b'-' | b'0' => spec.pad = f,
                    b'^' => spec.upper = true,
                    b'#' => spec.change_case = true,
                    _ => break,
                }
                i += 1;
            }
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                let mut w: usize = 0;
                while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
                    w = w.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                    i += 1;
                }
                if w > MAX_WIDTH {
                    warnings.push(format!(
                        "field width {w} in '{}' clamped to {MAX_WIDTH}",
                        String::from_utf8_lossy(&b[pct..i.min(b.len())])
                    ));
                    w = MAX_WIDTH;
                }
                spec.width = w as i32;
            }
            let modifier = match b.get(i) {
                Some(&m @ (b'E' | b'O')) => {
                    i += 1;
                    m
                }
                _ => 0,
            };
            let Some(&conv) = b.get(i) else {
                // A '%' sequence cut by the end of the format: glibc copies it as it is.
                let text = &b[pct..];
                warnings.push(format!(
                    "incomplete conversion '{}' at the end, copied literally",
                    String::from_utf8_lossy(text)
                ));
                tf.push_bad(text, &spec);
                break;
            };
            i += 1;
            spec.conv = conv;
            match classify(conv, modifier) {
                Kind::Time => {
                    tf.close_lit(&mut lit_start);
                    tf.items.push(Item::Conv(spec));
                }
                Kind::Constant => {
                    let tm = Tm::from_secs(0);
                    render(&spec, &tm, &mut tf.lits);
                }
                Kind::Bad => {
                    // Copy whole UTF-8 characters into the warning, but the bytes as glibc does.
                    let end = (i..=b.len())
                        .find(|&e| fmt.is_char_boundary(e))
                        .unwrap_or(b.len());
                    warnings.push(format!(
                        "unknown conversion '{}', copied literally",
                        &fmt[pct..end]
                    ));
                    tf.push_bad(&b[pct..i], &spec);
                }
            }
        }
        tf.close_lit(&mut lit_start);
        (tf, warnings)
    }

    /// Turn the literal bytes gathered since `lit_start` into an item.
    fn close_lit(&mut self, lit_start: &mut usize) {
        if self.lits.len() > *lit_start {
            self.items
                .push(Item::Lit(*lit_start as u32, self.lits.len() as u32));
        }
        *lit_start = self.lits.len();
    }

    /// glibc's `bad_format`: the sequence from '%' on, copied with the field width and case
    /// flags applied.
    fn push_bad(&mut self, text: &[u8], spec: &Spec) {
        add_padding(&mut self.lits, text.len(), spec.width, spec.pad);
        let start = self.lits.len();
        self.lits.extend_from_slice(text);
        // glibc applies `#` for %b/%h before it rejects the modifier.
        if spec.upper || (spec.change_case && matches!(spec.conv, b'b' | b'h')) {
            self.lits[start..].make_ascii_uppercase();
        }
    }

    /// The format text this was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the output depends on sub-second time (`%3N`, `%9N`, `%L`); when it does not,
    /// the text is the same for every event of the same second and callers may cache it.
    pub fn has_subsecond(&self) -> bool {
        self.subsecond
    }

    /// Append the formatted UTC time to `out`; on error `out` is left as it was.
    pub fn write(&self, t: EventTime, out: &mut Vec<u8>) -> Result<(), TimeFormatError> {
        let start = out.len();
        let tm = Tm::from_secs(t.secs);
        for item in &self.items {
            match *item {
                Item::Lit(s, e) => out.extend_from_slice(&self.lits[s as usize..e as usize]),
                Item::Millis => write_fixed(u64::from(t.nanos / 1_000_000 % 1000), 3, out),
                Item::Nanos => write_fixed(u64::from(t.nanos % 1_000_000_000), 9, out),
                Item::Micros => write_fixed(u64::from(t.nanos / 1000 % 1_000_000), 6, out),
                Item::Conv(ref spec) => render(spec, &tm, out),
            }
        }
        if out.len() - start > MAX_OUTPUT {
            out.truncate(start);
            return Err(TimeFormatError { secs: t.secs });
        }
        Ok(())
    }
}

/// Per-second memo for [`TimeFormat::write_cached`]: the text of the last second rendered,
/// with the positions where its sub-second fields go.
#[derive(Debug, Clone, Default)]
pub struct TimeCache {
    /// The second memoised, and the format (its source text) it was rendered with.
    secs: Option<u32>,
    format: String,
    text: Vec<u8>,
    /// (offset in `text`, digits: 3 or 9) of each `%3N` / `%9N` / `%L`.
    holes: Vec<(usize, u8)>,
}

impl TimeFormat {
    /// Like [`TimeFormat::write`], but renders the calendar part once per second into
    /// `cache` and then only fills in the sub-second digits.
    pub fn write_cached(
        &self,
        t: EventTime,
        cache: &mut TimeCache,
        out: &mut Vec<u8>,
    ) -> Result<(), TimeFormatError> {
        if cache.secs != Some(t.secs) || cache.format != self.source {
            cache.secs = None;
            cache.format.clear();
            cache.format.push_str(&self.source);
            cache.text.clear();
            cache.holes.clear();
            let tm = Tm::from_secs(t.secs);
            let mut extra = 0;
            for item in &self.items {
                match *item {
                    Item::Lit(s, e) => cache
                        .text
                        .extend_from_slice(&self.lits[s as usize..e as usize]),
                    Item::Millis => {
                        cache.holes.push((cache.text.len(), 3));
                        extra += 3;
                    }
                    Item::Nanos => {
                        cache.holes.push((cache.text.len(), 9));
                        extra += 9;
                    }
                    Item::Micros => {
                        cache.holes.push((cache.text.len(), 6));
                        extra += 6;
                    }
                    Item::Conv(ref spec) => render(spec, &tm, &mut cache.text),
                }
            }
            if cache.text.len() + extra > MAX_OUTPUT {
                return Err(TimeFormatError { secs: t.secs });
            }
            cache.secs = Some(t.secs);
        }
        let mut from = 0;
        for &(at, digits) in &cache.holes {
            out.extend_from_slice(&cache.text[from..at]);
            match digits {
                3 => write_fixed(u64::from(t.nanos / 1_000_000 % 1000), 3, out),
                6 => write_fixed(u64::from(t.nanos / 1000 % 1_000_000), 6, out),
                _ => write_fixed(u64::from(t.nanos % 1_000_000_000), 9, out),
            }
            from = at;
        }
        out.extend_from_slice(&cache.text[from..]);
        Ok(())
    }
}

impl TimeFormat {
    /// Compile a `time_key_format` of the Go plugins, which use lestrrat-go/strftime with
    /// `%L` = milliseconds and `%f` = microseconds: no flags or widths, and a conversion it does
    /// not know (or a `%` at the end) is an error, as it makes the Go plugin fail to start. The
    /// time is UTC (`%Z` is `UTC`, `%z` `+0000`).
    pub fn compile_go(fmt: &str) -> Result<TimeFormat, String> {
        let mut tf = TimeFormat {
            source: fmt.to_owned(),
            items: Vec::new(),
            lits: Vec::new(),
            subsecond: false,
        };
        let plain = |conv: u8| Spec {
            conv,
            pad: 0,
            width: -1,
            upper: false,
            change_case: false,
        };
        let b = fmt.as_bytes();
        let mut lit_start = 0usize;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                tf.lits.push(b[i]);
                i += 1;
                continue;
            }
            let Some(&conv) = b.get(i + 1) else {
                return Err("stray % at the end".into());
            };
            i += 2;
            match conv {
                b'%' => tf.lits.push(b'%'),
                b'n' => tf.lits.push(b'\n'),
                b't' => tf.lits.push(b'\t'),
                b'Z' => tf.lits.extend_from_slice(b"UTC"),
                b'z' => tf.lits.extend_from_slice(b"+0000"),
                b'L' | b'f' => {
                    tf.close_lit(&mut lit_start);
                    tf.items.push(if conv == b'L' {
                        Item::Millis
                    } else {
                        Item::Micros
                    });
                    tf.subsecond = true;
                }
                // `%v` is `%e-%b-%Y`.
                b'v' => {
                    tf.close_lit(&mut lit_start);
                    tf.items.push(Item::Conv(plain(b'e')));
                    tf.lits.push(b'-');
                    tf.close_lit(&mut lit_start);
                    tf.items.push(Item::Conv(plain(b'b')));
                    tf.lits.push(b'-');
                    tf.close_lit(&mut lit_start);
                    tf.items.push(Item::Conv(plain(b'Y')));
                }
                // The rest mean what glibc's mean in the C locale.
                b'A' | b'a' | b'B' | b'b' | b'C' | b'c' | b'D' | b'd' | b'e' | b'F' | b'H'
                | b'I' | b'j' | b'k' | b'l' | b'M' | b'm' | b'p' | b'R' | b'r' | b'S' | b'T'
                | b'U' | b'u' | b'V' | b'W' | b'w' | b'X' | b'x' | b'Y' | b'y' | b'h' => {
                    tf.close_lit(&mut lit_start);
                    tf.items.push(Item::Conv(plain(conv)));
                }
                _ => {
                    let end = (i..=b.len())
                        .find(|&e| fmt.is_char_boundary(e))
                        .unwrap_or(b.len());
                    return Err(format!("unknown conversion '{}'", &fmt[i - 2..end.max(i)]));
                }
            }
        }
        tf.close_lit(&mut lit_start);
        Ok(tf)
    }
}

impl Default for TimeFormat {
    /// `%Y-%m-%dT%H:%M:%S`.
    fn default() -> Self {
        TimeFormat::compile(DEFAULT_TIME_FORMAT).0
    }
}

/// `value` in exactly `digits` digits with leading zeros.
fn write_fixed(mut value: u64, digits: usize, out: &mut Vec<u8>) {
    let mut buf = [b'0'; 20];
    for slot in buf[..digits].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out.extend_from_slice(&buf[..digits]);
}

/// glibc's `add` macro: pad to `width` before text of length `n` (zeros only with the `0` flag).
fn add_padding(out: &mut Vec<u8>, n: usize, width: i32, pad: u8) {
    let delta = width as i64 - n as i64;
    if delta > 0 {
        let fill = if pad == b'0' { b'0' } else { b' ' };
        out.resize(out.len() + delta as usize, fill);
    }
}

/// glibc's `cpy` macro: padded text with the case conversion applied.
fn copy_text(out: &mut Vec<u8>, text: &str, width: i32, pad: u8, upper: bool, lower: bool) {
    add_padding(out, text.len(), width, pad);
    let start = out.len();
    out.extend_from_slice(text.as_bytes());
    // glibc tests `to_lowcase` first.
    if lower {
        out[start..].make_ascii_lowercase();
    } else if upper {
        out[start..].make_ascii_uppercase();
    }
}

/// glibc's `do_number` / `do_number_spacepad` for a non-negative value.
fn number(out: &mut Vec<u8>, value: i64, min_digits: i32, spec: &Spec, spacepad: bool) {
    // Fast path for the common `%Y %m %d %H %M %S`: no flags, no width, value fits.
    if spec.width < 0 && spec.pad == 0 && !spacepad && (0..10_000).contains(&value) {
        let digits = if value >= 1000 {
            4
        } else {
            min_digits.max(1) as usize
        };
        if digits <= 4 && value < 10i64.pow(digits as u32) {
            write_fixed(value as u64, digits, out);
            return;
        }
    }
    let mut pad = spec.pad;
    if spacepad && pad != b'0' && pad != b'-' {
        pad = b'_';
    }
    let mut width = spec.width;
    let digits = min_digits.max(width);
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut u = value.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let text = &buf[i..];
    if pad != b'-' {
        let padding = digits - text.len() as i32;
        if padding > 0 {
            if pad == b'_' {
                out.resize(out.len() + padding as usize, b' ');
                width = if width > padding { width - padding } else { 0 };
            } else {
                out.resize(out.len() + padding as usize, b'0');
                width = 0;
            }
        }
    }
    add_padding(out, text.len(), width, pad);
    out.extend_from_slice(text);
}

/// A subformat (`%c`, `%D`, `%F`, `%r`, `%R`, `%T`, `%x`, `%X`): rendered without flags, then
/// padded to the width as a whole and upper-cased with `^`.
fn subformat(out: &mut Vec<u8>, fmt: &[u8], spec: &Spec, tm: &Tm) {
    let start = out.len();
    let mut i = 0;
    while i < fmt.len() {
        if fmt[i] == b'%' {
            let inner = Spec {
                conv: fmt[i + 1],
                pad: 0,
                width: -1,
                upper: false,
                change_case: false,
            };
            render(&inner, tm, out);
            i += 2;
        } else {
            out.push(fmt[i]);
            i += 1;
        }
    }
    let len = out.len() - start;
    let delta = spec.width as i64 - len as i64;
    if delta > 0 {
        // Padding goes before the text: shift the text right and fill the gap.
        let delta = delta as usize;
        out.resize(out.len() + delta, 0);
        out.copy_within(start..start + len, start + delta);
        let fill = if spec.pad == b'0' { b'0' } else { b' ' };
        out[start..start + delta].fill(fill);
    }
    if spec.upper {
        out[start..].make_ascii_uppercase();
    }
}

/// Render one conversion (glibc's `__strftime_internal` switch, for the C locale and UTC).
fn render(spec: &Spec, tm: &Tm, out: &mut Vec<u8>) {
    let (w, pad) = (spec.width, spec.pad);
    // `#` upper-cases names and lower-cases %p/%Z; `^` upper-cases (lower-casing wins).
    let name_upper = spec.upper || spec.change_case;
    match spec.conv {
        b'%' => {
            add_padding(out, 1, w, pad);
            out.push(b'%');
        }
        b'n' => {
            add_padding(out, 1, w, pad);
            out.push(b'\n');
        }
        b't' => {
            add_padding(out, 1, w, pad);
            out.push(b'\t');
        }
        b'a' => copy_text(out, WDAY_ABBR[tm.wday as usize], w, pad, name_upper, false),
        b'A' => copy_text(out, WDAY_FULL[tm.wday as usize], w, pad, name_upper, false),
        b'b' | b'h' => copy_text(out, MON_ABBR[tm.mon as usize], w, pad, name_upper, false),
        b'B' => copy_text(out, MON_FULL[tm.mon as usize], w, pad, name_upper, false),
        b'p' | b'P' => {
            let text = if tm.hour >= 12 { "PM" } else { "AM" };
            let lower = spec.conv == b'P' || spec.change_case;
            copy_text(out, text, w, pad, spec.upper, lower);
        }
        b'Z' => copy_text(out, "GMT", w, pad, spec.upper, spec.change_case),
        b'z' => {
            // UTC: the sign, then 0 as a number of at least 4 digits.
            add_padding(out, 1, w, pad);
            out.push(b'+');
            number(out, 0, 4, spec, false);
        }
        b'c' => subformat(out, b"%a %b %e %H:%M:%S %Y", spec, tm),
        b'D' | b'x' => subformat(out, b"%m/%d/%y", spec, tm),
        b'F' => subformat(out, b"%Y-%m-%d", spec, tm),
        b'r' => subformat(out, b"%I:%M:%S %p", spec, tm),
        b'R' => subformat(out, b"%H:%M", spec, tm),
        b'T' | b'X' => subformat(out, b"%H:%M:%S", spec, tm),
        b'C' => number(out, tm.year / 100, 1, spec, false),
        b'd' => number(out, tm.mday, 2, spec, false),
        b'e' => number(out, tm.mday, 2, spec, true),
        b'H' => number(out, tm.hour, 2, spec, false),
        b'k' => number(out, tm.hour, 2, spec, true),
        b'I' => number(out, hour12(tm.hour), 2, spec, false),
        b'l' => number(out, hour12(tm.hour), 2, spec, true),
        b'j' => number(out, tm.yday + 1, 3, spec, false),
        b'm' => number(out, tm.mon + 1, 2, spec, false),
        b'M' => number(out, tm.min, 2, spec, false),
        b'S' => number(out, tm.sec, 2, spec, false),
        // glibc jumps past the `digits = max(d, width)` step for %s: only the width pads it.
        b's' => {
            let unpadded = Spec {
                pad: if spec.pad == b'0' { b'0' } else { b'-' },
                ..*spec
            };
            number(out, tm.epoch as i64, 1, &unpadded, false)
        }
        b'u' => number(out, (tm.wday + 6) % 7 + 1, 1, spec, false),
        b'w' => number(out, tm.wday, 1, spec, false),
        b'U' => number(out, (tm.yday - tm.wday + 7) / 7, 2, spec, false),
        b'W' => number(out, (tm.yday - (tm.wday + 6) % 7 + 7) / 7, 2, spec, false),
        b'y' => number(out, tm.year % 100, 2, spec, false),
        b'Y' => number(out, tm.year, 1, spec, false),
        b'g' => number(out, iso_year_and_days(tm).0 % 100, 2, spec, false),
        b'G' => number(out, iso_year_and_days(tm).0, 1, spec, false),
        b'V' => number(out, iso_year_and_days(tm).1 / 7 + 1, 2, spec, false),
        // `compile` only creates specs for the conversions above.
        _ => {}
    }
}

fn hour12(h: i64) -> i64 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, secs: u32, nanos: u32) -> String {
        let (tf, _) = TimeFormat::compile(f);
        let mut out = Vec::new();
        tf.write(EventTime::new(secs, nanos), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn civil_roundtrip() {
        for days in [0i64, 59, 60, 365, 11_016, 19_675, 49_710] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn default_and_fluent_bit_conversions() {
        assert_eq!(
            fmt(DEFAULT_TIME_FORMAT, 1_700_000_000, 0),
            "2023-11-14T22:13:20"
        );
        assert_eq!(
            fmt("%s|%9N|%L|%3N|%z|%Z", 1_700_000_000, 903_172_886),
            "1700000000|903172886|903172886|903|+0000|GMT"
        );
        assert_eq!(fmt("%%L %%3N", 0, 5), "%L %3N");
        assert_eq!(fmt("%3N", 0, 5_000_000), "005");
    }

    #[test]
    fn go_strftime() {
        let go = |f: &str, secs: u32, nanos: u32| {
            let tf = TimeFormat::compile_go(f).unwrap();
            let mut out = Vec::new();
            tf.write(EventTime::new(secs, nanos), &mut out).unwrap();
            let mut cached = Vec::new();
            tf.write_cached(
                EventTime::new(secs, nanos),
                &mut TimeCache::default(),
                &mut cached,
            )
            .unwrap();
            assert_eq!(out, cached);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            go(
                "%Y-%m-%dT%H:%M:%S.%L|%f|%Z|%z|%v|%%L",
                1_700_000_000,
                903_172_886
            ),
            "2023-11-14T22:13:20.903|903172|UTC|+0000|14-Nov-2023|%L"
        );
        assert_eq!(go("%c", 1_700_000_000, 0), "Tue Nov 14 22:13:20 2023");
        assert!(TimeFormat::compile_go("%3N").is_err());
        assert!(TimeFormat::compile_go("%s").is_err());
        assert!(TimeFormat::compile_go("x%").is_err());
    }

    #[test]
    fn unknown_conversions_are_copied_and_warned() {
        let (tf, w) = TimeFormat::compile("a%qb%5Q%Ey%Oc%");
        assert_eq!(w.len(), 4, "{w:?}");
        let mut out = Vec::new();
        tf.write(EventTime::new(1_700_000_000, 0), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a%qb  %5Q23%Oc%");
        assert!(!tf.has_subsecond());
    }
}
