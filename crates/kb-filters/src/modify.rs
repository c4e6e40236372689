//! `modify`: change records with rules, when conditions hold (Fluent Bit's `filter_modify`).
//!
//! As in `plugins/filter_modify/modify.c`:
//! * Every `Condition` is checked first (all must hold: AND); then the rules run in
//!   configuration order, each on the result of the previous one. Rule and condition names
//!   ignore case, their parameters do not.
//! * Parameters are split on spaces; a parameter may be quoted with `"` or `'` to hold
//!   spaces (`Set msg "hello world"`).
//! * Rules work on top-level keys, compared byte for byte (string or bin keys), and act on
//!   every duplicate of a key: `Set` removes every `KEY` and appends `KEY: VALUE`; `Add`
//!   appends only when `KEY` is absent; `Remove` removes every `KEY`; `Remove_wildcard` every
//!   key starting with the given text; `Remove_regex` every key the regex matches; `Rename`
//!   renames when the new name is absent; `Hard_rename` removes the entries with the new name
//!   first; `Copy` inserts the copy right after the original, only when there is exactly one
//!   `KEY` and no `COPIED_KEY`; `Hard_copy` replaces one existing `COPIED_KEY`;
//!   `Move_to_start`/`Move_to_end` move the keys starting with the given text, keeping their
//!   order. Values written by `Set` and `Add` are strings.
//! * Conditions take a plain top-level key or a record accessor (`$a['b']`) where the
//!   documentation says `STRING:KEY`; `*_matches` conditions and `Remove_regex` take a
//!   regular expression. Regexes match string values (and booleans as `true`/`false`), never
//!   bin, numbers, null, maps or arrays. `Key_value_equals` compares string (or bin) values
//!   byte for byte. `Key_value_does_not_equal`/`_does_not_match` need the key to exist.
//!   `Matching_keys_have_matching_values` holds when no key matches.
//!
//! Differences, deliberate:
//! * Only `Remove_regex` and the regex conditions compile their parameters as regexes;
//!   Fluent Bit compiles every rule's key and value as a regex too, so `Set level [INFO`
//!   fails to start there.
//! * `Remove_wildcard`, `Move_to_start` and `Move_to_end` also accept the wildcard written
//!   with a trailing `*` (`Remove_wildcard Mem.*`); Fluent Bit compares the `*` literally, so
//!   only the bare prefix works there (`Remove_wildcard Mem.`).
//! * `Hard_rename a a` and `Hard_copy a a` leave the record as it is; Fluent Bit removes `a`.
//! * Wrong arity is a configuration error naming the property (a rule with three parameters
//!   runs as an unspecified rule in Fluent Bit); a condition given one parameter too many
//!   gets a warning (Fluent Bit ignores it silently).

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::msgpack::Head;
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_regex::Regex;

use crate::util::{error_at, head, split_quoted, KeyRef};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "set",
        KeyType::Str,
        None,
        "Add a key/value pair with key KEY and value VALUE. If KEY already exists, this field is overwritten.",
    )
    .multi(),
    KeySpec::new(
        "add",
        KeyType::Str,
        None,
        "Add a key/value pair with key KEY and value VALUE if KEY does not exist",
    )
    .multi(),
    KeySpec::new(
        "remove",
        KeyType::Str,
        None,
        "Remove a key/value pair with key KEY if it exists",
    )
    .multi(),
    KeySpec::new(
        "remove_wildcard",
        KeyType::Str,
        None,
        "Remove all key/value pairs with key matching wildcard KEY",
    )
    .multi(),
    KeySpec::new(
        "remove_regex",
        KeyType::Str,
        None,
        "Remove all key/value pairs with key matching regexp KEY",
    )
    .multi(),
    KeySpec::new(
        "move_to_start",
        KeyType::Str,
        None,
        "Move key/value pairs with keys matching KEY to the start of the message",
    )
    .multi(),
    KeySpec::new(
        "move_to_end",
        KeyType::Str,
        None,
        "Move key/value pairs with keys matching KEY to the end of the message",
    )
    .multi(),
    KeySpec::new(
        "rename",
        KeyType::Str,
        None,
        "Rename a key/value pair with key KEY to RENAMED_KEY if KEY exists AND RENAMED_KEY does not exist",
    )
    .multi(),
    KeySpec::new(
        "hard_rename",
        KeyType::Str,
        None,
        "Rename a key/value pair with key KEY to RENAMED_KEY if KEY exists. If RENAMED_KEY already exists, this field is overwritten",
    )
    .multi(),
    KeySpec::new(
        "copy",
        KeyType::Str,
        None,
        "Copy a key/value pair with key KEY to COPIED_KEY if KEY exists AND COPIED_KEY does not exist",
    )
    .multi(),
    KeySpec::new(
        "hard_copy",
        KeyType::Str,
        None,
        "Copy a key/value pair with key KEY to COPIED_KEY if KEY exists. If COPIED_KEY already exists, this field is overwritten",
    )
    .multi(),
    KeySpec::new(
        "condition",
        KeyType::Str,
        None,
        "Set the condition to modify. Key_exists, Key_does_not_exist, A_key_matches, No_key_matches, Key_value_equals, Key_value_does_not_equal, Key_value_matches, Key_value_does_not_match, Matching_keys_have_matching_values and Matching_keys_do_not_have_matching_values are supported.",
    )
    .multi(),
];

