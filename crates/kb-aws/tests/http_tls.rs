//! The HTTP client's TLS: trust anchors, hostname checks, `verify off`, SNI/`vhost`, client
//! certificates (plain and encrypted keys), protocol versions, handshake timeout, CONNECT
//! proxies (plain and https). Certificates are made with the `openssl` CLI; 127.0.0.1 only.

mod http_support;

use std::time::{Duration, Instant};

use http_support::*;
use kb_aws::endpoint::{Endpoint, ProxyUrl};
use kb_aws::http::{
    HttpClient, HttpError, NetOptions, ProxyOptions, TlsOptions, TlsVersion, TransportErrorKind,
};

fn trusting(ca: &str) -> TlsOptions {
    TlsOptions {
        ca_file: Some(certs().path(ca)),
        ..Default::default()
    }
}

async fn tls_server(opts: TlsServerOpts) -> TestServer {
    start_server(Some(tls_acceptor(&opts)), Duration::ZERO).await
}

async fn send(
    ep: &Endpoint,
    tls: &TlsOptions,
) -> Result<http::Response<bytes::Bytes>, kb_aws::http::TransportError> {
    let c = HttpClient::new(ep, tls, &NetOptions::default(), None).unwrap();
    c.send(request(ep, "{}")).await
}

#[tokio::test]
async fn trusted_ca_file_works_for_name_and_ip() {
    let server = tls_server(TlsServerOpts::default()).await;
    for host in ["https://localhost", "https://127.0.0.1", "localhost"] {
        let ep = server.endpoint(host);
        let resp = send(&ep, &trusting("ca.pem")).await.unwrap();
        assert_eq!(resp.status(), 200, "{host}");
    }
    // SNI: the host name; none for an IP address.
    assert_eq!(
        server.stats.sni(),
        vec![Some("localhost".into()), None, Some("localhost".into())]
    );
}

/// The suite a rustls server (which follows the client's order) negotiates: AES-128-GCM by
/// default in TLS 1.3 and 1.2, else the first suite of `tls.ciphers` for that version; a
/// version the list does not name keeps its defaults.
#[tokio::test]
async fn negotiated_suite_follows_tls_ciphers() {
    use kb_aws::http::{parse_cipher_list, CipherSuite as C};
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    let cases: &[(Option<&str>, Option<TlsVersion>, C)] = &[
        (None, None, C::TLS13_AES_128_GCM_SHA256),
        (
            None,
            Some(TlsVersion::Tls12),
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            Some("TLS_AES_256_GCM_SHA384"),
            None,
            C::TLS13_AES_256_GCM_SHA384,
        ),
        (
            Some("tls_chacha20_poly1305_sha256:TLS_AES_128_GCM_SHA256"),
            None,
            C::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            Some("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"),
            Some(TlsVersion::Tls12),
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
            Some(TlsVersion::Tls12),
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        // Only TLS 1.2 suites named: TLS 1.3 keeps its defaults, AES-128-GCM first.
        (
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            None,
            C::TLS13_AES_128_GCM_SHA256,
        ),
    ];
    for (i, (ciphers, max, want)) in cases.iter().enumerate() {
        let tls = TlsOptions {
            ciphers: ciphers
                .map(|c| parse_cipher_list(c).unwrap())
                .unwrap_or_default(),
            max_version: *max,
            ..trusting("ca.pem")
        };
        let resp = send(&ep, &tls).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(server.stats.suites()[i], Some(*want), "{ciphers:?} {max:?}");
    }
    // A server without the only suite the client offers for its version fails the handshake.
    let tls = TlsOptions {
        ciphers: parse_cipher_list("ECDHE-ECDSA-AES128-GCM-SHA256").unwrap(),
        max_version: Some(TlsVersion::Tls12),
        ..trusting("ca.pem")
    };
    let err = send(&ep, &tls).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
}

#[test]
fn cipher_lists() {
    use kb_aws::http::{parse_cipher_list, CipherSuite as C};
    assert_eq!(
        parse_cipher_list(
            "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256, ecdhe-rsa-aes128-gcm-sha256"
        )
        .unwrap(),
        vec![
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            C::TLS13_AES_128_GCM_SHA256
        ]
    );
    for bad in [
        "AES128-SHA",
        "HIGH:!aNULL",
        "ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5",
        ":",
    ] {
        let e = parse_cipher_list(bad).unwrap_err();
        assert!(e.contains("cipher suite"), "{bad}: {e}");
    }
    assert!(parse_cipher_list("RC4-MD5")
        .unwrap_err()
        .contains("'RC4-MD5'"));
}

#[tokio::test]
async fn keep_alive_over_tls() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    let c = HttpClient::new(&ep, &trusting("ca.pem"), &NetOptions::default(), None).unwrap();
    for _ in 0..10 {
        c.send(request(&ep, "{}")).await.unwrap();
    }
    assert_eq!(server.stats.accepts(), 1);
    assert_eq!(server.stats.requests()[0].headers["host"], ep.host_header());
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    let err = send(&ep, &trusting("ca2.pem")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("localhost:{}", server.port())),
        "{msg}"
    );
    assert!(msg.contains("tls.ca_file"), "{msg}");
}

