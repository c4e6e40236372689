//! The YAML format (Fluent Bit `src/config_format/flb_cf_yaml.c`, spec §3).
//!
//! The file is read with saphyr's event parser rather than a loaded document, because we need
//! scalars exactly as written (`flush: 1.50` must stay "1.50", `on` must stay "on") and the
//! position of every key for error messages. The events become a small [`Node`] tree that is then
//! walked with a dotted/indexed path (`pipeline.outputs[0].stream`).

use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use crate::classic::{base_dir, read_config_text, IncludeTracker};
use crate::env::Env;
use crate::model::{
    ConfigError, ConfigErrors, ConfigWarning, Location, PipelineConfig, Property, Section,
    SectionKind,
};

/// Deepest nesting accepted; a configuration needs about six levels, and the limit keeps tree
/// handling free of deep recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// Top-level sections Fluent Bit has and kinesis-bit does not implement.
const UNSUPPORTED_TOP: &[&str] = &[
    "customs",
    "plugins",
    "stream_processor",
    "upstream_servers",
    "extensions",
];

/// Read and parse a YAML configuration file, following its `includes`.
pub fn parse_yaml_file(path: &Path, env: &mut Env) -> Result<PipelineConfig, ConfigErrors> {
    let text = read_config_text(path)
        .map_err(|e| ConfigError::new(whole_file(path, None), e.to_string()))?;
    parse_yaml_str(&text, path, env)
}

/// Parse YAML configuration text that was read from `file` (used in locations and to resolve
/// relative `includes`).
pub fn parse_yaml_str(
    text: &str,
    file: &Path,
    env: &mut Env,
) -> Result<PipelineConfig, ConfigErrors> {
    let mut w = Walker {
        env,
        cfg: PipelineConfig::default(),
        errors: Vec::new(),
        includes: IncludeTracker::new(file),
    };
    w.parse_text(text, file, None);
    let Walker {
        env,
        mut cfg,
        errors,
        ..
    } = w;
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    // After every file is read, so `env` entries apply wherever they were defined.
    env.substitute_config(&mut cfg);
    Ok(cfg)
}

/// Convert a YAML key as Fluent Bit does: a key starting with a lower-case letter and without
/// `_` is camelCase and becomes snake_case (`logKey` → `log_key`); then lower-case it.
pub fn convert_key(key: &str) -> String {
    let camel = key.starts_with(|c: char| c.is_ascii_lowercase()) && !key.contains('_');
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if camel && c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A YAML node with the position it starts at.
#[derive(Debug)]
enum Node {
    /// A scalar as written; `null` for a plain empty/`~`/`null` scalar.
    Scalar {
        text: String,
        null: bool,
        mark: Marker,
    },
    Seq {
        items: Vec<Node>,
        mark: Marker,
    },
    Map {
        entries: Vec<(Node, Node)>,
        mark: Marker,
    },
}

impl Node {
    fn mark(&self) -> Marker {
        match self {
            Node::Scalar { mark, .. } | Node::Seq { mark, .. } | Node::Map { mark, .. } => *mark,
        }
    }

    /// The scalar's text when it is a non-null scalar.
    fn text(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, null, .. } if !null => Some(text),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { null: true, .. })
    }
}

/// An unfinished collection while events are turned into a tree.
enum Frame {
    Seq(Vec<Node>, Marker),
    Map(Vec<(Node, Node)>, Option<Node>, Marker),
}

/// A YAML syntax (or unsupported-construct) error with its position.
struct SyntaxError {
    info: String,
    mark: Marker,
}

/// Turn the event stream into one document tree (`None` for an empty file).
fn load_tree(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            info: e.info().to_string(),
            mark: *e.marker(),
        })?;
        let mark = span.start;
        let fail = |info: &str| SyntaxError {
            info: info.to_string(),
            mark,
        };
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(fail("more than one YAML document is not supported"));
                }
                continue;
            }
            Event::Alias(_) => return Err(fail("YAML aliases are not supported")),
            Event::Scalar(text, style, _, _) => {
                let null = style == ScalarStyle::Plain
                    && matches!(&*text, "" | "~" | "null" | "Null" | "NULL");
                Node::Scalar {
                    text: text.into_owned(),
                    null,
                    mark,
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(fail("nesting is too deep"));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq(Vec::new(), mark),
                    _ => Frame::Map(Vec::new(), None, mark),
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items, mark)) => Node::Seq { items, mark },
                Some(Frame::Map(entries, _, mark)) => Node::Map { entries, mark },
                None => return Err(fail("unbalanced YAML structure")),
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root)
}

