//! Fluent Bit's multiline core (`src/multiline/flb_ml*.c`), shared by tail's
//! `multiline.parser` and the `multiline` filter.
//!
//! A multiline parser ([`MlParser`]) is a definition: a `[MULTILINE_PARSER]` section (YAML
//! `multiline_parsers:`) or one of the built-ins `docker`, `cri`, `go`, `python`, `java` and
//! `ruby`, with Fluent Bit's rules. [`engine::Multiline`] runs a list of them over streams of
//! lines or records and hands out the joined messages.
//!
//! `[MULTILINE_PARSER]` keys: `name`, `type` (`regex`, `endswith`, `equal`/`eq`),
//! `rule "<from states>" "<regex>" "<next state>"` (several; the first must start in
//! `start_state`; from-states are a comma list), `flush_timeout` (milliseconds, default 4000 as
//! in Fluent Bit's code; its documentation says 5s), `key_content`, `key_pattern`,
//! `key_group`, `parser` (a `[PARSER]` applied first), `match_string` and `negate` (for
//! `endswith` and `equal`). Every rule regex goes through [`kb_regex`].
//!
//! Configuration errors name the file, line and key: a bad regex in a rule, a next state no
//! rule starts from, a first rule without `start_state`, an unknown `parser`, a missing
//! `type` or `name`. A user parser named like a built-in is shadowed by it (Fluent Bit looks
//! built-ins up first); kinesis-bit says so in a warning.

pub mod builtin;
pub mod engine;

use std::collections::HashMap;
use std::sync::Arc;

use kb_config::values::parse_bool;
use kb_config::{ConfigError, ConfigWarning, Location, Property, Section};
use kb_regex::Regex;

use crate::{Parser, ParserRegistry};

pub use engine::{Flushed, Multiline, Sink, Status};

/// Fluent Bit's `FLB_ML_FLUSH_TIMEOUT`: how long a message may wait for its next line.
pub const FLUSH_TIMEOUT_MS: u64 = 4000;

/// Fluent Bit's default `multiline_buffer_limit`: the longest joined message (2 MB).
pub const BUFFER_LIMIT: usize = 2 * 1024 * 1024;

/// `multiline_buffer_limit` as Fluent Bit reads it (`flb_utils_size_to_binary_bytes`:
/// `K`, `M`, `G` with or without `B` are powers of 1024).
pub fn parse_buffer_limit(s: &str) -> Option<usize> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..end].parse().ok()?;
    let mult: u64 = match s[end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    usize::try_from(n.checked_mul(mult)?).ok()
}

/// How a parser decides that lines belong together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlType {
    /// States and regex rules.
    Regex,
    /// A line whose content ends with `match_string` ends the message (`negate`: does not).
    EndsWith,
    /// A line whose content equals `match_string` ends the message.
    Equal,
}

/// One `rule`.
#[derive(Debug)]
pub(crate) struct Rule {
    from_states: Vec<String>,
    pub(crate) start_state: bool,
    pub(crate) regex: Regex,
    to_state: Option<String>,
    /// The rules whose from-states hold `to_state`, in definition order.
    pub(crate) next: Vec<usize>,
}

/// A multiline parser definition.
#[derive(Debug)]
pub struct MlParser {
    pub(crate) name: String,
    pub(crate) kind: MlType,
    pub(crate) match_str: Vec<u8>,
    pub(crate) negate: bool,
    pub(crate) flush_ms: u64,
    pub(crate) key_content: Option<String>,
    pub(crate) key_pattern: Option<String>,
    pub(crate) key_group: Option<String>,
    /// The parser applied to each line first.
    pub(crate) parser: Option<Arc<Parser>>,
    pub(crate) rules: Vec<Rule>,
}

impl MlParser {
    /// An empty definition of `kind`.
    pub(crate) fn new(name: &str, kind: MlType) -> Self {
        MlParser {
            name: name.to_string(),
            kind,
            match_str: Vec::new(),
            negate: false,
            flush_ms: FLUSH_TIMEOUT_MS,
            key_content: None,
            key_pattern: None,
            key_group: None,
            parser: None,
            rules: Vec::new(),
        }
    }

