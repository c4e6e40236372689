//! `kubernetes`: Kubernetes metadata on every record (Fluent Bit's `filter_kubernetes`).
//!
//! The tag (after `Kube_Tag_Prefix`) gives pod, namespace, container and container id
//! (Fluent Bit's pattern, or the `[PARSER]` named by `Regex_Parser`; with `Use_Journal`, the
//! journal's `CONTAINER_NAME`). The API server (`GET /api/v1/namespaces/<ns>/pods/<pod>`) or,
//! with `Use_Kubelet`, the kubelet (`GET /pods`) gives the rest, and the record gets, after
//! its own keys (and the merged `log` fields, `Merge_Log`):
//!
//! ```text
//! "kubernetes": {pod_name, namespace_name, pod_id, labels, annotations, [ownerReferences],
//!                host, pod_ip, container_name, docker_id, container_hash, container_image}
//! "kubernetes_namespace": {name, labels, annotations}   (Namespace_Labels / _Annotations)
//! ```
//!
//! in that order, each key present when its source has it, as Fluent Bit writes them.
//!
//! **Never waiting on the network.** Metadata is requested in the background (see
//! [`crate::worker`]) and kept per pod (bounded to 1024 pods, `Kube_Meta_Cache_TTL`) and per
//! namespace (`Kube_Meta_Namespace_Cache_TTL`): the API server sees one request per pod, not
//! per record. The first record of a pod waits for the answer at most [`FIRST_WAIT`] (50 ms)
//! — long enough for a healthy API server, so records get their full metadata from the
//! first line on — and only while the API server answers: after a failure no record waits
//! until a request succeeds again. A record whose metadata is not there (yet) goes on with
//! what the tag gives (`pod_name`, `namespace_name`, `container_name`, `docker_id`), counted
//! in `fluentbit_kubernetes_records_without_metadata_total` with a warning at most every 10 s.
//! A failed request is not repeated for `Kube_Meta_Negative_Cache_TTL` (60 s).
//!
//! **Differences from Fluent Bit**, on purpose:
//! * Fluent Bit blocks the pipeline on every request (and on `DNS_Retries` × `DNS_Wait_Time`
//!   at start); here nothing waits beyond [`FIRST_WAIT`]. `DNS_Retries`/`DNS_Wait_Time` are
//!   accepted; a name that does not resolve yet is an ordinary failed request, retried.
//! * When metadata cannot be had, Fluent Bit adds no `kubernetes` key at all; here the record
//!   gets what its tag gives (and `kubernetes_namespace` its `name`).
//! * Metadata is cached per pod rather than per container: a pod's containers share one
//!   request. With `Use_Kubelet`, one `/pods` answer fills the cache for every pod of the
//!   node (Fluent Bit asks the kubelet again for each new container).
//! * A per-container annotation (`fluentbit.io/parser-<container>`) applies to that container
//!   only, as the docs say (Fluent Bit compares a prefix, so `-app` also hits `application`);
//!   a kubelet list item is the pod whose name is the tag's, exactly (Fluent Bit compares a
//!   prefix there too).
//! * With a parser (`Merge_Parser`, annotation) that finds no time in `log`, the record keeps
//!   its time (Fluent Bit stamps it with the filter's clock).
//! * A pod's parser annotation also applies to records without a `stream` key when it is the
//!   same for both streams, as the docs say (Fluent Bit compares the two names' pointers,
//!   which never match, so it never applies one there).
//! * `Cache_Use_Docker_Id`: a container id the cached pod does not list makes one new
//!   request (at most every 10 s per pod) while the cached metadata is still served.
//! * The `aws_*pod_association*` / `set_platform` keys (CloudWatch entity fields) are
//!   accepted and ignored with a warning.

mod cache;
pub mod client;
pub mod merge;
pub mod pod;
pub mod tag;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kb_aws::http::{NetOptions, TlsOptions};
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::plugin::{LineParser, ParserLookup};
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};

use self::cache::{Cache, Lookup, CAPACITY};
use self::client::{Source, Token, TokenSource};
use self::merge::MergeOptions;
use self::pod::{Include, NamespaceDoc, PodDoc, PropIssue, Props as PodProps};
use self::tag::{TagMeta, TagReader};
use crate::worker::{RateLimited, Worker};

/// The longest a record waits for its pod's first answer (see the module documentation).
pub const FIRST_WAIT: Duration = Duration::from_millis(50);

/// Fluent Bit's defaults.
pub const DEFAULT_KUBE_URL: &str = "https://kubernetes.default.svc";
pub const DEFAULT_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const DEFAULT_TAG_PREFIX: &str = "kube.var.log.containers.";

