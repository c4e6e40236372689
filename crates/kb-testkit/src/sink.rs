//! The project's own Kinesis-compatible PutRecords sink (`docs/test-peers.md`, "Benchmarks use kb-sink"):
//! HTTP/1.1 keep-alive (optionally TLS), multi-threaded, no storage by default, with
//! deterministic fault injection.
//!
//! Operations: `PutRecords` and `DescribeStreamSummary` (always `ACTIVE`, so a healthcheck
//! works), and Firehose's `PutRecordBatch` and `DescribeDeliveryStream` (always `ACTIVE`) with
//! the same fault injection: one request counter and one fault plan for both, entries failed
//! with Firehose's codes (`ServiceUnavailableException`, `InternalFailure`) and a throttled
//! request answered 503 `ServiceUnavailableException`, as Firehose does; `GET /stats` answers the counters as JSON ([`SinkStats`]), any other `GET` answers
//! `200 OK` (liveness). Every POST needs an `Authorization` header with
//! `Credential=`, `SignedHeaders=`, `Signature=` and an `X-Amz-Date` header, answered like
//! Kinesis (and ferrokinesis) otherwise: no `Authorization` → 400
//! `MissingAuthenticationTokenException`; an incomplete one or no `X-Amz-Date` → 403
//! `IncompleteSignatureException`. With [`SinkConfig::verify_sigv4`] the signature is
//! recomputed and compared: 403 `InvalidSignatureException` on a mismatch, 403
//! `UnrecognizedClientException` for another access key id. A body naming its stream by
//! `StreamARN` must name one of the region it is signed for (400 `ValidationException`
//! otherwise), and its records are stored under the whole ARN ([`SinkRecord::stream`]).
//!
//! Both wire protocols of Kinesis are spoken: a request with `Content-Type:
//! application/x-amz-cbor-1.1` (as the AWS Java SDK and the KPL send) is decoded with ciborium
//! (an implementation independent of the agent's encoder; `Data` must be a byte string) and
//! answered in CBOR, its errors too (`{"__type", "message"}` in an indefinite-length map, as
//! Kinesis writes them), with the same fault injection as JSON.
//!
//! Faults ([`FaultPlan`]) are decided per PutRecords request from its index (counted from the
//! moment the plan was installed, starting at 0) and the seed, so one client connection sees the
//! same faults on every run. Whole-request faults where the request reached the "service"
//! (lost response, unparseable 200, 200 without `FailedRecordCount`) ACCEPT the entries
//! (stored and counted), so a client that re-sends them produces duplicates, as with the real
//! service when a response is lost. Throttling, 500, 503, 403 and a connection reset before the
//! request is processed accept nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64_simd::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

const ACCOUNT: &str = "123456789012";
const SHARD_ID: &str = "shardId-000000000000";

// ------------------------------------------------------------------------------------------------
// configuration

/// Sink configuration; `SinkConfig::default()` is a plain-HTTP, fault-free, storage-free sink on
/// a free port.
#[derive(Clone, Debug, Default)]
pub struct SinkConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// TLS with this (certificate chain PEM, private key PEM).
    pub tls: Option<(String, String)>,
    /// Verify SigV4 signatures against (access key id, secret access key).
    pub verify_sigv4: Option<(String, String)>,
    /// Initial fault plan (replace at runtime with [`Sink::set_faults`]).
    pub faults: FaultPlan,
    /// Keep every accepted record (stream, partition key, data) in order.
    pub store: bool,
    /// Count accepted records per unique id: the data is parsed as a JSON object and this
    /// numeric (u64) field read.
    pub id_field: Option<String>,
    /// Worker threads of the sink's own tokio runtime; 0 = available parallelism.
    pub worker_threads: usize,
}

impl SinkConfig {
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_pem.to_string(), key_pem.to_string()));
        self
    }
    pub fn verify_sigv4(mut self, access_key_id: &str, secret: &str) -> Self {
        self.verify_sigv4 = Some((access_key_id.to_string(), secret.to_string()));
        self
    }
    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = plan;
        self
    }
    pub fn store(mut self, store: bool) -> Self {
        self.store = store;
        self
    }
    pub fn id_field(mut self, field: &str) -> Self {
        self.id_field = Some(field.to_string());
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n;
        self
    }
}

/// What happens to one PutRecords request.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Normal answer, no entry fails (overrides the random fractions).
    Ok,
    /// 400 `ProvisionedThroughputExceededException` for the whole request.
    Throttle,
    /// 500 `InternalFailure`.
    InternalFailure,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 403 `ExpiredTokenException`.
    ExpiredToken,
    /// 200 with a truncated, unparseable JSON body (entries accepted).
    Unparseable,
    /// 200 with `Records` but without `FailedRecordCount` (entries accepted).
    MissingFailedRecordCount,
    /// Close the connection after reading the request, without an answer (entries accepted:
    /// the response was lost).
    Drop,
    /// Close the connection after reading the request, before processing it (nothing accepted).
    Reset,
    /// Normal answer after this extra delay.
    Delay(Duration),
    /// These entry positions fail with `code` (others are accepted).
    FailEntries { indices: Vec<usize>, code: String },
    /// Every entry fails with this code.
    FailAllEntries(String),
    /// Any whole-request error: status, `__type`, message.
    Error {
        status: u16,
        code: String,
        message: String,
    },
}

/// "The `request`-th PutRecords request (0-based, counted from when the plan was installed) gets
/// `kind`."
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub request: u64,
    pub kind: FaultKind,
}

impl Fault {
    pub fn new(request: u64, kind: FaultKind) -> Self {
        Fault { request, kind }
    }
}

/// Deterministic fault injection; everything is off by default. Fractions are probabilities in
/// [0, 1]; the request-level fractions are exclusive alternatives (their sum should be ≤ 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// Fraction of entries failed with one of `fail_codes` (retryable).
    pub fail_entries: f64,
    /// Codes for `fail_entries`; empty = `ProvisionedThroughputExceededException`,
    /// `InternalFailure` (Firehose: `ServiceUnavailableException`, `InternalFailure`).
    pub fail_codes: Vec<String>,
    /// Fraction of entries failed with `InvalidArgumentException` (never acceptable).
    pub reject_entries: f64,
    pub throttle: f64,
    pub error500: f64,
    pub error503: f64,
    pub expired_token: f64,
    pub unparseable: f64,
    pub missing_failed_count: f64,
    pub drop_connection: f64,
    pub lose_response: f64,
    /// Fixed delay before every PutRecords answer.
    pub delay: Option<Duration>,
    /// Explicit faults by request index; they take precedence over the fractions.
    pub script: Vec<Fault>,
}

