//! `grep`: keep or drop records by regular expressions on their values (Fluent Bit's
//! `filter_grep`, `src/flb_grep.c`).
//!
//! * `Regex KEY REGEX` keeps records whose `KEY` value matches, `Exclude KEY REGEX` drops
//!   them. `KEY` is a plain top-level key (Fluent Bit prefixes it with `$`) or a record
//!   accessor (`$kubernetes['labels']['app']`); the last of duplicate keys is read.
//! * Only string values are matched: a missing key, a number, a boolean, null, a map, an
//!   array or a bin value never matches (so `Regex` drops the record and `Exclude` keeps
//!   it), as `flb_ra_regex_match` does. Invalid UTF-8 is matched with U+FFFD in its place.
//! * `Logical_Op AND` keeps (`Regex`) or drops (`Exclude`) a record when every rule matches,
//!   `OR` when one does; with either, `Regex` and `Exclude` cannot both be set ("Both 'regex'
//!   and 'exclude' are set.").
//! * `Logical_Op legacy` (the default), as documented: a record is dropped when any
//!   `Exclude` matches or any `Regex` does not (regexes combine with AND, excludes with OR).
//!
//! Differences, deliberate:
//! * In legacy mode Fluent Bit stops at the first `Regex` that matches and keeps the record,
//!   so a second `Regex` is never checked and later `Exclude` rules are skipped (fluent-bit
//!   issues #3259 and #7035); here every rule counts, as the documentation describes.
//! * An unknown `Logical_Op` value is a configuration error (Fluent Bit falls back to legacy
//!   without a word), and so is a rule without a regex or with one that does not compile.
//! * Blanks between `KEY` and `REGEX` are all separators (Fluent Bit keeps all but the first
//!   as part of the pattern).

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_regex::Regex;

use crate::util::{error_at, key_and_rest, str_only, KeyRef};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "regex",
        KeyType::Str,
        None,
        "Keep records in which the content of KEY matches the regular expression.",
    )
    .multi(),
    KeySpec::new(
        "exclude",
        KeyType::Str,
        None,
        "Exclude records in which the content of KEY matches the regular expression.",
    )
    .multi(),
    KeySpec::new(
        "logical_op",
        KeyType::Enum(&["legacy", "and", "or"]),
        Some("legacy"),
        "Specify whether to use logical conjuciton or disjunction. legacy, AND and OR are allowed.",
    ),
];

/// The `grep` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "grep",
        description: "grep events by specified field values",
        keys: KEYS,
    },
    build,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Legacy,
    And,
    Or,
}

#[derive(Debug)]
struct Rule {
    exclude: bool,
    key: KeyRef,
    regex: Regex,
}

impl Rule {
    fn matches(&self, record: &Record<'_>) -> bool {
        self.key
            .lookup(record)
            .and_then(str_only)
            .is_some_and(|s| self.regex.is_match(s))
    }
}

/// A configured `grep`.
#[derive(Debug)]
pub struct Grep {
    op: Op,
    rules: Vec<Rule>,
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(Grep::from_props(props)?))
}

impl Grep {
    /// Build from validated properties.
    pub fn from_props(props: &Props) -> Result<Grep, Vec<ConfigError>> {
        let op = match props
            .str("logical_op")
            .unwrap_or("legacy")
            .to_ascii_lowercase()
            .as_str()
        {
            "and" => Op::And,
            "or" => Op::Or,
            _ => Op::Legacy,
        };
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut first: Option<bool> = None;
        for p in props.iter() {
            let exclude = match p.key.as_str() {
                "regex" => false,
                "exclude" => true,
                _ => continue,
            };
            if op != Op::Legacy && first.is_some_and(|f| f != exclude) {
                errors.push(error_at(
                    props,
                    p,
                    "Both 'regex' and 'exclude' are set: with Logical_Op AND or OR every rule \
                     must be of the same kind",
                ));
                continue;
            }
            first = Some(exclude);
            let Some((key, pattern)) = key_and_rest(&p.value) else {
                errors.push(error_at(
                    props,
                    p,
                    format!(
                        "invalid {} '{}', expected field and regular expression",
                        p.key, p.value
                    ),
                ));
                continue;
            };
            let key = match KeyRef::parse(key) {
                Ok(KeyRef::Plain(k)) => {
                    // Fluent Bit reads a plain key as the accessor `$KEY`.
                    match KeyRef::parse(&format!("${}", String::from_utf8_lossy(&k))) {
                        Ok(ra) => ra,
                        Err(e) => {
                            errors.push(error_at(props, p, e));
                            continue;
                        }
                    }
                }
                Ok(ra) => ra,
                Err(e) => {
                    errors.push(error_at(props, p, e));
                    continue;
                }
            };
            match Regex::new(pattern) {
                Ok(regex) => rules.push(Rule {
                    exclude,
                    key,
                    regex,
                }),
                Err(e) => errors.push(error_at(
                    props,
                    p,
                    format!("could not compile regex pattern '{pattern}': {}", e.reason),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Grep { op, rules })
    }

    /// Whether the record goes on.
    fn keep(&self, record: &Record<'_>) -> bool {
        match self.op {
            Op::Legacy => self.rules.iter().all(|r| r.matches(record) != r.exclude),
            Op::And | Op::Or => {
                let Some(first) = self.rules.first() else {
                    return true;
                };
                let found = if self.op == Op::And {
                    self.rules.iter().all(|r| r.matches(record))
                } else {
                    self.rules.iter().any(|r| r.matches(record))
                };
                found != first.exclude
            }
        }
    }
}

impl Filter for Grep {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        if self.keep(record) {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}
