//! kb-parsers: what inputs and filters share to read text as Fluent Bit does.
//!
//! Fluent Bit parsers (`[PARSER]` sections, YAML `parsers:`): `json`, `regex`, `logfmt` and
//! `ltsv`, with `Time_Key`/`Time_Format`/`Time_Keep`/`Time_Offset`/`Time_Strict`, `Types` and
//! `Skip_Empty_Values`.
//!
//! [`ParserRegistry::from_sections`] validates every section (errors name the section's or the
//! key's location); [`Parser::parse`] turns one line into one event written straight into an
//! [`EventWriter`], values copied from the line without intermediate allocations.
//!
//! Behaviour follows Fluent Bit per format:
//! - `Time_Key` defaults to `time` and is only looked at when `Time_Format` is set.
//! - A time value that does not parse: `json` keeps the field and the current time; `regex`
//!   drops the field and keeps the current time; `logfmt` and `ltsv` reject the line.
//! - `Types` applies to `regex`, `logfmt` and `ltsv` (Fluent Bit's `json` ignores it):
//!   `integer` (leading digits as `atoll`, else 0), `float` (as `atof`), `hex` (as `strtoull`
//!   base 16), `bool` (`true`/`false` prefix, any case; anything else stays a string),
//!   `string`.
//! - `Skip_Empty_Values` (default on) drops empty `regex` captures, and so the groups that did
//!   not take part in the match (Fluent Bit sees them as empty); with it off they are `""`.
//! - `decode_field`, `decode_field_as` are accepted and ignored with a warning (not
//!   implemented yet).

mod cri;
mod json;
mod logfmt;
mod ltsv;
pub mod multiline;
mod regex;
pub mod time;

use kb_config::values::parse_bool;
use kb_config::{ConfigError, ConfigWarning, Property, Section};
use kb_core::event::{EventTime, EventWriter};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

pub use self::time::TimeFormat;

/// Why a line could not be parsed (the writer is left unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the line does not match the regex")]
    NoMatch,
    #[error("invalid JSON at byte {0}")]
    Json(usize),
    #[error("the JSON value is not an object")]
    NotAnObject,
    #[error("no key/value pair found")]
    Empty,
    #[error("key without a value (logfmt_no_bare_keys)")]
    BareKey,
    #[error("invalid time '{value}' for format '{format}'")]
    Time { value: String, format: String },
}

/// Conversion named in `Types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Float,
    Hex,
    Bool,
}

#[derive(Debug, Clone)]
enum Format {
    Json,
    Regex(Box<regex::RegexFormat>),
    Logfmt {
        no_bare_keys: bool,
    },
    Ltsv,
    /// The CRI log line (only the built-in `cri` multiline parser uses it).
    Cri,
}

/// One configured parser.
#[derive(Debug, Clone)]
pub struct Parser {
    name: String,
    format: Format,
    time_format: Option<TimeFormat>,
    time_key: String,
    time_keep: bool,
    types: Vec<(String, FieldType)>,
    skip_empty: bool,
}

/// Every parser of the configuration, by name.
#[derive(Debug, Clone, Default)]
pub struct ParserRegistry {
    parsers: HashMap<String, Arc<Parser>>,
    /// Findings to log at startup (ignored keys).
    pub warnings: Vec<ConfigWarning>,
}

const KEYS: &[&str] = &[
    "name",
    "format",
    "regex",
    "time_key",
    "time_format",
    "time_keep",
    "time_offset",
    "time_strict",
    "types",
    "skip_empty_values",
    "logfmt_no_bare_keys",
];
const IGNORED_KEYS: &[&str] = &["decode_field", "decode_field_as"];

