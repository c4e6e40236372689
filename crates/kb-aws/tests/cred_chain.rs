//! The credential chain and cache (`kinesis_streams.md` §7.1, §7.3, §7.4): environment, shared
//! files, profile precedence, `credential_process`, caching and refresh, auth-error refresh.
//! Every test owns the process environment through [`cred_support::EnvSandbox`].

mod cred_support;

use std::time::{Duration, SystemTime};

use cred_support::{run, EnvSandbox};
use kb_aws::credentials::{CredentialCache, CredentialSettings, RefreshStats};

fn settings() -> CredentialSettings {
    CredentialSettings::new("us-east-1")
}

#[test]
fn environment_credentials() {
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
    env.set("AWS_SECRET_ACCESS_KEY", "envsecret");
    env.set("AWS_SESSION_TOKEN", "envtoken");
    // the environment wins over a profile
    env.write(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n",
    );
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let c = cache.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDENV");
        assert_eq!(c.secret_access_key(), "envsecret");
        assert_eq!(c.session_token(), Some("envtoken"));
        assert_eq!(c.expiry(), None);
        // Debug output never shows the secret
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("envsecret") && !dbg.contains("envtoken"),
            "{dbg}"
        );
    });
}

#[test]
fn static_profile_from_shared_files() {
    let env = EnvSandbox::new();
    env.write(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n",
    );
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let c = cache.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDFILE");
        assert_eq!(c.secret_access_key(), "filesecret");
        assert_eq!(c.session_token(), None);
    });
}

#[test]
fn static_profile_in_config_file() {
    let env = EnvSandbox::new();
    env.write(
        "config",
        "[profile cfg]\naws_access_key_id = AKIDCFG\naws_secret_access_key = cfgsecret\nregion = eu-west-1\n",
    );
    run(async {
        let mut s = settings();
        s.profile = Some("cfg".into());
        let cache = CredentialCache::new(s).await;
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDCFG"
        );
    });
}

#[test]
fn profile_precedence() {
    let env = EnvSandbox::new();
    let mut creds = String::new();
    for p in ["default", "p_key", "p_aws_profile", "p_default_profile"] {
        creds.push_str(&format!(
            "[{p}]\naws_access_key_id = AKID_{}\naws_secret_access_key = s\n",
            p.to_uppercase()
        ));
    }
    env.write("credentials", &creds);
    run(async {
        let resolve = |profile: Option<&str>| {
            let mut s = settings();
            s.profile = profile.map(str::to_string);
            async move {
                CredentialCache::new(s)
                    .await
                    .credentials()
                    .await
                    .unwrap()
                    .access_key_id()
                    .to_string()
            }
        };
        assert_eq!(resolve(None).await, "AKID_DEFAULT");

        env.set("AWS_DEFAULT_PROFILE", "p_default_profile");
        assert_eq!(resolve(None).await, "AKID_P_DEFAULT_PROFILE");

        env.set("AWS_PROFILE", "p_aws_profile");
        assert_eq!(resolve(None).await, "AKID_P_AWS_PROFILE");

        assert_eq!(resolve(Some("p_key")).await, "AKID_P_KEY");

        env.remove("AWS_PROFILE");
        assert_eq!(resolve(Some("p_key")).await, "AKID_P_KEY");
    });
    assert_eq!(settings().selected_profile(), "p_default_profile");
}

#[test]
fn credential_process_profile() {
    let env = EnvSandbox::new();
    let cmd = env.credential_process_script();
    env.write(
        "config",
        &format!("[profile proc]\ncredential_process = {cmd}\n"),
    );
    env.set("AWS_PROFILE", "proc");
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let c = cache.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDPROC1");
        assert_eq!(c.secret_access_key(), "secret1");
        assert_eq!(c.session_token(), Some("token1"));
        let left = c
            .expiry()
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(3500), "{left:?}");
    });
}

#[test]
fn cache_resolves_once_and_refreshes_near_expiry() {
    let env = EnvSandbox::new();
    let cmd = env.credential_process_script();
    env.write(
        "config",
        &format!("[default]\ncredential_process = {cmd}\n"),
    );
    // the first credentials expire in 50 s (inside the 60 s margin), the next in an hour
    env.write("expiry_1", "50");
    run(async {
        let cache = CredentialCache::new(settings()).await;
        assert_eq!(env.process_count(), 0, "new() must not resolve");
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDPROC1"
        );
        assert_eq!(env.process_count(), 1);
        // < 60 s left: the next call refreshes
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDPROC2"
        );
        assert_eq!(env.process_count(), 2);
        // an hour left: cached for many calls, also from clones (workers)
        for _ in 0..20 {
            let c = cache.clone();
            assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKIDPROC2");
        }
        assert_eq!(env.process_count(), 2);
        assert_eq!(
            cache.stats(),
            RefreshStats {
                expiry: 1,
                auth_error: 0
            }
        );
    });
}

