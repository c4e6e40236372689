//! The pooled HTTP/1.1 client each output worker owns (spec §8): rustls with the aws-lc-rs
//! provider, `tls.*` options, CONNECT proxies (`proxy` key or the environment), connect and
//! request deadlines, keep-alive with an idle timeout and a per-connection use limit.
//!
//! The pool is our own, on top of `hyper::client::conn::http1`, rather than hyper-util's legacy
//! `Client`: the legacy client races a fresh connect against the pool checkout (so sequential
//! requests can open extra connections), cannot retire a connection after N uses before the
//! last request is sent, and cannot bound the number of connections. Here a connection is
//! opened only when no idle one is available, the last allowed use carries `Connection: close`,
//! and at most `net.max_worker_connections` requests (hence connections) are in flight.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST, PROXY_AUTHORIZATION};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
pub use rustls::CipherSuite;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::endpoint::{Endpoint, EndpointError, ProxyUrl};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Largest response body accepted (Kinesis and STS answers are a few KiB).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest CONNECT response head accepted from a proxy.
const MAX_PROXY_HEAD: usize = 16 * 1024;
/// Request deadline when `net.io_timeout` is 0/unset.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------------------
// Options

/// A TLS protocol version for `tls.min_version` / `tls.max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// `TLSv1.2` / `TLSv1.3` (case-insensitive; `1.2`, `TLS1.2` and `TLSv1_2` also accepted).
    pub fn parse(s: &str) -> Option<TlsVersion> {
        let v = s.trim().to_ascii_lowercase().replace('_', ".");
        let v = v
            .strip_prefix("tlsv")
            .or_else(|| v.strip_prefix("tls"))
            .unwrap_or(&v);
        match v {
            "1.2" => Some(TlsVersion::Tls12),
            "1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    /// `TLSv1.2` / `TLSv1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `tls.*` keys (or `tls.proxy.*` for an https proxy). `Default` verifies everything
/// against the system trust store.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `tls.verify`: check the certificate chain (and the name, see `verify_hostname`).
    pub verify: bool,
    /// `tls.verify_hostname`: check that the certificate names the host (or `vhost`).
    pub verify_hostname: bool,
    /// `tls.ca_file`: PEM (or single DER) CA certificates replacing the system store.
    pub ca_file: Option<PathBuf>,
    /// `tls.ca_path`: a directory whose PEM files replace the system store.
    pub ca_path: Option<PathBuf>,
    /// `tls.crt_file`: client certificate chain (PEM).
    pub crt_file: Option<PathBuf>,
    /// `tls.key_file`: client private key (PEM: PKCS#8, PKCS#1, SEC1, encrypted PKCS#8).
    pub key_file: Option<PathBuf>,
    /// `tls.key_passwd`: password of an encrypted `key_file`.
    pub key_passwd: Option<String>,
    /// `tls.vhost`: SNI and the name verified instead of the endpoint host.
    pub vhost: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// `tls.ciphers` ([`parse_cipher_list`]): suites in order of preference. A TLS version
    /// none of whose suites is listed keeps its suites of [`PREFERRED_SUITES`] (as OpenSSL
    /// keeps its TLS 1.3 suites whatever the cipher list says); empty = [`PREFERRED_SUITES`].
    pub ciphers: Vec<CipherSuite>,
}

/// The client's cipher suites in order of preference when `tls.ciphers` is not set:
/// AES-128-GCM first (TLS 1.3's mandatory suite, first in the AWS SDKs' s2n default policy and
/// the cheapest on hardware with AES-NI), then AES-256-GCM, then ChaCha20-Poly1305 (rustls'
/// own order puts AES-256 first). The server picks, but rustls, s2n and most servers follow
/// the client's order.
pub const PREFERRED_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// OpenSSL's name and the IANA name of every suite the client implements.
const SUITE_NAMES: &[(CipherSuite, &str, &str)] = &[
    (
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// Parse a `tls.ciphers` value: suite names separated by `:` (or `,` or spaces), OpenSSL's
/// (`ECDHE-RSA-AES128-GCM-SHA256`, `TLS_AES_128_GCM_SHA256`) or IANA's
/// (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), in any case; a repeated suite counts once. A
/// name the client does not implement (a CBC or RSA key exchange suite, an OpenSSL keyword
/// such as `HIGH` or `!aNULL`) is an error naming it and the supported names.
pub fn parse_cipher_list(list: &str) -> Result<Vec<CipherSuite>, String> {
    let mut out = Vec::new();
    for name in list
        .split([':', ',', ' ', '\t'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let Some((suite, _, _)) = SUITE_NAMES.iter().find(|(_, openssl, iana)| {
            openssl.eq_ignore_ascii_case(name) || iana.eq_ignore_ascii_case(name)
        }) else {
            let known: Vec<&str> = SUITE_NAMES.iter().map(|(_, n, _)| *n).collect();
            return Err(format!(
                "unknown or unsupported cipher suite '{name}'; supported: {}",
                known.join(", ")
            ));
        };
        if !out.contains(suite) {
            out.push(*suite);
        }
    }
    if out.is_empty() {
        return Err("no cipher suite named".into());
    }
    Ok(out)
}

/// The suites the client offers, in order, for `tls.ciphers` (see [`TlsOptions::ciphers`]).
pub fn suite_order(ciphers: &[CipherSuite]) -> Vec<CipherSuite> {
    let is13 = |s: &CipherSuite| {
        matches!(
            s,
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS13_AES_256_GCM_SHA384
                | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        )
    };
    let mut out: Vec<CipherSuite> = ciphers.to_vec();
    let lists13 = ciphers.iter().any(is13);
    let lists12 = ciphers.iter().any(|s| !is13(s));
    out.extend(
        PREFERRED_SUITES
            .iter()
            .filter(|s| if is13(s) { !lists13 } else { !lists12 }),
    );
    out
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            verify: true,
            verify_hostname: true,
            ca_file: None,
            ca_path: None,
            crt_file: None,
            key_file: None,
            key_passwd: None,
            vhost: None,
            min_version: None,
            max_version: None,
            ciphers: Vec::new(),
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("verify", &self.verify)
            .field("verify_hostname", &self.verify_hostname)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field("crt_file", &self.crt_file)
            .field("key_file", &self.key_file)
            .field("key_passwd", &self.key_passwd.as_ref().map(|_| "****"))
            .field("vhost", &self.vhost)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("ciphers", &self.ciphers)
            .finish()
    }
}

/// The `net.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// `net.connect_timeout` (10 s): TCP connect, proxy CONNECT and TLS handshake together.
    pub connect_timeout: Duration,
    /// `net.io_timeout`: deadline of one request (write + complete response). `None` (FB's 0)
    /// still gets [`DEFAULT_REQUEST_DEADLINE`].
    pub io_timeout: Option<Duration>,
    /// `net.keepalive` (on): reuse connections.
    pub keepalive: bool,
    /// `net.keepalive_idle_timeout` (30 s): close connections idle this long.
    pub keepalive_idle_timeout: Duration,
    /// `net.keepalive_max_recycle` (2000): requests per connection; 0 = unlimited.
    pub keepalive_max_recycle: u32,
    /// `net.source_address`: local address to bind before connecting.
    pub source_address: Option<IpAddr>,
    /// `net.max_worker_connections` (0 = unlimited): connections (= requests in flight) at once.
    pub max_worker_connections: usize,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: None,
            keepalive: true,
            keepalive_idle_timeout: Duration::from_secs(30),
            keepalive_max_recycle: 2000,
            source_address: None,
            max_worker_connections: 0,
        }
    }
}

