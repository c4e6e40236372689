//! `ecs`: ECS task, container and cluster metadata on every record (Fluent Bit's
//! `filter_ecs`), from the ECS agent's introspection API
//! (`http://<ECS_Meta_Host>:<ECS_Meta_Port>`): `/v1/metadata` for the cluster and container
//! instance, `/v1/tasks?dockerid=<12-character short id>` for a container's task, the short
//! id being the 12 characters of the tag after `ECS_Tag_Prefix`.
//!
//! Each `Add KEY TEMPLATE` adds `KEY` after the record's keys, its value the template with
//! `$ClusterName`, `$ContainerInstanceArn`, `$ContainerInstanceID`, `$ECSAgentVersion` (cluster
//! metadata) and `$ECSContainerName`, `$DockerContainerName`, `$ContainerID`,
//! `$TaskDefinitionFamily`, `$TaskDefinitionVersion`, `$TaskID`, `$TaskARN` (task metadata)
//! replaced; a variable without a value renders as nothing. `Cluster_Metadata_Only` uses the
//! cluster metadata only. One task answer fills the cache for every container of the task;
//! entries live `ECS_Meta_Cache_TTL` (1 h).
//!
//! Requests run in the background: until the cluster metadata is known records pass
//! unchanged (as in Fluent Bit, which retries on every chunk); a record whose task metadata
//! is not known (yet) gets the cluster metadata only (Fluent Bit's fallback), counted in
//! `fluentbit_ecs_records_without_metadata_total`. A tag whose task lookups failed
//! `agent_endpoint_retries` times is not asked about again (Fluent Bit's rule); between
//! failures 5 s pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kb_aws::http::{HttpClient, NetOptions, TlsOptions};
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::accessor::Template;
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::{write_map_len, write_str, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};
use serde_json::Value;

use crate::worker::{RateLimited, Worker};

const KEYS: &[KeySpec] = &[
    KeySpec::new("add", KeyType::Str, None, "Add a metadata key/value pair with the given key and given value from the given template. Format is `Add KEY TEMPLATE`.").multi(),
    KeySpec::new("ecs_tag_prefix", KeyType::Str, Some(""), "the tag prefix before the 12 character container short ID"),
    KeySpec::new("cluster_metadata_only", KeyType::Bool, Some("false"), "Only attempt to attach the cluster related metadata to logs (cluster name, container instance ID/ARN, and ECS Agent version)"),
    KeySpec::new("ecs_meta_cache_ttl", KeyType::Time, Some("3600"), "Configurable TTL for cached ECS Task Metadata"),
    KeySpec::new("ecs_meta_host", KeyType::Str, Some("127.0.0.1"), "The host name at which the ECS Agent Introspection endpoint is reachable"),
    KeySpec::new("ecs_meta_port", KeyType::Int, Some("51678"), "The port at which the ECS Agent Introspection endpoint is reachable"),
    KeySpec::new("agent_endpoint_retries", KeyType::Int, Some("2"), "Number of retries for failed metadata requests to ECS Agent Introspection endpoint"),
];

/// The `ecs` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "ecs",
        description: "Add AWS ECS Metadata",
        keys: KEYS,
    },
    build,
};

pub const CLUSTER_PATH: &str = "/v1/metadata";
const SHORT_ID: usize = 12;

/// Metadata as a msgpack map of `ClusterName`, `TaskID`… (what templates read).
type Meta = Arc<Vec<u8>>;

/// The cluster metadata under the template names.
type Cluster = Arc<Vec<(String, String)>>;

enum TaskSlot {
    Pending,
    Ready(Meta, Instant),
    Failed { count: u64, at: Instant },
}