#[test]
fn one_resolution_in_flight() {
    let env = EnvSandbox::new();
    let cmd = env.credential_process_script();
    env.write(
        "config",
        &format!("[default]\ncredential_process = {cmd}\n"),
    );
    env.write("sleep", "1");
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.credentials().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().access_key_id(), "AKIDPROC1");
        }
        assert_eq!(env.process_count(), 1);
    });
}

#[test]
fn auth_error_refresh_rereads_shared_files() {
    let env = EnvSandbox::new();
    let file = "[default]\naws_access_key_id = {ID}\naws_secret_access_key = s\n";
    env.write("credentials", &file.replace("{ID}", "AKIDOLD"));
    run(async {
        let cache = CredentialCache::new(settings()).await;
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDOLD"
        );
        // rotated file: static credentials stay cached …
        env.write("credentials", &file.replace("{ID}", "AKIDNEW"));
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDOLD"
        );
        // … until an auth error forces a new resolution from the start
        assert!(cache.refresh_after_auth_error().await);
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDNEW"
        );
        // at most once per 60 s
        env.write("credentials", &file.replace("{ID}", "AKIDNEWER"));
        assert!(!cache.refresh_after_auth_error().await);
        assert_eq!(
            cache.credentials().await.unwrap().access_key_id(),
            "AKIDNEW"
        );
        assert_eq!(cache.stats().auth_error, 1);
    });
}

#[test]
fn auth_error_refresh_rate_limit_with_paused_time() {
    let env = EnvSandbox::new();
    env.set("AWS_ACCESS_KEY_ID", "AKIDA");
    env.set("AWS_SECRET_ACCESS_KEY", "s");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = CredentialCache::new(settings()).await;
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKIDA");
        env.set("AWS_ACCESS_KEY_ID", "AKIDB");
        assert!(cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKIDB");

        env.set("AWS_ACCESS_KEY_ID", "AKIDC");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!cache.refresh_after_auth_error().await);
        tokio::time::advance(Duration::from_millis(29_999)).await;
        assert!(!cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKIDB");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKIDC");
        assert!(!cache.refresh_after_auth_error().await);
        assert_eq!(cache.stats().auth_error, 2);
    });
}

#[test]
fn no_credentials_startup_succeeds_and_error_names_providers() {
    let _env = EnvSandbox::new();
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        // One line: each source tried with its own reason, none of the SDK's generic wrappers.
        assert_eq!(
            err,
            "no AWS credentials available (environment, profile \"default\", web identity, container, EC2 IMDS): \
             environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; \
             profile \"default\": not configured; \
             web identity: $AWS_WEB_IDENTITY_TOKEN_FILE was not set; \
             container: ECS provider not configured; \
             EC2 IMDS: IMDS disabled by AWS_EC2_METADATA_DISABLED"
        );
        // still failing (and not cached) on the next call
        assert!(cache.credentials().await.is_err());
    });
}

#[test]
fn missing_named_profile_is_an_error_not_a_panic() {
    let env = EnvSandbox::new();
    env.write(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n",
    );
    run(async {
        let mut s = settings();
        s.profile = Some("nope".into());
        let cache = CredentialCache::new(s).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        eprintln!("{err}");
        assert!(err.contains("profile \"nope\""), "{err}");
    });
}

#[test]
fn secrets_never_in_errors() {
    let env = EnvSandbox::new();
    // a profile with a key id but no secret: invalid, and the key id must not leak its secret
    // from another profile into the message
    env.write(
        "credentials",
        "[default]\naws_access_key_id = AKIDONLY\n\n[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = topsecretvalue\n",
    );
    run(async {
        let cache = CredentialCache::new(settings()).await;
        let err = cache.credentials().await.unwrap_err().to_string();
        eprintln!("{err}");
        assert!(!err.contains("topsecretvalue"), "{err}");
        assert!(err.starts_with("no AWS credentials available"), "{err}");
    });
}
