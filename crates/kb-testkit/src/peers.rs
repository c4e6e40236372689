//! Starts and stops the Kinesis-compatible test peers of `docs/test-peers.md`
//! (ferrokinesis, kinesis-local, moto) on free loopback ports, each in a temporary working
//! directory that also holds its log (`peer.log`).
//!
//! Peers are installed by `scripts/install-peers.sh` under [`peers_dir`]. A missing peer panics
//! with the install hint: tests that need a peer fail, they are never skipped.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64_simd::STANDARD as B64;
use serde::Deserialize;
use tempfile::TempDir;

/// How often a peer start is retried on a fresh port when the process dies before it is ready
/// (typically a port taken between [`free_port`] and the peer's bind).
const START_ATTEMPTS: usize = 4;

/// Directory holding the installed peers: `$KB_PEERS`, else `~/.cache/kinesis-bit-peers`.
pub fn peers_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KB_PEERS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/kinesis-bit-peers")
}

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn require(peer: &str, path: PathBuf) -> PathBuf {
    if !path.exists() {
        panic!(
            "{peer} not found at {}: run `bash scripts/install-peers.sh` (see docs/test-peers.md)",
            path.display()
        );
    }
    path
}

/// Generates a self-signed certificate for `cn` with subjectAltName `DNS:localhost,IP:127.0.0.1`
/// using the `openssl` CLI as `docs/test-peers.md` shows, plus
/// `basicConstraints=critical,CA:FALSE` (rustls rejects the spec's CA:TRUE certificate as a server
/// certificate). Usable as the server certificate and as the client's CA file. Returns
/// (cert.pem, key.pem) inside `dir`.
pub fn self_signed_cert(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "3650", "-subj"])
        .arg(format!("/CN={cn}"))
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // without this, OpenSSL 3 marks the certificate CA:TRUE and rustls/webpki refuses it as
        // a server certificate (`CaUsedAsEndEntity`); as its own trust anchor it still works
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): run `bash scripts/install-peers.sh` (see docs/test-peers.md)")
        });
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

// ------------------------------------------------------------------------------------------------
// process handling shared by the peers

/// A running peer process in its temporary working directory.
struct PeerProcess {
    child: Child,
    log: PathBuf,
    // dropped after the child is reaped (field order)
    dir: TempDir,
}

impl PeerProcess {
    fn spawn(name: &'static str, dir: TempDir, mut cmd: Command) -> Result<Self, String> {
        let log = dir.path().join("peer.log");
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(PeerProcess { child, log, dir })
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Polls `GET path` on 127.0.0.1:port until it answers 200. `Err(exited)` tells whether the
    /// process died (then a retry on another port makes sense) or the timeout passed.
    fn wait_ready(&mut self, port: u16, path: &str, timeout: Duration) -> Result<(), bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(true);
            }
            if http_get_status(port, path) == Some(200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // SIGKILL, then wait for the PID so the ports are free again when drop returns
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A plain-TCP `GET` returning the status code, or `None` on any failure.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// Starts a peer with up to [`START_ATTEMPTS`] fresh port sets; `make` builds the command for a
/// port set and returns it with the (port, health path) to poll.
fn start_peer<P>(
    name: &'static str,
    timeout: Duration,
    mut ports: impl FnMut() -> P,
    mut make: impl FnMut(&Path, &P) -> (Command, u16, &'static str),
) -> (PeerProcess, P) {
    let mut last = String::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kb-{name}-"))
            .tempdir()
            .expect("create temp dir");
        let p = ports();
        let (cmd, port, path) = make(dir.path(), &p);
        let mut proc = PeerProcess::spawn(name, dir, cmd).unwrap_or_else(|e| panic!("{e}"));
        match proc.wait_ready(port, path, timeout) {
            Ok(()) => return (proc, p),
            Err(true) => {
                // died early (port taken?): retry on new ports
                last = proc.log_tail();
            }
            Err(false) => panic!(
                "{name} not ready on port {port} within {timeout:?}; log tail:\n{}",
                proc.log_tail()
            ),
        }
    }
    panic!("{name} exited before it was ready ({START_ATTEMPTS} attempts); log tail:\n{last}")
}

// ------------------------------------------------------------------------------------------------
// ferrokinesis

/// Options of [`Ferrokinesis::start_with`].
#[derive(Clone, Debug, Default)]
pub struct FerroOptions {
    /// `--enforce-limits`: AWS-like per-shard write limits (1000 records/s, 1 MiB/s).
    pub enforce_limits: bool,
    /// Further command-line arguments.
    pub extra_args: Vec<String>,
}

/// One accepted record from ferrokinesis' `--capture` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedRecord {
    pub op: String,
    pub stream: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub sequence_number: String,
    pub shard_id: String,
}

#[derive(Deserialize)]
struct CaptureLine {
    #[serde(default)]
    op: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    partition_key: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    sequence_number: String,
    #[serde(default)]
    shard_id: String,
}

/// A running ferrokinesis (plain HTTP), stopped on drop.
pub struct Ferrokinesis {
    proc: PeerProcess,
    port: u16,
    capture: PathBuf,
}

impl Ferrokinesis {
    pub fn binary() -> PathBuf {
        require(
            "ferrokinesis",
            peers_dir().join("ferrokinesis/bin/ferrokinesis"),
        )
    }