struct Shared {
    instance: String,
    url: String,
    adds: Vec<(String, Template)>,
    prefix: String,
    cluster_only: bool,
    ttl: Duration,
    retries: u64,
    client: OnceLock<Result<HttpClient, String>>,
    cluster: Mutex<Option<Cluster>>,
    cluster_busy: AtomicBool,
    cluster_next: Mutex<Option<Instant>>,
    tasks: Mutex<HashMap<String, TaskSlot>>,
    without_metadata: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    warn: RateLimited,
}

/// A configured `ecs` instance.
pub struct Ecs {
    shared: Arc<Shared>,
    worker: Worker,
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut adds = Vec::new();
    for p in props.get_all("add") {
        let mut parts = p.value.trim().splitn(2, char::is_whitespace);
        let key = parts.next().unwrap_or("").to_string();
        let template = parts.next().map(str::trim).unwrap_or("");
        if key.is_empty() || template.is_empty() {
            errors.push(ConfigError::new(
                p.location.clone(),
                format!(
                    "[filter {}] Invalid config for add: expected 'KEY TEMPLATE'",
                    props.instance
                ),
            ));
            continue;
        }
        match Template::parse(template) {
            Ok(t) => adds.push((key, t)),
            Err(e) => errors.push(ConfigError::new(
                p.location.clone(),
                format!(
                    "[filter {}] Could not parse template for `{key}`: {e}",
                    props.instance
                ),
            )),
        }
    }
    let cluster_only = match props.bool("cluster_metadata_only") {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            errors.push(e);
            false
        }
    };
    let ttl = match props.time_secs("ecs_meta_cache_ttl") {
        Ok(v) => Duration::from_secs(v.unwrap_or(3600)),
        Err(e) => {
            errors.push(e);
            Duration::ZERO
        }
    };
    let port = match props.u64("ecs_meta_port") {
        Ok(Some(p)) if (1..=65535).contains(&p) => p,
        Ok(Some(p)) => {
            errors.push(props.error("ecs_meta_port", format!("invalid port {p}")));
            0
        }
        Ok(None) => 51678,
        Err(e) => {
            errors.push(e);
            0
        }
    };
    let retries = match props.u64("agent_endpoint_retries") {
        Ok(v) => v.unwrap_or(2),
        Err(e) => {
            errors.push(e);
            2
        }
    };
    let host = props.str("ecs_meta_host").unwrap_or("127.0.0.1");
    let url = if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    };
    if let Err(e) = kb_aws::endpoint::Endpoint::parse(&url, None) {
        errors.push(props.error("ecs_meta_host", format!("invalid host '{host}': {e}")));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let label = [("name", props.instance.as_str())];
    Ok(Box::new(Ecs {
        worker: Worker::new(format!("kb-meta-{}", props.instance)),
        shared: Arc::new(Shared {
            instance: props.instance.clone(),
            url,
            adds,
            prefix: props.str("ecs_tag_prefix").unwrap_or("").to_string(),
            cluster_only,
            ttl,
            retries,
            client: OnceLock::new(),
            cluster: Mutex::new(None),
            cluster_busy: AtomicBool::new(false),
            cluster_next: Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            without_metadata: svc
                .metrics
                .counter("fluentbit_ecs_records_without_metadata_total", &label),
            requests: svc.metrics.counter("fluentbit_ecs_requests_total", &label),
            warn: RateLimited::new(Duration::from_secs(10)),
        }),
    }))
}

/// The id after the last `/` of an ARN (Fluent Bit's `parse_id_from_arn`).
pub fn id_from_arn(arn: &str) -> Option<&str> {
    let slash = arn.rfind('/')?;
    if slash == 0 || slash + 2 > arn.len() {
        return None;
    }
    Some(&arn[slash + 1..])
}

fn str_of<'v>(v: &'v Value, key: &str) -> Result<&'v str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("could not parse '{key}'"))
}

