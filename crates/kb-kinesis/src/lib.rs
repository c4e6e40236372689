//! The `kinesis_streams` output: formats each event (JSON, `time_key`, `log_key`, compression),
//! picks partition keys, batches records into PutRecords requests within the service limits,
//! signs and sends them, and retries only the entries Kinesis did not accept.

pub mod accessor;
pub mod aggregate;
pub mod batch;
pub mod compress;
pub mod config;
pub mod encode;
pub mod format;
pub mod metrics;
pub mod output;
pub mod ratelimit;
pub mod response;
mod response_scan;
pub mod send;
pub mod time_format;
