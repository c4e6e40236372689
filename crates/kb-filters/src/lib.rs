//! The filter plugins of kinesis-bit: Fluent Bit's filters with their keys and behaviour,
//! built on kb-core's filter stage ([`kb_core::filter`]): each filter works on a decoded
//! [`kb_core::record::Record`] and never re-encodes it itself.

use kb_core::registry::FilterPlugin;

pub mod expect;
pub mod grep;
pub mod lua;
pub mod modify;
pub mod multiline;
pub mod nest;
pub mod parser;
pub mod record_modifier;
pub mod rewrite_tag;
pub mod throttle;
pub mod type_converter;
mod util;

/// Every filter plugin, in `--help` order.
pub fn plugins() -> Vec<FilterPlugin> {
    vec![
        expect::PLUGIN,
        grep::PLUGIN,
        lua::PLUGIN,
        modify::PLUGIN,
        multiline::PLUGIN,
        nest::PLUGIN,
        parser::PLUGIN,
        record_modifier::PLUGIN,
        rewrite_tag::PLUGIN,
        throttle::PLUGIN,
        type_converter::PLUGIN,
    ]
}
