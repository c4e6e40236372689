//! The plugins of the family and their workers: one flush loop for every plugin, generic over
//! the [`Service`] it sends to. A flush prepares the chunk's pending records, then sends them
//! in put requests (PutRecords, PutRecordBatch) from the front of a queue (§6.2): accepted entries
//! are marked done in the chunk's progress and never sent again, never-acceptable ones are
//! dropped and counted, retryable ones go back to the front; after three backoff rounds in a row
//! that delivered nothing, or on an error only time can fix, what is still queued is handed back
//! to the engine as a Retry.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kb_aws::credentials::{CredentialCache, CredentialSettings};
use kb_aws::endpoint::Endpoint;
use kb_aws::error::ErrorClass;
use kb_aws::http::{proxy_from_env, HttpClient, ProxyOptions};
use kb_aws::sign::ClockSkew;
use kb_aws::sts_client::sts_http_client;
use kb_config::{ConfigError, PluginSpec, Props, SectionKind};
use kb_core::plugin::{FlushResult, Output, OutputWorker, PluginError};
use kb_core::registry::{OutputPlugin, ServiceContext};
use kb_core::{Chunk, Progress};
use tokio::sync::OnceCell;

use crate::accessor::random_key_of;
use crate::batch::{random_key_len, Key, Prepared, Preparer};
use crate::config::{self, Flavour, Settings};
use crate::encode::RecordsBody;
use crate::metrics::{
    self as names, DropReason, FallbackReason, KinesisMetrics, MetricNames, RequestResult,
};
use crate::ratelimit::{suppressed_note, LogLimiter};
use crate::response::{parse_response_as, EntryOutcome};
use crate::route::MissingStreams;
use crate::send::{Answer, Sender};
use crate::service::{Firehose, Service, Streams};
use crate::shards::{
    answered_shard_ids_any, list_shards_request, parse_list_shards, Limits, Shard, ShardState,
};

/// The `kinesis_streams` output plugin (Fluent Bit's, Kinesis Data Streams).
pub const PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "kinesis_streams",
        description: "Send logs to Amazon Kinesis Streams",
        keys: config::KEYS,
    },
    build: |p, svc| build::<Streams>(p, svc, Flavour::KinesisStreams, names::KINESIS_STREAMS),
};

/// The `kinesis_firehose` output plugin (Fluent Bit's, Kinesis Data Firehose).
pub const FIREHOSE_PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "kinesis_firehose",
        description: "Send logs to Amazon Kinesis Firehose",
        keys: config::FIREHOSE_KEYS,
    },
    build: |p, svc| build::<Firehose>(p, svc, Flavour::KinesisFirehose, names::KINESIS_FIREHOSE),
};

/// The `kinesis` output plugin: the keys and records of the Go plugin
/// amazon-kinesis-streams-for-fluent-bit, sent by the same sink as `kinesis_streams`.
pub const GO_KINESIS_PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "kinesis",
        description: "Amazon Kinesis Data Streams (the keys and records of the Go plugin amazon-kinesis-streams-for-fluent-bit)",
        keys: config::GO_KINESIS_KEYS,
    },
    build: |p, svc| build::<Streams>(p, svc, Flavour::GoKinesis, names::KINESIS_GO),
};

/// The `firehose` output plugin: the keys and records of the Go plugin
/// amazon-kinesis-firehose-for-fluent-bit, sent by the same sink as `kinesis_firehose`.
pub const GO_FIREHOSE_PLUGIN: OutputPlugin = OutputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Output,
        name: "firehose",
        description: "Amazon Kinesis Data Firehose (the keys and records of the Go plugin amazon-kinesis-firehose-for-fluent-bit)",
        keys: config::GO_FIREHOSE_KEYS,
    },
    build: |p, svc| build::<Firehose>(p, svc, Flavour::GoFirehose, names::FIREHOSE_GO),
};

/// Every output plugin of this crate, `kinesis_streams` first.
pub fn plugins() -> Vec<OutputPlugin> {
    vec![
        PLUGIN,
        FIREHOSE_PLUGIN,
        GO_KINESIS_PLUGIN,
        GO_FIREHOSE_PLUGIN,
    ]
}

/// Backoff rounds in a row without progress inside one flush before the remainder goes to the
/// engine (§6.2).
const MAX_ROUNDS: u32 = 3;

fn build<S: Service>(
    props: &Props,
    svc: &ServiceContext,
    flavour: Flavour,
    metric_names: MetricNames,
) -> Result<Arc<dyn Output>, Vec<ConfigError>> {
    let settings = config::parse_flavour(props, svc.json_escape_unicode, flavour)?;
    for w in &settings.warnings {
        svc.warn(
            props.location.clone(),
            format!("[output {}] {w}", settings.instance),
        );
    }
    let shards = settings.shard_aware.map(|sa| {
        Arc::new(ShardState::new(
            Limits {
                bytes_per_s: sa.bytes_per_s as f64,
                records_per_s: sa.records_per_s as f64,
            },
            sa.refresh,
            svc.metrics.clone(),
            &settings.instance,
        ))
    });
    Ok(Arc::new(KinesisOutput::<S> {
        shards,
        metrics: KinesisMetrics::with_names(svc.metrics.clone(), metric_names, &settings.instance),
        settings: Arc::new(settings),
        limiter: Arc::new(LogLimiter::default()),
        missing_streams: Arc::default(),
        credentials: OnceCell::new(),
        skew: Arc::new(ClockSkew::default()),
        service: std::marker::PhantomData,
    }))
}