    pub fn start() -> Self {
        Self::start_with(FerroOptions::default())
    }

    pub fn start_with(opts: FerroOptions) -> Self {
        let bin = Self::binary();
        let (proc, port) = start_peer(
            "ferrokinesis",
            Duration::from_secs(10),
            free_port,
            |dir, &port| {
                let mut cmd = Command::new(&bin);
                cmd.arg("--port")
                    .arg(port.to_string())
                    .arg("--capture")
                    .arg(dir.join("capture.ndjson"))
                    .args(["--create-stream-ms", "50", "--delete-stream-ms", "50"])
                    .args(["--update-stream-ms", "50", "--shard-limit", "100"])
                    .args(["--log-level", "warn"]);
                if opts.enforce_limits {
                    cmd.arg("--enforce-limits");
                }
                cmd.args(&opts.extra_args);
                (cmd, port, "/_health/ready")
            },
        );
        let capture = proc.dir.path().join("capture.ndjson");
        Ferrokinesis {
            proc,
            port,
            capture,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temporary working directory (holds `capture.ndjson` and `peer.log`).
    pub fn dir(&self) -> &Path {
        self.proc.dir.path()
    }

    pub fn capture_path(&self) -> &Path {
        &self.capture
    }

    /// The put operations (`PutRecord`/`PutRecords`) captured so far, in file order, with
    /// `data` base64-decoded. An incomplete last line (being written) is ignored.
    pub fn captured(&self) -> Vec<CapturedRecord> {
        let text = match fs::read_to_string(&self.capture) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", self.capture.display()),
        };
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(c) = serde_json::from_str::<CaptureLine>(line) else {
                continue;
            };
            if !c.op.to_ascii_lowercase().starts_with("put") {
                continue;
            }
            let data = B64
                .decode_to_vec(c.data.as_bytes())
                .unwrap_or_else(|e| panic!("capture line with invalid base64 ({e}): {line}"));
            out.push(CapturedRecord {
                op: c.op,
                stream: c.stream,
                partition_key: c.partition_key,
                data,
                sequence_number: c.sequence_number,
                shard_id: c.shard_id,
            });
        }
        out
    }

    /// The peer's log so far (last lines).
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

// ------------------------------------------------------------------------------------------------
// kinesis-local

/// A running kinesis-local (kinesis-mock) with a plain and a TLS listener, stopped on drop.
pub struct KinesisLocal {
    proc: PeerProcess,
    port: u16,
    tls_port: u16,
}

impl KinesisLocal {
    pub fn package_dir() -> PathBuf {
        peers_dir().join("kinesis-local/node_modules/kinesis-local")
    }

    /// Starts with the bundled certificate (CN=Unknown, no subjectAltName: only good for
    /// `verify off` and negative tests).
    pub fn start() -> Self {
        let pkg = Self::package_dir();
        require("kinesis-local", pkg.join("main.js"));
        Self::start_inner(|_| require("kinesis-local", pkg.join("server.json")))
    }

    /// Starts with the given certificate and private key (PEM) on the TLS listener.
    pub fn start_with_cert(cert_pem: &str, key_pem: &str) -> Self {
        require("kinesis-local", Self::package_dir().join("main.js"));
        let json = serde_json::json!({"server": {"key": key_pem, "cert": cert_pem}}).to_string();
        Self::start_inner(move |dir| {
            let path = dir.join("server-cert.json");
            fs::write(&path, &json).expect("write server-cert.json");
            path
        })
    }