const KEYS: &[KeySpec] = &[
    KeySpec::new("buffer_size", KeyType::Size, Some("32K"), "buffer size to receive response from API server (0: no limit)"),
    KeySpec::new("tls.debug", KeyType::SignedInt, Some("0"), "set TLS debug level (accepted, no effect)"),
    KeySpec::new("tls.verify", KeyType::Bool, Some("true"), "enable or disable verification of TLS peer certificate"),
    KeySpec::new("tls.vhost", KeyType::Str, None, "set optional TLS virtual host"),
    KeySpec::new("tls.verify_hostname", KeyType::Bool, Some("off"), "enable or disable to verify hostname"),
    KeySpec::new("merge_log", KeyType::Bool, Some("false"), "merge 'log' key content as individual keys"),
    KeySpec::new("merge_parser", KeyType::Str, None, "specify a 'parser' name to parse the 'log' key content"),
    KeySpec::new("merge_log_key", KeyType::Str, None, "set the 'key' name where the content of 'key' will be placed. Only used if the option 'merge_log' is enabled"),
    KeySpec::new("merge_log_trim", KeyType::Bool, Some("true"), "remove ending '\\n' or '\\r' characters from the log content"),
    KeySpec::new("keep_log", KeyType::Bool, Some("true"), "keep original log content if it was successfully parsed and merged"),
    KeySpec::new("kube_url", KeyType::Str, Some(DEFAULT_KUBE_URL), "Kubernetes API server URL"),
    KeySpec::new("kube_meta_preload_cache_dir", KeyType::Str, None, "set directory with metadata files"),
    KeySpec::new("kube_ca_file", KeyType::Str, Some(DEFAULT_CA_FILE), "Kubernetes TLS CA file"),
    KeySpec::new("kube_ca_path", KeyType::Str, None, "Kubernetes TLS ca path"),
    KeySpec::new("kube_tag_prefix", KeyType::Str, Some(DEFAULT_TAG_PREFIX), "prefix used in tag by the input plugin"),
    KeySpec::new("kube_namespace_file", KeyType::Str, Some("/var/run/secrets/kubernetes.io/serviceaccount/namespace"), "Kubernetes namespace file"),
    KeySpec::new("kube_token_file", KeyType::Str, Some(DEFAULT_TOKEN_FILE), "Kubernetes authorization token file"),
    KeySpec::new("kube_token_command", KeyType::Str, None, "command to get Kubernetes authorization token"),
    KeySpec::new("labels", KeyType::Bool, Some("true"), "include Kubernetes labels on every record"),
    KeySpec::new("annotations", KeyType::Bool, Some("true"), "include Kubernetes annotations on every record"),
    KeySpec::new("owner_references", KeyType::Bool, Some("false"), "include Kubernetes owner references on every record"),
    KeySpec::new("namespace_labels", KeyType::Bool, Some("false"), "include Kubernetes namespace labels on every record"),
    KeySpec::new("namespace_annotations", KeyType::Bool, Some("false"), "include Kubernetes namespace annotations on every record"),
    KeySpec::new("namespace_exclude", KeyType::Bool, Some("false"), "allow namespaces to exclude their pods' logs via the fluentbit.io/exclude annotation (requires access to the namespaces API)"),
    KeySpec::new("namespace_metadata_only", KeyType::Bool, Some("false"), "ignore pod metadata entirely and only fetch namespace metadata"),
    KeySpec::new("k8s-logging.parser", KeyType::Bool, Some("false"), "allow Pods to suggest a parser"),
    KeySpec::new("k8s-logging.exclude", KeyType::Bool, Some("false"), "allow Pods to exclude themselves from the logging pipeline"),
    KeySpec::new("use_journal", KeyType::Bool, Some("false"), "use Journald (Systemd) mode"),
    KeySpec::new("regex_parser", KeyType::Str, None, "optional regex parser to extract metadata from container name or container log file name"),
    KeySpec::new("dummy_meta", KeyType::Bool, Some("false"), "use 'dummy' metadata, do not talk to API server"),
    KeySpec::new("dns_retries", KeyType::SignedInt, Some("6"), "dns lookup retries N times until the network start working (accepted: failed lookups are retried in the background)"),
    KeySpec::new("dns_wait_time", KeyType::Time, Some("30"), "dns interval between network status checks (accepted)"),
    KeySpec::new("cache_use_docker_id", KeyType::Bool, Some("false"), "fetch K8s meta when docker_id is changed"),
    KeySpec::new("use_tag_for_meta", KeyType::Bool, Some("false"), "use tag associated to retrieve metadata instead of kube-server"),
    KeySpec::new("use_kubelet", KeyType::Bool, Some("false"), "use kubelet to get metadata instead of kube-server"),
    KeySpec::new("kubelet_host", KeyType::Str, Some("127.0.0.1"), "kubelet host to connect with when using kubelet"),
    KeySpec::new("kubelet_port", KeyType::Int, Some("10250"), "kubelet port to connect with when using kubelet"),
    KeySpec::new("kube_token_ttl", KeyType::Time, Some("10m"), "kubernetes token ttl, until it is reread from the token file"),
    KeySpec::new("kube_meta_io_timeout", KeyType::Time, Some("30s"), "network read timeout for the API server / kubelet metadata request (0: 60 s)"),
    KeySpec::new("kube_meta_negative_cache_ttl", KeyType::Time, Some("60s"), "how long a failed pod metadata lookup is remembered (records pass with the tag's metadata meanwhile)"),
    KeySpec::new("kube_meta_cache_ttl", KeyType::Time, Some("0"), "configurable TTL for K8s cached metadata (0: no TTL, oldest entries evicted when full)"),
    KeySpec::new("kube_meta_namespace_cache_ttl", KeyType::Time, Some("15m"), "configurable TTL for K8s cached namespace metadata"),
    KeySpec::new("aws_use_pod_association", KeyType::Bool, Some("false"), "use custom endpoint to get pod to service name mapping (not supported: ignored)"),
    KeySpec::new("use_pod_association", KeyType::Bool, Some("false"), "same as aws_use_pod_association (not supported: ignored)"),
    KeySpec::new("aws_pod_association_host", KeyType::Str, Some("cloudwatch-agent.amazon-cloudwatch"), "host to connect with when performing pod to service name association"),
    KeySpec::new("aws_pod_association_endpoint", KeyType::Str, Some("/kubernetes/pod-to-service-env-map"), "endpoint to connect with when performing pod to service name association"),
    KeySpec::new("aws_pod_association_port", KeyType::Int, Some("4311"), "port to connect with when performing pod to service name association"),
    KeySpec::new("aws_pod_service_map_ttl", KeyType::Int, Some("0"), "configurable TTL for pod to service map storage"),
    KeySpec::new("aws_pod_service_map_refresh_interval", KeyType::Int, Some("60"), "refresh interval for the pod to service map storage"),
    KeySpec::new("aws_pod_service_preload_cache_dir", KeyType::Str, None, "set directory with pod to service map files"),
    KeySpec::new("aws_pod_association_host_server_ca_file", KeyType::Str, Some("/etc/amazon-cloudwatch-observability-agent-server-cert/tls-ca.crt"), "TLS CA certificate path for communication with agent server"),
    KeySpec::new("aws_pod_association_host_client_cert_file", KeyType::Str, Some("/etc/amazon-cloudwatch-observability-agent-client-cert/client.crt"), "Client Certificate path for enabling mTLS on calls to agent server"),
    KeySpec::new("aws_pod_association_host_client_key_file", KeyType::Str, Some("/etc/amazon-cloudwatch-observability-agent-client-cert/client.key"), "Client Certificate Key path for enabling mTLS on calls to agent server"),
    KeySpec::new("aws_pod_association_host_tls_debug", KeyType::SignedInt, Some("0"), "set TLS debug level"),
    KeySpec::new("aws_pod_association_host_tls_verify", KeyType::Bool, Some("true"), "enable or disable verification of TLS peer certificate"),
    KeySpec::new("set_platform", KeyType::Str, None, "Set the platform that kubernetes is in (k8s or eks; testing only)"),
];

