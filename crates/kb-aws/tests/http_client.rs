//! The pooled HTTP client against plain-HTTP servers of our own on 127.0.0.1: keep-alive reuse,
//! recycling, idle timeout, deadlines, connection limits, failure kinds, HTTP proxy.

mod http_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http_support::*;
use kb_aws::endpoint::{Endpoint, ProxyUrl};
use kb_aws::http::{HttpClient, NetOptions, ProxyOptions, TlsOptions, TransportErrorKind};
use tokio::io::AsyncWriteExt;

fn client(ep: &Endpoint, net: NetOptions) -> HttpClient {
    HttpClient::new(ep, &TlsOptions::default(), &net, None).unwrap()
}

#[tokio::test]
async fn ten_requests_reuse_one_connection() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(&ep, NetOptions::default());
    for i in 0..10 {
        let resp = c.send(request(&ep, "{\"n\":1}")).await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(&resp.body()[..], b"ok");
    }
    assert_eq!(server.stats.accepts(), 1);
    let seen = server.stats.requests();
    assert_eq!(seen.len(), 10);
    let first = &seen[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.uri, "/");
    assert_eq!(first.headers["host"], ep.host_header());
    assert_eq!(
        first.headers["host"],
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(first.headers["content-length"], "7");
    assert_eq!(first.body, "{\"n\":1}");
    assert!(seen.iter().all(|s| s.headers.get("connection").is_none()));
}

#[tokio::test]
async fn connection_retired_after_max_recycle_uses() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let net = NetOptions {
        keepalive_max_recycle: 3,
        ..Default::default()
    };
    let c = client(&ep, net);
    for _ in 0..10 {
        c.send(request(&ep, "x")).await.unwrap();
    }
    // 3 + 3 + 3 + 1
    assert_eq!(server.stats.accepts(), 4);
    let seen = server.stats.requests();
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.conn_id, i / 3, "request {i}");
        let close = s.headers.get("connection").map(|v| v.to_str().unwrap());
        let expect = if i % 3 == 2 { Some("close") } else { None };
        assert_eq!(close, expect, "request {i}");
    }
}

