//! EC2 IMDS (v2, v1 fallback, v1 disabled, IMDS disabled) and container credentials, against
//! stubs of our own on 127.0.0.1 (`test-peers.md` §4: moto's IMDS lacks the TTL header).

mod cred_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use cred_support::{rfc3339_in, run, EnvSandbox, Stub, StubAnswer, StubRequest};
use kb_aws::credentials::{CredentialCache, CredentialSettings};
use kb_aws::imds::ImdsCredentialsProvider;

const TOKEN: &str = "imds-token-123";
const ROLE: &str = "kb-test-role";

/// How the IMDS stub answers the token PUT.
#[derive(Clone, Copy)]
enum TokenMode {
    /// 200 with the TTL header.
    V2,
    /// Refused with this status.
    Refuse(u16),
    /// 200 without the TTL header (moto's behaviour).
    NoTtl,
}

async fn imds_stub(mode: TokenMode) -> Stub {
    Stub::start(move |r: &StubRequest| -> StubAnswer {
        let needs_token = matches!(mode, TokenMode::V2);
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") => {
                assert_eq!(
                    r.header("x-aws-ec2-metadata-token-ttl-seconds"),
                    Some("21600")
                );
                match mode {
                    TokenMode::V2 => (
                        200,
                        vec![("X-aws-ec2-metadata-token-ttl-seconds", "21600".into())],
                        TOKEN.into(),
                    ),
                    TokenMode::NoTtl => (200, vec![], TOKEN.into()),
                    TokenMode::Refuse(s) => (s, vec![], String::new()),
                }
            }
            ("GET", path) if path.starts_with("/latest/meta-data/iam/security-credentials/") => {
                if needs_token && r.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
                    return (401, vec![], String::new());
                }
                let role = &path["/latest/meta-data/iam/security-credentials/".len()..];
                if role.is_empty() {
                    (200, vec![], format!("{ROLE}\n"))
                } else if role == ROLE {
                    let body = serde_json::json!({
                        "Code": "Success",
                        "LastUpdated": rfc3339_in(0),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": "ASIAIMDS",
                        "SecretAccessKey": "imdssecret",
                        "Token": "imdstoken",
                        "Expiration": rfc3339_in(6 * 3600),
                    });
                    (200, vec![], body.to_string())
                } else {
                    (404, vec![], String::new())
                }
            }
            _ => (404, vec![], String::new()),
        }
    })
    .await
}

fn settings() -> CredentialSettings {
    CredentialSettings::new("us-east-1")
}

fn imds_env(env: &EnvSandbox, stub: &Stub) {
    env.remove("AWS_EC2_METADATA_DISABLED");
    env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &stub.url());
}

#[test]
fn imds_v2() {
    let env = EnvSandbox::new();
    run(async {
        let stub = imds_stub(TokenMode::V2).await;
        imds_env(&env, &stub);
        let cache = CredentialCache::new(settings()).await;
        let c = cache.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAIMDS");
        assert_eq!(c.secret_access_key(), "imdssecret");
        assert_eq!(c.session_token(), Some("imdstoken"));
        let left = c
            .expiry()
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(5 * 3600), "{left:?}");

        let reqs = stub.requests();
        assert_eq!(reqs.len(), 3, "{reqs:?}");
        assert_eq!(reqs[0].method, "PUT");
        for r in &reqs[1..] {
            assert_eq!(r.header("x-aws-ec2-metadata-token"), Some(TOKEN), "{r:?}");
        }
        assert_eq!(
            reqs[2].path,
            format!("/latest/meta-data/iam/security-credentials/{ROLE}")
        );
    });
}

#[test]
fn imds_token_refused_falls_back_to_v1() {
    let env = EnvSandbox::new();
    run(async {
        for status in [403, 404, 405] {
            let stub = imds_stub(TokenMode::Refuse(status)).await;
            imds_env(&env, &stub);
            let cache = CredentialCache::new(settings()).await;
            let c = cache.credentials().await.unwrap();
            assert_eq!(c.access_key_id(), "ASIAIMDS", "token refused with {status}");
            let reqs = stub.requests();
            assert_eq!(reqs.len(), 3, "{reqs:?}");
            for r in &reqs[1..] {
                assert_eq!(r.header("x-aws-ec2-metadata-token"), None, "{r:?}");
            }
        }
    });
}

