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

/// Width of the name column of plugin help (`-o NAME -h`), as Fluent Bit lays it out.
const KEY_COLUMN: usize = 32;

/// One line of `name` in a column of `width` followed by `text`. A name that fills the column
/// goes on a line of its own, so it never runs into its text
/// (`tls.windows.use_enterprise_storeWindows only`).
fn column(s: &mut String, indent: &str, name: &str, width: usize, text: &str) {
    if name.len() < width {
        let _ = writeln!(s, "{indent}{name:<width$}{text}");
    } else {
        let _ = writeln!(s, "{indent}{name}\n{indent}{:width$}{text}", "");
    }
}

/// `-h`: usage, options and the plugin list.
pub fn usage(registry: &Registry) -> String {
    let mut s = kb_config::cli::usage();
    for (title, kind) in [
        ("Inputs", SectionKind::Input),
        ("Filters", SectionKind::Filter),
        ("Outputs", SectionKind::Output),
    ] {
        let _ = writeln!(s, "\n{title}");
        let specs: Vec<PluginSpec> = match kind {
            SectionKind::Input => registry.inputs.iter().map(|p| p.spec).collect(),
            SectionKind::Filter => registry.filters.iter().map(|p| p.spec).collect(),
            _ => registry.outputs.iter().map(|p| p.spec).collect(),
        };
        if specs.is_empty() {
            let _ = writeln!(s, "  (none yet)");
        }
        for spec in specs {
            column(&mut s, "  ", spec.name, 22, spec.description);
        }
    }
    let _ = writeln!(s, "\nInternal\n Event Loop  = tokio\n Build Flags = rust");
    s
}

fn key_block(s: &mut String, k: &KeySpec) {
    column(s, "", k.name, KEY_COLUMN, k.description);
    let default = k.default.unwrap_or("none");
    let _ = writeln!(
        s,
        "{:<KEY_COLUMN$}> default: {}, type: {}\n",
        "",
        default,
        k.ty.name()
    );
}

/// `-i/-F/-o NAME -h`: the plugin's description, the engine's generic keys and its own keys.
pub fn plugin_help(spec: &PluginSpec) -> String {
    let mut s = version();
    let _ = writeln!(s, "\nHELP");
    column(&mut s, "", spec.name, KEY_COLUMN, spec.description);
    let _ = writeln!(s);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_name_never_runs_into_its_text() {
        let mut s = String::new();
        column(&mut s, "", "short", 8, "text");
        column(&mut s, "", "exactly8", 8, "text");
        column(&mut s, "  ", "much_longer", 8, "text");
        assert_eq!(
            s,
            "short   text\nexactly8\n        text\n  much_longer\n          text\n"
        );
    }
}
