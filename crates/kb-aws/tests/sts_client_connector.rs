//! `kb_aws::sts_client::StsConnector` as an SDK `HttpConnector`: request/response conversion,
//! the bound-endpoint check, and how transport failures map to SDK connector errors.

mod http_support;

use std::time::Duration;

use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use http_support::{start_raw, start_server};
use kb_aws::endpoint::Endpoint;
use kb_aws::http::{NetOptions, TlsOptions};
use kb_aws::sts_client::StsConnector;

fn connector(url: &str, net: NetOptions) -> StsConnector {
    let ep = Endpoint::parse(url, None).unwrap();
    StsConnector::new(&ep, &TlsOptions::default(), &net, None).unwrap()
}

fn post(uri: &str) -> HttpRequest {
    let mut r = HttpRequest::new("Action=AssumeRole&Version=2011-06-15".into());
    r.set_uri(uri).unwrap();
    r.set_method("POST").unwrap();
    r.headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded");
    r
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(|s| s.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn round_trip_converts_request_and_response() {
    let server = start_server(None, Duration::ZERO).await;
    let url = format!("http://127.0.0.1:{}", server.port());
    let c = connector(&url, NetOptions::default());
    let resp = c.call(post(&format!("{url}/?a=b"))).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers().get("x-conn-id"), Some("0"));
    assert_eq!(resp.body().bytes(), Some(&b"ok"[..]));
    let seen = server.stats.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/?a=b");
    assert_eq!(
        seen[0].headers["host"],
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(
        seen[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(&seen[0].body[..], b"Action=AssumeRole&Version=2011-06-15");
}

#[tokio::test]
async fn another_host_is_refused() {
    let c = connector("https://127.0.0.1:9", NetOptions::default());
    let e = c
        .call(post("https://sts.us-east-1.amazonaws.com/"))
        .await
        .unwrap_err();
    assert!(e.is_user());
    let msg = source_text(&e);
    assert!(
        msg.contains("bound to https://127.0.0.1:9")
            && msg.contains("https://sts.us-east-1.amazonaws.com"),
        "{msg}"
    );
}

#[tokio::test]
async fn connection_refused_is_an_io_error() {
    // Bind then drop: nothing listens on the port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let e = connector(&url, NetOptions::default())
        .call(post(&format!("{url}/")))
        .await
        .unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert!(source_text(&e).contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn io_timeout_is_a_timeout_error() {
    let server = start_raw(|tcp| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    })
    .await;
    let url = format!("http://127.0.0.1:{}", server.port());
    let net = NetOptions {
        io_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let e = connector(&url, net)
        .call(post(&format!("{url}/")))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
}
