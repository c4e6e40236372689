//! Plugin key tables and the validation of a section against them: unknown keys (with a
//! "did you mean" suggestion), keys set twice, value types. The result is a [`Props`] that
//! plugins read with typed getters whose errors carry the property's location.

use crate::model::{ConfigError, Location, Property, Section, SectionKind};
use crate::values;

/// The type of a key's value, checked at validation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    Bool,
    /// Unsigned integer.
    Int,
    /// Signed integer (keys whose "unset" default is -1).
    SignedInt,
    /// Fluent Bit size (`5M`).
    Size,
    /// Fluent Bit time in seconds (`5`, `2m`).
    Time,
    /// Decimal number.
    Double,
    /// One of a fixed set of lower-case words.
    Enum(&'static [&'static str]),
    /// `retry_limit` syntax.
    RetryLimit,
}

impl KeyType {
    /// Name printed by `-o NAME -h`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Str => "string",
            KeyType::Bool => "boolean",
            KeyType::Int | KeyType::SignedInt => "integer",
            KeyType::Size => "size",
            KeyType::Time => "time",
            KeyType::Double => "double",
            KeyType::Enum(_) => "string",
            KeyType::RetryLimit => "string",
        }
    }
}

/// One key a plugin accepts.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Lower-case key name.
    pub name: &'static str,
    pub ty: KeyType,
    /// Default as Fluent Bit prints it; `None` when the key has no default.
    pub default: Option<&'static str>,
    pub description: &'static str,
    /// The key may be given several times (e.g. `Parser` lists).
    pub multiple: bool,
}

impl KeySpec {
    /// A key of type `ty` with an optional default.
    pub const fn new(
        name: &'static str,
        ty: KeyType,
        default: Option<&'static str>,
        description: &'static str,
    ) -> Self {
        KeySpec {
            name,
            ty,
            default,
            description,
            multiple: false,
        }
    }

    /// The same key, allowed several times in a section (`Record`, `Rule`, `Parser`).
    pub const fn multi(mut self) -> Self {
        self.multiple = true;
        self
    }
}

/// The key table and identity of one plugin.
#[derive(Debug, Clone, Copy)]
pub struct PluginSpec {
    pub kind: SectionKind,
    pub name: &'static str,
    pub description: &'static str,
    /// The plugin's own keys.
    pub keys: &'static [KeySpec],
}

/// Keys every input accepts (handled by the engine).
pub const INPUT_GENERIC_KEYS: &[KeySpec] = &[
    KeySpec::new("name", KeyType::Str, None, "plugin name"),
    KeySpec::new(
        "tag",
        KeyType::Str,
        None,
        "tag of the records this input produces",
    ),
    KeySpec::new(
        "alias",
        KeyType::Str,
        None,
        "instance name in logs and metrics",
    ),
    KeySpec::new(
        "log_level",
        KeyType::Enum(&["off", "error", "warn", "info", "debug", "trace"]),
        None,
        "per-instance log level",
    ),
    KeySpec::new(
        "log_suppress_interval",
        KeyType::Time,
        Some("0"),
        "suppress repeated messages within this interval",
    ),
    KeySpec::new(
        "mem_buf_limit",
        KeyType::Size,
        None,
        "pause the input when its buffered bytes pass this size (unset: 8M, see README)",
    ),
    KeySpec::new(
        "routable",
        KeyType::Bool,
        Some("true"),
        "whether records of this input are routed",
    ),
    KeySpec::new(
        "threaded",
        KeyType::Bool,
        Some("false"),
        "run the input in its own thread (accepted; inputs are async tasks)",
    ),
    KeySpec::new(
        "storage.type",
        KeyType::Enum(&["memory", "filesystem"]),
        None,
        "chunk storage of this input: memory, or filesystem (needs storage.path)",
    ),
];

/// Keys every filter accepts.
pub const FILTER_GENERIC_KEYS: &[KeySpec] = &[
    KeySpec::new("name", KeyType::Str, None, "plugin name"),
    KeySpec::new(
        "match",
        KeyType::Str,
        None,
        "tag pattern with '*' wildcards",
    ),
    KeySpec::new(
        "match_regex",
        KeyType::Str,
        None,
        "regular expression matched against the tag",
    ),
    KeySpec::new(
        "alias",
        KeyType::Str,
        None,
        "instance name in logs and metrics",
    ),
    KeySpec::new(
        "log_level",
        KeyType::Enum(&["off", "error", "warn", "info", "debug", "trace"]),
        None,
        "per-instance log level",
    ),
    KeySpec::new(
        "log_suppress_interval",
        KeyType::Time,
        Some("0"),
        "suppress repeated messages within this interval",
    ),
    KeySpec::new(
        "active",
        KeyType::Bool,
        Some("true"),
        "false: the filter is loaded but does nothing",
    ),
];

