//! The system trust store honours `SSL_CERT_FILE`. Alone in its binary: it sets the variable
//! before any thread starts.

mod http_support;

use std::time::Duration;

use http_support::*;
use kb_aws::http::{HttpClient, NetOptions, TlsOptions};

#[test]
fn ssl_cert_file_replaces_the_system_bundle() {
    let ca = certs().path("ca.pem");
    // The only test of this binary: nothing reads the environment concurrently.
    std::env::set_var("SSL_CERT_FILE", &ca);
    std::env::remove_var("SSL_CERT_DIR");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = start_server(
            Some(tls_acceptor(&TlsServerOpts::default())),
            Duration::ZERO,
        )
        .await;
        let ep = server.endpoint("https://localhost");
        let c = HttpClient::new(&ep, &TlsOptions::default(), &NetOptions::default(), None).unwrap();
        let resp = c.send(request(&ep, "{}")).await.unwrap();
        assert_eq!(resp.status(), 200);
    });
}