/// One configured instance; its workers share credentials, counters and log limits.
pub struct KinesisOutput<S: Service> {
    settings: Arc<Settings>,
    metrics: KinesisMetrics,
    limiter: Arc<LogLimiter>,
    /// Per-record streams answered `ResourceNotFoundException` lately (all workers).
    missing_streams: Arc<MissingStreams>,
    credentials: OnceCell<CredentialCache>,
    skew: Arc<ClockSkew>,
    /// `shard_aware`: the shard map and buckets of all workers.
    shards: Option<Arc<ShardState>>,
    service: std::marker::PhantomData<S>,
}

impl<S: Service> KinesisOutput<S> {
    async fn credentials(&self) -> CredentialCache {
        let s = &self.settings;
        // §7.1, §8: the STS calls (`role_arn`, `EKS_POD_EXECUTION_ROLE`, web identity) use the
        // `tls.*` settings (not `tls.vhost`), `net.*` and the proxy of the output. `None`
        // (aws-config's default client) when no STS call can happen, or, after logging, when the
        // client cannot be built.
        let sts_http_client = || {
            let env_set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
            let role = s.role_arn.as_deref().is_some_and(|r| !r.trim().is_empty());
            if !(role
                || env_set("EKS_POD_EXECUTION_ROLE")
                || env_set("AWS_WEB_IDENTITY_TOKEN_FILE"))
            {
                return None;
            }
            let endpoint = s
                .sts_endpoint
                .clone()
                .unwrap_or_else(|| Endpoint::default_for("sts", &s.region, None));
            let built = self.proxy_for(&endpoint).and_then(|proxy| {
                sts_http_client(&endpoint, &s.tls, &s.net, proxy)
                    .map_err(|e| PluginError::new(e.to_string()))
            });
            match built {
                Ok(client) => Some(client),
                Err(e) => {
                    tracing::error!(
                        "[output {}] cannot build the STS HTTP client for {} ({e}); STS calls use the default HTTPS client without the tls.* and proxy settings",
                        s.instance,
                        endpoint.url()
                    );
                    None
                }
            }
        };
        self.credentials
            .get_or_init(|| async {
                CredentialCache::new(CredentialSettings {
                    region: s.region.clone(),
                    profile: s.profile.clone(),
                    role_arn: s.role_arn.clone(),
                    external_id: s.external_id.clone(),
                    sts_endpoint: s.sts_endpoint.as_ref().map(|e| e.url()),
                    sts_http_client: sts_http_client(),
                })
                .await
            })
            .await
            .clone()
    }

    /// The proxy for `target`: the `proxy` key, else the environment (unless
    /// `net.proxy_env_ignore`).
    fn proxy_for(&self, target: &Endpoint) -> Result<Option<ProxyOptions>, PluginError> {
        let s = &self.settings;
        let proxy = match &s.proxy {
            Some(url) => Some(url.clone()),
            None if s.proxy_env_ignore => None,
            None => proxy_from_env(target, |k| std::env::var(k).ok())
                .map_err(|e| PluginError::new(format!("invalid proxy in the environment: {e}")))?,
        };
        Ok(proxy.map(|url| ProxyOptions {
            url,
            tls: s.proxy_tls.clone(),
        }))
    }

    /// A sender of API calls to `endpoint` with the output's credentials and settings.
    async fn sender(&self, endpoint: &Endpoint) -> Result<Sender, PluginError> {
        let s = &self.settings;
        let proxy = self.proxy_for(endpoint)?;
        let client = HttpClient::new(endpoint, &s.tls, &s.net, proxy)
            .map_err(|e| PluginError::new(e.to_string()))?;
        Ok(Sender {
            target_prefix: S::TARGET_PREFIX,
            signing_name: S::SIGNING_NAME,
            client,
            endpoint: endpoint.clone(),
            region: s.region.clone(),
            credentials: self.credentials().await,
            skew: self.skew.clone(),
            auto_retry: s.auto_retry_requests,
        })
    }

    /// §9: DescribeStreamSummary must find the stream ACTIVE or UPDATING (Firehose:
    /// DescribeDeliveryStream, ACTIVE). A per-record stream checks its `stream_fallback`;
    /// a stream ARN is described by ARN on its account's control-plane endpoint.
    async fn healthcheck(&self, data_sender: &Sender) -> Result<(), PluginError> {
        let s = &self.settings;
        let stream = match (&s.stream_route, &s.stream_fallback) {
            (None, _) => &s.stream,
            (Some(_), Some(fallback)) => fallback,
            // Nothing to check; the configuration warned about it.
            (Some(_), None) => return Ok(()),
        };
        let (target, body) = match s.stream_by_arn {
            true => {
                S::describe_request_by_arn(stream).unwrap_or_else(|| S::describe_request(stream))
            }
            false => S::describe_request(stream),
        };
        let control;
        let sender = match &s.control_endpoint {
            Some(ep) => {
                control = self.sender(ep).await?;
                &control
            }
            None => data_sender,
        };
        let (answer, _) = sender.call(target, Bytes::from(body)).await;
        let fail = |why: String| {
            PluginError::new(format!(
                "healthcheck of {} '{}' failed: {why}",
                S::DESTINATION,
                stream
            ))
        };
        match answer {
            Answer::Ok(body) => {
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| fail(format!("unreadable {target} answer: {e}")))?;
                let (status, warning) = S::check_describe(&v, s.max_record_size).map_err(fail)?;
                if let Some(w) = warning {
                    tracing::warn!("{} {}: {w}", S::DESTINATION, stream);
                }
                tracing::info!("healthcheck: {} {} is {status}", S::DESTINATION, stream);
                Ok(())
            }
            Answer::Error(e, _) => Err(fail(format!(
                "{} (HTTP {}): {}",
                e.code, e.status, e.message
            ))),
            Answer::Transport(e) => Err(fail(e.to_string())),
            Answer::NoCredentials(e) => Err(fail(e)),
        }
    }
}