/// Keys every output accepts (handled by the engine).
pub const OUTPUT_GENERIC_KEYS: &[KeySpec] = &[
    KeySpec::new("name", KeyType::Str, None, "plugin name"),
    KeySpec::new(
        "match",
        KeyType::Str,
        None,
        "tag pattern with '*' wildcards",
    ),
    KeySpec::new(
        "match_regex",
        KeyType::Str,
        None,
        "regular expression matched against the tag",
    ),
    KeySpec::new(
        "alias",
        KeyType::Str,
        None,
        "instance name in logs and metrics",
    ),
    KeySpec::new(
        "log_level",
        KeyType::Enum(&["off", "error", "warn", "info", "debug", "trace"]),
        None,
        "per-instance log level",
    ),
    KeySpec::new(
        "log_suppress_interval",
        KeyType::Time,
        Some("0"),
        "suppress repeated messages within this interval",
    ),
    KeySpec::new(
        "retry_limit",
        KeyType::RetryLimit,
        Some("1"),
        "engine retries per chunk: an integer >= 1, no_limits (also false, off) or no_retries",
    ),
    KeySpec::new(
        "workers",
        KeyType::Int,
        Some("1"),
        "flush workers of this instance",
    ),
];

/// A validated section: every known key resolved to its value (or default) and its location.
#[derive(Debug, Clone)]
pub struct Props {
    /// Instance name used in messages (`alias` or `<plugin>.<index>`).
    pub instance: String,
    /// Input, filter or output: messages read `[output stdout.0] …`.
    pub kind: SectionKind,
    /// Where the section starts.
    pub location: Location,
    props: Vec<Property>,
}

impl Props {
    /// The property set for `key`, or its default, if any.
    pub fn get(&self, key: &str) -> Option<&Property> {
        self.props
            .iter()
            .rev()
            .find(|p| p.key.eq_ignore_ascii_case(key))
    }

    /// All values given for a key that may repeat, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.props
            .iter()
            .filter(move |p| p.key.eq_ignore_ascii_case(key))
    }

    /// Every property set in the section, in configuration order (defaults left out): for
    /// plugins whose keys are an ordered program, such as `modify`'s rules.
    pub fn iter(&self) -> impl Iterator<Item = &Property> + '_ {
        self.props
            .iter()
            .filter(|p| p.location != Location::Default)
    }

    /// The raw string value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).map(|p| p.value.as_str())
    }

    /// An error about `key` pointing at its entry (or at the section when it is not set).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let location = match self.get(key) {
            Some(p) if p.location != Location::Default => p.location.clone(),
            _ => self.location.clone(),
        };
        ConfigError::new(
            location,
            format!(
                "[{} {}] {}",
                self.kind.as_str(),
                self.instance,
                message.into()
            ),
        )
    }

    /// The value of a required key, or `'key' is a required field`.
    pub fn required(&self, key: &str) -> Result<&str, ConfigError> {
        self.str(key)
            .ok_or_else(|| self.error(key, format!("'{key}' is a required field")))
    }

    fn typed<T>(
        &self,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(p) => parse(&p.value).map(Some).ok_or_else(|| {
                self.error(
                    key,
                    format!("invalid value '{}' for {what} property '{key}'", p.value),
                )
            }),
        }
    }

    /// A boolean key.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "boolean", values::parse_bool)
    }

    /// A size key in bytes.
    pub fn size(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "size", values::parse_size)
    }

    /// A time key in seconds.
    pub fn time_secs(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "time", values::parse_time_secs)
    }

    /// An unsigned integer key.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, "integer", |s| s.trim().parse::<u64>().ok())
    }

    /// A signed integer key.
    pub fn i64(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.typed(key, "integer", |s| s.trim().parse::<i64>().ok())
    }

    /// A decimal key.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.typed(key, "double", |s| {
            s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
        })
    }
}

