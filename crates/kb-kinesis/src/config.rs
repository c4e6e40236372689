//! The `kinesis_streams` key table (spec §1.1–1.3) and its validation (§1.4) into [`Settings`].
//! Everything a real start checks, except the network, is checked here, so `--dry-run` finds it.

use std::path::PathBuf;
use std::time::Duration;

use kb_aws::endpoint::{Endpoint, ProxyUrl};
use kb_aws::http::{NetOptions, TlsOptions, TlsVersion};
use kb_config::{ConfigError, KeySpec, KeyType, Props};

use crate::accessor::RecordAccessor;
use crate::compress::Compression;
use crate::time_format::TimeFormat;

const fn key(
    name: &'static str,
    ty: KeyType,
    default: Option<&'static str>,
    description: &'static str,
) -> KeySpec {
    KeySpec::new(name, ty, default, description)
}

use KeyType::{Bool, Size, Str, Time};

/// Every key the output accepts besides the engine's generic ones.
pub const KEYS: &[KeySpec] = &[
    key("region", Str, None, "The AWS region of your Kinesis stream"),
    key("stream", Str, None, "Kinesis stream name"),
    key("time_key", Str, None, "Add the timestamp to the record under this key. By default the timestamp from Fluent Bit will not be added to records sent to Kinesis."),
    key("time_key_format", Str, Some("%Y-%m-%dT%H:%M:%S"), "strftime compliant format string for the timestamp; for example, the default is '%Y-%m-%dT%H:%M:%S'. Supports millisecond precision with '%3N' and supports nanosecond precision with '%9N' and '%L'; for example, adding '%3N' to support millisecond '%Y-%m-%dT%H:%M:%S.%3N'. This option is used with time_key."),
    key("log_key", Str, None, "By default, the whole log record will be sent to Kinesis. If you specify a key name with this option, then only the value of that key will be sent to Kinesis. For example, if you are using the Fluentd Docker log driver, you can specify `log_key log` and only the log message will be sent to Kinesis."),
    key("role_arn", Str, None, "ARN of an IAM role to assume (ex. for cross account access)."),
    key("external_id", Str, None, "Specify an external ID for the STS API, can be used with the role_arn parameter if your role requires an external ID."),
    key("endpoint", Str, None, "Specify a custom endpoint for the Kinesis API (host, host:port, https://host[:port] or http://host[:port] for local emulators)."),
    key("sts_endpoint", Str, None, "Custom endpoint for the STS API."),
    key("auto_retry_requests", Bool, Some("true"), "Immediately retry failed requests to AWS services once. This option does not affect the normal Fluent Bit retry mechanism with backoff. Instead, it enables an immediate retry with no delay for networking errors, which may help improve throughput when there are transient/random networking issues."),
    key("profile", Str, None, "AWS Profile name. AWS Profiles can be configured with AWS CLI and are usually stored in $HOME/.aws/ directory."),
    key("simple_aggregation", Bool, Some("false"), "Enable simple aggregation to combine multiple records into single API calls. This reduces the number of requests and can improve throughput for small records."),
    key("compression", Str, None, "Compression type for Kinesis records: gzip, zstd or snappy."),
    key("partition_key", Str, None, "(kinesis-bit) Record accessor ($field, $a['b'], $a[0]) giving the partition key; a random key is used when it is missing."),
    key("append_newline", Bool, Some("true"), "(kinesis-bit) Append a newline to each record."),
    key("aggregation", Bool, Some("false"), "(kinesis-bit) Aggregate records in the KPL format."),
    key("max_record_size", Size, Some("1048576"), "(kinesis-bit) Largest record (Data plus partition key) in bytes, 1024 to 10485760."),
    key("oversize_policy", KeyType::Enum(&["drop", "truncate"]), Some("drop"), "(kinesis-bit) What to do with records over max_record_size: drop or truncate."),
    key("healthcheck", Bool, Some("false"), "(kinesis-bit) Call DescribeStreamSummary at startup and fail when the stream is not usable."),
    key("proxy", Str, None, "(kinesis-bit) http://[user:pass@]host:port or https:// proxy for Kinesis and STS traffic."),
    key("port", KeyType::Int, Some("443"), "TCP port of the Kinesis endpoint (80 for http:// endpoints)."),
    key("host", Str, None, "Generic key: accepted, no effect."),
    key("ipv6", Bool, None, "Generic key: accepted, no effect."),
    key("tls", Bool, None, "Generic key: accepted, no effect; the endpoint's scheme decides."),
    key("tls.verify", Bool, Some("on"), "Verify the server certificate."),
    key("tls.verify_hostname", Bool, Some("on"), "Check that the certificate names the host."),
    key("tls.ca_file", Str, None, "CA certificates (PEM) that replace the system trust store."),
    key("tls.ca_path", Str, None, "Directory of CA certificates (PEM) that replace the system trust store."),
    key("tls.crt_file", Str, None, "Client certificate (PEM)."),
    key("tls.key_file", Str, None, "Client private key (PEM)."),
    key("tls.key_passwd", Str, None, "Password of an encrypted client private key."),
    key("tls.vhost", Str, None, "TLS server name (SNI) and the name verified."),
    key("tls.debug", KeyType::Int, Some("1"), "TLS debug verbosity (diagnostics appear at log_level debug)."),
    key("tls.min_version", KeyType::Enum(&["tlsv1.2", "tlsv1.3"]), None, "Lowest TLS version: TLSv1.2 or TLSv1.3."),
    key("tls.max_version", KeyType::Enum(&["tlsv1.2", "tlsv1.3"]), None, "Highest TLS version: TLSv1.2 or TLSv1.3."),
    key("tls.ciphers", Str, None, "Accepted, no effect (rustls chooses its cipher suites)."),
    key("tls.proxy.ca_file", Str, None, "CA certificates for an https:// proxy."),
    key("tls.proxy.ca_path", Str, None, "CA certificate directory for an https:// proxy."),
    key("tls.proxy.verify", Bool, Some("on"), "Verify an https:// proxy's certificate."),
    key("tls.proxy.verify_hostname", Bool, Some("on"), "Check that an https:// proxy's certificate names it."),
    key("tls.windows.certstore_name", Str, None, "Windows only: accepted, no effect."),
    key("tls.windows.use_enterprise_store", Bool, None, "Windows only: accepted, no effect."),
    key("net.keepalive", Bool, Some("on"), "Reuse connections."),
    key("net.keepalive_idle_timeout", Time, Some("30"), "Close connections idle this long (seconds)."),
    key("net.keepalive_max_recycle", KeyType::Int, Some("2000"), "Requests per connection before it is replaced."),
    key("net.connect_timeout", Time, Some("10"), "Seconds to connect, including the TLS handshake."),
    key("net.connect_timeout_log_error", Bool, Some("true"), "Log connect timeouts as errors."),
    key("net.io_timeout", Time, Some("0"), "Seconds a request may take; 0 still means a 60 s deadline."),
    key("net.source_address", Str, None, "Local address to connect from."),
    key("net.tcp_keepalive", Bool, Some("off"), "TCP keepalive probes."),
    key("net.tcp_keepalive_time", KeyType::SignedInt, Some("-1"), "TCP keepalive idle time."),
    key("net.tcp_keepalive_interval", KeyType::SignedInt, Some("-1"), "TCP keepalive interval."),
    key("net.tcp_keepalive_probes", KeyType::SignedInt, Some("-1"), "TCP keepalive probes."),
    key("net.dns.mode", Str, None, "Accepted, no effect."),
    key("net.dns.resolver", Str, None, "Accepted, no effect."),
    key("net.dns.prefer_ipv4", Bool, Some("false"), "Accepted, no effect."),
    key("net.max_worker_connections", KeyType::Int, Some("0"), "Connections per worker (0 = unlimited)."),
    key("net.proxy_env_ignore", Bool, Some("off"), "Ignore HTTP_PROXY/HTTPS_PROXY/NO_PROXY."),
    key("storage.total_limit_size", Size, None, "Cap on this output's filesystem backlog."),
];

