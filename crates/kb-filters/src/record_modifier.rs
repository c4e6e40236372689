//! `record_modifier`: append fields, drop fields, keep only some fields, add a UUID
//! (Fluent Bit's `filter_record_modifier`).
//!
//! As in `plugins/filter_record_modifier/filter_modifier.c`:
//! * `Remove_key` and `Allowlist_key` (alias `Whitelist_key`) compare keys without regard to
//!   ASCII case; a name ending in `*` matches every key starting with the rest. String and
//!   bin keys can match; other keys never do (so `Allowlist_key` removes them). The two
//!   lists cannot be used together.
//! * `Record KEY VALUE` entries are appended after the kept keys, in configuration order, as
//!   strings, even when the record already has the key (Fluent Bit writes a duplicate). Then
//!   `Uuid_key` appends a random version 4 UUID (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
//! * A record left with no key at all (everything removed, nothing to add) is dropped:
//!   Fluent Bit writes no event for it.
//!
//! Differences, deliberate:
//! * `Record` takes the rest of the line after the key as the value (`Record msg two words`
//!   gives `"msg":"two words"`); a value written entirely in double quotes loses them (with
//!   `\"` for a quote inside), as Fluent Bit's token splitter does. Fluent Bit splits the value
//!   into words and refuses (logs and ignores) a `Record` whose value has more than one
//!   unquoted word, which its documentation does not say; a `Record` without a value is a
//!   configuration error here (Fluent Bit logs it and goes on).
//! * A record that comes in empty and gets nothing is passed on unchanged; Fluent Bit drops it
//!   only when another record of the same chunk was changed, so the outcome depended on
//!   chunking.
//! * The UUID comes from a per-thread pseudo-random generator seeded from the OS (Fluent Bit
//!   uses OpenSSL's `RAND_bytes`): unique per record for practical purposes, not for secrets.

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};

use crate::util::{error_at, key_and_rest};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "record",
        KeyType::Str,
        None,
        "Append fields. This parameter needs key and value pair.",
    )
    .multi(),
    KeySpec::new(
        "remove_key",
        KeyType::Str,
        None,
        "If the key is matched, that field is removed.",
    )
    .multi(),
    KeySpec::new(
        "allowlist_key",
        KeyType::Str,
        None,
        "If the key is not matched, that field is removed.",
    )
    .multi(),
    KeySpec::new(
        "whitelist_key",
        KeyType::Str,
        None,
        "(Alias of allowlist_key)",
    )
    .multi(),
    KeySpec::new(
        "uuid_key",
        KeyType::Str,
        None,
        "If set, the plugin generates uuid per record.",
    ),
];

/// The `record_modifier` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "record_modifier",
        description: "modify record",
        keys: KEYS,
    },
    build,
};

/// A `Remove_key`/`Allowlist_key` name.
#[derive(Debug, Clone)]
struct KeyPattern {
    key: Vec<u8>,
    /// The name ended in `*`.
    prefix: bool,
}

impl KeyPattern {
    fn new(text: &str) -> KeyPattern {
        match text.strip_suffix('*') {
            Some(p) => KeyPattern {
                key: p.as_bytes().to_vec(),
                prefix: true,
            },
            None => KeyPattern {
                key: text.as_bytes().to_vec(),
                prefix: false,
            },
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.len() >= self.key.len() && key[..self.key.len()].eq_ignore_ascii_case(&self.key)
        } else {
            key.eq_ignore_ascii_case(&self.key)
        }
    }
}

/// A configured `record_modifier`.
#[derive(Debug)]
pub struct RecordModifier {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// `(remove?, names)`: `Remove_key` (true) or `Allowlist_key` (false).
    select: Option<(bool, Vec<KeyPattern>)>,
    uuid_key: Option<Vec<u8>>,
}

/// A value written entirely in double quotes, unquoted (`\"` inside is a quote).
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if !inner.is_empty() || v.len() == 2 => inner.replace("\\\"", "\""),
        _ => v.to_string(),
    }
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(RecordModifier::from_props(props)?))
}

impl RecordModifier {
    /// Build from validated properties.
    pub fn from_props(props: &Props) -> Result<RecordModifier, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut records = Vec::new();
        for p in props.get_all("record") {
            match key_and_rest(&p.value) {
                Some((k, v)) => records.push((k.as_bytes().to_vec(), unquote(v).into_bytes())),
                None => errors.push(error_at(
                    props,
                    p,
                    format!(
                        "invalid record parameters '{}', expects 'KEY VALUE'",
                        p.value
                    ),
                )),
            }
        }
        let remove: Vec<KeyPattern> = props
            .get_all("remove_key")
            .map(|p| KeyPattern::new(&p.value))
            .collect();
        let allow: Vec<KeyPattern> = props
            .get_all("allowlist_key")
            .chain(props.get_all("whitelist_key"))
            .map(|p| KeyPattern::new(&p.value))
            .collect();
        let select = match (remove.is_empty(), allow.is_empty()) {
            (true, true) => None,
            (false, true) => Some((true, remove)),
            (true, false) => Some((false, allow)),
            (false, false) => {
                errors.push(props.error(
                    "remove_key",
                    "remove_keys and allowlist_keys are exclusive with each other.",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RecordModifier {
            records,
            select,
            uuid_key: props.str("uuid_key").map(|s| s.as_bytes().to_vec()),
        })
    }
}

/// A random version 4 UUID in its 36-character text form.
fn uuid_v4() -> [u8; 36] {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            o += 1;
        }
        out[o] = HEX[(byte >> 4) as usize];
        out[o + 1] = HEX[(byte & 0x0f) as usize];
        o += 2;
    }
    out
}

impl Filter for RecordModifier {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        let before = record.len();
        if let Some((remove, names)) = &self.select {
            record.retain(|r, i| {
                let hit = r.key(i).is_some_and(|k| names.iter().any(|n| n.matches(k)));
                hit != *remove
            });
        }
        if record.is_empty() && self.records.is_empty() && self.uuid_key.is_none() {
            // Fluent Bit writes no event for a record it emptied.
            return if before > 0 {
                Verdict::Drop
            } else {
                Verdict::Keep
            };
        }
        for (k, v) in &self.records {
            record.push_str(k, v);
        }
        if let Some(key) = &self.uuid_key {
            record.push_str(key, &uuid_v4());
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_v4_shape() {
        let a = uuid_v4();
        let s = std::str::from_utf8(&a).unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "{s}");
        assert_eq!(
            s.chars().filter(|c| *c == '-').count(),
            4,
            "{s} has four dashes"
        );
        assert!([8, 13, 18, 23].iter().all(|&i| &s[i..i + 1] == "-"), "{s}");
        assert_ne!(uuid_v4(), a);
    }

    #[test]
    fn patterns_ignore_case_and_take_a_trailing_star() {
        assert!(KeyPattern::new("swap.total").matches(b"Swap.total"));
        assert!(!KeyPattern::new("Swap").matches(b"Swap.total"));
        assert!(KeyPattern::new("Swap*").matches(b"swap.total"));
        assert!(KeyPattern::new("*").matches(b"anything"));
        assert_eq!(unquote(r#""two \"words\"""#), r#"two "words""#);
        assert_eq!(unquote("plain text"), "plain text");
    }
}