impl ParserRegistry {
    /// Build and validate every `[PARSER]` section.
    pub fn from_sections(sections: &[Section]) -> Result<Self, Vec<ConfigError>> {
        let mut reg = ParserRegistry::default();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for s in sections {
            match Parser::from_section(s, &mut reg.warnings) {
                Ok(p) => {
                    let loc = s.get("name").map_or(&s.location, |p| &p.location);
                    if let Some(first) = seen.get(&p.name) {
                        errors.push(ConfigError::new(
                            loc.clone(),
                            format!("'name': parser '{}' is already defined at {first}", p.name),
                        ));
                        continue;
                    }
                    seen.insert(p.name.clone(), loc.to_string());
                    reg.parsers.insert(p.name.clone(), Arc::new(p));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(reg)
        } else {
            Err(errors)
        }
    }

    /// The parser called `name`.
    pub fn get(&self, name: &str) -> Option<&Parser> {
        self.parsers.get(name).map(|p| &**p)
    }

    /// The parser called `name`, shared.
    pub fn get_arc(&self, name: &str) -> Option<Arc<Parser>> {
        self.parsers.get(name).cloned()
    }

    /// Number of parsers.
    pub fn len(&self) -> usize {
        self.parsers.len()
    }

    /// True when no parser is defined.
    pub fn is_empty(&self) -> bool {
        self.parsers.is_empty()
    }
}

fn key_error(p: &Property, parser: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(
        p.location.clone(),
        format!("parser '{parser}': '{}': {msg}", p.key),
    )
}

/// Parse a `Types` specification (`key:type` separated by spaces).
pub fn parse_types(spec: &str) -> Result<Vec<(String, FieldType)>, String> {
    let mut out = Vec::new();
    for entry in spec.split_ascii_whitespace() {
        let Some((key, ty)) = entry.split_once(':') else {
            return Err(format!("'{entry}' is not 'key:type'"));
        };
        if key.is_empty() {
            return Err(format!("'{entry}' has no key"));
        }
        let ty = match ty.to_ascii_lowercase().as_str() {
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "hex" => FieldType::Hex,
            "bool" => FieldType::Bool,
            "string" => FieldType::String,
            _ => {
                return Err(format!(
                    "unknown type '{ty}' for '{key}' (expected integer, float, hex, bool or string)"
                ))
            }
        };
        out.push((key.to_string(), ty));
    }
    Ok(out)
}

impl Parser {
    fn from_section(
        s: &Section,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<Parser, Vec<ConfigError>> {
        // As Fluent Bit's get_parser_key: an empty value is the same as no value.
        let get = |k: &str| s.get(k).filter(|p| !p.value.trim().is_empty());
        let Some(name_prop) = get("name") else {
            return Err(vec![ConfigError::new(
                s.location.clone(),
                "parser section without 'name'",
            )]);
        };
        let name = name_prop.value.trim().to_string();
        let mut errors = Vec::new();
        for p in &s.props {
            if IGNORED_KEYS.contains(&p.key.as_str()) {
                warnings.push(ConfigWarning {
                    location: p.location.clone(),
                    message: format!("parser '{name}': '{}' is not supported, ignored", p.key),
                });
            } else if !KEYS.contains(&p.key.as_str()) {
                errors.push(key_error(p, &name, "unknown key"));
            }
        }
        let mut bool_key = |k: &str, default: bool| match get(k) {
            None => default,
            Some(p) => parse_bool(&p.value).unwrap_or_else(|| {
                errors.push(key_error(
                    p,
                    &name,
                    format!("invalid boolean '{}'", p.value),
                ));
                default
            }),
        };
        let time_keep = bool_key("time_keep", false);
        let time_strict = bool_key("time_strict", true);
        let skip_empty = bool_key("skip_empty_values", true);
        let no_bare_keys = bool_key("logfmt_no_bare_keys", false);

        let format = match get("format") {
            None => {
                errors.push(ConfigError::new(
                    s.location.clone(),
                    format!("parser '{name}': 'format' is not set"),
                ));
                None
            }
            Some(p) => match p.value.trim().to_ascii_lowercase().as_str() {
                "json" => Some(Format::Json),
                "logfmt" => Some(Format::Logfmt { no_bare_keys }),
                "ltsv" => Some(Format::Ltsv),
                "regex" => match get("regex") {
                    None => {
                        errors.push(ConfigError::new(
                            s.location.clone(),
                            format!("parser '{name}': 'regex' is required with format regex"),
                        ));
                        None
                    }
                    Some(r) => match regex::RegexFormat::new(&r.value) {
                        Ok(f) => Some(Format::Regex(Box::new(f))),
                        Err(e) => {
                            errors.push(key_error(r, &name, e));
                            None
                        }
                    },
                },
                other => {
                    errors.push(key_error(
                        p,
                        &name,
                        format!("unknown format '{other}' (expected json, regex, logfmt or ltsv)"),
                    ));
                    None
                }
            },
        };

        let offset = match get("time_offset") {
            None => 0,
            Some(p) => time::parse_offset(&p.value).unwrap_or_else(|| {
                errors.push(key_error(
                    p,
                    &name,
                    format!("invalid offset '{}' (expected +HHMM or -HHMM)", p.value),
                ));
                0
            }),
        };
        let time_format = match get("time_format") {
            None => None,
            Some(p) => match TimeFormat::new(&p.value, offset, time_strict) {
                Ok(f) => Some(f),
                Err(e) => {
                    errors.push(key_error(p, &name, e));
                    None
                }
            },
        };
        let types = match get("types") {
            None => Vec::new(),
            Some(p) => parse_types(&p.value).unwrap_or_else(|e| {
                errors.push(key_error(p, &name, e));
                Vec::new()
            }),
        };
        let time_key = get("time_key").map_or_else(|| "time".to_string(), |p| p.value.clone());
        match format {
            Some(format) if errors.is_empty() => Ok(Parser {
                name,
                format,
                time_format,
                time_key,
                time_keep,
                types,
                skip_empty,
            }),
            _ => Err(errors),
        }
    }

    /// A parser made in code, as Fluent Bit makes the sub-parsers of its built-in multiline
    /// parsers (`Time_Strict off`, no `Types`).
    fn builtin(name: &str, format: Format, time_format: &str, time_key: &str, keep: bool) -> Self {
        Parser {
            name: name.to_string(),
            format,
            time_format: TimeFormat::new(time_format, 0, false).ok(),
            time_key: time_key.to_string(),
            time_keep: keep,
            types: Vec::new(),
            skip_empty: true,
        }
    }

    /// Fluent Bit's `_ml_json_docker`: JSON, `time` read as `%Y-%m-%dT%H:%M:%S.%L` and kept.
    pub fn docker_json() -> Self {
        Parser::builtin(
            "_ml_json_docker",
            Format::Json,
            "%Y-%m-%dT%H:%M:%S.%L",
            "time",
            true,
        )
    }

    /// Fluent Bit's `_ml_cri`: the CRI line, `time` read as `%Y-%m-%dT%H:%M:%S.%L%z` and kept.
    pub fn cri() -> Self {
        Parser::builtin(
            "_ml_cri",
            Format::Cri,
            "%Y-%m-%dT%H:%M:%S.%L%z",
            "time",
            true,
        )
    }

    /// The parser's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parse one line (without its line ending) into one event appended to `out`; `now` is the
    /// event time unless the time key gives one. On error `out` is left as it was.
    pub fn parse(
        &self,
        line: &[u8],
        out: &mut EventWriter,
        now: EventTime,
    ) -> Result<(), ParseError> {
        let start = out.buf.len();
        out.begin(now);
        match self.parse_map(line, &mut out.buf, now) {
            Ok(time) => {
                if let Some(time) = time {
                    // write_event_header's layout: [[ext8 type 0: secs, nanos], {}] after two
                    // array markers.
                    out.buf[start + 4..start + 8].copy_from_slice(&time.secs.to_be_bytes());
                    out.buf[start + 8..start + 12].copy_from_slice(&time.nanos.to_be_bytes());
                }
                Ok(())
            }
            Err(e) => {
                out.buf.truncate(start);
                out.count -= 1;
                Err(e)
            }
        }
    }

    /// Parse one line into the msgpack map of its fields, appended to `buf`; returns the time
    /// the line carried (`None` when the parser has no `Time_Format`, the line has no time
    /// key or its value does not parse). `now` gives the date of formats without a year. On
    /// error `buf` is left as it was.
    pub fn parse_map(
        &self,
        line: &[u8],
        buf: &mut Vec<u8>,
        now: EventTime,
    ) -> Result<Option<EventTime>, ParseError> {
        let start = buf.len();
        let r = match &self.format {
            Format::Json => json::parse(self, line, buf, now),
            Format::Regex(f) => f.parse(self, line, buf, now),
            Format::Logfmt { no_bare_keys } => logfmt::parse(self, line, buf, now, *no_bare_keys),
            Format::Ltsv => ltsv::parse(self, line, buf, now),
            Format::Cri => cri::parse(self, line, buf, now),
        };
        if r.is_err() {
            buf.truncate(start);
        }
        r
    }

    /// The compiled pattern of a `Format regex` parser.
    pub fn regex(&self) -> Option<&kb_regex::Regex> {
        match &self.format {
            Format::Regex(f) => Some(f.regex()),
            _ => None,
        }
    }

    /// Whether `key` is the time key (only when a time format is set).
    fn is_time_key(&self, key: &[u8]) -> bool {
        self.time_format.is_some() && key == self.time_key.as_bytes()
    }

    /// Parse a time value; `None` (with a warning) when it does not fit the format.
    fn lookup_time(&self, value: &[u8], now: EventTime) -> Option<EventTime> {
        let f = self.time_format.as_ref()?;
        let t = f.parse(value, now);
        if t.is_none() {
            tracing::warn!(
                parser = %self.name,
                "invalid time format {} for '{}'",
                f.as_str(),
                String::from_utf8_lossy(&value[..value.len().min(254)])
            );
        }
        t
    }

    fn time_error(&self, value: &[u8]) -> ParseError {
        ParseError::Time {
            value: String::from_utf8_lossy(value).into_owned(),
            format: self
                .time_format
                .as_ref()
                .map_or(String::new(), |f| f.as_str().to_string()),
        }
    }

    /// Write `key` and its value (converted as `Types` says).
    fn write_field(&self, buf: &mut Vec<u8>, key: &[u8], value: Value<'_>) {
        write_str(buf, key);
        let ty = if self.types.is_empty() {
            None
        } else {
            self.types
                .iter()
                .find(|(k, _)| k.as_bytes() == key)
                .map(|(_, t)| *t)
        };
        let bytes: Cow<'_, [u8]> = match (value, ty) {
            (Value::True, None) => {
                buf.push(0xc3);
                return;
            }
            (Value::True, Some(_)) => Cow::Borrowed(&b""[..]),
            (Value::Raw(v), _) => Cow::Borrowed(v),
            (Value::Escaped(v), _) => Cow::Owned(logfmt::unescape(v)),
        };
        match ty {
            None | Some(FieldType::String) => write_str(buf, &bytes),
            Some(t) => write_typed(buf, key, &bytes, t),
        }
    }
}

/// A field value as found in the line.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Raw(&'a [u8]),
    /// A logfmt quoted value with backslash escapes still in it.
    Escaped(&'a [u8]),
    /// A logfmt bare key.
    True,
}

fn write_typed(buf: &mut Vec<u8>, key: &[u8], v: &[u8], t: FieldType) {
    match t {
        FieldType::String => write_str(buf, v),
        FieldType::Integer => {
            let _ = rmp::encode::write_sint(buf, atoll(v));
        }
        FieldType::Hex => {
            let _ = rmp::encode::write_uint(buf, strtoull_hex(v));
        }
        FieldType::Float => {
            let _ = rmp::encode::write_f64(buf, atof(v));
        }
        FieldType::Bool => {
            if v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"true") {
                buf.push(0xc3);
            } else if v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"false") {
                buf.push(0xc2);
            } else {
                tracing::warn!(
                    "[parser] key={} cast error. save as string.",
                    String::from_utf8_lossy(key)
                );
                write_str(buf, v);
            }
        }
    }
}