impl FaultPlan {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Fail this fraction of entries, with codes picked (deterministically) from `codes`.
    pub fn fail_entries(mut self, fraction: f64, codes: &[&str]) -> Self {
        self.fail_entries = fraction;
        self.fail_codes = codes.iter().map(|c| c.to_string()).collect();
        self
    }
    pub fn reject_entries(mut self, fraction: f64) -> Self {
        self.reject_entries = fraction;
        self
    }
    pub fn throttle(mut self, fraction: f64) -> Self {
        self.throttle = fraction;
        self
    }
    pub fn error500(mut self, fraction: f64) -> Self {
        self.error500 = fraction;
        self
    }
    pub fn error503(mut self, fraction: f64) -> Self {
        self.error503 = fraction;
        self
    }
    pub fn expired_token(mut self, fraction: f64) -> Self {
        self.expired_token = fraction;
        self
    }
    pub fn unparseable(mut self, fraction: f64) -> Self {
        self.unparseable = fraction;
        self
    }
    pub fn missing_failed_count(mut self, fraction: f64) -> Self {
        self.missing_failed_count = fraction;
        self
    }
    /// Fraction of requests whose connection closes before they are processed (nothing accepted).
    pub fn lose_response(mut self, fraction: f64) -> Self {
        self.lose_response = fraction;
        self
    }

    /// Fraction of requests whose connection closes before they are processed.
    pub fn drop_connection(mut self, fraction: f64) -> Self {
        self.drop_connection = fraction;
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Adds "request `n` gets `kind`" to the script.
    pub fn at(mut self, n: u64, kind: FaultKind) -> Self {
        self.script.push(Fault::new(n, kind));
        self
    }
    pub fn script(mut self, script: Vec<Fault>) -> Self {
        self.script.extend(script);
        self
    }
}

/// A plan ready for the request path.
struct ActivePlan {
    plan: FaultPlan,
    /// PutRecords counter value when the plan was installed.
    base: u64,
    script: HashMap<u64, FaultKind>,
    fail_codes: Vec<String>,
    firehose_codes: Vec<String>,
    /// Cumulative thresholds of the request-level faults.
    request_cuts: [(f64, FaultKind); 8],
    entry_faults: bool,
}

impl ActivePlan {
    fn new(plan: FaultPlan, base: u64) -> Self {
        let mut fail_codes = plan.fail_codes.clone();
        let mut firehose_codes = plan.fail_codes.clone();
        if fail_codes.is_empty() {
            fail_codes = vec![
                "ProvisionedThroughputExceededException".into(),
                "InternalFailure".into(),
            ];
            firehose_codes = vec![
                "ServiceUnavailableException".into(),
                "InternalFailure".into(),
            ];
        }
        let mut acc = 0.0;
        let mut cut = |f: f64, k: FaultKind| {
            acc += f.max(0.0);
            (acc, k)
        };
        let request_cuts = [
            cut(plan.throttle, FaultKind::Throttle),
            cut(plan.error500, FaultKind::InternalFailure),
            cut(plan.error503, FaultKind::ServiceUnavailable),
            cut(plan.expired_token, FaultKind::ExpiredToken),
            cut(plan.unparseable, FaultKind::Unparseable),
            cut(
                plan.missing_failed_count,
                FaultKind::MissingFailedRecordCount,
            ),
            cut(plan.drop_connection, FaultKind::Reset),
            cut(plan.lose_response, FaultKind::Drop),
        ];
        let script = plan
            .script
            .iter()
            .map(|f| (f.request, f.kind.clone()))
            .collect();
        let entry_faults = plan.fail_entries > 0.0 || plan.reject_entries > 0.0;
        ActivePlan {
            plan,
            base,
            script,
            fail_codes,
            firehose_codes,
            request_cuts,
            entry_faults,
        }
    }

    /// The fault of the request with relative index `n`, if any (`None` = normal answer with the
    /// random per-entry failures).
    fn request_fault(&self, n: u64) -> Option<FaultKind> {
        if let Some(k) = self.script.get(&n) {
            return Some(k.clone());
        }
        if self.request_cuts[6].0 <= 0.0 {
            return None;
        }
        let u = unit(hash3(self.plan.seed, n, u64::MAX));
        self.request_cuts
            .iter()
            .find(|(cut, _)| u < *cut)
            .map(|(_, k)| k.clone())
    }