/// The closest of `candidates` to `word`, when it is near enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Validate `section` against the plugin's keys plus the generic `extra` keys: every unknown key,
/// repeated key and badly typed value is reported. Defaults fill in keys that are not set.
pub fn validate_section(
    spec: &PluginSpec,
    extra: &[KeySpec],
    section: &Section,
    instance: &str,
) -> Result<Props, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let all = || spec.keys.iter().chain(extra.iter());
    let find = |key: &str| all().find(|k| k.name.eq_ignore_ascii_case(key));
    let prefix = format!("[{} {}]", spec.kind.as_str(), instance);
    let mut seen: Vec<&Property> = Vec::new();
    for p in &section.props {
        let Some(ks) = find(&p.key) else {
            let mut msg = format!("{prefix} unknown configuration property '{}'", p.key);
            if let Some(s) = suggest(&p.key, all().map(|k| k.name)) {
                msg.push_str(&format!("; did you mean '{s}'?"));
            } else {
                let names: Vec<&str> = spec.keys.iter().map(|k| k.name).collect();
                msg.push_str(&format!(
                    ". The following properties are allowed: {}",
                    names.join(", ")
                ));
            }
            errors.push(ConfigError::new(p.location.clone(), msg));
            continue;
        };
        if !ks.multiple {
            if let Some(first) = seen.iter().find(|q| q.key.eq_ignore_ascii_case(&p.key)) {
                errors.push(ConfigError::new(
                    p.location.clone(),
                    format!(
                        "{prefix} configuration property '{}' is set 2 times (first at {})",
                        p.key, first.location
                    ),
                ));
                continue;
            }
        }
        seen.push(p);
        if p.value.trim().is_empty() {
            errors.push(ConfigError::new(
                p.location.clone(),
                format!(
                    "{prefix} key '{}' has an empty value{}",
                    p.key,
                    section.unset_note(p)
                ),
            ));
            continue;
        }
        let ok = match ks.ty {
            KeyType::Str | KeyType::RetryLimit => true,
            KeyType::Bool => values::parse_bool(&p.value).is_some(),
            KeyType::Int => p.value.trim().parse::<u64>().is_ok(),
            KeyType::SignedInt => p.value.trim().parse::<i64>().is_ok(),
            KeyType::Size => values::parse_size(&p.value).is_some(),
            KeyType::Time => values::parse_time_secs(&p.value).is_some(),
            KeyType::Double => values::parse_seconds_f64(&p.value).is_some(),
            KeyType::Enum(words) => words.iter().any(|w| w.eq_ignore_ascii_case(p.value.trim())),
        };
        if !ok {
            let expect = match ks.ty {
                KeyType::Enum(words) => format!("one of: {}", words.join(", ")),
                other if other.name().starts_with(['a', 'e', 'i', 'o', 'u']) => {
                    format!("an {}", other.name())
                }
                other => format!("a {}", other.name()),
            };
            errors.push(ConfigError::new(
                p.location.clone(),
                format!(
                    "{prefix} invalid value '{}' for property '{}': expected {expect}",
                    p.value, p.key
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut props: Vec<Property> = all()
        .filter_map(|k| {
            k.default.map(|d| Property {
                key: k.name.to_string(),
                value: d.to_string(),
                location: Location::Default,
            })
        })
        .collect();
    props.extend(section.props.iter().map(|p| Property {
        key: p.key.to_ascii_lowercase(),
        value: p.value.trim().to_string(),
        location: p.location.clone(),
    }));
    Ok(Props {
        instance: instance.to_string(),
        kind: spec.kind,
        location: section.location.clone(),
        props,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[KeySpec] = &[
        KeySpec::new("stream", KeyType::Str, None, "stream"),
        KeySpec::new("rate", KeyType::Int, Some("1"), "rate"),
    ];
    const SPEC: PluginSpec = PluginSpec {
        kind: SectionKind::Output,
        name: "test",
        description: "",
        keys: KEYS,
    };

    fn loc(line: usize) -> Location {
        Location::Classic {
            file: "a.conf".into(),
            line,
            included_from: None,
        }
    }

    fn section(props: &[(&str, &str)]) -> Section {
        let mut s = Section::new(SectionKind::Output, loc(1));
        for (i, (k, v)) in props.iter().enumerate() {
            s.props.push(Property {
                key: k.to_string(),
                value: v.to_string(),
                location: loc(i + 2),
            });
        }
        s
    }

    #[test]
    fn unknown_key_gets_suggestion_and_location() {
        let e = validate_section(
            &SPEC,
            OUTPUT_GENERIC_KEYS,
            &section(&[("strem", "x")]),
            "test.0",
        )
        .unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "a.conf:2: [output test.0] unknown configuration property 'strem'; did you mean 'stream'?"
        );
    }

    #[test]
    fn duplicates_and_types_are_all_reported() {
        let e = validate_section(
            &SPEC,
            OUTPUT_GENERIC_KEYS,
            &section(&[("stream", "a"), ("Stream", "b"), ("rate", "x")]),
            "t",
        )
        .unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0]
            .to_string()
            .contains("is set 2 times (first at a.conf:2)"));
        assert!(e[1].to_string().starts_with("a.conf:4:"));
    }

    #[test]
    fn defaults_fill_in() {
        let p = validate_section(
            &SPEC,
            OUTPUT_GENERIC_KEYS,
            &section(&[("stream", "s")]),
            "t",
        )
        .unwrap();
        assert_eq!(p.u64("rate").unwrap(), Some(1));
        assert_eq!(p.str("stream"), Some("s"));
        assert_eq!(p.str("retry_limit"), Some("1"));
        assert!(p.required("match").is_err());
    }

    #[test]
    fn suggestion_for_plugin_names() {
        assert_eq!(
            suggest("kinesis_steams", ["stdout", "null", "kinesis_streams"]),
            Some("kinesis_streams")
        );
        assert_eq!(suggest("zzz", ["stdout", "null"]), None);
    }
}