fn skip_space(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &v[n..]
}

/// C's `atoll`: optional sign and leading digits, 0 when there are none; saturates.
fn atoll(v: &[u8]) -> i64 {
    let v = skip_space(v);
    let (neg, v) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let mut n: i64 = 0;
    for &c in v.iter().take_while(|c| c.is_ascii_digit()) {
        let d = i64::from(c - b'0');
        n = if neg {
            n.saturating_mul(10).saturating_sub(d)
        } else {
            n.saturating_mul(10).saturating_add(d)
        };
    }
    n
}

/// C's `strtoull(v, NULL, 16)`: optional sign and `0x`, leading hex digits; saturates.
fn strtoull_hex(v: &[u8]) -> u64 {
    let v = skip_space(v);
    let (neg, mut v) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    if v.len() > 2 && v[0] == b'0' && (v[1] | 0x20) == b'x' && v[2].is_ascii_hexdigit() {
        v = &v[2..];
    }
    let mut n: u64 = 0;
    for &c in v.iter().take_while(|c| c.is_ascii_hexdigit()) {
        let d = (c as char).to_digit(16).unwrap_or(0);
        n = match n.checked_mul(16).and_then(|n| n.checked_add(u64::from(d))) {
            Some(n) => n,
            None => return u64::MAX,
        };
    }
    if neg {
        n.wrapping_neg()
    } else {
        n
    }
}

