//! A small SigV4-signing Kinesis Data Streams client for tests (JSON 1.1 over HTTP/1.1; one
//! connection per call). `https://` endpoints are accepted with ANY certificate (test-only).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64_simd::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// Access key id used by default: not 12 digits (kinesis-local would take it as an account id).
pub const TEST_ACCESS_KEY_ID: &str = "AKIDTESTKEY";
pub const TEST_SECRET: &str = "testsecret";

/// A record read back with GetRecords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub shard_id: String,
    pub sequence_number: String,
}

/// Test client for the Kinesis JSON API.
#[derive(Clone)]
pub struct Kds {
    http: SignedHttp,
}

impl Kds {
    /// Client with the default test credentials (`AKIDTESTKEY` / `testsecret`).
    pub fn new(endpoint: &str, region: &str) -> Self {
        Self::with_credentials(endpoint, region, TEST_ACCESS_KEY_ID, TEST_SECRET, None)
    }

    pub fn with_credentials(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        let creds = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_string),
            None,
            "kb-testkit",
        );
        Kds {
            http: SignedHttp::new(endpoint, region, "kinesis", creds),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.http.endpoint
    }

    /// Calls `Kinesis_20131202.<target>` with `body`; returns the status and the response body
    /// as JSON (`Value::Null` when empty, `Value::String(raw)` when not JSON, e.g. moto's XML
    /// errors). Only transport failures are `Err`.
    pub async fn call(&self, target: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::to_vec(&body)?;
        let (status, raw) = self.call_raw(target, body).await?;
        Ok((status, parse_body(&raw)))
    }

    /// Like [`Kds::call`] with a pre-serialized body; returns the raw response body.
    pub async fn call_raw(&self, target: &str, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", format!("Kinesis_20131202.{target}")),
        ];
        let (status, _, raw) = self
            .http
            .request("POST", "/", &headers, Bytes::from(body))
            .await?;
        Ok((status, raw))
    }

    /// Calls and requires HTTP 200.
    pub async fn call_ok(&self, target: &str, body: Value) -> anyhow::Result<Value> {
        let (status, v) = self.call(target, body).await?;
        if status != 200 {
            bail!("{target} answered {status}: {v}");
        }
        Ok(v)
    }

    /// CreateStream, then polls DescribeStreamSummary until the stream is ACTIVE (10 s max).
    pub async fn create_stream(&self, name: &str, shards: u32) -> anyhow::Result<()> {
        self.call_ok(
            "CreateStream",
            json!({"StreamName": name, "ShardCount": shards}),
        )
        .await?;
        self.wait_active(name, Duration::from_secs(10)).await
    }

    /// Polls DescribeStreamSummary until `StreamStatus` is ACTIVE.
    pub async fn wait_active(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, v) = self
                .call("DescribeStreamSummary", json!({"StreamName": name}))
                .await?;
            if status == 200
                && v["StreamDescriptionSummary"]["StreamStatus"].as_str() == Some("ACTIVE")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("stream {name} not ACTIVE within {timeout:?}: {status} {v}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// DescribeStreamSummary → `StreamDescriptionSummary`.
    pub async fn describe_summary(&self, name: &str) -> anyhow::Result<Value> {
        let v = self
            .call_ok("DescribeStreamSummary", json!({"StreamName": name}))
            .await?;
        Ok(v["StreamDescriptionSummary"].clone())
    }

    /// DeleteStream (does not wait for the deletion to finish).
    pub async fn delete_stream(&self, name: &str) -> anyhow::Result<()> {
        self.call_ok(
            "DeleteStream",
            json!({"StreamName": name, "EnforceConsumerDeletion": true}),
        )
        .await
        .map(drop)
    }

    /// UpdateMaxRecordSize (by the stream's ARN, from DescribeStreamSummary).
    pub async fn update_max_record_size(&self, name: &str, kib: u32) -> anyhow::Result<()> {
        let summary = self.describe_summary(name).await?;
        let arn = summary["StreamARN"]
            .as_str()
            .ok_or_else(|| anyhow!("no StreamARN for {name}: {summary}"))?;
        self.call_ok(
            "UpdateMaxRecordSize",
            json!({"StreamARN": arn, "MaxRecordSizeInKiB": kib}),
        )
        .await
        .map(drop)
    }

    /// PutRecords of `(partition key, data)` pairs; returns the response.
    pub async fn put_records(
        &self,
        name: &str,
        records: &[(&str, &[u8])],
    ) -> anyhow::Result<(u16, Value)> {
        let recs: Vec<Value> = records
            .iter()
            .map(|(k, d)| json!({"Data": B64.encode_to_string(d), "PartitionKey": k}))
            .collect();
        self.call("PutRecords", json!({"StreamName": name, "Records": recs}))
            .await
    }

    /// UpdateShardCount with UNIFORM_SCALING to `shards`, then waits until ACTIVE again.
    pub async fn update_shard_count(&self, name: &str, shards: u32) -> anyhow::Result<()> {
        self.call_ok(
            "UpdateShardCount",
            json!({"StreamName": name, "TargetShardCount": shards, "ScalingType": "UNIFORM_SCALING"}),
        )
        .await?;
        self.wait_active(name, Duration::from_secs(10)).await
    }

    /// Shard ids of the stream (ListShards, all pages), sorted.
    pub async fn shard_ids(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = match &next {
                Some(t) => json!({"NextToken": t}),
                None => json!({"StreamName": name}),
            };
            let v = self.call_ok("ListShards", req).await?;
            for s in v["Shards"].as_array().into_iter().flatten() {
                if let Some(id) = s["ShardId"].as_str() {
                    ids.push(id.to_string());
                }
            }
            match v["NextToken"].as_str() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every record of every shard from TRIM_HORIZON, in shard order, then sequence order
    /// within a shard. A shard is read until GetRecords returns no records with
    /// `MillisBehindLatest` 0 (or two empty pages in a row, or no next iterator).
    pub async fn read_all(&self, name: &str) -> anyhow::Result<Vec<ReadRecord>> {
        let mut out = Vec::new();
        for shard in self.shard_ids(name).await? {
            let v = self
                .call_ok(
                    "GetShardIterator",
                    json!({"StreamName": name, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await?;
            let mut iter = v["ShardIterator"]
                .as_str()
                .ok_or_else(|| anyhow!("no ShardIterator: {v}"))?
                .to_string();
            let mut empty_pages = 0;
            for _ in 0..100_000 {
                let page = self
                    .call_ok("GetRecords", json!({"ShardIterator": iter, "Limit": 10000}))
                    .await?;
                let recs = page["Records"].as_array().cloned().unwrap_or_default();
                for r in &recs {
                    let data = r["Data"].as_str().unwrap_or_default();
                    out.push(ReadRecord {
                        data: B64
                            .decode_to_vec(data.as_bytes())
                            .with_context(|| format!("bad base64 in GetRecords: {r}"))?,
                        partition_key: r["PartitionKey"].as_str().unwrap_or_default().into(),
                        shard_id: shard.clone(),
                        sequence_number: r["SequenceNumber"].as_str().unwrap_or_default().into(),
                    });
                }
                if recs.is_empty() {
                    empty_pages += 1;
                    let behind = page["MillisBehindLatest"].as_u64().unwrap_or(0);
                    if behind == 0 || empty_pages >= 2 {
                        break;
                    }
                } else {
                    empty_pages = 0;
                }
                match page["NextShardIterator"].as_str() {
                    Some(n) => iter = n.to_string(),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Polls [`Kds::read_all`] until at least `n` records are there; returns them.
    pub async fn wait_for_count(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReadRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.read_all(name).await?;
            if all.len() >= n {
                return Ok(all);
            }
            if Instant::now() >= deadline {
                bail!(
                    "stream {name}: {} records after {timeout:?}, expected {n}",
                    all.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A SigV4-signed AWS query-protocol client (form-encoded POST, e.g. IAM or STS against moto).
#[derive(Clone)]
pub struct AwsQuery {
    http: SignedHttp,
}

impl AwsQuery {
    /// With the default test credentials; `service` is the signing name (`iam`, `sts`, …).
    pub fn new(endpoint: &str, region: &str, service: &'static str) -> Self {
        let creds = Credentials::new(TEST_ACCESS_KEY_ID, TEST_SECRET, None, None, "kb-testkit");
        AwsQuery {
            http: SignedHttp::new(endpoint, region, service, creds),
        }
    }

    pub fn with_credentials(
        endpoint: &str,
        region: &str,
        service: &'static str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        let creds = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_string),
            None,
            "kb-testkit",
        );
        AwsQuery {
            http: SignedHttp::new(endpoint, region, service, creds),
        }
    }

    /// POSTs the form-encoded `params`; returns the status and the (XML) body.
    pub async fn call(&self, params: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        )];
        let (status, _, raw) = self
            .http
            .request("POST", "/", &headers, Bytes::from(body))
            .await?;
        Ok((status, String::from_utf8_lossy(&raw).into_owned()))
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_body(raw: &[u8]) -> Value {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
}

// ------------------------------------------------------------------------------------------------
// signed HTTP/1.1 requests, one connection each

#[derive(Clone)]
pub(crate) struct SignedHttp {
    endpoint: String,
    tls: bool,
    host: String,
    port: u16,
    region: String,
    service: &'static str,
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

/// Hex SHA-256 of `body`, for S3's `x-amz-content-sha256`.
fn sha256_hex(body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl SignedHttp {
    pub(crate) fn new(
        endpoint: &str,
        region: &str,
        service: &'static str,
        creds: Credentials,
    ) -> Self {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let (tls, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = endpoint.strip_prefix("http://") {
            (false, r)
        } else {
            panic!("endpoint must start with http:// or https://: {endpoint}")
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(end) = authority.find(']') {
            // [v6]:port
            let port = authority[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            (authority[..=end].to_string(), port.unwrap_or(default_port))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().unwrap_or(default_port)),
                None => (authority.to_string(), default_port),
            }
        };
        SignedHttp {
            endpoint,
            tls,
            host,
            port,
            region: region.to_string(),
            service,
            identity: creds.into(),
        }
    }

    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> anyhow::Result<(u16, http::HeaderMap, Bytes)> {
        let host = self.host_header();
        let scheme = if self.tls { "https" } else { "http" };
        let uri = format!("{scheme}://{host}{path}");
        let mut req = http::Request::builder().method(method).uri(path);
        req = req.header("host", &host);
        if self.service == "s3" {
            // S3 signs the payload hash in a header of its own.
            req = req.header("x-amz-content-sha256", sha256_hex(&body));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut req = req.body(body.clone())?;
        {
            let signable_headers: Vec<(&str, &str)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
                .collect();
            let signable = SignableRequest::new(
                method,
                uri.as_str(),
                signable_headers.into_iter(),
                SignableBody::Bytes(&body),
            )?;
            let params = v4::SigningParams::builder()
                .identity(&self.identity)
                .region(&self.region)
                .name(self.service)
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()?
                .into();
            let (instructions, _sig) = sign(signable, &params)?.into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
        req.headers_mut()
            .insert("content-length", body.len().to_string().parse()?);
        let req = req.map(Full::new);

        let tcp = TcpStream::connect((self.host.trim_matches(['[', ']']), self.port))
            .await
            .with_context(|| format!("connect {}", self.endpoint))?;
        tcp.set_nodelay(true)?;
        let resp = if self.tls {
            let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
            let name = rustls_pki_types::ServerName::try_from(
                self.host.trim_matches(['[', ']']).to_string(),
            )?;
            let tls = connector
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {}", self.endpoint))?;
            send(TokioIo::new(tls), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        Ok(resp)
    }
}

async fn send<T>(
    io: T,
    req: http::Request<Full<Bytes>>,
) -> anyhow::Result<(u16, http::HeaderMap, Bytes)>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    drop(sender);
    conn.abort();
    Ok((status, parts.headers, body))
}

/// A rustls client configuration that accepts any server certificate (test-only).
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
