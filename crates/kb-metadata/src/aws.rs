//! `aws`: EC2 instance metadata on every record (Fluent Bit's `filter_aws`), read from IMDS
//! with kb-aws's [`ImdsClient`] (IMDSv2 session tokens, `imds_version v1`, and the v1
//! fallback when the token request is refused or unanswered).
//!
//! Keys added after the record's own, in this order, each when enabled: `az`,
//! `ec2_instance_id`, `ec2_instance_type`, `private_ip`, `vpc_id`, `ami_id`, `account_id`,
//! `hostname`, then the instance tags (`tags_enabled`, filtered by `tags_include` or
//! `tags_exclude`) in the order IMDS lists them.
//!
//! The metadata is read once, in the background, at the first record. Until every enabled
//! field is known, records pass unchanged (as Fluent Bit's do), counted in
//! `fluentbit_aws_records_without_metadata_total`; a failed read is tried again after 5 s.
//! Tags are read with the other fields; if reading them fails they are tried again every
//! `retry_interval_s` and records get the other fields meanwhile (Fluent Bit holds every
//! field back while the tags fail). An instance without tags in IMDS (404: tags not enabled
//! in its metadata options) gets none, with one warning, as in Fluent Bit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kb_aws::imds::{ImdsClient, ImdsVersion};
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};

use crate::worker::{RateLimited, Worker};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "imds_version",
        KeyType::Enum(&["v1", "v2"]),
        Some("v2"),
        "Specifies which version of the EC2 instance metadata service will be used: 'v1' or 'v2'",
    ),
    KeySpec::new(
        "az",
        KeyType::Bool,
        Some("true"),
        "Enable EC2 instance availability zone",
    ),
    KeySpec::new(
        "ec2_instance_id",
        KeyType::Bool,
        Some("true"),
        "Enable EC2 instance ID",
    ),
    KeySpec::new(
        "ec2_instance_type",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance type",
    ),
    KeySpec::new(
        "private_ip",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance private IP",
    ),
    KeySpec::new(
        "vpc_id",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance VPC ID",
    ),
    KeySpec::new(
        "ami_id",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance Image ID",
    ),
    KeySpec::new(
        "account_id",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance Account ID",
    ),
    KeySpec::new(
        "hostname",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance hostname",
    ),
    KeySpec::new(
        "tags_enabled",
        KeyType::Bool,
        Some("false"),
        "Enable EC2 instance tags, injects all tags if tags_include and tags_exclude are empty",
    ),
    KeySpec::new(
        "tags_include",
        KeyType::Str,
        None,
        "comma-separated EC2 tag keys to inject into the logs; other tags are ignored",
    ),
    KeySpec::new(
        "tags_exclude",
        KeyType::Str,
        None,
        "comma-separated EC2 tag keys not to inject into the logs",
    ),
    KeySpec::new(
        "retry_interval_s",
        KeyType::Int,
        Some("300"),
        "minimum duration between retries for fetching EC2 instance tags",
    ),
];

/// The `aws` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "aws",
        description: "Add AWS Metadata",
        keys: KEYS,
    },
    build,
};

/// IMDS paths, as Fluent Bit's `aws.h` names them.
pub const AZ_PATH: &str = "/latest/meta-data/placement/availability-zone/";
pub const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id/";
pub const INSTANCE_TYPE_PATH: &str = "/latest/meta-data/instance-type/";
pub const PRIVATE_IP_PATH: &str = "/latest/meta-data/local-ipv4/";
pub const MAC_PATH: &str = "/latest/meta-data/mac/";
pub const VPC_PREFIX: &str = "/latest/meta-data/network/interfaces/macs/";
pub const AMI_ID_PATH: &str = "/latest/meta-data/ami-id/";
pub const ACCOUNT_ID_PATH: &str = "/latest/dynamic/instance-identity/document/";
pub const HOSTNAME_PATH: &str = "/latest/meta-data/hostname/";
pub const TAGS_PATH: &str = "/latest/meta-data/tags/instance";

/// A field: record key, and how it is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Az,
    InstanceId,
    InstanceType,
    PrivateIp,
    VpcId,
    AmiId,
    AccountId,
    Hostname,
}

