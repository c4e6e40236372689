//! Turns a loaded configuration into a ready engine: looks up each section's plugin, validates
//! its keys, builds the instance, and collects every error (not just the first) with its
//! location. `--dry-run` runs exactly this and stops before the engine starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kb_config::schema::{
    suggest, validate_section, FILTER_GENERIC_KEYS, INPUT_GENERIC_KEYS, OUTPUT_GENERIC_KEYS,
};
use kb_config::service::{LogLevel, ServiceConfig};
use kb_config::values::{parse_retry_limit, RetryLimit, DEFAULT_RETRY_LIMIT, RETRY_LIMIT_ACCEPTED};
use kb_config::{ConfigError, ConfigWarning, PipelineConfig, PluginSpec, Props, Section};
use kb_core::engine::{Engine, EngineConfig, FilterInstance, InputInstance, OutputInstance};
use kb_core::metrics::Metrics;

/// The memory bound of an input without `Mem_Buf_Limit` (Fluent Bit has none). Memory is
/// bounded by configuration, never by load: without it a big file or a stalled output grows the
/// agent until the kernel kills it. Four 2 MiB chunks keep one output worker busy while the
/// input fills the next; pausing costs nothing, the file or the sender holds the rest.
pub const DEFAULT_MEM_BUF_LIMIT: usize = 8 * 1024 * 1024;
use kb_core::plugin::{NoParsers, ParserLookup};
use kb_core::registry::{FilterPlugin, InputPlugin, OutputPlugin, ServiceContext};
use kb_core::retry::Backoff;
use kb_core::store::file::SyncMode;
use kb_core::store::StorageConfig;
use kb_core::tag::TagMatcher;
use kb_parsers::Parsers;

/// Every plugin this build of kinesis-bit has.
pub struct Registry {
    pub inputs: Vec<InputPlugin>,
    pub filters: Vec<FilterPlugin>,
    pub outputs: Vec<OutputPlugin>,
}

impl Registry {
    /// The built-in plugins.
    pub fn builtin() -> Self {
        Registry {
            inputs: kb_inputs::plugins(),
            filters: kb_filters::plugins()
                .into_iter()
                .chain(kb_metadata::plugins())
                .collect(),
            outputs: {
                let mut o = kb_core::outputs::plugins();
                o.splice(0..0, kb_kinesis::plugins());
                o
            },
        }
    }

    /// The names of the plugins of `kind` (input, filter or output), in registry order.
    pub fn names(&self, kind: kb_config::SectionKind) -> Vec<&'static str> {
        use kb_config::SectionKind as K;
        match kind {
            K::Input => self.inputs.iter().map(|p| p.spec.name).collect(),
            K::Filter => self.filters.iter().map(|p| p.spec.name).collect(),
            K::Output => self.outputs.iter().map(|p| p.spec.name).collect(),
            _ => Vec::new(),
        }
    }

    /// The key table of plugin `name` of the section kind given by `kind` (`i`, `F`, `o`).
    pub fn spec(&self, kind: kb_config::SectionKind, name: &str) -> Option<PluginSpec> {
        use kb_config::SectionKind as K;
        let name = name.to_ascii_lowercase();
        match kind {
            K::Input => self
                .inputs
                .iter()
                .find(|p| p.spec.name == name)
                .map(|p| p.spec),
            K::Filter => self
                .filters
                .iter()
                .find(|p| p.spec.name == name)
                .map(|p| p.spec),
            K::Output => self
                .outputs
                .iter()
                .find(|p| p.spec.name == name)
                .map(|p| p.spec),
            _ => None,
        }
    }
}

/// `unknown output 'x'` plus the closest name, the list of the plugins of that kind, or that
/// there are none of that kind (an empty list reads like a bug).
pub fn unknown_plugin(kind: kb_config::SectionKind, name: &str, names: &[&str]) -> String {
    let kind = kind.as_str();
    let mut msg = format!("unknown {kind} '{name}'");
    if names.is_empty() {
        msg.push_str(&format!(": kinesis-bit has no {kind}s yet"));
    } else if let Some(s) = suggest(&name.trim().to_ascii_lowercase(), names.iter().copied()) {
        msg.push_str(&format!(" — did you mean '{s}'?"));
    } else {
        msg.push_str(&format!("; available {kind}s: {}", names.join(", ")));
    }
    msg
}

