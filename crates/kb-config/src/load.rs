//! Putting a configuration together: the `-c` file (classic or YAML by its name), the sections
//! and service options of the command line, and the parser files named by `Parsers_File` / `-R`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::classic::{base_dir, parse_classic_file};
use crate::cli::CommandLine;
use crate::env::Env;
use crate::model::{ConfigError, ConfigErrors, PipelineConfig, Section};
use crate::yaml::parse_yaml_file;

/// Whether a file is read as YAML: its name ends in `.yaml`/`.yml`, in any case (FB rule).
pub fn is_yaml_path(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Parse a configuration file in the format its name selects.
pub fn parse_config_file(path: &Path, env: &mut Env) -> Result<PipelineConfig, ConfigErrors> {
    if is_yaml_path(path) {
        parse_yaml_file(path, env)
    } else {
        parse_classic_file(path, env)
    }
}

/// The whole configuration: `cli.config_file` (if any), then the command line's sections, then
/// the command line's service properties (appended last, so they win over the file's), then the
/// parser files. `-w` is the caller's business (change directory before calling). Every error
/// found in any of these is returned.
pub fn load(cli: &CommandLine, env: &mut Env) -> Result<PipelineConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut cfg = match &cli.config_file {
        Some(path) => parse_config_file(path, env).unwrap_or_else(|e| {
            errors.extend(e.0);
            PipelineConfig::default()
        }),
        None => PipelineConfig::default(),
    };

    // Command-line values get the same variable substitution as file values (FB does it when a
    // property is set), after the file's @SET/env are known. File values are already done.
    let mut from_cli = PipelineConfig {
        service: cli.service.clone(),
        ..PipelineConfig::default()
    };
    for s in &cli.sections {
        if let Some(list) = from_cli.sections_of_mut(s.kind) {
            list.push(s.clone());
        }
    }
    env.substitute_config(&mut from_cli);
    cfg.inputs.append(&mut from_cli.inputs);
    cfg.filters.append(&mut from_cli.filters);
    cfg.outputs.append(&mut from_cli.outputs);
    cfg.service.append(&mut from_cli.service);
    cfg.service_unset_variables
        .append(&mut from_cli.service_unset_variables);
    cfg.warnings.append(&mut from_cli.warnings);
    cfg.warnings.extend(cli.warnings.iter().cloned());

    // Parser files: path as given, else relative to the main configuration file's directory.
    let config_dir = cli.config_file.as_deref().map(base_dir);
    let mut loaded = HashSet::new();
    let parser_props: Vec<_> = cfg
        .service
        .iter()
        .filter(|p| p.key.eq_ignore_ascii_case("parsers_file"))
        .cloned()
        .collect();
    for p in parser_props {
        let given = PathBuf::from(p.value.trim());
        let path = match config_dir {
            Some(dir) if !given.exists() && given.is_relative() => dir.join(&given),
            _ => given,
        };
        if !path.is_file() {
            errors.push(ConfigError::new(
                p.location.clone(),
                format!("could not open parsers file '{}'", path.display()),
            ));
            continue;
        }
        // The same file named twice (file and -R) is loaded once.
        if !loaded.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        match parse_parsers(&path, env) {
            Ok(mut pc) => {
                cfg.parsers.append(&mut pc.parsers);
                cfg.multiline_parsers.append(&mut pc.multiline_parsers);
                cfg.warnings.append(&mut pc.warnings);
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Read a parsers file (classic `[PARSER]`/`[MULTILINE_PARSER]` sections, or YAML `parsers:` /
/// `multiline_parsers:`): returns `(parsers, multiline_parsers)`.
pub fn load_parsers_file(
    path: &Path,
    env: &mut Env,
) -> Result<(Vec<Section>, Vec<Section>), ConfigErrors> {
    let pc = parse_parsers(path, env)?;
    Ok((pc.parsers, pc.multiline_parsers))
}

/// Parse a parsers file, rejecting anything but parser sections.
fn parse_parsers(path: &Path, env: &mut Env) -> Result<PipelineConfig, ConfigErrors> {
    let pc = parse_config_file(path, env)?;
    let mut errors = Vec::new();
    if let Some(p) = pc.service.first() {
        errors.push(ConfigError::new(
            p.location.clone(),
            "service settings are not allowed in a parsers file",
        ));
    }
    for s in pc.inputs.iter().chain(&pc.filters).chain(&pc.outputs) {
        errors.push(ConfigError::new(
            s.location.clone(),
            format!(
                "{} sections are not allowed in a parsers file",
                s.kind.as_str()
            ),
        ));
    }
    if errors.is_empty() {
        Ok(pc)
    } else {
        Err(ConfigErrors(errors))
    }
}