/// What to do with a record over `max_record_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizePolicy {
    Drop,
    Truncate,
}

/// How records are packed into Kinesis records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    None,
    Simple,
    Kpl,
}

/// The validated configuration of one `kinesis_streams` instance.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub region: String,
    pub stream: String,
    pub time_key: Option<String>,
    pub time_key_format: String,
    pub log_key: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub endpoint: Endpoint,
    pub sts_endpoint: Option<Endpoint>,
    pub auto_retry_requests: bool,
    pub profile: Option<String>,
    pub aggregation: Aggregation,
    pub compression: Option<Compression>,
    pub partition_key: Option<String>,
    pub append_newline: bool,
    pub max_record_size: usize,
    pub oversize_policy: OversizePolicy,
    pub healthcheck: bool,
    pub proxy: Option<ProxyUrl>,
    pub proxy_env_ignore: bool,
    pub tls: TlsOptions,
    pub proxy_tls: TlsOptions,
    pub net: NetOptions,
    pub escape_unicode: bool,
    /// Startup warnings to log (unknown time conversions, keys without effect, ...).
    pub warnings: Vec<String>,
}

/// Kinesis stream names: 1–128 characters of `A-Z a-z 0-9 _ . -`.
fn valid_stream_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn tls_version(p: &Props, key: &str) -> Option<TlsVersion> {
    match p.str(key).map(|s| s.to_ascii_lowercase()) {
        Some(v) if v == "tlsv1.2" => Some(TlsVersion::Tls12),
        Some(v) if v == "tlsv1.3" => Some(TlsVersion::Tls13),
        _ => None,
    }
}

