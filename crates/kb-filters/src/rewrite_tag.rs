//! `rewrite_tag`: re-emit records under a new tag (Fluent Bit's `filter_rewrite_tag`).
//!
//! * `Rule $KEY REGEX NEW_TAG KEEP` (several, tried in order, the first whose regex matches
//!   the key's string value wins). `$KEY` is a record accessor; `NEW_TAG` is a template of
//!   literal text, `$TAG`, `$TAG[n]`, the regex groups `$0`…`$9` and record accessors
//!   (`${ENV}` is expanded when the configuration is read); `KEEP` (`true`/`false`) keeps
//!   the original record in the pipeline or drops it. A token may be double-quoted to hold
//!   spaces.
//! * The record is re-emitted through an emitter input (`Emitter_Name`, by default
//!   `emitter_for_<instance>`; `Emitter_Storage.type`, `Emitter_Mem_Buf_Limit` 10M) whose
//!   records enter the pipeline from the first filter again. They skip this filter (Fluent
//!   Bit's rule) and any filter already working on the record further up, so a set of rules
//!   that rewrite into each other's tags cannot loop forever. The input feeding the emitter
//!   pauses while the emitter is over its memory limit, as the docs promise.
//! * A key whose value is not a string (or bin) never matches, as the docs say.
//! * `fluentbit_filter_emit_records_total{name}` counts re-emitted records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::accessor::{RecordAccessor, Template};
use kb_core::filter::{Emitter, EmitterSpec, Filter, FilterCx, Verdict};
use kb_core::record::{as_str, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};
use kb_regex::{Captures, Regex};

/// Fluent Bit's default `Emitter_Mem_Buf_Limit`.
const DEFAULT_EMITTER_LIMIT: u64 = 10 * 1000 * 1000;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "rule",
        KeyType::Str,
        None,
        "$KEY REGEX NEW_TAG KEEP: re-emit records whose KEY matches REGEX under NEW_TAG",
    )
    .multi(),
    KeySpec::new(
        "emitter_name",
        KeyType::Str,
        None,
        "name of the emitter input (default emitter_for_<instance>)",
    ),
    KeySpec::new(
        "emitter_storage.type",
        KeyType::Enum(&["memory", "filesystem"]),
        Some("memory"),
        "buffering of re-emitted records: memory or filesystem (needs storage.path)",
    ),
    KeySpec::new(
        "emitter_mem_buf_limit",
        KeyType::Size,
        Some("10M"),
        "memory limit of the emitter; the inputs feeding it pause above it",
    ),
];

/// The `rewrite_tag` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "rewrite_tag",
        description: "Rewrite records tags",
        keys: KEYS,
    },
    build,
};

struct Rule {
    key: RecordAccessor,
    regex: Regex,
    tag: Template,
    keep: bool,
}

/// A configured `rewrite_tag` instance.
pub struct RewriteTag {
    rules: Vec<Rule>,
    emitter: Emitter,
    emitter_name: String,
    mem_buf_limit: usize,
    filesystem: bool,
    emitted: Arc<AtomicU64>,
}

/// Split a rule into whitespace-separated tokens; double quotes group a token with spaces.
fn tokens(rule: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = rule.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => tok.push(chars.next().unwrap_or('"')),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => tok.push(c),
                }
            }
            if !closed {
                return Err("a quoted part is not closed".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                tok.push(c);
                chars.next();
            }
        }
        out.push(tok);
    }
    Ok(out)
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let t = tokens(text)?;
    if t.len() != 4 {
        return Err(format!(
            "a rule has four parts, $KEY REGEX NEW_TAG KEEP; got {} in '{text}'",
            t.len()
        ));
    }
    let key = RecordAccessor::parse(&t[0]).map_err(|e| format!("invalid key '{}': {e}", t[0]))?;
    let regex = Regex::new(&t[1]).map_err(|e| e.to_string())?;
    let tag = Template::parse(&t[2]).map_err(|e| format!("invalid new tag '{}': {e}", t[2]))?;
    let keep = match kb_config::values::parse_bool(&t[3]) {
        Some(b) => b,
        None => return Err(format!("KEEP must be true or false, got '{}'", t[3])),
    };
    Ok(Rule {
        key,
        regex,
        tag,
        keep,
    })
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for p in props.get_all("rule") {
        match parse_rule(&p.value) {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(ConfigError::new(
                p.location.clone(),
                format!("[filter {}] rule: {e}", props.instance),
            )),
        }
    }
    if rules.is_empty() && errors.is_empty() {
        errors.push(props.error(
            "rule",
            "'rule' is a required field: give at least one '$KEY REGEX NEW_TAG KEEP'",
        ));
    }
    let mem_buf_limit = match props.size("emitter_mem_buf_limit") {
        Ok(v) => v.unwrap_or(DEFAULT_EMITTER_LIMIT),
        Err(e) => {
            errors.push(e);
            DEFAULT_EMITTER_LIMIT
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let emitter_name = props
        .str("emitter_name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("emitter_for_{}", props.instance));
    let filesystem = props
        .str("emitter_storage.type")
        .is_some_and(|t| t.eq_ignore_ascii_case("filesystem"));
    let emitted = svc.metrics.counter(
        "fluentbit_filter_emit_records_total",
        &[("name", &props.instance)],
    );
    Ok(Box::new(RewriteTag {
        rules,
        emitter: Emitter::new(),
        emitter_name,
        mem_buf_limit: usize::try_from(mem_buf_limit).unwrap_or(usize::MAX),
        filesystem,
        emitted,
    }))
}

impl Filter for RewriteTag {
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let mut caps = Captures::new();
        for rule in &self.rules {
            let Some(text) = rule.key.lookup_record(record).and_then(as_str) else {
                continue;
            };
            let Some(matched) = rule.regex.captures(text, &mut caps) else {
                continue;
            };
            let mut tag = String::new();
            rule.tag.render_with_groups(
                cx.tag,
                |ra| ra.lookup_record(record),
                |n| caps.get(n).map(|(s, e)| &matched[s..e]),
                &mut tag,
            );
            let mut event = Vec::new();
            record.write_event(&mut event);
            if !self.emitter.append(&tag, &event, 1) {
                // Not running (yet): the record stays as it is, as in Fluent Bit.
                return Verdict::Keep;
            }
            self.emitted.fetch_add(1, Ordering::Relaxed);
            return if rule.keep {
                Verdict::Keep
            } else {
                Verdict::Drop
            };
        }
        Verdict::Keep
    }

    fn emitter(&self) -> Option<EmitterSpec> {
        Some(EmitterSpec {
            name: self.emitter_name.clone(),
            mem_buf_limit: Some(self.mem_buf_limit),
            filesystem: self.filesystem,
            emitter: self.emitter.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_split_into_four_parts_with_quotes() {
        assert_eq!(
            tokens(r#"$log "^(a b)$" new.$TAG false"#).unwrap(),
            ["$log", "^(a b)$", "new.$TAG", "false"]
        );
        assert!(parse_rule("$a ^x$ t").is_err());
        assert!(parse_rule("$a ^x$ t maybe").is_err());
        assert!(parse_rule("$a ^(x$ t true").is_err());
        assert!(parse_rule("a ^x$ t true").is_err());
        assert!(parse_rule(r#"$a "^x t true"#).is_err());
        let r = parse_rule("$sub['s1'] ^(fluent)$ from.$TAG.$1 on").unwrap();
        assert!(r.keep);
    }
}
