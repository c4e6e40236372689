//! What a record's tag (or, with `Use_Journal`, its `CONTAINER_NAME`) tells about the pod:
//! Fluent Bit's `kube_regex.h` patterns, or the regex of the `[PARSER]` named by
//! `Regex_Parser`, applied to the tag after `Kube_Tag_Prefix`.

use std::sync::Arc;

use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_core::plugin::LineParser;
use kb_core::record::as_str;
use kb_regex::{Captures, Regex};

/// Fluent Bit's `KUBE_TAG_TO_REGEX`: `<pod>_<namespace>_<container>-<64 hex id>.log`.
pub const KUBE_TAG_TO_REGEX: &str = r"(?<pod_name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)_(?<namespace_name>[^_]+)_(?<container_name>.+)-(?<docker_id>[a-z0-9]{64})\.log$";

/// Fluent Bit's `KUBE_JOURNAL_TO_REGEX`, applied to the journal's `CONTAINER_NAME`
/// (`k8s_<container>.<hash>_<pod>_<namespace>_<uid>_<attempt>`).
pub const KUBE_JOURNAL_TO_REGEX: &str = r"^(?<name_prefix>[^_]+)_(?<container_name>[^\._]+)(\.(?<container_hash>[^_]+))?_(?<pod_name>[^_]+)_(?<namespace_name>[^_]+)_[^_]+_[^_]+$";

/// The pod a record comes from, as far as its tag says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagMeta {
    pub pod_name: Option<String>,
    pub namespace_name: Option<String>,
    pub container_name: Option<String>,
    pub docker_id: Option<String>,
    pub container_hash: Option<String>,
}

impl TagMeta {
    /// Set field `name` unless it is set already (the first capture wins) or `value` is empty.
    fn set(&mut self, name: &str, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        let slot = match name {
            "pod_name" => &mut self.pod_name,
            "namespace_name" => &mut self.namespace_name,
            "container_name" => &mut self.container_name,
            "docker_id" => &mut self.docker_id,
            "container_hash" => &mut self.container_hash,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
}

/// How tags are read.
#[derive(Clone)]
pub enum TagReader {
    /// A pattern with named groups (the built-in ones).
    Regex(Regex),
    /// The `[PARSER]` of `Regex_Parser` (a `regex` parser: its named groups become fields).
    Parser(Arc<dyn LineParser>),
}

impl TagReader {
    /// The built-in tag pattern (or the journal one).
    pub fn builtin(journal: bool) -> TagReader {
        let pattern = if journal {
            KUBE_JOURNAL_TO_REGEX
        } else {
            KUBE_TAG_TO_REGEX
        };
        TagReader::Regex(Regex::new(pattern).expect("the built-in pattern compiles"))
    }

    /// Read `text` (a tag without its prefix, or a `CONTAINER_NAME`); `None` when the
    /// pattern does not match.
    pub fn read(&self, text: &[u8]) -> Option<TagMeta> {
        let mut meta = TagMeta::default();
        match self {
            TagReader::Regex(re) => {
                let mut caps = Captures::new();
                let subject = re.captures(text, &mut caps)?;
                for (name, _) in re.names() {
                    if let Some(v) = re.named(name, &caps, &subject) {
                        meta.set(name, v);
                    }
                }
            }
            TagReader::Parser(p) => {
                let mut w = EventWriter::new();
                p.parse_line(text, &mut w, EventTime::default()).ok()?;
                let ev = EventReader::new(&w.buf).next()?.ok()?;
                let mut c = kb_core::msgpack::Cursor::new(ev.record);
                let Ok(kb_core::msgpack::Head::Map(n)) = c.head() else {
                    return None;
                };
                for _ in 0..n {
                    let ks = c.position();
                    c.skip_value().ok()?;
                    let vs = c.position();
                    c.skip_value().ok()?;
                    let (Some(k), Some(v)) = (
                        as_str(&ev.record[ks..vs]),
                        as_str(&ev.record[vs..c.position()]),
                    ) else {
                        continue;
                    };
                    meta.set(&String::from_utf8_lossy(k), v);
                }
            }
        }
        Some(meta)
    }
}

/// The part of `tag` the pattern is applied to: the tag without its first `prefix.len()`
/// bytes, as Fluent Bit cuts it (it does not check that the tag starts with the prefix).
/// `None` when the tag is not longer than the prefix plus one byte (Fluent Bit's check).
pub fn strip_prefix<'t>(tag: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
    if prefix.len() + 1 >= tag.len() {
        return None;
    }
    Some(&tag[prefix.len()..])
}

/// [`strip_prefix`] then [`TagReader::read`]: what a tag says with the built-in pattern.
pub fn parse_tag(reader: &TagReader, tag: &[u8], prefix: &[u8]) -> Option<TagMeta> {
    reader.read(strip_prefix(tag, prefix)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "aeeccc7a9f00f6e4e066aeff0434cf80621215071f1b20a51e8340aa7c35eac6";

    #[test]
    fn the_documented_tag() {
        let tag = format!("kube.var.log.containers.apache-logs-annotated_default_apache-{ID}.log");
        let m = parse_tag(
            &TagReader::builtin(false),
            tag.as_bytes(),
            b"kube.var.log.containers.",
        )
        .unwrap();
        assert_eq!(m.pod_name.as_deref(), Some("apache-logs-annotated"));
        assert_eq!(m.namespace_name.as_deref(), Some("default"));
        assert_eq!(m.container_name.as_deref(), Some("apache"));
        assert_eq!(m.docker_id.as_deref(), Some(ID));
        assert_eq!(m.container_hash, None);
    }

    #[test]
    fn dotted_pod_names_and_dashed_containers() {
        let tag = format!("kube.var.log.containers.web.v2-7d9f_prod-ns_side-car-x-{ID}.log");
        let m = parse_tag(
            &TagReader::builtin(false),
            tag.as_bytes(),
            b"kube.var.log.containers.",
        )
        .unwrap();
        assert_eq!(m.pod_name.as_deref(), Some("web.v2-7d9f"));
        assert_eq!(m.namespace_name.as_deref(), Some("prod-ns"));
        assert_eq!(m.container_name.as_deref(), Some("side-car-x"));
    }

    #[test]
    fn tags_that_say_nothing() {
        let r = TagReader::builtin(false);
        assert_eq!(
            parse_tag(
                &r,
                b"kube.var.log.containers.x",
                b"kube.var.log.containers."
            ),
            None
        );
        assert_eq!(parse_tag(&r, b"kube.", b"kube.var.log.containers."), None);
        assert_eq!(parse_tag(&r, b"", b""), None);
        // A short id is no container id.
        assert_eq!(
            parse_tag(
                &r,
                b"kube.var.log.containers.a_b_c-1234.log",
                b"kube.var.log.containers."
            ),
            None
        );
    }

    #[test]
    fn journal_container_names() {
        let m = TagReader::builtin(true)
            .read(b"k8s_nginx.abcd1234_web-0_default_0b2c6a4e-0000-0000-0000-000000000000_0")
            .unwrap();
        assert_eq!(m.container_name.as_deref(), Some("nginx"));
        assert_eq!(m.container_hash.as_deref(), Some("abcd1234"));
        assert_eq!(m.pod_name.as_deref(), Some("web-0"));
        assert_eq!(m.namespace_name.as_deref(), Some("default"));
    }
}
