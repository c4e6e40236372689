//! `role_arn`, `external_id`, `sts_endpoint` and `EKS_POD_EXECUTION_ROLE` (`kinesis_streams.md`
//! §7.1, §7.2) against moto's STS, asserted on moto's request recording.

mod cred_support;

use cred_support::{run, EnvSandbox};
use kb_aws::credentials::{CredentialCache, CredentialSettings};
use kb_testkit::peers::Moto;
use serde_json::Value;

const ROLE: &str = "arn:aws:iam::123456789012:role/kb-target";
const POD_ROLE: &str = "arn:aws:iam::123456789012:role/kb-pod";

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        acc = (acc << 6) | val(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Form parameters of a recorded request (POST body or GET query).
fn params(rec: &Value) -> Vec<(String, String)> {
    let body = rec["body"].as_str().unwrap_or("");
    let body = if rec["body_encoded"].as_bool() == Some(true) {
        String::from_utf8(b64_decode(body)).unwrap()
    } else {
        body.to_string()
    };
    let query = rec["url"]
        .as_str()
        .and_then(|u| u.split_once('?'))
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    [body, query]
        .iter()
        .flat_map(|s| s.split('&').map(str::to_string).collect::<Vec<_>>())
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

fn assume_role_calls(moto: &Moto) -> Vec<(Vec<(String, String)>, Value)> {
    moto.recording()
        .into_iter()
        .map(|r| (params(&r), r))
        .filter(|(p, _)| param(p, "Action") == Some("AssumeRole"))
        .collect()
}

fn check_session_name(name: &str) {
    assert!(name.starts_with("kinesis-bit-"), "{name}");
    assert!(
        name.len() > "kinesis-bit-".len() && name.len() <= 64,
        "{name}"
    );
    assert!(
        name["kinesis-bit-".len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric()),
        "{name}"
    );
}

#[test]
fn role_arn_with_external_id_via_sts_endpoint() {
    let moto = Moto::start();
    moto.start_recording();
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDBASEKEY");
    env.set("AWS_SECRET_ACCESS_KEY", "basesecret");
    run(async {
        let mut s = CredentialSettings::new("us-east-1");
        s.role_arn = Some(ROLE.into());
        s.external_id = Some("ext-XYZ".into());
        s.sts_endpoint = Some(moto.endpoint());
        let cache = CredentialCache::new(s).await;
        assert!(cache
            .chain_description()
            .starts_with(&format!("assume role {ROLE} with environment")));
        let c = cache.credentials().await.unwrap();
        assert!(
            c.access_key_id().starts_with("ASIA"),
            "{}",
            c.access_key_id()
        );
        assert!(c.session_token().is_some_and(|t| !t.is_empty()));
        assert!(c.expiry().is_some());
        // cached: no second AssumeRole
        let again = cache.credentials().await.unwrap();
        assert_eq!(again.access_key_id(), c.access_key_id());
    });
    let calls = assume_role_calls(&moto);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (p, rec) = &calls[0];
    assert_eq!(param(p, "RoleArn"), Some(ROLE));
    assert_eq!(param(p, "ExternalId"), Some("ext-XYZ"));
    assert_eq!(param(p, "DurationSeconds"), None);
    check_session_name(param(p, "RoleSessionName").unwrap());
    // signed with the base chain's credentials, region us-east-1, service sts
    let auth = rec["headers"]["Authorization"].as_str().unwrap();
    assert!(
        auth.contains("Credential=AKIDBASEKEY/") && auth.contains("/us-east-1/sts/aws4_request"),
        "{auth}"
    );
}

#[test]
fn role_arn_without_external_id_and_refresh() {
    let moto = Moto::start();
    moto.start_recording();
    let env = EnvSandbox::new();
    env.write(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILEBASE\naws_secret_access_key = s\n",
    );
    run(async {
        let mut s = CredentialSettings::new("us-east-1");
        s.role_arn = Some(ROLE.into());
        s.sts_endpoint = Some(moto.endpoint());
        let cache = CredentialCache::new(s).await;
        let first = cache.credentials().await.unwrap();
        assert!(first.access_key_id().starts_with("ASIA"));
        // an auth error re-resolves from the start: a new AssumeRole call
        assert!(cache.refresh_after_auth_error().await);
        let second = cache.credentials().await.unwrap();
        assert!(second.access_key_id().starts_with("ASIA"));
    });
    let calls = assume_role_calls(&moto);
    assert_eq!(calls.len(), 2);
    for (p, _) in &calls {
        assert_eq!(param(p, "ExternalId"), None);
        assert_eq!(param(p, "RoleArn"), Some(ROLE));
        check_session_name(param(p, "RoleSessionName").unwrap());
    }
}

#[test]
fn eks_pod_execution_role_then_role_arn() {
    let moto = Moto::start();
    moto.start_recording();
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDNODE");
    env.set("AWS_SECRET_ACCESS_KEY", "nodesecret");
    env.set("EKS_POD_EXECUTION_ROLE", POD_ROLE);
    // web identity is left out of the base chain with EKS_POD_EXECUTION_ROLE
    env.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa");
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token");
    run(async {
        let mut s = CredentialSettings::new("us-east-1");
        s.role_arn = Some(ROLE.into());
        s.external_id = Some("ext-2".into());
        s.sts_endpoint = Some(moto.endpoint());
        let cache = CredentialCache::new(s).await;
        let d = cache.chain_description().to_string();
        assert!(
            d.contains("EKS_POD_EXECUTION_ROLE") && !d.contains("web identity"),
            "{d}"
        );
        let c = cache.credentials().await.unwrap();
        assert!(c.access_key_id().starts_with("ASIA"));
    });
    let calls = assume_role_calls(&moto);
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (pod, pod_rec) = &calls[0];
    assert_eq!(param(pod, "RoleArn"), Some(POD_ROLE));
    assert_eq!(param(pod, "ExternalId"), None);
    check_session_name(param(pod, "RoleSessionName").unwrap());
    assert!(pod_rec["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .contains("Credential=AKIDNODE/"));
    let (target, target_rec) = &calls[1];
    assert_eq!(param(target, "RoleArn"), Some(ROLE));
    assert_eq!(param(target, "ExternalId"), Some("ext-2"));
    // the second call is signed with the pod role's temporary credentials
    let auth = target_rec["headers"]["Authorization"].as_str().unwrap();
    assert!(auth.contains("Credential=ASIA"), "{auth}");
    assert!(target_rec["headers"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.eq_ignore_ascii_case("x-amz-security-token")));
}

#[test]
fn assume_role_failure_is_a_credentials_error() {
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDBASEKEY");
    env.set("AWS_SECRET_ACCESS_KEY", "basesecret");
    // nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    run(async {
        let mut s = CredentialSettings::new("us-east-1");
        s.role_arn = Some(ROLE.into());
        s.sts_endpoint = Some(format!("http://127.0.0.1:{port}"));
        let cache = CredentialCache::new(s).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "no AWS credentials available (assume role {ROLE} with environment"
            )),
            "{err}"
        );
        assert!(!err.contains("basesecret"), "{err}");
    });
}

