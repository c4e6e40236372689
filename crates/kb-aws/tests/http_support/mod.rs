//! Shared helpers of the `http_*` tests: certificates made with the `openssl` CLI, a plain or
//! TLS hyper server that counts connections, and a CONNECT proxy. Loopback (127.0.0.1) only.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use kb_aws::endpoint::Endpoint;

// ------------------------------------------------------------------------------------------------
// Certificates

pub struct Certs {
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Certs {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed by these tests");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue `name.pem`/`name.key` signed by `ca` with the given extensions.
fn issue(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Made once per test binary:
/// - `ca.pem`/`ca.key`: test CA; `ca2.pem`: an unrelated CA
/// - `server.pem`/`server.key`: CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (by `ca`)
/// - `other.pem`/`other.key`: SAN DNS:other.test only (by `ca`)
/// - `self.pem`/`self.key`: self-signed, SAN DNS:localhost, IP:127.0.0.1
/// - `client.pem`/`client.key` (PKCS#8), `client-rsa.key` (PKCS#1), `client-enc.key`
///   (encrypted PKCS#8, password `s3cret`), `client-legacy.key`/`client-legacy128.key`/
///   `client-des3.key` (legacy Proc-Type encrypted: AES-256, AES-128, DES-EDE3)
/// - `ec.pem`/`ec.key` (SEC1 EC key, client cert by `ca`), `ec-legacy.key` (AES-256 legacy)
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        for ca in ["ca", "ca2"] {
            openssl(
                &d,
                &[
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    &format!("{ca}.key"), "-out", &format!("{ca}.pem"), "-days", "3650", "-subj",
                    &format!("/CN=kb test {ca}"),
                ],
            );
        }
        let server_ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n";
        issue(
            &d,
            "ca",
            "server",
            "/CN=localhost",
            &format!("{server_ext}subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
        );
        issue(
            &d,
            "ca",
            "other",
            "/CN=other.test",
            &format!("{server_ext}subjectAltName=DNS:other.test\n"),
        );
        let client_ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
        issue(&d, "ca", "client", "/CN=kb client", client_ext);
        openssl(
            &d,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out",
                "self.pem", "-days", "3650", "-subj", "/CN=localhost", "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext",
                "basicConstraints=critical,CA:FALSE",
            ],
        );
        openssl(
            &d,
            &[
                "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client.key", "-out",
                "client-enc.key", "-passout", "pass:s3cret",
            ],
        );
        openssl(
            &d,
            &["rsa", "-in", "client.key", "-traditional", "-out", "client-rsa.key"],
        );
        openssl(
            &d,
            &[
                "rsa", "-in", "client.key", "-traditional", "-aes256", "-passout", "pass:s3cret",
                "-out", "client-legacy.key",
            ],
        );
        // Encrypted PKCS#8 as OpenSSL 1.0 wrote it: PBKDF2 with HMAC-SHA1.
        openssl(
            &d,
            &[
                "pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1", "-in",
                "client.key", "-out", "client-enc-sha1.key", "-passout", "pass:s3cret",
            ],
        );
        for (cipher, out) in [("-aes128", "client-legacy128.key"), ("-des3", "client-des3.key")] {
            openssl(
                &d,
                &[
                    "rsa", "-in", "client.key", "-traditional", cipher, "-passout",
                    "pass:s3cret", "-out", out,
                ],
            );
        }
        // EC client: SEC1 key.
        openssl(
            &d,
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key"],
        );
        openssl(
            &d,
            &[
                "ec", "-in", "ec.key", "-aes256", "-passout", "pass:s3cret", "-out",
                "ec-legacy.key",
            ],
        );
        std::fs::write(d.join("ec.ext"), client_ext).unwrap();
        openssl(
            &d,
            &["req", "-new", "-key", "ec.key", "-out", "ec.csr", "-subj", "/CN=kb ec client"],
        );
        openssl(
            &d,
            &[
                "x509", "-req", "-in", "ec.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "ec.pem", "-days", "3650", "-extfile", "ec.ext",
            ],
        );
        Certs { _dir: tmp, dir: d }
    })
}

fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Options of a TLS test server.
pub struct TlsServerOpts {
    /// Base name of the certificate (`server`, `other`, `self`).
    pub cert: &'static str,
    /// Only TLS 1.2.
    pub tls12_only: bool,
    /// Require a client certificate issued by `ca`.
    pub require_client_cert: bool,
}

impl Default for TlsServerOpts {
    fn default() -> Self {
        TlsServerOpts {
            cert: "server",
            tls12_only: false,
            require_client_cert: false,
        }
    }
}