/// A configuration that could not be built: every error, and the warnings found on the way
/// (an unset variable often explains an error).
pub struct Rejected {
    /// Every error, in the order found.
    pub errors: Vec<ConfigError>,
    /// The warnings found before and while the errors were.
    pub warnings: Vec<ConfigWarning>,
}

/// An engine ready to run, plus what was found on the way.
pub struct Built {
    pub engine: Engine,
    pub warnings: Vec<ConfigWarning>,
    /// Per-instance `log_level`, by log component (`output:stdout:stdout.0`).
    pub log_levels: HashMap<String, LogLevel>,
}

struct Builder<'a> {
    log_levels: HashMap<String, LogLevel>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
    counters: HashMap<(kb_config::SectionKind, String), usize>,
    svc: &'a ServiceContext,
}

impl Builder<'_> {
    /// Find the plugin named in `section`, validate its keys, and name the instance.
    fn resolve<'p, P>(
        &mut self,
        section: &Section,
        plugins: &'p [P],
        spec_of: impl Fn(&P) -> &PluginSpec,
        generic: &[kb_config::KeySpec],
    ) -> Option<(&'p P, Props)> {
        let kind = section.kind.as_str();
        let Some(name) = section.plugin_name() else {
            self.errors.push(ConfigError::new(
                section.location.clone(),
                format!("[{kind}] 'name' is not set: every {kind} section needs a plugin name"),
            ));
            return None;
        };
        let lname = name.trim().to_ascii_lowercase();
        let Some(plugin) = plugins.iter().find(|p| spec_of(p).name == lname) else {
            let names: Vec<&str> = plugins.iter().map(|p| spec_of(p).name).collect();
            let name_prop = section.get("name");
            let mut msg = unknown_plugin(section.kind, name, &names);
            if let Some(p) = name_prop.filter(|p| p.value.trim().is_empty()) {
                msg.push_str(&section.unset_note(p));
            }
            self.errors.push(ConfigError::new(
                name_prop.map_or_else(|| section.location.clone(), |p| p.location.clone()),
                msg,
            ));
            return None;
        };
        // Fluent Bit numbers filter instances across all filter plugins (grep.0, modify.1),
        // inputs and outputs per plugin (cpu.0, tail.0).
        let counter_key = match section.kind {
            kb_config::SectionKind::Filter => String::new(),
            _ => lname.clone(),
        };
        let counter = self
            .counters
            .entry((section.kind, counter_key))
            .or_insert(0);
        let default_name = format!("{lname}.{counter}");
        *counter += 1;
        let instance = section
            .get("alias")
            .map(|p| p.value.trim().to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or(default_name);
        match validate_section(spec_of(plugin), generic, section, &instance) {
            Ok(props) => {
                if let Some(level) = props
                    .str("log_level")
                    .and_then(|l| l.parse::<LogLevel>().ok())
                {
                    self.log_levels
                        .insert(format!("{kind}:{lname}:{}", props.instance), level);
                }
                Some((plugin, props))
            }
            Err(errs) => {
                self.errors.extend(errs);
                None
            }
        }
    }

    fn matcher(&mut self, props: &Props) -> Option<TagMatcher> {
        let glob = props.str("match");
        let regex = props.str("match_regex");
        if glob.is_none() && regex.is_none() {
            self.warnings.push(ConfigWarning {
                location: props.location.clone(),
                message: format!(
                    "[{}] neither 'match' nor 'match_regex' is set: this instance receives no records",
                    props.instance
                ),
            });
        } else if glob.is_some() && regex.is_some() {
            self.warnings.push(ConfigWarning {
                location: props.location.clone(),
                message: format!(
                    "[{}] both 'match' and 'match_regex' are set: a tag matching either one is routed here",
                    props.instance
                ),
            });
        }
        match TagMatcher::new(glob, regex) {
            Ok(m) => Some(m),
            Err(e) => {
                self.errors.push(props.error("match_regex", e.to_string()));
                None
            }
        }
    }
}