    /// Per-entry failure code of entry `i` of request `n`, if it fails.
    fn entry_fault(&self, n: u64, i: usize, firehose: bool) -> Option<&str> {
        if !self.entry_faults {
            return None;
        }
        let h = hash3(self.plan.seed, n, i as u64);
        let u = unit(h);
        if u < self.plan.reject_entries {
            Some("InvalidArgumentException")
        } else if u < self.plan.reject_entries + self.plan.fail_entries {
            let codes = if firehose {
                &self.firehose_codes
            } else {
                &self.fail_codes
            };
            let k = (mix(h) % codes.len() as u64) as usize;
            Some(&codes[k])
        } else {
            None
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash3(seed: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(a ^ mix(b)))
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

// ------------------------------------------------------------------------------------------------
// counters

/// A snapshot of the sink's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Every HTTP request.
    pub requests: u64,
    /// PutRecords requests (authenticated).
    pub put_requests: u64,
    /// Of `put_requests` (and PutRecordBatch): those sent as `application/x-amz-cbor-1.1`.
    pub cbor_requests: u64,
    /// Bytes of the bodies of the put requests (what the client hashed and encrypted).
    pub request_bytes: u64,
    pub describe_requests: u64,
    /// PutRecords answered 200 with a proper per-entry response (including partial failures).
    pub ok: u64,
    pub throttled: u64,
    pub error500: u64,
    pub error503: u64,
    pub expired_token: u64,
    pub unparseable: u64,
    pub missing_failed_count: u64,
    pub dropped: u64,
    /// Scripted `FaultKind::Error` answers.
    pub other_errors: u64,
    /// 400/403 for missing/incomplete/invalid authentication.
    pub auth_errors: u64,
    /// 400 for bodies that are not a PutRecords request, unknown operations, bad base64.
    pub bad_requests: u64,
    /// Entries in parsed PutRecords requests.
    pub entries_received: u64,
    pub entries_accepted: u64,
    /// Entries failed individually (any code, `InvalidArgumentException` included).
    pub entries_failed: u64,
    /// Of `entries_failed`: `InvalidArgumentException`.
    pub entries_rejected: u64,
    /// Decoded data bytes of accepted entries.
    pub bytes_accepted: u64,
    /// With `id_field`: distinct ids accepted, accepted entries whose id was seen before, and
    /// accepted entries without a readable id.
    pub unique_ids: u64,
    pub duplicate_entries: u64,
    pub entries_without_id: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    put_requests: AtomicU64,
    cbor_requests: AtomicU64,
    request_bytes: AtomicU64,
    describe_requests: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    error500: AtomicU64,
    error503: AtomicU64,
    expired_token: AtomicU64,
    unparseable: AtomicU64,
    missing_failed_count: AtomicU64,
    dropped: AtomicU64,
    other_errors: AtomicU64,
    auth_errors: AtomicU64,
    bad_requests: AtomicU64,
    entries_received: AtomicU64,
    entries_accepted: AtomicU64,
    entries_failed: AtomicU64,
    entries_rejected: AtomicU64,
    bytes_accepted: AtomicU64,
    duplicate_entries: AtomicU64,
    entries_without_id: AtomicU64,
}

/// An accepted record (with `store: true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRecord {
    /// `StreamName` or `DeliveryStreamName`; the whole `StreamARN` for a stream named by ARN.
    pub stream: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

struct Shared {
    plan: RwLock<Arc<ActivePlan>>,
    counters: Counters,
    seq: AtomicU64,
    store: bool,
    records: Mutex<Vec<SinkRecord>>,
    /// Entries per parsed PutRecords request, in arrival order.
    request_sizes: Mutex<Vec<usize>>,
    id_field: Option<String>,
    ids: Mutex<HashMap<u64, u32>>,
    verify: Option<(String, String)>,
    /// PutRecords requests arriving before this moment get no answer until it passes.
    stall_until: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    fn stats(&self) -> SinkStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Relaxed);
        SinkStats {
            requests: l(&c.requests),
            put_requests: l(&c.put_requests),
            cbor_requests: l(&c.cbor_requests),
            request_bytes: l(&c.request_bytes),
            describe_requests: l(&c.describe_requests),
            ok: l(&c.ok),
            throttled: l(&c.throttled),
            error500: l(&c.error500),
            error503: l(&c.error503),
            expired_token: l(&c.expired_token),
            unparseable: l(&c.unparseable),
            missing_failed_count: l(&c.missing_failed_count),
            dropped: l(&c.dropped),
            other_errors: l(&c.other_errors),
            auth_errors: l(&c.auth_errors),
            bad_requests: l(&c.bad_requests),
            entries_received: l(&c.entries_received),
            entries_accepted: l(&c.entries_accepted),
            entries_failed: l(&c.entries_failed),
            entries_rejected: l(&c.entries_rejected),
            bytes_accepted: l(&c.bytes_accepted),
            unique_ids: self.ids.lock().unwrap().len() as u64,
            duplicate_entries: l(&c.duplicate_entries),
            entries_without_id: l(&c.entries_without_id),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// the sink

/// A running sink; dropping it shuts the server down (its own runtime and every connection).
pub struct Sink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("endpoint", &self.endpoint())
            .finish()
    }
}

impl Sink {
    /// Binds 127.0.0.1:`config.port` and serves on a runtime of its own.
    pub async fn start(config: SinkConfig) -> Sink {
        Self::start_blocking(config)
    }

