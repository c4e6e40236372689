//! `http` through the real engine over real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{build, build_errors, mp, Recorder};
use common::{free_port, Gated};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::event::EventReader;
use kb_core::tag::TagMatcher;
use kb_inputs::http::{self, HttpInput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

struct Agent {
    port: u16,
    rec: Recorder,
    gate: watch::Sender<bool>,
    stop: oneshot::Sender<()>,
    engine: JoinHandle<EngineReport>,
}

async fn start(kv: &[(&str, &str)]) -> Agent {
    start_limited(kv, None, true).await
}

async fn start_limited(kv: &[(&str, &str)], mem_buf_limit: Option<usize>, open: bool) -> Agent {
    let port = free_port();
    let port_s = port.to_string();
    let mut all = vec![("listen", "127.0.0.1"), ("port", port_s.as_str())];
    all.extend_from_slice(kv);
    let input = build(&http::PLUGIN, &all).expect("valid configuration");
    let rec = Recorder::default();
    let (gate, gate_rx) = watch::channel(open);
    let (stop, rx) = oneshot::channel::<()>();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "http".into(),
        name: "http.0".into(),
        tag: "http.0".into(),
        mem_buf_limit,
        filesystem: false,
        plugin: input,
    });
    engine.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "recorder.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(Gated {
            rec: rec.clone(),
            open: gate_rx,
        }),
    });
    let engine = tokio::spawn(async move {
        engine
            .run(async {
                let _ = rx.await;
            })
            .await
            .expect("engine runs")
    });
    Agent {
        port,
        rec,
        gate,
        stop,
        engine,
    }
}

/// A response: status code and body.
#[derive(Debug, PartialEq)]
struct Resp {
    status: u16,
    body: String,
}

impl Agent {
    async fn connect(&self) -> TcpStream {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpStream::connect(("127.0.0.1", self.port)).await {
                Ok(s) => return s,
                Err(e) if tokio::time::Instant::now() > deadline => panic!("connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Send one HTTP/1.1 request (connection closed afterwards) and read the response.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut s = self.connect().await;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        // The server may answer (and close) before reading a body it refuses.
        let _ = s.write_all(&bytes).await;
        let mut out = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            match tokio::time::timeout(WAIT, s.read(&mut piece)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&piece[..n]),
                Err(_) => panic!("no response"),
            }
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        Resp {
            status,
            body: body.to_string(),
        }
    }

    async fn post_json(&self, path: &str, body: &str) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }

    /// Stop after a moment; returns every delivered (tag, record).
    async fn finish(self) -> Vec<(String, rmpv::Value)> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.stop.send(());
        let report = tokio::time::timeout(WAIT, self.engine)
            .await
            .expect("engine stops")
            .unwrap();
        assert_eq!(report.lost_records, 0);
        let mut out = Vec::new();
        for c in self.rec.chunks() {
            for e in EventReader::new(&c.data) {
                let e = e.unwrap();
                out.push((
                    c.tag.clone(),
                    rmpv::decode::read_value(&mut &e.record[..]).unwrap(),
                ));
            }
        }
        out
    }
}

fn created() -> Resp {
    Resp {
        status: 201,
        body: String::new(),
    }
}

