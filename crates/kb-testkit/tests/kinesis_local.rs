//! kinesis-local: plain and TLS listeners, generated and bundled certificates.

use std::collections::BTreeSet;
use std::sync::Arc;

use kb_testkit::kds::Kds;
use kb_testkit::peers::{self_signed_cert, KinesisLocal};

/// TLS handshake with certificate verification against `ca_pem` for `server_name`.
async fn verified_handshake(port: u16, ca_pem: &[u8], server_name: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn plain_round_trip_and_max_record_size() {
    let kl = KinesisLocal::start();
    let kds = Kds::new(&kl.endpoint(), "us-east-1");
    kds.create_stream("s", 2).await.unwrap();
    let recs: Vec<(String, Vec<u8>)> = (0..20u8)
        .map(|i| (format!("k{i}"), vec![i, 0, 255, b'\n', i]))
        .collect();
    let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
    let (status, v) = kds.put_records("s", &refs).await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["FailedRecordCount"], 0);
    let read = kds.read_all("s").await.unwrap();
    let got: BTreeSet<(String, Vec<u8>)> = read
        .into_iter()
        .map(|r| (r.partition_key, r.data))
        .collect();
    assert_eq!(got, recs.into_iter().collect());

    // a record over 1 MiB is rejected per record; after UpdateMaxRecordSize it is accepted
    let big = vec![b'a'; 3 * 1024 * 1024];
    let (status, v) = kds.put_records("s", &[("k", &big)]).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["FailedRecordCount"], 1, "{v}");
    kds.update_max_record_size("s", 10240).await.unwrap();
    kds.wait_active("s", std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let summary = kds.describe_summary("s").await.unwrap();
    assert_eq!(summary["MaxRecordSizeInKiB"], 10240, "{summary}");
    let (status, v) = kds.put_records("s", &[("k", &big)]).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["FailedRecordCount"], 0, "{v}");
}

#[tokio::test]
async fn tls_with_generated_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path(), "localhost");
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let kl = KinesisLocal::start_with_cert(&cert_pem, &key_pem);
    assert!(kl.tls_endpoint().starts_with("https://127.0.0.1:"));

    verified_handshake(kl.tls_port(), cert_pem.as_bytes(), "localhost")
        .await
        .unwrap();
    verified_handshake(kl.tls_port(), cert_pem.as_bytes(), "127.0.0.1")
        .await
        .unwrap();

    let kds = Kds::new(&kl.tls_endpoint(), "us-east-1");
    kds.create_stream("tls", 1).await.unwrap();
    let (status, v) = kds.put_records("tls", &[("k", b"over tls")]).await.unwrap();
    assert_eq!(status, 200, "{v}");
    let read = kds.read_all("tls").await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].data, b"over tls");
}

#[tokio::test]
async fn tls_with_bundled_cert_fails_verification() {
    let kl = KinesisLocal::start();
    let other = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed_cert(other.path(), "localhost");
    let pem = std::fs::read(cert).unwrap();
    let err = verified_handshake(kl.tls_port(), &pem, "localhost")
        .await
        .unwrap_err();
    assert!(!err.is_empty());
    // without verification it works
    let kds = Kds::new(&kl.tls_endpoint(), "us-east-1");
    kds.create_stream("b", 1).await.unwrap();
}
