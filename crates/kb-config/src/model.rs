//! The pipeline description every configuration source produces: ordered sections of
//! properties, each remembering where it was written so errors can point at it.

use std::fmt;
use std::path::PathBuf;

/// Where a section or property came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line of a classic `.conf` file (1-based; 0 = the whole file), possibly reached through
    /// `@INCLUDE`.
    Classic {
        file: PathBuf,
        line: usize,
        included_from: Option<Box<Location>>,
    },
    /// A node of a YAML file: dotted/indexed path such as `pipeline.outputs[0].stream`
    /// (line 0 = the whole file).
    Yaml {
        file: PathBuf,
        path: String,
        line: usize,
        column: usize,
        included_from: Option<Box<Location>>,
    },
    /// A command-line argument, e.g. `-p stream=foo`.
    CommandLine { arg: String },
    /// A built-in default value.
    Default,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 stands for the file as a whole (it could not be opened, or a syntax error
        // message carries its own position).
        let parent = match self {
            Location::Classic {
                file,
                line,
                included_from,
            } => {
                if *line == 0 {
                    write!(f, "{}", file.display())?;
                } else {
                    write!(f, "{}:{}", file.display(), line)?;
                }
                included_from
            }
            Location::Yaml {
                file,
                path,
                line,
                column,
                included_from,
            } => {
                if *line == 0 {
                    write!(f, "{}", file.display())?;
                } else {
                    write!(
                        f,
                        "{}: {} (line {}, column {})",
                        file.display(),
                        path,
                        line,
                        column
                    )?;
                }
                included_from
            }
            Location::CommandLine { arg } => return write!(f, "command line: {arg}"),
            Location::Default => return write!(f, "default"),
        };
        if let Some(parent) = parent {
            write!(f, " (included from {parent})")?;
        }
        Ok(())
    }
}

/// One `key value` entry. `key` is normalised: lower case, YAML camelCase turned into snake_case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub location: Location,
}

/// Which kind of section a block of properties belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Service,
    Input,
    Filter,
    Output,
    Parser,
    MultilineParser,
}

impl SectionKind {
    /// Lower-case name as used in messages (`input`, `output`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Service => "service",
            SectionKind::Input => "input",
            SectionKind::Filter => "filter",
            SectionKind::Output => "output",
            SectionKind::Parser => "parser",
            SectionKind::MultilineParser => "multiline_parser",
        }
    }
}

/// A section (`[INPUT]`, a YAML list item, a `-i`/`-o`/`-F` group) with its properties in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// Where the section starts: the `[OUTPUT]` header, the YAML list item, or the `-o NAME` argument.
    pub location: Location,
    pub props: Vec<Property>,
    /// Variables its property values used that were not set (each became an empty string).
    pub unset_variables: Vec<UnsetVariable>,
}

impl Section {
    /// Empty section of `kind` starting at `location`.
    pub fn new(kind: SectionKind, location: Location) -> Self {
        Section {
            kind,
            location,
            props: Vec::new(),
            unset_variables: Vec::new(),
        }
    }

    /// Why `p`'s value may be empty when unset variables emptied it (`: variable ${X} is not
    /// set`), else nothing; meant to be appended to an error about the value.
    pub fn unset_note(&self, p: &Property) -> String {
        unset_note(&self.unset_variables, &p.location)
    }

    /// The last value set for `key` (keys are compared case-insensitively).
    pub fn get(&self, key: &str) -> Option<&Property> {
        self.props
            .iter()
            .rev()
            .find(|p| p.key.eq_ignore_ascii_case(key))
    }

    /// The plugin name (`Name` property), if set.
    pub fn plugin_name(&self) -> Option<&str> {
        self.get("name").map(|p| p.value.as_str())
    }
}

/// Everything one configuration (file plus command line) describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineConfig {
    /// `[SERVICE]` properties in order (later entries win when a key repeats across sources).
    pub service: Vec<Property>,
    pub inputs: Vec<Section>,
    pub filters: Vec<Section>,
    pub outputs: Vec<Section>,
    /// `[PARSER]` sections from parser files or YAML `parsers:`.
    pub parsers: Vec<Section>,
    /// `[MULTILINE_PARSER]` sections.
    pub multiline_parsers: Vec<Section>,
    /// Non-fatal findings (unknown service keys, unset variables, ...) to log at startup.
    pub warnings: Vec<ConfigWarning>,
    /// Variables the service values used that were not set (sections keep their own).
    pub service_unset_variables: Vec<UnsetVariable>,
}

/// A `${VAR}` without default that was not set where a value used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVariable {
    /// The property whose value used it.
    pub location: Location,
    /// The variable's name, without `${` and `}`.
    pub name: String,
}

/// `: variable ${X} is not set` (or `: variables ${X} and ${Y} are not set`) for the unset
/// variables used at `location`; empty when there are none.
pub fn unset_note(unset: &[UnsetVariable], location: &Location) -> String {
    let mut names: Vec<String> = Vec::new();
    for u in unset.iter().filter(|u| &u.location == location) {
        let name = format!("${{{}}}", u.name);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.as_slice() {
        [] => String::new(),
        [one] => format!(": variable {one} is not set"),
        [init @ .., last] => format!(": variables {} and {last} are not set", init.join(", ")),
    }
}

impl PipelineConfig {
    /// Every section (service excluded) in a fixed order: inputs, filters, outputs, parsers,
    /// multiline parsers.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.inputs
            .iter()
            .chain(&self.filters)
            .chain(&self.outputs)
            .chain(&self.parsers)
            .chain(&self.multiline_parsers)
    }

    /// Every section (service excluded), in the order of [`sections`](Self::sections), for
    /// passes over all values (variable substitution).
    pub fn sections_mut(&mut self) -> impl Iterator<Item = &mut Section> {
        self.inputs
            .iter_mut()
            .chain(&mut self.filters)
            .chain(&mut self.outputs)
            .chain(&mut self.parsers)
            .chain(&mut self.multiline_parsers)
    }

    /// The section list a kind of section is stored in (`None` for `Service`, which is a flat
    /// property list).
    pub fn sections_of_mut(&mut self, kind: SectionKind) -> Option<&mut Vec<Section>> {
        match kind {
            SectionKind::Service => None,
            SectionKind::Input => Some(&mut self.inputs),
            SectionKind::Filter => Some(&mut self.filters),
            SectionKind::Output => Some(&mut self.outputs),
            SectionKind::Parser => Some(&mut self.parsers),
            SectionKind::MultilineParser => Some(&mut self.multiline_parsers),
        }
    }

    /// The last value of a service key, if set.
    pub fn service_get(&self, key: &str) -> Option<&Property> {
        self.service
            .iter()
            .rev()
            .find(|p| p.key.eq_ignore_ascii_case(key))
    }
}

/// A configuration problem that stops the agent from starting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: Location,
    pub message: String,
}

impl Location {
    /// Location of a classic file line, not reached through `@INCLUDE`.
    pub fn classic(file: impl Into<PathBuf>, line: usize) -> Self {
        Location::Classic {
            file: file.into(),
            line,
            included_from: None,
        }
    }
}

impl ConfigError {
    /// Error `message` at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        ConfigError {
            location,
            message: message.into(),
        }
    }
}

/// A configuration finding that is logged but does not stop the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every error found in one configuration, in the order found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}