/// Validate and build every instance of `cfg`. All errors are returned together.
pub fn build(
    cfg: &PipelineConfig,
    service: &ServiceConfig,
    registry: &Registry,
    metrics: Arc<Metrics>,
) -> Result<Built, Rejected> {
    let mut parser_errors = Vec::new();
    let mut parser_warnings = Vec::new();
    let parsers: Arc<dyn ParserLookup> = match Parsers::from_sections(
        &cfg.parsers,
        &cfg.multiline_parsers,
    ) {
        Ok((mut parsers, warnings)) => {
            parser_warnings = warnings;
            if let Some(p) = cfg.service_get("multiline_buffer_limit") {
                match kb_parsers::multiline::parse_buffer_limit(&p.value) {
                        Some(v) => parsers.multiline_buffer_limit = v,
                        None => parser_errors.push(ConfigError::new(
                            p.location.clone(),
                            format!(
                                "[service] invalid value '{}' for property 'multiline_buffer_limit': expected a size",
                                p.value
                            ),
                        )),
                    }
            }
            Arc::new(parsers)
        }
        Err(errs) => {
            parser_errors = errs;
            Arc::new(NoParsers)
        }
    };
    let svc = ServiceContext {
        json_escape_unicode: service.json_escape_unicode,
        parsers,
        metrics,
        ..ServiceContext::default()
    };
    let mut b = Builder {
        log_levels: HashMap::new(),
        errors: parser_errors,
        warnings: parser_warnings,
        counters: HashMap::new(),
        svc: &svc,
    };
    let mut engine = Engine::with_metrics(
        EngineConfig {
            flush: Duration::from_secs_f64(service.flush_secs),
            grace: Duration::from_secs(service.grace_secs),
            backoff: Backoff {
                base: service.scheduler_base,
                cap: service.scheduler_cap,
            },
            default_mem_buf_limit: Some(DEFAULT_MEM_BUF_LIMIT),
            storage: storage_config(service),
            ..EngineConfig::default()
        },
        svc.metrics.clone(),
    );

    for section in &cfg.inputs {
        let Some((plugin, props)) =
            b.resolve(section, &registry.inputs, |p| &p.spec, INPUT_GENERIC_KEYS)
        else {
            continue;
        };
        let mem_buf_limit = match props.size("mem_buf_limit") {
            Ok(v) => v.map(|v| v as usize),
            Err(e) => {
                b.errors.push(e);
                None
            }
        };
        let filesystem = match props.str("storage.type") {
            Some(t) => t.eq_ignore_ascii_case("filesystem"),
            None => storage_inherited(service),
        };
        if filesystem && service.storage_path.is_none() {
            let p = props.get("storage.type");
            b.errors.push(ConfigError::new(
                p.map(|p| p.location.clone())
                    .unwrap_or(props.location.clone()),
                format!(
                    "[{}] storage.type filesystem needs storage.path in [SERVICE] (or -b PATH)",
                    props.instance
                ),
            ));
        }
        match (plugin.build)(&props, b.svc) {
            Ok(input) => engine.add_input(InputInstance {
                plugin_name: plugin.spec.name.to_string(),
                tag: props.str("tag").unwrap_or(&props.instance).to_string(),
                name: props.instance.clone(),
                mem_buf_limit,
                filesystem,
                plugin: input,
            }),
            Err(errs) => b.errors.extend(errs),
        }
    }

    for section in &cfg.filters {
        let Some((plugin, props)) =
            b.resolve(section, &registry.filters, |p| &p.spec, FILTER_GENERIC_KEYS)
        else {
            continue;
        };
        let Some(matcher) = b.matcher(&props) else {
            continue;
        };
        let active = match props.bool("active") {
            Ok(v) => v.unwrap_or(true),
            Err(e) => {
                b.errors.push(e);
                true
            }
        };
        match (plugin.build)(&props, b.svc) {
            // An inactive filter is still validated (and built), as Fluent Bit loads it.
            Ok(_) if !active => {}
            Ok(filter) => engine.add_filter(FilterInstance {
                name: props.instance.clone(),
                matcher,
                plugin: filter,
            }),
            Err(errs) => b.errors.extend(errs),
        }
    }

    for section in &cfg.outputs {
        let Some((plugin, props)) =
            b.resolve(section, &registry.outputs, |p| &p.spec, OUTPUT_GENERIC_KEYS)
        else {
            continue;
        };
        let Some(matcher) = b.matcher(&props) else {
            continue;
        };
        let retry_limit = match props.str("retry_limit").map(parse_retry_limit) {
            Some(Some(l)) => l,
            Some(None) => {
                // Fluent Bit's words first, so log alerts on them still match.
                b.warnings.push(ConfigWarning {
                    location: props
                        .get("retry_limit")
                        .map(|p| p.location.clone())
                        .unwrap_or(props.location.clone()),
                    message: format!(
                        "[{}] invalid retry_limit. set default. ('{}' is not {RETRY_LIMIT_ACCEPTED}; using the default, {DEFAULT_RETRY_LIMIT})",
                        props.instance,
                        props.str("retry_limit").unwrap_or_default().trim()
                    ),
                });
                RetryLimit::Limited(DEFAULT_RETRY_LIMIT)
            }
            None => RetryLimit::Limited(DEFAULT_RETRY_LIMIT),
        };
        let workers = match props.u64("workers") {
            Ok(w) => w.unwrap_or(1).clamp(1, 256) as usize,
            Err(e) => {
                b.errors.push(e);
                1
            }
        };
        let total_limit_size = match props.size("storage.total_limit_size") {
            Ok(v) => v,
            Err(e) => {
                b.errors.push(e);
                None
            }
        };
        if total_limit_size.is_some() && service.storage_path.is_none() {
            b.warnings.push(ConfigWarning {
                location: props
                    .get("storage.total_limit_size")
                    .map(|p| p.location.clone())
                    .unwrap_or(props.location.clone()),
                message: format!(
                    "[{}] storage.total_limit_size has no effect without storage.path",
                    props.instance
                ),
            });
        }
        match (plugin.build)(&props, b.svc) {
            Ok(output) => engine.add_output(OutputInstance {
                plugin_name: plugin.spec.name.to_string(),
                name: props.instance.clone(),
                matcher,
                retry_limit,
                workers,
                total_limit_size,
                plugin: output,
            }),
            Err(errs) => b.errors.extend(errs),
        }
    }

    if cfg.inputs.is_empty() && b.errors.is_empty() {
        b.warnings.push(ConfigWarning {
            location: kb_config::Location::Default,
            message: "no inputs are configured: nothing will be collected".into(),
        });
    }
    b.warnings.extend(svc.take_warnings());
    if b.errors.is_empty() {
        Ok(Built {
            engine,
            warnings: b.warnings,
            log_levels: b.log_levels,
        })
    } else {
        Err(Rejected {
            errors: b.errors,
            warnings: b.warnings,
        })
    }
}