    /// [`Sink::start`] for non-async callers.
    pub fn start_blocking(config: SinkConfig) -> Sink {
        let tls = config.tls.as_ref().map(|(cert, key)| {
            tokio_rustls::TlsAcceptor::from(server_tls_config(cert, key).unwrap_or_else(|e| {
                panic!("sink TLS configuration: {e}");
            }))
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))
            .unwrap_or_else(|e| panic!("sink: bind 127.0.0.1:{}: {e}", config.port));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let threads = if config.worker_threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.worker_threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("kb-sink")
            .enable_all()
            .build()
            .expect("sink runtime");
        let shared = Arc::new(Shared {
            plan: RwLock::new(Arc::new(ActivePlan::new(config.faults, 0))),
            counters: Counters::default(),
            seq: AtomicU64::new(0),
            store: config.store,
            records: Mutex::new(Vec::new()),
            request_sizes: Mutex::new(Vec::new()),
            id_field: config.id_field,
            ids: Mutex::new(HashMap::new()),
            verify: config.verify_sigv4,
            stall_until: Mutex::new(None),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let is_tls = tls.is_some();
        runtime.spawn(accept_loop(listener, tls, shared.clone(), stop_rx));
        Sink {
            shared,
            addr,
            tls: is_tls,
            runtime: Some(runtime),
            stop: Some(stop_tx),
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stop answering PutRecords for `d` from now: requests are read and held, then handled
    /// normally when the stall ends (a service that hangs, not one that fails).
    pub fn stall(&self, d: Duration) {
        *self.shared.stall_until.lock().unwrap() = Some(std::time::Instant::now() + d);
    }

    /// Replaces the fault plan; its request indices count from now.
    pub fn set_faults(&self, plan: FaultPlan) {
        let base = self.shared.counters.put_requests.load(Relaxed);
        *self.shared.plan.write().unwrap() = Arc::new(ActivePlan::new(plan, base));
    }

    /// Accepted records in acceptance order (empty unless `store: true`).
    pub fn records(&self) -> Vec<SinkRecord> {
        self.shared.records.lock().unwrap().clone()
    }

    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// Entries of every parsed PutRecords request, in arrival order.
    pub fn request_sizes(&self) -> Vec<usize> {
        self.shared
            .request_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How often the record with this id was accepted (with `id_field`).
    pub fn id_count(&self, id: u64) -> u32 {
        self.shared
            .ids
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    /// Ids accepted more than once, with their counts, sorted by id.
    pub fn duplicates(&self) -> Vec<(u64, u32)> {
        let ids = self.shared.ids.lock().unwrap();
        let mut d: Vec<(u64, u32)> = ids
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(&id, &n)| (id, n))
            .collect();
        d.sort_unstable();
        d
    }

    /// Ids of `range` never accepted, sorted.
    pub fn missing(&self, range: Range<u64>) -> Vec<u64> {
        let ids = self.shared.ids.lock().unwrap();
        range.filter(|id| !ids.contains_key(id)).collect()
    }

    /// Ids accepted that lie outside `range` (unexpected records).
    pub fn unexpected(&self, range: Range<u64>) -> Vec<u64> {
        let ids = self.shared.ids.lock().unwrap();
        let mut v: Vec<u64> = ids
            .keys()
            .copied()
            .filter(|id| !range.contains(id))
            .collect();
        v.sort_unstable();
        v
    }

    /// Forgets stored records, ids and counters (the fault plan's request index restarts too).
    pub fn reset(&self) {
        self.shared.records.lock().unwrap().clear();
        self.shared.ids.lock().unwrap().clear();
        let c = &self.shared.counters;
        for a in [
            &c.requests,
            &c.put_requests,
            &c.cbor_requests,
            &c.request_bytes,
            &c.describe_requests,
            &c.ok,
            &c.throttled,
            &c.error500,
            &c.error503,
            &c.expired_token,
            &c.unparseable,
            &c.missing_failed_count,
            &c.dropped,
            &c.other_errors,
            &c.auth_errors,
            &c.bad_requests,
            &c.entries_received,
            &c.entries_accepted,
            &c.entries_failed,
            &c.entries_rejected,
            &c.bytes_accepted,
            &c.duplicate_entries,
            &c.entries_without_id,
        ] {
            a.store(0, Relaxed);
        }
        let plan = self.shared.plan.read().unwrap().plan.clone();
        *self.shared.plan.write().unwrap() = Arc::new(ActivePlan::new(plan, 0));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn server_tls_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn accept_loop(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("sink listener");
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acc) => {
                    if let Ok(s) = acc.accept(tcp).await {
                        serve(TokioIo::new(s), shared).await;
                    }
                }
                None => serve(TokioIo::new(tcp), shared).await,
            }
        });
    }
}

/// Error returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

async fn serve<T>(io: T, shared: Arc<Shared>)
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { handle(&shared, req).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc)
        .await;
}

// ------------------------------------------------------------------------------------------------
// request handling

type Resp = Response<Full<Bytes>>;

fn json_response(status: u16, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn error_response(status: u16, code: &str, message: &str) -> Resp {
    error_response_as(Wire::Json, status, code, message)
}

/// The protocol of a request, and so of its answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    /// `application/x-amz-json-1.1`.
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

fn response_as(wire: Wire, status: u16, body: Vec<u8>) -> Resp {
    let mut r = json_response(status, body);
    if wire == Wire::Cbor {
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static(CBOR_CONTENT_TYPE));
    }
    r
}

fn error_response_as(wire: Wire, status: u16, code: &str, message: &str) -> Resp {
    let body = match wire {
        Wire::Json => serde_json::json!({"__type": code, "message": message})
            .to_string()
            .into_bytes(),
        Wire::Cbor => {
            let mut b = vec![0xbf];
            cbor_text(&mut b, "__type");
            cbor_text(&mut b, code);
            cbor_text(&mut b, "message");
            cbor_text(&mut b, message);
            b.push(0xff);
            b
        }
    };
    let mut r = response_as(wire, status, body);
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// The shortest CBOR head of major type `major` with argument `n`.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let c = &shared.counters;
    if req.method() == http::Method::GET && req.uri().path() == "/stats" {
        // Polled by benchmarks while the agent ships; not counted as a request.
        let json = serde_json::to_vec(&shared.stats()).expect("stats serialize");
        let mut r = Response::new(Full::new(Bytes::from(json)));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    c.requests.fetch_add(1, Relaxed);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    if parts.method == http::Method::GET {
        let mut r = Response::new(Full::new(Bytes::from_static(b"OK")));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        return Ok(r);
    }
    if let Err(resp) = check_auth(shared, &parts, &body) {
        c.auth_errors.fetch_add(1, Relaxed);
        return Ok(resp);
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = target.rsplit('.').next().unwrap_or("");
    if let Err(resp) = check_arn_region(&parts, &body) {
        c.bad_requests.fetch_add(1, Relaxed);
        return Ok(resp);
    }
    let wire = match parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
    {
        Some(ct) if ct.split(';').next().unwrap_or("").trim() == CBOR_CONTENT_TYPE => Wire::Cbor,
        _ => Wire::Json,
    };
    match op {
        "PutRecords" => put_records(shared, &body, Api::Streams, wire).await,
        "PutRecordBatch" => put_records(shared, &body, Api::Firehose, wire).await,
        "DescribeStreamSummary" => {
            c.describe_requests.fetch_add(1, Relaxed);
            Ok(describe_summary(&body))
        }
        "DescribeDeliveryStream" => {
            c.describe_requests.fetch_add(1, Relaxed);
            Ok(describe_delivery_stream(&body))
        }
        _ => {
            c.bad_requests.fetch_add(1, Relaxed);
            Ok(error_response(
                400,
                "UnknownOperationException",
                &format!("the kb-testkit sink does not implement {target:?}"),
            ))
        }
    }
}

fn describe_summary(body: &[u8]) -> Resp {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let name = v["StreamName"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            v["StreamARN"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "stream".into());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let body = serde_json::json!({"StreamDescriptionSummary": {
        "StreamName": name,
        "StreamARN": format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"),
        "StreamStatus": "ACTIVE",
        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        "RetentionPeriodHours": 24,
        "StreamCreationTimestamp": now,
        "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
        "EncryptionType": "NONE",
        "OpenShardCount": 1,
        "ConsumerCount": 0,
    }});
    json_response(200, body.to_string().into_bytes())
}

fn describe_delivery_stream(body: &[u8]) -> Resp {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let name = v["DeliveryStreamName"]
        .as_str()
        .unwrap_or("delivery-stream");
    let body = serde_json::json!({"DeliveryStreamDescription": {
        "DeliveryStreamName": name,
        "DeliveryStreamARN": format!("arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/{name}"),
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": "DirectPut",
        "VersionId": "1",
        "Destinations": [],
        "HasMoreDestinations": false,
    }});
    json_response(200, body.to_string().into_bytes())
}

/// A `StreamARN` must name a stream of the region the request is signed for (its credential
/// scope), as the service only holds the streams of its own region: 400 `ValidationException`
/// otherwise. Bodies without `StreamARN` are not parsed here.
#[allow(clippy::result_large_err)]
fn check_arn_region(parts: &http::request::Parts, body: &[u8]) -> Result<(), Resp> {
    if !body.windows(11).any(|w| w == b"\"StreamARN\"") {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct ArnOnly<'a> {
        #[serde(borrow, rename = "StreamARN", default)]
        stream_arn: Option<Cow<'a, str>>,
    }
    let Ok(ArnOnly {
        stream_arn: Some(arn),
    }) = serde_json::from_slice::<ArnOnly<'_>>(body)
    else {
        return Ok(());
    };
    let signed_region = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .and_then(|f| f.credential.split('/').nth(2).map(str::to_string))
        .unwrap_or_default();
    let arn_region = arn.split(':').nth(3).unwrap_or("");
    if arn_region != signed_region {
        return Err(error_response(
            400,
            "ValidationException",
            &format!("StreamARN {arn} is not in the request's region '{signed_region}'"),
        ));
    }
    Ok(())
}

/// Checks the presence of the authentication headers and, when configured, the signature.
#[allow(clippy::result_large_err)]
fn check_auth(shared: &Shared, parts: &http::request::Parts, body: &[u8]) -> Result<(), Resp> {
    let Some(auth) = parts.headers.get("authorization") else {
        return Err(error_response(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = auth.to_str().unwrap_or("");
    let Some(fields) = parse_authorization(auth) else {
        return Err(error_response(
            403,
            "IncompleteSignatureException",
            &format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth}"),
        ));
    };
    let Some(date) = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(error_response(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Some((akid, secret)) = &shared.verify else {
        return Ok(());
    };
    let scope: Vec<&str> = fields.credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(error_response(
            403,
            "IncompleteSignatureException",
            &format!(
                "Credential should be scoped to a valid region. Credential={}",
                fields.credential
            ),
        ));
    }
    if scope[0] != akid {
        return Err(error_response(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let Some(time) = parse_amz_date(date) else {
        return Err(error_response(
            403,
            "IncompleteSignatureException",
            &format!("Date must be in ISO-8601 'basic format'. Got '{date}'."),
        ));
    };
    match expected_signature(parts, body, &fields, scope[2], scope[3], akid, secret, time) {
        Some(sig) if sig == fields.signature => Ok(()),
        _ => Err(error_response(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        )),
    }
}

struct AuthFields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(auth: &str) -> Option<AuthFields<'_>> {
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    Some(AuthFields {
        credential: credential.filter(|s| !s.is_empty())?,
        signed_headers: signed_headers.filter(|s| !s.is_empty())?,
        signature: signature.filter(|s| !s.is_empty())?,
    })
}

/// `YYYYMMDDTHHMMSSZ` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Recomputes the signature of the received request with `aws-sigv4`: the canonical request is
/// built from the received method, path and query, and exactly the headers named in
/// `SignedHeaders`; the payload hash is `x-amz-content-sha256` when present, else SHA-256 of the
/// body.
#[allow(clippy::too_many_arguments)]
fn expected_signature(
    parts: &http::request::Parts,
    body: &[u8],
    fields: &AuthFields<'_>,
    region: &str,
    service: &str,
    akid: &str,
    secret: &str,
    time: SystemTime,
) -> Option<String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in fields.signed_headers.split(';') {
        let mut found = false;
        for v in parts.headers.get_all(name) {
            headers.push((name, v.to_str().ok()?));
            found = true;
        }
        if !found {
            return None; // a signed header that is not there
        }
    }
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = format!("http://{host}{pq}");
    let payload = match parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some(h) => SignableBody::Precomputed(h.to_string()),
        None => SignableBody::Bytes(body),
    };
    let signable =
        SignableRequest::new(parts.method.as_str(), uri, headers.into_iter(), payload).ok()?;
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    let identity =
        aws_credential_types::Credentials::new(akid, secret, None, None, "kb-sink").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let (_, signature) = sign(signable, &params).ok()?.into_parts();
    Some(signature)
}

/// Which put call a request is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Kinesis `PutRecords`.
    Streams,
    /// Firehose `PutRecordBatch`.
    Firehose,
}

#[derive(Deserialize)]
struct PutRecordsBody<'a> {
    #[serde(borrow, rename = "StreamName", default)]
    stream_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "StreamARN", default)]
    stream_arn: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "DeliveryStreamName", default)]
    delivery_stream_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "Records")]
    records: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, rename = "Data")]
    data: Cow<'a, str>,
    #[serde(borrow, rename = "PartitionKey", default)]
    partition_key: Option<Cow<'a, str>>,
}

