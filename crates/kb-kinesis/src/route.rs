//! Where `kinesis_streams` records go: the `stream` / `stream_arn` keys (issue 15).
//!
//! A stream is named by its name (`StreamName`) or by its ARN (`StreamARN`, for streams of
//! other accounts through resource-based policies). Either may be a template (`$field`,
//! `$a['b'][0]`, `$TAG`, `$TAG[n]` and literal text, kb-core's [`Template`]): each record
//! then names its own stream, and [`StreamTemplate::resolve`] gives it. A plain name never
//! reaches this module's per-record code. An ARN's template covers only the name: partition,
//! region and account stay literal, so every record of an output goes to one account's
//! endpoint.
//!
//! The endpoint of an ARN follows the AWS SDKs' endpoint rules for Kinesis (smithy rule set,
//! as generated in aws-sdk-rust's `kinesis/src/config/endpoint/internals.rs`): with a
//! `StreamARN` and no endpoint override, for partitions other than `aws-iso` and `aws-iso-b`,
//! the ARN must be a `kinesis` `stream` ARN of the client region's partition, and data-plane
//! operations (PutRecords) go to `https://{AccountId}.data-kinesis.{Region}.{dnsSuffix}`,
//! control-plane ones (DescribeStreamSummary) to `…control-kinesis…`, where `Region` is the
//! client's region (here `region`, else the ARN's). `aws-iso` and `aws-iso-b` keep the
//! regional endpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kb_aws::endpoint::{dns_suffix, Endpoint, Scheme};
use kb_core::accessor::{AccessorError, Part, Template};

/// Kinesis stream names are 1 to this many characters.
pub const MAX_STREAM_NAME: usize = 128;

/// Kinesis stream names: 1 to `max` (128 for Kinesis) characters of `A-Z a-z 0-9 _ . -`.
pub fn valid_stream_name(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The AWS partition a region belongs to (the SDKs' partition table, by region prefix; an
/// unknown region is `aws`, as the SDKs resolve it).
pub fn partition_of(region: &str) -> &'static str {
    // Most specific prefixes first: `us-isob-`/`us-isof-` also start with `us-iso`.
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// Every partition name [`partition_of`] knows.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// Why a `stream_arn` value is not a Kinesis stream ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("expected arn:<partition>:kinesis:<region>:<12-digit account>:stream/<name>")]
    Shape,
    #[error("unknown partition '{0}' (aws, aws-cn, aws-us-gov, …)")]
    Partition(String),
    #[error("the service is '{0}', not 'kinesis'")]
    Service(String),
    #[error("invalid region '{0}'")]
    Region(String),
    #[error("invalid account id '{0}': it must be 12 digits")]
    Account(String),
    #[error("the resource is '{0}', not 'stream/<name>'")]
    Resource(String),
}

/// The literal parts of a Kinesis stream ARN; the name may still be a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after `stream/` (a name, or a template for one).
    pub name: &'a str,
}

impl<'a> StreamArn<'a> {
    /// Split `arn:<partition>:kinesis:<region>:<account>:stream/<name>` and check every part
    /// but the name.
    pub fn parse(s: &'a str) -> Result<StreamArn<'a>, ArnError> {
        // The name (a template) may hold ':' inside quotes, so only the first five split.
        let mut it = s.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(res)) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            return Err(ArnError::Shape);
        };
        if !PARTITIONS.contains(&partition) {
            return Err(ArnError::Partition(partition.to_string()));
        }
        if service != "kinesis" {
            return Err(ArnError::Service(service.to_string()));
        }
        if !is_host_label(region) {
            return Err(ArnError::Region(region.to_string()));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ArnError::Account(account.to_string()));
        }
        let Some(name) = res.strip_prefix("stream/") else {
            return Err(ArnError::Resource(res.to_string()));
        };
        Ok(StreamArn {
            partition,
            region,
            account,
            name,
        })
    }

    /// `arn:<partition>:kinesis:<region>:<account>:stream/`: what every stream of this
    /// account and region shares.
    pub fn prefix(&self) -> String {
        format!(
            "arn:{}:kinesis:{}:{}:stream/",
            self.partition, self.region, self.account
        )
    }
}

