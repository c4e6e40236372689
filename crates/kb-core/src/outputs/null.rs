//! `null`: accepts and discards every record (benchmarks, routing tests).

use std::sync::Arc;

use async_trait::async_trait;
use kb_config::{ConfigError, PluginSpec, Props, SectionKind};

use crate::chunk::{Chunk, Progress};
use crate::plugin::{FlushResult, Output, OutputWorker, PluginError};
use crate::registry::{OutputPlugin, ServiceContext};

/// The `null` output plugin.
pub const PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "null",
        description: "Throws away events",
        keys: &[],
    },
    build,
};

fn build(_: &Props, _: &ServiceContext) -> Result<Arc<dyn Output>, Vec<ConfigError>> {
    Ok(Arc::new(NullOutput))
}

struct NullOutput;

#[async_trait]
impl Output for NullOutput {
    async fn new_worker(&self, _: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        Ok(Box::new(NullOutput))
    }
}

#[async_trait]
impl OutputWorker for NullOutput {
    async fn flush(&mut self, _: &Chunk, _: &mut Progress) -> FlushResult {
        FlushResult::Ok
    }
}
