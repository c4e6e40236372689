//! Input plugins of kinesis-bit, compatible with Fluent Bit's `dummy`, `cpu` and `stdin`.
//!
//! Each module exposes `PLUGIN` (key table and factory). Factories validate and construct
//! only; files and standard input are touched when the engine runs the input.

pub mod cpu;
pub mod dummy;
pub mod exec;
pub mod forward;
pub mod http;
/// The `[PARSER]` formats, shared with the filters (crate `kb-parsers`).
pub use kb_parsers as parsers;
pub mod stdin;
pub mod systemd;
pub mod tail;
pub mod tcp;
mod util;

use kb_core::registry::InputPlugin;

/// Every input plugin of this crate.
pub fn plugins() -> Vec<InputPlugin> {
    vec![
        dummy::PLUGIN,
        cpu::PLUGIN,
        stdin::PLUGIN,
        forward::PLUGIN,
        tail::PLUGIN,
        tcp::PLUGIN,
        http::PLUGIN,
        exec::PLUGIN,
        systemd::PLUGIN,
    ]
}