/// The SDKs' `isValidHostLabel` (without dots): 1–63 of `[A-Za-z0-9-]`, not starting with '-'.
fn is_host_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The endpoints the SDKs derive for a stream ARN of `account` when the client's region is
/// `region`: (data plane, control plane), or `None` where the rules keep the regional
/// endpoint (`aws-iso`, `aws-iso-b`). `port` is the `port` key, if set.
pub fn arn_endpoints(
    account: &str,
    region: &str,
    port: Option<u16>,
) -> Option<(Endpoint, Endpoint)> {
    if matches!(partition_of(region), "aws-iso" | "aws-iso-b") {
        return None;
    }
    let at = |plane: &str| Endpoint {
        scheme: Scheme::Https,
        host: format!("{account}.{plane}-kinesis.{region}.{}", dns_suffix(region)),
        port: port.unwrap_or(443),
    };
    Some((at("data"), at("control")))
}

/// Why a record has no stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// A field or tag part of the template is missing, or not a string, number or boolean.
    Missing,
    /// The template rendered as nothing.
    Empty,
    /// The rendered name is not a valid stream name.
    Invalid,
}

impl Unresolved {
    /// The rate limiter's key for the warning of a record sent to `stream_fallback`.
    pub fn fallback_log_key(self) -> &'static str {
        match self {
            Unresolved::Missing => "stream_fallback:missing",
            Unresolved::Empty => "stream_fallback:empty",
            Unresolved::Invalid => "stream_fallback:invalid",
        }
    }

    /// The rate limiter's key for the warning of a dropped record.
    pub fn drop_log_key(self) -> &'static str {
        match self {
            Unresolved::Missing => "stream_unresolved:missing",
            Unresolved::Empty => "stream_unresolved:empty",
            Unresolved::Invalid => "stream_unresolved:invalid",
        }
    }

    /// The reason in messages and in the fallback counter's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Unresolved::Missing => "missing",
            Unresolved::Empty => "empty",
            Unresolved::Invalid => "invalid",
        }
    }
}

/// A per-record stream: literal text, `$TAG`, `$TAG[n]` and record accessors, rendered to a
/// stream name and prefixed with the ARN's literal part when the stream is given by ARN.
#[derive(Debug, Clone)]
pub struct StreamTemplate {
    source: String,
    /// `""` for `stream`, `arn:…:stream/` for `stream_arn`.
    prefix: String,
    name: Template,
    tag_only: bool,
}

impl StreamTemplate {
    /// Parse the name part of `stream` / `stream_arn` (`prefix` is `""` or the ARN's
    /// literal part). `Ok(None)`: plain text, which is the stream itself.
    pub fn parse(prefix: &str, name: &str) -> Result<Option<StreamTemplate>, AccessorError> {
        let template = Template::parse(name)?;
        if template.is_literal() {
            return Ok(None);
        }
        if template.parts().iter().any(|p| matches!(p, Part::Group(_))) {
            return Err(AccessorError {
                text: name.to_string(),
                reason: "'$0', '$1', … name regex groups, and a stream has none".into(),
            });
        }
        let tag_only = template
            .parts()
            .iter()
            .all(|p| !matches!(p, Part::Field(_)));
        Ok(Some(StreamTemplate {
            source: format!("{prefix}{name}"),
            prefix: prefix.to_string(),
            name: template,
            tag_only,
        }))
    }

    /// Whether only the tag decides the stream (then it is resolved once per chunk).
    pub fn tag_only(&self) -> bool {
        self.tag_only
    }

    /// The template as configured (with the ARN's prefix).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Write the stream of a record (`record`: its msgpack map) with tag `tag` into `out`: the
    /// name, after the ARN prefix for `stream_arn`. `name` is scratch space.
    pub fn resolve(
        &self,
        tag: &str,
        record: &[u8],
        name: &mut String,
        out: &mut String,
    ) -> Result<(), Unresolved> {
        out.clear();
        if !self.name.render(tag, |ra| ra.lookup(record), name) {
            return Err(Unresolved::Missing);
        }
        if name.is_empty() {
            return Err(Unresolved::Empty);
        }
        if !valid_stream_name(name, MAX_STREAM_NAME) {
            return Err(Unresolved::Invalid);
        }
        out.push_str(&self.prefix);
        out.push_str(name);
        Ok(())
    }
}

