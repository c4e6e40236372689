//! One signed PutRecords / PutRecordBatch (or other JSON 1.1 / CBOR 1.1 API) call: headers, SigV4 with the precomputed
//! payload hash, the transport's `auto_retry_requests` re-send, and the answer classified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request};
use kb_aws::credentials::CredentialCache;
use kb_aws::endpoint::Endpoint;
use kb_aws::error::{classify, parse_error, AwsError, ErrorClass};
use kb_aws::http::{HttpClient, TransportError};
use kb_aws::sign::{sha256_hex, sign_request, ClockSkew};

use crate::encode::Protocol;

/// Spec §5: exactly `kinesis-bit/<version>`, not signed.
pub const USER_AGENT: &str = concat!("kinesis-bit/", env!("CARGO_PKG_VERSION"));

/// What came back for one request.
#[derive(Debug)]
pub enum Answer {
    /// HTTP 200 with this body.
    Ok(Bytes),
    /// An AWS error answer, classified.
    Error(AwsError, ErrorClass),
    /// No (complete) HTTP response: connect, TLS, I/O, timeout.
    Transport(TransportError),
    /// No credentials could be found, or signing failed.
    NoCredentials(String),
}

/// Everything needed to send API calls of one service from one worker.
pub struct Sender {
    /// `Kinesis_20131202`, `Firehose_20150804` (`Service::TARGET_PREFIX`).
    pub target_prefix: &'static str,
    /// SigV4 signing name: `kinesis`, `firehose` (`Service::SIGNING_NAME`).
    pub signing_name: &'static str,
    pub client: HttpClient,
    pub endpoint: Endpoint,
    pub region: String,
    pub credentials: CredentialCache,
    pub skew: Arc<ClockSkew>,
    pub auto_retry: bool,
}

/// What to set when no credentials were found. A local emulator (a plain `http://` or loopback
/// endpoint) still needs a signed request but checks no signature, which people do not guess.
pub fn credentials_hint(endpoint: &Endpoint) -> String {
    let local = !endpoint.is_tls()
        || endpoint.host.eq_ignore_ascii_case("localhost")
        || endpoint.ip().is_some_and(|ip| ip.is_loopback());
    if local {
        format!(
            "the endpoint {endpoint} looks like a local emulator: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to any values"
        )
    } else {
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile (the profile key or AWS_PROFILE), or run with an IAM role".to_string()
    }
}

impl Sender {
    /// Build, sign and send the JSON `body` to `<target prefix>.<target>`; with
    /// `auto_retry_requests`, a transport failure is followed by one immediate re-signed
    /// re-send.
    pub async fn call(&self, target: &str, body: Bytes) -> (Answer, Duration) {
        self.call_as(target, body, Protocol::Json).await
    }

    /// [`Sender::call`] with a body in `protocol` (its `Content-Type`); the payload hash is
    /// over the body's bytes as sent, whatever the protocol.
    pub async fn call_as(
        &self,
        target: &str,
        body: Bytes,
        protocol: Protocol,
    ) -> (Answer, Duration) {
        let started = Instant::now();
        let hash = sha256_hex(&body);
        let mut tries = if self.auto_retry { 2 } else { 1 };
        loop {
            tries -= 1;
            let creds = match self.credentials.credentials().await {
                Ok(c) => c,
                Err(e) => {
                    let hint = credentials_hint(&self.endpoint);
                    return (
                        Answer::NoCredentials(format!("{e}; {hint}")),
                        started.elapsed(),
                    );
                }
            };
            let mut req = match self.request(target, body.clone(), protocol) {
                Ok(r) => r,
                Err(e) => return (Answer::NoCredentials(e), started.elapsed()),
            };
            if let Err(e) = sign_request(
                &mut req,
                &hash,
                &creds,
                &self.region,
                self.signing_name,
                self.skew.now(),
            ) {
                return (
                    Answer::NoCredentials(format!("could not sign request: {e}")),
                    started.elapsed(),
                );
            }
            match self.client.send(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 200 {
                        return (Answer::Ok(resp.into_body()), started.elapsed());
                    }
                    let (parts, body) = resp.into_parts();
                    let err = parse_error(status, &parts.headers, &body);
                    let class = classify(&err);
                    if class == ErrorClass::ClockSkew {
                        if let Some(date) = parts
                            .headers
                            .get(http::header::DATE)
                            .and_then(|d| d.to_str().ok())
                        {
                            if let Some(skew) = self.skew.learn_from_date_header(date) {
                                tracing::warn!("clock skew of {skew} s against {}: re-signing with the server's time", self.endpoint.host_port());
                            }
                        }
                    }
                    return (Answer::Error(err, class), started.elapsed());
                }
                Err(e) if tries > 0 => {
                    tracing::debug!(
                        "transport failure, re-sending once (auto_retry_requests): {e}"
                    );
                }
                Err(e) => return (Answer::Transport(e), started.elapsed()),
            }
        }
    }

    fn request(
        &self,
        target: &str,
        body: Bytes,
        protocol: Protocol,
    ) -> Result<Request<Bytes>, String> {
        let len = body.len();
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.endpoint.url()))
            .header(http::header::HOST, self.endpoint.host_header())
            .header(http::header::CONTENT_TYPE, protocol.content_type())
            .header("x-amz-target", format!("{}.{target}", self.target_prefix))
            .header(http::header::CONTENT_LENGTH, len)
            .body(body)
            .map_err(|e| format!("could not build the request: {e}"))?;
        req.headers_mut().insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoints_get_the_any_credentials_hint() {
        let hint = |e: &str| credentials_hint(&Endpoint::parse(e, None).unwrap());
        assert_eq!(
            hint("http://127.0.0.1:4567"),
            "the endpoint http://127.0.0.1:4567 looks like a local emulator: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to any values"
        );
        assert!(hint("http://kinesis.internal:80").contains("local emulator"));
        assert!(hint("https://localhost:4567").contains("local emulator"));
        assert!(hint("https://[::1]:4567").contains("local emulator"));
        assert_eq!(
            hint("kinesis.us-east-1.amazonaws.com"),
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile (the profile key or AWS_PROFILE), or run with an IAM role"
        );
    }
}