/// The last value of a service `storage.*` key (validated by kb-config).
fn storage_key<'a>(service: &'a ServiceConfig, key: &str) -> Option<&'a str> {
    service
        .storage
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case(key))
        .map(|p| p.value.as_str())
}

fn storage_flag(service: &ServiceConfig, key: &str) -> bool {
    storage_key(service, key)
        .and_then(kb_config::values::parse_bool)
        .unwrap_or(false)
}

/// `storage.inherit on` with a service `storage.type filesystem`: inputs without their own
/// `storage.type` buffer on the filesystem.
fn storage_inherited(service: &ServiceConfig) -> bool {
    storage_flag(service, "storage.inherit")
        && storage_key(service, "storage.type")
            .is_some_and(|t| t.eq_ignore_ascii_case("filesystem"))
}

/// The storage layer's settings, when `storage.path` is set.
fn storage_config(service: &ServiceConfig) -> Option<StorageConfig> {
    let mut c = StorageConfig::new(service.storage_path.clone()?);
    if storage_key(service, "storage.sync").is_some_and(|v| v.eq_ignore_ascii_case("full")) {
        c.sync = SyncMode::Full;
    }
    c.checksum = storage_flag(service, "storage.checksum");
    if let Some(n) = storage_key(service, "storage.max_chunks_up").and_then(|v| v.parse().ok()) {
        c.max_chunks_up = n;
    }
    if let Some(n) =
        storage_key(service, "storage.backlog.mem_limit").and_then(kb_config::values::parse_size)
    {
        c.backlog_mem_limit = n as usize;
    }
    c.backlog_flush_on_shutdown = storage_flag(service, "storage.backlog.flush_on_shutdown");
    c.delete_irrecoverable = storage_flag(service, "storage.delete_irrecoverable_chunks");
    c.keep_rejected = storage_flag(service, "storage.keep.rejected");
    if let Some(p) = storage_key(service, "storage.rejected.path") {
        c.rejected_path = p.into();
    }
    Some(c)
}
