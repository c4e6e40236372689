//! The filter plugins of kinesis-bit: Fluent Bit's filters with their keys and behaviour,
//! built on kb-core's filter stage ([`kb_core::filter`]): each filter works on a decoded
//! [`kb_core::record::Record`] and never re-encodes it itself.

use kb_core::registry::FilterPlugin;

pub mod multiline;
pub mod parser;

/// Every filter plugin, in `--help` order.
pub fn plugins() -> Vec<FilterPlugin> {
    vec![parser::PLUGIN, multiline::PLUGIN]
}
