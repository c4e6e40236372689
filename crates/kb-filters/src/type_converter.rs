//! `type_converter`: append a converted copy of a value under a new key (Fluent Bit's
//! `filter_type_converter` with `src/flb_typecast.c`).
//!
//! `int_key`, `uint_key`, `float_key` and `str_key` take `SRC DST TYPE`: when the value at
//! `SRC` (a top-level key or a record accessor) has the key's source type, `DST: converted`
//! is appended to the record (after everything, even when `DST` exists). Rules run in
//! Fluent Bit's order: every `str_key`, then `int_key`, `uint_key`, `float_key`. `TYPE` is
//! `int`, `uint`, `float`, `hex`, `string` or `bool`, in any case, or the start of one of
//! them (`str`), as `flb_typecast_str_to_type_t` compares.
//!
//! Conversions, as Fluent Bit's:
//! * string → `int`: C's `strtoimax` (leading blanks, sign, digits up to the first other
//!   character; out of range saturates); `uint`: `strtoumax` (a `-` wraps around); `hex`:
//!   base 16 with an optional `0x`; `float`: `atof` (the longest number at the start, `inf`
//!   and `nan` included, else 0.0); `bool`: text starting with `true`/`false`, any case.
//! * int → `string` (decimal), `float`, `uint` (two's complement); uint → `string`,
//!   `float`, `int`; float → `string` (`%.1f` for integral values, else `%.16g`), `int`,
//!   `uint` (truncated toward zero).
//! * A value of another type, or a string that does not convert, is logged and its original
//!   value is appended under `DST` instead.
//!
//! Differences, deliberate:
//! * A string that holds 0 (`"0"`, `"-0"`, `"0x0"`) converts to 0; Fluent Bit takes the 0
//!   that `strtoimax` returns for it as a failure.
//! * A source/target pair Fluent Bit can never convert (`int_key … int`, `… hex` or `… bool`
//!   from a number, `str_key … string`) and a rule that is not three words are configuration
//!   errors; Fluent Bit starts and fails on every record, or ignores the rule.
//! * float → `int`/`uint` saturates out of range (and NaN gives 0) instead of C's undefined
//!   conversion.
//! * A record none of whose conversions succeeded is passed on unchanged, with no copies
//!   either; Fluent Bit keeps the copies when another record of the chunk converted.

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::msgpack::Head;
use kb_core::record::{write_str, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};

use crate::util::{
    component, error_at, head, in_span, words, write_bool, write_f64, write_int, write_uint, KeyRef,
};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "int_key",
        KeyType::Str,
        None,
        "Convert integer to other type. e.g. int_key id id_str string",
    )
    .multi(),
    KeySpec::new(
        "uint_key",
        KeyType::Str,
        None,
        "Convert unsinged integer to other type. e.g. uint_key id id_str string",
    )
    .multi(),
    KeySpec::new(
        "float_key",
        KeyType::Str,
        None,
        "Convert float to other type. e.g. float_key ratio id_str string",
    )
    .multi(),
    KeySpec::new(
        "str_key",
        KeyType::Str,
        None,
        "Convert string to other type. e.g. str_key id id_val integer",
    )
    .multi(),
];

/// The `type_converter` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "type_converter",
        description: "Data type converter",
        keys: KEYS,
    },
    build,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Int,
    Uint,
    Float,
    Hex,
    Str,
    Bool,
}

impl Type {
    /// `flb_typecast_str_to_type_t`: the first name `text` is a case-insensitive start of.
    fn of(text: &str) -> Option<Type> {
        const NAMES: [(&str, Type); 6] = [
            ("int", Type::Int),
            ("uint", Type::Uint),
            ("float", Type::Float),
            ("hex", Type::Hex),
            ("string", Type::Str),
            ("bool", Type::Bool),
        ];
        NAMES
            .iter()
            .find(|(n, _)| text.len() <= n.len() && n[..text.len()].eq_ignore_ascii_case(text))
            .map(|&(_, t)| t)
    }

    fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::Uint => "uint",
            Type::Float => "float",
            Type::Hex => "hex",
            Type::Str => "string",
            Type::Bool => "bool",
        }
    }

    /// Whether Fluent Bit converts a `self` value to `to`.
    fn converts_to(self, to: Type) -> bool {
        match self {
            Type::Str => !matches!(to, Type::Str),
            Type::Int => matches!(to, Type::Str | Type::Float | Type::Uint),
            Type::Uint => matches!(to, Type::Str | Type::Float | Type::Int),
            Type::Float => matches!(to, Type::Str | Type::Int | Type::Uint),
            Type::Hex | Type::Bool => false,
        }
    }
}

#[derive(Debug)]
struct Rule {
    from: Type,
    src: KeyRef,
    src_text: String,
    dst: Vec<u8>,
    to: Type,
}

/// A configured `type_converter`.
#[derive(Debug)]
pub struct TypeConverter {
    rules: Vec<Rule>,
    component: String,
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(TypeConverter::from_props(props)?))
}

impl TypeConverter {
    /// Build from validated properties.
    pub fn from_props(props: &Props) -> Result<TypeConverter, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for (key, from) in [
            ("str_key", Type::Str),
            ("int_key", Type::Int),
            ("uint_key", Type::Uint),
            ("float_key", Type::Float),
        ] {
            for p in props.get_all(key) {
                let w = words(&p.value);
                if w.len() != 3 {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "invalid record parameters '{}', expects 'from_key to_key type'",
                            p.value
                        ),
                    ));
                    continue;
                }
                let Some(to) = Type::of(w[2]) else {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "unknown type '{}' in '{}': int, uint, float, hex, string or bool",
                            w[2], p.value
                        ),
                    ));
                    continue;
                };
                if !from.converts_to(to) {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "{key} cannot convert a {} value to {}",
                            from.name(),
                            to.name()
                        ),
                    ));
                    continue;
                }
                match KeyRef::parse(w[0]) {
                    Ok(src) => rules.push(Rule {
                        from,
                        src,
                        src_text: w[0].to_string(),
                        dst: w[1].as_bytes().to_vec(),
                        to,
                    }),
                    Err(e) => errors.push(error_at(props, p, e)),
                }
            }
        }
        if rules.is_empty() && errors.is_empty() {
            errors.push(props.error("int_key", "no rules"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(TypeConverter {
            rules,
            component: component("type_converter", props),
        })
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C's `strtoumax` on `s` in `base` (10 or 16): the value (wrapped for a leading `-`,
/// saturated on overflow), or `None` when no digit was read.
fn strtou(s: &[u8], base: u32) -> Option<(bool, u64, bool)> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if base == 16
        && i + 1 < s.len()
        && s[i] == b'0'
        && (s[i + 1] == b'x' || s[i + 1] == b'X')
        && s.get(i + 2)
            .is_some_and(|c| (*c as char).is_ascii_hexdigit())
    {
        i += 2;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    let start = i;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(base)) {
        match v
            .checked_mul(base as u64)
            .and_then(|x| x.checked_add(d as u64))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    (i > start).then_some((neg, v, overflow))
}

fn strtoimax(s: &[u8]) -> Option<i64> {
    let (neg, v, overflow) = strtou(s, 10)?;
    Some(if neg {
        if overflow || v > i64::MAX as u64 + 1 {
            i64::MIN
        } else {
            (v as i64).wrapping_neg()
        }
    } else if overflow || v > i64::MAX as u64 {
        i64::MAX
    } else {
        v as i64
    })
}

fn strtoumax(s: &[u8], base: u32) -> Option<u64> {
    let (neg, v, overflow) = strtou(s, base)?;
    Some(if overflow {
        u64::MAX
    } else if neg {
        v.wrapping_neg()
    } else {
        v
    })
}

/// C's `atof`: the longest decimal number (or `inf`/`infinity`/`nan`) at the start, else 0.
fn atof(s: &[u8]) -> f64 {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let start = i;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let rest = &s[i..];
    let neg = start < i && s[start] == b'-';
    let lower = |n: usize| rest.len() >= n && rest[..n].eq_ignore_ascii_case(&b"infinity"[..n]);
    if lower(3) {
        return if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"nan") {
        return f64::NAN;
    }
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return 0.0;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    std::str::from_utf8(&s[start..i])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0)
}

/// `%.1f` for integral values within i64, else `%.16g` (with C's `inf`/`nan`).
fn write_float_text(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
    } else if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
    } else {
        kb_core::json::write_f64(v, out);
    }
}

