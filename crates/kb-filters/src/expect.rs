//! `expect`: check that records have the expected keys and values (Fluent Bit's
//! `filter_expect`), for testing pipelines.
//!
//! As in `plugins/filter_expect/expect.c`:
//! * Rules (`key_exists`, `key_not_exists`, `key_val_is_null`, `key_val_is_not_null`,
//!   `key_val_eq KEY VALUE`) run in configuration order; each `KEY` is a top-level key or a
//!   record accessor (`$a['b'][0]`). `key_val_is_null`/`_not_null` fail on a missing key.
//!   The first rule that fails is logged with the record as JSON
//!   (`exception on rule #N 'key_exists', key 'x' not found. Record content: {...}`).
//! * `action warn` (default) logs `expect check failed` and lets the record go on;
//!   `action exit` also stops the agent (it delivers what it holds) and makes it exit with
//!   status 255; `action result_key` adds `result_key: true|false` (default key `matched`)
//!   as the first key of the record. Records are never dropped.
//!
//! Differences, deliberate:
//! * `key_val_eq` on a number or a boolean compares its text (`key_val_eq count 5` holds for
//!   `"count": 5`), and fails for null, maps and arrays; Fluent Bit lets every non-string
//!   value pass, whatever it is.
//! * A key whose value is an array or bin data exists (Fluent Bit's value lookup cannot
//!   represent them and reports such a key as missing).
//! * `result_key` is decided per record; Fluent Bit gives every record of a chunk `false`
//!   when one of them fails.
//! * Each failing record is logged; Fluent Bit logs the first one of each chunk.
//! * `action exit` needs a way to stop the engine: the filter owns an emitter input
//!   (`emitter_for_<instance>`), which appears among the inputs in the metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::accessor::value_text;
use kb_core::filter::{Emitter, EmitterSpec, Filter, FilterCx, Verdict};
use kb_core::json::{write_json, JsonOptions, JsonStats};
use kb_core::msgpack::Head;
use kb_core::record::{Record, Val};
use kb_core::registry::{FilterPlugin, ServiceContext};

use crate::util::{component, error_at, head, in_span, key_and_rest, KeyRef};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "key_exists",
        KeyType::Str,
        None,
        "check that the given key name exists in the record",
    )
    .multi(),
    KeySpec::new(
        "key_not_exists",
        KeyType::Str,
        None,
        "check that the given key name do not exists in the record",
    )
    .multi(),
    KeySpec::new(
        "key_val_is_null",
        KeyType::Str,
        None,
        "check that the value of the key is NULL",
    )
    .multi(),
    KeySpec::new(
        "key_val_is_not_null",
        KeyType::Str,
        None,
        "check that the value of the key is NOT NULL",
    )
    .multi(),
    KeySpec::new(
        "key_val_eq",
        KeyType::Str,
        None,
        "check that the value of the key equals the given value",
    )
    .multi(),
    KeySpec::new(
        "action",
        KeyType::Enum(&["warn", "exit", "result_key"]),
        Some("warn"),
        "action to take when a rule does not match: 'warn', 'exit' or 'result_key'.",
    ),
    KeySpec::new(
        "result_key",
        KeyType::Str,
        Some("matched"),
        "specify the key name to append a boolean that indicates rule is matched or not. This key is to be used only when 'action' is 'result_key'.",
    ),
];

/// The `expect` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "expect",
        description: "Validate expected keys and values",
        keys: KEYS,
    },
    build,
};

/// Exit status of `action exit`, as Fluent Bit's `flb_engine_exit_status(config, 255)`.
const EXIT_STATUS: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Exists,
    NotExists,
    IsNull,
    IsNotNull,
    Eq,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Exists => "key_exists",
            Check::NotExists => "key_not_exists",
            Check::IsNull => "key_val_is_null",
            Check::IsNotNull => "key_val_is_not_null",
            Check::Eq => "key_val_eq",
        }
    }
}

#[derive(Debug)]
struct Rule {
    check: Check,
    text: String,
    key: KeyRef,
    expect: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Warn,
    Exit,
    ResultKey,
}

/// A configured `expect`.
pub struct Expect {
    rules: Vec<Rule>,
    action: Action,
    result_key: Vec<u8>,
    component: String,
    json_escape_unicode: bool,
    emitter: Option<(String, Emitter)>,
    exit_requested: AtomicBool,
}

fn build(props: &Props, cx: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(Expect::from_props(props, cx)?))
}

/// The type name Fluent Bit prints for a value.
fn type_name(value: &[u8]) -> &'static str {
    match head(value) {
        Some(Head::Bool(_)) => "boolean",
        Some(Head::Uint(_) | Head::Int(_)) => "integer",
        Some(Head::Float(_)) => "float / double",
        Some(Head::Str(_)) => "string",
        Some(Head::Nil) => "null",
        Some(Head::Map(_)) => "map",
        Some(Head::Array(_)) => "array",
        _ => "UNKNOWN",
    }
}

