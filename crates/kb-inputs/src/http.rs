//! `http`: records POSTed over HTTP/1.1 (Fluent Bit's `in_http`).
//!
//! `POST /<tag>` with `Content-Type: application/json` and a JSON object or an array of
//! objects as body: every object is a record under `<tag>` (the path without its leading `/`,
//! characters other than letters, digits, `.`, `_` and `-` replaced by `_`); `POST /` uses the
//! input's tag. With `tag_key`, a record whose `tag_key` value is a string goes out under that
//! tag instead. `application/x-www-form-urlencoded` bodies make one record of their fields
//! (values as strings). `Content-Encoding: gzip` bodies are decompressed.
//!
//! Answers: `successful_response_code` (201; 200 and 204 allowed) with an empty body once the
//! records were appended; 400 with the reason (bad JSON, an item that is not an object, a
//! missing or unsupported `Content-Type`); 413 when the (decompressed) body exceeds
//! `buffer_max_size`; 405 for methods other than POST. `add_remote_addr` adds `REMOTE_ADDR`
//! (the first address of the `X-Forwarded-For` header, when the request has one).
//!
//! Backpressure: while the input is paused (`Mem_Buf_Limit`), no connection is accepted and a
//! request that arrived waits before its records are appended, so the client is held until the
//! engine has room, as Fluent Bit holds it (no 503 is sent).
//!
//! Differences from Fluent Bit: `buffer_chunk_size` is validated only (hyper manages the reads);
//! no HTTP/2, TLS or `success_header`.

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::util;
use tokio::task::JoinSet;

/// Fluent Bit's default `buffer_max_size` (4M).
pub const DEFAULT_MAX_SIZE: usize = 4 * 1024 * 1024;
/// Fluent Bit's default `buffer_chunk_size` (512K).
pub const DEFAULT_CHUNK_SIZE: usize = 512 * 1024;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "listen",
        KeyType::Str,
        Some("0.0.0.0"),
        "address to listen on",
    ),
    KeySpec::new("port", KeyType::Int, Some("9880"), "TCP port to listen on"),
    KeySpec::new(
        "tag_key",
        KeyType::Str,
        None,
        "a record whose value under this key is a string goes out under that tag",
    ),
    KeySpec::new(
        "buffer_max_size",
        KeyType::Size,
        Some("4M"),
        "largest request body accepted; larger ones get 413",
    ),
    KeySpec::new(
        "buffer_chunk_size",
        KeyType::Size,
        Some("512K"),
        "allocation step for request bodies (validated only)",
    ),
    KeySpec::new(
        "successful_response_code",
        KeyType::Int,
        Some("201"),
        "status code of a successful request: 200, 201 or 204",
    ),
    KeySpec::new(
        "add_remote_addr",
        KeyType::Bool,
        Some("false"),
        "add REMOTE_ADDR (from the X-Forwarded-For header) to each record",
    ),
];

/// The `http` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "http",
        description: "HTTP",
        keys: KEYS,
    },
    build,
};

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(HttpInput::from_props(props)?))
}

/// A configured `http` input (nothing is bound before it runs).
#[derive(Debug, Clone)]
pub struct HttpInput {
    listen: String,
    port: u16,
    tag_key: Option<String>,
    max_size: usize,
    success: StatusCode,
    add_remote_addr: bool,
}

impl HttpInput {
    /// Validate the properties of an `http` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let port = util::port(props, 9880, &mut errors);
        let max_size = util::size(props, "buffer_max_size", DEFAULT_MAX_SIZE, &mut errors);
        let chunk_size = util::size(props, "buffer_chunk_size", DEFAULT_CHUNK_SIZE, &mut errors);
        if chunk_size == 0 {
            errors.push(props.error("buffer_chunk_size", "'buffer_chunk_size' must be > 0"));
        }
        if max_size < chunk_size {
            errors.push(props.error(
                "buffer_max_size",
                format!(
                    "'buffer_max_size' ({max_size}) must be at least 'buffer_chunk_size' \
                     ({chunk_size})"
                ),
            ));
        }
        let code = match props.u64("successful_response_code") {
            Ok(v) => v.unwrap_or(201),
            Err(e) => {
                errors.push(e);
                201
            }
        };
        let success = match code {
            200 => StatusCode::OK,
            201 => StatusCode::CREATED,
            204 => StatusCode::NO_CONTENT,
            _ => {
                errors.push(props.error(
                    "successful_response_code",
                    format!("'successful_response_code' must be 200, 201 or 204, got {code}"),
                ));
                StatusCode::CREATED
            }
        };
        let add_remote_addr = props.bool("add_remote_addr").unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HttpInput {
            listen: props.str("listen").unwrap_or("0.0.0.0").trim().to_string(),
            port,
            tag_key: props
                .str("tag_key")
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            max_size,
            success,
            add_remote_addr: add_remote_addr.unwrap_or(false),
        })
    }
}

impl HttpInput {
    /// Bind the configured address (the input does this when it starts).
    pub async fn listen(&self) -> Result<TcpListener, PluginError> {
        crate::util::bind_tcp(&self.listen, self.port).await
    }
}