    /// The parser's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its flush timeout in milliseconds.
    pub fn flush_ms(&self) -> u64 {
        self.flush_ms
    }

    /// The key holding the content of records (`key_content`), if set.
    pub fn key_content(&self) -> Option<&str> {
        self.key_content.as_deref()
    }

    /// Add a rule (`flb_ml_rule_create`): `from` is a comma list of states; the `first` rule
    /// must start in `start_state`.
    pub(crate) fn add_rule(
        &mut self,
        first: bool,
        from: &str,
        regex: &str,
        to: Option<&str>,
    ) -> Result<(), String> {
        let from_states: Vec<String> = from
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if from_states.is_empty() {
            return Err("the rule has no state".into());
        }
        let start_state = from_states.iter().any(|s| s == "start_state");
        if !start_state && first {
            return Err(format!(
                "the first rule must start in 'start_state' (it starts in '{from}')"
            ));
        }
        let regex =
            Regex::new(regex).map_err(|e| format!("invalid regex '{regex}': {}", e.reason))?;
        self.rules.push(Rule {
            from_states,
            start_state,
            regex,
            to_state: to.map(str::to_string),
            next: Vec::new(),
        });
        Ok(())
    }

    /// Map every rule to the rules its next state may continue with (`flb_ml_rule_init`);
    /// a next state that no rule starts from is an error naming the rule's index.
    pub(crate) fn init(&mut self) -> Result<(), (usize, String)> {
        for i in 0..self.rules.len() {
            let Some(to) = self.rules[i].to_state.clone() else {
                continue;
            };
            let next: Vec<usize> = (0..self.rules.len())
                .filter(|&j| self.rules[j].from_states.contains(&to))
                .collect();
            if next.is_empty() {
                return Err((i, format!("next state '{to}' is not the state of any rule")));
            }
            self.rules[i].next = next;
        }
        Ok(())
    }
}

/// Split a classic `rule` value into its quoted words as Fluent Bit's
/// `flb_slist_split_tokens` does: words are separated by blanks; a word starting with `"` runs
/// to the next `"` not preceded by a backslash, and `\"` inside it stands for `"`.
pub fn split_rule(value: &str) -> Vec<String> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'"' {
            i += 1;
            let start = i;
            while i < b.len() && !(b[i] == b'"' && b[i - 1] != b'\\') {
                i += 1;
            }
            out.push(value[start..i].replace("\\\"", "\""));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            out.push(value[start..i].to_string());
        }
    }
    out
}

/// Every multiline parser: the built-ins, then the configured ones.
#[derive(Debug, Clone)]
pub struct MlRegistry {
    parsers: Vec<Arc<MlParser>>,
}

impl Default for MlRegistry {
    fn default() -> Self {
        MlRegistry {
            parsers: builtin::all().into_iter().map(Arc::new).collect(),
        }
    }
}

const KEYS: &[&str] = &[
    "name",
    "type",
    "rule",
    "flush_timeout",
    "key_content",
    "key_pattern",
    "key_group",
    "parser",
    "match_string",
    "negate",
];

fn err(loc: &Location, name: &str, key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(
        loc.clone(),
        format!("multiline parser '{name}': '{key}': {msg}"),
    )
}