#[tokio::test]
async fn system_store_does_not_trust_the_test_ca() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    match HttpClient::new(&ep, &TlsOptions::default(), &NetOptions::default(), None) {
        Ok(c) => {
            let err = c.send(request(&ep, "{}")).await.unwrap_err();
            assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
        }
        // A machine without any CA bundle: a clear startup error instead.
        Err(e) => assert!(matches!(e, HttpError::NoSystemRoots { .. }), "{e}"),
    }
}

#[tokio::test]
async fn wrong_hostname_fails_unless_verify_hostname_is_off() {
    // Certificate for other.test only; we connect to 127.0.0.1 / localhost.
    let server = tls_server(TlsServerOpts {
        cert: "other",
        ..Default::default()
    })
    .await;
    for host in ["https://127.0.0.1", "https://localhost"] {
        let ep = server.endpoint(host);
        let err = send(&ep, &trusting("ca.pem")).await.unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
        assert!(err.to_string().contains("verify_hostname"), "{err}");
        let off = TlsOptions {
            verify_hostname: false,
            ..trusting("ca.pem")
        };
        assert_eq!(send(&ep, &off).await.unwrap().status(), 200);
        // verify_hostname off still verifies the chain.
        let off_untrusted = TlsOptions {
            verify_hostname: false,
            ..trusting("ca2.pem")
        };
        let err = send(&ep, &off_untrusted).await.unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
    }
}

#[tokio::test]
async fn vhost_sets_sni_and_the_verified_name() {
    let server = tls_server(TlsServerOpts {
        cert: "other",
        ..Default::default()
    })
    .await;
    let ep = server.endpoint("https://127.0.0.1");
    let tls = TlsOptions {
        vhost: Some("other.test".into()),
        ..trusting("ca.pem")
    };
    assert_eq!(send(&ep, &tls).await.unwrap().status(), 200);
    assert_eq!(server.stats.sni(), vec![Some("other.test".to_string())]);
    // The Host header stays the caller's.
    assert_eq!(
        server.stats.requests()[0].headers["host"],
        format!("127.0.0.1:{}", server.port())
    );
}