/// A put request in either protocol.
struct PutRequest<'a> {
    stream_name: Option<Cow<'a, str>>,
    stream_arn: Option<Cow<'a, str>>,
    delivery_stream_name: Option<Cow<'a, str>>,
    records: Vec<PutEntry<'a>>,
}

struct PutEntry<'a> {
    data: EntryData<'a>,
    partition_key: Option<Cow<'a, str>>,
}

/// `Data` as received: base64 text (JSON) or the raw bytes (CBOR).
enum EntryData<'a> {
    Base64(Cow<'a, str>),
    Raw(Vec<u8>),
}

impl EntryData<'_> {
    /// Bytes of the decoded data (of valid base64).
    fn decoded_len(&self) -> usize {
        match self {
            EntryData::Base64(b) => {
                let b = b.as_bytes();
                let pad = b.iter().rev().take(2).filter(|&&x| x == b'=').count();
                b.len() / 4 * 3 - pad
            }
            EntryData::Raw(v) => v.len(),
        }
    }

    fn decode(&self) -> Vec<u8> {
        match self {
            EntryData::Base64(b) => B64.decode_to_vec(b.as_bytes()).unwrap_or_default(),
            EntryData::Raw(v) => v.clone(),
        }
    }
}

impl<'a> From<PutRecordsBody<'a>> for PutRequest<'a> {
    fn from(b: PutRecordsBody<'a>) -> Self {
        PutRequest {
            stream_name: b.stream_name,
            stream_arn: b.stream_arn,
            delivery_stream_name: b.delivery_stream_name,
            records: b
                .records
                .into_iter()
                .map(|e| PutEntry {
                    data: EntryData::Base64(e.data),
                    partition_key: e.partition_key,
                })
                .collect(),
        }
    }
}

/// A CBOR put request, read with ciborium: a map with text names, `Records` an array of maps
/// whose `Data` is a byte string and `PartitionKey` text; unknown members are ignored, a
/// member of the wrong type is an error (the service's `SerializationException`).
fn parse_cbor_put(body: &[u8]) -> Result<PutRequest<'static>, String> {
    use ciborium::Value;
    let v: Value = ciborium::de::from_reader(body).map_err(|e| e.to_string())?;
    let Value::Map(top) = v else {
        return Err("the body is not a CBOR map".into());
    };
    let text = |v: Value, what: &str| match v {
        Value::Text(t) => Ok(Cow::Owned(t)),
        _ => Err(format!("{what} is not a text string")),
    };
    let mut req = PutRequest {
        stream_name: None,
        stream_arn: None,
        delivery_stream_name: None,
        records: Vec::new(),
    };
    let mut have_records = false;
    for (k, v) in top {
        let Value::Text(k) = k else {
            return Err("a member name is not text".into());
        };
        match k.as_str() {
            "StreamName" => req.stream_name = Some(text(v, "StreamName")?),
            "StreamARN" => req.stream_arn = Some(text(v, "StreamARN")?),
            "DeliveryStreamName" => req.delivery_stream_name = Some(text(v, "DeliveryStreamName")?),
            "Records" => {
                have_records = true;
                let Value::Array(entries) = v else {
                    return Err("Records is not an array".into());
                };
                for e in entries {
                    let Value::Map(members) = e else {
                        return Err("a record is not a map".into());
                    };
                    let (mut data, mut key) = (None, None);
                    for (k, v) in members {
                        match (k, v) {
                            (Value::Text(k), Value::Bytes(b)) if k == "Data" => data = Some(b),
                            (Value::Text(k), _) if k == "Data" => {
                                return Err("Data is not a byte string".into())
                            }
                            (Value::Text(k), v) if k == "PartitionKey" => {
                                key = Some(text(v, "PartitionKey")?)
                            }
                            _ => {}
                        }
                    }
                    let Some(data) = data else {
                        return Err("a record has no Data".into());
                    };
                    req.records.push(PutEntry {
                        data: EntryData::Raw(data),
                        partition_key: key,
                    });
                }
            }
            _ => {}
        }
    }
    if !have_records {
        return Err("missing field `Records`".into());
    }
    Ok(req)
}

