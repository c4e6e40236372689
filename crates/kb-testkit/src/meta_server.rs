//! A metadata server for the metadata filters' tests: a real HTTP/1.1 server (plain, or TLS
//! with a self-signed certificate for `localhost`/`127.0.0.1`) on a free loopback port, on a
//! thread of its own, that answers with what the test's handler says (recorded Kubernetes API
//! server, kubelet, IMDS or ECS agent answers) and records every request it gets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers and body.
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Never answer (a black-holed server): the connection stays open, silent.
    Stall,
}

impl Reply {
    /// `200` with a JSON body.
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Answer(
            200,
            vec![("content-type".into(), "application/json".into())],
            body.into(),
        )
    }

    /// `200` with a text body.
    pub fn text(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Answer(200, vec![], body.into())
    }

    /// A status with an empty body.
    pub fn status(code: u16) -> Reply {
        Reply::Answer(code, vec![], Vec::new())
    }
}

/// The test's answers.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running server; stops when dropped.
pub struct MetaServer {
    addr: SocketAddr,
    tls: Option<PathBuf>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl MetaServer {
    /// A plain-HTTP server.
    pub fn http(handler: Handler) -> MetaServer {
        Self::start(false, handler)
    }

    /// An HTTPS server; [`MetaServer::ca_file`] is its certificate (to trust).
    pub fn https(handler: Handler) -> MetaServer {
        Self::start(true, handler)
    }

    fn start(tls: bool, handler: Handler) -> MetaServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let acceptor = if tls {
            let (cert, key) = crate::peers::self_signed_cert(dir.path(), "localhost");
            use rustls_pki_types::pem::PemObject;
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
                .expect("cert")
                .collect::<Result<_, _>>()
                .expect("cert");
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).expect("key");
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
            Some((tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert))
        } else {
            None
        };
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reqs = requests.clone();
        let ca = acceptor.as_ref().map(|(_, c)| c.clone());
        let acceptor = acceptor.map(|(a, _)| a);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stop_rx => break,
                        r = listener.accept() => match r {
                            Ok(c) => c,
                            Err(_) => continue,
                        },
                    };
                    let handler = handler.clone();
                    let reqs = reqs.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<Incoming>| {
                            let handler = handler.clone();
                            let reqs = reqs.clone();
                            async move {
                                let r = Request {
                                    method: req.method().to_string(),
                                    path: req
                                        .uri()
                                        .path_and_query()
                                        .map_or("/".to_string(), |p| p.to_string()),
                                    headers: req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_ascii_lowercase(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                };
                                let reply = handler(&r);
                                reqs.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                                let (status, headers, body) = match reply {
                                    Reply::Answer(s, h, b) => (s, h, b),
                                    Reply::Stall => {
                                        tokio::time::sleep(Duration::from_secs(3600)).await;
                                        (503, vec![], vec![])
                                    }
                                };
                                let mut resp = hyper::Response::builder().status(status);
                                for (k, v) in headers {
                                    resp = resp.header(k, v);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    resp.body(Full::new(Bytes::from(body))).expect("response"),
                                )
                            }
                        });
                        let builder = hyper::server::conn::http1::Builder::new();
                        match acceptor {
                            Some(a) => {
                                if let Ok(tls) = a.accept(tcp).await {
                                    let _ =
                                        builder.serve_connection(TokioIo::new(tls), service).await;
                                }
                            }
                            None => {
                                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                            }
                        }
                    });
                }
            });
        });
        MetaServer {
            addr,
            tls: ca,
            requests,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http[s]://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port())
    }

    /// The certificate of an HTTPS server (a CA file for the client).
    pub fn ca_file(&self) -> Option<&PathBuf> {
        self.tls.as_ref()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }
}

impl Drop for MetaServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
