//! Fluent Bit compatible configuration for kinesis-bit: classic `.conf`, YAML and the command line
//! all become one [`PipelineConfig`] ([`load`]); plugin sections are checked against their key
//! tables with [`schema::validate_section`], service keys with [`validate_service`].

pub mod classic;
pub mod cli;
pub mod env;
pub mod load;
pub mod model;
pub mod schema;
pub mod service;
pub mod values;
pub mod yaml;

pub use classic::{parse_classic_file, parse_classic_str};
pub use cli::{parse_command_line, usage, CliError, CommandLine};
pub use env::Env;
pub use load::{load, load_parsers_file};
pub use model::{
    ConfigError, ConfigErrors, ConfigWarning, Location, PipelineConfig, Property, Section,
    SectionKind, UnsetVariable,
};
pub use schema::{KeySpec, KeyType, PluginSpec, Props};
pub use service::{validate_service, LogLevel, ServiceConfig};
pub use yaml::{parse_yaml_file, parse_yaml_str};
