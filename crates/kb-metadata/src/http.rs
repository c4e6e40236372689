//! GET requests over kb-aws's pooled HTTP/1.1 client (rustls, CA file/dir, verify options,
//! timeouts), shared by the kubernetes and ecs filters.

use bytes::Bytes;
use kb_aws::endpoint::Endpoint;
use kb_aws::http::{HttpClient, NetOptions, TlsOptions};

/// A complete answer.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// A client for `url` (`http[s]://host[:port]`).
pub(crate) fn client(url: &str, tls: &TlsOptions, net: &NetOptions) -> Result<HttpClient, String> {
    let endpoint = Endpoint::parse(url, None).map_err(|e| e.to_string())?;
    HttpClient::new(&endpoint, tls, net, None).map_err(|e| e.to_string())
}

/// `GET path` with `headers`; an error for anything short of a complete answer.
pub(crate) async fn get(
    client: &HttpClient,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut req = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .header(
            "user-agent",
            concat!("kinesis-bit/", env!("CARGO_PKG_VERSION")),
        )
        .header("accept", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Bytes::new()).map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    Ok(Answer {
        status: resp.status().as_u16(),
        body: resp.into_body(),
    })
}
