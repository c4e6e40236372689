//! `parser`: parse a field of each record with `[PARSER]`s (Fluent Bit's `filter_parser.c`).
//!
//! * `Key_Name` names the field (a record accessor `$a['b']` reaches into maps). Its value
//!   must be a string; records without it, with another type, or whose value no parser
//!   matches go on unchanged.
//! * `Parser` (several lines): tried in order, the first that parses wins.
//! * The record becomes the parsed fields, then — in their original order — the other fields
//!   with `Reserve_Data on`, and the parsed field itself with `Preserve_Key on`. With a record
//!   accessor `Key_Name` and `Reserve_Data on`, every original field is kept, as in Fluent Bit.
//! * `Nest_Under`: the parsed fields go under that key instead.
//! * A time the parser reads (its `Time_Key` with `Time_Format`) replaces the record's time;
//!   otherwise the record keeps its own. Formats without a year take today's (as Fluent Bit,
//!   from the clock, not from the record).
//! * `Unescape_Key on` unescapes the value before parsing (`\n`, `\t`, `\"`, ... as Fluent
//!   Bit 1.x's `flb_unescape_string`), which the documentation once promised. Fluent Bit
//!   today accepts the key and ignores it (it never worked there); kinesis-bit does what the
//!   documentation said and warns about the difference at startup.
//! * A `Parser` name that is not defined is reported and skipped, as Fluent Bit does; it is
//!   an error only when no parser is left.

use std::cell::RefCell;
use std::sync::Arc;

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::accessor::RecordAccessor;
use kb_core::event::EventTime;
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::{as_str, write_map_len, write_str, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_parsers::{Parser, Parsers};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "key_name",
        KeyType::Str,
        None,
        "field to parse (a name, or a record accessor such as $log['msg'])",
    ),
    KeySpec::new(
        "parser",
        KeyType::Str,
        None,
        "parser for the field; several lines are tried in order, the first match wins",
    )
    .multi(),
    KeySpec::new(
        "preserve_key",
        KeyType::Bool,
        Some("false"),
        "keep the parsed field in the result",
    ),
    KeySpec::new(
        "reserve_data",
        KeyType::Bool,
        Some("false"),
        "keep the record's other fields in the result",
    ),
    KeySpec::new(
        "nest_under",
        KeyType::Str,
        None,
        "put the parsed fields under this key",
    ),
    KeySpec::new(
        "unescape_key",
        KeyType::Bool,
        Some("false"),
        "unescape the field (\\n, \\t, \\\") before parsing (Fluent Bit ignores this key)",
    ),
];

/// The `parser` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "parser",
        description: "Parse events",
        keys: KEYS,
    },
    build,
};

enum Key {
    Name(Vec<u8>),
    Accessor(RecordAccessor),
}

struct ParserFilter {
    key: Key,
    parsers: Vec<Arc<Parser>>,
    preserve_key: bool,
    reserve_data: bool,
    nest_under: Option<Vec<u8>>,
    unescape: bool,
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let key = match props.required("key_name") {
        Ok(k) if k.starts_with('$') => match RecordAccessor::parse(k) {
            Ok(ra) => Some(Key::Accessor(ra)),
            Err(e) => {
                errors.push(props.error("key_name", format!("invalid record accessor '{k}': {e}")));
                None
            }
        },
        Ok(k) => Some(Key::Name(k.as_bytes().to_vec())),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let registry = Parsers::of(svc.parsers.as_ref());
    let mut parsers = Vec::new();
    for p in props.get_all("parser") {
        let name = p.value.trim();
        match registry.parsers.get_arc(name) {
            Some(parser) => parsers.push(parser),
            None => svc.warn(
                p.location.clone(),
                format!(
                    "[filter {}] requested parser '{name}' not found",
                    props.instance
                ),
            ),
        }
    }
    if parsers.is_empty() {
        let msg = if props.get("parser").is_some() {
            "no parser named by 'parser' is defined: define them in a parsers file (-R / Parsers_File)"
        } else {
            "'parser' is a required field"
        };
        errors.push(props.error("parser", msg));
    }
    let mut flag = |k: &str| match props.bool(k) {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            errors.push(e);
            false
        }
    };
    let preserve_key = flag("preserve_key");
    let reserve_data = flag("reserve_data");
    let unescape = flag("unescape_key");
    if unescape {
        svc.warn(
            props.get("unescape_key").map_or(props.location.clone(), |p| p.location.clone()),
            format!(
                "[filter {}] 'unescape_key' is ignored by Fluent Bit; kinesis-bit unescapes the field before parsing, as Fluent Bit's documentation described",
                props.instance
            ),
        );
    }
    let nest_under = props.str("nest_under").map(|s| s.as_bytes().to_vec());
    match key {
        Some(key) if errors.is_empty() => Ok(Box::new(ParserFilter {
            key,
            parsers,
            preserve_key,
            reserve_data,
            nest_under,
            unescape,
        })),
        _ => Err(errors),
    }
}