pub fn tls_acceptor(opts: &TlsServerOpts) -> TlsAcceptor {
    let c = certs();
    let versions: &[&'static rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = if opts.require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for cert in load_certs(&c.path("ca.pem")) {
            roots.add(cert).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            load_certs(&c.path(&format!("{}.pem", opts.cert))),
            load_key(&c.path(&format!("{}.key", opts.cert))),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

// ------------------------------------------------------------------------------------------------
// A hyper test server

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub conn_id: usize,
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
pub struct Stats {
    pub accepts: AtomicUsize,
    pub closed: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub requests: Mutex<Vec<Seen>>,
    /// SNI of each TLS connection (None: no SNI).
    pub sni: Mutex<Vec<Option<String>>>,
    /// Negotiated cipher suite of each TLS connection.
    pub suites: Mutex<Vec<Option<rustls::CipherSuite>>>,
    pub peers: Mutex<Vec<SocketAddr>>,
}

impl Stats {
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
    pub fn sni(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }
    pub fn suites(&self) -> Vec<Option<rustls::CipherSuite>> {
        self.suites.lock().unwrap().clone()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:port` or `https://<host>:port`.
    pub fn endpoint(&self, scheme_host: &str) -> Endpoint {
        Endpoint::parse(&format!("{scheme_host}:{}", self.port()), None).unwrap()
    }
}

/// A keep-alive HTTP/1.1 server answering 200 `ok` (after `delay`), optionally over TLS.
pub async fn start_server(tls: Option<TlsAcceptor>, delay: Duration) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let conn_id = st.accepts.fetch_add(1, Ordering::SeqCst);
            st.peers.lock().unwrap().push(peer);
            let st = st.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc_stats = st.clone();
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let st = svc_stats.clone();
                    async move {
                        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        st.requests.lock().unwrap().push(Seen {
                            conn_id,
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        });
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        st.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let resp = http::Response::builder()
                            .status(200)
                            .header("x-conn-id", conn_id.to_string())
                            .body(Full::new(Bytes::from_static(b"ok")))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            let sni = s.get_ref().1.server_name().map(str::to_string);
                            st.sni.lock().unwrap().push(sni);
                            let suite = s.get_ref().1.negotiated_cipher_suite().map(|c| c.suite());
                            st.suites.lock().unwrap().push(suite);
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                }
                st.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    TestServer { addr, stats, task }
}

/// A raw TCP server: for every connection, `handler` gets the stream.
pub async fn start_raw<F, Fut>(handler: F) -> TestServer
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            st.accepts.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(handler(tcp));
        }
    });
    TestServer { addr, stats, task }
}

/// Read an HTTP head (through the blank line) from `s`.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.push(b[0]);
        if buf.ends_with(b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
    }
}

/// Read a request head and its Content-Length body.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let head = read_head(s).await?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some(head)
}

// ------------------------------------------------------------------------------------------------
// CONNECT proxy

#[derive(Default)]
pub struct ProxyStats {
    /// Request lines received (`CONNECT host:port HTTP/1.1`, `GET http://… HTTP/1.1`).
    pub lines: Mutex<Vec<String>>,
    /// Proxy-Authorization values received.
    pub auth: Mutex<Vec<Option<String>>>,
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

async fn proxy_conn<S>(mut s: S, st: Arc<ProxyStats>, expect_auth: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    let line = head.lines().next().unwrap_or_default().to_string();
    let auth = header(&head, "proxy-authorization");
    st.lines.lock().unwrap().push(line.clone());
    st.auth.lock().unwrap().push(auth.clone());
    if expect_auth.is_some() && auth != expect_auth {
        let _ = s
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default().to_string();
    if method == "CONNECT" {
        let Ok(mut up) = TcpStream::connect(&target).await else {
            let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
    } else {
        // Absolute-form request for a plain-HTTP target: answer it ourselves.
        let mut body_len = header(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut b = [0u8; 256];
        while body_len > 0 {
            let n = s.read(&mut b[..body_len.min(256)]).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            body_len -= n;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nproxy")
            .await;
    }
}

/// A CONNECT proxy on 127.0.0.1; `expect_auth` is the exact `Proxy-Authorization` required;
/// `tls` makes it an https proxy.
pub async fn start_proxy(expect_auth: Option<String>, tls: Option<TlsAcceptor>) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ProxyStats::default());
    let st = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            let expect = expect_auth.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => proxy_conn(tcp, st, expect).await,
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            proxy_conn(s, st, expect).await
                        }
                    }
                }
            });
        }
    });
    TestProxy { addr, stats, task }
}

/// A POST / like the Kinesis output sends, with Host set as the caller must.
pub fn request(ep: &Endpoint, body: &'static str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", ep.host_header())
        .header("content-type", "application/x-amz-json-1.1")
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}
