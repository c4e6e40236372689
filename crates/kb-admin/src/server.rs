//! The HTTP/1.1 server: one task accepts, one task per connection (so a slow or broken client
//! only holds its own task), and one task samples the counters for the health window.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use kb_core::metrics::{get, Metrics};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::families::{self, Process};
use crate::health::{HealthConfig, HealthWindow, Totals};
use crate::{api, prometheus};

/// A client that sends no complete request head within this time is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the health window samples the output counters.
const HEALTH_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// What every request handler reads.
pub(crate) struct State {
    pub metrics: Arc<Metrics>,
    /// Wall-clock start, for `uptime_sec` and `process_start_time_seconds`.
    pub started: SystemTime,
    /// Monotonic start, the health window's clock.
    pub clock: Instant,
    /// `None` when `Health_Check` is off.
    pub health: Option<HealthWindow>,
    pub version: &'static str,
    pub hostname: Option<String>,
}

impl State {
    fn uptime_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(self.started)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn process(&self) -> Process {
        Process {
            uptime_secs: self.uptime_secs(),
            start_epoch_secs: self
                .started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            hostname: self.hostname.clone(),
            version: self.version,
        }
    }
}

/// Sum of every output's `errors` and `retries_failed`.
pub(crate) fn totals(m: &Metrics) -> Totals {
    m.outputs()
        .iter()
        .fold(Totals::default(), |t, (_, o)| Totals {
            errors: t.errors + get(&o.errors),
            retries_failed: t.retries_failed + get(&o.retries_failed),
        })
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, JSON, v.to_string())
}

/// Route one request. Only `GET` (and `HEAD`, whose body hyper leaves out) is served.
pub(crate) fn handle<B>(st: &State, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/" => json(StatusCode::OK, api::root(st.version)),
        "/api/v1/uptime" => json(StatusCode::OK, api::uptime(st.uptime_secs())),
        "/api/v1/metrics" => json(StatusCode::OK, api::metrics(&st.metrics)),
        "/api/v1/storage" => json(StatusCode::OK, api::storage(&st.metrics)),
        // v1 and v2 share one exposition: Fluent Bit's v2 names, no per-sample timestamps.
        "/api/v1/metrics/prometheus" | "/api/v2/metrics/prometheus" => {
            let fams = families::collect(&st.metrics, &st.process());
            reply(
                StatusCode::OK,
                prometheus::CONTENT_TYPE,
                prometheus::render(&fams),
            )
        }
        "/api/v2/metrics" => {
            let fams = families::collect(&st.metrics, &st.process());
            let now = jiff::Timestamp::now().to_string();
            reply(StatusCode::OK, TEXT, api::cmetrics_text(&fams, &now))
        }
        "/api/v1/health" => match health_state(st) {
            // Fluent Bit only registers this endpoint with Health_Check on (404 otherwise);
            // kinesis-bit answers "ok" then, so a liveness probe works without the check.
            Some((s, _)) if !s.healthy => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "error\n"),
            _ => reply(StatusCode::OK, TEXT, "ok\n"),
        },
        "/api/v2/health" => {
            let (s, cfg) = health_state(st).unwrap_or((
                crate::health::HealthState {
                    healthy: true,
                    errors: 0,
                    retries_failed: 0,
                },
                HealthConfig::default(),
            ));
            let code = if s.healthy {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            json(code, api::health_v2(s, cfg))
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

fn health_state(st: &State) -> Option<(crate::health::HealthState, HealthConfig)> {
    let w = st.health.as_ref()?;
    Some((w.state(st.clock.elapsed(), totals(&st.metrics)), w.config()))
}

/// Serve one connection until it closes; errors only concern this client.
async fn serve_connection(stream: tokio::net::TcpStream, st: Arc<State>) {
    let svc = service_fn(move |req: Request<Incoming>| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(handle(&st, &req)) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!(target: "http_server", "connection closed: {e}");
    }
}

/// Accept until `stop` turns true, then drop every connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    st: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept(), if conns.len() < MAX_CONNECTIONS => match r {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, st.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(target: "http_server", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// Record the output totals into the health window every second until `stop`.
pub(crate) async fn sample_health(st: Arc<State>, mut stop: watch::Receiver<bool>) {
    let Some(window) = st.health.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(HEALTH_SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => window.record(st.clock.elapsed(), totals(&st.metrics)),
        }
    }
}
