//! `-h`, `-o NAME -h` and `-V` texts, laid out like Fluent Bit's.

use std::fmt::Write as _;

use kb_config::schema::{KeySpec, FILTER_GENERIC_KEYS, INPUT_GENERIC_KEYS, OUTPUT_GENERIC_KEYS};
use kb_config::{PluginSpec, SectionKind};

use crate::pipeline::Registry;

/// `-V`: our version and the Fluent Bit release we are compatible with.
pub fn version() -> String {
    format!(
        "kinesis-bit v{}\ncompatible with Fluent Bit 5.1.1\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`: usage, options and the plugin list.
pub fn usage(registry: &Registry) -> String {
    let mut s = kb_config::cli::usage();
    let _ = writeln!(s, "\nInputs");
    for p in &registry.inputs {
        let _ = writeln!(s, "  {:<22}{}", p.spec.name, p.spec.description);
    }
    let _ = writeln!(s, "\nFilters");
    for p in &registry.filters {
        let _ = writeln!(s, "  {:<22}{}", p.spec.name, p.spec.description);
    }
    let _ = writeln!(s, "\nOutputs");
    for p in &registry.outputs {
        let _ = writeln!(s, "  {:<22}{}", p.spec.name, p.spec.description);
    }
    let _ = writeln!(s, "\nInternal\n Event Loop  = tokio\n Build Flags = rust");
    s
}

fn key_block(s: &mut String, k: &KeySpec) {
    let _ = writeln!(s, "{:<32}{}", k.name, k.description);
    let default = k.default.unwrap_or("none");
    let _ = writeln!(
        s,
        "{:<32}> default: {}, type: {}\n",
        "",
        default,
        k.ty.name()
    );
}

/// `-i/-F/-o NAME -h`: the plugin's description, the engine's generic keys and its own keys.
pub fn plugin_help(spec: &PluginSpec) -> String {
    let mut s = version();
    let _ = writeln!(s, "\nHELP\n{:<32}{}\n", spec.name, spec.description);
    let _ = writeln!(s, "DESCRIPTION\n{}\n", spec.description);
    let generic: &[KeySpec] = match spec.kind {
        SectionKind::Input => INPUT_GENERIC_KEYS,
        SectionKind::Filter => FILTER_GENERIC_KEYS,
        _ => OUTPUT_GENERIC_KEYS,
    };
    let _ = writeln!(s, "GLOBAL_OPTIONS");
    // Fluent Bit lists `workers` with the plugin's own options, the rest as global ones.
    for k in generic
        .iter()
        .filter(|k| k.name != "name" && k.name != "workers")
    {
        key_block(&mut s, k);
    }
    let _ = writeln!(s, "OPTIONS");
    for k in spec
        .keys
        .iter()
        .chain(generic.iter().filter(|k| k.name == "workers"))
    {
        key_block(&mut s, k);
    }
    s
}