/// The `modify` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "modify",
        description: "modify records by applying rules",
        keys: KEYS,
    },
    build,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleKind {
    Set,
    Add,
    Remove,
    RemoveWildcard,
    RemoveRegex,
    MoveToStart,
    MoveToEnd,
    Rename,
    HardRename,
    Copy,
    HardCopy,
}

impl RuleKind {
    fn of(key: &str) -> Option<RuleKind> {
        Some(match key {
            "set" => RuleKind::Set,
            "add" => RuleKind::Add,
            "remove" => RuleKind::Remove,
            "remove_wildcard" => RuleKind::RemoveWildcard,
            "remove_regex" => RuleKind::RemoveRegex,
            "move_to_start" => RuleKind::MoveToStart,
            "move_to_end" => RuleKind::MoveToEnd,
            "rename" => RuleKind::Rename,
            "hard_rename" => RuleKind::HardRename,
            "copy" => RuleKind::Copy,
            "hard_copy" => RuleKind::HardCopy,
            _ => return None,
        })
    }

    /// Number of parameters.
    fn arity(self) -> usize {
        match self {
            RuleKind::Remove
            | RuleKind::RemoveWildcard
            | RuleKind::RemoveRegex
            | RuleKind::MoveToStart
            | RuleKind::MoveToEnd => 1,
            _ => 2,
        }
    }
}

#[derive(Debug)]
struct Rule {
    kind: RuleKind,
    key: Vec<u8>,
    val: Vec<u8>,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CondKind {
    KeyExists,
    KeyDoesNotExist,
    AKeyMatches,
    NoKeyMatches,
    KeyValueEquals,
    KeyValueDoesNotEqual,
    KeyValueMatches,
    KeyValueDoesNotMatch,
    MatchingKeysHaveMatchingValues,
    MatchingKeysDoNotHaveMatchingValues,
}

impl CondKind {
    fn of(word: &str) -> Option<CondKind> {
        Some(match word.to_ascii_lowercase().as_str() {
            "key_exists" => CondKind::KeyExists,
            "key_does_not_exist" => CondKind::KeyDoesNotExist,
            "a_key_matches" => CondKind::AKeyMatches,
            "no_key_matches" => CondKind::NoKeyMatches,
            "key_value_equals" => CondKind::KeyValueEquals,
            "key_value_does_not_equal" => CondKind::KeyValueDoesNotEqual,
            "key_value_matches" => CondKind::KeyValueMatches,
            "key_value_does_not_match" => CondKind::KeyValueDoesNotMatch,
            "matching_keys_have_matching_values" => CondKind::MatchingKeysHaveMatchingValues,
            "matching_keys_do_not_have_matching_values" => {
                CondKind::MatchingKeysDoNotHaveMatchingValues
            }
            _ => return None,
        })
    }

    /// Parameters after the condition's name.
    fn arity(self) -> usize {
        match self {
            CondKind::KeyExists
            | CondKind::KeyDoesNotExist
            | CondKind::AKeyMatches
            | CondKind::NoKeyMatches => 1,
            _ => 2,
        }
    }

    /// Whether the first parameter is a regex (else a key).
    fn a_is_regex(self) -> bool {
        matches!(
            self,
            CondKind::AKeyMatches
                | CondKind::NoKeyMatches
                | CondKind::MatchingKeysHaveMatchingValues
                | CondKind::MatchingKeysDoNotHaveMatchingValues
        )
    }

    /// Whether the second parameter is a regex (else a literal value).
    fn b_is_regex(self) -> bool {
        matches!(
            self,
            CondKind::KeyValueMatches
                | CondKind::KeyValueDoesNotMatch
                | CondKind::MatchingKeysHaveMatchingValues
                | CondKind::MatchingKeysDoNotHaveMatchingValues
        )
    }
}

#[derive(Debug)]
struct Condition {
    kind: CondKind,
    key: Option<KeyRef>,
    a_regex: Option<Regex>,
    b: Vec<u8>,
    b_regex: Option<Regex>,
}

/// A configured `modify`.
#[derive(Debug)]
pub struct Modify {
    conditions: Vec<Condition>,
    rules: Vec<Rule>,
}

fn build(props: &Props, cx: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(Modify::from_props(props, cx)?))
}