enum Outcome {
    Normal,
    /// accepted, answered with a broken body
    Unparseable,
    MissingCount,
    Drop,
}

async fn put_records(
    shared: &Shared,
    body: &[u8],
    api: Api,
    wire: Wire,
) -> Result<Resp, DropConnection> {
    let error_response =
        |status: u16, code: &str, message: &str| error_response_as(wire, status, code, message);
    let stall = *shared.stall_until.lock().unwrap();
    if let Some(left) = stall.and_then(|t| t.checked_duration_since(std::time::Instant::now())) {
        tokio::time::sleep(left).await;
    }
    let c = &shared.counters;
    let idx = c.put_requests.fetch_add(1, Relaxed);
    c.request_bytes.fetch_add(body.len() as u64, Relaxed);
    if wire == Wire::Cbor {
        c.cbor_requests.fetch_add(1, Relaxed);
    }
    let plan = shared.plan.read().unwrap().clone();
    let n = idx.wrapping_sub(plan.base);
    let fault = plan.request_fault(n);

    let parsed = match wire {
        Wire::Json => serde_json::from_slice::<PutRecordsBody<'_>>(body)
            .map(PutRequest::from)
            .map_err(|e| e.to_string()),
        Wire::Cbor => parse_cbor_put(body),
    };
    let req: PutRequest<'_> = match parsed {
        Ok(r) => r,
        Err(e) => {
            c.bad_requests.fetch_add(1, Relaxed);
            return Ok(error_response(
                400,
                "SerializationException",
                &format!("cannot parse the PutRecords body: {e}"),
            ));
        }
    };
    let firehose = api == Api::Firehose;
    let name_ok = if firehose {
        req.delivery_stream_name.is_some()
    } else {
        req.stream_name.is_some() || req.stream_arn.is_some()
    };
    if !name_ok || (!firehose && req.records.iter().any(|e| e.partition_key.is_none())) {
        c.bad_requests.fetch_add(1, Relaxed);
        return Ok(error_response(
            400,
            "SerializationException",
            "a required member (stream name, PartitionKey) is missing",
        ));
    }
    for e in &req.records {
        let EntryData::Base64(data) = &e.data else {
            continue;
        };
        if B64.check(data.as_bytes()).is_err() {
            c.bad_requests.fetch_add(1, Relaxed);
            return Ok(error_response(
                400,
                "SerializationException",
                "Data can not be converted to a Blob: invalid base64",
            ));
        }
    }
    let count = req.records.len();
    c.entries_received.fetch_add(count as u64, Relaxed);
    shared
        .request_sizes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(count);

    let mut delay = plan.plan.delay;
    if let Some(FaultKind::Delay(d)) = &fault {
        delay = Some(delay.unwrap_or_default() + *d);
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }

    let stream = || -> String {
        req.stream_name
            .as_deref()
            .or(req.delivery_stream_name.as_deref())
            .or_else(|| req.stream_arn.as_deref().and_then(|a| a.rsplit('/').next()))
            .unwrap_or("")
            .to_string()
    };
    let throttle_msg = || {
        format!(
            "Rate exceeded for stream {} under account {ACCOUNT}.",
            stream()
        )
    };
    let outcome = match &fault {
        Some(FaultKind::Throttle) if firehose => {
            c.throttled.fetch_add(1, Relaxed);
            return Ok(error_response(
                503,
                "ServiceUnavailableException",
                "Slow down.",
            ));
        }
        Some(FaultKind::Throttle) => {
            c.throttled.fetch_add(1, Relaxed);
            return Ok(error_response(
                400,
                "ProvisionedThroughputExceededException",
                &throttle_msg(),
            ));
        }
        Some(FaultKind::InternalFailure) => {
            c.error500.fetch_add(1, Relaxed);
            return Ok(error_response(
                500,
                "InternalFailure",
                "Internal service failure.",
            ));
        }
        Some(FaultKind::ServiceUnavailable) => {
            c.error503.fetch_add(1, Relaxed);
            let code = if firehose {
                "ServiceUnavailableException"
            } else {
                "ServiceUnavailable"
            };
            return Ok(error_response(503, code, "Service is unavailable."));
        }
        Some(FaultKind::ExpiredToken) => {
            c.expired_token.fetch_add(1, Relaxed);
            return Ok(error_response(
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ));
        }
        Some(FaultKind::Error {
            status,
            code,
            message,
        }) => {
            c.other_errors.fetch_add(1, Relaxed);
            return Ok(error_response(*status, code, message));
        }
        Some(FaultKind::Reset) => {
            c.dropped.fetch_add(1, Relaxed);
            return Err(DropConnection);
        }
        Some(FaultKind::Unparseable) => Outcome::Unparseable,
        Some(FaultKind::MissingFailedRecordCount) => Outcome::MissingCount,
        Some(FaultKind::Drop) => Outcome::Drop,
        _ => Outcome::Normal,
    };

    // per-entry decisions: None = accepted
    let entry_code = |i: usize| -> Option<&str> {
        match &fault {
            Some(FaultKind::Ok) | Some(FaultKind::Drop) | Some(FaultKind::Unparseable) => None,
            Some(FaultKind::MissingFailedRecordCount) => None,
            Some(FaultKind::FailAllEntries(code)) => Some(code),
            Some(FaultKind::FailEntries { indices, code }) => {
                indices.contains(&i).then_some(code.as_str())
            }
            _ => plan.entry_fault(n, i, firehose),
        }
    };
    let codes: Vec<Option<&str>> = (0..count).map(entry_code).collect();
    let failed = codes.iter().filter(|c| c.is_some()).count();
    let rejected = codes
        .iter()
        .filter(|c| **c == Some("InvalidArgumentException"))
        .count();
    let accepted = count - failed;

    // bookkeeping of the accepted entries
    let need_data = shared.store || shared.id_field.is_some();
    let mut bytes = 0u64;
    let mut stored = Vec::new();
    let mut ids = Vec::new();
    let mut without_id = 0u64;
    // A stream named by ARN is stored under its ARN, so tests can tell how it was named.
    let stream_name = if shared.store {
        req.stream_arn
            .as_deref()
            .filter(|_| req.stream_name.is_none())
            .map(str::to_string)
            .unwrap_or_else(stream)
    } else {
        String::new()
    };
    for (e, code) in req.records.iter().zip(&codes) {
        if code.is_some() {
            continue;
        }
        bytes += e.data.decoded_len() as u64;
        if need_data {
            let data = e.data.decode();
            if let Some(field) = &shared.id_field {
                match find_id(&data, field) {
                    Some(id) => ids.push(id),
                    None => without_id += 1,
                }
            }
            if shared.store {
                stored.push(SinkRecord {
                    stream: stream_name.clone(),
                    partition_key: e.partition_key.as_deref().unwrap_or("").to_string(),
                    data,
                });
            }
        }
    }
    c.entries_accepted.fetch_add(accepted as u64, Relaxed);
    c.entries_failed.fetch_add(failed as u64, Relaxed);
    c.entries_rejected.fetch_add(rejected as u64, Relaxed);
    c.bytes_accepted.fetch_add(bytes, Relaxed);
    if !stored.is_empty() {
        shared.records.lock().unwrap().extend(stored);
    }
    if shared.id_field.is_some() {
        c.entries_without_id.fetch_add(without_id, Relaxed);
        if !ids.is_empty() {
            let mut map = shared.ids.lock().unwrap();
            let mut dups = 0;
            for id in ids {
                let n = map.entry(id).or_insert(0);
                if *n > 0 {
                    dups += 1;
                }
                *n += 1;
            }
            c.duplicate_entries.fetch_add(dups, Relaxed);
        }
    }

    match outcome {
        Outcome::Drop => {
            c.dropped.fetch_add(1, Relaxed);
            return Err(DropConnection);
        }
        Outcome::Unparseable if wire == Wire::Cbor => {
            c.unparseable.fetch_add(1, Relaxed);
            // The start of an answer, cut inside the first entry's SequenceNumber.
            let mut cut = vec![0xbf];
            cbor_text(
                &mut cut,
                if firehose {
                    "FailedPutCount"
                } else {
                    "FailedRecordCount"
                },
            );
            cut.push(0);
            cbor_text(
                &mut cut,
                if firehose {
                    "RequestResponses"
                } else {
                    "Records"
                },
            );
            cut.extend_from_slice(&[0x81, 0xa2]);
            cbor_text(
                &mut cut,
                if firehose {
                    "RecordId"
                } else {
                    "SequenceNumber"
                },
            );
            cut.extend_from_slice(b"\x78\x384959");
            return Ok(response_as(wire, 200, cut));
        }
        Outcome::Unparseable => {
            c.unparseable.fetch_add(1, Relaxed);
            let cut: &[u8] = if firehose {
                b"{\"Encrypted\":false,\"FailedPutCount\":0,\"RequestResponses\":[{\"RecordId\":\"kb"
            } else {
                b"{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"4959"
            };
            return Ok(json_response(200, cut.to_vec()));
        }
        Outcome::MissingCount => c.missing_failed_count.fetch_add(1, Relaxed),
        Outcome::Normal => c.ok.fetch_add(1, Relaxed),
    };

    // the response, written into one preallocated buffer
    let first_seq = shared.seq.fetch_add(accepted as u64, Relaxed);
    if wire == Wire::Cbor {
        let missing_count = matches!(outcome, Outcome::MissingCount);
        return Ok(response_as(
            wire,
            200,
            cbor_answer(&codes, failed, first_seq, firehose, missing_count),
        ));
    }
    let mut out = Vec::with_capacity(48 + count * 96);
    let (count_field, entries_field): (&[u8], &[u8]) = if firehose {
        (
            b"{\"Encrypted\":false,\"FailedPutCount\":",
            b"\"RequestResponses\":[",
        )
    } else {
        (b"{\"FailedRecordCount\":", b"\"Records\":[")
    };
    if matches!(outcome, Outcome::MissingCount) {
        out.push(b'{');
        out.extend_from_slice(entries_field);
    } else {
        out.extend_from_slice(count_field);
        push_u64(&mut out, failed as u64);
        out.push(b',');
        out.extend_from_slice(entries_field);
    }
    let mut seq = first_seq;
    for (i, code) in codes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match code {
            None if firehose => {
                // A RecordId is an opaque 224-character base64 string; this one counts.
                out.extend_from_slice(b"{\"RecordId\":\"kbsink");
                push_u64_padded20(&mut out, seq);
                seq += 1;
                out.extend_from_slice(b"\"}");
            }
            None => {
                out.extend_from_slice(b"{\"SequenceNumber\":\"4959");
                // 52 more digits: 32 zeros and the counter zero-padded to 20
                out.extend_from_slice(&[b'0'; 32]);
                push_u64_padded20(&mut out, seq);
                seq += 1;
                out.extend_from_slice(b"\",\"ShardId\":\"");
                out.extend_from_slice(SHARD_ID.as_bytes());
                out.extend_from_slice(b"\"}");
            }
            Some(code) => {
                out.extend_from_slice(b"{\"ErrorCode\":");
                push_json_str(&mut out, code);
                out.extend_from_slice(b",\"ErrorMessage\":");
                let msg = if *code == "InvalidArgumentException" {
                    "Record rejected by the kb-testkit sink (fault injection)."
                } else if *code == "ProvisionedThroughputExceededException" {
                    "Rate exceeded for shard shardId-000000000000."
                } else if *code == "ServiceUnavailableException" {
                    "Slow down."
                } else {
                    "Entry failed by the kb-testkit sink (fault injection)."
                };
                push_json_str(&mut out, msg);
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(200, out))
}