/// Validate `p` into [`Settings`], reporting every problem with its location.
pub fn parse(p: &Props, escape_unicode: bool) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut check = |r: Result<(), ConfigError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    // Typed getters were validated by the key table already; the defaults are the fallbacks.
    let flag = |k: &str, d: bool| p.bool(k).ok().flatten().unwrap_or(d);
    let opt = |k: &str| p.str(k).map(str::to_string);

    let region = p.str("region").unwrap_or("").to_string();
    if p.str("region").is_none() {
        check(Err(p.error("region", "'region' is a required field")));
    } else if region.is_empty() || region.contains(char::is_whitespace) {
        check(Err(p.error(
            "region",
            format!("invalid region '{region}': it must be non-empty and contain no whitespace"),
        )));
    }
    let stream = p.str("stream").unwrap_or("").to_string();
    if p.str("stream").is_none() {
        check(Err(p.error("stream", "'stream' is a required field")));
    } else if !valid_stream_name(&stream) {
        check(Err(p.error("stream", format!("invalid stream name '{stream}': use 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'"))));
    }

    let time_key = opt("time_key");
    let log_key = opt("log_key");
    if time_key.is_some() && log_key.is_some() {
        check(Err(p.error(
            "time_key",
            "'time_key' and 'log_key' can not be used together",
        )));
    }
    let time_key_format = p
        .str("time_key_format")
        .unwrap_or("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (_, unknown) = TimeFormat::compile(&time_key_format);
    for w in unknown {
        warnings.push(format!("time_key_format: {w}"));
    }

    let compression = match p.str("compression") {
        None => None,
        Some(c) => match c.parse::<Compression>() {
            Ok(c) => Some(c),
            Err(e) => {
                check(Err(p.error("compression", e.to_string())));
                None
            }
        },
    };

    let port_key = match p.get("port") {
        Some(prop) if prop.location != kb_config::Location::Default => {
            match prop.value.trim().parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
                _ => {
                    check(Err(p.error(
                        "port",
                        format!(
                            "Invalid port number: {}. Must be between 1 and 65535",
                            prop.value
                        ),
                    )));
                    None
                }
            }
        }
        _ => None,
    };
    let endpoint = match p.str("endpoint") {
        Some(e) => Endpoint::parse(e, port_key).unwrap_or_else(|err| {
            check(Err(
                p.error("endpoint", format!("invalid endpoint '{e}': {err}"))
            ));
            Endpoint::default_for("kinesis", &region, port_key)
        }),
        None => Endpoint::default_for("kinesis", &region, port_key),
    };
    let sts_endpoint = p
        .str("sts_endpoint")
        .and_then(|e| match Endpoint::parse(e, None) {
            Ok(ep) => Some(ep),
            Err(err) => {
                check(Err(p.error(
                    "sts_endpoint",
                    format!("invalid sts_endpoint '{e}': {err}"),
                )));
                None
            }
        });
    let proxy = p.str("proxy").and_then(|s| match ProxyUrl::parse(s) {
        Ok(u) => Some(u),
        Err(err) => {
            check(Err(p.error("proxy", format!("invalid proxy: {err}"))));
            None
        }
    });

    let max_record_size = p
        .size("max_record_size")
        .ok()
        .flatten()
        .unwrap_or(1_048_576);
    if !(1024..=10_485_760).contains(&max_record_size) {
        check(Err(p.error("max_record_size", format!("max_record_size {max_record_size} is out of range: use 1024 to 10485760 bytes (10 MiB)"))));
    }
    if let Some(pk) = p.str("partition_key") {
        if let Err(e) = RecordAccessor::parse(pk) {
            check(Err(p.error(
                "partition_key",
                format!("invalid partition_key '{pk}': {e}"),
            )));
        }
    }
    let simple = flag("simple_aggregation", false);
    let kpl = flag("aggregation", false);
    let append_newline = flag("append_newline", true);
    if simple && kpl {
        check(Err(p.error(
            "aggregation",
            "'aggregation' and 'simple_aggregation' can not be used together",
        )));
    }
    if simple && !append_newline {
        check(Err(p.error("append_newline", "'append_newline off' can not be used with 'simple_aggregation on': records could not be told apart")));
    }
    let oversize_policy = if p
        .str("oversize_policy")
        .is_some_and(|v| v.eq_ignore_ascii_case("truncate"))
    {
        OversizePolicy::Truncate
    } else {
        OversizePolicy::Drop
    };

    let file = |k: &str| p.str(k).map(PathBuf::from);
    let mut file_errors = Vec::new();
    for k in [
        "tls.ca_file",
        "tls.ca_path",
        "tls.crt_file",
        "tls.key_file",
        "tls.proxy.ca_file",
        "tls.proxy.ca_path",
    ] {
        if let Some(path) = p.str(k) {
            if let Err(e) = std::fs::metadata(path) {
                file_errors.push(p.error(k, format!("cannot read '{path}': {e}")));
            }
        }
    }
    if p.str("tls.crt_file").is_some() != p.str("tls.key_file").is_some() {
        file_errors.push(p.error(
            "tls.crt_file",
            "'tls.crt_file' and 'tls.key_file' must be set together",
        ));
    }
    let tls = TlsOptions {
        verify: flag("tls.verify", true),
        verify_hostname: flag("tls.verify_hostname", true),
        ca_file: file("tls.ca_file"),
        ca_path: file("tls.ca_path"),
        crt_file: file("tls.crt_file"),
        key_file: file("tls.key_file"),
        key_passwd: opt("tls.key_passwd"),
        vhost: opt("tls.vhost"),
        min_version: tls_version(p, "tls.min_version"),
        max_version: tls_version(p, "tls.max_version"),
    };
    let proxy_tls = TlsOptions {
        verify: flag("tls.proxy.verify", true),
        verify_hostname: flag("tls.proxy.verify_hostname", true),
        ca_file: file("tls.proxy.ca_file"),
        ca_path: file("tls.proxy.ca_path"),
        ..TlsOptions::default()
    };
    let secs = |k: &str, d: u64| Duration::from_secs(p.time_secs(k).ok().flatten().unwrap_or(d));
    let io_timeout = secs("net.io_timeout", 0);
    let source_address = p.str("net.source_address").and_then(|a| match a.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            file_errors.push(p.error("net.source_address", format!("'{a}' is not an IP address")));
            None
        }
    });
    let net = NetOptions {
        connect_timeout: secs("net.connect_timeout", 10),
        io_timeout: (!io_timeout.is_zero()).then_some(io_timeout),
        keepalive: flag("net.keepalive", true),
        keepalive_idle_timeout: secs("net.keepalive_idle_timeout", 30),
        keepalive_max_recycle: p
            .u64("net.keepalive_max_recycle")
            .ok()
            .flatten()
            .unwrap_or(2000) as u32,
        source_address,
        max_worker_connections: p
            .u64("net.max_worker_connections")
            .ok()
            .flatten()
            .unwrap_or(0) as usize,
    };

    for k in [
        "host",
        "ipv6",
        "tls",
        "tls.ciphers",
        "tls.windows.certstore_name",
        "tls.windows.use_enterprise_store",
        "net.dns.mode",
        "net.dns.resolver",
    ] {
        if p.get(k)
            .is_some_and(|x| x.location != kb_config::Location::Default)
        {
            warnings.push(format!("'{k}' has no effect on kinesis_streams"));
        }
    }
    if opt("external_id").is_some() && opt("role_arn").is_none() {
        warnings.push("'external_id' is set without 'role_arn': it is not used".into());
    }
    let tls_keys_set = KEYS.iter().any(|k| {
        k.name.starts_with("tls.")
            && p.get(k.name)
                .is_some_and(|x| x.location != kb_config::Location::Default)
    });
    if !endpoint.is_tls() && tls_keys_set {
        warnings.push(format!(
            "endpoint {} is plain http: the tls.* keys are ignored",
            endpoint.url()
        ));
    }
    if endpoint.is_tls() && !tls.verify {
        warnings.push("tls.verify is off: the server certificate is not checked".into());
    }

    errors.extend(file_errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        instance: p.instance.clone(),
        region,
        stream,
        time_key,
        time_key_format,
        log_key,
        role_arn: opt("role_arn"),
        external_id: opt("external_id"),
        endpoint,
        sts_endpoint,
        auto_retry_requests: flag("auto_retry_requests", true),
        profile: opt("profile"),
        aggregation: if kpl {
            Aggregation::Kpl
        } else if simple {
            Aggregation::Simple
        } else {
            Aggregation::None
        },
        compression,
        partition_key: opt("partition_key"),
        append_newline,
        max_record_size: max_record_size as usize,
        oversize_policy,
        healthcheck: flag("healthcheck", false),
        proxy,
        proxy_env_ignore: flag("net.proxy_env_ignore", false),
        tls,
        proxy_tls,
        net,
        escape_unicode,
        warnings,
    })
}
