//! Pod and namespace metadata as the filter keeps it: read once from an API server answer
//! (`GET /api/v1/namespaces/<ns>/pods/<pod>`, a kubelet `/pods` list,
//! `GET /api/v1/namespaces/<ns>`), kept as the msgpack pieces the record gets, and the
//! `kubernetes` / `kubernetes_namespace` maps written from them in Fluent Bit's order.

use kb_core::event::write_json_value;
use kb_core::record::{write_map_len, write_str};
use serde_json::Value;

use super::tag::TagMeta;

/// What the filter includes, from its keys.
#[derive(Debug, Clone, Copy)]
pub struct Include {
    pub labels: bool,
    pub annotations: bool,
    pub owner_references: bool,
    pub namespace_labels: bool,
    pub namespace_annotations: bool,
}

/// One container's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    /// `containerID` without its `<runtime>://` prefix.
    pub docker_id: Option<String>,
    /// `imageID` without its `<scheme>://` prefix.
    pub container_hash: Option<String>,
    /// `image`.
    pub container_image: Option<String>,
}

/// The pod-level part of the `kubernetes` map, in Fluent Bit's order, as msgpack
/// key/value pairs: `pod_id`, `labels`, `annotations`, `ownerReferences`, `host`, `pod_ip`.
#[derive(Debug, Clone, Default)]
pub struct PodDoc {
    pub(crate) middle: Vec<u8>,
    pub(crate) middle_entries: usize,
    pub statuses: Vec<ContainerStatus>,
    /// The `fluentbit.io/...` annotations: name after the prefix, and value.
    pub fluentbit_annotations: Vec<(String, String)>,
}

/// A namespace's `labels` and `annotations` (msgpack values) as the API server gave them.
#[derive(Debug, Clone, Default)]
pub struct NamespaceDoc {
    labels: Option<Vec<u8>>,
    annotations: Option<Vec<u8>>,
    /// The `fluentbit.io/...` annotations of the namespace (for `namespace_exclude`).
    pub fluentbit_annotations: Vec<(String, String)>,
}

/// Fluent Bit's `extract_hash`: the text after `scheme://` when the first `:` is followed by
/// slashes, else the whole value; `None` without a `:`.
pub fn extract_hash(v: &str) -> Option<&str> {
    if v.len() <= 1 {
        return None;
    }
    let colon = v.find(':')?;
    let rest = &v[colon + 1..];
    let slashes = rest.len() - rest.trim_start_matches('/').len();
    if slashes == 0 {
        return Some(v);
    }
    let out = &rest[slashes..];
    (!out.is_empty()).then_some(out)
}

fn msgpack(v: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    write_json_value(&mut b, v);
    b
}

fn fluentbit_annotations(metadata: &Value) -> Vec<(String, String)> {
    let Some(ann) = metadata.get("annotations").and_then(Value::as_object) else {
        return Vec::new();
    };
    ann.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("fluentbit.io/").filter(|n| !n.is_empty())?;
            Some((name.to_string(), v.as_str()?.to_string()))
        })
        .collect()
}

impl PodDoc {
    /// Read a pod object (`kind: Pod`).
    pub fn from_pod(pod: &Value, inc: Include) -> Option<PodDoc> {
        let metadata = pod.get("metadata").filter(|m| m.is_object())?;
        let mut doc = PodDoc::default();
        let put = |key: &str, v: &Value, doc: &mut PodDoc| {
            write_str(&mut doc.middle, key.as_bytes());
            write_json_value(&mut doc.middle, v);
            doc.middle_entries += 1;
        };
        if let Some(uid) = metadata.get("uid") {
            put("pod_id", uid, &mut doc);
        }
        if inc.labels {
            if let Some(v) = metadata.get("labels") {
                put("labels", v, &mut doc);
            }
        }
        if inc.annotations {
            if let Some(v) = metadata.get("annotations") {
                put("annotations", v, &mut doc);
            }
        }
        if inc.owner_references {
            if let Some(v) = metadata.get("ownerReferences") {
                put("ownerReferences", v, &mut doc);
            }
        }
        if let Some(v) = pod.get("spec").and_then(|s| s.get("nodeName")) {
            put("host", v, &mut doc);
        }
        if let Some(v) = pod.get("status").and_then(|s| s.get("podIP")) {
            put("pod_ip", v, &mut doc);
        }
        if let Some(status) = pod.get("status").and_then(Value::as_object) {
            // The status map's order: initContainerStatuses come before containerStatuses.
            for (k, list) in status {
                if k != "containerStatuses" && k != "initContainerStatuses" {
                    continue;
                }
                for s in list.as_array().into_iter().flatten() {
                    let Some(name) = s.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let text = |key: &str| s.get(key).and_then(Value::as_str);
                    doc.statuses.push(ContainerStatus {
                        name: name.to_string(),
                        docker_id: text("containerID")
                            .and_then(extract_hash)
                            .map(str::to_string),
                        container_hash: text("imageID").and_then(extract_hash).map(str::to_string),
                        container_image: text("image")
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    });
                }
            }
        }
        doc.fluentbit_annotations = fluentbit_annotations(metadata);
        Some(doc)
    }