    fn start_inner(mut cert_json: impl FnMut(&Path) -> PathBuf) -> Self {
        let main = Self::package_dir().join("main.js");
        let (proc, (port, tls_port)) = start_peer(
            "kinesis-local",
            Duration::from_secs(30),
            || {
                let a = free_port();
                let mut b = free_port();
                while b == a {
                    b = free_port();
                }
                (a, b)
            },
            |dir, &(port, tls_port)| {
                let mut cmd = Command::new("node");
                cmd.arg(&main)
                    .env("KINESIS_MOCK_CERT_PATH", cert_json(dir))
                    .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
                    .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
                    .env("LOG_LEVEL", "WARN")
                    .env("CREATE_STREAM_DURATION", "50ms")
                    .env("DELETE_STREAM_DURATION", "50ms")
                    .env("UPDATE_STREAM_DURATION", "50ms")
                    .env("SHOULD_PERSIST_DATA", "false")
                    .env("LOAD_DATA_IF_EXISTS", "false");
                (cmd, port, "/healthcheck")
            },
        );
        KinesisLocal {
            proc,
            port,
            tls_port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// Plain HTTP endpoint `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// TLS endpoint `https://127.0.0.1:TLSPORT`.
    pub fn tls_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    pub fn dir(&self) -> &Path {
        self.proc.dir.path()
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

// ------------------------------------------------------------------------------------------------
// moto

/// A running moto server on 127.0.0.1, stopped on drop.
pub struct Moto {
    proc: PeerProcess,
    port: u16,
}

impl Moto {
    pub fn binary() -> PathBuf {
        require("moto", peers_dir().join("moto/bin/moto_server"))
    }

    /// Default mode: any credentials work.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// SigV4-verifying mode (`INITIAL_NO_AUTH_ACTION_COUNT`): the first `n` actions are
    /// unauthenticated (use them, e.g. via [`Moto::create_user_with_key`] which takes 3, to create
    /// an IAM user with an access key and a policy); every later request must be correctly
    /// signed, otherwise moto answers 403 with an XML body.
    pub fn start_verifying(initial_no_auth_action_count: u32) -> Self {
        Self::start_inner(Some(initial_no_auth_action_count))
    }

    fn start_inner(no_auth: Option<u32>) -> Self {
        let bin = Self::binary();
        let (proc, port) = start_peer("moto", Duration::from_secs(30), free_port, |_, &port| {
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p"]).arg(port.to_string());
            if let Some(n) = no_auth {
                cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
            }
            (cmd, port, "/moto-api/")
        });
        Moto { proc, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` — one endpoint for every service (Kinesis, STS, IAM, IMDS paths).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.proc.dir.path()
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    fn api(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        simple_http(self.port, method, path)
            .unwrap_or_else(|e| panic!("moto {method} {path}: {e}; log tail:\n{}", self.log_tail()))
    }

    /// `POST /moto-api/recorder/start-recording`
    pub fn start_recording(&self) {
        let (st, body) = self.api("POST", "/moto-api/recorder/start-recording");
        assert_eq!(
            st,
            200,
            "start-recording: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// `POST /moto-api/recorder/stop-recording`
    pub fn stop_recording(&self) {
        let (st, body) = self.api("POST", "/moto-api/recorder/stop-recording");
        assert_eq!(
            st,
            200,
            "stop-recording: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// `POST /moto-api/recorder/reset-recording`
    pub fn reset_recording(&self) {
        let (st, body) = self.api("POST", "/moto-api/recorder/reset-recording");
        assert_eq!(
            st,
            200,
            "reset-recording: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// `GET /moto-api/recorder/download-recording`: one JSON object per recorded request
    /// (headers, method, url, base64 body, …).
    pub fn recording(&self) -> Vec<serde_json::Value> {
        let (st, body) = self.api("GET", "/moto-api/recorder/download-recording");
        assert_eq!(
            st,
            200,
            "download-recording: {}",
            String::from_utf8_lossy(&body)
        );
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("recording line {l:?}: {e}"))
            })
            .collect()
    }

    /// Creates IAM user `user` with an inline policy allowing everything and an access key;
    /// returns (access key id, secret). Takes 3 actions (CreateUser, PutUserPolicy,
    /// CreateAccessKey), so in verifying mode call it first with
    /// `start_verifying(3)` (or more when other setup actions follow).
    pub async fn create_user_with_key(&self, user: &str) -> (String, String) {
        let iam = crate::kds::AwsQuery::new(&self.endpoint(), "us-east-1", "iam");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let steps: [&[(&str, &str)]; 3] = [
            &[("Action", "CreateUser"), ("UserName", user)],
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", user),
                ("PolicyName", "allow-all"),
                ("PolicyDocument", policy),
            ],
            &[("Action", "CreateAccessKey"), ("UserName", user)],
        ];
        let mut last = String::new();
        for params in steps {
            let mut p = params.to_vec();
            p.push(("Version", "2010-05-08"));
            let (st, body) = iam.call(&p).await.expect("IAM request to moto");
            assert_eq!(st, 200, "moto IAM {:?}: {body}", params[0].1);
            last = body;
        }
        let akid = xml_text(&last, "AccessKeyId").expect("AccessKeyId in CreateAccessKey");
        let secret = xml_text(&last, "SecretAccessKey").expect("SecretAccessKey");
        (akid, secret)
    }
}

/// Text of the first `<tag>…</tag>` in `xml`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml[start..start + len].to_string())
}

/// Minimal blocking HTTP/1.1 request with `Connection: close`; returns status and body.
fn simple_http(port: u16, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
    out
}
