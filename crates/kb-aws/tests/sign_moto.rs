//! SigV4 end to end against moto's verifying mode (`test-peers.md` §2, §4): requests signed by
//! [`kb_aws::sign::sign_request`] are accepted; a wrong secret or an unknown key gets moto's
//! 403 XML answer, which [`kb_aws::error`] reads as an auth error.

use std::time::Duration;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kb_aws::credentials::{CredentialCache, CredentialSettings};
use kb_aws::error::{classify, parse_error, ErrorClass};
use kb_aws::sign::{sha256_hex, sign_request, ClockSkew};
use kb_testkit::kds::AwsQuery;
use kb_testkit::peers::Moto;

const STREAM: &str = "kb-sign-test";

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(req: http::Request<Bytes>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let (parts, body) = req.into_parts();
    let resp = client
        .request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .expect("request to moto");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A Kinesis JSON request as the output builds it, signed with `creds`.
async fn kinesis(moto: &Moto, target: &str, body: String, creds: &Credentials) -> Answer {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", moto.endpoint()))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{target}"))
        .header("content-length", body.len().to_string())
        .header("user-agent", "kinesis-bit/0.1.0")
        .body(Bytes::from(body))
        .unwrap();
    let hash = sha256_hex(req.body());
    let skew = ClockSkew::new();
    sign_request(&mut req, &hash, creds, "us-east-1", "kinesis", skew.now()).unwrap();
    send(req).await
}

fn put_records_body() -> String {
    format!(
        r#"{{"StreamName":"{STREAM}","Records":[{{"Data":"aGVsbG8K","PartitionKey":"a"}},{{"Data":"d29ybGQK","PartitionKey":"b"}}]}}"#
    )
}

async fn create_stream(moto: &Moto, creds: &Credentials) {
    let a = kinesis(
        moto,
        "CreateStream",
        format!(r#"{{"StreamName":"{STREAM}","ShardCount":1}}"#),
        creds,
    )
    .await;
    assert_eq!(a.status, 200, "CreateStream: {}", a.text());
}

fn assert_put_ok(a: &Answer) {
    assert_eq!(a.status, 200, "PutRecords: {}", a.text());
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["FailedRecordCount"], 0, "{v}");
}

#[test]
fn signed_requests_accepted_and_bad_signatures_are_auth_errors() {
    let moto = Moto::start_verifying(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (akid, secret) = moto.create_user_with_key("kb-signer").await;
        let good = Credentials::new(&akid, &secret, None, None, "test");
        create_stream(&moto, &good).await;
        let a = kinesis(&moto, "PutRecords", put_records_body(), &good).await;
        assert_put_ok(&a);

        // moto's Date header gives (about) no skew against our clock
        if let Some(date) = a.headers.get("date").and_then(|d| d.to_str().ok()) {
            let skew = ClockSkew::new();
            let s = skew.learn_from_date_header(date).expect("parse moto Date");
            assert!(s.abs() <= 5, "skew {s} from {date}");
        }

        // wrong secret → 403 XML → SignatureDoesNotMatch / InvalidClientTokenId → auth
        let wrong = Credentials::new(&akid, "not-the-secret", None, None, "test");
        let a = kinesis(&moto, "PutRecords", put_records_body(), &wrong).await;
        assert_eq!(a.status, 403, "{}", a.text());
        let e = parse_error(a.status, &a.headers, &a.body);
        assert!(
            e.code == "SignatureDoesNotMatch" || e.code == "InvalidClientTokenId",
            "{e:?} from {}",
            a.text()
        );
        assert_eq!(classify(&e), ErrorClass::Auth);

        // unknown access key → 403 InvalidClientTokenId → auth
        let unknown = Credentials::new("AKIDUNKNOWNKEY000000", "x", None, None, "test");
        let a = kinesis(&moto, "PutRecords", put_records_body(), &unknown).await;
        assert_eq!(a.status, 403, "{}", a.text());
        let e = parse_error(a.status, &a.headers, &a.body);
        assert_eq!(e.code, "InvalidClientTokenId", "{}", a.text());
        assert_eq!(classify(&e), ErrorClass::Auth);

        // the user agent is not signed: changing it after signing keeps the request valid
        let body = put_records_body();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("{}/", moto.endpoint()))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Kinesis_20131202.PutRecords")
            .header("user-agent", "kinesis-bit/0.1.0")
            .body(Bytes::from(body))
            .unwrap();
        let hash = sha256_hex(req.body());
        sign_request(
            &mut req,
            &hash,
            &good,
            "us-east-1",
            "kinesis",
            ClockSkew::new().now(),
        )
        .unwrap();
        req.headers_mut().insert(
            "user-agent",
            http::HeaderValue::from_static("rewritten-by-a-proxy/1.0"),
        );
        assert_put_ok(&send(req).await);

        // a body that does not match the signed hash is rejected
        let body = put_records_body();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("{}/", moto.endpoint()))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Kinesis_20131202.PutRecords")
            .body(Bytes::from(body))
            .unwrap();
        sign_request(
            &mut req,
            &sha256_hex(b"{}"),
            &good,
            "us-east-1",
            "kinesis",
            ClockSkew::new().now(),
        )
        .unwrap();
        let a = send(req).await;
        assert_eq!(a.status, 403, "{}", a.text());
        assert_eq!(
            classify(&parse_error(a.status, &a.headers, &a.body)),
            ErrorClass::Auth
        );
    });
}