    /// The status of container `name`.
    pub fn status(&self, name: &str) -> Option<&ContainerStatus> {
        self.statuses.iter().find(|s| s.name == name)
    }
}

/// Every pod of a kubelet `/pods` list (`kind: PodList`), with its namespace and name.
pub fn pods_of_list(list: &Value, inc: Include) -> Vec<(String, String, PodDoc)> {
    let Some(items) = list.get("items").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let m = item.get("metadata")?;
            let ns = m.get("namespace")?.as_str()?.to_string();
            let name = m.get("name")?.as_str()?.to_string();
            Some((ns, name, PodDoc::from_pod(item, inc)?))
        })
        .collect()
}

impl NamespaceDoc {
    /// Read a namespace object (`kind: Namespace`).
    pub fn from_namespace(ns: &Value) -> Option<NamespaceDoc> {
        let metadata = ns.get("metadata").filter(|m| m.is_object())?;
        Some(NamespaceDoc {
            labels: metadata.get("labels").map(msgpack),
            annotations: metadata.get("annotations").map(msgpack),
            fluentbit_annotations: fluentbit_annotations(metadata),
        })
    }
}

/// Write the `kubernetes` map: what the tag says, and what the API server said when `doc` is
/// there (Fluent Bit's `merge_pod_meta` order; without `doc`, its `merge_meta_from_tag` one).
pub fn write_pod_map(out: &mut Vec<u8>, tag: &TagMeta, doc: Option<&PodDoc>) {
    let status = doc.and_then(|d| tag.container_name.as_deref().and_then(|c| d.status(c)));
    let docker_id = tag
        .docker_id
        .as_deref()
        .or_else(|| status.and_then(|s| s.docker_id.as_deref()));
    let hash = tag
        .container_hash
        .as_deref()
        .or_else(|| status.and_then(|s| s.container_hash.as_deref()));
    let image = status.and_then(|s| s.container_image.as_deref());
    let fields: [(&str, Option<&str>); 2] = [
        ("pod_name", tag.pod_name.as_deref()),
        ("namespace_name", tag.namespace_name.as_deref()),
    ];
    let tail: [(&str, Option<&str>); 4] = [
        ("container_name", tag.container_name.as_deref()),
        ("docker_id", docker_id),
        ("container_hash", hash),
        ("container_image", image),
    ];
    let n = fields
        .iter()
        .chain(&tail)
        .filter(|(_, v)| v.is_some())
        .count()
        + doc.map_or(0, |d| d.middle_entries);
    write_map_len(out, n);
    for (k, v) in fields {
        if let Some(v) = v {
            write_str(out, k.as_bytes());
            write_str(out, v.as_bytes());
        }
    }
    if let Some(d) = doc {
        out.extend_from_slice(&d.middle);
    }
    for (k, v) in tail {
        if let Some(v) = v {
            write_str(out, k.as_bytes());
            write_str(out, v.as_bytes());
        }
    }
}

/// Write the `kubernetes_namespace` map: `name`, then `labels` and `annotations` as enabled.
pub fn write_namespace_map(
    out: &mut Vec<u8>,
    name: &str,
    doc: Option<&NamespaceDoc>,
    inc: Include,
) {
    let labels = doc
        .and_then(|d| d.labels.as_ref())
        .filter(|_| inc.namespace_labels);
    let annotations = doc
        .and_then(|d| d.annotations.as_ref())
        .filter(|_| inc.namespace_annotations);
    write_map_len(
        out,
        1 + labels.is_some() as usize + annotations.is_some() as usize,
    );
    write_str(out, b"name");
    write_str(out, name.as_bytes());
    if let Some(l) = labels {
        write_str(out, b"labels");
        out.extend_from_slice(l);
    }
    if let Some(a) = annotations {
        write_str(out, b"annotations");
        out.extend_from_slice(a);
    }
}

/// What a pod's (or namespace's) `fluentbit.io/` annotations ask for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub stdout_parser: Option<String>,
    pub stderr_parser: Option<String>,
    pub stdout_exclude: Option<bool>,
    pub stderr_exclude: Option<bool>,
}