impl Field {
    const ALL: [(Field, &'static str); 8] = [
        (Field::Az, "az"),
        (Field::InstanceId, "ec2_instance_id"),
        (Field::InstanceType, "ec2_instance_type"),
        (Field::PrivateIp, "private_ip"),
        (Field::VpcId, "vpc_id"),
        (Field::AmiId, "ami_id"),
        (Field::AccountId, "account_id"),
        (Field::Hostname, "hostname"),
    ];
}

enum TagFilter {
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

/// The metadata once read: `(key, value)` in record order.
#[derive(Default)]
struct Known {
    fields: Vec<(&'static str, String)>,
    tags: Option<Vec<(String, String)>>,
}

/// The keys as one msgpack map, and their number.
type Encoded = (Vec<u8>, usize);

struct Shared {
    instance: String,
    version: ImdsVersion,
    fields: Vec<(Field, &'static str)>,
    tags_enabled: bool,
    tag_filter: TagFilter,
    retry_tags: Duration,
    client: OnceLock<Result<ImdsClient, String>>,
    /// The keys as one msgpack map (and its size) once every enabled field is known.
    encoded: Mutex<Option<Arc<Encoded>>>,
    known: Mutex<Known>,
    busy: AtomicBool,
    next_try: Mutex<Option<Instant>>,
    without_metadata: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    warn: RateLimited,
}

/// A configured `aws` instance.
pub struct Aws {
    shared: Arc<Shared>,
    worker: Worker,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut fields = Vec::new();
    for (f, key) in Field::ALL {
        match props.bool(key) {
            Ok(Some(true)) => fields.push((f, key)),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    let tags_enabled = match props.bool("tags_enabled") {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            errors.push(e);
            false
        }
    };
    let tag_filter = match (props.str("tags_include"), props.str("tags_exclude")) {
        (Some(_), Some(_)) => {
            errors.push(props.error(
                "tags_exclude",
                "configuration is invalid, both tags_include and tags_exclude are specified at the same time",
            ));
            TagFilter::All
        }
        (Some(i), None) => TagFilter::Include(split_list(i)),
        (None, Some(e)) => TagFilter::Exclude(split_list(e)),
        (None, None) => TagFilter::All,
    };
    let retry = match props.u64("retry_interval_s") {
        Ok(v) => v.unwrap_or(300),
        Err(e) => {
            errors.push(e);
            300
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let version = match props.str("imds_version") {
        Some(v) if v.eq_ignore_ascii_case("v1") => ImdsVersion::V1,
        _ => ImdsVersion::V2,
    };
    let label = [("name", props.instance.as_str())];
    Ok(Box::new(Aws {
        worker: Worker::new(format!("kb-meta-{}", props.instance)),
        shared: Arc::new(Shared {
            instance: props.instance.clone(),
            version,
            fields,
            tags_enabled,
            tag_filter,
            retry_tags: Duration::from_secs(retry),
            client: OnceLock::new(),
            encoded: Mutex::new(None),
            known: Mutex::new(Known::default()),
            busy: AtomicBool::new(false),
            next_try: Mutex::new(None),
            without_metadata: svc
                .metrics
                .counter("fluentbit_aws_records_without_metadata_total", &label),
            requests: svc.metrics.counter("fluentbit_aws_requests_total", &label),
            warn: RateLimited::new(Duration::from_secs(10)),
        }),
    }))
}

impl Shared {
    async fn get(&self, client: &ImdsClient, path: &str) -> Result<Option<String>, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        client.get(path).await
    }

    async fn read_field(&self, client: &ImdsClient, f: Field) -> Result<String, String> {
        let need = |v: Option<String>, path: &str| {
            v.map(|s| s.trim().to_string())
                .ok_or_else(|| format!("GET {path}: HTTP 404"))
        };
        let path = match f {
            Field::Az => AZ_PATH,
            Field::InstanceId => INSTANCE_ID_PATH,
            Field::InstanceType => INSTANCE_TYPE_PATH,
            Field::PrivateIp => PRIVATE_IP_PATH,
            Field::AmiId => AMI_ID_PATH,
            Field::Hostname => HOSTNAME_PATH,
            Field::VpcId => {
                let mac = need(self.get(client, MAC_PATH).await?, MAC_PATH)?;
                let path = format!("{VPC_PREFIX}{mac}/vpc-id/");
                return need(self.get(client, &path).await?, &path);
            }
            Field::AccountId => {
                let doc = need(self.get(client, ACCOUNT_ID_PATH).await?, ACCOUNT_ID_PATH)?;
                let v: serde_json::Value = serde_json::from_str(&doc)
                    .map_err(|e| format!("the instance identity document is not JSON: {e}"))?;
                return v
                    .get("accountId")
                    .and_then(|a| a.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| "the instance identity document has no accountId".into());
            }
        };
        need(self.get(client, path).await?, path)
    }

    /// `Ok(None)`: IMDS has no tags for this instance (404).
    async fn read_tags(
        &self,
        client: &ImdsClient,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let Some(list) = self.get(client, TAGS_PATH).await? else {
            return Ok(None);
        };
        let mut tags = Vec::new();
        for key in list.split('\n').map(str::trim).filter(|k| !k.is_empty()) {
            let path = format!("{TAGS_PATH}/{key}");
            let value = self
                .get(client, &path)
                .await?
                .ok_or_else(|| format!("no value for tag {key}"))?;
            let on = match &self.tag_filter {
                TagFilter::All => true,
                TagFilter::Include(l) => l.iter().any(|t| t == key),
                TagFilter::Exclude(l) => !l.iter().any(|t| t == key),
            };
            if on {
                tags.push((key.to_string(), value));
            }
        }
        Ok(Some(tags))
    }

    /// Read whatever is still missing; encode the keys once every field is known.
    async fn fetch(self: Arc<Self>) {
        let client = match self
            .client
            .get_or_init(|| ImdsClient::new(None, self.version, Duration::from_secs(1)))
        {
            Ok(c) => c,
            Err(e) => {
                self.failed(e.clone(), Duration::from_secs(300));
                return;
            }
        };
        let missing: Vec<(Field, &'static str)> = {
            let k = self.known.lock().unwrap_or_else(|e| e.into_inner());
            self.fields
                .iter()
                .copied()
                .filter(|(_, key)| !k.fields.iter().any(|(n, _)| n == key))
                .collect()
        };
        let mut error = None;
        for (f, key) in missing {
            match self.read_field(client, f).await {
                Ok(v) => self
                    .known
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .fields
                    .push((key, v)),
                Err(e) => {
                    error = Some(format!("failed to get {key}: {e}"));
                    break;
                }
            }
        }
        let tags_missing = self.tags_enabled
            && self
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tags
                .is_none();
        let mut tag_error = None;
        if error.is_none() && tags_missing {
            match self.read_tags(client).await {
                Ok(Some(t)) => self.known.lock().unwrap_or_else(|e| e.into_inner()).tags = Some(t),
                Ok(None) => {
                    tracing::warn!(
                        "[filter:aws:{}] EC2 instance metadata tag request returned 404. This likely indicates your instance has no tags or the EC2 tagging metadata API is not enabled",
                        self.instance
                    );
                    self.known.lock().unwrap_or_else(|e| e.into_inner()).tags = Some(Vec::new());
                }
                Err(e) => tag_error = Some(format!("failed to get instance EC2 tags: {e}")),
            }
        }
        if error.is_none() {
            self.encode();
        }
        match (error, tag_error) {
            (Some(e), _) => self.failed(e, Duration::from_secs(5)),
            (None, Some(e)) => self.failed(e, self.retry_tags),
            (None, None) => self.busy.store(false, Ordering::Release),
        }
    }

    fn failed(&self, e: String, again_in: Duration) {
        self.warn
            .warn(|| format!("[filter:aws:{}] {e}", self.instance));
        *self.next_try.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + again_in);
        self.busy.store(false, Ordering::Release);
    }

    fn encode(&self) {
        let k = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut pairs = Vec::new();
        let mut n = 0;
        // Record order is the key table's, whatever order the reads succeeded in.
        for (_, key) in &self.fields {
            if let Some((_, v)) = k.fields.iter().find(|(n, _)| n == key) {
                kb_core::record::write_str(&mut pairs, key.as_bytes());
                kb_core::record::write_str(&mut pairs, v.as_bytes());
                n += 1;
            }
        }
        for (key, v) in k.tags.iter().flatten() {
            kb_core::record::write_str(&mut pairs, key.as_bytes());
            kb_core::record::write_str(&mut pairs, v.as_bytes());
            n += 1;
        }
        let mut buf = Vec::with_capacity(pairs.len() + 5);
        kb_core::record::write_map_len(&mut buf, n);
        buf.extend_from_slice(&pairs);
        *self.encoded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new((buf, n)));
    }

