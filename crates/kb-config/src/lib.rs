//! Fluent Bit compatible configuration for kinesis-bit: classic `.conf`, YAML and the command line
//! all become one [`PipelineConfig`]; plugin sections are checked against their key tables with
//! [`schema::validate_section`].

pub mod model;
pub mod schema;
pub mod values;

pub use model::{
    ConfigError, ConfigErrors, ConfigWarning, Location, PipelineConfig, Property, Section,
    SectionKind,
};
pub use schema::{KeySpec, KeyType, PluginSpec, Props};
