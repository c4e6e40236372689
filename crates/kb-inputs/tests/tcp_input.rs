//! `tcp` through the real engine over real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{build, build_errors, mp, Recorder};
use common::{free_port, Gated};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, EngineReport, InputInstance, OutputInstance};
use kb_core::event::{EventTime, EventWriter};
use kb_core::plugin::{Input, LineParser, ParserLookup};
use kb_core::registry::ServiceContext;
use kb_core::tag::TagMatcher;
use kb_inputs::tcp::{self, TcpInput};
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

async fn start_limited(kv: &[(&str, &str)], mem_buf_limit: Option<usize>, open: bool) -> Agent {
    let port = free_port();
    let port_s = port.to_string();
    let mut all = vec![("listen", "127.0.0.1"), ("port", port_s.as_str())];
    all.extend_from_slice(kv);
    let input = build(&tcp::PLUGIN, &all).expect("valid configuration");
    launch(port, input, mem_buf_limit, open)
}

fn launch(port: u16, input: Box<dyn Input>, mem_buf_limit: Option<usize>, open: bool) -> Agent {
    let rec = Recorder::default();
    let (gate, gate_rx) = watch::channel(open);
    let (stop, rx) = oneshot::channel::<()>();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(100),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "tcp".into(),
        name: "tcp.0".into(),
        tag: "tcp.0".into(),
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

async fn start(kv: &[(&str, &str)]) -> Agent {
    start_limited(kv, None, true).await
}

impl Agent {
    async fn connect(&self) -> TcpStream {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpStream::connect(("127.0.0.1", self.port)).await {
                Ok(s) => {
                    s.set_nodelay(true).unwrap();
                    return s;
                }
                Err(e) if tokio::time::Instant::now() > deadline => panic!("connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Wait until `n` records were delivered, then stop; returns the records (tag checked).
    async fn finish(self, n: usize) -> Vec<rmpv::Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.rec.events().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A moment for anything unexpected to arrive too.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = self.stop.send(());
        let report = tokio::time::timeout(WAIT, self.engine)
            .await
            .expect("engine stops")
            .unwrap();
        assert_eq!(report.lost_records, 0);
        assert!(self.rec.chunks().iter().all(|c| c.tag == "tcp.0"));
        self.rec.events().into_iter().map(|r| r.record).collect()
    }
}

/// Wait until the server closes `s` (end of file or reset).
async fn expect_closed(s: &mut TcpStream) {
    let mut b = [0u8; 16];
    match tokio::time::timeout(WAIT, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => panic!("connection still open: {other:?}"),
    }
}

#[tokio::test]
async fn json_stream_without_separators() {
    let agent = start(&[]).await;
    let mut c = agent.connect().await;
    c.write_all(br#"{"a":1}{"b":"#).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(br#""x y"}{"c":[1,2.5,null]}"#).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b"\n {\"d\":{\"e\":true}}\r\n[{\"f\":1},{\"g\":2}]{\"h\"")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b":-3}").await.unwrap();
    c.shutdown().await.unwrap();
    let got = agent.finish(7).await;
    assert_eq!(
        got,
        [
            mp(r#"{"a":1}"#),
            mp(r#"{"b":"x y"}"#),
            mp(r#"{"c":[1,2.5,null]}"#),
            mp(r#"{"d":{"e":true}}"#),
            mp(r#"{"f":1}"#),
            mp(r#"{"g":2}"#),
            mp(r#"{"h":-3}"#),
        ]
    );
}

#[tokio::test]
async fn format_none_splits_on_newline() {
    let agent = start(&[("format", "none")]).await;
    let mut c = agent.connect().await;
    c.write_all(b"first line\nsec").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b"ond {\"not\":\"parsed\"}\n\nthird")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let got = agent.finish(3).await;
    assert_eq!(
        got,
        [
            mp(r#"{"log":"first line"}"#),
            mp(r#"{"log":"second {\"not\":\"parsed\"}"}"#),
            mp(r#"{"log":"third"}"#),
        ]
    );
}

#[tokio::test]
async fn format_none_with_custom_separator() {
    let agent = start(&[("format", "none"), ("separator", "\\r\\n")]).await;
    let mut c = agent.connect().await;
    c.write_all(b"a\nb\r\nc\r").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(b"\nd\r\n").await.unwrap();
    c.shutdown().await.unwrap();
    let got = agent.finish(3).await;
    assert_eq!(
        got,
        [
            mp(r#"{"log":"a\nb"}"#),
            mp(r#"{"log":"c"}"#),
            mp(r#"{"log":"d"}"#)
        ]
    );
}

#[tokio::test]
async fn bad_connection_closed_while_another_delivers() {
    let agent = start(&[]).await;
    let mut good = agent.connect().await;
    let mut bad = agent.connect().await;
    good.write_all(br#"{"good":1}"#).await.unwrap();
    bad.write_all(br#"{"bad":1} {oops}"#).await.unwrap();
    expect_closed(&mut bad).await;
    let mut scalar = agent.connect().await;
    scalar.write_all(b"\"just a string\"\n").await.unwrap();
    expect_closed(&mut scalar).await;
    good.write_all(br#"{"good":2}"#).await.unwrap();
    good.shutdown().await.unwrap();
    let got = agent.finish(3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.contains(&mp(r#"{"bad":1}"#)), "{got:?}");
    let good_ones: Vec<_> = got
        .iter()
        .filter(|r| *r != &mp(r#"{"bad":1}"#))
        .cloned()
        .collect();
    assert_eq!(good_ones, [mp(r#"{"good":1}"#), mp(r#"{"good":2}"#)]);
}

#[tokio::test]
async fn payload_over_buffer_size_closes_the_connection() {
    let agent = start(&[
        ("format", "none"),
        ("buffer_size", "100"),
        ("chunk_size", "64"),
    ])
    .await;
    let mut c = agent.connect().await;
    c.write_all(b"ok\n").await.unwrap();
    c.write_all(&[b'x'; 300]).await.unwrap();
    expect_closed(&mut c).await;
    let mut j = agent.connect().await;
    let mut big = br#"{"k":""#.to_vec();
    big.extend_from_slice(&[b'y'; 300]);
    big.extend_from_slice(br#""}"#);
    let _ = j.write_all(&big).await;
    expect_closed(&mut j).await;
    let got = agent.finish(1).await;
    assert_eq!(got, [mp(r#"{"log":"ok"}"#)]);
}

#[tokio::test]
async fn source_address_key_adds_the_peer() {
    let agent = start(&[("source_address_key", "src")]).await;
    let mut c = agent.connect().await;
    let local = c.local_addr().unwrap();
    c.write_all(br#"{"a":1}[{"b":2}]"#).await.unwrap();
    c.shutdown().await.unwrap();
    let got = agent.finish(2).await;
    let src = format!("tcp://{local}");
    assert_eq!(
        got,
        [
            mp(&format!(r#"{{"a":1,"src":"{src}"}}"#)),
            mp(&format!(r#"{{"b":2,"src":"{src}"}}"#)),
        ]
    );
}

#[tokio::test]
async fn stalled_output_stops_reading() {
    // 32 KB of memory while the output is stalled: once the input holds that much it reads
    // nothing more, so the client's 1 MB cannot all be written (the kernel buffers hold a few
    // hundred KB at most) until the output moves again.
    let agent = start_limited(
        &[("format", "none"), ("chunk_size", "4k")],
        Some(32_000),
        false,
    )
    .await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_send_buffer_size(8192).unwrap();
    let addr = format!("127.0.0.1:{}", agent.port).parse().unwrap();
    // The listener may not be bound yet.
    let _ = agent.connect().await;
    let mut c = sock.connect(addr).await.unwrap();
    let lines: usize = 1000;
    let writer = tokio::spawn(async move {
        for i in 0..lines {
            let line = format!("{i:05} {}\n", "x".repeat(993));
            c.write_all(line.as_bytes()).await.unwrap();
        }
        c.shutdown().await.unwrap();
        c
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!writer.is_finished(), "the input kept reading while paused");
    assert!(agent.rec.events().is_empty());
    agent.gate.send(true).unwrap();
    let _c = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the input resumed reading")
        .unwrap();
    let got = agent.finish(lines).await;
    assert_eq!(got.len(), lines);
    for (i, r) in got.iter().enumerate() {
        let want = format!("{i:05} {}", "x".repeat(993));
        assert_eq!(r, &rmpv::Value::Map(vec![("log".into(), want.into())]));
    }
}

/// A parser for `key=value` pieces.
struct KeyValue;

impl LineParser for KeyValue {
    fn parse_line(&self, line: &[u8], out: &mut EventWriter, now: EventTime) -> Result<(), String> {
        let line = std::str::from_utf8(line).map_err(|e| e.to_string())?;
        let (k, v) = line.split_once('=').ok_or("no '='")?;
        let mut m = serde_json::Map::new();
        m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        out.write_json_record(now, &m);
        Ok(())
    }
}

impl ParserLookup for KeyValue {
    fn parser(&self, name: &str) -> Option<Arc<dyn LineParser>> {
        (name == "kv").then(|| Arc::new(KeyValue) as Arc<dyn LineParser>)
    }
}

#[tokio::test]
async fn parser_applies_to_pieces() {
    let port = free_port();
    let port_s = port.to_string();
    let props = common::props(
        &tcp::PLUGIN,
        &[
            ("listen", "127.0.0.1"),
            ("port", &port_s),
            ("format", "none"),
            ("separator", ";"),
            ("parser", "kv"),
            ("source_address_key", "from"),
        ],
    )
    .unwrap();
    let svc = ServiceContext {
        parsers: Arc::new(KeyValue),
        ..Default::default()
    };
    let input = (tcp::PLUGIN.build)(&props, &svc).expect("valid configuration");
    let agent = launch(port, input, None, true);
    let mut c = agent.connect().await;
    let local = c.local_addr().unwrap();
    c.write_all(b"a=1;plain;b=2;").await.unwrap();
    c.shutdown().await.unwrap();
    let got = agent.finish(3).await;
    let src = format!("tcp://{local}");
    assert_eq!(
        got,
        [
            mp(&format!(r#"{{"a":"1","from":"{src}"}}"#)),
            mp(&format!(r#"{{"log":"plain","from":"{src}"}}"#)),
            mp(&format!(r#"{{"b":"2","from":"{src}"}}"#)),
        ]
    );
}

#[tokio::test]
async fn port_in_use_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let props = common::props(&tcp::PLUGIN, &[("listen", "127.0.0.1"), ("port", &port)]).unwrap();
    let input = TcpInput::from_props(&props, &ServiceContext::default())
        .expect("the factory does not bind");
    let err = input.listen().await.expect_err("port in use");
    assert!(err.to_string().contains("could not bind"), "{err}");
}

#[test]
fn configuration_errors() {
    let e = build_errors(&tcp::PLUGIN, &[("format", "xml")]);
    assert!(e[0].contains("'format' must be 'json' or 'none'"), "{e:?}");
    let e = build_errors(&tcp::PLUGIN, &[("port", "70000")]);
    assert!(e[0].contains("must be 1 to 65535"), "{e:?}");
    let e = build_errors(&tcp::PLUGIN, &[("format", "none"), ("parser", "nope")]);
    assert!(e[0].contains("unknown parser 'nope'"), "{e:?}");
    assert!(build(&tcp::PLUGIN, &[("format", "none"), ("separator", "||")]).is_ok());
}
