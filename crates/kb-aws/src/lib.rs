//! AWS plumbing for kinesis-bit: endpoints per partition, a pooled HTTP/1.1 client with rustls
//! and proxy support, the credential chain (aws-config) with caching and refresh, SigV4 signing
//! with a precomputed payload hash, AWS error classification, and the CBOR of the
//! `application/x-amz-cbor-1.1` protocol.

pub mod cbor;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod imds;
pub mod sign;
pub mod sts_client;

/// A duration as people write it in messages (`10 s`, `1.5 s`, `250 ms`); `Debug`'s `10s` or
/// `1.5s` reads like code next to configuration keys given in seconds.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 && !d.is_zero() {
        format!("{} ms", d.as_millis())
    } else {
        let secs = d.as_secs_f64();
        if secs.fract() == 0.0 {
            format!("{secs} s")
        } else {
            format!("{} s", (secs * 1000.0).round() / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn human_durations() {
        assert_eq!(super::human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(super::human_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(super::human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(super::human_duration(Duration::ZERO), "0 s");
    }
}
