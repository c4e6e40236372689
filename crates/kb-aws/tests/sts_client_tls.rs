//! STS calls go through `kb_aws::sts_client` (`kinesis_streams.md` §7.1, §8): AssumeRole for
//! `role_arn` against a TLS STS stub on 127.0.0.1 with a self-signed certificate, trusted via
//! `tls.ca_file`, refused by the system trust store, accepted with `tls.verify off`, and reached
//! through a CONNECT proxy.

mod cred_support;
mod http_support;

use std::sync::{Arc, Mutex};

use cred_support::{rfc3339_in, run, EnvSandbox};
use http_support::{certs, read_head, start_proxy, start_raw, tls_acceptor, TestServer};
use http_support::{TestProxy, TlsServerOpts};
use kb_aws::credentials::{CredentialCache, CredentialSettings};
use kb_aws::endpoint::{Endpoint, ProxyUrl};
use kb_aws::http::{NetOptions, ProxyOptions, TlsOptions};
use kb_aws::sts_client::sts_http_client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLE: &str = "arn:aws:iam::123456789012:role/kb-target";

/// A TLS STS stub (certificate `self.pem`: self-signed, SAN localhost and 127.0.0.1) answering
/// every request with an AssumeRoleResponse; records each request's head and body.
async fn sts_stub() -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let acceptor = tls_acceptor(&TlsServerOpts {
        cert: "self",
        ..Default::default()
    });
    let server = start_raw(move |tcp| {
        let acceptor = acceptor.clone();
        let log = log.clone();
        async move {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return;
            };
            let Some(head) = read_head(&mut s).await else {
                return;
            };
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if s.read_exact(&mut body).await.is_err() {
                return;
            }
            log.lock()
                .unwrap()
                .push(format!("{head}{}", String::from_utf8_lossy(&body)));
            let xml = format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:kb</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/kb-target/kb</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIASTUBTESTKEY00001</AccessKeyId>
      <SecretAccessKey>stubSecretKeyForTests0000000000000000000</SecretAccessKey>
      <SessionToken>stub-session-token</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
                rfc3339_in(3600)
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
                xml.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    })
    .await;
    (server, seen)
}

/// AssumeRole of [`ROLE`] at the stub, with base credentials from the environment and the STS
/// client built from `tls` and `proxy`.
async fn assume(
    server: &TestServer,
    tls: TlsOptions,
    proxy: Option<ProxyOptions>,
) -> Result<aws_credential_types::Credentials, kb_aws::credentials::CredentialsError> {
    let url = format!("https://127.0.0.1:{}", server.port());
    let ep = Endpoint::parse(&url, None).unwrap();
    let client = sts_http_client(&ep, &tls, &NetOptions::default(), proxy).unwrap();
    let cache = CredentialCache::new(CredentialSettings {
        role_arn: Some(ROLE.into()),
        sts_endpoint: Some(url),
        sts_http_client: Some(client),
        ..CredentialSettings::new("us-east-1")
    })
    .await;
    cache.credentials().await
}

fn sandbox() -> EnvSandbox {
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDBASE");
    env.set("AWS_SECRET_ACCESS_KEY", "base-secret");
    env
}

fn trusting_self() -> TlsOptions {
    TlsOptions {
        ca_file: Some(certs().path("self.pem")),
        // Only the STS client's trust matters; vhost is for Kinesis and must be ignored.
        vhost: Some("kinesis.invalid".into()),
        ..Default::default()
    }
}

#[test]
fn assume_role_trusts_tls_ca_file() {
    let _env = sandbox();
    run(async {
        let (server, seen) = sts_stub().await;
        let creds = assume(&server, trusting_self(), None).await.unwrap();
        assert_eq!(creds.access_key_id(), "ASIASTUBTESTKEY00001");
        assert_eq!(creds.session_token(), Some("stub-session-token"));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let req = &seen[0];
        assert!(req.contains("Action=AssumeRole"), "{req}");
        assert!(req.contains("Credential=AKIDBASE/"), "{req}");
        let host = format!("host: 127.0.0.1:{}", server.port());
        assert!(req.to_ascii_lowercase().contains(&host), "{req}");
    });
}

#[test]
fn system_trust_store_rejects_the_stub() {
    let _env = sandbox();
    run(async {
        let (server, seen) = sts_stub().await;
        let err = assume(&server, TlsOptions::default(), None)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("TLS") && msg.contains("certificate"), "{msg}");
        assert!(seen.lock().unwrap().is_empty());
        // A certificate problem is not retried.
        assert_eq!(server.stats.accepts(), 1);
    });
}

#[test]
fn tls_verify_off_accepts_the_stub() {
    let _env = sandbox();
    run(async {
        let (server, _) = sts_stub().await;
        let tls = TlsOptions {
            verify: false,
            ..Default::default()
        };
        let creds = assume(&server, tls, None).await.unwrap();
        assert_eq!(creds.access_key_id(), "ASIASTUBTESTKEY00001");
    });
}

#[test]
fn assume_role_through_a_connect_proxy() {
    let _env = sandbox();
    run(async {
        let (server, seen) = sts_stub().await;
        let proxy: TestProxy = start_proxy(None, None).await;
        let proxy_opts = ProxyOptions {
            url: ProxyUrl::parse(&format!("http://127.0.0.1:{}", proxy.addr.port())).unwrap(),
            tls: TlsOptions::default(),
        };
        let creds = assume(&server, trusting_self(), Some(proxy_opts))
            .await
            .unwrap();
        assert_eq!(creds.access_key_id(), "ASIASTUBTESTKEY00001");
        assert_eq!(
            proxy.stats.lines.lock().unwrap().clone(),
            vec![format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.port())]
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    });
}
