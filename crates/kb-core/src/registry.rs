//! How plugins are made from validated configuration: each plugin pairs its key table with a
//! factory. Factories only construct (no sockets, no files opened for writing), so the same
//! path serves `--dry-run` and a real start.

use std::sync::Arc;

use crate::metrics::Metrics;
use kb_config::{ConfigError, PluginSpec, Props};

use crate::plugin::{Filter, Input, Output};

/// Service settings plugins may need while being built.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// `json.escape_unicode`.
    pub json_escape_unicode: bool,
    /// Where plugins register their own counters (the engine's registry).
    pub metrics: Arc<Metrics>,
}

impl Default for ServiceContext {
    fn default() -> Self {
        ServiceContext {
            json_escape_unicode: true,
            metrics: Arc::new(Metrics::default()),
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
