//! The `[SERVICE]` / `service:` key table (spec §4): typed settings with Fluent Bit's defaults,
//! errors for values and features kinesis-bit cannot honour, warnings for keys it ignores.
//!
//! Unlike Fluent Bit, which silently treats any word as a true boolean for service keys and
//! ignores unknown keys, every bad value here is an error and every unknown key a warning.

use std::path::PathBuf;
use std::str::FromStr;

use crate::model::{
    unset_note, ConfigError, ConfigWarning, PipelineConfig, Property, UnsetVariable,
};
use crate::schema::suggest;
use crate::values;

/// Log verbosity, from least to most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The level's configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// A word that is not a log level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log level '{0}': expected off, error, warn, info, debug or trace")]
pub struct ParseLogLevelError(pub String);

impl FromStr for LogLevel {
    type Err = ParseLogLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return Err(ParseLogLevelError(s.to_string())),
        })
    }
}

/// The effective service settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// `Flush`, seconds (> 0).
    pub flush_secs: f64,
    /// `Grace`, seconds.
    pub grace_secs: u64,
    /// `Log_Level` from the file or the command line (`FLB_LOG_LEVEL` is the caller's business).
    pub log_level: Option<LogLevel>,
    pub log_file: Option<PathBuf>,
    /// Every `Parsers_File`, as written.
    pub parsers_files: Vec<PathBuf>,
    pub http_server: bool,
    pub http_listen: String,
    pub http_port: u16,
    pub scheduler_base: u64,
    pub scheduler_cap: u64,
    pub json_escape_unicode: bool,
    pub storage_path: Option<PathBuf>,
    pub health_check: bool,
    pub hc_errors_count: u64,
    pub hc_retry_failure_count: u64,
    pub hc_period: u64,
    /// The other `storage.*` keys (type-checked), last value per key, for the storage layer.
    pub storage: Vec<Property>,
    /// `Hot_Reload` / `-Y`: SIGHUP reloads the configuration.
    pub hot_reload: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            flush_secs: 1.0,
            grace_secs: 5,
            log_level: None,
            log_file: None,
            parsers_files: Vec::new(),
            http_server: false,
            http_listen: "0.0.0.0".to_string(),
            http_port: 2020,
            scheduler_base: 5,
            scheduler_cap: 2000,
            json_escape_unicode: true,
            storage_path: None,
            health_check: false,
            hc_errors_count: 5,
            hc_retry_failure_count: 5,
            hc_period: 60,
            storage: Vec::new(),
            hot_reload: false,
        }
    }
}

/// Every service key kinesis-bit knows by its full name (honoured, refused or ignored), for the
/// "did you mean" of an unknown key; the prefixes of [`is_ignored_key`] are not listed.
pub const SERVICE_KEYS: &[&str] = &[
    "flush",
    "grace",
    "log_level",
    "log_file",
    "parsers_file",
    "http_server",
    "http_listen",
    "http_port",
    "hot_reload",
    "health_check",
    "hc_errors_count",
    "hc_retry_failure_count",
    "hc_period",
    "scheduler.base",
    "scheduler.cap",
    "json.escape_unicode",
    "json.convert_nan_to_null",
    "storage.path",
    "storage.sync",
    "storage.checksum",
    "storage.metrics",
    "storage.backlog.mem_limit",
    "storage.backlog.flush_on_shutdown",
    "storage.max_chunks_up",
    "storage.delete_irrecoverable_chunks",
    "storage.trim_files",
    "storage.type",
    "storage.inherit",
    "storage.keep.rejected",
    "storage.rejected.path",
    "daemon",
    "security.fips_mode",
    "plugins_file",
    "streams_file",
    "coro_stack_size",
    "enable_chunk_trace",
    "windows.maxstdio",
    "sp.convert_from_str_to_num",
    "multiline_buffer_limit",
];

/// Service keys accepted for compatibility and ignored (tuning of FB internals).
fn is_ignored_key(key: &str) -> bool {
    key.starts_with("flush.adaptive")
        || key.starts_with("dns.")
        || key.starts_with("hot_reload.")
        || key.starts_with("telemetry")
        || matches!(
            key,
            "coro_stack_size"
                | "enable_chunk_trace"
                | "windows.maxstdio"
                | "sp.convert_from_str_to_num"
                // Read where the multiline parsers are built (kinesis-bit's pipeline).
                | "multiline_buffer_limit"
        )
}

/// Collects findings while the service keys are read.
struct Check<'a> {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
    /// Variables the service values used that were not set.
    unset: &'a [UnsetVariable],
}