/// Why an annotation was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropIssue {
    /// `fluentbit.io/parser` without `K8S-Logging.Parser On` (or exclude without Exclude).
    NotAllowed(&'static str),
    /// Not `parser` or `exclude`, or a bad stream / container part.
    Invalid(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Both,
    Stdout,
    Stderr,
}

/// Fluent Bit's `flb_kube_prop_set` for every annotation, in order:
/// `parser|exclude[_stdout|_stderr][-<container>]`. An annotation naming a container applies
/// to that container only and overrides the general ones; a general one applies when nothing
/// set the property before. `issues` collects what was ignored (to warn about).
pub fn props_for(
    annotations: &[(String, String)],
    container: &str,
    allow_parser: bool,
    allow_exclude: bool,
    issues: &mut Vec<PropIssue>,
) -> Props {
    let mut p = Props::default();
    for (name, value) in annotations {
        let (is_parser, rest) = if let Some(r) = name.strip_prefix("parser") {
            (true, r)
        } else if let Some(r) = name.strip_prefix("exclude") {
            (false, r)
        } else {
            issues.push(PropIssue::Invalid(name.clone()));
            continue;
        };
        let (stream, rest) = if let Some(r) = rest.strip_prefix('_') {
            if let Some(r) = r.strip_prefix("stdout") {
                (Stream::Stdout, r)
            } else if let Some(r) = r.strip_prefix("stderr") {
                (Stream::Stderr, r)
            } else {
                issues.push(PropIssue::Invalid(name.clone()));
                continue;
            }
        } else {
            (Stream::Both, rest)
        };
        let target = if let Some(c) = rest.strip_prefix('-') {
            if c.is_empty() {
                issues.push(PropIssue::Invalid(name.clone()));
                continue;
            }
            Some(c)
        } else if rest.is_empty() {
            None
        } else {
            issues.push(PropIssue::Invalid(name.clone()));
            continue;
        };
        if target.is_some_and(|c| c != container) {
            continue;
        }
        let specific = target.is_some();
        if is_parser {
            if !allow_parser {
                issues.push(PropIssue::NotAllowed("fluentbit.io/parser"));
                continue;
            }
            let set = |slot: &mut Option<String>| {
                if specific || slot.is_none() {
                    *slot = Some(value.clone());
                }
            };
            if stream != Stream::Stderr {
                set(&mut p.stdout_parser);
            }
            if stream != Stream::Stdout {
                set(&mut p.stderr_parser);
            }
        } else {
            if !allow_exclude {
                issues.push(PropIssue::NotAllowed("fluentbit.io/exclude"));
                continue;
            }
            let v = kb_config::values::parse_bool(value) == Some(true);
            let set = |slot: &mut Option<bool>| {
                if specific || slot.is_none() {
                    *slot = Some(v);
                }
            };
            if stream != Stream::Stderr {
                set(&mut p.stdout_exclude);
            }
            if stream != Stream::Stdout {
                set(&mut p.stderr_exclude);
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_as_fluent_bit_extracts_them() {
        assert_eq!(extract_hash("containerd://abc123"), Some("abc123"));
        assert_eq!(extract_hash("docker://abc"), Some("abc"));
        assert_eq!(
            extract_hash("docker-pullable://nginx@sha256:0123"),
            Some("nginx@sha256:0123")
        );
        // containerd's imageID has no scheme: the first ':' is the digest's.
        assert_eq!(
            extract_hash("docker.io/library/nginx@sha256:0123"),
            Some("docker.io/library/nginx@sha256:0123")
        );
        assert_eq!(extract_hash("sha256:abcd"), Some("sha256:abcd"));
        assert_eq!(extract_hash("noscheme"), None);
        assert_eq!(extract_hash(""), None);
        assert_eq!(extract_hash("x://"), None);
    }

    fn ann(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_by_stream_and_container() {
        let mut issues = Vec::new();
        let a = ann(&[
            ("parser", "apache"),
            ("parser_stderr-app", "json"),
            ("exclude_stdout", "true"),
            ("exclude-sidecar", "true"),
            ("parser-ap", "prefix-is-not-a-match"),
            ("nonsense", "x"),
        ]);
        let p = props_for(&a, "app", true, true, &mut issues);
        assert_eq!(
            p,
            Props {
                stdout_parser: Some("apache".into()),
                stderr_parser: Some("json".into()),
                stdout_exclude: Some(true),
                stderr_exclude: None,
            }
        );
        assert_eq!(issues, [PropIssue::Invalid("nonsense".into())]);
        let p = props_for(&a, "sidecar", true, true, &mut Vec::new());
        assert_eq!(p.stdout_exclude, Some(true));
        assert_eq!(p.stderr_exclude, Some(true));
        assert_eq!(p.stderr_parser.as_deref(), Some("apache"));
        let mut issues = Vec::new();
        let p = props_for(&a, "app", false, false, &mut issues);
        assert_eq!(p, Props::default());
        assert!(issues.contains(&PropIssue::NotAllowed("fluentbit.io/parser")));
        assert!(issues.contains(&PropIssue::NotAllowed("fluentbit.io/exclude")));
    }

    #[test]
    fn a_container_specific_annotation_wins_whatever_its_place() {
        let a = ann(&[("exclude-app", "false"), ("exclude", "true")]);
        let p = props_for(&a, "app", true, true, &mut Vec::new());
        assert_eq!(
            (p.stdout_exclude, p.stderr_exclude),
            (Some(false), Some(false))
        );
    }
}
