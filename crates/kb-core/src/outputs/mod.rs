//! Simple outputs that live beside the engine: `stdout` and `null`.

pub mod null;
pub mod stdout;

use crate::registry::OutputPlugin;

/// The outputs kb-core provides.
pub fn plugins() -> Vec<OutputPlugin> {
    vec![stdout::PLUGIN, null::PLUGIN]
}