/// Convert `value` (msgpack) by `rule` into `out`; `false` when it cannot.
fn convert(rule: &Rule, value: &[u8], out: &mut Vec<u8>, text: &mut Vec<u8>) -> bool {
    let Some(h) = head(value) else { return false };
    match (rule.from, h) {
        (Type::Str, Head::Str(s)) => match rule.to {
            Type::Int => match strtoimax(s) {
                Some(v) => write_int(out, v),
                None => return false,
            },
            Type::Uint => match strtoumax(s, 10) {
                Some(v) => write_uint(out, v),
                None => return false,
            },
            Type::Hex => match strtoumax(s, 16) {
                Some(v) => write_uint(out, v),
                None => return false,
            },
            Type::Float => write_f64(out, atof(s)),
            Type::Bool => {
                if s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"true") {
                    write_bool(out, true);
                } else if s.len() >= 5 && s[..5].eq_ignore_ascii_case(b"false") {
                    write_bool(out, false);
                } else {
                    return false;
                }
            }
            Type::Str => return false,
        },
        (Type::Int | Type::Uint, Head::Uint(_) | Head::Int(_)) => {
            // msgpack-c's union: the same 64 bits read as signed or unsigned.
            let bits = match h {
                Head::Uint(u) => u,
                Head::Int(i) => i as u64,
                _ => unreachable!(),
            };
            let signed = rule.from == Type::Int;
            match rule.to {
                Type::Str => {
                    use std::io::Write as _;
                    text.clear();
                    let _ = if signed {
                        write!(text, "{}", bits as i64)
                    } else {
                        write!(text, "{bits}")
                    };
                    write_str(out, text);
                }
                Type::Float => write_f64(
                    out,
                    if signed {
                        bits as i64 as f64
                    } else {
                        bits as f64
                    },
                ),
                Type::Uint => write_uint(out, bits),
                Type::Int => write_int(out, bits as i64),
                _ => return false,
            }
        }
        (Type::Float, Head::Float(f)) => match rule.to {
            Type::Str => {
                text.clear();
                write_float_text(f, text);
                write_str(out, text);
            }
            Type::Int => write_int(out, f as i64),
            Type::Uint => write_uint(out, f as u64),
            _ => return false,
        },
        _ => return false,
    }
    true
}

impl Filter for TypeConverter {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        let original = record.len();
        let mut converted = false;
        let mut out = Vec::new();
        let mut text = Vec::new();
        for rule in &self.rules {
            let Some(value) = rule.src.lookup(record) else {
                continue;
            };
            out.clear();
            if convert(rule, value, &mut out, &mut text) {
                converted = true;
            } else {
                in_span(&self.component, || {
                    tracing::error!("failed to convert. key={}", rule.src_text);
                });
                out.clear();
                out.extend_from_slice(value);
            }
            let k = record.put_str(&rule.dst);
            let v = record.put(&out);
            record.push(k, v);
        }
        if !converted && record.len() != original {
            // Nothing converted: the record goes on as it came.
            record.retain(|_, i| i < original);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_number_parsing() {
        assert_eq!(strtoimax(b"  -42abc"), Some(-42));
        assert_eq!(strtoimax(b"0"), Some(0));
        assert_eq!(strtoimax(b"abc"), None);
        assert_eq!(strtoimax(b"99999999999999999999"), Some(i64::MAX));
        assert_eq!(strtoimax(b"-99999999999999999999"), Some(i64::MIN));
        assert_eq!(strtoumax(b"-1", 10), Some(u64::MAX));
        assert_eq!(strtoumax(b"0x1F", 16), Some(31));
        assert_eq!(strtoumax(b"ff", 16), Some(255));
        assert_eq!(atof(b" 3.25e2xyz"), 325.0);
        assert_eq!(atof(b"-.5"), -0.5);
        assert_eq!(atof(b"abc"), 0.0);
        assert_eq!(atof(b"1e"), 1.0);
        assert!(atof(b"NaN").is_nan());
        assert_eq!(atof(b"-Infinity"), f64::NEG_INFINITY);
        assert_eq!(Type::of("str"), Some(Type::Str));
        assert_eq!(Type::of("INT"), Some(Type::Int));
        assert_eq!(Type::of("integer"), None);
    }
}
