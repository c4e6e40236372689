//! SigV4 signing against published test vectors (the AWS SigV4 test suite as shipped with the
//! aws-sigv4 crate, and the IAM example of the AWS SigV4 documentation), plus the header rules of
//! `kinesis_streams.md` §5.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use kb_aws::sign::{sha256_hex, sign_request};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the time of every vector.
const VECTOR_TIME: u64 = 1_440_938_160;

fn time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(VECTOR_TIME)
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new(AKID, SECRET, token.map(str::to_string), None, "test")
}

fn auth(req: &http::Request<Bytes>) -> &str {
    req.headers()["authorization"].to_str().unwrap()
}

fn signed_headers(req: &http::Request<Bytes>) -> String {
    let a = auth(req);
    let start = a.find("SignedHeaders=").unwrap() + "SignedHeaders=".len();
    a[start..].split(',').next().unwrap().to_string()
}

/// aws-signing-test-suite/v4/post-vanilla
#[test]
fn vector_post_vanilla() {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("https://example.amazonaws.com/")
        .body(Bytes::new())
        .unwrap();
    sign_request(
        &mut req,
        &sha256_hex(b""),
        &creds(None),
        "us-east-1",
        "service",
        time(),
    )
    .unwrap();
    assert_eq!(
        auth(&req),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
    assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
    assert_eq!(req.headers()["host"], "example.amazonaws.com");
}

/// aws-signing-test-suite/v4/get-vanilla-with-session-token
#[test]
fn vector_get_vanilla_with_session_token() {
    let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    let mut req = http::Request::builder()
        .method("GET")
        .uri("https://example.amazonaws.com/")
        .body(Bytes::new())
        .unwrap();
    sign_request(
        &mut req,
        &sha256_hex(b""),
        &creds(Some(token)),
        "us-east-1",
        "service",
        time(),
    )
    .unwrap();
    assert_eq!(signed_headers(&req), "host;x-amz-date;x-amz-security-token");
    assert!(auth(&req)
        .ends_with("Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"));
    assert_eq!(req.headers()["x-amz-security-token"], token);
}

/// aws-signing-test-suite/v4/post-header-key-sort
#[test]
fn vector_post_header_key_sort() {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("https://example.amazonaws.com/")
        .header("My-Header1", "value1")
        .body(Bytes::new())
        .unwrap();
    sign_request(
        &mut req,
        &sha256_hex(b""),
        &creds(None),
        "us-east-1",
        "service",
        time(),
    )
    .unwrap();
    assert_eq!(signed_headers(&req), "host;my-header1;x-amz-date");
    assert!(auth(&req)
        .ends_with("Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"));
}

/// aws-signing-test-suite/v4/get-vanilla-query-order-key-case
#[test]
fn vector_get_vanilla_query_order() {
    let mut req = http::Request::builder()
        .method("GET")
        .uri("https://example.amazonaws.com/?Param2=value2&Param1=value1")
        .body(Bytes::new())
        .unwrap();
    sign_request(
        &mut req,
        &sha256_hex(b""),
        &creds(None),
        "us-east-1",
        "service",
        time(),
    )
    .unwrap();
    assert!(auth(&req)
        .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

/// The IAM `ListUsers` example of the AWS SigV4 documentation ("Create a signed AWS API
/// request"): a signed `content-type` header and a query string.
#[test]
fn documentation_example_iam_list_users() {
    let mut req = http::Request::builder()
        .method("GET")
        .uri("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Bytes::new())
        .unwrap();
    sign_request(
        &mut req,
        &sha256_hex(b""),
        &creds(None),
        "us-east-1",
        "iam",
        time(),
    )
    .unwrap();
    assert_eq!(signed_headers(&req), "content-type;host;x-amz-date");
    assert!(auth(&req)
        .ends_with("Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"));
}

fn put_records_request(uri: &str, body: &'static str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.PutRecords")
        .header("content-length", body.len().to_string())
        .header("user-agent", "kinesis-bit/0.1.0")
        .header("connection", "keep-alive")
        .header("transfer-encoding", "identity")
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

#[test]
fn put_records_headers() {
    let body = r#"{"StreamName":"s","Records":[{"Data":"YQ==","PartitionKey":"k"}]}"#;
    let mut req = put_records_request("https://kinesis.us-east-1.amazonaws.com/", body);
    sign_request(
        &mut req,
        &sha256_hex(body.as_bytes()),
        &creds(Some("tok")),
        "us-east-1",
        "kinesis",
        time(),
    )
    .unwrap();
    // signed: host, content-type, x-amz-date, x-amz-target, x-amz-security-token (and
    // content-length); never user-agent or hop-by-hop headers
    assert_eq!(
        signed_headers(&req),
        "content-length;content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
    );
    assert!(auth(&req).contains("/20150830/us-east-1/kinesis/aws4_request"));
    assert!(!req.headers().contains_key("x-amz-content-sha256"));
    assert_eq!(req.headers()["host"], "kinesis.us-east-1.amazonaws.com");
    assert_eq!(req.headers()["user-agent"], "kinesis-bit/0.1.0");
}

#[test]
fn host_header_ports() {
    for (uri, host) in [
        ("https://h.example:443/", "h.example"),
        ("https://h.example:8443/", "h.example:8443"),
        ("http://127.0.0.1:80/", "127.0.0.1"),
        ("http://127.0.0.1:4567/", "127.0.0.1:4567"),
        ("http://[::1]:4567/", "[::1]:4567"),
        ("https://[::1]/", "[::1]"),
    ] {
        let mut req = put_records_request(uri, "{}");
        sign_request(
            &mut req,
            &sha256_hex(b"{}"),
            &creds(None),
            "us-east-1",
            "kinesis",
            time(),
        )
        .unwrap();
        assert_eq!(req.headers()["host"], host, "{uri}");
    }
    // a Host set by the caller is kept (and signed)
    let mut req = put_records_request("http://127.0.0.1:4567/", "{}");
    req.headers_mut()
        .insert("host", http::HeaderValue::from_static("custom.example"));
    sign_request(
        &mut req,
        &sha256_hex(b"{}"),
        &creds(None),
        "us-east-1",
        "kinesis",
        time(),
    )
    .unwrap();
    assert_eq!(req.headers()["host"], "custom.example");
}

#[test]
fn resign_replaces_previous_signature() {
    let body = "{}";
    let mut req = put_records_request("https://kinesis.us-east-1.amazonaws.com/", body);
    let hash = sha256_hex(body.as_bytes());
    sign_request(
        &mut req,
        &hash,
        &creds(Some("tok")),
        "us-east-1",
        "kinesis",
        time(),
    )
    .unwrap();
    let first = auth(&req).to_string();
    assert!(req.headers().contains_key("x-amz-security-token"));

    // re-sign with credentials without a session token, one hour later
    let later = time() + Duration::from_secs(3600);
    sign_request(&mut req, &hash, &creds(None), "us-east-1", "kinesis", later).unwrap();
    assert!(!req.headers().contains_key("x-amz-security-token"));
    assert_eq!(req.headers()["x-amz-date"], "20150830T133600Z");
    assert_eq!(req.headers().get_all("authorization").iter().count(), 1);
    assert_eq!(req.headers().get_all("x-amz-date").iter().count(), 1);
    assert_ne!(auth(&req), first);
    assert!(!signed_headers(&req).contains("x-amz-security-token"));

    // same inputs, same signature (deterministic)
    let mut again = put_records_request("https://kinesis.us-east-1.amazonaws.com/", body);
    sign_request(
        &mut again,
        &hash,
        &creds(None),
        "us-east-1",
        "kinesis",
        later,
    )
    .unwrap();
    assert_eq!(auth(&again), auth(&req));
}

#[test]
fn sha256_known_values() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b"Param1=value1"),
        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
}
