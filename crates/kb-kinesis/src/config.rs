//! The `kinesis_streams` key table (spec §1.1–1.3) and its validation (§1.4) into [`Settings`].
//! Everything a real start checks, except the network, is checked here, so `--dry-run` finds it.

use std::path::PathBuf;
use std::time::Duration;

use kb_aws::endpoint::{Endpoint, ProxyUrl};
use kb_aws::http::{NetOptions, TlsOptions, TlsVersion};
use kb_config::{ConfigError, KeySpec, KeyType, Props};

use crate::accessor::RecordAccessor;
use crate::compress::Compression;
use crate::encode::Protocol;
use crate::route::{arn_endpoints, partition_of, valid_stream_name, StreamArn, StreamTemplate};
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

/// The keys every plugin of the family shares after its own: port, TLS, network, storage.
macro_rules! key_table {
    ($($own:expr),* $(,)?) => {
        &[
            $($own,)*
            key("port", KeyType::Int, Some("443"), "TCP port of the endpoint (80 for http:// endpoints)."),
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
            key("tls.ciphers", Str, None, "Cipher suites in order of preference, OpenSSL or IANA names separated by ':' (e.g. ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256); a TLS version none of whose suites is listed keeps its defaults. Default: AES-128-GCM first."),
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
        ]
    };
}

/// Every key `kinesis_streams` accepts besides the engine's generic ones.
pub const KEYS: &[KeySpec] = key_table![
    key("region", Str, None, "The AWS region of your Kinesis stream. (kinesis-bit) Taken from stream_arn when unset."),
    key("stream", Str, None, "Kinesis stream name. (kinesis-bit) Or a template naming each record's stream: $field, $a['b'][0], $TAG, $TAG[n] and literal text, e.g. logs-$kubernetes['namespace_name']; a plain name costs nothing per record."),
    key("stream_arn", Str, None, "(kinesis-bit) The stream's ARN (arn:<partition>:kinesis:<region>:<account>:stream/<name>) instead of 'stream', e.g. for another account's stream; the name may be a template as in 'stream'. Region and partition come from it unless 'region' is set; requests go to the account's endpoint (<account>.data-kinesis.<region>...) unless 'endpoint' is set."),
    key("stream_fallback", Str, None, "(kinesis-bit) With a template in 'stream'/'stream_arn': the stream (a name) for records whose stream cannot be resolved or does not exist; without it they are dropped and counted."),
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
    key("protocol", KeyType::Enum(&["json", "cbor"]), Some("json"), "(kinesis-bit) Wire protocol of PutRecords: json (application/x-amz-json-1.1, Data in base64) or cbor (application/x-amz-cbor-1.1 as the AWS Java SDK and the KPL send, Data as raw bytes)."),    key("shard_aware", Bool, Some("false"), "(kinesis-bit) Predict each record's shard (ListShards, MD5 of the partition key) and keep every shard under its write limits, so a hot shard's records wait while the others go on; needs kinesis:ListShards."),
    key("shard_refresh_interval", Time, Some("60"), "(kinesis-bit) With shard_aware: seconds between ListShards calls that follow resharding (also listed when an answer names an unknown shard), 1 or more."),
    key("shard_max_bytes_per_s", Size, Some("1048576"), "(kinesis-bit) With shard_aware: bytes (Data plus partition key) per second and shard, at least 1024."),
    key("shard_max_records_per_s", KeyType::Int, Some("1000"), "(kinesis-bit) With shard_aware: records per second and shard, at least 1."),
];