/// C's `atof`: the longest leading decimal number (`inf`/`nan` too), 0.0 when there is none.
fn atof(v: &[u8]) -> f64 {
    let v = skip_space(v);
    let mut i = 0;
    if matches!(v.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    for word in [&b"infinity"[..], b"inf", b"nan"] {
        let rest = &v[i..];
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
            let s = std::str::from_utf8(&v[..i + word.len()]).unwrap_or("0");
            return s.parse().unwrap_or(0.0);
        }
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < v.len() && v[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if v.get(i) == Some(&b'.') {
        let mut j = i + 1;
        let f = digits(&mut j);
        if n + f > 0 {
            i = j;
            n += f;
        }
    }
    if n == 0 {
        return 0.0;
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(v.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    std::str::from_utf8(&v[..i])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Write a msgpack string from raw bytes (not checked for UTF-8, as Fluent Bit).
#[inline]
fn write_str(buf: &mut Vec<u8>, s: &[u8]) {
    kb_core::record::write_str(buf, s);
}

/// Reserve room for a map/array/str header whose length is not known yet.
fn reserve_header(buf: &mut Vec<u8>) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0; 5]);
    at
}

#[derive(Clone, Copy)]
enum Header {
    Map,
    Array,
    Str,
}

/// Replace a reserved header with the smallest encoding of `n` (shifting what follows).
fn patch_header(buf: &mut Vec<u8>, at: usize, kind: Header, n: usize) {
    let n32 = n as u32;
    let mut h = [0u8; 5];
    let len = match kind {
        Header::Map | Header::Array => {
            let (fix, m16, m32) = match kind {
                Header::Map => (0x80, 0xde, 0xdf),
                _ => (0x90, 0xdc, 0xdd),
            };
            if n < 16 {
                h[0] = fix | n as u8;
                1
            } else if n <= 0xffff {
                h[0] = m16;
                h[1..3].copy_from_slice(&(n as u16).to_be_bytes());
                3
            } else {
                h[0] = m32;
                h[1..5].copy_from_slice(&n32.to_be_bytes());
                5
            }
        }
        Header::Str => {
            if n < 32 {
                h[0] = 0xa0 | n as u8;
                1
            } else if n <= 0xff {
                h[0] = 0xd9;
                h[1] = n as u8;
                2
            } else if n <= 0xffff {
                h[0] = 0xda;
                h[1..3].copy_from_slice(&(n as u16).to_be_bytes());
                3
            } else {
                h[0] = 0xdb;
                h[1..5].copy_from_slice(&n32.to_be_bytes());
                5
            }
        }
    };
    buf.splice(at..at + 5, h[..len].iter().copied());
}

impl kb_core::plugin::LineParser for Parser {
    fn parse_line(&self, line: &[u8], out: &mut EventWriter, now: EventTime) -> Result<(), String> {
        self.parse(line, out, now).map_err(|e| e.to_string())
    }
}

impl kb_core::plugin::ParserLookup for ParserRegistry {
    fn parser(&self, name: &str) -> Option<Arc<dyn kb_core::plugin::LineParser>> {
        self.parsers
            .get(name)
            .map(|p| p.clone() as Arc<dyn kb_core::plugin::LineParser>)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Everything a configuration defines to read text: its `[PARSER]`s and multiline parsers
/// (the built-ins and `[MULTILINE_PARSER]`s), with the service's `multiline_buffer_limit`.
/// This is what the engine's [`kb_core::registry::ServiceContext::parsers`] holds; plugins
/// get it back with [`Parsers::of`].
#[derive(Debug, Clone)]
pub struct Parsers {
    pub parsers: ParserRegistry,
    pub multiline: multiline::MlRegistry,
    /// The longest joined multiline message, in bytes.
    pub multiline_buffer_limit: usize,
}

impl Default for Parsers {
    fn default() -> Self {
        Parsers {
            parsers: ParserRegistry::default(),
            multiline: multiline::MlRegistry::builtin(),
            multiline_buffer_limit: multiline::BUFFER_LIMIT,
        }
    }
}

impl Parsers {
    /// Validate the `[PARSER]` and `[MULTILINE_PARSER]` sections (every error, with its
    /// location) and collect the warnings.
    pub fn from_sections(
        parsers: &[Section],
        multiline: &[Section],
    ) -> Result<(Self, Vec<ConfigWarning>), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let reg = ParserRegistry::from_sections(parsers).unwrap_or_else(|e| {
            errors.extend(e);
            ParserRegistry::default()
        });
        let mut warnings = reg.warnings.clone();
        let ml = multiline::MlRegistry::from_sections(multiline, &reg, &mut warnings)
            .unwrap_or_else(|e| {
                errors.extend(e);
                multiline::MlRegistry::builtin()
            });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            Parsers {
                parsers: reg,
                multiline: ml,
                multiline_buffer_limit: multiline::BUFFER_LIMIT,
            },
            warnings,
        ))
    }

    /// The parsers of a service context (the built-in multiline parsers only when the
    /// context holds no kb-parsers registry, as in tests).
    pub fn of(lookup: &dyn kb_core::plugin::ParserLookup) -> std::borrow::Cow<'_, Parsers> {
        let any = lookup.as_any();
        if let Some(p) = any.downcast_ref::<Parsers>() {
            return std::borrow::Cow::Borrowed(p);
        }
        let parsers = any
            .downcast_ref::<ParserRegistry>()
            .cloned()
            .unwrap_or_default();
        std::borrow::Cow::Owned(Parsers {
            parsers,
            ..Parsers::default()
        })
    }
}

impl kb_core::plugin::ParserLookup for Parsers {
    fn parser(&self, name: &str) -> Option<Arc<dyn kb_core::plugin::LineParser>> {
        self.parsers.parser(name)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_number_conversions() {
        assert_eq!(atoll(b" 42abc"), 42);
        assert_eq!(atoll(b"-7"), -7);
        assert_eq!(atoll(b"x"), 0);
        assert_eq!(atoll(b"99999999999999999999"), i64::MAX);
        assert_eq!(strtoull_hex(b"0x1F"), 31);
        assert_eq!(strtoull_hex(b"ff zz"), 255);
        assert_eq!(strtoull_hex(b"zz"), 0);
        assert_eq!(atof(b"1.5e3x"), 1500.0);
        assert_eq!(atof(b".5"), 0.5);
        assert_eq!(atof(b"abc"), 0.0);
        assert_eq!(atof(b"3e"), 3.0);
    }
}