/// The `kubernetes` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "kubernetes",
        description: "Filter to append Kubernetes metadata",
        keys: KEYS,
    },
    build,
};

/// Where pod metadata comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Api,
    Kubelet,
    /// `Use_Tag_For_Meta`: the tag only, no requests.
    TagOnly,
    /// `Dummy_Meta`.
    Dummy,
}

/// The validated configuration.
struct Config {
    instance: String,
    mode: Mode,
    kube_url: String,
    kubelet_url: String,
    tls: TlsOptions,
    io_timeout: Duration,
    buffer_size: usize,
    token_ttl: Duration,
    tag_prefix: String,
    journal: bool,
    include: Include,
    namespace_exclude: bool,
    namespace_metadata_only: bool,
    allow_parser: bool,
    allow_exclude: bool,
    merge: Option<MergeOptions>,
    merge_parser: Option<Arc<dyn LineParser>>,
    cache_use_docker_id: bool,
    pod_ttl: Duration,
    namespace_ttl: Duration,
    negative_ttl: Duration,
    preload_dir: Option<PathBuf>,
}

struct State {
    /// What each tag said (`None`: nothing), bounded like the caches.
    tags: HashMap<String, Option<Arc<TagMeta>>>,
    pods: Cache<PodDoc>,
    namespaces: Cache<NamespaceDoc>,
    /// When a pod was last requested again for an unknown container id.
    docker_id_refresh: HashMap<String, Instant>,
}

/// The HTTP clients, made by the worker at its first request.
struct Clients {
    api: Result<Source, String>,
    kubelet: Option<Result<Source, String>>,
}