/// Every key `kinesis_firehose` accepts besides the engine's generic ones: Fluent Bit's, then
/// the extras of `kinesis_streams` that apply to Firehose.
pub const FIREHOSE_KEYS: &[KeySpec] = key_table![
    key("region", Str, None, "The AWS region of your delivery stream"),
    key("delivery_stream", Str, None, "Firehose delivery stream name"),
    key("time_key", Str, None, "Add the timestamp to the record under this key. By default the timestamp from Fluent Bit will not be added to records sent to Kinesis."),
    key("time_key_format", Str, Some("%Y-%m-%dT%H:%M:%S"), "strftime compliant format string for the timestamp; for example, the default is '%Y-%m-%dT%H:%M:%S'. Supports millisecond precision with '%3N' and supports nanosecond precision with '%9N' and '%L'; for example, adding '%3N' to support millisecond '%Y-%m-%dT%H:%M:%S.%3N'. This option is used with time_key."),
    key("log_key", Str, None, "By default, the whole log record will be sent to Firehose. If you specify a key name with this option, then only the value of that key will be sent to Firehose. For example, if you are using the Fluentd Docker log driver, you can specify `log_key log` and only the log message will be sent to Firehose."),
    key("compression", Str, None, "Compression type for Firehose records: gzip, zstd or snappy. Each log record is individually compressed and sent to Firehose."),
    key("role_arn", Str, None, "ARN of an IAM role to assume (ex. for cross account access)."),
    key("external_id", Str, None, "Specify an external ID for the STS API, can be used with the role_arn parameter if your role requires an external ID."),
    key("endpoint", Str, None, "Specify a custom endpoint for the Firehose API (host, host:port, https://host[:port] or http://host[:port] for local emulators)."),
    key("sts_endpoint", Str, None, "Custom endpoint for the STS API."),
    key("auto_retry_requests", Bool, Some("true"), "Immediately retry failed requests to AWS services once. This option does not affect the normal Fluent Bit retry mechanism with backoff. Instead, it enables an immediate retry with no delay for networking errors, which may help improve throughput when there are transient/random networking issues."),
    key("profile", Str, None, "AWS Profile name. AWS Profiles can be configured with AWS CLI and are usually stored in $HOME/.aws/ directory."),
    key("simple_aggregation", Bool, Some("false"), "Enable simple aggregation to combine multiple records into single API calls. This reduces the number of requests and can improve throughput for small records."),
    key("append_newline", Bool, Some("true"), "(kinesis-bit) Append a newline to each record."),
    key("max_record_size", Size, Some("1024000"), "(kinesis-bit) Largest record (Data) in bytes, 1024 to 1024000 (Firehose's limit)."),
    key("oversize_policy", KeyType::Enum(&["drop", "truncate"]), Some("drop"), "(kinesis-bit) What to do with records over max_record_size: drop or truncate."),
    key("healthcheck", Bool, Some("false"), "(kinesis-bit) Call DescribeDeliveryStream at startup and fail when the delivery stream is not ACTIVE."),
    key("proxy", Str, None, "(kinesis-bit) http://[user:pass@]host:port or https:// proxy for Firehose and STS traffic."),
];

/// Every key `kinesis` (the Go plugin amazon-kinesis-streams-for-fluent-bit) accepts.
pub const GO_KINESIS_KEYS: &[KeySpec] = key_table![
    key("region", Str, None, "The region which your Kinesis Data Stream is in."),
    key("stream", Str, None, "The name of the Kinesis Data Stream that you want log records sent to."),
    key("partition_key", Str, None, "The key of the record whose value is the partition key; a->b names a key nested under another. A random key is used when the value is missing or not a string."),
    key("data_keys", Str, None, "Comma-separated keys: only these keys and values are sent."),
    key("log_key", Str, None, "Send only the value of this key."),
    key("role_arn", Str, None, "ARN of an IAM role to assume (for cross account access)."),
    key("endpoint", Str, None, "Specify a custom endpoint for the Kinesis Streams API."),
    key("sts_endpoint", Str, None, "Specify a custom endpoint for the STS API; used to assume your custom role provided with role_arn."),
    key("append_newline", Bool, Some("false"), "Add a newline after each log record."),
    key("time_key", Str, None, "Add the timestamp to the record under this key."),
    key("time_key_format", Str, Some("%Y-%m-%dT%H:%M:%S"), "strftime compliant format string for the timestamp; %L is milliseconds and %f microseconds. This option is used with time_key."),
    key("experimental_concurrency", KeyType::SignedInt, Some("0"), "0 to 10, accepted for compatibility: flushes run in parallel with 'workers'."),
    key("experimental_concurrency_retries", KeyType::SignedInt, Some("4"), "Accepted for compatibility: kinesis-bit never drops records after these retries; retry_limit applies."),
    key("aggregation", Bool, Some("false"), "KPL aggregation of records."),
    key("aggregation_maximum_record_size", KeyType::SignedInt, None, "Largest aggregated record in bytes (default: max_record_size)."),
    key("skip_aggregation_record_size", KeyType::SignedInt, Some("20480"), "Records of at least this many bytes are sent without aggregation."),
    key("compression", Str, None, "Compression of each record: zlib, gzip or none."),
    key("replace_dots", Str, None, "Replace dots in key names with this value."),
    key("http_request_timeout", KeyType::SignedInt, Some("0"), "Timeout in seconds of one PutRecords call; 0 means a 60 s deadline."),
    key("external_id", Str, None, "(kinesis-bit) External ID for the STS AssumeRole call with role_arn."),
    key("profile", Str, None, "(kinesis-bit) AWS Profile name."),
    key("auto_retry_requests", Bool, Some("true"), "(kinesis-bit) Immediately retry a request once after a network error."),
    key("max_record_size", Size, Some("1048576"), "(kinesis-bit) Largest record (Data plus partition key) in bytes, 1024 to 10485760."),
    key("oversize_policy", KeyType::Enum(&["drop", "truncate"]), Some("truncate"), "(kinesis-bit) What to do with records over max_record_size: truncate (as the Go plugin does) or drop."),
    key("healthcheck", Bool, Some("false"), "(kinesis-bit) Call DescribeStreamSummary at startup and fail when the stream is not usable."),
    key("proxy", Str, None, "(kinesis-bit) http://[user:pass@]host:port or https:// proxy for Kinesis and STS traffic."),
];