#[async_trait]
impl Input for HttpInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let listener = self.listen().await?;
        let server = Arc::new(Server {
            ctx: ctx.clone(),
            cfg: *self,
        });
        let mut tasks = JoinSet::new();
        loop {
            ctx.ready().await;
            let accepted = tokio::select! {
                _ = ctx.stopped() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    let server = server.clone();
                    tasks.spawn(async move {
                        let ctx = server.ctx.clone();
                        let svc = hyper::service::service_fn(move |req| {
                            let server = server.clone();
                            async move { Ok::<_, Infallible>(server.handle(req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc);
                        tokio::select! {
                            _ = ctx.stopped() => {}
                            r = conn => if let Err(e) = r {
                                tracing::debug!("connection from {peer}: {e}");
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::select! {
                        _ = ctx.stopped() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

struct Server {
    ctx: InputContext,
    cfg: HttpInput,
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r
}

/// The tag of a request path: without the leading `/`, unusual characters replaced by `_`.
pub fn path_tag(path: &str) -> Option<String> {
    let t = path.strip_prefix('/').unwrap_or(path);
    if t.is_empty() {
        return None;
    }
    Some(
        t.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    )
}

/// Decode `application/x-www-form-urlencoded` into one record of string values.
pub fn parse_form(body: &[u8]) -> Map<String, Value> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            let hex = |j: usize| {
                s.get(j)
                    .and_then(|c| char::from(*c).to_digit(16))
                    .map(|d| d as u8)
            };
            match b {
                b'+' => out.push(b' '),
                b'%' => match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                _ => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let mut m = Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, &b""[..]),
        };
        m.insert(decode(k), Value::String(decode(v)));
    }
    m
}

impl Server {
    async fn handle(&self, req: Request<Incoming>) -> Resp {
        if req.method() != Method::POST {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "error: only POST is allowed\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let max = self.cfg.max_size;
        let too_large = || {
            reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("error: body exceeds buffer_max_size ({max} bytes)\n"),
            )
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return too_large();
        }
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(|v| v.trim().to_ascii_lowercase())
        };
        let content_type = header(CONTENT_TYPE);
        let gzip = header(CONTENT_ENCODING).is_some_and(|e| e == "gzip");
        let remote = if self.cfg.add_remote_addr {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        let tag = path_tag(req.uri().path()).unwrap_or_else(|| self.ctx.tag().to_string());
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("error: could not read the body: {e}\n"),
                )
            }
        };
        let body = if gzip {
            let mut out = Vec::new();
            let r = flate2::read::MultiGzDecoder::new(&body[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out);
            if let Err(e) = r {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("error: invalid gzip body: {e}\n"),
                );
            }
            if out.len() > max {
                return too_large();
            }
            Bytes::from(out)
        } else {
            body
        };
        let media = content_type
            .as_deref()
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_string());
        let records = match media.as_deref() {
            Some("application/json") => match json_records(&body) {
                Ok(r) => r,
                Err(reason) => return reply(StatusCode::BAD_REQUEST, format!("error: {reason}\n")),
            },
            Some("application/x-www-form-urlencoded") => vec![parse_form(&body)],
            Some(other) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "error: unsupported Content-Type '{other}' (use application/json or \
                         application/x-www-form-urlencoded)\n"
                    ),
                )
            }
            None => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "error: the Content-Type header is missing\n",
                )
            }
        };
        // Backpressure: the request waits here (the client sees no answer yet) until the input
        // is under its Mem_Buf_Limit again, as Fluent Bit holds it, rather than answering 503.
        self.ctx.ready().await;
        self.append(&tag, records, remote.as_deref());
        reply(self.cfg.success, "")
    }

    fn append(&self, tag: &str, records: Vec<Map<String, Value>>, remote: Option<&str>) {
        let now = EventTime::now();
        let mut writers: Vec<(String, EventWriter)> = Vec::new();
        for mut m in records {
            if let Some(addr) = remote {
                m.insert("REMOTE_ADDR".into(), Value::String(addr.to_string()));
            }
            let t = self
                .cfg
                .tag_key
                .as_deref()
                .and_then(|k| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or(tag)
                .to_string();
            let i = match writers.iter().position(|(x, _)| *x == t) {
                Some(i) => i,
                None => {
                    writers.push((t, EventWriter::new()));
                    writers.len() - 1
                }
            };
            if let Some((_, w)) = writers.get_mut(i) {
                w.write_json_record(now, &m);
            }
        }
        for (t, w) in &writers {
            self.ctx.append_tagged(t, &w.buf, w.count);
        }
    }
}

/// The records of a JSON body: an object, or an array of objects.
pub fn json_records(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(vec![m]),
        Ok(Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(m) => Ok(m),
                _ => Err(format!("item {i} of the array is not a JSON object")),
            })
            .collect(),
        Ok(_) => Err("the body must be a JSON object or an array of objects".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_paths() {
        assert_eq!(path_tag("/"), None);
        assert_eq!(path_tag("/app.log"), Some("app.log".into()));
        assert_eq!(path_tag("/a/b c"), Some("a_b_c".into()));
    }

    #[test]
    fn forms_are_decoded() {
        let m = parse_form(b"a=1&b=x+y%21&c");
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"a": "1", "b": "x y!", "c": ""})
        );
    }

    #[test]
    fn json_bodies() {
        assert_eq!(json_records(b"[{\"a\":1},{}]").unwrap().len(), 2);
        assert!(json_records(b"[{\"a\":1},2]")
            .unwrap_err()
            .contains("item 1"));
        assert!(json_records(b"{\"a\"")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(json_records(b"3").is_err());
    }
}