impl Expect {
    /// Build from validated properties.
    pub fn from_props(props: &Props, cx: &ServiceContext) -> Result<Expect, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for p in props.iter() {
            let check = match p.key.as_str() {
                "key_exists" => Check::Exists,
                "key_not_exists" => Check::NotExists,
                "key_val_is_null" => Check::IsNull,
                "key_val_is_not_null" => Check::IsNotNull,
                "key_val_eq" => Check::Eq,
                _ => continue,
            };
            let (key, expect) = if check == Check::Eq {
                match key_and_rest(&p.value) {
                    Some((k, v)) => (k, v.trim_end().to_string()),
                    None => {
                        errors.push(error_at(
                            props,
                            p,
                            format!("key_val_eq '{}' needs a key and a value", p.value),
                        ));
                        continue;
                    }
                }
            } else {
                (p.value.as_str(), String::new())
            };
            match KeyRef::parse(key) {
                Ok(k) => rules.push(Rule {
                    check,
                    text: key.to_string(),
                    key: k,
                    expect,
                }),
                Err(e) => errors.push(error_at(
                    props,
                    p,
                    format!("error processing accessor key: {e}"),
                )),
            }
        }
        let action = match props
            .str("action")
            .unwrap_or("warn")
            .to_ascii_lowercase()
            .as_str()
        {
            "exit" => Action::Exit,
            "result_key" => Action::ResultKey,
            _ => Action::Warn,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        if rules.is_empty() {
            cx.warn(
                props.location.clone(),
                format!("[filter {}] no rules has been defined", props.instance),
            );
        }
        let emitter = (action == Action::Exit)
            .then(|| (format!("emitter_for_{}", props.instance), Emitter::new()));
        Ok(Expect {
            rules,
            action,
            result_key: props
                .str("result_key")
                .unwrap_or("matched")
                .as_bytes()
                .to_vec(),
            component: component("expect", props),
            json_escape_unicode: cx.json_escape_unicode,
            emitter,
            exit_requested: AtomicBool::new(false),
        })
    }

    /// The first failing rule: its number and what failed.
    fn check(&self, r: &Record<'_>) -> Option<(usize, String)> {
        for (n, rule) in self.rules.iter().enumerate() {
            let v = rule.key.lookup(r);
            let what = rule.check.name();
            let failure = match (rule.check, v) {
                (Check::Exists, Some(_)) | (Check::NotExists, None) => None,
                (Check::Exists, None) => Some(format!("key '{}' not found", rule.text)),
                (Check::NotExists, Some(_)) => Some(format!("key '{}' exists", rule.text)),
                (Check::IsNull | Check::IsNotNull | Check::Eq, None) => {
                    Some(format!("key '{}' not found", rule.text))
                }
                (Check::IsNull, Some(v)) => (!matches!(head(v), Some(Head::Nil))).then(|| {
                    format!(
                        "key '{}' contains a value type '{}'",
                        rule.text,
                        type_name(v)
                    )
                }),
                (Check::IsNotNull, Some(v)) => matches!(head(v), Some(Head::Nil))
                    .then(|| format!("key '{}' contains a value type 'null'", rule.text)),
                (Check::Eq, Some(v)) => {
                    let mut text = String::new();
                    let same = match head(v) {
                        Some(Head::Str(s) | Head::Bin(s)) => s == rule.expect.as_bytes(),
                        _ => value_text(v, &mut text) && text == rule.expect,
                    };
                    (!same).then(|| {
                        if text.is_empty() {
                            kb_core::accessor::push_lossy_utf8(
                                kb_core::record::as_str(v).unwrap_or(b""),
                                &mut text,
                            );
                        }
                        format!(
                            "key value '{}' is different than expected: '{}'",
                            text, rule.expect
                        )
                    })
                }
            };
            if let Some(f) = failure {
                return Some((n, format!("'{what}', {f}")));
            }
        }
        None
    }

    fn record_json(&self, r: &Record<'_>) -> String {
        let mut map = Vec::new();
        r.write_map(&mut map);
        let mut out = Vec::new();
        let opts = JsonOptions {
            escape_unicode: self.json_escape_unicode,
        };
        let _ = write_json(&map, &mut out, &opts, &mut JsonStats::default());
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Filter for Expect {
    fn filter(&self, record: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        let failure = self.check(record);
        if let Some((n, what)) = &failure {
            let json = self.record_json(record);
            in_span(&self.component, || {
                tracing::error!("exception on rule #{n} {what}. Record content:\n{json}");
                if self.action != Action::ResultKey {
                    tracing::warn!("expect check failed");
                }
            });
            if self.action == Action::Exit && !self.exit_requested.swap(true, Ordering::AcqRel) {
                if let Some((_, e)) = &self.emitter {
                    e.request_exit(EXIT_STATUS);
                }
            }
        }
        if self.action == Action::ResultKey {
            let k = record.put_str(&self.result_key);
            let v: Val = record.put(&[if failure.is_none() { 0xc3 } else { 0xc2 }]);
            record.insert(0, k, v);
        }
        Verdict::Keep
    }

    fn emitter(&self) -> Option<EmitterSpec> {
        self.emitter.as_ref().map(|(name, e)| EmitterSpec {
            name: name.clone(),
            mem_buf_limit: None,
            filesystem: false,
            emitter: e.clone(),
        })
    }
}