/// A proxy and the `tls.proxy.*` options used when it is an `https://` proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub url: ProxyUrl,
    pub tls: TlsOptions,
}

// ------------------------------------------------------------------------------------------------
// Proxy from the environment

/// The proxy the environment asks for to reach `target`: `HTTPS_PROXY`/`https_proxy` for https
/// targets (falling back to `HTTP_PROXY`/`http_proxy`, which Fluent Bit uses for all traffic),
/// `HTTP_PROXY`/`http_proxy` for http targets; `None` when unset or when `NO_PROXY`/`no_proxy`
/// excludes the target. `NO_PROXY` is a comma (or space) separated list of `*`, `host`,
/// `.domain`, `*.domain` (a domain matches itself and its subdomains), `host:port`, IP addresses
/// (`[v6]` allowed) and CIDR blocks (matched only when the target host is an IP address).
pub fn proxy_from_env(
    target: &Endpoint,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyUrl>, EndpointError> {
    let get = |names: &[&str]| {
        names.iter().find_map(|n| {
            env(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (n.to_string(), v))
        })
    };
    let http = ["HTTP_PROXY", "http_proxy"];
    let found = if target.is_tls() {
        get(&["HTTPS_PROXY", "https_proxy"]).or_else(|| get(&http))
    } else {
        get(&http)
    };
    let Some((var, value)) = found else {
        return Ok(None);
    };
    if let Some((_, list)) = get(&["NO_PROXY", "no_proxy"]) {
        if no_proxy_matches(&list, target) {
            return Ok(None);
        }
    }
    ProxyUrl::parse(&value)
        .map(Some)
        .map_err(|e| EndpointError::Env {
            var,
            source: Box::new(e),
        })
}

/// Split a `NO_PROXY` entry into host and optional port.
fn split_entry(e: &str) -> (&str, Option<&str>) {
    if let Some(rest) = e.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':'));
        }
    }
    match e.matches(':').count() {
        1 => {
            let (h, p) = e.split_once(':').expect("one colon");
            (h, Some(p))
        }
        _ => (e, None),
    }
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn no_proxy_matches(list: &str, target: &Endpoint) -> bool {
    let host = target.host.trim_end_matches('.').to_ascii_lowercase();
    let ip = target.ip();
    for entry in list.split([',', ' ', '\t', '\n', '\r']) {
        let e = entry.trim();
        if e.is_empty() {
            continue;
        }
        if e == "*" {
            return true;
        }
        if let Some((net, bits)) = e.split_once('/') {
            let net = net.trim_start_matches('[').trim_end_matches(']');
            if let (Ok(net), Ok(bits), Some(ip)) = (net.parse::<IpAddr>(), bits.parse::<u8>(), ip) {
                if cidr_contains(net, bits, ip) {
                    return true;
                }
            }
            continue;
        }
        let (e_host, e_port) = split_entry(e);
        if let Some(p) = e_port {
            if p.parse::<u16>().ok() != Some(target.port) {
                continue;
            }
        }
        if let Ok(e_ip) = e_host.parse::<IpAddr>() {
            if Some(e_ip) == ip {
                return true;
            }
            continue;
        }
        let domain = e_host
            .strip_prefix("*.")
            .unwrap_or(e_host)
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if domain.is_empty() {
            continue;
        }
        if host == domain
            || (host.len() > domain.len()
                && host.ends_with(&domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
        {
            return true;
        }
    }
    false
}

// ------------------------------------------------------------------------------------------------
// Errors

/// Building a client failed (a startup error): unreadable or invalid files, bad options.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read {key} '{}': {source}; check the path and its permissions", path.display())]
    ReadFile {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{key} '{}' contains no certificate (expected PEM '-----BEGIN CERTIFICATE-----' blocks)", path.display())]
    NoCertificates { key: String, path: PathBuf },
    #[error("{key} '{}' is not valid: {detail}", path.display())]
    InvalidFile {
        key: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{key} '{}' contains no private key (expected a PEM 'PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY' or 'ENCRYPTED PRIVATE KEY' block)", path.display())]
    NoPrivateKey { key: String, path: PathBuf },
    #[error("{key} '{}' is encrypted; set {passwd_key} to its password", path.display())]
    KeyNeedsPassword {
        key: String,
        path: PathBuf,
        passwd_key: String,
    },
    #[error("cannot decrypt {key} '{}': {detail}", path.display())]
    KeyDecrypt {
        key: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{set} is set but {missing} is not; a client certificate needs both")]
    MissingPair { set: String, missing: String },
    #[error(
        "client certificate rejected: {detail}; check that {crt_key} and {key_key} belong together"
    )]
    ClientCert {
        crt_key: String,
        key_key: String,
        detail: String,
    },
    #[error("no trusted CA certificates found in the system trust store{detail}; install the CA bundle (e.g. the ca-certificates package), point SSL_CERT_FILE/SSL_CERT_DIR at one, or set {key}.ca_file")]
    NoSystemRoots { key: String, detail: String },
    #[error("{key}.min_version {min} is higher than {key}.max_version {max}")]
    VersionRange {
        key: String,
        min: TlsVersion,
        max: TlsVersion,
    },
    #[error("'{name}' is not a valid TLS server name ({key})")]
    InvalidServerName { key: String, name: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Which step of a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// DNS resolution or TCP connect.
    Connect,
    /// TLS handshake with the endpoint.
    Tls,
    /// `net.connect_timeout` or the request deadline expired.
    Timeout,
    /// Read/write failure or an invalid HTTP response.
    Io,
    /// The connection closed before a complete response.
    Closed,
    /// Connecting to, or tunnelling through, the proxy.
    Proxy,
}

impl TransportErrorKind {
    /// Lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Tls => "tls",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Io => "io",
            TransportErrorKind::Closed => "closed",
            TransportErrorKind::Proxy => "proxy",
        }
    }
}

fn transport_prefix(kind: TransportErrorKind) -> &'static str {
    match kind {
        TransportErrorKind::Connect => "cannot connect to",
        TransportErrorKind::Tls => "TLS handshake failed with",
        TransportErrorKind::Timeout => "timeout talking to",
        TransportErrorKind::Io => "I/O error talking to",
        TransportErrorKind::Closed => "connection closed by",
        TransportErrorKind::Proxy => "proxy failure on the way to",
    }
}