impl std::fmt::Display for StreamTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Streams of per-record routing that answered `ResourceNotFoundException` recently, shared
/// by the workers of one output: their records go to the fallback (or are dropped) without a
/// request that would fail again, for [`MissingStreams::TTL`] after the answer.
#[derive(Debug)]
pub struct MissingStreams {
    ttl: Duration,
    found: Mutex<HashMap<String, Instant>>,
}

impl Default for MissingStreams {
    fn default() -> Self {
        Self::new(Self::TTL)
    }
}

impl MissingStreams {
    /// How long a missing stream is remembered: about the time a new stream takes to become
    /// ACTIVE, so a stream being created is tried again soon.
    pub const TTL: Duration = Duration::from_secs(30);

    /// Remember missing streams for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        MissingStreams {
            ttl,
            found: Mutex::new(HashMap::new()),
        }
    }

    /// `stream` was answered `ResourceNotFoundException` just now.
    pub fn note(&self, stream: &str) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.insert(stream.to_string(), Instant::now());
    }

    /// Whether `stream` was found missing less than the TTL ago (older entries are forgotten).
    pub fn is_missing(&self, stream: &str) -> bool {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        match found.get(stream) {
            Some(at) if at.elapsed() < self.ttl => true,
            Some(_) => {
                found.remove(stream);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_core::record::{write_map_len, write_str};

    fn record(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut m = Vec::new();
        write_map_len(&mut m, pairs.len());
        for (k, v) in pairs {
            write_str(&mut m, k.as_bytes());
            write_str(&mut m, v.as_bytes());
        }
        m
    }

    fn resolve(t: &StreamTemplate, tag: &str, rec: &[u8]) -> Result<String, Unresolved> {
        let (mut name, mut out) = (String::new(), String::new());
        t.resolve(tag, rec, &mut name, &mut out).map(|()| out)
    }

    #[test]
    fn plain_names_are_not_templates() {
        assert!(StreamTemplate::parse("", "my-stream").unwrap().is_none());
        assert!(StreamTemplate::parse("", "a.b_c-1").unwrap().is_none());
    }

    #[test]
    fn templates_resolve_fields_and_tag_parts() {
        let mut inner = Vec::new();
        write_map_len(&mut inner, 1);
        write_str(&mut inner, b"namespace_name");
        write_str(&mut inner, b"payments");
        let mut rec = Vec::new();
        write_map_len(&mut rec, 2);
        write_str(&mut rec, b"kubernetes");
        rec.extend_from_slice(&inner);
        write_str(&mut rec, b"app");
        write_str(&mut rec, b"web");

        let t = StreamTemplate::parse("", "$kubernetes['namespace_name']")
            .unwrap()
            .unwrap();
        assert!(!t.tag_only());
        assert_eq!(resolve(&t, "kube.x", &rec).as_deref(), Ok("payments"));

        let t = StreamTemplate::parse("", "$TAG[1]").unwrap().unwrap();
        assert!(t.tag_only());
        assert_eq!(resolve(&t, "app.orders.v1", &rec).as_deref(), Ok("orders"));
        assert_eq!(resolve(&t, "single", &rec), Err(Unresolved::Missing));

        // `${ENV}` was expanded at load time; `-` ends an accessor's name.
        let t = StreamTemplate::parse("", "logs-prod-$app")
            .unwrap()
            .unwrap();
        assert_eq!(resolve(&t, "t", &rec).as_deref(), Ok("logs-prod-web"));
        assert_eq!(
            resolve(&t, "t", &record(&[("other", "x")])),
            Err(Unresolved::Missing)
        );
        let t = StreamTemplate::parse("", "$TAG").unwrap().unwrap();
        assert_eq!(resolve(&t, "a.b", &rec).as_deref(), Ok("a.b"));
    }

    #[test]
    fn unusable_values_are_told_apart() {
        let t = StreamTemplate::parse("", "$s").unwrap().unwrap();
        assert_eq!(
            resolve(&t, "t", &record(&[("s", "")])),
            Err(Unresolved::Empty)
        );
        assert_eq!(
            resolve(&t, "t", &record(&[("s", "has space")])),
            Err(Unresolved::Invalid)
        );
        assert_eq!(
            resolve(&t, "t", &record(&[("s", &"x".repeat(129))])),
            Err(Unresolved::Invalid)
        );
        assert_eq!(
            resolve(&t, "t", &record(&[("s", &"x".repeat(128))])).map(|s| s.len()),
            Ok(128)
        );
        // A map is not a name.
        let mut rec = Vec::new();
        write_map_len(&mut rec, 1);
        write_str(&mut rec, b"s");
        write_map_len(&mut rec, 0);
        assert_eq!(resolve(&t, "t", &rec), Err(Unresolved::Missing));
        // Garbage never panics.
        assert_eq!(resolve(&t, "t", &[0xc1, 0xff]), Err(Unresolved::Missing));
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(StreamTemplate::parse("", "$a['open").is_err());
        assert!(StreamTemplate::parse("", "s-$1").is_err());
    }

    #[test]
    fn arn_templates_keep_the_prefix() {
        let arn =
            StreamArn::parse("arn:aws:kinesis:eu-west-1:123456789012:stream/logs-$app").unwrap();
        assert_eq!(arn.name, "logs-$app");
        let t = StreamTemplate::parse(&arn.prefix(), arn.name)
            .unwrap()
            .unwrap();
        assert_eq!(
            resolve(&t, "t", &record(&[("app", "api")])).as_deref(),
            Ok("arn:aws:kinesis:eu-west-1:123456789012:stream/logs-api")
        );
        assert_eq!(
            t.source(),
            "arn:aws:kinesis:eu-west-1:123456789012:stream/logs-$app"
        );
    }

    #[test]
    fn arns_are_checked_part_by_part() {
        let ok =
            StreamArn::parse("arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/s").unwrap();
        assert_eq!(
            (ok.partition, ok.region, ok.account, ok.name),
            ("aws-us-gov", "us-gov-west-1", "123456789012", "s")
        );
        let err = |s: &str| StreamArn::parse(s).unwrap_err();
        assert_eq!(err("my-stream"), ArnError::Shape);
        assert_eq!(
            err("arn:aws:kinesis:us-east-1:123456789012"),
            ArnError::Shape
        );
        assert_eq!(
            err("arn:aws:firehose:us-east-1:123456789012:deliverystream/s"),
            ArnError::Service("firehose".into())
        );
        assert_eq!(
            err("arn:amazon:kinesis:us-east-1:123456789012:stream/s"),
            ArnError::Partition("amazon".into())
        );
        assert_eq!(
            err("arn:aws:kinesis:us_east_1:123456789012:stream/s"),
            ArnError::Region("us_east_1".into())
        );
        assert_eq!(
            err("arn:aws:kinesis::123456789012:stream/s"),
            ArnError::Region("".into())
        );
        assert_eq!(
            err("arn:aws:kinesis:us-east-1:1234:stream/s"),
            ArnError::Account("1234".into())
        );
        assert_eq!(
            err("arn:aws:kinesis:us-east-1:123456789012:consumer/s"),
            ArnError::Resource("consumer/s".into())
        );
    }

    #[test]
    fn partitions_by_region() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_of("us-isob-east-1"), "aws-iso-b");
    }

    #[test]
    fn missing_streams_are_forgotten_after_the_ttl() {
        let m = MissingStreams::new(Duration::from_millis(50));
        assert!(!m.is_missing("s"));
        m.note("s");
        assert!(m.is_missing("s") && !m.is_missing("t"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!m.is_missing("s"));
    }

    /// The cases of the SDKs' endpoint rule tests for Kinesis (account endpoints).
    #[test]
    fn arn_endpoints_follow_the_sdk_rules() {
        let (data, control) = arn_endpoints("123", "us-east-1", None).unwrap();
        assert_eq!(
            data.url(),
            "https://123.data-kinesis.us-east-1.amazonaws.com"
        );
        assert_eq!(
            control.url(),
            "https://123.control-kinesis.us-east-1.amazonaws.com"
        );
        let (data, _) = arn_endpoints("123456789012", "cn-northwest-1", None).unwrap();
        assert_eq!(
            data.url(),
            "https://123456789012.data-kinesis.cn-northwest-1.amazonaws.com.cn"
        );
        let (data, _) = arn_endpoints("123456789012", "us-gov-east-1", Some(8443)).unwrap();
        assert_eq!(
            data.url(),
            "https://123456789012.data-kinesis.us-gov-east-1.amazonaws.com:8443"
        );
        assert!(arn_endpoints("123456789012", "us-iso-east-1", None).is_none());
        assert!(arn_endpoints("123456789012", "us-isob-east-1", None).is_none());
    }
}
