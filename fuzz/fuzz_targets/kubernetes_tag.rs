//! The kubernetes filter's parsing of what it does not control: tags (Fluent Bit's pattern
//! after `Kube_Tag_Prefix`, and the journal's `CONTAINER_NAME` pattern), `fluentbit.io/`
//! annotation names, runtime ids (`containerd://…`) and API server answers. The first byte
//! picks the target. Every field a tag gives is a piece of the tag; every `kubernetes` map
//! written is one well-formed msgpack map.
#![no_main]

use std::sync::OnceLock;

use kb_metadata::kubernetes::pod::{self, Include, PodDoc};
use kb_metadata::kubernetes::tag::{parse_tag, TagReader};
use libfuzzer_sys::fuzz_target;

fn readers() -> &'static (TagReader, TagReader) {
    static R: OnceLock<(TagReader, TagReader)> = OnceLock::new();
    R.get_or_init(|| (TagReader::builtin(false), TagReader::builtin(true)))
}

fn well_formed_map(b: &[u8]) {
    let mut c = kb_core::msgpack::Cursor::new(b);
    c.skip_value().expect("a well-formed map");
    assert!(c.is_empty(), "one value");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (tags, journal) = readers();
    match which % 4 {
        0 | 1 => {
            let reader = if which % 4 == 0 { tags } else { journal };
            let prefix: &[u8] = if which & 0x80 != 0 { b"" } else { b"kube.var.log.containers." };
            let meta = if which % 4 == 0 {
                parse_tag(reader, rest, prefix)
            } else {
                reader.read(rest)
            };
            if let Some(m) = meta {
                let text = String::from_utf8_lossy(rest);
                for f in [&m.pod_name, &m.namespace_name, &m.container_name, &m.docker_id, &m.container_hash]
                    .into_iter()
                    .flatten()
                {
                    assert!(!f.is_empty());
                    assert!(text.contains(f.as_str()), "{f:?} not in {text:?}");
                }
                let mut out = Vec::new();
                pod::write_pod_map(&mut out, &m, None);
                well_formed_map(&out);
            }
        }
        2 => {
            let text = String::from_utf8_lossy(rest);
            let mut lines = text.lines();
            let container = lines.next().unwrap_or("");
            let annotations: Vec<(String, String)> = lines
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (l.to_string(), String::new()),
                })
                .collect();
            let mut issues = Vec::new();
            let _ = pod::props_for(&annotations, container, which & 0x80 != 0, which & 0x40 != 0, &mut issues);
            if let Some(h) = pod::extract_hash(container) {
                assert!(container.ends_with(h));
            }
        }
        _ => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            let inc = Include {
                labels: true,
                annotations: which & 0x80 != 0,
                owner_references: true,
                namespace_labels: true,
                namespace_annotations: true,
            };
            let tag = kb_metadata::kubernetes::tag::TagMeta {
                pod_name: Some("p".into()),
                namespace_name: Some("n".into()),
                container_name: Some("c".into()),
                docker_id: None,
                container_hash: None,
            };
            let docs: Vec<PodDoc> = PodDoc::from_pod(&v, inc)
                .into_iter()
                .chain(pod::pods_of_list(&v, inc).into_iter().map(|(_, _, d)| d))
                .collect();
            for d in docs {
                let mut out = Vec::new();
                pod::write_pod_map(&mut out, &tag, Some(&d));
                well_formed_map(&out);
            }
        }
    }
});