#[test]
fn imds_token_without_ttl_header_falls_back_to_v1() {
    let env = EnvSandbox::new();
    run(async {
        let stub = imds_stub(TokenMode::NoTtl).await;
        imds_env(&env, &stub);
        let p = ImdsCredentialsProvider::new(None);
        let c = p.provide_credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAIMDS");
        assert_eq!(stub.requests()[1].header("x-aws-ec2-metadata-token"), None);
    });
}

#[test]
fn imds_v1_disabled_by_env() {
    let env = EnvSandbox::new();
    run(async {
        let stub = imds_stub(TokenMode::Refuse(403)).await;
        imds_env(&env, &stub);
        env.set("AWS_EC2_METADATA_V1_DISABLED", "true");
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        assert!(err.contains("IMDSv1 fallback is disabled"), "{err}");
        assert_eq!(stub.requests().len(), 1, "only the token request");

        // v2 still works with v1 disabled
        let stub = imds_stub(TokenMode::V2).await;
        imds_env(&env, &stub);
        let cache = CredentialCache::new(settings()).await;
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "ASIAIMDS"
        );
    });
}

#[test]
fn imds_v1_disabled_by_profile() {
    let env = EnvSandbox::new();
    env.write(
        "config",
        "[default]\nec2_metadata_v1_disabled = true\n\n[profile open]\nregion = us-east-1\n",
    );
    run(async {
        let stub = imds_stub(TokenMode::Refuse(403)).await;
        imds_env(&env, &stub);
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        assert!(err.contains("IMDSv1 fallback is disabled"), "{err}");

        // another profile without the setting falls back
        let mut s = settings();
        s.profile = Some("open".into());
        let cache = CredentialCache::new(s).await;
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "ASIAIMDS"
        );
    });
}

#[test]
fn imds_disabled() {
    let env = EnvSandbox::new();
    run(async {
        let stub = imds_stub(TokenMode::V2).await;
        imds_env(&env, &stub);
        env.set("AWS_EC2_METADATA_DISABLED", "true");
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        assert!(err.contains("IMDS disabled"), "{err}");
        assert!(stub.requests().is_empty());
    });
}

#[test]
fn imds_unreachable_is_not_loaded_quickly() {
    let env = EnvSandbox::new();
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.remove("AWS_EC2_METADATA_DISABLED");
    env.set(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        &format!("http://127.0.0.1:{port}"),
    );
    run(async {
        let started = std::time::Instant::now();
        let err = ImdsCredentialsProvider::new(None)
            .provide_credentials()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_)
            ),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}

/// Container credentials (ECS / EKS Pod Identity) through aws-config's provider, before IMDS.
#[test]
fn container_credentials_with_authorization_token() {
    let env = EnvSandbox::new();
    run(async {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let stub = Stub::start(move |r: &StubRequest| -> StubAnswer {
            seen.fetch_add(1, Ordering::SeqCst);
            if r.path != "/creds" {
                return (404, vec![], String::new());
            }
            if r.header("authorization") != Some("container-auth-xyz") {
                return (401, vec![], r#"{"message":"unauthorized"}"#.into());
            }
            let body = serde_json::json!({
                "AccessKeyId": "ASIACONTAINER",
                "SecretAccessKey": "containersecret",
                "Token": "containertoken",
                "Expiration": rfc3339_in(3600),
            });
            (
                200,
                vec![("Content-Type", "application/json".into())],
                body.to_string(),
            )
        })
        .await;
        // an IMDS stub that must not be reached: the container provider comes first
        let imds = imds_stub(TokenMode::V2).await;
        imds_env(&env, &imds);
        env.set(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &format!("{}/creds", stub.url()),
        );
        env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-xyz");
        let cache = CredentialCache::new(settings()).await;
        let c = cache.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "ASIACONTAINER");
        assert_eq!(c.session_token(), Some("containertoken"));
        assert!(c.expiry().is_some());
        assert!(imds.requests().is_empty());

        // the token file variant takes precedence over the token variable
        let token_file = env.write("token", "container-auth-xyz");
        env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong");
        env.set(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.to_str().unwrap(),
        );
        let cache = CredentialCache::new(settings()).await;
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "ASIACONTAINER"
        );

        // a wrong token is refused by the stub: an error, no fallback to IMDS
        env.remove("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        assert!(err.starts_with("no AWS credentials available"), "{err}");
        assert!(!err.contains("containersecret"));
    });
}