/// The cluster metadata of a `/v1/metadata` answer, under the template names.
pub fn cluster_of(v: &Value) -> Result<Vec<(String, String)>, String> {
    let arn = str_of(v, "ContainerInstanceArn")?;
    let id = id_from_arn(arn).ok_or_else(|| format!("failed to get ID from {arn}"))?;
    Ok(vec![
        ("ClusterName".into(), str_of(v, "Cluster")?.into()),
        ("ContainerInstanceArn".into(), arn.into()),
        ("ContainerInstanceID".into(), id.into()),
        ("ECSAgentVersion".into(), str_of(v, "Version")?.into()),
    ])
}

fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    let mut b = Vec::new();
    write_map_len(&mut b, pairs.len());
    for (k, v) in pairs {
        write_str(&mut b, k.as_bytes());
        write_str(&mut b, v.as_bytes());
    }
    b
}

/// Every container of a `/v1/tasks?dockerid=` answer: short id and its metadata.
pub fn task_containers(
    v: &Value,
    cluster: &[(String, String)],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let arn = str_of(v, "Arn")?;
    let task_id = id_from_arn(arn).ok_or_else(|| format!("failed to get ID from {arn}"))?;
    let family = str_of(v, "Family")?;
    let version = str_of(v, "Version")?;
    let containers = v
        .get("Containers")
        .and_then(Value::as_array)
        .ok_or("could not parse 'Containers'")?;
    let mut out = Vec::new();
    for c in containers {
        let docker_id = str_of(c, "DockerId")?;
        let mut pairs = vec![
            ("ContainerID".to_string(), docker_id.to_string()),
            (
                "DockerContainerName".into(),
                str_of(c, "DockerName")?.into(),
            ),
            ("ECSContainerName".into(), str_of(c, "Name")?.into()),
            ("TaskDefinitionFamily".into(), family.into()),
            ("TaskARN".into(), arn.into()),
            ("TaskID".into(), task_id.into()),
            ("TaskDefinitionVersion".into(), version.into()),
        ];
        pairs.extend(cluster.iter().cloned());
        let short: String = docker_id.chars().take(SHORT_ID).collect();
        out.push((short, encode(&pairs)));
    }
    Ok(out)
}

impl Shared {
    fn client(&self) -> Result<&HttpClient, String> {
        self.client
            .get_or_init(|| {
                let net = NetOptions {
                    io_timeout: Some(Duration::from_secs(10)),
                    ..NetOptions::default()
                };
                crate::http::client(&self.url, &TlsOptions::default(), &net)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn get_json(&self, path: &str) -> Result<Value, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let a = crate::http::get(self.client()?, path, &[]).await?;
        if a.status != 200 {
            return Err(format!("GET {path}: HTTP {}", a.status));
        }
        serde_json::from_slice(&a.body).map_err(|e| format!("GET {path}: not JSON: {e}"))
    }

    async fn fetch_cluster(self: Arc<Self>) {
        match self
            .get_json(CLUSTER_PATH)
            .await
            .and_then(|v| cluster_of(&v))
        {
            Ok(c) => *self.cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(c)),
            Err(e) => {
                self.warn.warn(|| {
                    format!(
                        "[filter:ecs:{}] Failed to get metadata from {CLUSTER_PATH}, will retry: {e}",
                        self.instance
                    )
                });
                *self.cluster_next.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + Duration::from_secs(5));
            }
        }
        self.cluster_busy.store(false, Ordering::Release);
    }

    async fn fetch_task(self: Arc<Self>, short: String, cluster: Cluster) {
        let path = format!("/v1/tasks?dockerid={short}");
        let result = self
            .get_json(&path)
            .await
            .and_then(|v| task_containers(&v, &cluster));
        let now = Instant::now();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(all) if all.iter().any(|(s, _)| *s == short) => {
                for (s, meta) in all {
                    tasks.insert(s, TaskSlot::Ready(Arc::new(meta), now));
                }
            }
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => format!("the task answer does not list container {short}"),
                };
                let count = match tasks.get(&short) {
                    Some(TaskSlot::Failed { count, .. }) => count + 1,
                    _ => 1,
                };
                tasks.insert(short.clone(), TaskSlot::Failed { count, at: now });
                drop(tasks);
                self.warn.warn(|| {
                    format!(
                        "[filter:ecs:{}] Failed to get ECS Task metadata for container {short} ({count} times), falling back to cluster metadata only: {e}",
                        self.instance
                    )
                });
            }
        }
    }
}

