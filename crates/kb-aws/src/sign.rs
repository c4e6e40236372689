//! SigV4 signing of a request whose payload hash is computed by the caller
//! (`kinesis_streams.md` §5), the SHA-256 helper, and the clock skew learned from the service.
//!
//! Header ownership: the caller sets `content-type`, `x-amz-target`, `user-agent` and (optionally)
//! `content-length` before calling [`sign_request`]. [`sign_request`] sets `host` when it is
//! absent (from the URI: `host`, or `host:port` unless the port is the scheme's default; IPv6 in
//! brackets), and always sets `x-amz-date`, `authorization` and — when the credentials carry a
//! session token — `x-amz-security-token` (a stale one from an earlier signing is removed).
//!
//! Every header present at signing is signed except `user-agent`, `authorization`,
//! `x-amzn-trace-id`, `expect` and the hop-by-hop headers (`connection`, `keep-alive`,
//! `proxy-authorization`, `proxy-connection`, `te`, `trailer`, `transfer-encoding`, `upgrade`),
//! which proxies may rewrite. No `x-amz-content-sha256` header is added (Kinesis does not need it).

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderValue, AUTHORIZATION, HOST};

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("could not sign request: the request URI has no host")]
    NoHost,
    #[error("could not sign request: {0}")]
    Header(String),
    #[error("could not sign request: {0}")]
    Signing(String),
}

/// Headers never signed: proxies and intermediaries may add, drop or rewrite them.
const EXCLUDED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "expect",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn signing_settings() -> SigningSettings {
    let mut s = SigningSettings::default();
    s.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    s.signature_location = SignatureLocation::Headers;
    s.session_token_mode = SessionTokenMode::Include;
    s.excluded_headers = Some(EXCLUDED_HEADERS.iter().map(|h| Cow::Borrowed(*h)).collect());
    s
}

/// Sign `req` in place with SigV4 for `service`/`region` at `time` (pass [`ClockSkew::now`]).
///
/// `payload_sha256_hex` is the lowercase hex SHA-256 of the body (see [`sha256_hex`]); the body
/// of `req` is not read. See the module documentation for which headers are set and signed.
/// Signing the same request again (after a credential refresh or with a corrected clock)
/// replaces the previous signature headers.
pub fn sign_request(
    req: &mut http::Request<bytes::Bytes>,
    payload_sha256_hex: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    // Remove what an earlier signing added, so a re-sign never carries a stale value.
    let headers = req.headers_mut();
    headers.remove(AUTHORIZATION);
    headers.remove("x-amz-date");
    headers.remove("x-amz-security-token");
    headers.remove("x-amz-content-sha256");

    if !req.headers().contains_key(HOST) {
        let host = host_header(req.uri()).ok_or(SignError::NoHost)?;
        let value = HeaderValue::from_str(&host).map_err(|e| SignError::Header(e.to_string()))?;
        req.headers_mut().insert(HOST, value);
    }

    let identity: Identity = creds.clone().into();
    let settings = signing_settings();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into();

    let uri = req.uri().to_string();
    let mut header_pairs = Vec::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let value = value
            .to_str()
            .map_err(|_| SignError::Header(format!("header {name} is not visible ASCII")))?;
        header_pairs.push((name.as_str(), value));
    }
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        header_pairs.into_iter(),
        SignableBody::Precomputed(payload_sha256_hex.to_string()),
    )
    .map_err(|e| SignError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

/// `host`, or `host:port` unless the port is the scheme's default; IPv6 stays in brackets.
fn host_header(uri: &http::Uri) -> Option<String> {
    let authority = uri.authority()?;
    let host = authority.host();
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(p) if Some(p) != default_port => format!("{host}:{p}"),
        _ => host.to_string(),
    })
}

/// Lowercase hex SHA-256 of `data` (aws-lc-rs).
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The offset between the service's clock and ours, learned from the `Date` header of a
/// "signature expired / not yet current" answer (§5 "clock skew"); shared by the workers of
/// an output instance. Starts at zero.
#[derive(Debug, Default)]
pub struct ClockSkew {
    secs: AtomicI64,
}

impl ClockSkew {
    pub fn new() -> Self {
        Self::default()
    }

    /// The learned skew in seconds (server time − local time).
    pub fn skew_secs(&self) -> i64 {
        self.secs.load(Ordering::Relaxed)
    }

    /// Local wall clock corrected by the learned skew: the time to sign with.
    pub fn now(&self) -> SystemTime {
        apply_skew(SystemTime::now(), self.skew_secs())
    }

    /// Learn the skew from a response `Date` header (IMF-fixdate as in
    /// `Sun, 06 Nov 1994 08:49:37 GMT`, or the basic ISO 8601 form `20260101T000000Z` of
    /// `x-amz-date`). Returns the new skew in seconds, or `None` (skew unchanged) when the value
    /// cannot be parsed.
    pub fn learn_from_date_header(&self, date: &str) -> Option<i64> {
        let server = parse_http_date(date).or_else(|| parse_amz_date(date))?;
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let skew = (server as f64 - local).round() as i64;
        self.secs.store(skew, Ordering::Relaxed);
        Some(skew)
    }
}

fn apply_skew(t: SystemTime, skew: i64) -> SystemTime {
    if skew >= 0 {
        t + Duration::from_secs(skew.unsigned_abs())
    } else {
        t - Duration::from_secs(skew.unsigned_abs())
    }
}

/// Seconds since the epoch of a civil UTC date and time (proleptic Gregorian).
pub(crate) fn unix_seconds(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (the weekday is not checked).
fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.split_once(',').map_or(s, |(_, r)| r).trim();
    let mut it = rest.split_ascii_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: u32 = hms.next()?.parse().ok()?;
    let m: u32 = hms.next()?.parse().ok()?;
    let sec: u32 = hms.next()?.parse().ok()?;
    match it.next() {
        None => {}
        Some(z) if z.eq_ignore_ascii_case("GMT") || z.eq_ignore_ascii_case("UTC") => {}
        Some(_) => return None,
    }
    unix_seconds(year, month, day, h, m, sec)
}

/// `20260101T000000Z`.
fn parse_amz_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    unix_seconds(
        i64::from(num(0..4)?),
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_amz_date("19941106T084937Z"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_amz_date("1994-11-06T08:49:37Z"), None);
    }

    #[test]
    fn skew_learned() {
        let skew = ClockSkew::new();
        let future = SystemTime::now() + Duration::from_secs(600);
        let secs = future.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Format as x-amz-date via the inverse of unix_seconds (civil_from_days).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let date = format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
        let learned = skew.learn_from_date_header(&date).unwrap();
        assert!((599..=601).contains(&learned), "{learned}");
        let now = skew.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((now - secs).abs() <= 2);
        assert_eq!(skew.learn_from_date_header("nonsense"), None);
        assert_eq!(skew.skew_secs(), learned);
    }
}
