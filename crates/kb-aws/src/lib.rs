//! AWS plumbing for kinesis-bit: endpoints per partition, a pooled HTTP/1.1 client with rustls
//! and proxy support, the credential chain (aws-config) with caching and refresh, SigV4 signing
//! with a precomputed payload hash, and AWS error classification.

pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod imds;
pub mod sign;
pub mod sts_client;