#[tokio::test]
async fn keepalive_off_uses_a_connection_per_request() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(
        &ep,
        NetOptions {
            keepalive: false,
            ..Default::default()
        },
    );
    for _ in 0..3 {
        c.send(request(&ep, "x")).await.unwrap();
    }
    assert_eq!(server.stats.accepts(), 3);
    assert!(server
        .stats
        .requests()
        .iter()
        .all(|s| s.headers["connection"] == "close"));
    assert_eq!(c.idle_connections(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(
        &ep,
        NetOptions {
            keepalive_idle_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );
    c.send(request(&ep, "x")).await.unwrap();
    c.send(request(&ep, "x")).await.unwrap();
    assert_eq!(server.stats.accepts(), 1);
    assert_eq!(c.idle_connections(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Closed by the client while idle, before any new request.
    assert_eq!(c.idle_connections(), 0);
    assert_eq!(server.stats.closed(), 1);
    c.send(request(&ep, "x")).await.unwrap();
    assert_eq!(server.stats.accepts(), 2);
}

#[tokio::test]
async fn request_deadline_expires_against_a_silent_server() {
    let server = start_raw(|mut s| async move {
        let _ = read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(
        &ep,
        NetOptions {
            io_timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    );
    let t = Instant::now();
    let err = c.send(request(&ep, "x")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind, TransportErrorKind::Timeout);
    assert_eq!(err.host_port, format!("127.0.0.1:{}", server.port()));
    let msg = err.to_string();
    assert!(msg.contains(&err.host_port), "{msg}");
    assert!(msg.contains("net.io_timeout"), "{msg}");
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let err = client(&ep, NetOptions::default())
        .send(request(&ep, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Connect);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{msg}"
    );
}

#[tokio::test]
async fn connection_closed_without_response_is_closed() {
    let server = start_raw(|mut s| async move {
        let _ = read_request(&mut s).await;
        drop(s);
    })
    .await;
    let ep = server.endpoint("http://127.0.0.1");
    let err = client(&ep, NetOptions::default())
        .send(request(&ep, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Closed, "{err}");
    assert!(err.to_string().contains(&err.host_port));
}

#[tokio::test]
async fn garbage_response_is_an_io_error() {
    let server = start_raw(|mut s| async move {
        let _ = read_request(&mut s).await;
        let _ = s
            .write_all(b"\x16\x03\x01 definitely not http\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let ep = server.endpoint("http://127.0.0.1");
    let err = client(&ep, NetOptions::default())
        .send(request(&ep, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Io, "{err}");
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_replaced() {
    // Answers one request per connection, then closes silently (no `Connection: close`).
    let server = start_raw(|mut s| async move {
        if read_request(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(&ep, NetOptions::default());
    for _ in 0..3 {
        let resp = c.send(request(&ep, "x")).await.unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.stats.accepts(), 3);
}

#[tokio::test]
async fn max_worker_connections_bounds_connections() {
    let server = start_server(None, Duration::from_millis(100)).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(
        &ep,
        NetOptions {
            max_worker_connections: 1,
            ..Default::default()
        },
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move { c.send(request(&ep, "x")).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(server.stats.accepts(), 1);
    assert_eq!(server.stats.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unlimited_connections_open_in_parallel() {
    let server = start_server(None, Duration::from_millis(200)).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(&ep, NetOptions::default());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let c = c.clone();
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move { c.send(request(&ep, "x")).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.stats.accepts(), 3);
    assert_eq!(c.idle_connections(), 3);
}

#[tokio::test]
async fn source_address_is_bound() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(
        &ep,
        NetOptions {
            source_address: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    c.send(request(&ep, "x")).await.unwrap();
    let peers = server.stats.peers.lock().unwrap().clone();
    assert_eq!(peers[0].ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn host_header_is_added_only_when_missing() {
    let server = start_server(None, Duration::ZERO).await;
    let ep = server.endpoint("http://127.0.0.1");
    let c = client(&ep, NetOptions::default());
    let req = http::Request::post("/")
        .body(bytes::Bytes::from_static(b"x"))
        .unwrap();
    c.send(req).await.unwrap();
    let req = http::Request::post("/")
        .header("host", "signed.example")
        .body(bytes::Bytes::from_static(b"x"))
        .unwrap();
    c.send(req).await.unwrap();
    let seen = server.stats.requests();
    assert_eq!(seen[0].headers["host"], ep.host_header());
    assert_eq!(seen[1].headers["host"], "signed.example");
}

#[tokio::test]
async fn http_target_through_an_http_proxy_uses_absolute_form_and_basic_auth() {
    let proxy = start_proxy(Some("Basic dXNlcjpwQHNz".to_string()), None).await;
    let ep = Endpoint::parse("http://127.0.0.1:9", None).unwrap();
    let url = ProxyUrl::parse(&format!(
        "http://user:p%40ss@127.0.0.1:{}",
        proxy.addr.port()
    ))
    .unwrap();
    let c = HttpClient::new(
        &ep,
        &TlsOptions::default(),
        &NetOptions::default(),
        Some(ProxyOptions {
            url,
            tls: TlsOptions::default(),
        }),
    )
    .unwrap();
    let resp = c.send(request(&ep, "x")).await.unwrap();
    assert_eq!(&resp.body()[..], b"proxy");
    let lines = proxy.stats.lines.lock().unwrap().clone();
    assert_eq!(lines, vec!["POST http://127.0.0.1:9/ HTTP/1.1".to_string()]);
}

#[tokio::test]
async fn unreachable_proxy_is_a_proxy_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let ep = Endpoint::parse("http://127.0.0.1:9", None).unwrap();
    let url = ProxyUrl::parse(&format!("http://u:secret@127.0.0.1:{port}")).unwrap();
    let c = HttpClient::new(
        &ep,
        &TlsOptions::default(),
        &NetOptions::default(),
        Some(ProxyOptions {
            url,
            tls: TlsOptions::default(),
        }),
    )
    .unwrap();
    let err = c.send(request(&ep, "x")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Proxy);
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

#[tokio::test]
async fn tls_options_are_ignored_for_http_endpoints() {
    let ep = Endpoint::parse("http://127.0.0.1:9", None).unwrap();
    let tls = TlsOptions {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    };
    assert!(HttpClient::new(&ep, &tls, &NetOptions::default(), None).is_ok());
}