/// What the filter and its background requests share.
struct Shared {
    cfg: Config,
    state: Mutex<State>,
    /// Signalled after each answer (or failure).
    answered: Condvar,
    clients: OnceLock<Clients>,
    token: Token,
    parsers: Arc<dyn ParserLookup>,
    /// Whether the last request failed: records do not wait for answers then.
    failing: AtomicBool,
    requests: Arc<AtomicU64>,
    request_errors: Arc<AtomicU64>,
    without_metadata: Arc<AtomicU64>,
    warn_request: RateLimited,
    warn_missing: RateLimited,
    warn_tag: RateLimited,
    warn_props: RateLimited,
}

/// A configured `kubernetes` instance.
pub struct Kubernetes {
    shared: Arc<Shared>,
    worker: Worker,
    tag_reader: TagReader,
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let flag = |key: &str, errors: &mut Vec<ConfigError>| match props.bool(key) {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            errors.push(e);
            false
        }
    };
    let use_kubelet = flag("use_kubelet", &mut errors);
    let use_tag_for_meta = flag("use_tag_for_meta", &mut errors);
    let dummy = flag("dummy_meta", &mut errors);
    let journal = flag("use_journal", &mut errors);
    let include = Include {
        labels: flag("labels", &mut errors),
        annotations: flag("annotations", &mut errors),
        owner_references: flag("owner_references", &mut errors),
        namespace_labels: flag("namespace_labels", &mut errors),
        namespace_annotations: flag("namespace_annotations", &mut errors),
    };
    let namespace_exclude = flag("namespace_exclude", &mut errors);
    let namespace_metadata_only = flag("namespace_metadata_only", &mut errors);
    let allow_parser = flag("k8s-logging.parser", &mut errors);
    let allow_exclude = flag("k8s-logging.exclude", &mut errors);
    let merge_log = flag("merge_log", &mut errors);
    let trim = flag("merge_log_trim", &mut errors);
    let keep_log = flag("keep_log", &mut errors);
    let cache_use_docker_id = flag("cache_use_docker_id", &mut errors);
    let tls_verify = flag("tls.verify", &mut errors);
    let verify_hostname = flag("tls.verify_hostname", &mut errors);
    if flag("aws_use_pod_association", &mut errors) || flag("use_pod_association", &mut errors) {
        svc.warn(
            props.location.clone(),
            format!(
                "[filter {}] pod to service association (aws_use_pod_association) is not supported; the aws_entity_* fields are not added",
                props.instance
            ),
        );
    }
    let secs = |key: &str, errors: &mut Vec<ConfigError>| match props.time_secs(key) {
        Ok(v) => Duration::from_secs(v.unwrap_or(0)),
        Err(e) => {
            errors.push(e);
            Duration::ZERO
        }
    };
    let token_ttl = secs("kube_token_ttl", &mut errors);
    let io_timeout = secs("kube_meta_io_timeout", &mut errors);
    let negative_ttl = secs("kube_meta_negative_cache_ttl", &mut errors);
    let pod_ttl = secs("kube_meta_cache_ttl", &mut errors);
    let namespace_ttl = secs("kube_meta_namespace_cache_ttl", &mut errors);
    let buffer_size = match props.size("buffer_size") {
        Ok(v) => usize::try_from(v.unwrap_or(0)).unwrap_or(usize::MAX),
        Err(e) => {
            errors.push(e);
            0
        }
    };
    let kube_url = props
        .str("kube_url")
        .unwrap_or(DEFAULT_KUBE_URL)
        .trim_end_matches('/')
        .to_string();
    if !(kube_url.starts_with("http://") || kube_url.starts_with("https://")) {
        errors.push(props.error(
            "kube_url",
            format!("invalid Kube_URL '{kube_url}': it must start with http:// or https://"),
        ));
    } else if let Err(e) = kb_aws::endpoint::Endpoint::parse(&kube_url, None) {
        errors.push(props.error("kube_url", format!("invalid Kube_URL '{kube_url}': {e}")));
    }
    let kubelet_host = props.str("kubelet_host").unwrap_or("127.0.0.1");
    let kubelet_port = match props.u64("kubelet_port") {
        Ok(v) => v.unwrap_or(10250),
        Err(e) => {
            errors.push(e);
            10250
        }
    };
    if kubelet_port == 0 || kubelet_port > 65535 {
        errors.push(props.error("kubelet_port", format!("invalid port {kubelet_port}")));
    }
    let host = if kubelet_host.contains(':') && !kubelet_host.starts_with('[') {
        format!("[{kubelet_host}]")
    } else {
        kubelet_host.to_string()
    };
    // Fluent Bit reaches the kubelet over https, unless metadata is preloaded from files.
    let kubelet_url = format!("https://{host}:{kubelet_port}");
    let parser = |key: &str, errors: &mut Vec<ConfigError>| -> Option<Arc<dyn LineParser>> {
        let name = props.str(key)?;
        match svc.parsers.parser(name) {
            Some(p) => Some(p),
            None => {
                errors.push(props.error(key, format!("parser '{name}' is not defined")));
                None
            }
        }
    };
    let merge_parser = parser("merge_parser", &mut errors);
    let regex_parser = parser("regex_parser", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let token = match props.str("kube_token_command") {
        Some(c) => TokenSource::Command(c.to_string()),
        None => TokenSource::File(PathBuf::from(
            props.str("kube_token_file").unwrap_or(DEFAULT_TOKEN_FILE),
        )),
    };
    let tls = TlsOptions {
        verify: tls_verify,
        verify_hostname,
        ca_file: props.str("kube_ca_file").map(PathBuf::from),
        ca_path: props.str("kube_ca_path").map(PathBuf::from),
        vhost: props.str("tls.vhost").map(str::to_string),
        ..TlsOptions::default()
    };
    let mode = if dummy {
        Mode::Dummy
    } else if use_tag_for_meta {
        Mode::TagOnly
    } else if use_kubelet {
        Mode::Kubelet
    } else {
        Mode::Api
    };
    let cfg = Config {
        instance: props.instance.clone(),
        mode,
        kube_url,
        kubelet_url,
        tls,
        io_timeout,
        buffer_size,
        token_ttl,
        tag_prefix: props
            .str("kube_tag_prefix")
            .unwrap_or(DEFAULT_TAG_PREFIX)
            .to_string(),
        journal,
        include,
        namespace_exclude,
        namespace_metadata_only,
        allow_parser,
        allow_exclude,
        merge: merge_log.then(|| MergeOptions {
            key: props.str("merge_log_key").map(str::to_string),
            trim,
            keep_log,
        }),
        merge_parser,
        cache_use_docker_id,
        pod_ttl,
        namespace_ttl,
        negative_ttl,
        preload_dir: props.str("kube_meta_preload_cache_dir").map(PathBuf::from),
    };
    let label = [("name", props.instance.as_str())];
    let shared = Shared {
        state: Mutex::new(State {
            tags: HashMap::new(),
            pods: Cache::new(CAPACITY, cfg.pod_ttl, cfg.negative_ttl),
            namespaces: Cache::new(CAPACITY, cfg.namespace_ttl, cfg.negative_ttl),
            docker_id_refresh: HashMap::new(),
        }),
        answered: Condvar::new(),
        clients: OnceLock::new(),
        token: Token::new(token, cfg.token_ttl),
        parsers: svc.parsers.clone(),
        failing: AtomicBool::new(false),
        requests: svc
            .metrics
            .counter("fluentbit_kubernetes_requests_total", &label),
        request_errors: svc
            .metrics
            .counter("fluentbit_kubernetes_request_errors_total", &label),
        without_metadata: svc.metrics.counter(
            "fluentbit_kubernetes_records_without_metadata_total",
            &label,
        ),
        warn_request: RateLimited::new(Duration::from_secs(10)),
        warn_missing: RateLimited::new(Duration::from_secs(10)),
        warn_tag: RateLimited::new(Duration::from_secs(10)),
        warn_props: RateLimited::new(Duration::from_secs(60)),
        cfg,
    };
    // The clients are made now when their files are there (reading CA files opens nothing
    // for writing), so the first record's wait is spent on the request; when they are not
    // (a dry run off the cluster) the worker tries again at its first request.
    if matches!(shared.cfg.mode, Mode::Api | Mode::Kubelet) {
        let clients = shared.make_clients();
        if clients.api.is_ok() && clients.kubelet.as_ref().is_none_or(|k| k.is_ok()) {
            let _ = shared.clients.set(clients);
        }
    }
    Ok(Box::new(Kubernetes {
        worker: Worker::new(format!("kb-meta-{}", props.instance)),
        shared: Arc::new(shared),
        tag_reader: match regex_parser {
            Some(p) => TagReader::Parser(p),
            None => TagReader::builtin(journal),
        },
    }))
}