fn compile(
    props: &Props,
    p: &kb_config::Property,
    pattern: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Regex> {
    if pattern.is_empty() {
        errors.push(error_at(
            props,
            p,
            format!("Unable to create regex for {} {}", p.key, p.value),
        ));
        return None;
    }
    match Regex::new(pattern) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(error_at(
                props,
                p,
                format!(
                    "Unable to create regex from '{pattern}' in {} {}: {}",
                    p.key, p.value, e.reason
                ),
            ));
            None
        }
    }
}

impl Modify {
    /// Build from validated properties.
    pub fn from_props(props: &Props, cx: &ServiceContext) -> Result<Modify, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut conditions = Vec::new();
        let mut rules = Vec::new();
        for p in props.iter() {
            let is_condition = p.key == "condition";
            let rule_kind = RuleKind::of(&p.key);
            if !is_condition && rule_kind.is_none() {
                continue;
            }
            let Some(words) = split_quoted(&p.value, 3) else {
                errors.push(error_at(
                    props,
                    p,
                    format!(
                        "Invalid config for {}: unterminated quote in '{}'",
                        p.key, p.value
                    ),
                ));
                continue;
            };
            if words.is_empty() || words.len() > 3 {
                errors.push(error_at(
                    props,
                    p,
                    format!("Invalid config for {} : {}", p.key, p.value),
                ));
                continue;
            }
            if is_condition {
                let Some(kind) = CondKind::of(&words[0]) else {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "Invalid config for condition : {}: unknown condition '{}'",
                            p.value, words[0]
                        ),
                    ));
                    continue;
                };
                let params = words.len() - 1;
                if params < kind.arity() {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "Invalid config for condition : {}: {} takes {} parameter{}",
                            p.value,
                            words[0],
                            kind.arity(),
                            if kind.arity() == 1 { "" } else { "s" }
                        ),
                    ));
                    continue;
                }
                if params > kind.arity() {
                    cx.warn(
                        p.location.clone(),
                        format!(
                            "[filter {}] condition '{}': {} takes {} parameter, '{}' is ignored",
                            props.instance,
                            p.value,
                            words[0],
                            kind.arity(),
                            words[2]
                        ),
                    );
                }
                let a = &words[1];
                let (key, a_regex) = if kind.a_is_regex() {
                    match compile(props, p, a, &mut errors) {
                        Some(r) => (None, Some(r)),
                        None => continue,
                    }
                } else {
                    match KeyRef::parse(a) {
                        Ok(k) => (Some(k), None),
                        Err(e) => {
                            errors.push(error_at(props, p, e));
                            continue;
                        }
                    }
                };
                let b = if kind.arity() == 2 {
                    words[2].clone()
                } else {
                    String::new()
                };
                let b_regex = if kind.b_is_regex() {
                    match compile(props, p, &b, &mut errors) {
                        Some(r) => Some(r),
                        None => continue,
                    }
                } else {
                    None
                };
                conditions.push(Condition {
                    kind,
                    key,
                    a_regex,
                    b: b.into_bytes(),
                    b_regex,
                });
            } else if let Some(kind) = rule_kind {
                if words.len() != kind.arity() {
                    errors.push(error_at(
                        props,
                        p,
                        format!(
                            "Invalid operation {} : {} in configuration: {} takes {} parameter{}, got {}",
                            p.key,
                            p.value,
                            p.key,
                            kind.arity(),
                            if kind.arity() == 1 { "" } else { "s" },
                            words.len()
                        ),
                    ));
                    continue;
                }
                let mut key = words[0].clone();
                if matches!(
                    kind,
                    RuleKind::RemoveWildcard | RuleKind::MoveToStart | RuleKind::MoveToEnd
                ) && key.len() > 1
                {
                    if let Some(k) = key.strip_suffix('*') {
                        key = k.to_string();
                    }
                }
                let regex = if kind == RuleKind::RemoveRegex {
                    match compile(props, p, &key, &mut errors) {
                        Some(r) => Some(r),
                        None => continue,
                    }
                } else {
                    None
                };
                rules.push(Rule {
                    kind,
                    key: key.into_bytes(),
                    val: words.get(1).cloned().unwrap_or_default().into_bytes(),
                    regex,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Modify { conditions, rules })
    }
}

/// The text a regex is matched against: strings, and booleans as `true`/`false`.
fn regex_text(value: &[u8]) -> Option<&[u8]> {
    match head(value)? {
        Head::Str(s) => Some(s),
        Head::Bool(true) => Some(b"true"),
        Head::Bool(false) => Some(b"false"),
        _ => None,
    }
}

fn regex_matches(re: &Regex, value: &[u8]) -> bool {
    regex_text(value).is_some_and(|t| re.is_match(t))
}