/// A request failed before a complete response arrived.
#[derive(Debug, thiserror::Error)]
#[error("{} {host_port}: {source}", transport_prefix(*.kind))]
pub struct TransportError {
    pub kind: TransportErrorKind,
    /// The endpoint's `host:port`.
    pub host_port: String,
    #[source]
    pub source: BoxError,
}

/// A message with an optional underlying error, used as [`TransportError::source`].
#[derive(Debug)]
struct Cause {
    msg: String,
    source: Option<BoxError>,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A connect-phase failure before the endpoint's `host:port` is attached.
struct Failure {
    kind: TransportErrorKind,
    msg: String,
    source: Option<BoxError>,
}

impl Failure {
    fn new(kind: TransportErrorKind, msg: impl Into<String>, source: Option<BoxError>) -> Self {
        Failure {
            kind,
            msg: msg.into(),
            source,
        }
    }

    fn into_transport(self, host_port: &str) -> TransportError {
        TransportError {
            kind: self.kind,
            host_port: host_port.to_string(),
            source: Box::new(Cause {
                msg: self.msg,
                source: self.source,
            }),
        }
    }
}

/// A hint for a failed TLS handshake, from the rustls error inside the I/O error.
fn tls_message(e: &io::Error, what: &str) -> String {
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match rustls_err {
        Some(rustls::Error::InvalidCertificate(ce)) => match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "; the certificate is not signed by a trusted CA: set {what}.ca_file or {what}.ca_path (or {what}.verify off, for tests only)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "; the certificate does not name this host: set {what}.vhost to a name it carries, or {what}.verify_hostname off"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "; the certificate has expired (check the clock too)".to_string()
            }
            _ => String::new(),
        },
        Some(rustls::Error::PeerIncompatible(_)) | Some(rustls::Error::AlertReceived(_)) => {
            format!("; check {what}.min_version/{what}.max_version, {what}.ciphers (the server may accept none of them) and the client certificate")
        }
        _ => String::new(),
    };
    format!("{e}{hint}")
}

// ------------------------------------------------------------------------------------------------
// TLS configuration

/// aws-lc-rs with the suites of `ciphers` in the client's order (see [`suite_order`]).
fn provider(ciphers: &[CipherSuite]) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    let all = std::mem::take(&mut p.cipher_suites);
    p.cipher_suites = suite_order(ciphers)
        .into_iter()
        .filter_map(|id| all.iter().find(|s| s.suite() == id).copied())
        .collect();
    Arc::new(p)
}