impl Check<'_> {
    fn error(&mut self, p: &Property, message: impl Into<String>) {
        self.errors.push(ConfigError::new(
            p.location.clone(),
            format!("[service] {}", message.into()),
        ));
    }

    fn invalid(&mut self, p: &Property, expected: &str) {
        let note = if p.value.trim().is_empty() {
            unset_note(self.unset, &p.location)
        } else {
            String::new()
        };
        self.error(
            p,
            format!(
                "invalid value '{}' for property '{}': expected {expected}{note}",
                p.value, p.key
            ),
        );
    }

    fn warn(&mut self, p: &Property, message: String) {
        self.warnings.push(ConfigWarning {
            location: p.location.clone(),
            message: format!("[service] {message}"),
        });
    }

    fn parse<T>(&mut self, p: &Property, expected: &str, v: Option<T>) -> Option<T> {
        if v.is_none() {
            self.invalid(p, expected);
        }
        v
    }

    fn bool(&mut self, p: &Property) -> Option<bool> {
        self.parse(p, "a boolean (on/off)", values::parse_bool(&p.value))
    }

    fn u64(&mut self, p: &Property) -> Option<u64> {
        self.parse(p, "an integer", p.value.trim().parse::<u64>().ok())
    }
}

/// Read the service keys of `cfg` (the last value of a key wins; `Parsers_File` accumulates).
/// Returns the settings plus every error and warning, each at its property's location.
pub fn validate_service(
    cfg: &PipelineConfig,
) -> (ServiceConfig, Vec<ConfigError>, Vec<ConfigWarning>) {
    let mut sc = ServiceConfig::default();
    let mut c = Check {
        errors: Vec::new(),
        warnings: Vec::new(),
        unset: &cfg.service_unset_variables,
    };
    let mut base: Option<&Property> = None;
    let mut cap: Option<&Property> = None;
    for p in &cfg.service {
        let key = p.key.to_ascii_lowercase();
        if key == "parsers_file" {
            sc.parsers_files.push(PathBuf::from(p.value.trim()));
            continue;
        }
        // Earlier values of a repeated key are overridden (the command line comes last).
        if !cfg
            .service_get(&key)
            .is_some_and(|last| std::ptr::eq(last, p))
        {
            continue;
        }
        let v = p.value.trim();
        match key.as_str() {
            "flush" => {
                let f = values::parse_seconds_f64(v).filter(|f| *f > 0.0);
                if let Some(f) = c.parse(p, "a number of seconds greater than 0", f) {
                    sc.flush_secs = f;
                }
            }
            "grace" => sc.grace_secs = c.u64(p).unwrap_or(sc.grace_secs),
            "log_level" => match v.parse::<LogLevel>() {
                Ok(l) => sc.log_level = Some(l),
                Err(_) => c.invalid(p, "one of off, error, warn, info, debug, trace"),
            },
            "log_file" => sc.log_file = Some(PathBuf::from(v)),
            "http_server" => sc.http_server = c.bool(p).unwrap_or(false),
            "hot_reload" => sc.hot_reload = c.bool(p).unwrap_or(false),
            "http_listen" => sc.http_listen = v.to_string(),
            "http_port" => {
                let port = v.parse::<u16>().ok().filter(|n| *n > 0);
                sc.http_port = c.parse(p, "a TCP port (1-65535)", port).unwrap_or(2020);
            }
            "health_check" => sc.health_check = c.bool(p).unwrap_or(false),
            "hc_errors_count" => sc.hc_errors_count = c.u64(p).unwrap_or(5),
            "hc_retry_failure_count" => sc.hc_retry_failure_count = c.u64(p).unwrap_or(5),
            "hc_period" => {
                let n = v.parse::<u64>().ok().filter(|n| *n > 0);
                sc.hc_period = c.parse(p, "a number of seconds (>= 1)", n).unwrap_or(60);
            }
            "scheduler.base" => {
                sc.scheduler_base = c.u64(p).unwrap_or(5);
                base = Some(p);
            }
            "scheduler.cap" => {
                sc.scheduler_cap = c.u64(p).unwrap_or(2000);
                cap = Some(p);
            }
            "json.escape_unicode" => sc.json_escape_unicode = c.bool(p).unwrap_or(true),
            // KB always writes null for NaN/Inf; the key is only type-checked.
            "json.convert_nan_to_null" => {
                c.bool(p);
            }
            "storage.path" => sc.storage_path = Some(PathBuf::from(v)),
            "storage.checksum"
            | "storage.metrics"
            | "storage.backlog.flush_on_shutdown"
            | "storage.delete_irrecoverable_chunks"
            | "storage.trim_files"
            | "storage.inherit"
            | "storage.keep.rejected" => {
                if c.bool(p).is_some() {
                    sc.storage.push(p.clone());
                }
            }
            "storage.backlog.mem_limit" => {
                if c.parse(p, "a size", values::parse_size(v)).is_some() {
                    sc.storage.push(p.clone());
                }
            }
            "storage.max_chunks_up" => {
                if c.u64(p).is_some() {
                    sc.storage.push(p.clone());
                }
            }
            "storage.sync" => match v.to_ascii_lowercase().as_str() {
                "normal" | "full" => sc.storage.push(p.clone()),
                _ => c.invalid(p, "normal or full"),
            },
            "storage.type" => match v.to_ascii_lowercase().as_str() {
                "memory" | "filesystem" => sc.storage.push(p.clone()),
                "memrb" => c.error(p, "storage.type memrb is not supported by kinesis-bit"),
                _ => c.invalid(p, "memory or filesystem"),
            },
            "storage.rejected.path" => sc.storage.push(p.clone()),
            "daemon" => {
                if c.bool(p) == Some(true) {
                    c.error(p, "Daemon on is not supported by kinesis-bit");
                }
            }
            "security.fips_mode" => {
                if c.bool(p) == Some(true) {
                    c.error(p, "security.fips_mode on is not supported by kinesis-bit");
                }
            }
            "plugins_file" | "streams_file" => {
                c.error(p, format!("'{}' is not supported by kinesis-bit", p.key))
            }
            k if is_ignored_key(k) => {
                c.warn(p, format!("key '{}' is accepted and ignored", p.key));
            }
            _ => {
                let mut msg = format!("unknown key '{}' is ignored", p.key);
                if let Some(s) = suggest(&p.key, SERVICE_KEYS.iter().copied()) {
                    msg.push_str(&format!("; did you mean '{s}'?"));
                }
                c.warn(p, msg)
            }
        }
    }
    // Only report the relation when both values parsed.
    if let Some(b) = base.filter(|b| b.value.trim().parse::<u64>().is_ok()) {
        if sc.scheduler_base < 1 {
            c.error(b, "scheduler.base must be at least 1");
        }
    }
    if sc.scheduler_base >= 1 && sc.scheduler_cap < sc.scheduler_base {
        let at = cap.or(base);
        let ok = |p: Option<&Property>| p.is_none_or(|p| p.value.trim().parse::<u64>().is_ok());
        if let (Some(at), true) = (at, ok(cap) && ok(base)) {
            c.error(
                at,
                format!(
                    "scheduler.cap ({}) must not be less than scheduler.base ({})",
                    sc.scheduler_cap, sc.scheduler_base
                ),
            );
        }
    }
    (sc, c.errors, c.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Location;

    fn cfg(props: &[(&str, &str)]) -> PipelineConfig {
        let mut c = PipelineConfig::default();
        for (i, (k, v)) in props.iter().enumerate() {
            c.service.push(Property {
                key: k.to_string(),
                value: v.to_string(),
                location: Location::classic("s.conf", i + 1),
            });
        }
        c
    }

    #[test]
    fn defaults() {
        let (sc, e, w) = validate_service(&PipelineConfig::default());
        assert_eq!(sc, ServiceConfig::default());
        assert!(e.is_empty() && w.is_empty());
    }

    #[test]
    fn log_levels_parse() {
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("trace".parse::<LogLevel>(), Ok(LogLevel::Trace));
        assert!("loud".parse::<LogLevel>().is_err());
    }

    #[test]
    fn unknown_key_gets_a_suggestion() {
        let (_, e, w) = validate_service(&cfg(&[("log_levl", "debug"), ("frobnicate", "1")]));
        assert!(e.is_empty());
        let w: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(
            w,
            [
                "s.conf:1: [service] unknown key 'log_levl' is ignored; did you mean 'log_level'?",
                "s.conf:2: [service] unknown key 'frobnicate' is ignored",
            ]
        );
    }

    #[test]
    fn every_listed_key_is_known() {
        for key in SERVICE_KEYS {
            let (_, _, w) = validate_service(&cfg(&[(key, "on")]));
            assert!(
                w.iter().all(|w| !w.message.contains("unknown key")),
                "{key}: {w:?}"
            );
        }
    }

    #[test]
    fn a_value_emptied_by_an_unset_variable_says_so() {
        let mut c = cfg(&[("flush", "")]);
        c.service_unset_variables.push(UnsetVariable {
            location: Location::classic("s.conf", 1),
            name: "FLUSH".into(),
        });
        let (_, e, _) = validate_service(&c);
        assert_eq!(
            e[0].to_string(),
            "s.conf:1: [service] invalid value '' for property 'flush': expected a number of seconds greater than 0: variable ${FLUSH} is not set"
        );
    }

    #[test]
    fn last_value_wins() {
        let (sc, e, _) = validate_service(&cfg(&[("flush", "0"), ("flush", "2.5")]));
        assert!(e.is_empty());
        assert_eq!(sc.flush_secs, 2.5);
    }
}