/// Every key `firehose` (the Go plugin amazon-kinesis-firehose-for-fluent-bit) accepts.
pub const GO_FIREHOSE_KEYS: &[KeySpec] = key_table![
    key("region", Str, None, "The region which your Firehose delivery stream(s) is/are in."),
    key("delivery_stream", Str, None, "The name of the delivery stream that you want log records sent to."),
    key("data_keys", Str, None, "Comma-separated keys: only these keys and values are sent."),
    key("log_key", Str, None, "Send only the value of this key."),
    key("role_arn", Str, None, "ARN of an IAM role to assume (for cross account access)."),
    key("endpoint", Str, None, "Specify a custom endpoint for the Kinesis Firehose API."),
    key("sts_endpoint", Str, None, "Specify a custom endpoint for the STS API; used to assume your custom role provided with role_arn."),
    key("time_key", Str, None, "Add the timestamp to the record under this key."),
    key("time_key_format", Str, Some("%Y-%m-%dT%H:%M:%S"), "strftime compliant format string for the timestamp; %L is milliseconds and %f microseconds. This option is used with time_key."),
    key("replace_dots", Str, None, "Replace dots in key names with this value."),
    key("simple_aggregation", Bool, Some("false"), "Join as many records as fit into one Firehose record, delimited by newlines."),
    key("external_id", Str, None, "(kinesis-bit) External ID for the STS AssumeRole call with role_arn."),
    key("profile", Str, None, "(kinesis-bit) AWS Profile name."),
    key("auto_retry_requests", Bool, Some("true"), "(kinesis-bit) Immediately retry a request once after a network error."),
    key("max_record_size", Size, Some("1024000"), "(kinesis-bit) Largest record (Data) in bytes, 1024 to 1024000 (Firehose's limit)."),
    key("oversize_policy", KeyType::Enum(&["drop", "truncate"]), Some("drop"), "(kinesis-bit) What to do with records over max_record_size: drop (as the Go plugin does) or truncate."),
    key("healthcheck", Bool, Some("false"), "(kinesis-bit) Call DescribeDeliveryStream at startup and fail when the delivery stream is not ACTIVE."),
    key("proxy", Str, None, "(kinesis-bit) http://[user:pass@]host:port or https:// proxy for Firehose and STS traffic."),
];

/// Which plugin of the family a configuration is for: the service it sends to and the plugin
/// whose keys and record format it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Fluent Bit's `kinesis_streams`.
    KinesisStreams,
    /// Fluent Bit's `kinesis_firehose`.
    KinesisFirehose,
    /// The Go plugin `kinesis` (amazon-kinesis-streams-for-fluent-bit).
    GoKinesis,
    /// The Go plugin `firehose` (amazon-kinesis-firehose-for-fluent-bit).
    GoFirehose,
}