impl Filter for Ecs {
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let sh = &self.shared;
        let cluster = sh.cluster.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(cluster) = cluster else {
            if !sh.cluster_busy.load(Ordering::Acquire) {
                let due = sh
                    .cluster_next
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none_or(|t| Instant::now() >= t);
                if due
                    && !sh.cluster_busy.swap(true, Ordering::AcqRel)
                    && !self.worker.spawn(sh.clone().fetch_cluster())
                {
                    sh.cluster_busy.store(false, Ordering::Release);
                }
            }
            sh.without_metadata.fetch_add(1, Ordering::Relaxed);
            return Verdict::Keep;
        };
        let mut meta: Option<Meta> = None;
        if !sh.cluster_only {
            let tag = cx.tag.as_bytes();
            let short = (tag.len() >= sh.prefix.len() + SHORT_ID
                && tag.starts_with(sh.prefix.as_bytes()))
            .then(|| {
                String::from_utf8_lossy(&tag[sh.prefix.len()..sh.prefix.len() + SHORT_ID])
                    .into_owned()
            });
            match short {
                None => sh.warn.warn(|| {
                    format!(
                        "[filter:ecs:{}] Tag '{}' is expected to be or be prefixed with '{{ecs_tag_prefix}}{{12 character container short ID}}'",
                        sh.instance, cx.tag
                    )
                }),
                Some(short) => {
                    let now = Instant::now();
                    let mut tasks = sh.tasks.lock().unwrap_or_else(|e| e.into_inner());
                    let start = match tasks.get(&short) {
                        Some(TaskSlot::Ready(m, at)) if now.duration_since(*at) < sh.ttl => {
                            meta = Some(m.clone());
                            false
                        }
                        Some(TaskSlot::Pending) => false,
                        Some(TaskSlot::Failed { count, at }) => {
                            *count < sh.retries && now.duration_since(*at) >= Duration::from_secs(5)
                        }
                        _ => true,
                    };
                    if start {
                        if tasks.len() >= 4096 {
                            tasks.retain(|_, s| matches!(s, TaskSlot::Ready(_, at) if now.duration_since(*at) < sh.ttl));
                        }
                        let keep_count = match tasks.get(&short) {
                            Some(TaskSlot::Failed { count, at }) => Some((*count, *at)),
                            _ => None,
                        };
                        tasks.insert(short.clone(), TaskSlot::Pending);
                        drop(tasks);
                        if !self.worker.spawn(sh.clone().fetch_task(short.clone(), cluster.clone())) {
                            let (count, at) = keep_count.unwrap_or((1, now));
                            sh.tasks
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(short, TaskSlot::Failed { count, at });
                        }
                    }
                }
            }
            if meta.is_none() {
                sh.without_metadata.fetch_add(1, Ordering::Relaxed);
            }
        }
        let meta = meta.unwrap_or_else(|| Arc::new(encode(&cluster)));
        let mut value = String::new();
        for (key, template) in &sh.adds {
            template.render(cx.tag, |ra| ra.lookup(&meta), &mut value);
            let k = record.put_str(key.as_bytes());
            let v = record.put_str(value.as_bytes());
            record.push(k, v);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_arns() {
        assert_eq!(
            id_from_arn("arn:aws:ecs:us-west-2:012345678910:task/default/e01d58a8-151b-40e8-bc01-22647b9ecfec"),
            Some("e01d58a8-151b-40e8-bc01-22647b9ecfec")
        );
        assert_eq!(id_from_arn("no-slash"), None);
        assert_eq!(id_from_arn("a/"), None);
    }
}
