//! `forward` through the real engine over real sockets on 127.0.0.1.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{build, build_errors, mp, run_input, Recorder};
use kb_core::engine::EngineReport;
use kb_core::event::{EventReader, EventTime};
use kb_inputs::forward::{self, auth::sha512_hex, ForwardInput};
use rmpv::Value as V;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn enc(v: &V) -> Vec<u8> {
    let mut b = Vec::new();
    rmpv::encode::write_value(&mut b, v).unwrap();
    b
}

fn et(secs: u32, nanos: u32) -> V {
    let mut d = secs.to_be_bytes().to_vec();
    d.extend_from_slice(&nanos.to_be_bytes());
    V::Ext(0, d)
}

fn s(x: &str) -> V {
    V::from(x)
}

fn arr(v: Vec<V>) -> V {
    V::Array(v)
}

fn chunk_opt(id: &str) -> V {
    V::Map(vec![(s("chunk"), s(id))])
}

/// An event as the output received it.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    tag: String,
    time: EventTime,
    metadata: V,
    record: V,
}

fn received(rec: &Recorder) -> Vec<Got> {
    let mut out = Vec::new();
    for c in rec.chunks() {
        for e in EventReader::new(&c.data) {
            let e = e.expect("well-formed event");
            out.push(Got {
                tag: c.tag.clone(),
                time: e.time,
                metadata: rmpv::decode::read_value(&mut &e.metadata[..]).unwrap(),
                record: rmpv::decode::read_value(&mut &e.record[..]).unwrap(),
            });
        }
    }
    out
}

struct Agent {
    port: u16,
    stop: oneshot::Sender<()>,
    engine: JoinHandle<(Recorder, EngineReport)>,
}

async fn start_with(kv: &[(&str, &str)]) -> Agent {
    start_limited(kv, None).await
}

async fn start_limited(kv: &[(&str, &str)], mem_buf_limit: Option<usize>) -> Agent {
    let port = free_port();
    let port_s = port.to_string();
    let mut all = vec![("listen", "127.0.0.1"), ("port", port_s.as_str())];
    all.extend_from_slice(kv);
    let input = build(&forward::PLUGIN, &all).expect("valid configuration");
    let (stop, rx) = oneshot::channel::<()>();
    let engine = tokio::spawn(run_input(input, mem_buf_limit, async {
        let _ = rx.await;
    }));
    Agent { port, stop, engine }
}

async fn start() -> Agent {
    start_with(&[]).await
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

    async fn finish(self) -> Vec<Got> {
        let _ = self.stop.send(());
        let (rec, report) = tokio::time::timeout(WAIT, self.engine)
            .await
            .expect("engine stops")
            .unwrap();
        assert_eq!(report.lost_records, 0);
        received(&rec)
    }
}

/// Read one msgpack value from the stream.
async fn read_value<S: AsyncRead + Unpin>(sock: &mut S) -> V {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            if let Ok(v) = rmpv::decode::read_value(&mut &buf[..]) {
                return v;
            }
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut piece))
            .await
            .expect("a reply in time")
            .expect("read");
        assert!(n > 0, "connection closed before a reply");
        buf.extend_from_slice(&piece[..n]);
    }
}

/// Whether the server closed the connection (end of file or reset) within the wait.
async fn closed_by_server<S: AsyncRead + Unpin>(sock: &mut S) -> bool {
    let mut piece = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut piece)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn expect_ack<S: AsyncRead + Unpin>(sock: &mut S, id: &str) {
    let v = read_value(sock).await;
    assert_eq!(v, V::Map(vec![(s("ack"), s(id))]));
}

async fn send<S: AsyncWrite + Unpin>(sock: &mut S, v: &V) {
    sock.write_all(&enc(v)).await.unwrap();
}

