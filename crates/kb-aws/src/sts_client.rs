//! The HTTP client of the output's STS calls (`kinesis_streams.md` §7.1, §8 "which connections",
//! "proxy"): an adapter that lets the AWS SDK (AssumeRole for `role_arn` and
//! `EKS_POD_EXECUTION_ROLE`, web identity through `sts_endpoint`) send its requests through our
//! own [`crate::http::HttpClient`], so the `tls.*` trust settings (CA file/path, verify, verify
//! hostname, client certificate; not `tls.vhost`), the proxy and the `net.*` timeouts of the
//! output apply to STS exactly as they do to Kinesis.
//!
//! The adapter is bound to the one STS endpoint it was built for; a request for any other
//! scheme, host or port is refused with an error saying so. Request bodies must be in memory
//! (STS query-protocol bodies are). The SDK's own connect/read timeout settings are not used:
//! `net.connect_timeout` and `net.io_timeout` (or the 60 s request deadline) apply instead.

use std::fmt;

use aws_smithy_runtime_api::client::http::{
    HttpClient as SmithyHttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings,
    SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use bytes::Bytes;

use crate::endpoint::Endpoint;
use crate::http::{
    HttpClient, HttpError, NetOptions, ProxyOptions, TlsOptions, TransportError, TransportErrorKind,
};

/// A smithy [`HttpClient`](SmithyHttpClient) and [`HttpConnector`] over our
/// [`HttpClient`] for one STS endpoint. Cheap to clone (clones share the connection pool).
#[derive(Clone)]
pub struct StsConnector {
    client: HttpClient,
}

impl fmt::Debug for StsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsConnector")
            .field("client", &self.client)
            .finish()
    }
}

/// The SDK HTTP client for the STS calls of an output: `tls` (its `vhost` is ignored: it only
/// concerns the Kinesis endpoint), `net` and `proxy` (the `proxy` key, or the environment's
/// answer for `sts_endpoint`) as for the Kinesis client. Fails like [`HttpClient::new`] (bad
/// CA, certificate or key files, no system trust store).
pub fn sts_http_client(
    sts_endpoint: &Endpoint,
    tls: &TlsOptions,
    net: &NetOptions,
    proxy: Option<ProxyOptions>,
) -> Result<SharedHttpClient, HttpError> {
    Ok(SharedHttpClient::new(StsConnector::new(
        sts_endpoint,
        tls,
        net,
        proxy,
    )?))
}

impl StsConnector {
    /// A connector for `sts_endpoint`; see [`sts_http_client`].
    pub fn new(
        sts_endpoint: &Endpoint,
        tls: &TlsOptions,
        net: &NetOptions,
        proxy: Option<ProxyOptions>,
    ) -> Result<StsConnector, HttpError> {
        let tls = TlsOptions {
            vhost: None,
            ..tls.clone()
        };
        Ok(StsConnector {
            client: HttpClient::new(sts_endpoint, &tls, net, proxy)?,
        })
    }

    /// The endpoint this connector is bound to.
    pub fn endpoint(&self) -> &Endpoint {
        self.client.endpoint()
    }
}

impl SmithyHttpClient for StsConnector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for StsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let req = match to_http(self.client.endpoint(), &request) {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(e)),
        };
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let resp = client.send(req).await.map_err(connector_error)?;
            HttpResponse::try_from(resp.map(Into::into))
                .map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

fn user_error(msg: String) -> ConnectorError {
    ConnectorError::user(msg.into())
}

/// Host without IPv6 brackets or a trailing dot, lower-case.
fn norm_host(h: &str) -> String {
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The SDK request as an `http` request for `endpoint`, or a user error when it is for another
/// endpoint or its body is not in memory.
fn to_http(endpoint: &Endpoint, req: &HttpRequest) -> Result<http::Request<Bytes>, ConnectorError> {
    let uri: http::Uri = req
        .uri()
        .parse()
        .map_err(|e| user_error(format!("invalid request URI '{}': {e}", req.uri())))?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = uri.host().map(norm_host).unwrap_or_default();
    let port = uri.port_u16().or(match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    if scheme != endpoint.scheme.as_str()
        || host != norm_host(&endpoint.host)
        || port != Some(endpoint.port)
    {
        return Err(user_error(format!(
            "the STS HTTP client is bound to {} and cannot send a request to {}://{}",
            endpoint.url(),
            scheme,
            uri.authority().map_or("", |a| a.as_str()),
        )));
    }
    let body = req.body().bytes().ok_or_else(|| {
        user_error("the STS HTTP client needs an in-memory request body (got a stream)".into())
    })?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder().method(req.method()).uri(path);
    for (name, value) in req.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::copy_from_slice(body))
        .map_err(|e| user_error(format!("invalid request: {e}")))
}

/// Our transport failures as SDK connector errors: timeouts → `timeout`, TLS handshake
/// failures → unclassified (not retried: a certificate problem does not fix itself), the rest
/// → `io` (retried by the SDK). Failures before the request was sent are `never_connected`.
fn connector_error(e: TransportError) -> ConnectorError {
    let kind = e.kind;
    let err = match kind {
        TransportErrorKind::Timeout => ConnectorError::timeout(Box::new(e)),
        TransportErrorKind::Tls => ConnectorError::other(Box::new(e), None),
        TransportErrorKind::Connect
        | TransportErrorKind::Proxy
        | TransportErrorKind::Io
        | TransportErrorKind::Closed => ConnectorError::io(Box::new(e)),
    };
    match kind {
        TransportErrorKind::Connect | TransportErrorKind::Tls | TransportErrorKind::Proxy => {
            err.never_connected()
        }
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> HttpRequest {
        let mut r = HttpRequest::new("Action=AssumeRole".into());
        r.set_uri(uri).unwrap();
        r.set_method("POST").unwrap();
        r.headers_mut()
            .insert("content-type", "application/x-www-form-urlencoded");
        r
    }

    #[test]
    fn converts_requests_for_the_bound_endpoint() {
        let ep = Endpoint::parse("https://sts.us-east-1.amazonaws.com", None).unwrap();
        let r = to_http(&ep, &req("https://STS.us-east-1.amazonaws.com:443/?x=1")).unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(r.uri(), "/?x=1");
        assert_eq!(
            r.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(r.body().as_ref(), b"Action=AssumeRole");

        let ep = Endpoint::parse("http://[::1]:4566", None).unwrap();
        assert!(to_http(&ep, &req("http://[::1]:4566/")).is_ok());
    }

    #[test]
    fn refuses_other_endpoints() {
        let ep = Endpoint::parse("https://127.0.0.1:8443", None).unwrap();
        for uri in [
            "https://sts.amazonaws.com/",
            "https://127.0.0.1:9443/",
            "http://127.0.0.1:8443/",
        ] {
            let e = to_http(&ep, &req(uri)).unwrap_err();
            assert!(e.is_user());
            let msg = std::error::Error::source(&e).unwrap().to_string();
            assert!(
                msg.contains("bound to https://127.0.0.1:8443") && msg.contains("cannot send"),
                "{msg}"
            );
        }
    }
}