#[tokio::test]
async fn posts_an_object_and_an_array() {
    let agent = start(&[]).await;
    assert_eq!(
        agent.post_json("/app.log", r#"{"a":1,"b":"x"}"#).await,
        created()
    );
    assert_eq!(
        agent
            .post_json("/app.log", r#"[{"c":2},{"d":[true,null]}]"#)
            .await,
        created()
    );
    let got = agent.finish().await;
    assert_eq!(
        got,
        [
            ("app.log".to_string(), mp(r#"{"a":1,"b":"x"}"#)),
            ("app.log".to_string(), mp(r#"{"c":2}"#)),
            ("app.log".to_string(), mp(r#"{"d":[true,null]}"#)),
        ]
    );
}

#[tokio::test]
async fn tag_from_path_or_input_and_tag_key() {
    let agent = start(&[("tag_key", "t")]).await;
    assert_eq!(agent.post_json("/", r#"{"a":1}"#).await, created());
    assert_eq!(
        agent
            .post_json("/p?x=1", r#"[{"t":"from.key","a":2},{"t":3,"a":4}]"#)
            .await,
        created()
    );
    let mut got = agent.finish().await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("from.key".to_string(), mp(r#"{"t":"from.key","a":2}"#)),
            ("http.0".to_string(), mp(r#"{"a":1}"#)),
            ("p".to_string(), mp(r#"{"t":3,"a":4}"#)),
        ]
    );
}

#[tokio::test]
async fn form_bodies_and_remote_addr() {
    let agent = start(&[
        ("add_remote_addr", "on"),
        ("successful_response_code", "200"),
    ])
    .await;
    let r = agent
        .request(
            "POST",
            "/form",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
            ],
            b"a=1&b=x+y%21",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
    let got = agent.finish().await;
    assert_eq!(
        got,
        [(
            "form".to_string(),
            mp(r#"{"a":"1","b":"x y!","REMOTE_ADDR":"10.0.0.1"}"#)
        )]
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let agent = start(&[("buffer_max_size", "1k"), ("buffer_chunk_size", "1k")]).await;
    let r = agent.post_json("/t", r#"{"a":"#).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalid JSON"), "{}", r.body);
    let r = agent.post_json("/t", r#"[{"a":1},"x"]"#).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("item 1 of the array is not a JSON object"),
        "{}",
        r.body
    );
    let r = agent.post_json("/t", "42").await;
    assert_eq!(r.status, 400);
    let r = agent
        .request("POST", "/t", &[("Content-Type", "text/plain")], b"{}")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("unsupported Content-Type"), "{}", r.body);
    let r = agent.request("POST", "/t", &[], b"{}").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Content-Type header is missing"),
        "{}",
        r.body
    );
    let big = format!(r#"{{"k":"{}"}}"#, "z".repeat(2_000));
    let r = agent.post_json("/t", &big).await;
    assert_eq!(r.status, 413);
    assert!(r.body.contains("buffer_max_size"), "{}", r.body);
    let r = agent.request("GET", "/t", &[], b"").await;
    assert_eq!(r.status, 405);
    let r = agent.request("PUT", "/t", &[], b"{}").await;
    assert_eq!(r.status, 405);
    // Nothing of the refused requests was appended; a good one still works.
    assert_eq!(agent.post_json("/t", r#"{"ok":true}"#).await, created());
    let got = agent.finish().await;
    assert_eq!(got, [("t".to_string(), mp(r#"{"ok":true}"#))]);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let agent = start(&[("buffer_max_size", "1k"), ("buffer_chunk_size", "1k")]).await;
    let mut s = agent.connect().await;
    let payload = format!(r#"{{"k":"{}"}}"#, "z".repeat(1_500));
    let req = format!(
        "POST /t HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    );
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(agent.finish().await.is_empty());
}

#[tokio::test]
async fn paused_input_holds_requests() {
    // 100 bytes of memory and a stalled output: the first request fills the buffer, the
    // second waits unanswered until the output moves again.
    let agent = Arc::new(start_limited(&[], Some(100), false).await);
    let big = format!(r#"{{"n":1,"pad":"{}"}}"#, "p".repeat(200));
    assert_eq!(agent.post_json("/bp", &big).await, created());
    let a = agent.clone();
    let second = tokio::spawn(async move { a.post_json("/bp", r#"{"n":2}"#).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !second.is_finished(),
        "the request was answered while paused"
    );
    agent.gate.send(true).unwrap();
    let r = tokio::time::timeout(WAIT, second)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(r, created());
    let agent = Arc::into_inner(agent).expect("one owner");
    let got = agent.finish().await;
    assert_eq!(
        got,
        [
            ("bp".to_string(), mp(&big)),
            ("bp".to_string(), mp(r#"{"n":2}"#)),
        ]
    );
}

#[tokio::test]
async fn port_in_use_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let props = common::props(&http::PLUGIN, &[("listen", "127.0.0.1"), ("port", &port)]).unwrap();
    let input = HttpInput::from_props(&props).expect("the factory does not bind");
    let err = input.listen().await.expect_err("port in use");
    assert!(err.to_string().contains("could not bind"), "{err}");
}

#[test]
fn configuration_errors() {
    let e = build_errors(&http::PLUGIN, &[("successful_response_code", "202")]);
    assert!(e[0].contains("must be 200, 201 or 204"), "{e:?}");
    let e = build_errors(
        &http::PLUGIN,
        &[("buffer_max_size", "1k"), ("buffer_chunk_size", "2k")],
    );
    assert!(
        e[0].contains("must be at least 'buffer_chunk_size'"),
        "{e:?}"
    );
}