/// The message of a failed entry.
fn entry_message(code: &str) -> &'static str {
    if code == "InvalidArgumentException" {
        "Record rejected by the kb-testkit sink (fault injection)."
    } else if code == "ProvisionedThroughputExceededException" {
        "Rate exceeded for shard shardId-000000000000."
    } else if code == "ServiceUnavailableException" {
        "Slow down."
    } else {
        "Entry failed by the kb-testkit sink (fault injection)."
    }
}

/// The 200 answer in CBOR, as Kinesis writes it: an indefinite-length map with the count, the
/// entries (a definite array of definite maps) and, for Streams, `EncryptionType`.
fn cbor_answer(
    codes: &[Option<&str>],
    failed: usize,
    first_seq: u64,
    firehose: bool,
    missing_count: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + codes.len() * 100);
    out.push(0xbf);
    if firehose {
        cbor_text(&mut out, "Encrypted");
        out.push(0xf4);
    }
    if !missing_count {
        cbor_text(
            &mut out,
            if firehose {
                "FailedPutCount"
            } else {
                "FailedRecordCount"
            },
        );
        cbor_head(&mut out, 0, failed as u64);
    }
    cbor_text(
        &mut out,
        if firehose {
            "RequestResponses"
        } else {
            "Records"
        },
    );
    cbor_head(&mut out, 4, codes.len() as u64);
    let mut seq = first_seq;
    let mut digits = Vec::with_capacity(56);
    for code in codes {
        match code {
            None => {
                digits.clear();
                if firehose {
                    digits.extend_from_slice(b"kbsink");
                } else {
                    digits.extend_from_slice(b"4959");
                    digits.extend_from_slice(&[b'0'; 32]);
                }
                push_u64_padded20(&mut digits, seq);
                seq += 1;
                let digits = std::str::from_utf8(&digits).unwrap_or_default();
                if firehose {
                    out.push(0xa1);
                    cbor_text(&mut out, "RecordId");
                    cbor_text(&mut out, digits);
                } else {
                    out.push(0xa2);
                    cbor_text(&mut out, "SequenceNumber");
                    cbor_text(&mut out, digits);
                    cbor_text(&mut out, "ShardId");
                    cbor_text(&mut out, SHARD_ID);
                }
            }
            Some(code) => {
                out.push(0xa2);
                cbor_text(&mut out, "ErrorCode");
                cbor_text(&mut out, code);
                cbor_text(&mut out, "ErrorMessage");
                cbor_text(&mut out, entry_message(code));
            }
        }
    }
    if !firehose {
        cbor_text(&mut out, "EncryptionType");
        cbor_text(&mut out, "NONE");
    }
    out.push(0xff);
    out
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_u64_padded20(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf);
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Reads the u64 field `field` of a JSON object in `data` (trailing whitespace allowed).
fn find_id(data: &[u8], field: &str) -> Option<u64> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let id = IdSeed(field).deserialize(&mut de).ok()?;
    de.end().ok()?;
    id
}

