//! `nest`: move keys into a map, or lift a map's keys to the top level (Fluent Bit's
//! `filter_nest`).
//!
//! As in `plugins/filter_nest/nest.c`:
//! * `Operation nest`: the top-level keys matching a `Wildcard` (exact name, or a prefix when
//!   it ends in `*`; string or bin keys, byte for byte) are moved, in their order, into a new
//!   map appended under `Nest_under`; the other keys keep their order before it. An existing
//!   `Nest_under` key is left alone (the new one follows it). Nothing matches: unchanged.
//! * `Operation lift`: every top-level `Nested_under` key whose value is a map is replaced by
//!   that map's entries, appended after the other keys (which keep their order). A
//!   `Nested_under` key whose value is not a map stays as it is.
//! * `Add_prefix` / `Remove_prefix` rename the nested (nest) or lifted (lift) keys;
//!   `Remove_prefix` only touches keys that start with it. They are exclusive.
//! * `Nest_under` and `Nested_under` set the same name (either serves both operations, the
//!   last given wins).
//!
//! Differences, deliberate: `Operation` must be `nest` or `lift` in any case (Fluent Bit
//! compares the first four bytes case-sensitively, so it accepts `nesting` and refuses
//! `Nest`); a missing `Operation`, a `nest` without `Wildcard`, or an operation without its
//! key name is a configuration error (Fluent Bit starts and then nests under an empty or
//! garbage name, or does nothing). The documentation's illustration of `lift` shows the lifted
//! keys first; Fluent Bit (and this filter) appends them after the other keys.

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::{write_map_len, write_str, Record, Val};
use kb_core::registry::{FilterPlugin, ServiceContext};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "operation",
        KeyType::Enum(&["nest", "lift"]),
        None,
        "Select the operation nest or lift",
    ),
    KeySpec::new(
        "wildcard",
        KeyType::Str,
        None,
        "Nest records which field matches the wildcard",
    )
    .multi(),
    KeySpec::new(
        "nest_under",
        KeyType::Str,
        None,
        "Nest records matching the Wildcard under this key",
    ),
    KeySpec::new(
        "nested_under",
        KeyType::Str,
        None,
        "Lift records nested under the Nested_under key",
    ),
    KeySpec::new(
        "add_prefix",
        KeyType::Str,
        None,
        "Prefix affected keys with this string",
    ),
    KeySpec::new(
        "remove_prefix",
        KeyType::Str,
        None,
        "Remove prefix from affected keys if it matches this string",
    ),
];

/// The `nest` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "nest",
        description: "nest events by specified field values",
        keys: KEYS,
    },
    build,
};

#[derive(Debug, Clone)]
struct Wildcard {
    key: Vec<u8>,
    prefix: bool,
}

impl Wildcard {
    fn matches(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key.as_slice()
        }
    }
}

#[derive(Debug, Clone)]
enum Prefix {
    None,
    Add(Vec<u8>),
    Remove(Vec<u8>),
}

/// A configured `nest`.
#[derive(Debug)]
pub struct Nest {
    lift: bool,
    wildcards: Vec<Wildcard>,
    key: Vec<u8>,
    prefix: Prefix,
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(Nest::from_props(props)?))
}

