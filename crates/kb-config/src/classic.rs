//! The classic `.conf` format (Fluent Bit `src/config_format/flb_cf_fluentbit.c`, spec §2):
//! `[SECTION]` headers, indented `key value` lines, `#` comments, `@INCLUDE` and `@SET`.
//!
//! Parsing never stops at the first problem: every error is collected (each once) so the user
//! can fix a file in one go. Variables are substituted after the whole file tree is read, so an
//! `@SET` applies to every value wherever it appears, as in Fluent Bit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::model::{
    ConfigError, ConfigErrors, ConfigWarning, Location, PipelineConfig, Property, Section,
    SectionKind,
};

/// Fluent Bit's limit on the number of files one configuration may consist of.
pub(crate) const MAX_FILES: usize = 1000;

/// Read and parse a classic configuration file, following its `@INCLUDE`s.
pub fn parse_classic_file(path: &Path, env: &mut Env) -> Result<PipelineConfig, ConfigErrors> {
    let text = read_config_text(path)
        .map_err(|e| ConfigError::new(Location::classic(path, 0), e.to_string()))?;
    parse_classic_str(&text, path, env)
}

/// Parse classic configuration text that was read from `file` (used in locations and to resolve
/// relative `@INCLUDE`s).
pub fn parse_classic_str(
    text: &str,
    file: &Path,
    env: &mut Env,
) -> Result<PipelineConfig, ConfigErrors> {
    let mut p = ClassicParser {
        env,
        cfg: PipelineConfig::default(),
        errors: Vec::new(),
        includes: IncludeTracker::new(file),
    };
    p.parse_text(text, file, None);
    let ClassicParser {
        env,
        mut cfg,
        errors,
        ..
    } = p;
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    env.substitute_config(&mut cfg);
    Ok(cfg)
}

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("could not open configuration file '{path}': {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration file '{path}' is not valid UTF-8 (line {line})")]
    Utf8 { path: String, line: usize },
}