impl Flavour {
    /// The plugin name.
    pub fn plugin(self) -> &'static str {
        match self {
            Flavour::KinesisStreams => "kinesis_streams",
            Flavour::KinesisFirehose => "kinesis_firehose",
            Flavour::GoKinesis => "kinesis",
            Flavour::GoFirehose => "firehose",
        }
    }

    /// The key table.
    pub fn keys(self) -> &'static [KeySpec] {
        match self {
            Flavour::KinesisStreams => KEYS,
            Flavour::KinesisFirehose => FIREHOSE_KEYS,
            Flavour::GoKinesis => GO_KINESIS_KEYS,
            Flavour::GoFirehose => GO_FIREHOSE_KEYS,
        }
    }

    /// Whether records are formatted as the Go plugins do (sorted keys, Go's JSON escaping,
    /// `data_keys`, `replace_dots`, Go's strftime).
    pub fn is_go(self) -> bool {
        matches!(self, Flavour::GoKinesis | Flavour::GoFirehose)
    }

    /// Whether it sends to Firehose.
    pub fn is_firehose(self) -> bool {
        matches!(self, Flavour::KinesisFirehose | Flavour::GoFirehose)
    }

    /// The key naming the destination.
    pub fn destination_key(self) -> &'static str {
        if self.is_firehose() {
            "delivery_stream"
        } else {
            "stream"
        }
    }
}

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

/// The settings of `shard_aware on`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardAware {
    /// `shard_refresh_interval`.
    pub refresh: std::time::Duration,
    /// `shard_max_bytes_per_s`.
    pub bytes_per_s: u64,
    /// `shard_max_records_per_s`.
    pub records_per_s: u64,
}

/// The validated configuration of one output instance of the family.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    /// Which plugin this is.
    pub flavour: Flavour,
    pub region: String,
    /// The stream, or the delivery stream for Firehose: a name, an ARN (`stream_arn`), or the
    /// template as configured (`stream_route`), for messages.
    pub stream: String,
    /// Whether requests name the stream by `StreamARN` (`stream_arn`) rather than `StreamName`.
    pub stream_by_arn: bool,
    /// `kinesis_streams`: each record's stream, when `stream`/`stream_arn` is a template.
    pub stream_route: Option<StreamTemplate>,
    /// `stream_fallback`, as sent (a name, or an ARN with `stream_arn`).
    pub stream_fallback: Option<String>,
    /// The control-plane endpoint (healthcheck) when it is not `endpoint`: a stream ARN's
    /// account endpoint.
    pub control_endpoint: Option<Endpoint>,
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
    /// `protocol`: the put calls' wire protocol (Firehose and the Go plugins: always JSON).
    pub protocol: Protocol,
    pub proxy: Option<ProxyUrl>,
    pub proxy_env_ignore: bool,
    pub tls: TlsOptions,
    pub proxy_tls: TlsOptions,
    pub net: NetOptions,
    pub escape_unicode: bool,
    /// Go plugins: `data_keys` (empty: every key).
    pub data_keys: Vec<String>,
    /// Go plugins: `replace_dots`.
    pub replace_dots: Option<String>,
    /// `kinesis`: `partition_key`, split at `->`.
    pub key_path: Option<Vec<String>>,
    /// The largest KPL aggregate (Data plus key); `max_record_size` unless
    /// `aggregation_maximum_record_size` says less.
    pub aggregate_max_size: usize,
    /// `kinesis`: records of at least this many bytes are not aggregated.
    pub aggregate_skip_size: Option<usize>,
    /// `shard_aware`: the shard limits and refresh interval, or `None` (blind sending).
    pub shard_aware: Option<ShardAware>,
    /// Startup warnings to log (unknown time conversions, keys without effect, ...).
    pub warnings: Vec<String>,
}

/// A non-negative integer key of the Go plugins (`strconv.Atoi` and a sign check).
fn go_non_negative(p: &Props, k: &str, errors: &mut Vec<ConfigError>) -> Option<i64> {
    let v = p.get(k)?;
    match v.value.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Some(n),
        Ok(_) => {
            errors.push(p.error(
                k,
                format!(
                    "Invalid '{k}' value ({}) specified, must be a non-negative number",
                    v.value
                ),
            ));
            None
        }
        Err(_) => {
            errors.push(p.error(k, format!("Invalid '{k}' value ({}) specified", v.value)));
            None
        }
    }
}