/// `tls.verify off`: accepts any certificate (the handshake signature is still checked, it
/// proves nothing about identity but keeps the protocol intact).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `tls.verify_hostname off`: the chain is verified, only a name mismatch is forgiven.
#[derive(Debug)]
struct IgnoreHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|source| HttpError::ReadFile {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Certificates of a PEM file (or of a file holding one DER certificate).
fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let bytes = read_file(key, path)?;
    let invalid = |detail: String| HttpError::InvalidFile {
        key: key.to_string(),
        path: path.to_path_buf(),
        detail,
    };
    if !looks_like_pem(&bytes) {
        if bytes.first() == Some(&0x30) {
            return Ok(vec![CertificateDer::from(bytes)]);
        }
        return Err(HttpError::NoCertificates {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(HttpError::NoCertificates {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn load_roots(opts: &TlsOptions, prefix: &str) -> Result<RootCertStore, HttpError> {
    let mut store = RootCertStore::empty();
    if opts.ca_file.is_none() && opts.ca_path.is_none() {
        let native = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(native.certs);
        if store.is_empty() {
            let detail = if native.errors.is_empty() {
                String::new()
            } else {
                let errs: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
                format!(" ({})", errs.join("; "))
            };
            return Err(HttpError::NoSystemRoots {
                key: prefix.to_string(),
                detail,
            });
        }
        return Ok(store);
    }
    if let Some(file) = &opts.ca_file {
        let key = format!("{prefix}.ca_file");
        for cert in load_certs(&key, file)? {
            store.add(cert).map_err(|e| HttpError::InvalidFile {
                key: key.clone(),
                path: file.clone(),
                detail: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    if let Some(dir) = &opts.ca_path {
        let key = format!("{prefix}.ca_path");
        let entries = std::fs::read_dir(dir).map_err(|source| HttpError::ReadFile {
            key: key.clone(),
            path: dir.clone(),
            source,
        })?;
        let mut found = 0usize;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            // Files that are not PEM certificates (CRLs, READMEs, …) are skipped.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
                .filter_map(Result::ok)
                .collect();
            let (added, _) = store.add_parsable_certificates(certs);
            found += added;
        }
        if found == 0 {
            return Err(HttpError::NoCertificates {
                key,
                path: dir.clone(),
            });
        }
    }
    Ok(store)
}

/// One PEM block: label, RFC 1421 headers (`Proc-Type`, `DEK-Info`) and decoded contents.
struct PemBlock {
    label: String,
    headers: Vec<(String, String)>,
    der: Vec<u8>,
}

fn parse_pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            if b64.is_empty() {
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                    continue;
                }
            }
            b64.push_str(l);
        }
        if !closed {
            return Err(format!("'-----BEGIN {label}-----' without its END line"));
        }
        let der = base64_simd::STANDARD
            .decode_to_vec(b64.as_bytes())
            .map_err(|_| format!("invalid base64 in the {label} block"))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            der,
        });
    }
    Ok(blocks)
}

fn load_key(
    prefix: &str,
    path: &Path,
    passwd: Option<&str>,
) -> Result<PrivateKeyDer<'static>, HttpError> {
    let key = format!("{prefix}.key_file");
    let passwd_key = format!("{prefix}.key_passwd");
    let bytes = read_file(&key, path)?;
    let invalid = |detail: String| HttpError::InvalidFile {
        key: key.clone(),
        path: path.to_path_buf(),
        detail,
    };
    let decrypt = |der: &[u8]| -> Result<PrivateKeyDer<'static>, HttpError> {
        let Some(pw) = passwd else {
            return Err(HttpError::KeyNeedsPassword {
                key: key.clone(),
                path: path.to_path_buf(),
                passwd_key: passwd_key.clone(),
            });
        };
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
            .map_err(|e| invalid(format!("bad ENCRYPTED PRIVATE KEY: {e}")))?;
        let doc = info
            .decrypt(pw.as_bytes())
            .map_err(|e| HttpError::KeyDecrypt {
                key: key.clone(),
                path: path.to_path_buf(),
                detail: format!(
                "{e}; check {passwd_key} (PBES2 with PBKDF2 or scrypt and AES-CBC is supported)"
            ),
            })?;
        Ok(PrivateKeyDer::Pkcs8(doc.as_bytes().to_vec().into()))
    };
    if !looks_like_pem(&bytes) {
        // A DER key: plain PKCS#8/PKCS#1/SEC1, or encrypted PKCS#8.
        if let Ok(k) = PrivateKeyDer::try_from(bytes.clone()) {
            return Ok(k);
        }
        if pkcs8::EncryptedPrivateKeyInfo::try_from(bytes.as_slice()).is_ok() {
            return decrypt(&bytes);
        }
        return Err(HttpError::NoPrivateKey {
            key,
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let blocks = parse_pem_blocks(&text).map_err(invalid)?;
    for b in blocks {
        let encrypted_legacy = b
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"));
        let der = b.der;
        match b.label.as_str() {
            "PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs8(der.into())),
            "ENCRYPTED PRIVATE KEY" => return decrypt(&der),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" if encrypted_legacy => {
                let Some(pw) = passwd else {
                    return Err(HttpError::KeyNeedsPassword {
                        key: key.clone(),
                        path: path.to_path_buf(),
                        passwd_key: passwd_key.clone(),
                    });
                };
                let dek_info = b
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                let plain =
                    decrypt_legacy_pem(dek_info, pw.as_bytes(), &der).map_err(|detail| {
                        HttpError::KeyDecrypt {
                            key: key.clone(),
                            path: path.to_path_buf(),
                            detail: format!("{detail}; check {passwd_key}, or convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {} -out new.pem`", path.display()),
                        }
                    })?;
                return Ok(if b.label == "RSA PRIVATE KEY" {
                    PrivateKeyDer::Pkcs1(plain.into())
                } else {
                    PrivateKeyDer::Sec1(plain.into())
                });
            }
            "RSA PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs1(der.into())),
            "EC PRIVATE KEY" => return Ok(PrivateKeyDer::Sec1(der.into())),
            _ => continue,
        }
    }
    Err(HttpError::NoPrivateKey {
        key,
        path: path.to_path_buf(),
    })
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration (legacy PEM encryption).
fn evp_bytes_to_key(pass: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut out = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(pass);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

/// Decrypt a legacy OpenSSL-encrypted PEM body (`Proc-Type: 4,ENCRYPTED`,
/// `DEK-Info: AES-256-CBC,<iv>`). AES-128/192/256-CBC are supported.
fn decrypt_legacy_pem(dek_info: &str, pass: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    use aws_lc_rs::cipher::{
        DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_192, AES_256,
    };
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| format!("malformed DEK-Info header '{dek_info}'"))?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let (alg, key_len) = match cipher.as_str() {
        "AES-128-CBC" => (&AES_128, 16),
        "AES-192-CBC" => (&AES_192, 24),
        "AES-256-CBC" => (&AES_256, 32),
        other => {
            return Err(format!(
                "legacy PEM encryption with {other} is not supported (AES-128/192/256-CBC are)"
            ))
        }
    };
    let iv_hex = iv_hex.trim();
    let iv: Vec<u8> = (0..iv_hex.len() / 2)
        .map(|i| u8::from_str_radix(iv_hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("malformed IV in DEK-Info header '{dek_info}'"))?;
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| format!("the IV in DEK-Info header '{dek_info}' is not 16 bytes"))?;
    let key = evp_bytes_to_key(pass, &iv[..8], key_len);
    let unbound = UnboundCipherKey::new(alg, &key).map_err(|_| "bad key".to_string())?;
    let dec = PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| "bad key".to_string())?;
    let mut buf = data.to_vec();
    let plain = dec
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(|_| "wrong password (decryption failed)".to_string())?;
    if plain.first() != Some(&0x30) {
        return Err("wrong password (decrypted data is not a key)".to_string());
    }
    Ok(plain.to_vec())
}

/// A TLS client configuration plus the server name to present and verify.
#[derive(Clone)]
struct TlsSetup {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

/// Build the rustls configuration for `opts`; `prefix` (`tls` or `tls.proxy`) names the keys in
/// errors; `host` is the name verified unless `opts.vhost` is set.
fn build_tls(opts: &TlsOptions, prefix: &str, host: &str) -> Result<TlsSetup, HttpError> {
    let provider = provider(&opts.ciphers);
    let min = opts.min_version.unwrap_or(TlsVersion::Tls12);
    let max = opts.max_version.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err(HttpError::VersionRange {
            key: prefix.to_string(),
            min,
            max,
        });
    }
    let versions: Vec<_> = [TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| *v >= min && *v <= max)
        .map(TlsVersion::rustls)
        .collect();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let verifier: Arc<dyn ServerCertVerifier> = if !opts.verify {
        // Unused, but a bad file is still a startup error (spec §1.4).
        if opts.ca_file.is_some() || opts.ca_path.is_some() {
            load_roots(opts, prefix)?;
        }
        Arc::new(AcceptAnyCert(provider.clone()))
    } else {
        let roots = load_roots(opts, prefix)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("certificate verifier: {e}")))?;
        if opts.verify_hostname {
            webpki
        } else {
            Arc::new(IgnoreHostname(webpki))
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let crt_key = format!("{prefix}.crt_file");
    let key_key = format!("{prefix}.key_file");
    let config = match (&opts.crt_file, &opts.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(HttpError::MissingPair {
                set: crt_key,
                missing: key_key,
            })
        }
        (None, Some(_)) => {
            return Err(HttpError::MissingPair {
                set: key_key,
                missing: crt_key,
            })
        }
        (Some(crt), Some(key_path)) => {
            let certs = load_certs(&crt_key, crt)?;
            let key = load_key(prefix, key_path, opts.key_passwd.as_deref())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| HttpError::ClientCert {
                    crt_key,
                    key_key,
                    detail: e.to_string(),
                })?
        }
    };
    let name = opts.vhost.as_deref().unwrap_or(host);
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|_| HttpError::InvalidServerName {
            key: if opts.vhost.is_some() {
                format!("{prefix}.vhost")
            } else {
                "host".to_string()
            },
            name: name.to_string(),
        })?;
    Ok(TlsSetup {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

// ------------------------------------------------------------------------------------------------
// Connector

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type BoxIo = Box<dyn Io>;

struct ProxyHop {
    url: ProxyUrl,
    tls: Option<TlsSetup>,
    /// `Basic …` when the proxy URL has user info.
    auth: Option<HeaderValue>,
}

struct Connector {
    target: Endpoint,
    tls: Option<TlsSetup>,
    proxy: Option<ProxyHop>,
    connect_timeout: Duration,
    source_address: Option<IpAddr>,
}

/// A fresh connection: the stream and whether requests go in absolute form to an HTTP proxy.
struct Connected {
    io: BoxIo,
    absolute_form: bool,
}

async fn tcp_connect(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve '{host}': {e}")))?
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            match source {
                Some(s) => {
                    format!("'{host}' has no address of the family of net.source_address {s}")
                }
                None => format!("'{host}' resolved to no address"),
            },
        ));
    }
    let mut last = None;
    for addr in addrs {
        let attempt = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(src) = source {
                socket.bind(SocketAddr::new(src, 0)).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot bind net.source_address {src}: {e}"),
                    )
                })?;
            }
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(stream)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            // Name the address tried when it is not already the host.
            Err(e) if host.parse::<IpAddr>().is_err() => {
                last = Some(io::Error::new(e.kind(), format!("{addr}: {e}")))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one address"))
}