#[async_trait]
impl<S: Service> Output for KinesisOutput<S> {
    async fn new_worker(&self, index: usize) -> Result<Box<dyn OutputWorker>, PluginError> {
        let s = &self.settings;
        let sender = self.sender(&s.endpoint).await?;
        if index == 0 && s.healthcheck {
            self.healthcheck(&sender).await?;
        }
        let mut body = RecordsBody::with_protocol(&s.stream, s.protocol);
        if s.stream_by_arn {
            body.set_stream_arn(&s.stream);
        }
        let mut preparer = Preparer::new(s);
        preparer.set_missing_streams(self.missing_streams.clone());
        // ListShards is a control-plane call: a stream ARN's account has its own endpoint.
        let list_sender = match (&self.shards, &s.control_endpoint) {
            (Some(_), Some(ep)) => Some(self.sender(ep).await?),
            _ => None,
        };
        Ok(Box::new(KinesisWorker::<S> {
            shards: self.shards.clone(),
            list_sender,
            shard_gen: 0,
            req_gen: 0,
            entry_shard: Vec::new(),
            in_shard: Vec::new(),
            delayed: Vec::new(),
            preparer,
            missing_streams: self.missing_streams.clone(),
            random_key_len: random_key_len(s.flavour),
            body,
            body_stream: s.stream.clone(),
            prepared: Prepared::default(),
            queue: VecDeque::new(),
            in_request: Vec::new(),
            key_buf: String::new(),
            rng: fastrand::Rng::new(),
            sender,
            settings: s.clone(),
            metrics: self.metrics.clone(),
            limiter: self.limiter.clone(),
        }))
    }
}

/// One flush worker: its own connection pool and buffers.
pub struct KinesisWorker<S: Service> {
    settings: Arc<Settings>,
    metrics: KinesisMetrics,
    limiter: Arc<LogLimiter>,
    missing_streams: Arc<MissingStreams>,
    sender: Sender,
    preparer: Preparer,
    prepared: Prepared,
    random_key_len: usize,
    body: RecordsBody<S>,
    /// The stream `body` is addressed to (a name, or an ARN with `stream_arn`).
    body_stream: String,
    /// Entry indexes (into `prepared.entries`) still to send, in order.
    queue: VecDeque<usize>,
    in_request: Vec<usize>,
    key_buf: String,
    rng: fastrand::Rng,
    /// `shard_aware`: the shared shard state (`None`: blind sending, today's path).
    shards: Option<Arc<ShardState>>,
    /// The sender of ListShards when it is not `sender` (a stream ARN's control endpoint).
    list_sender: Option<Sender>,
    /// The map generation `entry_shard` was computed with (0: not yet for this flush).
    shard_gen: u64,
    /// The map generation the request in flight was built with.
    req_gen: u64,
    /// Per entry: the predicted shard of its fixed key ([`NO_SHARD`]: random key or a gap).
    entry_shard: Vec<u32>,
    /// Per entry of the request in flight: the shard its tokens were taken from.
    in_shard: Vec<u32>,
    /// Per entry: already counted as delayed in this flush.
    delayed: Vec<bool>,
}

/// No shard: a random key (drawn at each attempt) or a key in a gap of the map.
const NO_SHARD: u32 = u32::MAX;

/// Random keys drawn, at most, to find one whose shard has room.
const RANDOM_DRAWS: usize = 16;

/// `ProvisionedThroughputExceededException`.
const THROUGHPUT_EXCEEDED: &str = "ProvisionedThroughputExceededException";

/// How a split (§6.1: a whole-request rejection isolating a bad record) is progressing.
#[derive(Default)]
struct SplitGroup {
    /// Sizes of the requests still to send for the group (a stack: last = next).
    pending: Vec<usize>,
    accepted: usize,
    /// Single entries rejected alone, decided when the group ends.
    rejected: Vec<usize>,
}

enum Step {
    /// Keep sending.
    Continue,
    /// Wait out a backoff round first.
    Backoff,
    /// Stop: the rest goes back to the engine.
    Stop,
}

impl<S: Service> KinesisWorker<S> {
    /// Fill the body from the front of the queue (at most `limit` entries). Random keys are
    /// drawn here, so every attempt spreads over the shards anew.
    /// A request takes only entries of the stream of the first: no request mixes streams.
    fn build_request(&mut self, limit: Option<usize>) {
        let Self {
            body,
            body_stream,
            prepared,
            queue,
            in_request,
            key_buf,
            rng,
            random_key_len,
            settings,
            ..
        } = self;
        in_request.clear();
        let Some(&first) = queue.front() else {
            body.reset();
            return;
        };
        let stream = prepared.entries[first].stream;
        let name = prepared.stream(&prepared.entries[first]);
        if body_stream != name {
            if settings.stream_by_arn {
                body.set_stream_arn(name);
            } else {
                body.set_stream(name);
            }
            body_stream.clear();
            body_stream.push_str(name);
        }
        body.reset();
        while let Some(&e) = queue.front() {
            if limit.is_some_and(|l| in_request.len() >= l) {
                break;
            }
            let entry = &prepared.entries[e];
            if entry.stream != stream {
                break;
            }
            let key: &str = match &entry.key {
                // No key at all for a service without them.
                _ if !S::HAS_PARTITION_KEY => "",
                Key::Fixed(r) => &prepared.keys[r.clone()],
                Key::Random => {
                    random_key_of(rng, key_buf, *random_key_len);
                    key_buf
                }
            };
            if !body.try_push(&prepared.arena[entry.data.clone()], key) {
                break;
            }
            queue.pop_front();
            in_request.push(e);
        }
    }