thread_local! {
    /// The indexes of the parsed entries, reused from record to record.
    static IDX: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Parsed fields, the record being built, the unescaped value.
    static BUFS: RefCell<(Vec<u8>, Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Fluent Bit 1.x's `flb_unescape_string`: `\n \a \b \t \v \f \r \\` become their
/// characters, any other escaped character stands for itself.
fn unescape(value: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\\' && i + 1 < value.len() {
            let c = value[i + 1];
            out.push(match c {
                b'n' => b'\n',
                b'a' => 0x07,
                b'b' => 0x08,
                b't' => b'\t',
                b'v' => 0x0b,
                b'f' => 0x0c,
                b'r' => b'\r',
                other => other,
            });
            i += 2;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
}

impl ParserFilter {
    /// Try the parsers on `value`; the parsed map goes to `parsed`.
    fn parse(&self, value: &[u8], parsed: &mut Vec<u8>) -> Option<Option<EventTime>> {
        let now = EventTime::now();
        self.parsers.iter().find_map(|p| {
            parsed.clear();
            p.parse_map(value, parsed, now).ok()
        })
    }
}

impl Filter for ParserFilter {
    fn filter(&self, record: &mut Record<'_>, _cx: &mut FilterCx<'_>) -> Verdict {
        BUFS.with(|b| {
            let (parsed, out, unesc) = &mut *b.borrow_mut();
            // The field(s) to parse: the first parse that succeeds is kept, as the last one in
            // Fluent Bit (which would parse every field of that name).
            let mut result = None;
            let mut parsed_keys = IDX.with(|v| std::mem::take(&mut *v.borrow_mut()));
            parsed_keys.clear();
            let mut try_value = |value: &[u8], parsed: &mut Vec<u8>| -> Option<Option<EventTime>> {
                let value = if self.unescape {
                    unescape(value, unesc);
                    &unesc[..]
                } else {
                    value
                };
                self.parse(value, parsed)
            };
            match &self.key {
                Key::Name(name) => {
                    for i in 0..record.len() {
                        if record.key(i) != Some(&name[..]) {
                            continue;
                        }
                        let Some(value) = record.str_value(i) else {
                            continue;
                        };
                        if let Some(t) = try_value(value, out) {
                            std::mem::swap(parsed, out);
                            result = Some(t);
                            parsed_keys.push(i);
                        }
                    }
                }
                Key::Accessor(ra) => {
                    if let Some(value) = ra.lookup_record(record).and_then(as_str) {
                        let value = value.to_vec();
                        result = try_value(&value, parsed);
                    }
                }
            }
            let Some(time) = result else {
                IDX.with(|v| *v.borrow_mut() = parsed_keys);
                return Verdict::Keep;
            };
            // The parsed fields (nested or not), then what is kept of the record: the kept
            // entries stay where they are, only the parsed map is copied into the record.
            let keep = |i: usize| {
                let is_parsed = parsed_keys.contains(&i);
                if self.reserve_data {
                    !is_parsed || self.preserve_key
                } else {
                    is_parsed && self.preserve_key
                }
            };
            let map: &[u8] = match &self.nest_under {
                Some(key) => {
                    out.clear();
                    write_map_len(out, 1);
                    write_str(out, key);
                    out.extend_from_slice(parsed);
                    out
                }
                None => parsed,
            };
            let replaced = record.replace_keeping(map, keep);
            IDX.with(|v| *v.borrow_mut() = parsed_keys);
            if replaced.is_err() {
                return Verdict::Keep;
            }
            if let Some(t) = time.filter(|t| *t != EventTime::default()) {
                record.time = t;
            }
            Verdict::Keep
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescape_as_fluent_bit_1() {
        let mut out = Vec::new();
        super::unescape(br#"{\"a\":\"b\\nc\"}\t\x"#, &mut out);
        assert_eq!(out, b"{\"a\":\"b\\nc\"}\tx");
    }
}