/// Send `CONNECT authority` and read the proxy's answer.
async fn connect_tunnel(io: &mut BoxIo, authority: &str, proxy: &ProxyHop) -> Result<(), Failure> {
    use TransportErrorKind::Proxy;
    let url = &proxy.url;
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.auth {
        head.push_str("Proxy-Authorization: ");
        head.push_str(auth.to_str().unwrap_or_default());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let io_fail = |e: io::Error| {
        Failure::new(
            Proxy,
            format!("proxy {url}: CONNECT failed: {e}"),
            Some(Box::new(e)),
        )
    };
    io.write_all(head.as_bytes()).await.map_err(io_fail)?;
    io.flush().await.map_err(io_fail)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = io.read(&mut chunk).await.map_err(io_fail)?;
        if n == 0 {
            return Err(Failure::new(
                Proxy,
                format!("proxy {url} closed the connection in answer to CONNECT {authority}"),
                None,
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_PROXY_HEAD {
            return Err(Failure::new(
                Proxy,
                format!("proxy {url} sent an over-long answer to CONNECT"),
                None,
            ));
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let status_line = text.lines().next().unwrap_or_default().trim().to_string();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if !status_line.starts_with("HTTP/1.") || status == 0 {
        return Err(Failure::new(
            Proxy,
            format!(
                "proxy {url} answered CONNECT with something that is not HTTP: '{status_line}'"
            ),
            None,
        ));
    }
    match status {
        200..=299 if end == buf.len() => Ok(()),
        200..=299 => Err(Failure::new(
            Proxy,
            format!("proxy {url} sent data before the tunnel was used"),
            None,
        )),
        407 if proxy.auth.is_some() => Err(Failure::new(
            Proxy,
            format!("proxy {url} rejected the credentials of the proxy URL ({status_line})"),
            None,
        )),
        407 => Err(Failure::new(
            Proxy,
            format!("proxy {url} requires authentication ({status_line}); put user:password@ in the proxy URL"),
            None,
        )),
        _ => Err(Failure::new(
            Proxy,
            format!("proxy {url} refused CONNECT {authority}: {status_line}"),
            None,
        )),
    }
}

impl Connector {
    async fn connect(&self) -> Result<Connected, Failure> {
        match tokio::time::timeout(self.connect_timeout, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                TransportErrorKind::Timeout,
                format!(
                    "no connection within {} (net.connect_timeout, which includes the proxy and the TLS handshake)",
                    crate::human_duration(self.connect_timeout)
                ),
                None,
            )),
        }
    }

    async fn connect_inner(&self) -> Result<Connected, Failure> {
        let Some(proxy) = &self.proxy else {
            let tcp = tcp_connect(&self.target.host, self.target.port, self.source_address)
                .await
                .map_err(|e| {
                    Failure::new(
                        TransportErrorKind::Connect,
                        format!("{e}; check the endpoint, DNS and the network"),
                        Some(Box::new(e)),
                    )
                })?;
            return self.wrap_tls(Box::new(tcp)).await;
        };
        let url = &proxy.url;
        let tcp = tcp_connect(&url.host, url.port, self.source_address)
            .await
            .map_err(|e| {
                Failure::new(
                    TransportErrorKind::Proxy,
                    format!("cannot connect to proxy {url}: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        let mut io: BoxIo = Box::new(tcp);
        if let Some(tls) = &proxy.tls {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), io)
                .await
                .map_err(|e| {
                    Failure::new(
                        TransportErrorKind::Proxy,
                        format!(
                            "TLS handshake with proxy {url} failed: {}",
                            tls_message(&e, "tls.proxy")
                        ),
                        Some(Box::new(e)),
                    )
                })?;
            io = Box::new(stream);
        }
        if self.tls.is_none() {
            // Plain HTTP target: requests go to the proxy in absolute form.
            return Ok(Connected {
                io,
                absolute_form: true,
            });
        }
        connect_tunnel(&mut io, &self.target.host_port(), proxy).await?;
        self.wrap_tls(io).await
    }

    async fn wrap_tls(&self, io: BoxIo) -> Result<Connected, Failure> {
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                io,
                absolute_form: false,
            });
        };
        let stream = tls
            .connector
            .connect(tls.server_name.clone(), io)
            .await
            .map_err(|e| {
                Failure::new(
                    TransportErrorKind::Tls,
                    tls_message(&e, "tls"),
                    Some(Box::new(e)),
                )
            })?;
        Ok(Connected {
            io: Box::new(stream),
            absolute_form: false,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Client and pool

struct PooledConn {
    sender: http1::SendRequest<Full<Bytes>>,
    uses: u32,
    idle_since: Instant,
    absolute_form: bool,
}

struct Inner {
    endpoint: Endpoint,
    host_port: String,
    connector: Connector,
    idle: Mutex<Vec<PooledConn>>,
    limit: Option<Arc<Semaphore>>,
    net: NetOptions,
    deadline: Duration,
    /// `Proxy-Authorization` for requests sent in absolute form to an HTTP proxy.
    proxy_auth: Option<HeaderValue>,
    reaper_started: AtomicBool,
}

/// A pooled HTTP/1.1 client for one endpoint. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.inner.endpoint.url())
            .field(
                "proxy",
                &self
                    .inner
                    .connector
                    .proxy
                    .as_ref()
                    .map(|p| p.url.to_string()),
            )
            .finish()
    }
}

enum ExchangeError {
    /// The request never left: the connection was closed or not ready (retry elsewhere).
    NotSent(Box<http::Request<Full<Bytes>>>, hyper::Error),
    Hyper(hyper::Error),
    Body(BoxError),
}

async fn exchange(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<http::Response<Bytes>, ExchangeError> {
    if let Err(e) = sender.ready().await {
        return Err(ExchangeError::NotSent(Box::new(req), e));
    }
    let resp = sender
        .try_send_request(req)
        .await
        .map_err(|mut e| match e.take_message() {
            Some(req) => ExchangeError::NotSent(Box::new(req), e.into_error()),
            None => ExchangeError::Hyper(e.into_error()),
        })?;
    let (parts, body) = resp.into_parts();
    let collected = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(ExchangeError::Body)?;
    Ok(http::Response::from_parts(parts, collected.to_bytes()))
}

fn hyper_failure(e: hyper::Error) -> Failure {
    let (kind, msg) = if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        (
            TransportErrorKind::Closed,
            format!("the connection closed before a complete response ({e})"),
        )
    } else if e.is_parse() {
        (
            TransportErrorKind::Io,
            format!("invalid HTTP response ({e}); check the endpoint scheme (http:// or https://) and port"),
        )
    } else {
        let detail = match e.source() {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        };
        (TransportErrorKind::Io, detail)
    };
    Failure::new(kind, msg, Some(Box::new(e)))
}

fn body_failure(e: BoxError) -> Failure {
    if e.is::<http_body_util::LengthLimitError>() {
        return Failure::new(
            TransportErrorKind::Io,
            format!("response body larger than {MAX_RESPONSE_BYTES} bytes"),
            Some(e),
        );
    }
    match e.downcast::<hyper::Error>() {
        Ok(h) => hyper_failure(*h),
        Err(e) => Failure::new(TransportErrorKind::Io, e.to_string(), Some(e)),
    }
}

fn says_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            .unwrap_or(false)
    })
}

impl HttpClient {
    /// Client for one endpoint. `tls` is ignored for `http://` endpoints (the caller warns).
    /// CA, certificate and key files are loaded now, so a bad file is a startup error naming
    /// the file. `proxy` is the `proxy` key or [`proxy_from_env`]'s answer.
    pub fn new(
        endpoint: &Endpoint,
        tls: &TlsOptions,
        net: &NetOptions,
        proxy: Option<ProxyOptions>,
    ) -> Result<HttpClient, HttpError> {
        let target_tls = if endpoint.is_tls() {
            Some(build_tls(tls, "tls", &endpoint.host)?)
        } else {
            None
        };
        let mut proxy_auth = None;
        let proxy = match proxy {
            None => None,
            Some(p) => {
                let tls = if p.url.is_tls() {
                    Some(build_tls(&p.tls, "tls.proxy", &p.url.host)?)
                } else {
                    None
                };
                let auth = p.url.username.as_ref().map(|u| {
                    let raw = format!("{u}:{}", p.url.password.as_deref().unwrap_or(""));
                    let b64 = base64_simd::STANDARD.encode_to_string(raw.as_bytes());
                    let mut v = HeaderValue::from_str(&format!("Basic {b64}"))
                        .expect("base64 is a valid header value");
                    v.set_sensitive(true);
                    v
                });
                if !endpoint.is_tls() {
                    proxy_auth = auth.clone();
                }
                Some(ProxyHop {
                    url: p.url,
                    tls,
                    auth,
                })
            }
        };
        let limit = (net.max_worker_connections > 0)
            .then(|| Arc::new(Semaphore::new(net.max_worker_connections)));
        Ok(HttpClient {
            inner: Arc::new(Inner {
                endpoint: endpoint.clone(),
                host_port: endpoint.host_port(),
                connector: Connector {
                    target: endpoint.clone(),
                    tls: target_tls,
                    proxy,
                    connect_timeout: net.connect_timeout,
                    source_address: net.source_address,
                },
                idle: Mutex::new(Vec::new()),
                limit,
                net: net.clone(),
                deadline: net
                    .io_timeout
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_REQUEST_DEADLINE),
                proxy_auth,
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Number of idle pooled connections (for diagnostics and tests).
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.lock().expect("pool lock").len()
    }

    /// Send one request (full body in memory) and return the full response. The caller sets
    /// method, path and the headers it signs, including `Host`; the client adds only
    /// `Content-Length` (hyper), `Connection: close` on a connection's last use and, for a
    /// plain-HTTP target behind an HTTP proxy, the absolute URI and `Proxy-Authorization`.
    /// Any failure before a complete response is a [`TransportError`] naming `host:port`.
    pub async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let inner = &self.inner;
        self.start_reaper();
        let _permit = match &inner.limit {
            Some(sem) => Some(
                sem.clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(&inner.endpoint.host_header()) {
                parts.headers.insert(HOST, v);
            }
        }
        let caller_close = says_close(&parts.headers);
        // Always origin-form on the wire (absolute form only towards an HTTP proxy).
        let origin_uri: http::Uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let mut req = http::Request::from_parts(parts, Full::new(body));
        let deadline = Instant::now() + inner.deadline;
        loop {
            let (mut conn, reused) = match self.checkout() {
                Some(c) => (c, true),
                None => {
                    let c = inner
                        .connector
                        .connect()
                        .await
                        .map_err(|f| f.into_transport(&inner.host_port))?;
                    (self.handshake(c).await?, false)
                }
            };
            conn.uses += 1;
            let max = inner.net.keepalive_max_recycle;
            let last = caller_close || !inner.net.keepalive || (max > 0 && conn.uses >= max);
            if last {
                req.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            } else if !caller_close {
                req.headers_mut().remove(CONNECTION);
            }
            if conn.absolute_form {
                *req.uri_mut() = self.absolute_uri(&origin_uri);
                if let Some(auth) = &inner.proxy_auth {
                    req.headers_mut().insert(PROXY_AUTHORIZATION, auth.clone());
                }
            } else {
                *req.uri_mut() = origin_uri.clone();
                req.headers_mut().remove(PROXY_AUTHORIZATION);
            }
            let result = tokio::time::timeout_at(deadline, exchange(&mut conn.sender, req)).await;
            let failure = match result {
                Err(_) => Failure::new(
                    TransportErrorKind::Timeout,
                    format!(
                        "no complete response within {} (net.io_timeout; unset or 0 means {}); the request may or may not have been processed",
                        crate::human_duration(inner.deadline),
                        crate::human_duration(DEFAULT_REQUEST_DEADLINE)
                    ),
                    None,
                ),
                Ok(Ok(resp)) => {
                    if !last && !says_close(resp.headers()) && !conn.sender.is_closed() {
                        conn.idle_since = Instant::now();
                        inner.idle.lock().expect("pool lock").push(conn);
                    }
                    return Ok(resp);
                }
                Ok(Err(ExchangeError::NotSent(back, _))) if reused => {
                    // A pooled connection the server had closed: try a fresh one.
                    req = *back;
                    continue;
                }
                Ok(Err(ExchangeError::NotSent(_, e))) | Ok(Err(ExchangeError::Hyper(e))) => {
                    hyper_failure(e)
                }
                Ok(Err(ExchangeError::Body(e))) => body_failure(e),
            };
            return Err(failure.into_transport(&inner.host_port));
        }
    }

    fn absolute_uri(&self, origin: &http::Uri) -> http::Uri {
        let path = origin.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let s = format!("{}{path}", self.inner.endpoint.url());
        s.parse().unwrap_or_else(|_| origin.clone())
    }

    /// An idle connection that is still open and not expired (LIFO: the warmest first).
    fn checkout(&self) -> Option<PooledConn> {
        let inner = &self.inner;
        if !inner.net.keepalive {
            return None;
        }
        let mut idle = inner.idle.lock().expect("pool lock");
        let now = Instant::now();
        while let Some(c) = idle.pop() {
            if c.sender.is_closed()
                || now.duration_since(c.idle_since) >= inner.net.keepalive_idle_timeout
            {
                continue;
            }
            return Some(c);
        }
        None
    }

    async fn handshake(&self, c: Connected) -> Result<PooledConn, TransportError> {
        let (sender, conn) = http1::Builder::new()
            .handshake::<_, Full<Bytes>>(TokioIo::new(c.io))
            .await
            .map_err(|e| hyper_failure(e).into_transport(&self.inner.host_port))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
        Ok(PooledConn {
            sender,
            uses: 0,
            idle_since: Instant::now(),
            absolute_form: c.absolute_form,
        })
    }

    /// Close idle connections past `keepalive_idle_timeout` even when no request comes.
    fn start_reaper(&self) {
        let inner = &self.inner;
        if !inner.net.keepalive || inner.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let period = (inner.net.keepalive_idle_timeout / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(5));
        let weak: Weak<Inner> = Arc::downgrade(inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let now = Instant::now();
                let timeout = inner.net.keepalive_idle_timeout;
                inner.idle.lock().expect("pool lock").retain(|c| {
                    !c.sender.is_closed() && now.duration_since(c.idle_since) < timeout
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse(s, None).unwrap()
    }

    #[test]
    fn tls_version_parse() {
        assert_eq!(TlsVersion::parse("TLSv1.2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::parse("tlsv1.3"), Some(TlsVersion::Tls13));
        assert_eq!(TlsVersion::parse("1.3"), Some(TlsVersion::Tls13));
        assert_eq!(TlsVersion::parse("TLSv1_2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::parse("TLSv1.1"), None);
        assert!(TlsVersion::Tls12 < TlsVersion::Tls13);
    }

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains(ip("10.0.0.0"), 8, ip("10.1.2.3")));
        assert!(!cidr_contains(ip("10.0.0.0"), 8, ip("11.1.2.3")));
        assert!(cidr_contains(ip("0.0.0.0"), 0, ip("1.2.3.4")));
        assert!(cidr_contains(ip("127.0.0.1"), 32, ip("127.0.0.1")));
        assert!(!cidr_contains(ip("127.0.0.1"), 33, ip("127.0.0.1")));
        assert!(cidr_contains(ip("fd00::"), 8, ip("fd12::1")));
        assert!(!cidr_contains(ip("fd00::"), 8, ip("10.0.0.1")));
    }

    #[test]
    fn no_proxy_entries() {
        let t = ep("kinesis.us-east-1.amazonaws.com");
        assert!(no_proxy_matches("*", &t));
        assert!(no_proxy_matches("amazonaws.com", &t));
        assert!(no_proxy_matches(".amazonaws.com", &t));
        assert!(no_proxy_matches("*.amazonaws.com", &t));
        assert!(no_proxy_matches("foo, AMAZONAWS.COM.", &t));
        assert!(no_proxy_matches("kinesis.us-east-1.amazonaws.com:443", &t));
        assert!(!no_proxy_matches(
            "kinesis.us-east-1.amazonaws.com:8443",
            &t
        ));
        assert!(!no_proxy_matches("zonaws.com", &t));
        assert!(!no_proxy_matches("", &t));
        let v6 = ep("[fd00::1]:8443");
        assert!(no_proxy_matches("[fd00::1]", &v6));
        assert!(no_proxy_matches("fd00::1", &v6));
        assert!(no_proxy_matches("[fd00::1]:8443", &v6));
        assert!(no_proxy_matches("fd00::/8", &v6));
        assert!(!no_proxy_matches("fe00::/8", &v6));
    }

    #[test]
    fn pem_blocks_with_headers() {
        let text = "junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_pem_blocks(text).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "RSA PRIVATE KEY");
        assert_eq!(blocks[0].headers.len(), 2);
        assert_eq!(blocks[0].der, vec![0, 1, 2]);
        assert!(parse_pem_blocks("-----BEGIN X-----\nAAEC\n").is_err());
    }

    #[test]
    fn transport_error_message_names_host_port() {
        let f = Failure::new(TransportErrorKind::Timeout, "no response", None);
        let e = f.into_transport("example.com:443");
        assert_eq!(
            e.to_string(),
            "timeout talking to example.com:443: no response"
        );
        assert_eq!(e.kind.as_str(), "timeout");
    }

    #[test]
    fn options_debug_masks_password() {
        let t = TlsOptions {
            key_passwd: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
