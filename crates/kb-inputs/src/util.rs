//! Small helpers shared by the inputs.

use std::time::Duration;

use kb_core::event::EventTime;
use tokio::time::Instant;

/// Lets a repeated warning through at most once per period and counts the suppressed ones.
#[derive(Debug)]
pub(crate) struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// At most one message per `period`.
    pub(crate) fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// At most one message per minute.
    pub(crate) fn per_minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// `Some(n)` when a message may be logged now (`n` = messages suppressed since the last
    /// one), `None` when it must be suppressed.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// `" (N similar messages suppressed)"` or nothing.
pub(crate) fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar messages suppressed)")
    }
}

/// An event time from a duration since the Unix epoch (seconds saturate at `u32::MAX`).
pub(crate) fn event_time(d: Duration) -> EventTime {
    EventTime::new(
        u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        d.subsec_nanos(),
    )
}

/// Write `[[time, <metadata>], ` — the event header with pre-encoded metadata map bytes.
pub(crate) fn write_header_with_metadata(buf: &mut Vec<u8>, time: EventTime, metadata: &[u8]) {
    buf.push(0x92); // [header, record]
    buf.push(0x92); // [time, metadata]
    buf.extend_from_slice(&[0xd7, 0x00]); // fixext8, type 0 = EventTime
    buf.extend_from_slice(&time.secs.to_be_bytes());
    buf.extend_from_slice(&time.nanos.to_be_bytes());
    buf.extend_from_slice(metadata);
}

/// Bind a listening TCP socket for an input; the error names the address.
pub async fn bind_tcp(
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpListener, kb_core::plugin::PluginError> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| {
            kb_core::plugin::PluginError::new(format!("could not bind address {host}:{port}: {e}"))
        })?;
    tracing::info!("listening on {host}:{port}");
    Ok(listener)
}

/// A size key in bytes (its default when unset); a bad value is recorded in `errors`.
pub fn size(
    props: &kb_config::Props,
    key: &str,
    default: usize,
    errors: &mut Vec<kb_config::ConfigError>,
) -> usize {
    match props.size(key) {
        Ok(v) => v.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX)),
        Err(e) => {
            errors.push(e);
            default
        }
    }
}

/// The `port` key of a listening input (its default when unset); 0 or more than 65535 is
/// recorded in `errors`.
pub fn port(
    props: &kb_config::Props,
    default: u16,
    errors: &mut Vec<kb_config::ConfigError>,
) -> u16 {
    let port = match props.u64("port") {
        Ok(v) => v.unwrap_or(u64::from(default)),
        Err(e) => {
            errors.push(e);
            u64::from(default)
        }
    };
    match u16::try_from(port) {
        Ok(p) if p > 0 => p,
        _ => {
            errors.push(props.error("port", format!("'port' {port} must be 1 to 65535")));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttle_counts_suppressed_messages() {
        let mut t = Throttle::per_minute();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(t.allow(), Some(2));
        assert_eq!(t.allow(), None);
    }

    #[test]
    fn header_matches_core_layout() {
        let mut a = Vec::new();
        kb_core::event::write_event_header(&mut a, EventTime::new(7, 9));
        let mut b = Vec::new();
        write_header_with_metadata(&mut b, EventTime::new(7, 9), &[0x80]);
        assert_eq!(a, b);
    }
}