struct IdSeed<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = Option<u64>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdSeed<'_> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(is_field) = map.next_key_seed(KeyIs(self.0))? {
            if is_field && id.is_none() {
                id = map.next_value::<Option<u64>>().ok().flatten();
                if id.is_none() {
                    // not a u64: the rest of the object cannot be read reliably any more
                    return Ok(None);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

struct KeyIs<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn firehose_call(
        sink: &Sink,
        target: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let http = crate::kds::SignedHttp::new(
            &sink.endpoint(),
            "us-east-1",
            "firehose",
            aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
        );
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", format!("Firehose_20150804.{target}")),
        ];
        let (st, _, raw) = http
            .request("POST", "/", &headers, Bytes::from(body.to_string()))
            .await
            .unwrap();
        (st, serde_json::from_slice(&raw).unwrap_or_default())
    }

    #[tokio::test]
    async fn put_record_batch_with_faults() {
        let sink = Sink::start(
            SinkConfig::default().store(true).faults(
                FaultPlan::new()
                    .at(
                        0,
                        FaultKind::FailEntries {
                            indices: vec![1],
                            code: "ServiceUnavailableException".into(),
                        },
                    )
                    .at(1, FaultKind::Throttle),
            ),
        )
        .await;
        let records = serde_json::json!({"DeliveryStreamName": "fh", "Records": [
            {"Data": "YQo="}, {"Data": "Ygo="}, {"Data": "Ywo="}]});
        let (st, v) = firehose_call(&sink, "PutRecordBatch", records.clone()).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["FailedPutCount"], 1);
        assert_eq!(v["Encrypted"], false);
        let rr = v["RequestResponses"].as_array().unwrap();
        assert_eq!(rr.len(), 3);
        assert!(rr[0]["RecordId"].is_string());
        assert_eq!(rr[1]["ErrorCode"], "ServiceUnavailableException");
        let got: Vec<_> = sink
            .records()
            .into_iter()
            .map(|r| (r.stream, r.data))
            .collect();
        assert_eq!(
            got,
            vec![
                ("fh".to_string(), b"a\n".to_vec()),
                ("fh".into(), b"c\n".to_vec())
            ]
        );
        let (st, v) = firehose_call(&sink, "PutRecordBatch", records).await;
        assert_eq!(
            (st, v["__type"].as_str()),
            (503, Some("ServiceUnavailableException"))
        );
        let (st, v) = firehose_call(
            &sink,
            "DescribeDeliveryStream",
            serde_json::json!({"DeliveryStreamName": "fh"}),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            v["DeliveryStreamDescription"]["DeliveryStreamStatus"],
            "ACTIVE"
        );
        // A PutRecordBatch body is not a PutRecords one: PartitionKey is required there.
        let http = crate::kds::Kds::new(&sink.endpoint(), "us-east-1");
        let (st, _) = http
            .call(
                "PutRecords",
                serde_json::json!({"StreamName": "s", "Records": [{"Data": "YQ=="}]}),
            )
            .await
            .unwrap();
        assert_eq!(st, 400);
    }

    #[test]
    fn amz_date() {
        let t = parse_amz_date("20260101T000000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_600
        );
        let t = parse_amz_date("20000229T235959Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 951_868_799);
        assert!(parse_amz_date("2026-01-01T00:00:00Z").is_none());
    }

    #[test]
    fn ids() {
        assert_eq!(
            find_id(br#"{"a":"x","seq":42,"b":[1,{"seq":3}]}"#, "seq"),
            Some(42)
        );
        assert_eq!(find_id(b"{\"seq\":7}\n", "seq"), Some(7));
        assert_eq!(find_id(br#"{"s\u0065q":5}"#, "seq"), Some(5));
        assert_eq!(find_id(br#"{"seq":"7"}"#, "seq"), None);
        assert_eq!(find_id(br#"{"other":1}"#, "seq"), None);
        assert_eq!(find_id(b"plain text", "seq"), None);
    }

    /// The GET example of the AWS SigV4 documentation (known answer).
    #[test]
    fn sigv4_known_answer() {
        let req = Request::get("/?Action=ListUsers&Version=2010-05-08")
            .header("host", "iam.amazonaws.com")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header("x-amz-date", "20150830T123600Z")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let fields = AuthFields {
            credential: "AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request",
            signed_headers: "content-type;host;x-amz-date",
            signature: "",
        };
        let sig = expected_signature(
            &parts,
            b"",
            &fields,
            "us-east-1",
            "iam",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            parse_amz_date("20150830T123600Z").unwrap(),
        );
        assert_eq!(
            sig.as_deref(),
            Some("5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        );
    }

    #[test]
    fn plan_is_deterministic() {
        let p = ActivePlan::new(FaultPlan::new().seed(3).throttle(0.5), 0);
        let a: Vec<_> = (0..64).map(|n| p.request_fault(n)).collect();
        let b: Vec<_> = (0..64).map(|n| p.request_fault(n)).collect();
        assert_eq!(a, b);
        let throttled = a.iter().filter(|f| f.is_some()).count();
        assert!((16..48).contains(&throttled), "{throttled}");
    }
}