fn tls_version(p: &Props, key: &str) -> Option<TlsVersion> {
    match p.str(key).map(|s| s.to_ascii_lowercase()) {
        Some(v) if v == "tlsv1.2" => Some(TlsVersion::Tls12),
        Some(v) if v == "tlsv1.3" => Some(TlsVersion::Tls13),
        _ => None,
    }
}

/// Validate the properties of a `kinesis_streams` section into [`Settings`], reporting every
/// problem with its location.
pub fn parse(p: &Props, escape_unicode: bool) -> Result<Settings, Vec<ConfigError>> {
    parse_flavour(p, escape_unicode, Flavour::KinesisStreams)
}

/// Validate the properties of a section of plugin `flavour` into [`Settings`], reporting every
/// problem with its location.
pub fn parse_flavour(
    p: &Props,
    escape_unicode: bool,
    flavour: Flavour,
) -> Result<Settings, Vec<ConfigError>> {
    let plugin = flavour.plugin();
    let (service, max_size, default_size) = if flavour.is_firehose() {
        use crate::service::{Firehose, Service};
        (
            Firehose::SIGNING_NAME,
            Firehose::MAX_RECORD_SIZE,
            Firehose::DEFAULT_RECORD_SIZE,
        )
    } else {
        use crate::service::{Service, Streams};
        (
            Streams::SIGNING_NAME,
            Streams::MAX_RECORD_SIZE,
            Streams::DEFAULT_RECORD_SIZE,
        )
    };
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

    // `stream_arn` (kinesis_streams only): parsed first, as it may give the region.
    let routed = flavour == Flavour::KinesisStreams;
    let arn_text = if routed {
        p.str("stream_arn").map(str::trim)
    } else {
        None
    };
    let arn = arn_text.and_then(|a| match StreamArn::parse(a) {
        Ok(arn) => Some(arn),
        Err(e) => {
            check(Err(p.error(
                "stream_arn",
                format!("invalid stream_arn '{a}': {e}"),
            )));
            None
        }
    });
    let region_key = p.str("region");
    let region = match (region_key, &arn) {
        (Some(r), _) => r.to_string(),
        (None, Some(a)) => a.region.to_string(),
        (None, None) => String::new(),
    };
    if region_key.is_none() {
        // With an unreadable stream_arn, that error is the one to fix.
        if arn_text.is_none() {
            check(Err(p.error("region", "'region' is a required field")));
        }
    } else if region.is_empty() || region.contains(char::is_whitespace) {
        check(Err(p.error(
            "region",
            format!("invalid region '{region}': it must be non-empty and contain no whitespace"),
        )));
    }
    let dest_key = flavour.destination_key();
    let name_max = if flavour.is_firehose() { 64 } else { 128 };
    let name_rule = |what: &str, name: &str| {
        format!("invalid {what} '{name}': use 1-{name_max} characters of A-Z, a-z, 0-9, '_', '.' and '-'")
    };
    let mut stream_route = None;
    let stream = match (p.str(dest_key), arn_text) {
        (Some(_), Some(_)) => {
            check(Err(p.error(
                "stream_arn",
                "'stream' and 'stream_arn' can not be used together: set one of them",
            )));
            String::new()
        }
        (None, None) => {
            let or_arn = if routed { " (or 'stream_arn')" } else { "" };
            check(Err(p.error(
                dest_key,
                format!("'{dest_key}' is a required field{or_arn}"),
            )));
            String::new()
        }
        (Some(name), None) if routed => {
            match StreamTemplate::parse("", name) {
                Ok(Some(t)) => stream_route = Some(t),
                Ok(None) if valid_stream_name(name, name_max) => {}
                Ok(None) => check(Err(p.error(
                    "stream",
                    format!(
                        "{} (or a template with $field, $a['b'], $TAG, $TAG[n])",
                        name_rule("stream name", name)
                    ),
                ))),
                Err(e) => check(Err(
                    p.error("stream", format!("invalid stream template '{name}': {e}"))
                )),
            }
            name.to_string()
        }
        (Some(name), None) => {
            if !valid_stream_name(name, name_max) {
                check(Err(p.error(
                    dest_key,
                    name_rule(&format!("{} name", dest_key.replace('_', " ")), name),
                )));
            }
            name.to_string()
        }
        (None, Some(text)) => {
            if let Some(a) = &arn {
                match StreamTemplate::parse(&a.prefix(), a.name) {
                    Ok(Some(t)) => stream_route = Some(t),
                    Ok(None) if valid_stream_name(a.name, name_max) => {}
                    Ok(None) => check(Err(
                        p.error("stream_arn", name_rule("stream name in stream_arn", a.name))
                    )),
                    Err(e) => check(Err(p.error(
                        "stream_arn",
                        format!("invalid stream template in stream_arn '{text}': {e}"),
                    ))),
                }
                // The SDKs refuse an ARN of another partition than the client's region, be
                // it `region` or the ARN's own (`arn:aws:kinesis:cn-north-1:…`).
                if p.str("endpoint").is_none() && partition_of(&region) != a.partition {
                    let (key, whose) = match region_key {
                        Some(_) => ("region", "region"),
                        None => ("stream_arn", "stream_arn's region"),
                    };
                    check(Err(p.error(
                        key,
                        format!(
                            "{whose} '{region}' is in partition '{}' but stream_arn is in '{}'",
                            partition_of(&region),
                            a.partition
                        ),
                    )));
                }
            }
            text.to_string()
        }
    };
    let stream_by_arn = arn_text.is_some();
    let stream_fallback = match p.str("stream_fallback").map(str::trim) {
        None => None,
        Some(f) if stream_route.is_none() => {
            warnings.push(format!(
                "'stream_fallback {f}' has no effect: the stream is not a template"
            ));
            None
        }
        Some(f) => {
            let prefix = arn.as_ref().map(StreamArn::prefix);
            let same_account_arn = || {
                StreamArn::parse(f).is_ok_and(|fa| {
                    prefix.as_deref() == Some(fa.prefix().as_str())
                        && valid_stream_name(fa.name, name_max)
                })
            };
            if valid_stream_name(f, name_max) {
                Some(format!("{}{f}", prefix.as_deref().unwrap_or("")))
            } else if prefix.is_some() && same_account_arn() {
                Some(f.to_string())
            } else {
                let also = if prefix.is_some() {
                    " (or an ARN of the same account and region as stream_arn)"
                } else {
                    ""
                };
                check(Err(p.error(
                    "stream_fallback",
                    format!("{}{also}", name_rule("stream_fallback", f)),
                )));
                None
            }
        }
    };

    let time_key = opt("time_key");
    let log_key = opt("log_key");
    // The Go plugins take both: the time is added to the record, then log_key picks a value.
    if time_key.is_some() && log_key.is_some() && !flavour.is_go() {
        check(Err(p.error(
            "time_key",
            "'time_key' and 'log_key' can not be used together",
        )));
    }
    let time_key_format = p
        .str("time_key_format")
        .unwrap_or("%Y-%m-%dT%H:%M:%S")
        .to_string();
    if flavour.is_go() {
        if let Err(e) = TimeFormat::compile_go(&time_key_format) {
            check(Err(p.error(
                "time_key_format",
                format!("Issue with strftime format in 'time_key_format': {e}"),
            )));
        }
    } else {
        let (_, unknown) = TimeFormat::compile(&time_key_format);
        for w in unknown {
            warnings.push(format!("time_key_format: {w}"));
        }
    }

    let compression = match p.str("compression") {
        None => None,
        // The Go plugin: zlib or gzip, any case; `none` is none.
        Some(c) if flavour == Flavour::GoKinesis => match c.to_ascii_lowercase().as_str() {
            "none" => None,
            "zlib" => Some(Compression::Zlib),
            "gzip" => Some(Compression::Gzip),
            _ => {
                check(Err(p.error("compression", format!("Invalid 'compression' value ({c}) specified, must be 'zlib', 'gzip', 'none', or undefined"))));
                None
            }
        },
        Some(c) => match c.parse::<Compression>() {
            Ok(Compression::Zlib) | Err(_) => {
                check(Err(
                    p.error("compression", format!("unknown compression: {c}"))
                ));
                None
            }
            Ok(c) => Some(c),
        },
    };

    let mut data_keys = Vec::new();
    if let Some(k) = p.str("data_keys") {
        // The Go plugin splits at ',' after trimming the whole value; each key is trimmed
        // too, so 'log, stream' means what it says.
        data_keys = k
            .trim()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
    }
    let replace_dots = opt("replace_dots");
    let mut key_path = None;
    if flavour == Flavour::GoKinesis {
        if let Some(pk) = p.str("partition_key") {
            if pk == "log" {
                check(Err(p.error(
                    "partition_key",
                    "'log' cannot be set as the partition key",
                )));
            }
            key_path = Some(pk.split("->").map(str::to_string).collect::<Vec<_>>());
        }
        let mut errs = Vec::new();
        if let Some(n) = go_non_negative(p, "experimental_concurrency", &mut errs) {
            if n > 10 {
                errs.push(p.error("experimental_concurrency", format!("Invalid 'experimental_concurrency' value ({n}) specified, must be less than or equal to 10")));
            } else if n > 0
                && p.get("experimental_concurrency")
                    .is_some_and(|x| x.location != kb_config::Location::Default)
            {
                warnings.push(format!("'experimental_concurrency {n}' is accepted for compatibility: flushes run one after another per worker; set 'workers {n}' for parallel flushes (records are never dropped after experimental_concurrency_retries; retry_limit applies)"));
            }
        }
        go_non_negative(p, "experimental_concurrency_retries", &mut errs);
        for e in errs {
            check(Err(e));
        }
    }

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
    let mut control_endpoint = None;
    let endpoint = match p.str("endpoint") {
        Some(e) => Endpoint::parse(e, port_key).unwrap_or_else(|err| {
            check(Err(
                p.error("endpoint", format!("invalid endpoint '{e}': {err}"))
            ));
            Endpoint::default_for(service, &region, port_key)
        }),
        // A stream ARN's account endpoints, as the SDKs derive them (route.rs).
        None => match arn
            .as_ref()
            .and_then(|a| arn_endpoints(a.account, &region, port_key))
        {
            Some((data, control)) => {
                control_endpoint = Some(control);
                data
            }
            None => Endpoint::default_for(service, &region, port_key),
        },
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
        .unwrap_or(default_size as u64);
    if !(1024..=max_size as u64).contains(&max_record_size) {
        let limit = if flavour.is_firehose() {
            "1024000 bytes (Firehose's 1,000 KiB)"
        } else {
            "10485760 bytes (10 MiB)"
        };
        check(Err(p.error(
            "max_record_size",
            format!("max_record_size {max_record_size} is out of range: use 1024 to {limit}"),
        )));
    }
    let mut partition_key = None;
    if flavour == Flavour::KinesisStreams {
        if let Some(pk) = p.str("partition_key") {
            if let Err(e) = RecordAccessor::parse(pk) {
                check(Err(p.error(
                    "partition_key",
                    format!("invalid partition_key '{pk}': {e}"),
                )));
            }
            partition_key = Some(pk.to_string());
        }
    }
    let simple = flag("simple_aggregation", false);
    let kpl = flag("aggregation", false);
    // The Go `kinesis` appends a newline only when asked; every other plugin by default.
    let append_newline = flag("append_newline", flavour != Flavour::GoKinesis);
    let mut aggregate_max_size = max_record_size as usize;
    let mut aggregate_skip_size = None;
    if flavour == Flavour::GoKinesis {
        let mut errs = Vec::new();
        if let Some(n) = go_non_negative(p, "aggregation_maximum_record_size", &mut errs) {
            aggregate_max_size = aggregate_max_size.min(n as usize);
        }
        if let Some(n) = go_non_negative(p, "skip_aggregation_record_size", &mut errs) {
            aggregate_skip_size = Some(n as usize);
        }
        for e in errs {
            check(Err(e));
        }
    }
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
        ciphers: match p.str("tls.ciphers") {
            Some(list) => match kb_aws::http::parse_cipher_list(list) {
                Ok(c) => c,
                Err(e) => {
                    file_errors.push(p.error("tls.ciphers", format!("invalid 'tls.ciphers': {e}")));
                    Vec::new()
                }
            },
            None => Vec::new(),
        },
    };
    let proxy_tls = TlsOptions {
        verify: flag("tls.proxy.verify", true),
        verify_hostname: flag("tls.proxy.verify_hostname", true),
        ca_file: file("tls.proxy.ca_file"),
        ca_path: file("tls.proxy.ca_path"),
        ..TlsOptions::default()
    };
    let secs = |k: &str, d: u64| Duration::from_secs(p.time_secs(k).ok().flatten().unwrap_or(d));
    let mut io_timeout = secs("net.io_timeout", 0);
    if flavour == Flavour::GoKinesis {
        let mut errs = Vec::new();
        if let Some(n) = go_non_negative(p, "http_request_timeout", &mut errs) {
            if n > 0 {
                io_timeout = Duration::from_secs(n as u64);
            }
        }
        file_errors.extend(errs);
    }
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
        "tls.windows.certstore_name",
        "tls.windows.use_enterprise_store",
        "net.dns.mode",
        "net.dns.resolver",
    ] {
        if p.get(k)
            .is_some_and(|x| x.location != kb_config::Location::Default)
        {
            warnings.push(format!("'{k}' has no effect on {plugin}"));
        }
    }
    if opt("external_id").is_some() && opt("role_arn").is_none() {
        warnings.push("'external_id' is set without 'role_arn': it is not used".into());
    }
    let tls_keys_set = flavour.keys().iter().any(|k| {
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
    if stream_route.is_some() && stream_fallback.is_none() && flag("healthcheck", false) {
        warnings.push("'healthcheck' has no stream to check: the stream is a template and 'stream_fallback' is not set".into());
    }
    if endpoint.is_tls() && !tls.verify {
        warnings.push("tls.verify is off: the server certificate is not checked".into());
    }

    let shard_aware = if routed && flag("shard_aware", false) {
        let refresh = p
            .time_secs("shard_refresh_interval")
            .ok()
            .flatten()
            .unwrap_or(60);
        if refresh == 0 {
            errors.push(p.error(
                "shard_refresh_interval",
                "shard_refresh_interval must be at least 1 second",
            ));
        }
        let bytes_per_s = p
            .size("shard_max_bytes_per_s")
            .ok()
            .flatten()
            .unwrap_or(1 << 20);
        if bytes_per_s < 1024 {
            errors.push(p.error(
                "shard_max_bytes_per_s",
                format!("shard_max_bytes_per_s {bytes_per_s} is too small: use at least 1024"),
            ));
        }
        let records_per_s = p
            .u64("shard_max_records_per_s")
            .ok()
            .flatten()
            .unwrap_or(1000);
        if records_per_s == 0 {
            errors.push(p.error(
                "shard_max_records_per_s",
                "shard_max_records_per_s must be at least 1",
            ));
        }
        if stream_route.is_some() {
            // The shard maps are per stream; one map is kept, for the one stream.
            errors.push(p.error(
                "shard_aware",
                "'shard_aware' can not be used with a per-record stream template",
            ));
        }
        Some(ShardAware {
            refresh: std::time::Duration::from_secs(refresh),
            bytes_per_s,
            records_per_s,
        })
    } else {
        for k in [
            "shard_refresh_interval",
            "shard_max_bytes_per_s",
            "shard_max_records_per_s",
        ] {
            if p.get(k)
                .is_some_and(|x| x.location != kb_config::Location::Default)
            {
                warnings.push(format!("'{k}' has no effect without 'shard_aware on'"));
            }
        }
        None
    };
    errors.extend(file_errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        instance: p.instance.clone(),
        flavour,
        region,
        stream,
        stream_by_arn,
        stream_route,
        stream_fallback,
        control_endpoint,
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
        partition_key,
        append_newline,
        max_record_size: max_record_size as usize,
        oversize_policy,
        healthcheck: flag("healthcheck", false),
        protocol: if p
            .str("protocol")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cbor"))
        {
            Protocol::Cbor
        } else {
            Protocol::Json
        },
        proxy,
        proxy_env_ignore: flag("net.proxy_env_ignore", false),
        tls,
        proxy_tls,
        net,
        escape_unicode,
        data_keys,
        replace_dots,
        key_path,
        aggregate_max_size,
        aggregate_skip_size,
        shard_aware,
        warnings,
    })
}