/// The cache key of a pod.
fn pod_key(ns: &str, pod: &str) -> String {
    format!("{ns}/{pod}")
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clients(&self) -> &Clients {
        self.clients.get_or_init(|| self.make_clients())
    }

    fn make_clients(&self) -> Clients {
        {
            let net = NetOptions {
                io_timeout: Some(self.cfg.io_timeout).filter(|d| !d.is_zero()),
                ..NetOptions::default()
            };
            let make = |url: &str| {
                crate::http::client(url, &self.cfg.tls, &net).map(|client| Source {
                    client,
                    buffer_size: self.cfg.buffer_size,
                })
            };
            Clients {
                api: make(&self.cfg.kube_url),
                kubelet: (self.cfg.mode == Mode::Kubelet).then(|| make(&self.cfg.kubelet_url)),
            }
        }
    }

    fn outcome(&self, what: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("[filter:kubernetes:{}] connectivity OK", self.cfg.instance);
                }
            }
            Err(e) => {
                self.request_errors.fetch_add(1, Ordering::Relaxed);
                self.failing.store(true, Ordering::Relaxed);
                self.warn_request.warn(|| {
                    format!(
                        "[filter:kubernetes:{}] could not get meta for {what}: {e}",
                        self.cfg.instance
                    )
                });
            }
        }
    }

    /// Request pod `ns/pod` (from the API server, the kubelet or a preloaded file) and store
    /// the answer.
    async fn fetch_pod(self: Arc<Self>, ns: String, pod: String) {
        let key = pod_key(&ns, &pod);
        let inc = self.cfg.include;
        let result: Result<Vec<(String, PodDoc)>, String> = async {
            let doc = match client::preloaded(self.cfg.preload_dir.as_ref(), &ns, Some(&pod)) {
                Some(v) => v,
                None => {
                    let clients = self.clients();
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    match &clients.kubelet {
                        Some(k) => {
                            let k = k.as_ref().map_err(Clone::clone)?;
                            k.get_json("/pods", &self.token).await?
                        }
                        None => {
                            let api = clients.api.as_ref().map_err(Clone::clone)?;
                            let path = format!(
                                "/api/v1/namespaces/{}/pods/{}",
                                client::segment(&ns),
                                client::segment(&pod)
                            );
                            api.get_json(&path, &self.token).await?
                        }
                    }
                }
            };
            if doc.get("items").is_some() {
                let all = pod::pods_of_list(&doc, inc);
                if !all.iter().any(|(n, p, _)| *n == ns && *p == pod) {
                    return Err(format!("the kubelet does not list pod {ns}/{pod}"));
                }
                Ok(all
                    .into_iter()
                    .map(|(n, p, d)| (pod_key(&n, &p), d))
                    .collect())
            } else {
                let d = PodDoc::from_pod(&doc, inc)
                    .ok_or_else(|| "the answer has no pod metadata".to_string())?;
                Ok(vec![(key.clone(), d)])
            }
        }
        .await;
        let now = Instant::now();
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        {
            let mut st = self.lock();
            match result {
                Ok(docs) => {
                    for (k, d) in docs {
                        st.pods.ready(&k, Arc::new(d), now);
                    }
                }
                Err(_) => st.pods.failed(&key, now),
            }
        }
        self.answered.notify_all();
        self.outcome(&format!("POD {ns}/{pod}"), &outcome);
    }

    /// Request namespace `ns` from the API server (also with `Use_Kubelet`).
    async fn fetch_namespace(self: Arc<Self>, ns: String) {
        let result: Result<NamespaceDoc, String> = async {
            let doc = match client::preloaded(self.cfg.preload_dir.as_ref(), &ns, None) {
                Some(v) => v,
                None => {
                    let api = self.clients().api.as_ref().map_err(Clone::clone)?;
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let path = format!("/api/v1/namespaces/{}", client::segment(&ns));
                    api.get_json(&path, &self.token).await?
                }
            };
            NamespaceDoc::from_namespace(&doc)
                .ok_or_else(|| "the answer has no namespace metadata".to_string())
        }
        .await;
        let now = Instant::now();
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        {
            let mut st = self.lock();
            match result {
                Ok(d) => st.namespaces.ready(&ns, Arc::new(d), now),
                Err(_) => st.namespaces.failed(&ns, now),
            }
        }
        self.answered.notify_all();
        self.outcome(&format!("namespace {ns}"), &outcome);
    }
}