/// Web identity (IRSA) through `sts_endpoint`: `AssumeRoleWithWebIdentity` goes to moto.
#[test]
fn web_identity_via_sts_endpoint() {
    let moto = Moto::start();
    moto.start_recording();
    let env = EnvSandbox::new();
    let token = env.write("web-token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n");
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap());
    env.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa");
    run(async {
        let mut s = CredentialSettings::new("us-east-1");
        s.sts_endpoint = Some(moto.endpoint());
        let cache = CredentialCache::new(s).await;
        let c = cache.credentials().await.unwrap();
        assert!(
            c.access_key_id().starts_with("ASIA"),
            "{}",
            c.access_key_id()
        );
        assert!(c.expiry().is_some());
    });
    let calls: Vec<_> = moto
        .recording()
        .into_iter()
        .map(|r| params(&r))
        .filter(|p| param(p, "Action") == Some("AssumeRoleWithWebIdentity"))
        .collect();
    assert_eq!(calls.len(), 1);
    let p = &calls[0];
    assert_eq!(
        param(p, "RoleArn"),
        Some("arn:aws:iam::123456789012:role/irsa")
    );
    assert_eq!(
        param(p, "WebIdentityToken"),
        Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    );
    check_session_name(param(p, "RoleSessionName").unwrap());
}
