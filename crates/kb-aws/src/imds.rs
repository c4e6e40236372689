//! EC2 instance metadata (IMDS) credentials with the IMDSv2 → IMDSv1 fallback of
//! `kinesis_streams.md` §7.1 (aws-config's own IMDS client is IMDSv2-only).
//!
//! 1. `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 21600` (1 s timeout).
//!    A 200 answer carrying the TTL header gives the token. A refusal with 403, 404 or 405, or a
//!    200 without the TTL header, falls back to IMDSv1 (no token) unless
//!    `AWS_EC2_METADATA_V1_DISABLED=true` or `ec2_metadata_v1_disabled = true` in the profile.
//! 2. `GET /latest/meta-data/iam/security-credentials/` → role name.
//! 3. `GET /latest/meta-data/iam/security-credentials/<role>` → JSON with `AccessKeyId`,
//!    `SecretAccessKey`, `Token`, `Expiration`.
//!
//! `AWS_EC2_METADATA_DISABLED=true` disables the provider; `AWS_EC2_METADATA_SERVICE_ENDPOINT`
//! (or the profile's `ec2_metadata_service_endpoint`) overrides the address (default
//! `http://169.254.169.254`, or `http://[fd00:ec2::254]` with endpoint mode `IPv6`). The
//! environment is read on every call, the profile when the provider is built. The client is a minimal HTTP/1.1 client over a plain TCP connection (`Connection:
//! close`): IMDS is plain http on a link-local or loopback address.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{self, error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const DEFAULT_ENDPOINT_V6: &str = "http://[fd00:ec2::254]";
const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// Largest IMDS answer accepted.
const MAX_RESPONSE: usize = 64 * 1024;
const PROVIDER_NAME: &str = "Ec2InstanceMetadata";

