//! The metadata filters of kinesis-bit, with Fluent Bit's keys and record layout:
//!
//! * [`kubernetes`]: pod (and namespace) metadata from the API server or the kubelet, the
//!   `log` merge, and the `fluentbit.io/parser` / `fluentbit.io/exclude` pod annotations;
//! * [`aws`]: EC2 instance metadata through IMDS (v2 tokens, v1 fallback) and instance tags;
//! * [`ecs`]: task, container and cluster metadata from the ECS agent's introspection API.
//!
//! A filter runs synchronously on every append, so none of them ever waits on the network
//! inside [`kb_core::filter::Filter::filter`]: metadata is fetched by a background worker
//! ([`worker::Worker`], a thread of its own started at the first record, so a factory opens
//! nothing and `--dry-run` stays offline) into bounded caches, and a record whose metadata is
//! not there yet goes on with what its tag gives (counted, with a rate-limited warning).
//! Fluent Bit instead blocks the pipeline on these requests.

use kb_core::registry::FilterPlugin;

pub mod aws;
pub mod ecs;
mod http;
pub mod kubernetes;
pub mod worker;

/// Every filter plugin of this crate, in `--help` order.
pub fn plugins() -> Vec<FilterPlugin> {
    vec![kubernetes::PLUGIN, aws::PLUGIN, ecs::PLUGIN]
}
