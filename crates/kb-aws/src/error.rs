//! AWS error responses: extraction of the error code and message (`kinesis_streams.md` §6.1) and
//! their classification into the handling classes of the output.
//!
//! The code comes from the `x-amzn-ErrorType` header (up to the first `:`), else from `__type`
//! (or `code`) of a JSON or CBOR body (after the last `#`), else from `<Code>` of an XML body — moto
//! answers signature failures with XML even for JSON protocols.

use http::HeaderMap;

/// A failed AWS request: HTTP status, error code (`""` when unknown) and message (`""` when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    /// Bare error code, e.g. `ProvisionedThroughputExceededException`; `""` when unknown.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {}, error='{}', message='{}'",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for AwsError {}

/// Extract the error code and message of a failed response (see the module documentation).
///
/// Never fails: an unparseable body gives an empty code (and message), which [`classify`] then
/// handles by status alone.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> AwsError {
    let header_code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty());
    let header_message = headers
        .get("x-amzn-errormessage")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let (body_code, body_message) = parse_body(body);
    let code = header_code
        .or(body_code)
        .map(|c| bare_code(&c).to_string())
        .unwrap_or_default();
    let message = body_message.or(header_message).unwrap_or_default();
    AwsError {
        status,
        code,
        message,
    }
}

/// Code and message of a JSON, CBOR or XML error body.
fn parse_body(body: &[u8]) -> (Option<String>, Option<String>) {
    // A CBOR map head (major type 5): the answer to an `application/x-amz-cbor-1.1` request.
    // No JSON or XML body starts with one of these bytes.
    if body.first().is_some_and(|b| (0xa0..=0xbf).contains(b)) {
        return crate::cbor::error_fields(body).unwrap_or((None, None));
    }
    let trimmed = trim_ascii(body);
    if trimmed.first() == Some(&b'{') {
        if let Ok(serde_json::Value::Object(map)) =
            serde_json::from_slice::<serde_json::Value>(trimmed)
        {
            let get = |keys: &[&str]| {
                keys.iter().find_map(|k| {
                    map.get(*k)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
            };
            return (
                get(&["__type", "code", "Code"]),
                get(&["message", "Message", "errorMessage"]),
            );
        }
        return (None, None);
    }
    if trimmed.first() == Some(&b'<') {
        let text = String::from_utf8_lossy(trimmed);
        return (xml_element(&text, "Code"), xml_element(&text, "Message"));
    }
    (None, None)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// Text of the first `<name>…</name>` element, entity-decoded.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    let value = xml_unescape(text[start..end].trim());
    (!value.is_empty()).then_some(value)
}

fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `aws.protocoltests#Foo` and `Foo:http://…` → `Foo`.
fn bare_code(code: &str) -> &str {
    let code = code.rsplit('#').next().unwrap_or(code);
    code.split(':').next().unwrap_or(code).trim()
}

/// How the output handles a failed request (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throughput/throttling codes and HTTP 429: back off and retry.
    Throttling,
    /// Any other 5xx: back off and retry.
    ServerError,
    /// Auth-class 4xx: refresh credentials (rate-limited), re-sign and re-send once.
    Auth,
    /// A signature rejected as expired / not yet valid: learn the clock skew, re-sign, re-send.
    ClockSkew,
    /// The service can never accept this request as is: `ValidationException`,
    /// `InvalidArgumentException`, `SerializationException` or HTTP 413 → split / drop.
    RequestRejected,
    /// Any other error: engine retry.
    Other,
}

const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    // Firehose's answer when a delivery stream's throughput limits are exceeded.
    "ServiceUnavailableException",
    "LimitExceededException",
    "ThrottlingException",
    "KMSThrottlingException",
];

/// Auth-class codes of §6.1; compared with and without a trailing `Exception`.
const AUTH_CODES: &[&str] = &[
    "ExpiredToken",
    "AccessDenied",
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "InvalidClientTokenId",
    "InvalidToken",
    "InvalidAccessKeyId",
    "InvalidSecurity",
    "TokenRefreshRequired",
    "InvalidSignature",
    "UnrecognizedClient",
];