/// The location of a whole file (line 0), optionally reached through an include.
fn whole_file(file: &Path, included_from: Option<&Location>) -> Location {
    Location::Yaml {
        file: file.to_path_buf(),
        path: String::new(),
        line: 0,
        column: 0,
        included_from: included_from.map(|l| Box::new(l.clone())),
    }
}

/// One file being walked: where its locations point.
struct FileCtx<'a> {
    file: &'a Path,
    included_from: Option<&'a Location>,
}

impl FileCtx<'_> {
    fn loc(&self, path: &str, mark: Marker) -> Location {
        Location::Yaml {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            line: mark.line(),
            column: mark.col() + 1,
            included_from: self.included_from.map(|l| Box::new(l.clone())),
        }
    }
}

struct Walker<'e> {
    env: &'e mut Env,
    cfg: PipelineConfig,
    errors: Vec<ConfigError>,
    includes: IncludeTracker,
}

impl Walker<'_> {
    fn error(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(ConfigError::new(location, message));
    }

    fn parse_text(&mut self, text: &str, file: &Path, included_from: Option<&Location>) {
        let fc = FileCtx {
            file,
            included_from,
        };
        // The event parser is third-party code: a panic in it must not take the agent down.
        let tree = std::panic::catch_unwind(|| load_tree(text)).unwrap_or_else(|_| {
            Err(SyntaxError {
                info: "internal YAML parser failure".to_string(),
                mark: Marker::new(0, 1, 0),
            })
        });
        match tree {
            Ok(Some(root)) => self.document(&root, &fc),
            Ok(None) => {}
            Err(e) => self.error(
                whole_file(file, included_from),
                format!(
                    "YAML error found in file \"{}\", line {}, column {}: {}",
                    file.display(),
                    e.mark.line(),
                    e.mark.col() + 1,
                    e.info
                ),
            ),
        }
    }

    /// The top-level map.
    fn document(&mut self, root: &Node, fc: &FileCtx) {
        let entries = match root {
            Node::Map { entries, .. } => entries,
            n if n.is_null() => return,
            n => {
                self.error(
                    fc.loc("(top level)", n.mark()),
                    "the top level of the file must be a map",
                );
                return;
            }
        };
        for (k, v) in entries {
            let Some(raw) = self.key(k, "", fc) else {
                continue;
            };
            match convert_key(raw).as_str() {
                "env" => self.env_section(v, raw, fc),
                "includes" => self.includes_section(v, raw, fc),
                "service" => self.service(v, raw, fc),
                "pipeline" => self.pipeline(v, raw, fc),
                "parsers" => self.sections(v, SectionKind::Parser, raw, fc),
                "multiline_parsers" => self.sections(v, SectionKind::MultilineParser, raw, fc),
                name if UNSUPPORTED_TOP.contains(&name) => self.error(
                    fc.loc(raw, k.mark()),
                    format!("section '{raw}' is not supported by kinesis-bit"),
                ),
                _ => self.cfg.warnings.push(ConfigWarning {
                    location: fc.loc(raw, k.mark()),
                    message: format!("unknown top-level key '{raw}' is ignored"),
                }),
            }
        }
    }

    /// A map key's text; other keys (null, lists, maps) are reported.
    fn key<'n>(&mut self, k: &'n Node, parent: &str, fc: &FileCtx) -> Option<&'n str> {
        match k.text() {
            Some(t) if !t.is_empty() => Some(t),
            _ => {
                let path = if parent.is_empty() { "(key)" } else { parent };
                self.error(fc.loc(path, k.mark()), "a key must be a non-empty string");
                None
            }
        }
    }

    /// The entries of a map-valued section; `None` (reported) when `v` is not a map. A null value
    /// is an empty section.
    fn map_entries<'n>(
        &mut self,
        v: &'n Node,
        path: &str,
        fc: &FileCtx,
    ) -> Option<&'n [(Node, Node)]> {
        match v {
            Node::Map { entries, .. } => Some(entries),
            n if n.is_null() => Some(&[]),
            n => {
                self.error(fc.loc(path, n.mark()), format!("'{path}' must be a map"));
                None
            }
        }
    }

    /// The items of a list-valued section (null = empty).
    fn seq_items<'n>(&mut self, v: &'n Node, path: &str, fc: &FileCtx) -> Option<&'n [Node]> {
        match v {
            Node::Seq { items, .. } => Some(items),
            n if n.is_null() => Some(&[]),
            n => {
                self.error(fc.loc(path, n.mark()), format!("'{path}' must be a list"));
                None
            }
        }
    }

    /// `env:` as a map (`NAME: value`) or a list of `{name, value}` / `{name, uri}` items.
    fn env_section(&mut self, v: &Node, path: &str, fc: &FileCtx) {
        if let Node::Seq { items, .. } = v {
            for (i, item) in items.iter().enumerate() {
                self.env_item(item, &format!("{path}[{i}]"), fc);
            }
            return;
        }
        let Some(entries) = self.map_entries(v, path, fc) else {
            return;
        };
        for (k, val) in entries {
            let Some(name) = self.key(k, path, fc) else {
                continue;
            };
            let vpath = format!("{path}.{name}");
            match val {
                Node::Scalar { text, .. } => self.env.set(name, text.as_str()),
                n => self.error(
                    fc.loc(&vpath, n.mark()),
                    format!("'{vpath}' must be a single value"),
                ),
            }
        }
    }

    /// One list-form `env` item.
    fn env_item(&mut self, item: &Node, path: &str, fc: &FileCtx) {
        let Some(entries) = self.map_entries(item, path, fc) else {
            return;
        };
        let (mut name, mut value, mut uri) = (None, None, None);
        let errors_before = self.errors.len();
        for (k, val) in entries {
            let Some(key) = self.key(k, path, fc) else {
                continue;
            };
            let vpath = format!("{path}.{key}");
            let text = match val {
                Node::Scalar { text, .. } => text.as_str(),
                n => {
                    self.error(
                        fc.loc(&vpath, n.mark()),
                        format!("'{vpath}' must be a single value"),
                    );
                    continue;
                }
            };
            match convert_key(key).as_str() {
                "name" => name = Some(text),
                "value" => value = Some(text),
                "uri" => uri = Some((text, fc.loc(&vpath, k.mark()))),
                "refresh_interval" => match text.trim().parse::<u64>() {
                    Ok(0) => {}
                    Ok(_) => self.error(
                        fc.loc(&vpath, k.mark()),
                        "refresh_interval > 0 is not supported by kinesis-bit",
                    ),
                    Err(_) => self.error(
                        fc.loc(&vpath, k.mark()),
                        format!("invalid refresh_interval '{text}'"),
                    ),
                },
                _ => self.error(
                    fc.loc(&vpath, k.mark()),
                    format!("unknown key '{key}' in an env entry (expected name, value, uri)"),
                ),
            }
        }
        if self.errors.len() > errors_before {
            // An entry already reported is not also read (one error per problem).
            return;
        }
        let here = fc.loc(path, item.mark());
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            self.error(here, "env entry without 'name'");
            return;
        };
        match (value, uri) {
            (Some(v), None) => self.env.set(name, v),
            (None, Some((u, uloc))) => {
                let Some(p) = u.strip_prefix("file://") else {
                    self.error(
                        uloc,
                        format!("unsupported uri '{u}': only file:// is supported"),
                    );
                    return;
                };
                // Read once at startup; the trailing newline of a secret file is not part of it.
                match std::fs::read_to_string(p) {
                    Ok(s) => self.env.set(name, s.trim_end_matches(['\r', '\n'])),
                    Err(e) => self.error(uloc, format!("could not read '{p}': {e}")),
                }
            }
            (Some(_), Some(_)) => self.error(here, "env entry has both 'value' and 'uri'"),
            (None, None) => self.error(here, "env entry needs 'value' or 'uri'"),
        }
    }

    /// `includes:`: YAML files relative to the including file, merged at this point.
    fn includes_section(&mut self, v: &Node, path: &str, fc: &FileCtx) {
        let items: &[Node] = match v {
            // A single file name is accepted as a one-item list.
            Node::Scalar { null: false, .. } => std::slice::from_ref(v),
            _ => match self.seq_items(v, path, fc) {
                Some(items) => items,
                None => return,
            },
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let loc = fc.loc(&ipath, item.mark());
            let Some(name) = item.text().filter(|t| !t.is_empty()) else {
                self.error(loc, format!("'{ipath}' must be a file name"));
                continue;
            };
            let given = PathBuf::from(name);
            let target = if given.is_absolute() {
                given
            } else {
                base_dir(fc.file).join(given)
            };
            match self.includes.admit(&target, &loc) {
                Ok(()) => {}
                Err(Some(e)) => {
                    self.errors.push(e);
                    continue;
                }
                Err(None) => continue,
            }
            match read_config_text(&target) {
                Ok(text) => self.parse_text(&text, &target, Some(&loc)),
                Err(e) => self.error(loc, e.to_string()),
            }
        }
    }

    /// `service:`: a flat map of keys.
    fn service(&mut self, v: &Node, path: &str, fc: &FileCtx) {
        let Some(entries) = self.map_entries(v, path, fc) else {
            return;
        };
        for (k, val) in entries {
            let Some(raw) = self.key(k, path, fc) else {
                continue;
            };
            let key = convert_key(raw);
            // Only Parsers_File is repeatable among service keys.
            let allow_list = key == "parsers_file";
            let props = self.values(&key, raw, val, k.mark(), path, allow_list, fc);
            self.cfg.service.extend(props);
        }
    }

    /// `pipeline:` with `inputs`, `filters` and `outputs`.
    fn pipeline(&mut self, v: &Node, path: &str, fc: &FileCtx) {
        let Some(entries) = self.map_entries(v, path, fc) else {
            return;
        };
        for (k, val) in entries {
            let Some(raw) = self.key(k, path, fc) else {
                continue;
            };
            let kpath = format!("{path}.{raw}");
            match convert_key(raw).as_str() {
                "inputs" => self.sections(val, SectionKind::Input, &kpath, fc),
                "filters" => self.sections(val, SectionKind::Filter, &kpath, fc),
                "outputs" => self.sections(val, SectionKind::Output, &kpath, fc),
                "processors" => self.error(
                    fc.loc(&kpath, k.mark()),
                    format!("section '{kpath}' is not supported by kinesis-bit"),
                ),
                _ => self.error(
                    fc.loc(&kpath, k.mark()),
                    format!("unknown section '{kpath}' (expected inputs, filters or outputs)"),
                ),
            }
        }
    }

    /// A list of plugin/parser maps, each becoming one section.
    fn sections(&mut self, v: &Node, kind: SectionKind, path: &str, fc: &FileCtx) {
        let Some(items) = self.seq_items(v, path, fc) else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Node::Map { entries, mark } = item else {
                self.error(
                    fc.loc(&ipath, item.mark()),
                    format!("'{ipath}' must be a map of properties"),
                );
                continue;
            };
            let mut section = Section::new(kind, fc.loc(&ipath, *mark));
            for (k, val) in entries {
                let Some(raw) = self.key(k, &ipath, fc) else {
                    continue;
                };
                let key = convert_key(raw);
                let kpath = format!("{ipath}.{raw}");
                if key == "processors" {
                    self.error(
                        fc.loc(&kpath, k.mark()),
                        format!("section '{kpath}' is not supported by kinesis-bit"),
                    );
                } else if key == "rules" && kind == SectionKind::MultilineParser {
                    let rules = self.rules(val, &kpath, fc);
                    section.props.extend(rules);
                } else {
                    let props = self.values(&key, raw, val, k.mark(), &ipath, true, fc);
                    section.props.extend(props);
                }
            }
            if let Some(list) = self.cfg.sections_of_mut(kind) {
                list.push(section);
            }
        }
    }

    /// The properties for `key: val`: one for a scalar, one per item for a list of scalars
    /// (Fluent Bit sets a repeated property from a list) when `allow_list`.
    #[allow(clippy::too_many_arguments)]
    fn values(
        &mut self,
        key: &str,
        raw: &str,
        val: &Node,
        key_mark: Marker,
        parent: &str,
        allow_list: bool,
        fc: &FileCtx,
    ) -> Vec<Property> {
        let kpath = if parent.is_empty() {
            raw.to_string()
        } else {
            format!("{parent}.{raw}")
        };
        match val {
            Node::Scalar { .. } => self
                .scalar(key, val, fc.loc(&kpath, key_mark), &kpath)
                .into_iter()
                .collect(),
            Node::Seq { items, mark } if allow_list => {
                if items.is_empty() {
                    self.error(fc.loc(&kpath, *mark), format!("'{kpath}' is an empty list"));
                }
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{kpath}[{i}]");
                    out.extend(self.scalar(key, item, fc.loc(&ipath, item.mark()), &ipath));
                }
                out
            }
            Node::Seq { .. } => {
                self.error(
                    fc.loc(&kpath, key_mark),
                    format!("'{kpath}' must be a single value, not a list"),
                );
                Vec::new()
            }
            Node::Map { .. } => {
                self.error(
                    fc.loc(&kpath, key_mark),
                    format!("'{kpath}' must be a single value, not a map"),
                );
                Vec::new()
            }
        }
    }

    /// One scalar property; null, empty, list and map values are reported.
    fn scalar(&mut self, key: &str, val: &Node, loc: Location, path: &str) -> Option<Property> {
        match val {
            Node::Scalar { text, null, .. } => {
                if *null || text.trim().is_empty() {
                    self.error(loc, format!("'{path}' has an empty value"));
                    return None;
                }
                Some(Property {
                    key: key.to_string(),
                    value: text.clone(),
                    location: loc,
                })
            }
            Node::Seq { .. } | Node::Map { .. } => {
                self.error(loc, format!("'{path}' must be a single value"));
                None
            }
        }
    }

    /// Multiline parser `rules:` (a list of `{state, regex, next_state}`) turned into the classic
    /// form `rule "state" "regex" "next_state"`, so consumers see one representation.
    fn rules(&mut self, v: &Node, path: &str, fc: &FileCtx) -> Vec<Property> {
        let mut out = Vec::new();
        let Some(items) = self.seq_items(v, path, fc) else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let loc = fc.loc(&ipath, item.mark());
            let Node::Map { entries, .. } = item else {
                self.error(loc, format!("'{ipath}' must be a map"));
                continue;
            };
            let field = |name: &str| {
                entries
                    .iter()
                    .find(|(k, _)| k.text().map(convert_key).as_deref() == Some(name))
                    .and_then(|(_, v)| v.text())
            };
            match (field("state"), field("regex"), field("next_state")) {
                (Some(s), Some(r), Some(n)) => out.push(Property {
                    key: "rule".to_string(),
                    value: format!("\"{}\" \"{}\" \"{}\"", quote(s), quote(r), quote(n)),
                    location: loc,
                }),
                _ => self.error(
                    loc,
                    format!("'{ipath}' needs 'state', 'regex' and 'next_state' values"),
                ),
            }
        }
        out
    }
}

/// Escape `"` for a double-quoted word of a classic `rule` line.
fn quote(s: &str) -> String {
    s.replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_keys() {
        assert_eq!(convert_key("logKey"), "log_key");
        assert_eq!(convert_key("timeKeyFormat"), "time_key_format");
        assert_eq!(convert_key("Time_Key"), "time_key");
        assert_eq!(convert_key("Name"), "name");
        assert_eq!(
            convert_key("storage.totalLimitSize"),
            "storage.total_limit_size"
        );
        assert_eq!(convert_key("log_Key"), "log_key");
    }

    #[test]
    fn markers_are_one_based_lines() {
        let t = load_tree("a:\n  b: c\n").ok().flatten();
        let Some(Node::Map { entries, .. }) = t else {
            panic!("not a map")
        };
        let Node::Map { entries: inner, .. } = &entries[0].1 else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.mark().line(), 2);
        assert_eq!(inner[0].0.mark().col(), 2);
    }
}