impl Nest {
    /// Build from validated properties.
    pub fn from_props(props: &Props) -> Result<Nest, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let lift = match props.str("operation").map(|s| s.to_ascii_lowercase()) {
            Some(op) => op == "lift",
            None => {
                errors.push(props.error("operation", "Operation can only be NEST or LIFT"));
                false
            }
        };
        let wildcards: Vec<Wildcard> = props
            .get_all("wildcard")
            .map(|p| match p.value.strip_suffix('*') {
                Some(k) => Wildcard {
                    key: k.as_bytes().to_vec(),
                    prefix: true,
                },
                None => Wildcard {
                    key: p.value.as_bytes().to_vec(),
                    prefix: false,
                },
            })
            .collect();
        // Both keys set the same name in Fluent Bit; the one given last wins.
        let key = props
            .iter()
            .filter(|p| p.key == "nest_under" || p.key == "nested_under")
            .last()
            .map(|p| p.value.as_bytes().to_vec());
        let key = match key {
            Some(k) => k,
            None => {
                let (k, op) = if lift {
                    ("nested_under", "lift")
                } else {
                    ("nest_under", "nest")
                };
                errors.push(props.error(k, format!("'{k}' is required for operation {op}")));
                Vec::new()
            }
        };
        if !lift && wildcards.is_empty() && props.str("operation").is_some() {
            errors.push(props.error(
                "wildcard",
                "'wildcard' is required for operation nest: no key would be nested",
            ));
        }
        let prefix = match (props.str("add_prefix"), props.str("remove_prefix")) {
            (Some(_), Some(_)) => {
                errors.push(props.error(
                    "remove_prefix",
                    "Add_prefix and Remove_prefix are exclusive",
                ));
                Prefix::None
            }
            (Some(a), None) => Prefix::Add(a.as_bytes().to_vec()),
            (None, Some(r)) => Prefix::Remove(r.as_bytes().to_vec()),
            (None, None) => Prefix::None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Nest {
            lift,
            wildcards,
            key,
            prefix,
        })
    }

    fn to_nest(&self, r: &Record<'_>, i: usize) -> bool {
        r.key(i)
            .is_some_and(|k| self.wildcards.iter().any(|w| w.matches(k)))
    }

    fn to_lift(&self, r: &Record<'_>, i: usize) -> bool {
        r.key(i) == Some(self.key.as_slice())
            && matches!(
                crate::util::head(r.value(i)),
                Some(kb_core::msgpack::Head::Map(_))
            )
    }

    /// The key `k` (msgpack bytes) with the prefix rule applied; non-string keys as they are.
    fn write_key(&self, k: &[u8], out: &mut Vec<u8>) {
        let Some(s) = kb_core::record::as_str(k) else {
            out.extend_from_slice(k);
            return;
        };
        match &self.prefix {
            Prefix::None => out.extend_from_slice(k),
            Prefix::Add(p) => {
                crate::util::write_str_header(out, p.len() + s.len());
                out.extend_from_slice(p);
                out.extend_from_slice(s);
            }
            Prefix::Remove(p) => match s.strip_prefix(p.as_slice()) {
                Some(rest) => write_str(out, rest),
                None => write_str(out, s),
            },
        }
    }

    fn nest(&self, r: &mut Record<'_>) {
        let n = (0..r.len()).filter(|&i| self.to_nest(r, i)).count();
        if n == 0 {
            return;
        }
        let value = LIFT.with(|b| {
            let (_, map) = &mut *b.borrow_mut();
            map.clear();
            write_map_len(map, n);
            for i in 0..r.len() {
                if self.to_nest(r, i) {
                    let (k, v) = r.entry(i);
                    self.write_key(r.bytes(k), map);
                    map.extend_from_slice(r.bytes(v));
                }
            }
            r.put(map)
        });
        r.retain(|r, i| !self.to_nest(r, i));
        let key = r.put_str(&self.key);
        r.push(key, value);
    }

    fn lift(&self, r: &mut Record<'_>) {
        LIFT.with(|b| {
            let (lifted, key) = &mut *b.borrow_mut();
            lifted.clear();
            // One pass finds the maps to lift (usually one): keys are compared once each.
            let (mut first, mut maps) = (0, 0);
            for i in 0..r.len() {
                if self.to_lift(r, i) {
                    if maps == 0 {
                        first = i;
                    }
                    maps += 1;
                    r.map_entries(r.entry(i).1, lifted);
                }
            }
            match maps {
                0 => return,
                1 => {
                    r.remove(first);
                }
                _ => r.retain(|r, i| !self.to_lift(r, i)),
            }
            for &(k, v) in lifted.iter() {
                let k = match self.prefix {
                    Prefix::None => k,
                    _ => {
                        key.clear();
                        self.write_key(r.bytes(k), key);
                        r.put(key)
                    }
                };
                r.push(k, v);
            }
        });
    }
}

/// The lifted entries and a key being prefixed.
type LiftBufs = (Vec<(Val, Val)>, Vec<u8>);

thread_local! {
    /// Reused from record to record, so lifting allocates nothing once warm.
    static LIFT: std::cell::RefCell<LiftBufs> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl Filter for Nest {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        if self.lift {
            self.lift(record);
        } else {
            self.nest(record);
        }
        Verdict::Keep
    }
}
