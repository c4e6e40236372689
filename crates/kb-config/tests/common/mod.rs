//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use kb_config::{Env, PipelineConfig, Section};

/// An environment with a fixed process-environment snapshot.
pub fn env(vars: &[(&str, &str)]) -> Env {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Env::from_map(map)
}

/// A section's properties as (key, value) pairs, locations ignored.
pub fn kv(s: &Section) -> Pairs {
    s.props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

/// Key/value pairs without locations.
pub type Pairs = Vec<(String, String)>;

/// A whole configuration without locations: (kind, key/values) per section, service pairs.
pub fn shape(cfg: &PipelineConfig) -> (Vec<(String, Pairs)>, Pairs) {
    let sections = cfg
        .sections()
        .map(|s| (s.kind.as_str().to_string(), kv(s)))
        .collect();
    let service = cfg
        .service
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    (sections, service)
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Command-line arguments with the program name first.
pub fn args(a: &[&str]) -> Vec<OsString> {
    std::iter::once("kinesis-bit")
        .chain(a.iter().copied())
        .map(OsString::from)
        .collect()
}

/// Error lines of a result.
pub fn errs<T: std::fmt::Debug>(r: Result<T, kb_config::ConfigErrors>) -> Vec<String> {
    r.unwrap_err().0.iter().map(|e| e.to_string()).collect()
}
