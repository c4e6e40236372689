//! kinesis-bit's monitoring HTTP server (`HTTP_Server On`), speaking Fluent Bit's API:
//! `/` (build info), `/api/v1/uptime`, `/api/v1/metrics` (JSON), `/api/v1/metrics/prometheus`
//! and `/api/v2/metrics/prometheus` (Prometheus text 0.0.4), `/api/v2/metrics` (cmetrics
//! text), `/api/v1/health` (`ok` / `error`) and `/api/v2/health` (JSON).
//!
//! It only reads the engine's [`Metrics`] registry; it never blocks the pipeline.

pub mod api;
pub mod families;
pub mod health;
pub mod prometheus;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use kb_core::metrics::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use health::HealthConfig;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The listen address could not be bound (in use, not local, no permission, bad name).
    #[error("could not bind address {addr} (set by HTTP_Listen and HTTP_Port): {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The service keys the server needs.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `HTTP_Listen`: an address or host name (IPv6 with or without brackets).
    pub listen: String,
    /// `HTTP_Port`; 0 picks a free port (tests).
    pub port: u16,
    /// `Health_Check On` with its `HC_*` limits; `None` when off.
    pub health_check: Option<HealthConfig>,
    /// The version `/` and `fluentbit_build_info` report.
    pub version: &'static str,
}

/// A running server; [`AdminServer::shutdown`] stops it.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// `host:port`, bracketing IPv6 literals, for messages.
fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
}

impl AdminServer {
    /// Bind and start serving `metrics`; `started` is when the agent started (uptime).
    /// Must be called inside a tokio runtime.
    pub async fn start(
        config: AdminConfig,
        metrics: Arc<Metrics>,
        started: SystemTime,
    ) -> Result<Self, AdminError> {
        let host = config
            .listen
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let listener = TcpListener::bind((host.as_str(), config.port))
            .await
            .map_err(|source| AdminError::Bind {
                addr: display_addr(&host, config.port),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: display_addr(&host, config.port),
            source,
        })?;
        let state = Arc::new(server::State {
            metrics,
            started,
            clock: Instant::now(),
            health: config.health_check.map(health::HealthWindow::new),
            version: config.version,
            hostname: hostname(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(server::accept_loop(
                listener,
                state.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(server::sample_health(state, stop_rx)),
        ];
        Ok(AdminServer { addr, stop, tasks })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, close every connection, and wait for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_core::metrics::add;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, raw: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn req(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    }

    async fn start(health: Option<HealthConfig>) -> (AdminServer, Arc<Metrics>) {
        let m = Arc::new(Metrics::default());
        let cfg = AdminConfig {
            listen: "127.0.0.1".into(),
            port: 0,
            health_check: health,
            version: "0.0.0-test",
        };
        let s = AdminServer::start(cfg, m.clone(), SystemTime::now())
            .await
            .unwrap();
        (s, m)
    }

    #[tokio::test]
    async fn routes_and_404() {
        let (s, m) = start(None).await;
        add(&m.output("null.0").proc_records, 4);
        let a = s.local_addr();
        assert!(get(a, &req("/")).await.contains("\"fluent-bit\""));
        let prom = get(a, &req("/api/v2/metrics/prometheus")).await;
        assert!(prom.contains("text/plain; version=0.0.4"), "{prom}");
        assert!(prom.contains("fluentbit_output_proc_records_total{name=\"null.0\"} 4"));
        assert!(get(a, &req("/nope")).await.starts_with("HTTP/1.1 404"));
        assert!(get(a, &req("/api/v1/health"))
            .await
            .ends_with("\r\n\r\nok\n"));
        let post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert!(get(a, post).await.starts_with("HTTP/1.1 405"));
        s.shutdown().await;
    }

    #[tokio::test]
    async fn garbage_does_not_disturb_other_clients() {
        let (s, _) = start(None).await;
        let a = s.local_addr();
        let bad = get(a, "\x00\x01 not http at all\r\n\r\n").await;
        assert!(bad.is_empty() || bad.starts_with("HTTP/1.1 400"), "{bad:?}");
        // A client that connects and says nothing holds only its own connection.
        let _idle = tokio::net::TcpStream::connect(a).await.unwrap();
        assert!(get(a, &req("/api/v1/uptime")).await.contains("uptime_sec"));
        s.shutdown().await;
    }

    #[tokio::test]
    async fn health_turns_500_after_errors() {
        let (s, m) = start(Some(HealthConfig {
            errors_count: 1,
            retry_failure_count: 5,
            period_secs: 60,
        }))
        .await;
        let o = m.output("k.0");
        let a = s.local_addr();
        // Errors counted before the sampler's first (baseline) sample would not count: keep
        // adding until they land after it.
        let mut unhealthy = false;
        for _ in 0..100 {
            add(&o.errors, 2);
            if get(a, &req("/api/v1/health"))
                .await
                .starts_with("HTTP/1.1 500")
            {
                unhealthy = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(unhealthy, "never unhealthy");
        let v2 = get(a, &req("/api/v2/health")).await;
        assert!(v2.starts_with("HTTP/1.1 500"), "{v2}");
        assert!(v2.contains("\"status\":\"error\",\"errors\":"), "{v2}");
        s.shutdown().await;
    }

    #[tokio::test]
    async fn port_in_use_names_the_address_and_keys() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = AdminConfig {
            listen: "127.0.0.1".into(),
            port: taken.local_addr().unwrap().port(),
            health_check: None,
            version: "0",
        };
        let e = AdminServer::start(cfg, Arc::default(), SystemTime::now())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("127.0.0.1:") && e.contains("HTTP_Listen"), "{e}");
    }
}