    fn complete(&self) -> bool {
        let k = self.known.lock().unwrap_or_else(|e| e.into_inner());
        k.fields.len() == self.fields.len() && (!self.tags_enabled || k.tags.is_some())
    }
}

impl Filter for Aws {
    fn filter(&self, record: &mut Record<'_>, _cx: &mut FilterCx<'_>) -> Verdict {
        let sh = &self.shared;
        let encoded = sh.encoded.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let complete = encoded.is_some() && sh.complete();
        if !complete && !sh.busy.load(Ordering::Acquire) {
            let due = sh
                .next_try
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|t| Instant::now() >= t);
            if due
                && !sh.busy.swap(true, Ordering::AcqRel)
                && !self.worker.spawn(sh.clone().fetch())
            {
                sh.busy.store(false, Ordering::Release);
            }
        }
        let Some(enc) = encoded else {
            sh.without_metadata.fetch_add(1, Ordering::Relaxed);
            return Verdict::Keep;
        };
        if enc.1 == 0 {
            return Verdict::Keep;
        }
        let w = record.put(&enc.0);
        let mut entries = Vec::with_capacity(enc.1);
        if record.map_entries(w, &mut entries) {
            for (k, v) in entries {
                record.push(k, v);
            }
        }
        Verdict::Keep
    }
}