impl MlRegistry {
    /// The built-ins only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Validate every `[MULTILINE_PARSER]` section; `parsers` resolves their `parser` keys.
    pub fn from_sections(
        sections: &[Section],
        parsers: &ParserRegistry,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut reg = MlRegistry::default();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for s in sections {
            match from_section(s, parsers, warnings) {
                Ok(p) => {
                    let loc = s.get("name").map_or(&s.location, |p| &p.location);
                    let lname = p.name.to_ascii_lowercase();
                    if builtin::NAMES.contains(&lname.as_str()) {
                        warnings.push(ConfigWarning {
                            location: loc.clone(),
                            message: format!(
                                "multiline parser '{}' has the name of a built-in parser, which Fluent Bit (and kinesis-bit) use instead",
                                p.name
                            ),
                        });
                        continue;
                    }
                    if let Some(first) = seen.get(&lname) {
                        errors.push(ConfigError::new(
                            loc.clone(),
                            format!(
                                "'name': multiline parser '{}' is already defined at {first}",
                                p.name
                            ),
                        ));
                        continue;
                    }
                    seen.insert(lname, loc.to_string());
                    reg.parsers.push(Arc::new(p));
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

    /// The parser called `name` (any case), built-ins first as in Fluent Bit.
    pub fn get(&self, name: &str) -> Option<Arc<MlParser>> {
        self.parsers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Every parser name, built-ins first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parsers.iter().map(|p| p.name.as_str())
    }

    /// The parsers listed by `multiline.parser` properties (each a comma list, as Fluent
    /// Bit's CLIST), in order; an unknown name is an error at its property.
    pub fn resolve<'a>(
        &self,
        props: impl IntoIterator<Item = &'a Property>,
        what: &str,
    ) -> Result<Vec<Arc<MlParser>>, Vec<ConfigError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for p in props {
            for name in p.value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match self.get(name) {
                    Some(mp) => out.push(mp),
                    None => {
                        let names: Vec<&str> = self.names().collect();
                        errors.push(ConfigError::new(
                            p.location.clone(),
                            format!(
                                "{what}'{}': unknown multiline parser '{name}' (known: {})",
                                p.key,
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn from_section(
    s: &Section,
    parsers: &ParserRegistry,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<MlParser, Vec<ConfigError>> {
    let get = |k: &str| s.get(k).filter(|p| !p.value.trim().is_empty());
    let Some(name_prop) = get("name") else {
        return Err(vec![ConfigError::new(
            s.location.clone(),
            "multiline parser section without 'name'",
        )]);
    };
    let name = name_prop.value.trim().to_string();
    let mut errors = Vec::new();
    for p in &s.props {
        if !KEYS.contains(&p.key.as_str()) {
            errors.push(err(&p.location, &name, &p.key, "unknown key"));
        }
    }
    let kind = match get("type") {
        None => {
            errors.push(ConfigError::new(
                s.location.clone(),
                format!("multiline parser '{name}': 'type' is not set (expected regex, endswith or equal)"),
            ));
            None
        }
        Some(p) => match p.value.trim().to_ascii_lowercase().as_str() {
            "regex" => Some(MlType::Regex),
            "endswith" => Some(MlType::EndsWith),
            "equal" | "eq" => Some(MlType::Equal),
            other => {
                errors.push(err(
                    &p.location,
                    &name,
                    "type",
                    format!("unknown type '{other}' (expected regex, endswith or equal)"),
                ));
                None
            }
        },
    };
    let mut mp = MlParser::new(&name, kind.unwrap_or(MlType::Regex));
    if let Some(p) = get("negate") {
        match parse_bool(&p.value) {
            Some(v) => mp.negate = v,
            None => errors.push(err(
                &p.location,
                &name,
                "negate",
                format!("invalid boolean '{}'", p.value),
            )),
        }
    }
    if let Some(p) = get("flush_timeout") {
        // Fluent Bit reads it with atoi(); zero or less keeps the default.
        match p.value.trim().parse::<i64>() {
            Ok(v) if v > 0 => mp.flush_ms = v as u64,
            Ok(_) => {}
            Err(_) => errors.push(err(
                &p.location,
                &name,
                "flush_timeout",
                format!("invalid number of milliseconds '{}'", p.value),
            )),
        }
    }
    let text = |k: &str| get(k).map(|p| p.value.trim().to_string());
    mp.key_content = text("key_content");
    mp.key_pattern = text("key_pattern");
    mp.key_group = text("key_group");
    if let Some(m) = get("match_string") {
        mp.match_str = m.value.clone().into_bytes();
    }
    if mp.kind != MlType::Regex && mp.match_str.is_empty() && kind.is_some() {
        errors.push(ConfigError::new(
            s.location.clone(),
            format!(
                "multiline parser '{name}': 'match_string' is required with type {}",
                if mp.kind == MlType::EndsWith {
                    "endswith"
                } else {
                    "equal"
                }
            ),
        ));
    }
    if let Some(p) = get("parser") {
        match parsers.get_arc(p.value.trim()) {
            Some(parser) => mp.parser = Some(parser),
            None => errors.push(err(
                &p.location,
                &name,
                "parser",
                format!(
                    "unknown parser '{}': define it in a [PARSER] section",
                    p.value.trim()
                ),
            )),
        }
        if mp.key_content.is_none() {
            errors.push(err(
                &p.location,
                &name,
                "parser",
                "'key_content' is missing: it names the field of the parsed record the rules apply to",
            ));
        }
    }
    let rules: Vec<&Property> = s.props.iter().filter(|p| p.key == "rule").collect();
    if mp.kind == MlType::Regex {
        for (n, p) in rules.iter().enumerate() {
            let words = split_rule(&p.value);
            if words.len() < 2 {
                errors.push(err(
                    &p.location,
                    &name,
                    "rule",
                    format!(
                        "expected \"<state>\" \"<regex>\" \"<next state>\", got '{}'",
                        p.value
                    ),
                ));
                continue;
            }
            if let Err(e) = mp.add_rule(
                n == 0,
                &words[0],
                &words[1],
                words.get(2).map(String::as_str),
            ) {
                errors.push(err(&p.location, &name, "rule", e));
            }
        }
        if errors.is_empty() {
            if let Err((i, e)) = mp.init() {
                // Rules were all added: their indexes are those of the properties.
                errors.push(err(&rules[i].location, &name, "rule", e));
            }
        }
        if rules.is_empty() && kind.is_some() {
            warnings.push(ConfigWarning {
                location: s.location.clone(),
                message: format!("multiline parser '{name}' has no 'rule': it never joins lines"),
            });
        }
    } else if let Some(p) = rules.first() {
        errors.push(err(
            &p.location,
            &name,
            "rule",
            "rules only apply to type regex",
        ));
    }
    if errors.is_empty() {
        Ok(mp)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_limits_are_binary() {
        assert_eq!(parse_buffer_limit("2MB"), Some(2 * 1024 * 1024));
        assert_eq!(parse_buffer_limit("64k"), Some(65_536));
        assert_eq!(parse_buffer_limit("100"), Some(100));
        assert_eq!(parse_buffer_limit("x"), None);
    }

    #[test]
    fn rule_words_as_fluent_bit_splits_them() {
        assert_eq!(
            split_rule(r#""start_state"   "/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont""#),
            [
                "start_state",
                r"/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/",
                "cont"
            ]
        );
        assert_eq!(
            split_rule(r#""a, b" "/say \"hi\"/" "c""#),
            ["a, b", r#"/say "hi"/"#, "c"]
        );
        assert_eq!(split_rule("start_state /x/"), ["start_state", "/x/"]);
        assert_eq!(split_rule(r#""open"#), ["open"]);
    }

    #[test]
    fn rules_map_their_next_states() {
        let mut p = MlParser::new("t", MlType::Regex);
        assert!(p.add_rule(true, "cont", "/x/", Some("cont")).is_err());
        p.add_rule(true, "start_state, again", "/a/", Some("cont"))
            .unwrap();
        p.add_rule(false, "cont", "/b/", Some("again")).unwrap();
        p.init().unwrap();
        assert_eq!(p.rules[0].next, [1]);
        assert_eq!(p.rules[1].next, [0]);
        let mut p = MlParser::new("t", MlType::Regex);
        p.add_rule(true, "start_state", "/a/", Some("nowhere"))
            .unwrap();
        assert_eq!(
            p.init().unwrap_err(),
            (
                0,
                "next state 'nowhere' is not the state of any rule".to_string()
            )
        );
        assert!(MlParser::new("t", MlType::Regex)
            .add_rule(true, "start_state", "/(/", None)
            .unwrap_err()
            .starts_with("invalid regex '/(/':"));
    }
}