/// The stream a record says it comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
    /// Another value, or no `stream` key.
    Other,
}

fn stream_of(record: &Record<'_>) -> Stream {
    match record.find(b"stream").and_then(|i| record.str_value(i)) {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        _ => Stream::Other,
    }
}

/// Fluent Bit's `asctime` text for `Dummy_Meta` (UTC here).
fn asctime_now() -> String {
    let secs = i64::from(kb_core::EventTime::now().secs);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = kb_core::civil::civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {y}",
        WD[days.rem_euclid(7) as usize],
        MO[(m as usize).saturating_sub(1).min(11)],
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Kubernetes {
    /// What the tag says, cached per tag.
    fn tag_meta(&self, tag: &str, record: &Record<'_>) -> Option<Arc<TagMeta>> {
        if self.shared.cfg.journal {
            let i = record.find(b"CONTAINER_NAME")?;
            let name = record.str_value(i)?;
            return self.tag_reader.read(name).map(Arc::new);
        }
        let mut st = self.shared.lock();
        if let Some(m) = st.tags.get(tag) {
            return m.clone();
        }
        drop(st);
        let m = tag::parse_tag(
            &self.tag_reader,
            tag.as_bytes(),
            self.shared.cfg.tag_prefix.as_bytes(),
        )
        .map(Arc::new);
        st = self.shared.lock();
        if st.tags.len() >= CAPACITY {
            st.tags.clear();
        }
        st.tags.insert(tag.to_string(), m.clone());
        m
    }

    /// The pod's and the namespace's metadata if cached; requests what is missing and, for a
    /// pod seen for the first time, waits at most [`FIRST_WAIT`] for it.
    fn lookup(
        &self,
        tm: &TagMeta,
        ns: &str,
        want_pod: bool,
        want_ns: bool,
    ) -> (Option<Arc<PodDoc>>, Option<Arc<NamespaceDoc>>) {
        let sh = &self.shared;
        let pod = tm.pod_name.as_deref().filter(|_| want_pod);
        let pkey = pod.map(|p| pod_key(ns, p));
        let now = Instant::now();
        let mut st = sh.lock();
        let mut started = false;
        let mut pod_doc = None;
        if let (Some(p), Some(k)) = (pod, pkey.as_deref()) {
            match st.pods.lookup(k, now) {
                Lookup::Hit { value, refresh } => {
                    let mut again = refresh;
                    if sh.cfg.cache_use_docker_id && !again {
                        if let Some(id) = tm.docker_id.as_deref() {
                            let known = value
                                .statuses
                                .iter()
                                .any(|s| s.docker_id.as_deref() == Some(id));
                            let recent = st
                                .docker_id_refresh
                                .get(k)
                                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(10));
                            if !known && !recent {
                                if st.docker_id_refresh.len() >= CAPACITY {
                                    st.docker_id_refresh.clear();
                                }
                                st.docker_id_refresh.insert(k.to_string(), now);
                                again = true;
                            }
                        }
                    }
                    if again {
                        self.spawn_pod(&mut st, ns, p);
                    }
                    pod_doc = Some(value);
                }
                Lookup::Miss { start } => {
                    if start {
                        self.spawn_pod(&mut st, ns, p);
                        started = true;
                    }
                }
            }
        }
        let mut ns_doc = None;
        if want_ns {
            match st.namespaces.lookup(ns, now) {
                Lookup::Hit { value, refresh } => {
                    if refresh {
                        self.spawn_namespace(&mut st, ns);
                    }
                    ns_doc = Some(value);
                }
                Lookup::Miss { start } => {
                    if start {
                        self.spawn_namespace(&mut st, ns);
                        started = true;
                    }
                }
            }
        }
        if started && !sh.failing.load(Ordering::Relaxed) {
            let deadline = now + FIRST_WAIT;
            loop {
                let pod_waiting =
                    pod_doc.is_none() && pkey.as_deref().is_some_and(|k| st.pods.is_pending(k));
                let ns_waiting = want_ns && ns_doc.is_none() && st.namespaces.is_pending(ns);
                if !pod_waiting && !ns_waiting {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = sh
                    .answered
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let now = Instant::now();
            if pod_doc.is_none() {
                if let Some(k) = pkey.as_deref() {
                    if let Lookup::Hit { value, .. } = st.pods.lookup(k, now) {
                        pod_doc = Some(value);
                    }
                }
            }
            if want_ns && ns_doc.is_none() {
                if let Lookup::Hit { value, .. } = st.namespaces.lookup(ns, now) {
                    ns_doc = Some(value);
                }
            }
        }
        (pod_doc, ns_doc)
    }

    /// Request a pod in the background (`st`: the state, locked by the caller).
    fn spawn_pod(&self, st: &mut State, ns: &str, pod: &str) {
        let job = self
            .shared
            .clone()
            .fetch_pod(ns.to_string(), pod.to_string());
        if !self.worker.spawn(job) {
            st.pods.failed(&pod_key(ns, pod), Instant::now());
        }
    }

    /// Request a namespace in the background (`st`: the state, locked by the caller).
    fn spawn_namespace(&self, st: &mut State, ns: &str) {
        let job = self.shared.clone().fetch_namespace(ns.to_string());
        if !self.worker.spawn(job) {
            st.namespaces.failed(ns, Instant::now());
        }
    }

    fn props(&self, annotations: &[(String, String)], container: &str) -> PodProps {
        let cfg = &self.shared.cfg;
        let mut issues = Vec::new();
        let p = pod::props_for(
            annotations,
            container,
            cfg.allow_parser,
            cfg.allow_exclude,
            &mut issues,
        );
        if let Some(issue) = issues.first() {
            self.shared.warn_props.warn(|| match issue {
                PropIssue::NotAllowed(a) => {
                    format!(
                        "[filter:kubernetes:{}] annotation '{a}' not allowed",
                        cfg.instance
                    )
                }
                PropIssue::Invalid(a) => format!(
                    "[filter:kubernetes:{}] invalid annotation 'fluentbit.io/{a}'",
                    cfg.instance
                ),
            });
        }
        p
    }
}

impl Filter for Kubernetes {
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let sh = &self.shared;
        let cfg = &sh.cfg;
        if cfg.mode == Mode::Dummy {
            let v = record.build(|b| {
                kb_core::record::write_map_len(b, 1);
                kb_core::record::write_str(b, b"dummy");
                kb_core::record::write_str(b, asctime_now().as_bytes());
            });
            let k = record.put_str(b"kubernetes");
            if let Some(m) = &cfg.merge {
                merge::merge_log(record, cfg.merge_parser.as_deref(), m);
            }
            record.push(k, v);
            return Verdict::Keep;
        }
        let Some(tm) = self.tag_meta(cx.tag, record) else {
            sh.warn_tag.warn(|| {
                format!(
                    "[filter:kubernetes:{}] invalid pattern for given tag {}",
                    cfg.instance, cx.tag
                )
            });
            return Verdict::Keep;
        };
        let ns = tm.namespace_name.clone().unwrap_or_default();
        let remote = matches!(cfg.mode, Mode::Api | Mode::Kubelet);
        let want_pod = remote && !cfg.namespace_metadata_only;
        let want_ns_meta = cfg.include.namespace_labels || cfg.include.namespace_annotations;
        let want_ns = remote
            && !ns.is_empty()
            && (want_ns_meta || (cfg.namespace_exclude && cfg.allow_exclude));
        let (pod_doc, ns_doc) = if want_pod || want_ns {
            self.lookup(&tm, &ns, want_pod, want_ns)
        } else {
            (None, None)
        };
        if (want_pod && pod_doc.is_none()) || (want_ns && ns_doc.is_none()) {
            sh.without_metadata.fetch_add(1, Ordering::Relaxed);
            sh.warn_missing.warn(|| {
                format!(
                    "[filter:kubernetes:{}] no metadata (yet) for pod {}/{}: the record goes on with the tag's",
                    cfg.instance,
                    ns,
                    tm.pod_name.as_deref().unwrap_or("")
                )
            });
        }

        // Annotations: exclusion and the suggested parser.
        let container = tm.container_name.as_deref().unwrap_or("");
        let props = pod_doc
            .as_ref()
            .map(|d| self.props(&d.fluentbit_annotations, container))
            .unwrap_or_default();
        let ns_props = ns_doc
            .as_ref()
            .filter(|_| cfg.namespace_exclude)
            .map(|d| self.props(&d.fluentbit_annotations, container))
            .unwrap_or_default();
        let excluded = |pod: Option<bool>, ns: Option<bool>| match pod {
            Some(v) => v,
            None => ns == Some(true),
        };
        let stream = stream_of(record);
        let (exclude, parser_name) = match stream {
            Stream::Stdout => (
                excluded(props.stdout_exclude, ns_props.stdout_exclude),
                props.stdout_parser.clone(),
            ),
            Stream::Stderr => (
                excluded(props.stderr_exclude, ns_props.stderr_exclude),
                props.stderr_parser.clone(),
            ),
            Stream::Other => (
                excluded(props.stdout_exclude, ns_props.stdout_exclude)
                    && excluded(props.stderr_exclude, ns_props.stderr_exclude),
                props
                    .stdout_parser
                    .clone()
                    .filter(|p| props.stderr_parser.as_ref() == Some(p)),
            ),
        };
        if exclude {
            return Verdict::Drop;
        }

        if let Some(m) = &cfg.merge {
            let suggested = parser_name.and_then(|name| {
                let p = sh.parsers.parser(&name);
                if p.is_none() {
                    sh.warn_props.warn(|| {
                        format!(
                            "[filter:kubernetes:{}] annotation parser '{name}' not found (ns='{ns}' pod_name='{}', container_name='{container}')",
                            cfg.instance,
                            tm.pod_name.as_deref().unwrap_or("")
                        )
                    });
                }
                p
            });
            let parser = suggested.as_deref().or(cfg.merge_parser.as_deref());
            merge::merge_log(record, parser, m);
        }

        if !cfg.namespace_metadata_only {
            let v = record.build(|b| pod::write_pod_map(b, &tm, pod_doc.as_deref()));
            let k = record.put_str(b"kubernetes");
            record.push(k, v);
        }
        if want_ns_meta && !ns.is_empty() {
            let v =
                record.build(|b| pod::write_namespace_map(b, &ns, ns_doc.as_deref(), cfg.include));
            let k = record.put_str(b"kubernetes_namespace");
            record.push(k, v);
        }
        Verdict::Keep
    }
}