/// `ProvideCredentials` for EC2 IMDS with the v2 → v1 fallback (see the module documentation).
#[derive(Clone)]
pub struct ImdsCredentialsProvider {
    /// `ec2_metadata_v1_disabled` of the selected profile.
    profile_v1_disabled: bool,
    /// `ec2_metadata_service_endpoint` of the selected profile.
    profile_endpoint: Option<String>,
    /// `ec2_metadata_service_endpoint_mode` of the selected profile.
    profile_endpoint_mode: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for ImdsCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsCredentialsProvider")
            .field("profile_v1_disabled", &self.profile_v1_disabled)
            .field("profile_endpoint", &self.profile_endpoint)
            .field("profile_endpoint_mode", &self.profile_endpoint_mode)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for ImdsCredentialsProvider {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ImdsCredentialsProvider {
    /// A provider for the given shared-config profile (`None`: `$AWS_PROFILE`, else
    /// `$AWS_DEFAULT_PROFILE`, else `default`), whose `ec2_metadata_v1_disabled`,
    /// `ec2_metadata_service_endpoint` and `ec2_metadata_service_endpoint_mode` are read now.
    pub fn new(profile: Option<&str>) -> Self {
        let profile = profile
            .map(str::to_string)
            .or_else(|| non_empty_env("AWS_PROFILE"))
            .or_else(|| non_empty_env("AWS_DEFAULT_PROFILE"))
            .unwrap_or_else(|| "default".to_string());
        let profile_v1_disabled = profile_setting(&profile, "ec2_metadata_v1_disabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Self {
            profile_v1_disabled,
            profile_endpoint: profile_setting(&profile, "ec2_metadata_service_endpoint"),
            profile_endpoint_mode: profile_setting(&profile, "ec2_metadata_service_endpoint_mode"),
            timeout: Duration::from_secs(1),
        }
    }

    /// Per-request timeout (connect + answer); 1 s by default.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn load(&self) -> provider::Result {
        if env_true("AWS_EC2_METADATA_DISABLED") {
            return Err(CredentialsError::not_loaded(
                "IMDS disabled by AWS_EC2_METADATA_DISABLED",
            ));
        }
        let endpoint = self.endpoint();
        let target = Target::parse(&endpoint).map_err(CredentialsError::invalid_configuration)?;
        let v1_allowed = !(env_true("AWS_EC2_METADATA_V1_DISABLED") || self.profile_v1_disabled);

        // IMDSv2 token.
        let token_answer = self
            .request(
                &target,
                "PUT",
                "/latest/api/token",
                &[(TOKEN_TTL_HEADER, "21600")],
            )
            .await
            .map_err(|e| CredentialsError::not_loaded(format!("IMDS not reachable: {e}")))?;
        let token = match token_answer.status {
            200 if token_answer.header(TOKEN_TTL_HEADER).is_some() => Some(
                String::from_utf8_lossy(&token_answer.body)
                    .trim()
                    .to_string(),
            ),
            200 | 403 | 404 | 405 => {
                let why = if token_answer.status == 200 {
                    "answered without a TTL header".to_string()
                } else {
                    format!("refused with HTTP {}", token_answer.status)
                };
                if !v1_allowed {
                    return Err(CredentialsError::provider_error(format!(
                        "IMDSv2 token request {why} and the IMDSv1 fallback is disabled"
                    )));
                }
                tracing::debug!("IMDSv2 token request {why}; falling back to IMDSv1");
                None
            }
            s => {
                return Err(CredentialsError::provider_error(format!(
                    "IMDS token request failed with HTTP {s}"
                )))
            }
        };
        let token_header: Vec<(&str, &str)> = match &token {
            Some(t) => vec![(TOKEN_HEADER, t.as_str())],
            None => vec![],
        };

        // Role name.
        let roles = self
            .request(&target, "GET", CREDS_PATH, &token_header)
            .await
            .map_err(|e| CredentialsError::provider_error(format!("IMDS role request: {e}")))?;
        match roles.status {
            200 => {}
            404 => {
                return Err(CredentialsError::not_loaded(
                    "no IAM role attached to this instance (IMDS answered 404)",
                ))
            }
            s => {
                return Err(CredentialsError::provider_error(format!(
                    "IMDS role request failed with HTTP {s}"
                )))
            }
        }
        let body = String::from_utf8_lossy(&roles.body);
        let role = body.lines().map(str::trim).find(|l| !l.is_empty());
        let Some(role) = role else {
            return Err(CredentialsError::not_loaded(
                "no IAM role attached to this instance (empty role list)",
            ));
        };
        if role.contains('/') || role.contains("..") {
            return Err(CredentialsError::provider_error(
                "IMDS returned an invalid role name",
            ));
        }

        // Credentials of the role.
        let path = format!("{CREDS_PATH}{role}");
        let answer = self
            .request(&target, "GET", &path, &token_header)
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!("IMDS credentials request: {e}"))
            })?;
        if answer.status != 200 {
            return Err(CredentialsError::provider_error(format!(
                "IMDS credentials request failed with HTTP {}",
                answer.status
            )));
        }
        parse_credentials_json(&answer.body)
    }

    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the profile's `ec2_metadata_service_endpoint`,
    /// else the default address of the endpoint mode (`IPv4` or `IPv6`, from
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` or the profile).
    fn endpoint(&self) -> String {
        if let Some(e) = non_empty_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .or_else(|| self.profile_endpoint.clone())
        {
            return e;
        }
        let mode = non_empty_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
            .or_else(|| self.profile_endpoint_mode.clone());
        if mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("ipv6")) {
            DEFAULT_ENDPOINT_V6.to_string()
        } else {
            DEFAULT_ENDPOINT.to_string()
        }
    }

    async fn request(
        &self,
        target: &Target,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        match tokio::time::timeout(self.timeout, send(target, method, path, headers)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{method} {path}: timed out after {}",
                crate::human_duration(self.timeout)
            )),
        }
    }
}

impl ProvideCredentials for ImdsCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// Parse the credentials document; never echoes its content in errors.
fn parse_credentials_json(body: &[u8]) -> provider::Result {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        CredentialsError::provider_error(format!("IMDS credentials are not valid JSON: {e}"))
    })?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
    if let Some(code) = field("Code") {
        if code != "Success" {
            return Err(CredentialsError::provider_error(format!(
                "IMDS credentials answer has Code {code}"
            )));
        }
    }
    let (Some(akid), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
        return Err(CredentialsError::provider_error(
            "IMDS credentials lack AccessKeyId or SecretAccessKey",
        ));
    };
    let token = field("Token").map(str::to_string);
    let expiry = match field("Expiration") {
        Some(e) => Some(parse_rfc3339(e).ok_or_else(|| {
            CredentialsError::provider_error(format!("IMDS credentials: bad Expiration '{e}'"))
        })?),
        None => None,
    };
    Ok(Credentials::new(akid, secret, token, expiry, PROVIDER_NAME))
}

/// `2026-01-02T03:04:05Z`, with optional fractional seconds and a `±hh:mm` offset.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let secs = crate::sign::unix_seconds(
        i64::from(num(0..4)?),
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )?;
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut n: u64 = 0;
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                n = n * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            n *= 10;
        }
        nanos = u32::try_from(n).ok()?;
        rest = &frac[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let h: i64 = o[1..3].parse().ok()?;
            let m: i64 = o[4..6].parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let utc = secs - offset;
    let base = if utc >= 0 {
        UNIX_EPOCH + Duration::from_secs(utc.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(utc.unsigned_abs())
    };
    Some(base + Duration::from_nanos(u64::from(nanos)))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_true(name: &str) -> bool {
    non_empty_env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Value of `key` in `profile` of the shared config file (`$AWS_CONFIG_FILE` or
/// `~/.aws/config`). A minimal reader for the few settings aws-config does not expose.
pub(crate) fn profile_setting(profile: &str, key: &str) -> Option<String> {
    let path = match non_empty_env("AWS_CONFIG_FILE") {
        Some(p) => expand_home(&p),
        None => std::path::PathBuf::from(non_empty_env("HOME")?).join(".aws/config"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    config_value(&text, profile, key)
}

fn expand_home(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), non_empty_env("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(p),
    }
}

/// `key` of `[profile <name>]` (or `[default]` / `[profile default]`) in config-file text.
fn config_value(text: &str, profile: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name = header.split(']').next().unwrap_or("").trim();
            let name = match name.strip_prefix("profile") {
                Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim(),
                _ => name,
            };
            in_section = name == profile;
            continue;
        }
        if in_section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    found = Some(v.trim().to_string());
                }
            }
        }
    }
    found
}

/// Where IMDS listens: `host:port` to connect to and the `Host` header.
#[derive(Debug, Clone)]
struct Target {
    connect: String,
    host_header: String,
}

impl Target {
    fn parse(endpoint: &str) -> Result<Target, String> {
        let e = endpoint.trim();
        let rest = if let Some(r) = e.strip_prefix("http://") {
            r
        } else if e.starts_with("https://") {
            return Err(format!(
                "IMDS endpoint '{e}': only http:// is supported for instance metadata"
            ));
        } else if e.contains("://") {
            return Err(format!("IMDS endpoint '{e}': unsupported scheme"));
        } else {
            e
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("IMDS endpoint '{e}' has no host"));
        }
        let has_port = if authority.starts_with('[') {
            authority.contains("]:")
        } else {
            authority.contains(':')
        };
        let connect = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            connect,
            host_header: authority.to_string(),
        })
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn send(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut stream = tokio::net::TcpStream::connect(target.connect.as_str())
        .await
        .map_err(|e| format!("connect to {}: {e}", target.connect))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kinesis-bit/{}\r\nAccept: */*\r\nConnection: close\r\n",
        target.host_header,
        env!("CARGO_PKG_VERSION"),
    );
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    if method == "PUT" || method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{method} {path}: write: {e}"))?;
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("{method} {path}: read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_RESPONSE {
            return Err(format!(
                "{method} {path}: answer larger than {MAX_RESPONSE} bytes"
            ));
        }
        if let Some(answer) = try_parse(&raw)? {
            return Ok(answer);
        }
    }
    try_parse_final(&raw).ok_or_else(|| format!("{method} {path}: malformed or truncated answer"))
}

/// A complete answer once the head and the body (by `Content-Length` or chunked) are in `raw`.
fn try_parse(raw: &[u8]) -> Result<Option<Answer>, String> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let (status, headers) = parse_head(&raw[..head_end]).ok_or("malformed answer head")?;
    let body = &raw[head_end + 4..];
    let find_header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if find_header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(dechunk(body).map(|body| Answer {
            status,
            headers,
            body,
        }));
    }
    if let Some(len) = find_header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| "bad Content-Length")?;
        if body.len() >= len {
            return Ok(Some(Answer {
                status,
                headers,
                body: body[..len].to_vec(),
            }));
        }
    }
    Ok(None)
}

/// At EOF: an answer without `Content-Length` ends with the connection.
fn try_parse_final(raw: &[u8]) -> Option<Answer> {
    let head_end = find(raw, b"\r\n\r\n")?;
    let (status, headers) = parse_head(&raw[..head_end])?;
    Some(Answer {
        status,
        headers,
        body: raw[head_end + 4..].to_vec(),
    })
}

fn parse_head(head: &[u8]) -> Option<(u16, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Which instance metadata protocol an [`ImdsClient`] speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsVersion {
    /// Plain GETs without a session token.
    V1,
    /// A session token (`PUT /latest/api/token`) sent with every GET; IMDSv1 when the token
    /// request is refused (403/404/405, or a 200 without the TTL header) or gets no answer in
    /// time (a container behind a hop limit of 1 never sees the answer to the PUT).
    V2,
}

/// Lifetime asked for a metadata session token, and how long before its end it is renewed.
const SESSION_TTL: Duration = Duration::from_secs(21_600);
const SESSION_RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Reads instance metadata (`/latest/meta-data/...`, `/latest/dynamic/...`) for the `aws`
/// filter, with the IMDSv2 token flow and the IMDSv1 fallback. The token is kept and renewed
/// before it expires, and fetched again when IMDS answers 401.
pub struct ImdsClient {
    target: Target,
    version: ImdsVersion,
    timeout: Duration,
    /// `Some(None)`: IMDSv1 was chosen after the token request failed.
    token: tokio::sync::Mutex<Option<(Option<String>, std::time::Instant)>>,
}

impl fmt::Debug for ImdsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsClient")
            .field("endpoint", &self.target.host_header)
            .field("version", &self.version)
            .finish()
    }
}

impl ImdsClient {
    /// A client for `endpoint` (`http://host[:port]`; `None`: `$AWS_EC2_METADATA_SERVICE_ENDPOINT`,
    /// else `http://169.254.169.254`). `timeout` bounds each request (connect and answer).
    pub fn new(
        endpoint: Option<&str>,
        version: ImdsVersion,
        timeout: Duration,
    ) -> Result<ImdsClient, String> {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| non_empty_env("AWS_EC2_METADATA_SERVICE_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Ok(ImdsClient {
            target: Target::parse(&endpoint)?,
            version,
            timeout,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// `GET path`: `Ok(Some(body))` on 200, `Ok(None)` on 404, an error otherwise.
    pub async fn get(&self, path: &str) -> Result<Option<String>, String> {
        for attempt in 0..2 {
            let token = self.session_token().await?;
            let headers: Vec<(&str, &str)> = match &token {
                Some(t) => vec![(TOKEN_HEADER, t.as_str())],
                None => vec![],
            };
            let answer = self.request("GET", path, &headers).await?;
            match answer.status {
                200 => return Ok(Some(String::from_utf8_lossy(&answer.body).into_owned())),
                404 => return Ok(None),
                // An expired or revoked token: fetch a new one once.
                401 if attempt == 0 && token.is_some() => {
                    *self.token.lock().await = None;
                }
                s => return Err(format!("GET {path}: HTTP {s}")),
            }
        }
        Err(format!("GET {path}: HTTP 401"))
    }

    /// The token to send (`None`: IMDSv1), fetched or renewed when needed.
    async fn session_token(&self) -> Result<Option<String>, String> {
        if self.version == ImdsVersion::V1 {
            return Ok(None);
        }
        let mut slot = self.token.lock().await;
        if let Some((token, until)) = slot.as_ref() {
            if std::time::Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let ttl = SESSION_TTL.as_secs().to_string();
        let (token, valid) = match self
            .request("PUT", "/latest/api/token", &[(TOKEN_TTL_HEADER, &ttl)])
            .await
        {
            Ok(a) if a.status == 200 && a.header(TOKEN_TTL_HEADER).is_some() => {
                let t = String::from_utf8_lossy(&a.body).trim().to_string();
                (Some(t), SESSION_TTL - SESSION_RENEW_BEFORE)
            }
            Ok(a) if matches!(a.status, 200 | 403 | 404 | 405) => {
                tracing::debug!(
                    "IMDSv2 token request answered HTTP {}; using IMDSv1",
                    a.status
                );
                (None, SESSION_TTL)
            }
            Ok(a) => return Err(format!("IMDS token request failed with HTTP {}", a.status)),
            Err(e) if e.contains("timed out") => {
                tracing::debug!("IMDSv2 token request: {e}; trying IMDSv1");
                // Try again later: the hop limit may be raised, or IMDS was only slow.
                (None, Duration::from_secs(300))
            }
            Err(e) => return Err(e),
        };
        *slot = Some((token.clone(), std::time::Instant::now() + valid));
        Ok(token)
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        match tokio::time::timeout(self.timeout, send(&self.target, method, path, headers)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{method} {path}: timed out after {:?}",
                self.timeout
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let t = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(t("1994-11-06T08:49:37Z"), Some(784_111_777.0));
        assert_eq!(t("1994-11-06T08:49:37.5Z"), Some(784_111_777.5));
        assert_eq!(t("1994-11-06T09:49:37+01:00"), Some(784_111_777.0));
        assert_eq!(t("1994-11-06T07:49:37-01:00"), Some(784_111_777.0));
        assert_eq!(t("1994-11-06 08:49:37"), None);
        assert_eq!(t("garbage-and-more-stuff"), None);
    }

    #[test]
    fn config_values() {
        let text = "[default]\nec2_metadata_v1_disabled = true\n\n[profile other]\n# c\nregion=x\nec2_metadata_v1_disabled=false\n[profile  spaced ]\nk = v\n";
        assert_eq!(
            config_value(text, "default", "ec2_metadata_v1_disabled").as_deref(),
            Some("true")
        );
        assert_eq!(
            config_value(text, "other", "ec2_metadata_v1_disabled").as_deref(),
            Some("false")
        );
        assert_eq!(config_value(text, "spaced", "k").as_deref(), Some("v"));
        assert_eq!(config_value(text, "missing", "k"), None);
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:1234/").unwrap();
        assert_eq!(t.connect, "127.0.0.1:1234");
        assert_eq!(t.host_header, "127.0.0.1:1234");
        let t = Target::parse("http://169.254.169.254").unwrap();
        assert_eq!(t.connect, "169.254.169.254:80");
        assert_eq!(t.host_header, "169.254.169.254");
        let t = Target::parse("http://[fd00:ec2::254]").unwrap();
        assert_eq!(t.connect, "[fd00:ec2::254]:80");
        assert!(Target::parse("https://x").is_err());
    }

    #[test]
    fn answers() {
        let a = try_parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.status, a.body.as_slice(), a.header("x-a")),
            (200, &b"abc"[..], Some("b"))
        );
        assert!(
            try_parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc")
                .unwrap()
                .is_none()
        );
        let a = try_parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.body, b"abcde");
        let a = try_parse_final(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn credentials_document() {
        let c = parse_credentials_json(
            br#"{"Code":"Success","AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c.access_key_id(), "ASIAX");
        assert_eq!(c.session_token(), Some("t"));
        assert!(c.expiry().is_some());
        assert!(parse_credentials_json(br#"{"Code":"Failure"}"#).is_err());
        assert!(parse_credentials_json(b"not json").is_err());
    }
}
