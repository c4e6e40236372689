//! The Kinesis family of outputs: `kinesis_streams` and `kinesis_firehose` (Fluent Bit's C
//! plugins) and `kinesis` and `firehose` (the Go plugins of aws-for-fluent-bit), on one sink.
//! Each formats events (JSON, `time_key`, `log_key`, compression; the Go plugins' own record
//! format for the last two), picks partition keys (Streams), batches records into put requests
//! within the service's limits, signs and sends them, and retries only the entries the service
//! did not accept. [`service`] is the seam between the one flush loop and the two services.

pub mod accessor;
pub mod aggregate;
pub mod batch;
pub mod compress;
pub mod config;
pub mod encode;
pub mod format;
pub mod gofmt;
pub mod metrics;
pub mod output;
pub mod ratelimit;
pub mod response;
mod response_scan;
pub mod route;
pub mod send;
pub mod service;
pub mod shards;
pub mod time_format;

pub use output::plugins;