/// The text of a configuration file; a UTF-8 byte order mark is dropped.
pub(crate) fn read_config_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ReadError::Utf8 {
            path: path.display().to_string(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Which files a configuration already consists of: including one twice is an error (it also
/// stops include cycles), and there are at most [`MAX_FILES`].
pub(crate) struct IncludeTracker {
    seen: HashSet<PathBuf>,
    limit_reported: bool,
}

impl IncludeTracker {
    /// Tracker whose first file is `root`.
    pub(crate) fn new(root: &Path) -> Self {
        let mut seen = HashSet::new();
        seen.insert(canonical(root));
        IncludeTracker {
            seen,
            limit_reported: false,
        }
    }

    /// Register `path`, included at `at`; `Err` when it must not be read.
    pub(crate) fn admit(&mut self, path: &Path, at: &Location) -> Result<(), Option<ConfigError>> {
        if self.seen.len() >= MAX_FILES {
            // Report the limit once, not for every further include.
            if std::mem::replace(&mut self.limit_reported, true) {
                return Err(None);
            }
            return Err(Some(ConfigError::new(
                at.clone(),
                format!("too many configuration files (at most {MAX_FILES})"),
            )));
        }
        if !self.seen.insert(canonical(path)) {
            return Err(Some(ConfigError::new(
                at.clone(),
                format!("file '{}' is included more than once", path.display()),
            )));
        }
        Ok(())
    }
}

/// A path's canonical form when it exists (so `a/../b.conf` and `b.conf` are one file).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The directory relative includes of `file` are resolved against.
pub(crate) fn base_dir(file: &Path) -> &Path {
    file.parent().unwrap_or_else(|| Path::new(""))
}

/// Where property lines of the current file go.
#[derive(Clone, Copy)]
enum Current {
    /// No section yet in this file.
    None,
    Service,
    Section(SectionKind, usize),
    /// A section that was rejected: its lines are skipped without further errors.
    Ignored,
}

struct ClassicParser<'e> {
    env: &'e mut Env,
    cfg: PipelineConfig,
    errors: Vec<ConfigError>,
    includes: IncludeTracker,
}

impl ClassicParser<'_> {
    fn error(&mut self, location: &Location, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(location.clone(), message));
    }

    fn warn(&mut self, location: &Location, message: impl Into<String>) {
        self.cfg.warnings.push(ConfigWarning {
            location: location.clone(),
            message: message.into(),
        });
    }

    /// Parse one file's text. Indentation and the current section are per file.
    fn parse_text(&mut self, text: &str, file: &Path, included_from: Option<&Location>) {
        let mut indent: Option<String> = None;
        let mut current = Current::None;
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let content = line.trim_start_matches([' ', '\t']);
            if content.trim().is_empty() || content.starts_with('#') {
                continue;
            }
            let loc = Location::Classic {
                file: file.to_path_buf(),
                line: i + 1,
                included_from: included_from.map(|l| Box::new(l.clone())),
            };
            let ws = &line[..line.len() - content.len()];
            if content.starts_with('[') {
                current = if ws.is_empty() {
                    self.header(content, &loc)
                } else {
                    self.error(&loc, "a section header must start at column 0");
                    Current::Ignored
                };
                continue;
            }
            if content.starts_with('@') {
                if ws.is_empty() {
                    self.directive(content, file, &loc);
                } else {
                    self.error(&loc, "a directive (@INCLUDE, @SET) must start at column 0");
                }
                continue;
            }
            match current {
                Current::None => {
                    self.error(&loc, "property outside of any section");
                    continue;
                }
                Current::Ignored => continue,
                Current::Service | Current::Section(..) => {}
            }
            if let Err(msg) = check_indent(ws, &mut indent) {
                self.error(&loc, msg);
                continue;
            }
            // Key and value are split at the first run of blanks (tabs accepted, unlike FB).
            let (key, value) = match content.find([' ', '\t']) {
                Some(pos) => (&content[..pos], content[pos..].trim()),
                None => (content.trim_end(), ""),
            };
            let key = key.to_ascii_lowercase();
            if value.is_empty() {
                self.error(&loc, format!("key '{key}' has an empty value"));
                continue;
            }
            let prop = Property {
                key,
                value: value.to_string(),
                location: loc,
            };
            match current {
                Current::Service => self.cfg.service.push(prop),
                Current::Section(kind, idx) => {
                    if let Some(s) = self
                        .cfg
                        .sections_of_mut(kind)
                        .and_then(|list| list.get_mut(idx))
                    {
                        s.props.push(prop);
                    }
                }
                Current::None | Current::Ignored => {}
            }
        }
    }

    /// A `[NAME]` line: start a section, or report why it cannot be one.
    fn header(&mut self, content: &str, loc: &Location) -> Current {
        let Some(end) = content.find(']') else {
            self.error(loc, "invalid section header: missing ']'");
            return Current::Ignored;
        };
        let name = content[1..end].trim();
        if !content[end + 1..].trim().is_empty() {
            self.warn(loc, "text after the section header is ignored");
        }
        let kind = match name.to_ascii_lowercase().as_str() {
            "service" => return Current::Service,
            "input" => SectionKind::Input,
            "filter" => SectionKind::Filter,
            "output" => SectionKind::Output,
            "parser" => SectionKind::Parser,
            "multiline_parser" => SectionKind::MultilineParser,
            "" => {
                self.error(loc, "empty section name");
                return Current::Ignored;
            }
            _ => {
                self.error(
                    loc,
                    format!("section [{name}] is not supported by kinesis-bit"),
                );
                return Current::Ignored;
            }
        };
        match self.cfg.sections_of_mut(kind) {
            Some(list) => {
                list.push(Section::new(kind, loc.clone()));
                Current::Section(kind, list.len() - 1)
            }
            None => Current::Ignored,
        }
    }

    /// `@INCLUDE path` or `@SET KEY=VALUE`.
    fn directive(&mut self, content: &str, file: &Path, loc: &Location) {
        let (word, arg) = match content.find([' ', '\t']) {
            Some(pos) => (&content[..pos], content[pos..].trim()),
            None => (content.trim_end(), ""),
        };
        match word.to_ascii_uppercase().as_str() {
            "@INCLUDE" if arg.is_empty() => self.error(loc, "@INCLUDE needs a file name"),
            "@INCLUDE" => self.include(arg, file, loc),
            "@SET" => match arg.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    // The value is stored as written: like FB, no substitution inside @SET.
                    self.env.set(k.trim(), v.trim());
                }
                _ => self.error(loc, "invalid @SET: expected @SET KEY=VALUE"),
            },
            _ => self.error(loc, format!("unknown directive '{word}'")),
        }
    }

    /// Include a file or a `*` glob: tried as given, then relative to the including file.
    fn include(&mut self, pattern: &str, file: &Path, loc: &Location) {
        let given = PathBuf::from(pattern);
        let relative = base_dir(file).join(&given);
        let paths = if pattern.contains('*') {
            let mut found = match glob_files(pattern) {
                Ok(v) => v,
                Err(e) => {
                    self.error(loc, format!("invalid @INCLUDE pattern '{pattern}': {e}"));
                    return;
                }
            };
            if found.is_empty() && given.is_relative() {
                found = glob_files(&relative.to_string_lossy()).unwrap_or_default();
            }
            if found.is_empty() {
                self.warn(loc, format!("@INCLUDE pattern '{pattern}' matches no file"));
            }
            found
        } else if given.is_absolute() || given.exists() {
            vec![given]
        } else {
            vec![relative]
        };
        for path in paths {
            match self.includes.admit(&path, loc) {
                Ok(()) => {}
                Err(Some(e)) => {
                    self.errors.push(e);
                    continue;
                }
                Err(None) => continue,
            }
            match read_config_text(&path) {
                Ok(text) => self.parse_text(&text, &path, Some(loc)),
                Err(e) => self.error(loc, e.to_string()),
            }
        }
    }
}

/// Files matching a glob, sorted so the include order does not depend on the file system.
fn glob_files(pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
    let mut v: Vec<PathBuf> = glob::glob(pattern)?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Check a property line's indentation `ws` against the file's indent string, which the first
/// indented line fixes (FB `check_indent`).
fn check_indent(ws: &str, indent: &mut Option<String>) -> Result<(), &'static str> {
    let Some(expected) = indent.as_deref() else {
        if ws.is_empty() {
            return Err("invalid indentation level");
        }
        *indent = Some(ws.to_string());
        return Ok(());
    };
    let common = ws
        .bytes()
        .zip(expected.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    if common < expected.len() {
        // The line stops matching the indent string: a different blank means mixing.
        return Err(if common < ws.len() {
            "inconsistent use of tab and space"
        } else {
            "invalid indentation level"
        });
    }
    if ws.len() > expected.len() {
        return Err("extra indentation level");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_rules() {
        let mut ind = None;
        assert_eq!(check_indent("", &mut ind), Err("invalid indentation level"));
        assert_eq!(check_indent("    ", &mut ind), Ok(()));
        assert_eq!(check_indent("    ", &mut ind), Ok(()));
        assert_eq!(
            check_indent("  ", &mut ind),
            Err("invalid indentation level")
        );
        assert_eq!(
            check_indent("      ", &mut ind),
            Err("extra indentation level")
        );
        assert_eq!(
            check_indent("\t", &mut ind),
            Err("inconsistent use of tab and space")
        );
        assert_eq!(
            check_indent("  \t ", &mut ind),
            Err("inconsistent use of tab and space")
        );
    }
}