/// String or bin payload.
fn str_or_bin(value: &[u8]) -> Option<&[u8]> {
    match head(value)? {
        Head::Str(s) | Head::Bin(s) => Some(s),
        _ => None,
    }
}

impl Condition {
    fn holds(&self, r: &Record<'_>) -> bool {
        let value = || self.key.as_ref().and_then(|k| k.lookup(r));
        let a = || self.a_regex.as_ref().expect("regex condition");
        let b = || self.b_regex.as_ref().expect("regex condition");
        let a_key_matches = || (0..r.len()).any(|i| regex_matches(a(), r.bytes(r.entry(i).0)));
        let all_match = || {
            (0..r.len()).all(|i| {
                let (k, v) = r.entry(i);
                !regex_matches(a(), r.bytes(k)) || regex_matches(b(), r.bytes(v))
            })
        };
        match self.kind {
            CondKind::KeyExists => value().is_some(),
            CondKind::KeyDoesNotExist => value().is_none(),
            CondKind::AKeyMatches => a_key_matches(),
            CondKind::NoKeyMatches => !a_key_matches(),
            CondKind::KeyValueEquals => value()
                .and_then(str_or_bin)
                .is_some_and(|s| s == self.b.as_slice()),
            CondKind::KeyValueDoesNotEqual => {
                value().is_some_and(|v| str_or_bin(v) != Some(self.b.as_slice()))
            }
            CondKind::KeyValueMatches => value().is_some_and(|v| regex_matches(b(), v)),
            CondKind::KeyValueDoesNotMatch => value().is_some_and(|v| !regex_matches(b(), v)),
            CondKind::MatchingKeysHaveMatchingValues => all_match(),
            CondKind::MatchingKeysDoNotHaveMatchingValues => !all_match(),
        }
    }
}

fn count(r: &Record<'_>, key: &[u8]) -> usize {
    (0..r.len()).filter(|&i| r.key(i) == Some(key)).count()
}

fn starts_with(r: &Record<'_>, i: usize, prefix: &[u8]) -> bool {
    r.key(i).is_some_and(|k| k.starts_with(prefix))
}

impl Rule {
    fn apply(&self, r: &mut Record<'_>) {
        let key = self.key.as_slice();
        let val = self.val.as_slice();
        match self.kind {
            RuleKind::Set => {
                r.retain(|r, i| r.key(i) != Some(key));
                r.push_str(key, val);
            }
            RuleKind::Add => {
                if count(r, key) == 0 {
                    r.push_str(key, val);
                }
            }
            RuleKind::Remove => r.retain(|r, i| r.key(i) != Some(key)),
            RuleKind::RemoveWildcard => r.retain(|r, i| !starts_with(r, i, key)),
            RuleKind::RemoveRegex => {
                let re = self.regex.as_ref().expect("compiled at build");
                r.retain(|r, i| !regex_matches(re, r.bytes(r.entry(i).0)));
            }
            RuleKind::MoveToStart => {
                let mut out = 0;
                for i in 0..r.len() {
                    if starts_with(r, i, key) {
                        if i != out {
                            r.move_entry(i, out);
                        }
                        out += 1;
                    }
                }
            }
            RuleKind::MoveToEnd => {
                let n = r.len();
                let mut i = 0;
                for _ in 0..n {
                    if starts_with(r, i, key) {
                        if i != n - 1 {
                            r.move_entry(i, n - 1);
                        } else {
                            i += 1;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            RuleKind::Rename | RuleKind::HardRename => {
                if count(r, key) == 0 || key == val {
                    return;
                }
                if count(r, val) > 0 {
                    if self.kind == RuleKind::Rename {
                        return;
                    }
                    r.retain(|r, i| r.key(i) != Some(val));
                }
                let new = r.put_str(val);
                for i in 0..r.len() {
                    if r.key(i) == Some(key) {
                        r.set_key(i, new);
                    }
                }
            }
            RuleKind::Copy | RuleKind::HardCopy => {
                if count(r, key) != 1 || key == val {
                    return;
                }
                let conflicts = count(r, val);
                if conflicts > 0 {
                    if self.kind == RuleKind::Copy || conflicts > 1 {
                        return;
                    }
                    r.retain(|r, i| r.key(i) != Some(val));
                }
                let Some(i) = (0..r.len()).find(|&i| r.key(i) == Some(key)) else {
                    return;
                };
                let v = r.entry(i).1;
                let new = r.put_str(val);
                r.insert(i + 1, new, v);
            }
        }
    }
}

impl Filter for Modify {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        if self.conditions.iter().all(|c| c.holds(record)) {
            for rule in &self.rules {
                rule.apply(record);
            }
        }
        Verdict::Keep
    }
}
