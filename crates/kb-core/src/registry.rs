//! How plugins are made from validated configuration: each plugin pairs its key table with a
//! factory. Factories only construct (no sockets, no files opened for writing), so the same
//! path serves `--dry-run` and a real start.

use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;
use kb_config::{ConfigError, ConfigWarning, Location, PluginSpec, Props};

use crate::filter::Filter;
use crate::plugin::{Input, NoParsers, Output, ParserLookup};

/// Service settings plugins may need while being built.
#[derive(Clone)]
pub struct ServiceContext {
    /// `json.escape_unicode`.
    pub json_escape_unicode: bool,
    /// Where plugins register their own counters (the engine's registry).
    pub metrics: Arc<Metrics>,
    /// Findings of factories, logged once logging is set up (factories run before it is).
    pub warnings: Arc<Mutex<Vec<ConfigWarning>>>,
    /// The configured `[PARSER]`s.
    pub parsers: Arc<dyn ParserLookup>,
}

impl ServiceContext {
    /// Record a configuration warning about the entry at `location`.
    pub fn warn(&self, location: Location, message: impl Into<String>) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ConfigWarning {
                location,
                message: message.into(),
            });
    }

    /// Take the recorded warnings.
    pub fn take_warnings(&self) -> Vec<ConfigWarning> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Default for ServiceContext {
    fn default() -> Self {
        ServiceContext {
            json_escape_unicode: true,
            metrics: Arc::new(Metrics::default()),
            warnings: Arc::default(),
            parsers: Arc::new(NoParsers),
        }
    }
}

/// Builds an input from its validated properties.
pub type InputFactory = fn(&Props, &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>>;
/// Builds a filter from its validated properties.
pub type FilterFactory = fn(&Props, &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>>;
/// Builds an output from its validated properties.
pub type OutputFactory = fn(&Props, &ServiceContext) -> Result<Arc<dyn Output>, Vec<ConfigError>>;

/// An input plugin: key table and factory.
#[derive(Clone, Copy)]
pub struct InputPlugin {
    pub spec: PluginSpec,
    pub build: InputFactory,
}

/// A filter plugin: key table and factory.
#[derive(Clone, Copy)]
pub struct FilterPlugin {
    pub spec: PluginSpec,
    pub build: FilterFactory,
}

/// An output plugin: key table and factory.
#[derive(Clone, Copy)]
pub struct OutputPlugin {
    pub spec: PluginSpec,
    pub build: OutputFactory,
}