#[tokio::test]
async fn verify_off_accepts_an_untrusted_self_signed_certificate() {
    let server = tls_server(TlsServerOpts {
        cert: "self",
        ..Default::default()
    })
    .await;
    let ep = server.endpoint("https://localhost");
    let err = send(&ep, &trusting("ca.pem")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Tls);
    let off = TlsOptions {
        verify: false,
        ..Default::default()
    };
    assert_eq!(send(&ep, &off).await.unwrap().status(), 200);
    // ...and a self-signed certificate can be its own trust anchor.
    assert_eq!(
        send(&ep, &trusting("self.pem")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn ca_path_directory_is_loaded() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(certs().path("ca2.pem"), dir.path().join("a.pem")).unwrap();
    std::fs::copy(certs().path("ca.pem"), dir.path().join("b.crt")).unwrap();
    std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
    let tls = TlsOptions {
        ca_path: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    assert_eq!(send(&ep, &tls).await.unwrap().status(), 200);
}

fn client_tls(key: &str, passwd: Option<&str>, crt: &str) -> TlsOptions {
    TlsOptions {
        crt_file: Some(certs().path(crt)),
        key_file: Some(certs().path(key)),
        key_passwd: passwd.map(str::to_string),
        ..trusting("ca.pem")
    }
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let server = tls_server(TlsServerOpts {
        require_client_cert: true,
        ..Default::default()
    })
    .await;
    let ep = server.endpoint("https://localhost");
    // Without a client certificate the server refuses.
    assert!(send(&ep, &trusting("ca.pem")).await.is_err());
    for (key, passwd, crt) in [
        ("client.key", None, "client.pem"),
        ("client-rsa.key", None, "client.pem"),
        ("client-enc.key", Some("s3cret"), "client.pem"),
        ("client-enc-sha1.key", Some("s3cret"), "client.pem"),
        ("client-legacy.key", Some("s3cret"), "client.pem"),
        ("client-legacy128.key", Some("s3cret"), "client.pem"),
        ("ec-legacy.key", Some("s3cret"), "ec.pem"),
        ("ec.key", None, "ec.pem"),
    ] {
        let resp = send(&ep, &client_tls(key, passwd, crt)).await;
        assert_eq!(resp.unwrap().status(), 200, "{key}");
    }
}

#[tokio::test]
async fn client_key_errors_are_startup_errors() {
    let ep = Endpoint::parse("https://localhost:1", None).unwrap();
    let new = |tls: TlsOptions| HttpClient::new(&ep, &tls, &NetOptions::default(), None);
    let e = new(client_tls("client-enc.key", None, "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::KeyNeedsPassword { .. }), "{e}");
    assert!(e.to_string().contains("tls.key_passwd"), "{e}");
    let e = new(client_tls("client-enc.key", Some("wrong"), "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::KeyDecrypt { .. }), "{e}");
    assert!(e.to_string().contains("client-enc.key"), "{e}");
    let e = new(client_tls("client-legacy.key", None, "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::KeyNeedsPassword { .. }), "{e}");
    let e = new(client_tls("client-legacy.key", Some("wrong"), "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::KeyDecrypt { .. }), "{e}");
    assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
    let e = new(client_tls("client-des3.key", Some("s3cret"), "client.pem")).unwrap_err();
    assert!(
        e.to_string().contains("DES-EDE3-CBC is not supported"),
        "{e}"
    );
    // Key of another certificate.
    let e = new(client_tls("ec.key", None, "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::ClientCert { .. }), "{e}");
    // A certificate file as key.
    let e = new(client_tls("client.pem", None, "client.pem")).unwrap_err();
    assert!(matches!(e, HttpError::NoPrivateKey { .. }), "{e}");
    let e = new(TlsOptions {
        crt_file: Some(certs().path("client.pem")),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::MissingPair { .. }), "{e}");
    assert!(e.to_string().contains("tls.key_file"), "{e}");
}

#[tokio::test]
async fn bad_ca_files_are_startup_errors_naming_the_file() {
    let ep = Endpoint::parse("https://localhost:1", None).unwrap();
    let new = |tls: TlsOptions| HttpClient::new(&ep, &tls, &NetOptions::default(), None);
    let e = new(TlsOptions {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::ReadFile { .. }), "{e}");
    assert!(
        e.to_string().contains("tls.ca_file '/nonexistent/ca.pem'"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let e = new(TlsOptions {
        ca_file: Some(junk.clone()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::NoCertificates { .. }), "{e}");
    assert!(e.to_string().contains("junk.pem"), "{e}");
    let e = new(TlsOptions {
        ca_path: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::NoCertificates { .. }), "{e}");
    assert!(e.to_string().contains("tls.ca_path"), "{e}");
    // Files are checked even when verification is off.
    let e = new(TlsOptions {
        verify: false,
        ca_file: Some(junk),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::NoCertificates { .. }), "{e}");
    let e = new(TlsOptions {
        min_version: Some(TlsVersion::Tls13),
        max_version: Some(TlsVersion::Tls12),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::VersionRange { .. }), "{e}");
    let e = new(TlsOptions {
        vhost: Some("bad name!".into()),
        verify: false,
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, HttpError::InvalidServerName { .. }), "{e}");
}

#[tokio::test]
async fn min_version_tls13_fails_against_a_tls12_only_server() {
    let server = tls_server(TlsServerOpts {
        tls12_only: true,
        ..Default::default()
    })
    .await;
    let ep = server.endpoint("https://localhost");
    assert_eq!(send(&ep, &trusting("ca.pem")).await.unwrap().status(), 200);
    let tls = TlsOptions {
        min_version: Some(TlsVersion::Tls13),
        ..trusting("ca.pem")
    };
    let err = send(&ep, &tls).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");
    let tls = TlsOptions {
        max_version: Some(TlsVersion::Tls12),
        ..trusting("ca.pem")
    };
    assert_eq!(send(&ep, &tls).await.unwrap().status(), 200);
}

#[tokio::test]
async fn max_version_tls12_against_a_modern_server() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("https://localhost");
    let tls = TlsOptions {
        min_version: Some(TlsVersion::Tls12),
        max_version: Some(TlsVersion::Tls12),
        ..trusting("ca.pem")
    };
    assert_eq!(send(&ep, &tls).await.unwrap().status(), 200);
}

#[tokio::test]
async fn tls_handshake_timeout_is_covered_by_connect_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let server = start_raw(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let ep = server.endpoint("https://localhost");
    let net = NetOptions {
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let c = HttpClient::new(&ep, &trusting("ca.pem"), &net, None).unwrap();
    let t = Instant::now();
    let err = c.send(request(&ep, "{}")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind, TransportErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("net.connect_timeout"), "{err}");
    assert_eq!(server.stats.accepts(), 1);
}

#[tokio::test]
async fn plain_http_against_a_tls_server_fails_cleanly() {
    let server = tls_server(TlsServerOpts::default()).await;
    let ep = server.endpoint("http://localhost");
    let c = HttpClient::new(&ep, &TlsOptions::default(), &NetOptions::default(), None).unwrap();
    assert!(c.send(request(&ep, "{}")).await.is_err());
}

fn with_proxy(url: &str, tls: TlsOptions) -> Option<ProxyOptions> {
    Some(ProxyOptions {
        url: ProxyUrl::parse(url).unwrap(),
        tls,
    })
}

#[tokio::test]
async fn https_target_through_a_connect_proxy_with_auth() {
    let server = tls_server(TlsServerOpts::default()).await;
    // "user:p@ss" percent-encoded in the URL.
    let proxy = start_proxy(Some("Basic dXNlcjpwQHNz".into()), None).await;
    let ep = server.endpoint("https://localhost");
    let url = format!("http://user:p%40ss@127.0.0.1:{}", proxy.addr.port());
    let c = HttpClient::new(
        &ep,
        &trusting("ca.pem"),
        &NetOptions::default(),
        with_proxy(&url, TlsOptions::default()),
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(c.send(request(&ep, "{}")).await.unwrap().status(), 200);
    }
    let lines = proxy.stats.lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![format!("CONNECT localhost:{} HTTP/1.1", server.port())]
    );
    assert_eq!(server.stats.sni(), vec![Some("localhost".to_string())]);
    // The tunnelled request carries no proxy credentials.
    assert!(server.stats.requests()[0]
        .headers
        .get("proxy-authorization")
        .is_none());
}

#[tokio::test]
async fn proxy_rejecting_credentials_is_a_proxy_error() {
    let server = tls_server(TlsServerOpts::default()).await;
    let proxy = start_proxy(Some("Basic dXNlcjpwQHNz".into()), None).await;
    let ep = server.endpoint("https://localhost");
    for (url, expect) in [
        (
            format!("http://user:wrong@127.0.0.1:{}", proxy.addr.port()),
            "rejected the credentials",
        ),
        (
            format!("http://127.0.0.1:{}", proxy.addr.port()),
            "requires authentication",
        ),
    ] {
        let c = HttpClient::new(
            &ep,
            &trusting("ca.pem"),
            &NetOptions::default(),
            with_proxy(&url, TlsOptions::default()),
        )
        .unwrap();
        let err = c.send(request(&ep, "{}")).await.unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Proxy, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(expect), "{msg}");
        assert!(msg.contains("407"), "{msg}");
        assert!(!msg.contains("wrong"), "password leaked: {msg}");
    }
    assert_eq!(server.stats.accepts(), 0);
}

#[tokio::test]
async fn https_proxy_uses_tls_proxy_options() {
    let server = tls_server(TlsServerOpts::default()).await;
    let proxy = start_proxy(None, Some(tls_acceptor(&TlsServerOpts::default()))).await;
    let ep = server.endpoint("https://localhost");
    let url = format!("https://localhost:{}", proxy.addr.port());
    let c = HttpClient::new(
        &ep,
        &trusting("ca.pem"),
        &NetOptions::default(),
        with_proxy(&url, trusting("ca.pem")),
    )
    .unwrap();
    assert_eq!(c.send(request(&ep, "{}")).await.unwrap().status(), 200);
    assert_eq!(proxy.stats.lines.lock().unwrap().len(), 1);
    // The proxy's certificate is checked with tls.proxy.*, not tls.*.
    let c = HttpClient::new(
        &ep,
        &trusting("ca.pem"),
        &NetOptions::default(),
        with_proxy(&url, trusting("ca2.pem")),
    )
    .unwrap();
    let err = c.send(request(&ep, "{}")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Proxy, "{err}");
    assert!(err.to_string().contains("tls.proxy.ca_file"), "{err}");
}