    /// `shard_aware`: list the stream's shards when due (first flush, refresh interval, an
    /// answer naming an unknown shard; one worker at a time), and predict the shards of this
    /// flush's fixed keys again when the map changed.
    async fn refresh_shards(&mut self) {
        let Some(st) = self.shards.clone() else {
            return;
        };
        if st.claim_listing(tokio::time::Instant::now()) {
            match self.list_shards().await {
                Ok(shards) => {
                    let before: Option<Vec<String>> = st
                        .lock()
                        .as_ref()
                        .map(|c| c.map.shards().iter().map(|s| s.id.clone()).collect());
                    let mut now: Vec<String> = shards.iter().map(|s| s.id.clone()).collect();
                    now.sort();
                    // Info when the map is new or changed (a reshard); the periodic listings
                    // that find the same shards at debug.
                    let changed = before.is_none_or(|mut b| {
                        b.sort();
                        b != now
                    });
                    if changed {
                        tracing::info!(
                            "[output {}] {} has {} open shards",
                            self.settings.instance,
                            self.settings.stream,
                            shards.len()
                        );
                    } else {
                        tracing::debug!(
                            "[output {}] {}: the same {} open shards",
                            self.settings.instance,
                            self.settings.stream,
                            shards.len()
                        );
                    }
                    st.install(shards, tokio::time::Instant::now());
                }
                Err(e) => {
                    if let Some(n) = self.limiter.allow("list_shards") {
                        tracing::error!(
                            "ListShards of {} failed: {e}; keeping the shard map it has (without one, sending without shard limits) and trying again in 5 s{}",
                            self.settings.stream,
                            suppressed_note(n)
                        );
                    }
                    st.listing_failed(tokio::time::Instant::now());
                }
            }
        } else {
            // Another worker lists the shards for the first time: wait for its map (a few
            // milliseconds) rather than send blind and pack by key.
            for _ in 0..1000 {
                if !st.first_listing_pending() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let guard = st.lock();
        let Some(cur) = guard.as_ref() else { return };
        if cur.generation == self.shard_gen {
            return;
        }
        self.shard_gen = cur.generation;
        let prepared = &self.prepared;
        self.entry_shard.clear();
        self.entry_shard
            .extend(prepared.entries.iter().map(|entry| {
                match &entry.key {
                    Key::Fixed(r) => cur
                        .map
                        .shard_of_key(&prepared.keys[r.clone()])
                        .map_or(NO_SHARD, |i| i as u32),
                    Key::Random => NO_SHARD,
                }
            }));
    }

    /// Every open shard of the stream (ListShards, all pages).
    async fn list_shards(&self) -> Result<Vec<Shard>, String> {
        let s = &self.settings;
        let sender = self.list_sender.as_ref().unwrap_or(&self.sender);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        // A stream has at most tens of thousands of shards, 1,000 a page by default.
        for _ in 0..10_000 {
            let body = list_shards_request(&s.stream, s.stream_by_arn, next.as_deref());
            let (answer, _) = sender.call("ListShards", Bytes::from(body)).await;
            match answer {
                Answer::Ok(b) => {
                    let (shards, token) = parse_list_shards(&b).map_err(|e| e.to_string())?;
                    out.extend(shards);
                    match token {
                        Some(t) => next = Some(t),
                        None => return Ok(out),
                    }
                }
                Answer::Error(e, _) => {
                    return Err(format!("{} (HTTP {}): {}", e.code, e.status, e.message))
                }
                Answer::Transport(e) => return Err(e.to_string()),
                Answer::NoCredentials(e) => return Err(e),
            }
        }
        Err("ListShards kept answering a NextToken".into())
    }

    /// `shard_aware`: fill the body with queued entries whose shard has room (tokens taken
    /// now, so no other request of any worker counts them again), in queue order; the others
    /// stay queued, in order. A random key is drawn until it maps to a shard with room.
    /// `Some(wait)` when no entry could be taken: the time until the first one fits.
    fn build_request_shards(&mut self, limit: Option<usize>) -> Option<Duration> {
        let st = self.shards.clone()?;
        let mut guard = st.lock();
        let Some(cur) = guard.as_mut() else {
            // No map (ListShards failed): blind sending.
            drop(guard);
            self.build_request(limit);
            return None;
        };
        let Self {
            body,
            prepared,
            queue,
            in_request,
            in_shard,
            key_buf,
            rng,
            random_key_len,
            entry_shard,
            delayed,
            req_gen,
            ..
        } = self;
        *req_gen = cur.generation;
        in_request.clear();
        in_shard.clear();
        // One stream only (the configuration refuses templates with shard_aware).
        body.reset();
        let now = tokio::time::Instant::now();
        let mut wait: Option<Duration> = None;
        let mut full = false;
        for _ in 0..queue.len() {
            let Some(e) = queue.pop_front() else { break };
            if full || limit.is_some_and(|l| in_request.len() >= l) {
                full = true;
                queue.push_back(e);
                continue;
            }
            let entry = &prepared.entries[e];
            let data = &prepared.arena[entry.data.clone()];
            // Ok(shard with room or none known), Err(full shard).
            let chosen: Result<Option<usize>, usize> = match &entry.key {
                Key::Fixed(r) => {
                    let need = (data.len() + r.len()) as u64;
                    match entry_shard.get(e).copied().unwrap_or(NO_SHARD) {
                        NO_SHARD => Ok(None),
                        i => {
                            let i = i as usize;
                            match cur.buckets.get_mut(i).map(|b| b.has_room(now, need)) {
                                Some(true) => Ok(Some(i)),
                                Some(false) => Err(i),
                                None => Ok(None),
                            }
                        }
                    }
                }
                Key::Random => {
                    let mut pick = Ok(None);
                    for _ in 0..RANDOM_DRAWS {
                        random_key_of(rng, key_buf, *random_key_len);
                        let need = (data.len() + key_buf.len()) as u64;
                        pick = match cur.map.shard_of_key(key_buf) {
                            Some(i) if cur.buckets[i].has_room(now, need) => Ok(Some(i)),
                            Some(i) => Err(i),
                            None => Ok(None),
                        };
                        if pick.is_ok() {
                            break;
                        }
                    }
                    pick
                }
            };
            let key: &str = match &entry.key {
                Key::Fixed(r) => &prepared.keys[r.clone()],
                Key::Random => key_buf,
            };
            let need = (data.len() + key.len()) as u64;
            let shard = match chosen {
                Ok(shard) => shard,
                Err(i) => {
                    if let Some(d) = delayed.get_mut(e) {
                        if !*d {
                            *d = true;
                            kb_core::metrics::add(&cur.counters[i].delayed, 1);
                        }
                    }
                    let w = cur.buckets[i].wait_for(now, need);
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                    queue.push_back(e);
                    continue;
                }
            };
            if let Some(i) = shard {
                cur.buckets[i].try_take(now, need);
            }
            if !body.try_push(data, key) {
                if let Some(i) = shard {
                    cur.buckets[i].refund(need);
                }
                full = true;
                queue.push_back(e);
                continue;
            }
            in_request.push(e);
            in_shard.push(shard.map_or(NO_SHARD, |i| i as u32));
        }
        if in_request.is_empty() && !queue.is_empty() {
            let w = wait.unwrap_or(Duration::from_millis(10));
            Some(w.clamp(Duration::from_millis(1), Duration::from_secs(1)))
        } else {
            None
        }
    }

    /// `shard_aware`: count the answer per shard (sent, throttled), empty the bucket of a
    /// throttled shard, and mark the map stale when an accepted entry's `ShardId` is not the
    /// predicted one (a reshard). `true` when every throttled entry's shard has a bucket, so
    /// its retry waits for the bucket rather than for a backoff round.
    fn note_shard_outcomes(
        &mut self,
        body: &[u8],
        resp: &crate::response::PutRecordsResponse<'_>,
    ) -> bool {
        let Some(st) = self.shards.clone() else {
            return false;
        };
        let mut guard = st.lock();
        let Some(cur) = guard.as_mut() else {
            return false;
        };
        if cur.generation != self.req_gen {
            // Another worker installed a new map meanwhile: the indexes are of the old one.
            return false;
        }
        let now = tokio::time::Instant::now();
        let mut ids = answered_shard_ids_any(body).into_iter();
        let mut regulated = true;
        let mut stale = false;
        for (k, outcome) in resp.outcomes().enumerate() {
            let shard = self.in_shard.get(k).copied().unwrap_or(NO_SHARD) as usize;
            match outcome {
                EntryOutcome::Accepted => {
                    // Counted on the shard the answer names (a reshard may have moved the
                    // key), the predicted one when the answer names none.
                    let mut counted = shard;
                    let answered = ids.next();
                    if let Some(id) = answered {
                        if cur
                            .map
                            .shards()
                            .get(shard)
                            .is_none_or(|s| id != s.id.as_bytes())
                        {
                            stale = true;
                            counted = cur
                                .map
                                .shards()
                                .iter()
                                .position(|s| id == s.id.as_bytes())
                                .unwrap_or(usize::MAX);
                        }
                    }
                    if let Some(c) = cur.counters.get(counted) {
                        kb_core::metrics::add(&c.sent, 1);
                    }
                }
                EntryOutcome::Failed { code, .. } if code == THROUGHPUT_EXCEEDED => {
                    match (cur.counters.get(shard), cur.buckets.get_mut(shard)) {
                        (Some(c), Some(b)) => {
                            kb_core::metrics::add(&c.throttled, 1);
                            b.throttled(now);
                        }
                        _ => regulated = false,
                    }
                }
                EntryOutcome::Failed { .. } => regulated = false,
            }
        }
        drop(guard);
        if stale {
            tracing::debug!(
                "an answer names a shard the map does not predict: listing the shards again"
            );
            st.mark_stale();
        }
        regulated
    }

    fn accept(&mut self, e: usize, progress: &mut Progress) {
        let entry = &self.prepared.entries[e];
        kb_core::metrics::add(&self.metrics.sent_bytes, entry.data.len() as u64);
        for &r in self.prepared.members(entry) {
            progress.mark_done(r);
        }
    }

    fn reject(&mut self, e: usize, progress: &mut Progress) {
        let entry = &self.prepared.entries[e];
        let members = self.prepared.members(entry);
        for &r in members {
            progress.mark_dropped(r);
        }
        self.metrics
            .dropped(DropReason::Rejected, members.len() as u64);
    }

    /// Put `entries` back at the front of the queue, keeping their order.
    fn requeue(&mut self, entries: &[usize]) {
        for &e in entries.iter().rev() {
            self.queue.push_front(e);
        }
    }

    fn backoff(&mut self, round: u32) -> Duration {
        let cap_ms = (250u64 << round.min(8)).min(2_000);
        Duration::from_millis(self.rng.u64(0..=cap_ms))
    }

    /// Handle a 200 answer: per-entry outcomes.
    fn on_ok(
        &mut self,
        body: &[u8],
        progress: &mut Progress,
        group: &mut Option<SplitGroup>,
    ) -> (Step, RequestResult) {
        let sent = std::mem::take(&mut self.in_request);
        let stream = self.settings.stream.clone();
        let resp = match parse_response_as::<S>(body, sent.len(), self.body.protocol()) {
            Ok(r) => r,
            Err(e) => {
                if let Some(n) = self.limiter.allow("unparseable") {
                    tracing::error!("{e}{}", suppressed_note(n));
                }
                // Acceptance unknown: send them all again (at-least-once).
                self.requeue(&sent);
                kb_core::metrics::add(&self.metrics.in_flush_retries, sent.len() as u64);
                self.in_request = sent;
                return (Step::Backoff, RequestResult::ServerError);
            }
        };
        let mut retry = Vec::new();
        let mut codes: Vec<(String, u64, String)> = Vec::new();
        let mut accepted = 0;
        for (e, outcome) in sent.iter().zip(resp.outcomes()) {
            match outcome {
                EntryOutcome::Accepted => {
                    accepted += 1;
                    self.accept(*e, progress);
                }
                EntryOutcome::Failed { code, message } => {
                    match codes.iter_mut().find(|(c, _, _)| c == code) {
                        Some((_, n, _)) => *n += 1,
                        None => codes.push((code.to_string(), 1, message.to_string())),
                    }
                    if S::retryable_record_error(code) {
                        retry.push(*e);
                    } else {
                        self.reject(*e, progress);
                        if let Some(n) = self.limiter.allow(&format!("rejected:{code}")) {
                            tracing::error!(
                                "record rejected by {} and dropped: {code}: {message}, {stream}{}",
                                service_name::<S>(),
                                suppressed_note(n)
                            );
                        }
                    }
                }
            }
        }
        if let Some(g) = group.as_mut() {
            g.accepted += accepted;
        }
        let regulated = self.note_shard_outcomes(body, &resp);
        for (code, n, _) in &codes {
            self.metrics.record_errors(code, *n);
        }
        let failed: u64 = codes.iter().map(|(_, n, _)| n).sum();
        self.in_request = sent;
        if failed == 0 {
            return (Step::Continue, RequestResult::Ok);
        }
        if retry.is_empty() {
            // Only never-acceptable records failed: dropped above, nothing to retry.
            return (Step::Continue, RequestResult::Partial);
        }
        if let Some(n) = self.limiter.allow("partial") {
            let summary: Vec<String> = codes.iter().map(|(c, n, _)| format!("{c}={n}")).collect();
            let example = codes.first().map(|(_, _, m)| m.as_str()).unwrap_or("");
            tracing::warn!(
                "{failed} out of {} records failed to be delivered, retrying only the failed records, {stream} ({}; e.g. '{example}'){}",
                self.in_request.len(),
                summary.join(", "),
                suppressed_note(n)
            );
        }
        kb_core::metrics::add(&self.metrics.in_flush_retries, retry.len() as u64);
        self.requeue(&retry);
        if regulated {
            // Only throttled entries of shards with buckets: emptied above, they wait for
            // their shard to refill while the other shards' entries go on.
            return (Step::Continue, RequestResult::Partial);
        }
        (Step::Backoff, RequestResult::Partial)
    }
}

/// `shard_aware`: waits for a full shard shorter than this happen inside the flush; longer
/// ones hand the chunk back to the engine ([`FlushResult::Later`]).
const LATER_MIN: Duration = Duration::from_millis(20);

/// The service in messages: `Kinesis`, `Firehose`.
fn service_name<S: Service>() -> &'static str {
    if S::HAS_PARTITION_KEY {
        "Kinesis"
    } else {
        "Firehose"
    }
}

#[async_trait]
impl<S: Service> OutputWorker for KinesisWorker<S> {
    async fn flush(&mut self, chunk: &Chunk, progress: &mut Progress) -> FlushResult {
        if let Some(st) = self.shards.clone() {
            // The map before preparing: KPL aggregates are packed by its shards.
            self.refresh_shards().await;
            let map = st.lock().as_ref().map(|c| c.map.clone());
            self.preparer.set_shard_map(map);
        }
        self.preparer.prepare(
            chunk,
            progress,
            &mut self.prepared,
            &self.metrics,
            &self.limiter,
        );
        self.queue.clear();
        self.queue.extend(0..self.prepared.entries.len());
        if self.prepared.streams.len() > 1 {
            self.group_queue_by_stream();
        }
        let stream = self.settings.stream.clone();
        let mut rounds = 0;
        let mut resent_auth = false;
        let mut resent_skew = false;
        let mut group: Option<SplitGroup> = None;

        if self.shards.is_some() {
            self.shard_gen = 0;
            self.delayed.clear();
            self.delayed.resize(self.prepared.entries.len(), false);
        }
        while !self.queue.is_empty() {
            let limit = group.as_mut().and_then(|g| g.pending.pop());
            if self.shards.is_some() {
                self.refresh_shards().await;
                if let Some(wait) = self.build_request_shards(limit) {
                    // Every queued entry's shard is full. Outside a split (which must finish
                    // here) and for more than a moment, the chunk goes back to the engine
                    // until the first shard refills: nothing of it is in flight, and this
                    // worker takes the next chunks, whose other shards' records go on
                    // instead of queueing behind the full shard.
                    if group.is_none() && wait >= LATER_MIN {
                        return FlushResult::Later(wait);
                    }
                    if let (Some(g), Some(l)) = (group.as_mut(), limit) {
                        g.pending.push(l);
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            } else {
                self.build_request(limit);
            }
            let n = self.in_request.len();
            let pending_before = progress.pending_count();
            let body = self.body.take_bytes();
            tracing::debug!(
                "{} with {} ({} bytes), {stream}",
                S::API,
                kb_core::count(n as u64, "record"),
                body.len()
            );
            let (answer, took) = self
                .sender
                .call_as(S::API, body.clone(), self.body.protocol())
                .await;
            self.body.recycle(body);
            let (step, result) = match answer {
                Answer::Ok(body) => {
                    let r = self.on_ok(&body, progress, &mut group);
                    // With filesystem storage this persists the accepted entries before
                    // the next request: a crash re-sends at most the requests in flight.
                    progress.checkpoint();
                    r
                }
                Answer::Error(err, _)
                    if err.code == "ResourceNotFoundException"
                        && self.settings.stream_route.is_some()
                        && self.reroute_missing_stream(progress, &mut group, &err.message) =>
                {
                    (Step::Continue, RequestResult::ClientError)
                }
                Answer::Error(err, class) => {
                    let sent = self.in_request.clone();
                    self.requeue(&sent);
                    match class {
                        ErrorClass::ClockSkew if !resent_skew => {
                            resent_skew = true;
                            (Step::Continue, RequestResult::AuthError)
                        }
                        ErrorClass::Auth | ErrorClass::ClockSkew => {
                            if !resent_auth
                                && self.sender.credentials.refresh_after_auth_error().await
                            {
                                resent_auth = true;
                                // kb-aws logs "auth error, refreshing credentials".
                                kb_core::metrics::add(&self.metrics.refreshes_auth_error, 1);
                                (Step::Continue, RequestResult::AuthError)
                            } else {
                                if let Some(k) = self.limiter.allow(&format!("api:{}", err.code)) {
                                    tracing::error!(
                                        "{} API responded with error='{}', message='{}'{}",
                                        S::API,
                                        err.code,
                                        err.message,
                                        suppressed_note(k)
                                    );
                                }
                                (Step::Stop, RequestResult::AuthError)
                            }
                        }
                        ErrorClass::Throttling | ErrorClass::ServerError => {
                            if let Some(k) = self.limiter.allow(&format!("api:{}", err.code)) {
                                tracing::error!(
                                    "{} API responded with error='{}', message='{}'{}",
                                    S::API,
                                    err.code,
                                    err.message,
                                    suppressed_note(k)
                                );
                                if class == ErrorClass::Throttling {
                                    tracing::error!(
                                        "Throughput limits for {stream} may have been exceeded."
                                    );
                                }
                            }
                            kb_core::metrics::add(&self.metrics.in_flush_retries, n as u64);
                            let r = if class == ErrorClass::Throttling {
                                RequestResult::Throttled
                            } else {
                                RequestResult::ServerError
                            };
                            (Step::Backoff, r)
                        }
                        ErrorClass::RequestRejected if n > 1 => {
                            // Split in halves, sent at once, to isolate a bad record (§6.1).
                            kb_core::metrics::add(&self.metrics.request_splits, 1);
                            let g = group.get_or_insert_with(SplitGroup::default);
                            let first = n.div_ceil(2);
                            g.pending.push(n - first);
                            g.pending.push(first);
                            tracing::warn!(
                                "{} of {} rejected ({}: {}); splitting it, {stream}",
                                S::API,
                                kb_core::count(n as u64, "record"),
                                err.code,
                                err.message
                            );
                            (Step::Continue, RequestResult::ClientError)
                        }
                        ErrorClass::RequestRejected => {
                            let e = sent[0];
                            self.queue.pop_front();
                            match group.as_mut() {
                                Some(g) => g.rejected.push(e),
                                None => {
                                    // Nothing of this request could be delivered: the fault is
                                    // the request or the configuration, not a record.
                                    self.queue.push_front(e);
                                    tracing::error!("{} rejected ({}: {}); keeping the record for the engine retry, {stream}", S::API, err.code, err.message);
                                    self.finish_group(&mut group, progress);
                                    let r = self.remainder(progress, &stream);
                                    self.metrics.request(RequestResult::ClientError, took);
                                    return r;
                                }
                            }
                            (Step::Continue, RequestResult::ClientError)
                        }
                        ErrorClass::Other => {
                            if let Some(k) = self.limiter.allow(&format!("api:{}", err.code)) {
                                tracing::error!(
                                    "{} API responded with error='{}', message='{}'{}",
                                    S::API,
                                    err.code,
                                    err.message,
                                    suppressed_note(k)
                                );
                            }
                            (Step::Stop, RequestResult::ClientError)
                        }
                    }
                }
                Answer::Transport(e) => {
                    let sent = self.in_request.clone();
                    self.requeue(&sent);
                    if let Some(k) = self.limiter.allow("transport") {
                        tracing::error!(
                            "request to {} failed: {e}{}",
                            self.sender.endpoint.host_port(),
                            suppressed_note(k)
                        );
                    }
                    (Step::Stop, RequestResult::TransportError)
                }
                Answer::NoCredentials(e) => {
                    let sent = self.in_request.clone();
                    self.requeue(&sent);
                    if let Some(k) = self.limiter.allow("credentials") {
                        tracing::error!("{e}{}", suppressed_note(k));
                    }
                    self.metrics.request(RequestResult::AuthError, took);
                    self.finish_group(&mut group, progress);
                    return self.remainder(progress, &stream);
                }
            };
            self.metrics.request(result, took);
            if group.as_ref().is_some_and(|g| g.pending.is_empty())
                && !matches!(step, Step::Backoff)
            {
                self.finish_group(&mut group, progress);
            }
            match step {
                Step::Continue => {}
                Step::Stop => break,
                Step::Backoff => {
                    // Rounds count answers in a row that delivered nothing: a shard that keeps
                    // failing a tenth of the entries must not hand the whole chunk to the engine
                    // after three requests while the other nine tenths go through.
                    // After an answer that delivered something the stream is taking records:
                    // the failed entries wait at most 250 ms (round 0).
                    let progressed = progress.pending_count() < pending_before;
                    rounds = if progressed { 0 } else { rounds + 1 };
                    if rounds > MAX_ROUNDS {
                        break;
                    }
                    let wait = self.backoff(rounds);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.finish_group(&mut group, progress);
        self.remainder(progress, &stream)
    }
}

impl<S: Service> KinesisWorker<S> {
    /// Order the queue by stream, keeping each stream's entries in order, so that requests
    /// (one stream each) are as full as the limits allow.
    fn group_queue_by_stream(&mut self) {
        let entries = &self.prepared.entries;
        self.queue
            .make_contiguous()
            .sort_by_key(|&e| entries[e].stream);
    }

    /// The request's stream does not exist (a per-record stream): its entries, and every
    /// queued entry of that stream, go to `stream_fallback`, or are dropped and counted
    /// without one. `false` when the missing stream is the fallback itself: then the usual
    /// error handling keeps them for a later retry.
    fn reroute_missing_stream(
        &mut self,
        progress: &mut Progress,
        group: &mut Option<SplitGroup>,
        message: &str,
    ) -> bool {
        let Some(&first) = self.in_request.first() else {
            return false;
        };
        let missing = self.prepared.entries[first].stream;
        let missing_name = self.prepared.streams[missing as usize].clone();
        let fallback = self.settings.stream_fallback.clone();
        if fallback.as_deref() == Some(missing_name.as_str()) {
            return false;
        }
        // Later flushes of any worker skip the request that would fail again.
        self.missing_streams.note(&missing_name);
        let sent = std::mem::take(&mut self.in_request);
        self.requeue(&sent);
        self.in_request = sent;
        self.finish_group(group, progress);
        let fallback_index =
            fallback.as_ref().map(
                |f| match self.prepared.streams.iter().position(|s| s == f) {
                    Some(i) => i as u32,
                    None => {
                        self.prepared.streams.push(f.clone());
                        (self.prepared.streams.len() - 1) as u32
                    }
                },
            );
        let mut records = 0u64;
        let queued: Vec<usize> = self.queue.drain(..).collect();
        for e in queued {
            let entry = &mut self.prepared.entries[e];
            if entry.stream != missing {
                self.queue.push_back(e);
                continue;
            }
            records += entry.members.len() as u64;
            match fallback_index {
                Some(fb) => {
                    entry.stream = fb;
                    self.queue.push_back(e);
                }
                None => {
                    for &r in self.prepared.members(&self.prepared.entries[e]) {
                        progress.mark_dropped(r);
                    }
                }
            }
        }
        self.group_queue_by_stream();
        let why = format!("stream {missing_name} does not exist ({message})");
        match &fallback {
            Some(f) => {
                self.metrics.fell_back(FallbackReason::NotFound, records);
                if let Some(n) = self.limiter.allow("stream_not_found:fallback") {
                    tracing::warn!(
                        "{why}: {} sent to stream_fallback {f}{}",
                        kb_core::count(records, "record"),
                        suppressed_note(n)
                    );
                }
            }
            None => {
                self.metrics.dropped(DropReason::StreamNotFound, records);
                if let Some(n) = self.limiter.allow("stream_not_found:drop") {
                    tracing::warn!(
                        "{why} and stream_fallback is not set: {} dropped{}",
                        kb_core::count(records, "record"),
                        suppressed_note(n)
                    );
                }
            }
        }
        true
    }

    /// End a split group: rejected singles are dropped if anything of the group got through,
    /// otherwise kept for the engine retry.
    fn finish_group(&mut self, group: &mut Option<SplitGroup>, progress: &mut Progress) {
        let Some(g) = group.take() else { return };
        if g.rejected.is_empty() {
            return;
        }
        if g.accepted > 0 {
            for &e in &g.rejected {
                self.reject(e, progress);
            }
            if let Some(n) = self.limiter.allow("rejected:request") {
                tracing::error!(
                    "{} rejected by {} in a request of their own and dropped, {}{}",
                    kb_core::count(g.rejected.len() as u64, "record"),
                    service_name::<S>(),
                    self.settings.stream,
                    suppressed_note(n)
                );
            }
        } else {
            self.requeue(&g.rejected);
        }
    }

    /// Ok when nothing is pending, else Retry with the remainder left pending in `progress`.
    fn remainder(&mut self, progress: &Progress, stream: &str) -> FlushResult {
        let left = progress.pending_count();
        tracing::debug!(
            "processed {}: {} done, {} to retry, {stream}",
            kb_core::count(progress.total() as u64, "record"),
            progress.done_count(),
            left
        );
        if left == 0 {
            FlushResult::Ok
        } else {
            tracing::warn!(
                "{} handed back for a later retry, {stream}",
                kb_core::count(left as u64, "record")
            );
            FlushResult::Retry
        }
    }
}
