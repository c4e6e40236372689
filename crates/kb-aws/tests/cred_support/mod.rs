//! Shared helpers of the credential tests: a process-environment sandbox serialised by a static
//! lock (tests in one binary run on parallel threads and the environment is process-wide), a
//! runtime runner, and a tiny HTTP stub server.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Exclusive use of the process environment: every `AWS_*` variable and
/// `EKS_POD_EXECUTION_ROLE` are removed, the shared files point into a fresh temporary directory
/// (empty), and IMDS is disabled (no 1 s probe of 169.254.169.254). Dropping restores nothing:
/// the next sandbox clears again.
pub struct EnvSandbox {
    _guard: MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
}

impl EnvSandbox {
    pub fn new() -> Self {
        let guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("AWS_") || k == "EKS_POD_EXECUTION_ROLE" {
                std::env::remove_var(&k);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let sandbox = EnvSandbox { _guard: guard, dir };
        sandbox.set("AWS_CONFIG_FILE", sandbox.path("config").to_str().unwrap());
        sandbox.set(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path("credentials").to_str().unwrap(),
        );
        sandbox.set("AWS_EC2_METADATA_DISABLED", "true");
        sandbox
    }

    pub fn set(&self, k: &str, v: &str) {
        std::env::set_var(k, v);
    }

    pub fn remove(&self, k: &str) {
        std::env::remove_var(k);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A `credential_process` script: counts its invocations in `<dir>/count`, sleeps
    /// `<dir>/sleep` seconds (default 0), and prints credentials `AKIDPROC<n>` expiring
    /// `<dir>/expiry_<n>` seconds from now (default 3600).
    pub fn credential_process_script(&self) -> String {
        let d = self.dir.path().display();
        let script = format!(
            r#"#!/bin/sh
d="{d}"
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$d/count"
secs=$(cat "$d/expiry_$n" 2>/dev/null || echo 3600)
sleep "$(cat "$d/sleep" 2>/dev/null || echo 0)"
exp=$(date -u -d "@$(( $(date +%s) + secs ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{{"Version": 1, "AccessKeyId": "AKIDPROC%s", "SecretAccessKey": "secret%s", "SessionToken": "token%s", "Expiration": "%s"}}\n' "$n" "$n" "$n" "$exp"
"#
        );
        let p = self.write("proc.sh", &script);
        format!("sh {}", p.display())
    }

    pub fn process_count(&self) -> u32 {
        std::fs::read_to_string(self.path("count"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

/// Run `f` on a fresh two-thread runtime.
pub fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
}

impl StubRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer of a stub handler: status, extra headers, body.
pub type StubAnswer = (u16, Vec<(&'static str, String)>, String);

/// A loopback HTTP/1.1 stub: one request per connection, answers with `Connection: close`.
pub struct Stub {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<StubRequest>>>,
}

impl Stub {
    pub async fn start<H>(handler: H) -> Stub
    where
        H: Fn(&StubRequest) -> StubAnswer + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    let head_end = loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        raw.extend_from_slice(&buf[..n]);
                        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p;
                        }
                    };
                    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split_whitespace();
                    let method = first.next().unwrap_or("").to_string();
                    let path = first.next().unwrap_or("").to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let req = StubRequest {
                        method,
                        path,
                        headers,
                    };
                    let (status, extra, body) = handler(&req);
                    log.lock().unwrap().push(req);
                    let mut resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in extra {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(&body);
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Stub { port, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// RFC 3339 UTC time `secs` seconds from now.
pub fn rfc3339_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now + secs;
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