const REJECTED_CODES: &[&str] = &[
    "ValidationException",
    "InvalidArgumentException",
    "SerializationException",
];

fn strip_exception(code: &str) -> &str {
    code.strip_suffix("Exception").unwrap_or(code)
}

/// True for `InvalidSignatureException`/`SignatureDoesNotMatch` whose message says the signature
/// expired or is not yet valid (e.g. `Signature expired: 20260101T000000Z is now earlier than …`,
/// `Signature not yet current: … is still later than …`).
fn is_clock_skew(e: &AwsError) -> bool {
    let code = strip_exception(&e.code);
    if code != "InvalidSignature" && code != "SignatureDoesNotMatch" {
        return false;
    }
    let m = e.message.to_ascii_lowercase();
    m.contains("expired") || m.contains("not yet current") || m.contains("not yet valid")
}

/// Classify a failed request exactly as §6.1: clock skew first (it is also an auth code), then
/// throttling codes and 429, any other 5xx, the auth list, the whole-request rejections, other.
pub fn classify(e: &AwsError) -> ErrorClass {
    if is_clock_skew(e) {
        return ErrorClass::ClockSkew;
    }
    if THROTTLING_CODES.contains(&e.code.as_str()) || e.status == 429 {
        return ErrorClass::Throttling;
    }
    if (500..600).contains(&e.status) {
        return ErrorClass::ServerError;
    }
    let bare = strip_exception(&e.code);
    if !bare.is_empty() && AUTH_CODES.iter().any(|a| strip_exception(a) == bare) {
        return ErrorClass::Auth;
    }
    if REJECTED_CODES.contains(&e.code.as_str()) || e.status == 413 {
        return ErrorClass::RequestRejected;
    }
    ErrorClass::Other
}

/// Per-record `ErrorCode` of a PutRecords response: `ValidationException` and
/// `InvalidArgumentException` can never succeed; every other code (throughput, `InternalFailure`,
/// `KMSThrottlingException`, unknown ones) is retried.
pub fn is_retryable_record_error(code: &str) -> bool {
    !matches!(code, "ValidationException" | "InvalidArgumentException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_codes() {
        assert_eq!(bare_code("com.amazonaws.kinesis.v20131202#Foo"), "Foo");
        assert_eq!(bare_code("a#b#Foo"), "Foo");
        assert_eq!(bare_code("Foo:http://internal.amazon.com/x"), "Foo");
        assert_eq!(bare_code("Foo"), "Foo");
    }

    /// What kinesalite and ferrokinesis answer to a CBOR request: the code and message in a
    /// CBOR map (no header), classified like the JSON answer.
    #[test]
    fn cbor_error_bodies() {
        let mut body = vec![0xbf];
        crate::cbor::write_text(&mut body, "__type");
        crate::cbor::write_text(&mut body, "ProvisionedThroughputExceededException");
        crate::cbor::write_text(&mut body, "message");
        crate::cbor::write_text(&mut body, "Rate exceeded");
        body.push(crate::cbor::BREAK);
        let e = parse_error(400, &HeaderMap::new(), &body);
        assert_eq!(e.code, "ProvisionedThroughputExceededException");
        assert_eq!(e.message, "Rate exceeded");
        assert_eq!(classify(&e), ErrorClass::Throttling);
        // Malformed CBOR: no code, classified by status.
        let e = parse_error(500, &HeaderMap::new(), &body[..5]);
        assert_eq!(
            (e.code.as_str(), classify(&e)),
            ("", ErrorClass::ServerError)
        );
    }

    #[test]
    fn xml_unescapes() {
        assert_eq!(
            xml_element("<E><Message>a &amp; b &lt;c&gt;</Message></E>", "Message").as_deref(),
            Some("a & b <c>")
        );
        assert_eq!(xml_element("<E><Message></Message></E>", "Message"), None);
    }
}