/// Temporary credentials: AssumeRole in verifying mode (the role must exist in moto's IAM),
/// then a PutRecords signed with the session token.
#[test]
fn session_token_signed_request_accepted() {
    // CreateUser, PutUserPolicy, CreateAccessKey, CreateRole, PutRolePolicy
    let moto = Moto::start_verifying(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (akid, secret) = moto.create_user_with_key("kb-base").await;
        let iam = AwsQuery::new(&moto.endpoint(), "us-east-1", "iam");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let (st, body) = iam
            .call(&[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", "kb-writer"),
                ("AssumeRolePolicyDocument", trust),
            ])
            .await
            .unwrap();
        assert_eq!(st, 200, "CreateRole: {body}");
        let role_arn = kb_testkit::peers::xml_text(&body, "Arn").expect("role Arn");
        let (st, body) = iam
            .call(&[
                ("Action", "PutRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", "kb-writer"),
                ("PolicyName", "allow-all"),
                ("PolicyDocument", allow),
            ])
            .await
            .unwrap();
        assert_eq!(st, 200, "PutRolePolicy: {body}");

        // the credential cache assumes the role with the user's key (a static provider here:
        // the process environment is not touched by this test binary)
        let base = Credentials::new(&akid, &secret, None, None, "test");
        let mut s = CredentialSettings::new("us-east-1");
        s.role_arn = Some(role_arn);
        s.sts_endpoint = Some(moto.endpoint());
        let cache = CredentialCache::with_base_provider(s, base.clone()).await;
        let temp = tokio::time::timeout(Duration::from_secs(30), cache.credentials())
            .await
            .unwrap()
            .unwrap();
        assert!(temp.access_key_id().starts_with("ASIA"));
        assert!(temp.session_token().is_some());

        create_stream(&moto, &base).await;
        let a = kinesis(&moto, "PutRecords", put_records_body(), &temp).await;
        assert_put_ok(&a);

        // the same temporary key without its session token is refused
        let no_token = Credentials::new(
            temp.access_key_id(),
            temp.secret_access_key(),
            None,
            None,
            "test",
        );
        let a = kinesis(&moto, "PutRecords", put_records_body(), &no_token).await;
        assert_eq!(a.status, 403, "{}", a.text());
        assert_eq!(classify(&parse_error(a.status, &a.headers, &a.body)), ErrorClass::Auth);
    });
}