#[tokio::test]
async fn message_forward_and_packed_forward_modes() {
    let agent = start().await;
    let mut c = agent.connect().await;
    // Message with an integer time.
    send(
        &mut c,
        &arr(vec![
            s("app.msg"),
            V::from(1_700_000_000u32),
            mp(r#"{"m":1}"#),
        ]),
    )
    .await;
    // Forward with EventTime and float times.
    let entries = arr(vec![
        arr(vec![et(1_700_000_001, 123_456_789), mp(r#"{"f":1}"#)]),
        arr(vec![V::F64(1_700_000_002.5), mp(r#"{"f":2}"#)]),
    ]);
    send(&mut c, &arr(vec![s("app.fwd"), entries])).await;
    // PackedForward: a legacy entry and a v2 entry with metadata, acknowledged.
    let mut packed = enc(&arr(vec![et(1_700_000_003, 7), mp(r#"{"p":1}"#)]));
    packed.extend(enc(&arr(vec![
        arr(vec![et(1_700_000_004, 8), mp(r#"{"meta":"x"}"#)]),
        mp(r#"{"p":2}"#),
    ])));
    send(
        &mut c,
        &arr(vec![s("app.packed"), V::Binary(packed), chunk_opt("c1")]),
    )
    .await;
    expect_ack(&mut c, "c1").await;
    // Message with an ack, the option as the 4th element.
    send(
        &mut c,
        &arr(vec![
            s("app.msg"),
            et(5, 6),
            mp(r#"{"m":2}"#),
            chunk_opt("c2"),
        ]),
    )
    .await;
    expect_ack(&mut c, "c2").await;

    let got = agent.finish().await;
    let mut summary: Vec<_> = got
        .iter()
        .map(|g| (g.tag.as_str(), g.time, g.record.to_string()))
        .collect();
    summary.sort_by_key(|x| (x.1, x.0));
    assert_eq!(
        summary,
        [
            ("app.msg", EventTime::new(5, 6), r#"{"m": 2}"#.to_string()),
            (
                "app.msg",
                EventTime::new(1_700_000_000, 0),
                r#"{"m": 1}"#.to_string()
            ),
            (
                "app.fwd",
                EventTime::new(1_700_000_001, 123_456_789),
                r#"{"f": 1}"#.to_string()
            ),
            (
                "app.fwd",
                EventTime::new(1_700_000_002, 500_000_000),
                r#"{"f": 2}"#.to_string()
            ),
            (
                "app.packed",
                EventTime::new(1_700_000_003, 7),
                r#"{"p": 1}"#.to_string()
            ),
            (
                "app.packed",
                EventTime::new(1_700_000_004, 8),
                r#"{"p": 2}"#.to_string()
            ),
        ]
    );
    let meta: Vec<_> = got.iter().map(|g| g.metadata.to_string()).collect();
    assert_eq!(meta.iter().filter(|m| *m == r#"{"meta": "x"}"#).count(), 1);
    assert_eq!(meta.iter().filter(|m| *m == "{}").count(), 5);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn compressed_packed_forward_with_several_gzip_members() {
    let agent = start_with(&[("tag_prefix", "in.")]).await;
    let mut c = agent.connect().await;
    let first = enc(&arr(vec![et(10, 1), mp(r#"{"n":1}"#)]));
    let mut second = enc(&arr(vec![et(11, 2), mp(r#"{"n":2}"#)]));
    second.extend(enc(&arr(vec![et(12, 3), mp(r#"{"n":3}"#)])));
    let mut body = gzip(&first);
    body.extend(gzip(&second));
    let opt = V::Map(vec![
        (s("size"), V::from(3)),
        (s("compressed"), s("gzip")),
        (s("chunk"), s("z1")),
    ]);
    send(&mut c, &arr(vec![s("zip"), V::Binary(body), opt])).await;
    expect_ack(&mut c, "z1").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|g| g.tag == "in.zip"));
    let times: Vec<_> = got.iter().map(|g| g.time).collect();
    assert_eq!(
        times,
        [
            EventTime::new(10, 1),
            EventTime::new(11, 2),
            EventTime::new(12, 3)
        ]
    );
    assert_eq!(got[2].record, mp(r#"{"n":3}"#));
}

#[tokio::test]
async fn frames_split_at_odd_byte_boundaries() {
    let agent = start().await;
    let mut c = agent.connect().await;
    let mut bytes = Vec::new();
    for i in 0..20u32 {
        bytes.extend(enc(&arr(vec![
            s("split"),
            et(100 + i, i),
            V::Map(vec![
                (s("i"), V::from(i)),
                (s("pad"), s(&"x".repeat(i as usize * 7))),
            ]),
        ])));
    }
    bytes.extend(enc(&arr(vec![
        s("split"),
        arr(vec![arr(vec![V::from(200), mp(r#"{"last":true}"#)])]),
        chunk_opt("end"),
    ])));
    let sizes = [1usize, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31];
    let mut pos = 0;
    let mut k = 0;
    while pos < bytes.len() {
        let end = (pos + sizes[k % sizes.len()]).min(bytes.len());
        c.write_all(&bytes[pos..end]).await.unwrap();
        c.flush().await.unwrap();
        if k % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        pos = end;
        k += 1;
    }
    expect_ack(&mut c, "end").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 21);
    for (i, g) in got.iter().take(20).enumerate() {
        assert_eq!(g.time, EventTime::new(100 + i as u32, i as u32));
        assert_eq!(g.record.as_map().unwrap()[0].1, V::from(i));
    }
    assert_eq!(got[20].record, mp(r#"{"last":true}"#));
}

#[tokio::test]
async fn garbage_closes_only_its_connection() {
    let agent = start().await;
    let mut good = agent.connect().await;
    let mut bad = agent.connect().await;
    let frame = enc(&arr(vec![
        s("good"),
        et(1, 2),
        mp(r#"{"ok":1}"#),
        chunk_opt("g"),
    ]));
    // Half a frame on the good connection, garbage on the other.
    good.write_all(&frame[..5]).await.unwrap();
    bad.write_all(&[0x93, 0xa1, b't', 0xc1, 0xff, 0x00])
        .await
        .unwrap();
    assert!(closed_by_server(&mut bad).await);
    // Not even an array.
    let mut bad2 = agent.connect().await;
    bad2.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(closed_by_server(&mut bad2).await);
    good.write_all(&frame[5..]).await.unwrap();
    expect_ack(&mut good, "g").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, "good");
    assert_eq!(got[0].record, mp(r#"{"ok":1}"#));
}

#[tokio::test]
async fn oversize_frame_closes_the_connection() {
    let agent = start_with(&[("buffer_chunk_size", "1k"), ("buffer_max_size", "4k")]).await;
    let mut big = agent.connect().await;
    let frame = enc(&arr(vec![
        s("big"),
        V::from(1),
        V::Map(vec![(s("log"), s(&"y".repeat(20_000)))]),
    ]));
    // The server may close while we write: ignore write errors.
    let _ = big.write_all(&frame).await;
    assert!(closed_by_server(&mut big).await);
    // A frame below the limit on a new connection passes.
    let mut small = agent.connect().await;
    let ok = arr(vec![
        s("small"),
        V::from(1),
        V::Map(vec![(s("log"), s(&"z".repeat(3_000)))]),
        chunk_opt("s"),
    ]);
    send(&mut small, &ok).await;
    expect_ack(&mut small, "s").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, "small");
}

fn ping(helo: &V, key: &str, host: &str, user: &str, password: &str) -> (V, Vec<u8>, Vec<u8>) {
    let arr = helo.as_array().unwrap();
    assert_eq!(arr[0], s("HELO"));
    let opts = arr[1].as_map().unwrap();
    let get = |k: &str| {
        opts.iter()
            .find(|(x, _)| x.as_str() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let bytes = |v: V| match v {
        V::Binary(b) => b,
        V::String(s) => s.into_bytes(),
        other => panic!("unexpected {other}"),
    };
    let nonce = bytes(get("nonce"));
    let auth = bytes(get("auth"));
    assert_eq!(get("keepalive"), V::Boolean(true));
    let salt = b"0123456789abcdef".to_vec();
    let digest = sha512_hex(&[&salt, host.as_bytes(), &nonce, key.as_bytes()]);
    let pw = if auth.is_empty() {
        String::new()
    } else {
        sha512_hex(&[&auth, user.as_bytes(), password.as_bytes()])
    };
    let p = V::Array(vec![
        s("PING"),
        s(host),
        V::Binary(salt.clone()),
        s(&digest),
        s(user),
        s(&pw),
    ]);
    (p, salt, nonce)
}

#[tokio::test]
async fn shared_key_handshake_success() {
    let agent = start_with(&[
        ("shared_key", "secret"),
        ("self_hostname", "server.example"),
        ("security.users", "alice pw1"),
        ("security.users", "bob pw2"),
    ])
    .await;
    let mut c = agent.connect().await;
    let helo = read_value(&mut c).await;
    let (p, salt, nonce) = ping(&helo, "secret", "client.example", "bob", "pw2");
    send(&mut c, &p).await;
    let pong = read_value(&mut c).await;
    let expected = sha512_hex(&[&salt, b"server.example", &nonce, b"secret"]);
    assert_eq!(
        pong,
        V::Array(vec![
            s("PONG"),
            V::Boolean(true),
            s(""),
            s("server.example"),
            s(&expected)
        ])
    );
    send(
        &mut c,
        &arr(vec![
            s("secure"),
            V::from(1),
            mp(r#"{"a":1}"#),
            chunk_opt("k"),
        ]),
    )
    .await;
    expect_ack(&mut c, "k").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, "secure");
}

#[tokio::test]
async fn shared_key_handshake_failures() {
    let agent = start_with(&[("shared_key", "secret"), ("security.users", "alice pw1")]).await;
    // Wrong shared key.
    let mut c = agent.connect().await;
    let helo = read_value(&mut c).await;
    let (p, _, _) = ping(&helo, "wrong", "client", "alice", "pw1");
    send(&mut c, &p).await;
    let pong = read_value(&mut c).await;
    let pong = pong.as_array().unwrap().clone();
    assert_eq!(pong[0], s("PONG"));
    assert_eq!(pong[1], V::Boolean(false));
    assert_eq!(pong[2], s("shared_key mismatch"));
    assert!(closed_by_server(&mut c).await);
    // Wrong password.
    let mut c = agent.connect().await;
    let helo = read_value(&mut c).await;
    let (p, _, _) = ping(&helo, "secret", "client", "alice", "nope");
    send(&mut c, &p).await;
    let pong = read_value(&mut c).await;
    assert_eq!(pong.as_array().unwrap()[1], V::Boolean(false));
    assert!(closed_by_server(&mut c).await);
    // Data without a handshake.
    let mut c = agent.connect().await;
    let _helo = read_value(&mut c).await;
    send(&mut c, &arr(vec![s("t"), V::from(1), mp(r#"{"a":1}"#)])).await;
    assert!(closed_by_server(&mut c).await);
    let got = agent.finish().await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn unix_socket_path_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fw.sock");
    let path_s = path.to_str().unwrap().to_string();
    let input = build(
        &forward::PLUGIN,
        &[("unix_path", &path_s), ("unix_perm", "0600")],
    )
    .unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let engine = tokio::spawn(run_input(input, None, async {
        let _ = rx.await;
    }));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut c = loop {
        match tokio::net::UnixStream::connect(&path).await {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    send(
        &mut c,
        &arr(vec![s("unix"), et(3, 4), mp(r#"{"u":1}"#), chunk_opt("u")]),
    )
    .await;
    expect_ack(&mut c, "u").await;
    let _ = stop.send(());
    let (rec, _) = engine.await.unwrap();
    let got = received(&rec);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, "unix");
    assert_eq!(got[0].time, EventTime::new(3, 4));
    assert!(!path.exists(), "the socket file is removed at stop");
}

#[tokio::test]
async fn docker_fluentd_log_driver_frame() {
    let agent = start().await;
    let mut c = agent.connect().await;
    let record = mp(
        r#"{"container_id":"3f1a2b","container_name":"/web","source":"stdout","log":"GET / 200"}"#,
    );
    send(
        &mut c,
        &arr(vec![
            s("docker.3f1a2b"),
            et(1_732_000_000, 987_654_321),
            record.clone(),
        ]),
    )
    .await;
    send(
        &mut c,
        &arr(vec![s("docker.3f1a2b"), arr(vec![]), chunk_opt("d")]),
    )
    .await;
    expect_ack(&mut c, "d").await;
    let got = agent.finish().await;
    assert_eq!(
        got,
        [Got {
            tag: "docker.3f1a2b".into(),
            time: EventTime::new(1_732_000_000, 987_654_321),
            metadata: V::Map(vec![]),
            record,
        }]
    );
}

#[tokio::test]
async fn port_in_use_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let props = common::props(
        &forward::PLUGIN,
        &[("listen", "127.0.0.1"), ("port", &port)],
    )
    .unwrap();
    let input = ForwardInput::from_props(&props).expect("the factory does not bind");
    let err = input.listen().await.expect_err("port in use");
    assert!(err.to_string().contains("could not bind"), "{err}");
}

#[test]
fn configuration_errors() {
    let e = build_errors(
        &forward::PLUGIN,
        &[("unix_path", "/tmp/x"), ("unix_perm", "rw")],
    );
    assert!(e[0].contains("unix_perm"), "{e:?}");
    let e = build_errors(
        &forward::PLUGIN,
        &[("buffer_chunk_size", "2M"), ("buffer_max_size", "1M")],
    );
    assert!(e[0].contains("buffer_max_size"), "{e:?}");
    let e = build_errors(&forward::PLUGIN, &[("security.users", "alice pw")]);
    assert!(e[0].contains("shared_key"), "{e:?}");
    let e = build_errors(&forward::PLUGIN, &[("port", "70000")]);
    assert!(e[0].contains("port"), "{e:?}");
    assert!(build(
        &forward::PLUGIN,
        &[("port", "24224"), ("empty_shared_key", "on")]
    )
    .is_ok());
}

#[tokio::test]
async fn zstd_packed_forward_and_nil_option() {
    let agent = start().await;
    let mut c = agent.connect().await;
    let mut entries = enc(&arr(vec![et(20, 1), mp(r#"{"z":1}"#)]));
    entries.extend(enc(&arr(vec![et(21, 2), mp(r#"{"z":2}"#)])));
    let body = zstd::encode_all(&entries[..], 3).unwrap();
    let opt = V::Map(vec![(s("compressed"), s("zstd")), (s("chunk"), s("zs"))]);
    send(&mut c, &arr(vec![s("zs"), V::Binary(body), opt])).await;
    expect_ack(&mut c, "zs").await;
    // Old Docker versions send a nil option.
    send(
        &mut c,
        &arr(vec![s("nil"), V::from(30), mp(r#"{"n":1}"#), V::Nil]),
    )
    .await;
    send(&mut c, &arr(vec![s("nil"), arr(vec![]), chunk_opt("n")])).await;
    expect_ack(&mut c, "n").await;
    let got = agent.finish().await;
    // Chunks of different tags may reach the output in any order.
    let mut recs: Vec<_> = got.iter().map(|g| (g.tag.as_str(), g.time)).collect();
    recs.sort_by_key(|r| r.1);
    assert_eq!(
        recs,
        [
            ("zs", EventTime::new(20, 1)),
            ("zs", EventTime::new(21, 2)),
            ("nil", EventTime::new(30, 0))
        ]
    );
}

#[tokio::test]
async fn message_metadata_option_and_fixed_tag() {
    let agent = start_with(&[("tag", "fixed")]).await;
    let mut c = agent.connect().await;
    let opt = V::Map(vec![
        (s("metadata"), mp(r#"{"stream":"x"}"#)),
        (s("chunk"), s("m")),
    ]);
    send(
        &mut c,
        &arr(vec![s("ignored"), et(1, 1), mp(r#"{"a":1}"#), opt]),
    )
    .await;
    expect_ack(&mut c, "m").await;
    let got = agent.finish().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tag, "fixed");
    assert_eq!(got[0].metadata, mp(r#"{"stream":"x"}"#));
}

#[tokio::test]
async fn paused_input_stops_reading_and_resumes() {
    // 2 KB of memory for ~1 KB frames: the input pauses after every couple of frames until the
    // engine's 100 ms flush delivers them.
    let agent = start_limited(
        &[("buffer_chunk_size", "1200"), ("buffer_max_size", "4k")],
        Some(2_000),
    )
    .await;
    let mut c = agent.connect().await;
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    for i in 0..20u32 {
        bytes.extend(enc(&arr(vec![
            s("bp"),
            V::from(i),
            V::Map(vec![(s("log"), s(&"b".repeat(1_000)))]),
        ])));
    }
    bytes.extend(enc(&arr(vec![s("bp"), arr(vec![]), chunk_opt("bp")])));
    c.write_all(&bytes).await.unwrap();
    expect_ack(&mut c, "bp").await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the input paused: {:?}",
        started.elapsed()
    );
    let got = agent.finish().await;
    assert_eq!(got.len(), 20);
    let secs: Vec<u32> = got.iter().map(|g| g.time.secs).collect();
    assert_eq!(secs, (0..20).collect::<Vec<_>>());
}
