//! Credentials for an output instance (`kinesis_streams.md` §7): the provider chain, optional
//! AssumeRole layers, and one cache shared by the instance's workers.
//!
//! Chain (built from aws-config providers, in this order): environment → shared profile (static
//! keys, `credential_process`, SSO, `role_arn`/`source_profile`, …) → web identity (IRSA) →
//! container credentials (ECS, EKS Pod Identity) → EC2 IMDS with the IMDSv1 fallback of
//! [`crate::imds`] (in place of aws-config's IMDSv2-only provider). The profile is the `profile`
//! key, else `$AWS_PROFILE`, else `$AWS_DEFAULT_PROFILE`, else `default`.
//!
//! With `EKS_POD_EXECUTION_ROLE` set (EKS Fargate), the chain without web identity becomes the
//! base of an AssumeRole of that role, as Fluent Bit does. With `role_arn`, the result (chain or
//! pod role) is the base of an AssumeRole of `role_arn` with `external_id`. Both AssumeRole calls
//! use `sts_endpoint` (or the regional default of [`crate::endpoint`]), region = `region`, and a
//! `RoleSessionName` of `kinesis-bit-` plus 20 random alphanumerics.
//!
//! With `sts_endpoint` set, web identity uses a provider of ours that calls
//! `AssumeRoleWithWebIdentity` there (aws-config's provider has no endpoint override). Profile
//! role chains (`role_arn` + `source_profile` inside the shared files) still use aws-config's
//! STS endpoint resolution (`AWS_ENDPOINT_URL_STS`, the profile's `endpoint_url`).
//!
//! Caching: the first [`CredentialCache::credentials`] call resolves the chain; later calls
//! return the cached credentials until less than 60 s plus a jitter of up to 10 s remain before
//! their expiry; one resolution runs at a time and concurrent callers wait for it. Credentials
//! without expiry (static keys) are kept until [`CredentialCache::refresh_after_auth_error`].
//! Credential values are never logged or put into error messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::{Duration, SystemTime};

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::ProviderChainError;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError as ProvideError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::imds::ImdsCredentialsProvider;

/// Refresh when less than this remains before expiry …
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// … plus a random jitter of up to this much, so instances do not refresh in lockstep.
const REFRESH_JITTER_MAX_MS: u64 = 10_000;
/// At most one refresh after an auth error per this period.
pub const AUTH_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The credential-related settings of an output instance. The process environment is read when
/// the chain is built (and again on every refresh after an auth error).
#[derive(Debug, Clone, Default)]
pub struct CredentialSettings {
    /// SigV4 region; also the region of STS calls.
    pub region: String,
    /// The `profile` key.
    pub profile: Option<String>,
    /// The `role_arn` key.
    pub role_arn: Option<String>,
    /// The `external_id` key (used only with `role_arn`).
    pub external_id: Option<String>,
    /// The `sts_endpoint` key: `https://host[:port]`, `http://host[:port]` or a bare host
    /// (parsed with [`crate::endpoint::Endpoint::parse`]); `None` → `sts.<region>.<suffix>`.
    pub sts_endpoint: Option<String>,
    /// HTTP client for the AssumeRole calls (`role_arn`, `EKS_POD_EXECUTION_ROLE`), e.g. one
    /// carrying the `tls.*`/proxy settings; `None` → aws-config's default HTTPS client.
    pub sts_http_client: Option<SharedHttpClient>,
}

impl CredentialSettings {
    /// Settings with only the region set.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            ..Self::default()
        }
    }

    /// The shared-config profile in use: `profile` key, `$AWS_PROFILE`, `$AWS_DEFAULT_PROFILE`,
    /// `default`.
    pub fn selected_profile(&self) -> String {
        self.profile
            .clone()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| env_non_empty("AWS_PROFILE"))
            .or_else(|| env_non_empty("AWS_DEFAULT_PROFILE"))
            .unwrap_or_else(|| "default".to_string())
    }

    /// The STS endpoint URL used for AssumeRole.
    pub fn sts_url(&self) -> String {
        use crate::endpoint::Endpoint;
        match self.sts_endpoint.as_deref().map(str::trim) {
            Some(e) if !e.is_empty() => match Endpoint::parse(e, None) {
                Ok(ep) => ep.url(),
                Err(_) => e.trim_end_matches('/').to_string(),
            },
            _ => Endpoint::default_for("sts", &self.region, None).url(),
        }
    }
}

fn env_non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// No credentials could be obtained. The message never contains credential values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no AWS credentials available ({tried}): {detail}")]
pub struct CredentialsError {
    /// The providers tried, e.g. `environment, profile "default", web identity, container, EC2 IMDS`.
    pub tried: String,
    /// Why, on one line: each source with its reason when the whole chain came up empty, else
    /// the error of the source that failed.
    pub detail: String,
}

/// Counters of credential refreshes (`…_credential_refreshes_total{trigger}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Resolutions because the cached credentials were (about to be) expired; the first
    /// resolution is not counted.
    pub expiry: u64,
    /// Refreshes after an auth error that were not rate-limited.
    pub auth_error: u64,
}

/// The credentials of one output instance: cloned into each worker (an `Arc` inside).
#[derive(Clone)]
pub struct CredentialCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("tried", &self.inner.tried)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `None` for [`CredentialCache::from_provider`]: the provider is kept on refresh.
    settings: Option<CredentialSettings>,
    /// A base provider replacing the chain ([`CredentialCache::with_base_provider`]).
    base: Option<SharedCredentialsProvider>,
    /// Description of the chain, for error messages.
    tried: String,
    /// The cached credentials and when to refresh them.
    cached: RwLock<Option<Cached>>,
    /// The provider; holding the lock means "a resolution is in flight".
    provider: tokio::sync::Mutex<SharedCredentialsProvider>,
    /// When the last refresh after an auth error was allowed.
    last_auth_refresh: StdMutex<Option<tokio::time::Instant>>,
    expiry_refreshes: AtomicU64,
    auth_refreshes: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    creds: Credentials,
    /// `None`: never expires.
    refresh_at: Option<SystemTime>,
}

impl Cached {
    fn fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
    }

    fn still_valid(&self, now: SystemTime) -> bool {
        self.creds.expiry().is_none_or(|e| now < e)
    }
}

impl CredentialCache {
    /// Build the provider chain for `settings`. Resolves nothing: startup without any
    /// credentials succeeds, and the first [`credentials`](Self::credentials) call fails instead.
    pub async fn new(settings: CredentialSettings) -> Self {
        Self::build(settings, None).await
    }

    /// Like [`new`](Self::new), but with `base` in place of the provider chain: only the
    /// `role_arn` layer of `settings` is applied on top of it (`EKS_POD_EXECUTION_ROLE` is not).
    pub async fn with_base_provider(
        settings: CredentialSettings,
        base: impl ProvideCredentials + 'static,
    ) -> Self {
        Self::build(settings, Some(SharedCredentialsProvider::new(base))).await
    }

    async fn build(settings: CredentialSettings, base: Option<SharedCredentialsProvider>) -> Self {
        let (provider, tried) = build_provider(&settings, base.clone()).await;
        Self {
            inner: Arc::new(Inner {
                settings: Some(settings),
                base,
                tried,
                cached: RwLock::new(None),
                provider: tokio::sync::Mutex::new(provider),
                last_auth_refresh: StdMutex::new(None),
                expiry_refreshes: AtomicU64::new(0),
                auth_refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// A cache over a given provider (for tests and for callers with a provider of their own);
    /// `refresh_after_auth_error` keeps using that provider.
    pub fn from_provider(provider: impl ProvideCredentials + 'static, tried: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: None,
                base: None,
                tried: tried.to_string(),
                cached: RwLock::new(None),
                provider: tokio::sync::Mutex::new(SharedCredentialsProvider::new(provider)),
                last_auth_refresh: StdMutex::new(None),
                expiry_refreshes: AtomicU64::new(0),
                auth_refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// The providers this cache tries, as shown in errors.
    pub fn chain_description(&self) -> &str {
        &self.inner.tried
    }

    fn cached(&self) -> Option<Cached> {
        self.inner
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn store(&self, value: Option<Cached>) {
        *self.inner.cached.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Current credentials: resolved on first use, refreshed when less than 60 s (plus up to
    /// 10 s of jitter) remain before expiry. One resolution runs at a time; other callers wait
    /// for it. If a refresh fails while the cached credentials have not yet expired, those are
    /// returned (and the next call tries again).
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.cached() {
            if c.fresh(SystemTime::now()) {
                return Ok(c.creds);
            }
        }
        let provider = self.inner.provider.lock().await;
        // Another caller may have refreshed while this one waited.
        let previous = self.cached();
        if let Some(c) = &previous {
            if c.fresh(SystemTime::now()) {
                return Ok(c.creds.clone());
            }
        }
        match provider.provide_credentials().await {
            Ok(creds) => {
                if previous.is_some() {
                    self.inner.expiry_refreshes.fetch_add(1, Ordering::Relaxed);
                }
                let refresh_at = creds.expiry().map(|e| {
                    let jitter = Duration::from_millis(fastrand::u64(0..=REFRESH_JITTER_MAX_MS));
                    e.checked_sub(REFRESH_MARGIN + jitter).unwrap_or(e)
                });
                match creds.expiry() {
                    Some(e) => tracing::debug!(
                        "resolved AWS credentials, valid for {} more",
                        crate::human_duration(
                            e.duration_since(SystemTime::now()).unwrap_or_default()
                        )
                    ),
                    None => tracing::debug!("resolved AWS credentials, without expiry"),
                }
                self.store(Some(Cached {
                    creds: creds.clone(),
                    refresh_at,
                }));
                Ok(creds)
            }
            Err(e) => {
                let err = CredentialsError {
                    tried: self.inner.tried.clone(),
                    detail: describe(&e),
                };
                match previous {
                    Some(c) if c.still_valid(SystemTime::now()) => {
                        tracing::warn!("credential refresh failed, using the cached credentials until they expire: {err}");
                        Ok(c.creds)
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// After an auth error (§7.4): drop the cached credentials and rebuild the chain, so the
    /// next [`credentials`](Self::credentials) call re-resolves it from the start (re-reading the
    /// shared files). At most once per 60 s (measured with `tokio::time::Instant`); returns false,
    /// changing nothing, when rate-limited.
    pub async fn refresh_after_auth_error(&self) -> bool {
        {
            let now = tokio::time::Instant::now();
            let mut last = self
                .inner
                .last_auth_refresh
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(t) = *last {
                if now.duration_since(t) < AUTH_REFRESH_INTERVAL {
                    return false;
                }
            }
            *last = Some(now);
        }
        tracing::info!("auth error, refreshing credentials");
        let mut provider = self.inner.provider.lock().await;
        if let Some(settings) = &self.inner.settings {
            let (fresh, _) = build_provider(settings, self.inner.base.clone()).await;
            *provider = fresh;
        }
        self.store(None);
        self.inner.auth_refreshes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Refresh counters.
    pub fn stats(&self) -> RefreshStats {
        RefreshStats {
            expiry: self.inner.expiry_refreshes.load(Ordering::Relaxed),
            auth_error: self.inner.auth_refreshes.load(Ordering::Relaxed),
        }
    }
}

/// `e` and its causes on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    one_line(&out)
}

/// aws-config lists the attempts of a chain on indented lines: keep them on one line.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(":; ", ": ")
}

/// Why the provider gave no credentials, for people: a chain that came up empty as each source
/// with its own reason (`environment: …; profile "default": …`), any other error with its causes.
/// `CredentialsError`'s own texts ("the credential provider was not enabled", "an error occurred
/// while loading credentials") say nothing a user can act on, so only their causes are kept.
fn describe(e: &ProvideError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(chain) = err.downcast_ref::<ProviderChainError<ProvideError>>() {
            parts.push(
                chain
                    .attempts()
                    .iter()
                    .map(|a| format!("{}: {}", a.name(), source_reason(a.name(), a.error())))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            break;
        }
        let generic = matches!(
            err.downcast_ref::<ProvideError>(),
            Some(c) if !matches!(c, ProvideError::ProviderTimedOut(_))
        );
        let text = one_line(&err.to_string());
        if !generic && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    if parts.is_empty() {
        one_line(&e.to_string())
    } else {
        parts.join(": ")
    }
}

/// One source's reason inside a chain that came up empty.
fn source_reason(source: &str, e: &ProvideError) -> String {
    let reason = match describe(e) {
        // The only causes CredentialsError has without a text of their own.
        r if r == e.to_string() => "not configured".to_string(),
        r => r,
    };
    // aws-config's wording does not say which variables.
    if source == "environment" && reason == "environment variable not set" {
        return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".to_string();
    }
    reason
}

/// A fresh `RoleSessionName`: `kinesis-bit-` + 20 random alphanumerics.
pub fn session_name() -> String {
    let mut s = String::from("kinesis-bit-");
    s.extend(std::iter::repeat_with(fastrand::alphanumeric).take(20));
    s
}

/// The provider of `settings` (over `base` instead of the chain when given) and its
/// description for errors.
async fn build_provider(
    settings: &CredentialSettings,
    base: Option<SharedCredentialsProvider>,
) -> (SharedCredentialsProvider, String) {
    let (mut provider, mut tried) = match base {
        Some(base) => (base, "the given provider".to_string()),
        None => build_chain(settings).await,
    };
    if let Some(role) = settings
        .role_arn
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        provider = assume_role(settings, role, settings.external_id.as_deref(), provider).await;
        tried = format!("assume role {role} with {tried}");
    }
    (provider, tried)
}

/// The chain of §7.1, with the `EKS_POD_EXECUTION_ROLE` layer.
async fn build_chain(settings: &CredentialSettings) -> (SharedCredentialsProvider, String) {
    let region = Region::new(settings.region.clone());
    let profile = settings.selected_profile();
    let conf = ProviderConfig::default().with_region(Some(region.clone()));

    let pod_role = env_non_empty("EKS_POD_EXECUTION_ROLE");
    // The names are the labels of `tried`: a chain that comes up empty reports each source by
    // its name (`describe`).
    let profile_label = format!("profile \"{profile}\"");
    let mut chain = CredentialsProviderChain::first_try(
        "environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else(
        profile_label.clone(),
        ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .profile_name(profile.clone())
            .build(),
    );
    let mut tried = format!("environment, {profile_label}");
    if pod_role.is_none() {
        chain = if settings.sts_endpoint.is_some() || settings.sts_http_client.is_some() {
            // aws-config's provider has neither an endpoint override nor a way to take our
            // HTTP client (tls.*, proxy): use our own provider then.
            let sts = aws_sdk_sts::Client::new(&sts_sdk_config(settings, None).await);
            chain.or_else("web identity", WebIdentityProvider { sts })
        } else {
            chain.or_else(
                "web identity",
                WebIdentityTokenCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            )
        };
        tried.push_str(", web identity");
    }
    let chain = chain
        .or_else(
            "container",
            EcsCredentialsProvider::builder().configure(&conf).build(),
        )
        .or_else("EC2 IMDS", ImdsCredentialsProvider::new(Some(&profile)));
    tried.push_str(", container, EC2 IMDS");

    let mut provider = SharedCredentialsProvider::new(chain);
    if let Some(role) = pod_role {
        provider = assume_role(settings, &role, None, provider).await;
        tried = format!("assume EKS_POD_EXECUTION_ROLE {role} with {tried}");
    }
    (provider, tried)
}

/// SDK configuration of STS calls: region, `sts_endpoint` (or the regional default), the STS
/// HTTP client, aws-config's default retries; signed with `credentials` (none: unsigned calls).
async fn sts_sdk_config(
    settings: &CredentialSettings,
    credentials: Option<SharedCredentialsProvider>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .endpoint_url(settings.sts_url());
    loader = match credentials {
        Some(c) => loader.credentials_provider(c),
        None => loader.no_credentials(),
    };
    if let Some(client) = &settings.sts_http_client {
        loader = loader.http_client(client.clone());
    }
    loader.load().await
}

async fn assume_role(
    settings: &CredentialSettings,
    role: &str,
    external_id: Option<&str>,
    base: SharedCredentialsProvider,
) -> SharedCredentialsProvider {
    let region = Region::new(settings.region.clone());
    let sdk_config = sts_sdk_config(settings, Some(base)).await;
    let mut builder = AssumeRoleProvider::builder(role)
        .session_name(session_name())
        .region(region)
        .configure(&sdk_config);
    if let Some(id) = external_id.filter(|i| !i.is_empty()) {
        builder = builder.external_id(id);
    }
    SharedCredentialsProvider::new(builder.build().await)
}

/// Web identity (IRSA: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, session name
/// `AWS_ROLE_SESSION_NAME` or `kinesis-bit-<random>`) through `sts_endpoint`; used in place of
/// aws-config's provider only when `sts_endpoint` is set. The token file is re-read on each call.
#[derive(Debug)]
struct WebIdentityProvider {
    sts: aws_sdk_sts::Client,
}

impl WebIdentityProvider {
    async fn load(&self) -> aws_credential_types::provider::Result {
        use aws_credential_types::provider::error::CredentialsError as E;
        let token_file = env_non_empty("AWS_WEB_IDENTITY_TOKEN_FILE");
        let role_arn = env_non_empty("AWS_ROLE_ARN");
        let (token_file, role_arn) = match (token_file, role_arn) {
            (Some(f), Some(r)) => (f, r),
            (None, _) => return Err(E::not_loaded("$AWS_WEB_IDENTITY_TOKEN_FILE was not set")),
            (Some(_), None) => {
                return Err(E::invalid_configuration(
                    "$AWS_WEB_IDENTITY_TOKEN_FILE is set but $AWS_ROLE_ARN is not",
                ))
            }
        };
        let session = env_non_empty("AWS_ROLE_SESSION_NAME").unwrap_or_else(session_name);
        let token = tokio::fs::read_to_string(&token_file)
            .await
            .map_err(|e| E::provider_error(format!("web identity token file {token_file}: {e}")))?;
        let resp = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session)
            .web_identity_token(token.trim())
            .send()
            .await
            .map_err(|e| E::provider_error(error_chain(&e)))?;
        let c = resp.credentials().ok_or_else(|| {
            E::provider_error("AssumeRoleWithWebIdentity returned no credentials")
        })?;
        let expiry = SystemTime::try_from(*c.expiration())
            .map_err(|_| E::provider_error("AssumeRoleWithWebIdentity: bad Expiration"))?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expiry),
            "WebIdentityToken",
        ))
    }
}

impl ProvideCredentials for WebIdentityProvider {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        let a = session_name();
        assert!(a.starts_with("kinesis-bit-"));
        assert_eq!(a.len(), 32);
        assert!(a[12..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, session_name());
    }

    #[test]
    fn sts_urls() {
        let mut s = CredentialSettings::new("us-east-1");
        assert_eq!(s.sts_url(), "https://sts.us-east-1.amazonaws.com");
        s.region = "cn-north-1".into();
        assert_eq!(s.sts_url(), "https://sts.cn-north-1.amazonaws.com.cn");
        s.sts_endpoint = Some("http://127.0.0.1:4566".into());
        assert_eq!(s.sts_url(), "http://127.0.0.1:4566");
        s.sts_endpoint = Some("sts.example.com".into());
        assert_eq!(s.sts_url(), "https://sts.example.com");
        s.sts_endpoint = Some("https://sts.example.com:8443/".into());
        assert_eq!(s.sts_url(), "https://sts.example.com:8443");
    }

    #[test]
    fn error_message_has_no_newlines() {
        let e = aws_credential_types::provider::error::CredentialsError::not_loaded(
            "no credentials found in chain. Attempted:\n  Environment: x\n  Profile: y",
        );
        let d = error_chain(&e);
        assert!(!d.contains('\n'), "{d}");
        assert!(d.contains("Attempted: Environment: x; Profile: y"), "{d}");
    }

    #[derive(Debug)]
    struct Failing(fn() -> ProvideError);
    impl ProvideCredentials for Failing {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err((self.0)()))
        }
    }

    async fn chain_error(chain: CredentialsProviderChain) -> ProvideError {
        chain.provide_credentials().await.unwrap_err()
    }

    #[tokio::test]
    async fn an_empty_chain_names_each_source_with_its_reason() {
        let chain = CredentialsProviderChain::first_try(
            "environment",
            Failing(|| ProvideError::not_loaded("environment variable not set")),
        )
        .or_else(
            "profile \"nope\"",
            Failing(|| ProvideError::not_loaded("profile `nope` was not defined")),
        )
        .or_else("container", Failing(ProvideError::not_loaded_no_source));
        let e = chain_error(chain).await;
        assert_eq!(
            describe(&e),
            "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; profile \"nope\": profile `nope` was not defined; container: not configured"
        );
    }

    #[tokio::test]
    async fn a_failing_source_is_described_without_debug_text() {
        let chain = CredentialsProviderChain::first_try(
            "environment",
            Failing(|| ProvideError::not_loaded("environment variable not set")),
        )
        .or_else(
            "EC2 IMDS",
            Failing(|| ProvideError::provider_error("IMDS role request failed with HTTP 403")),
        );
        let e = chain_error(chain).await;
        assert_eq!(describe(&e), "IMDS role request failed with HTTP 403");
        let e = ProvideError::provider_timed_out(Duration::from_secs(5));
        assert_eq!(
            describe(&e),
            "credentials provider timed out after 5 seconds"
        );
    }

    #[derive(Debug)]
    struct Counting(Arc<AtomicU64>, Option<Duration>);
    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            let expiry = self.1.map(|d| SystemTime::now() + d);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                None,
                expiry,
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn caches_until_expiry_window() {
        let calls = Arc::new(AtomicU64::new(0));
        let cache = CredentialCache::from_provider(
            Counting(calls.clone(), Some(Duration::from_secs(3600))),
            "test",
        );
        for _ in 0..10 {
            assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKID1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = Arc::new(AtomicU64::new(0));
        let cache = CredentialCache::from_provider(
            Counting(calls.clone(), Some(Duration::from_secs(30))),
            "test",
        );
        cache.credentials().await.unwrap();
        cache.credentials().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().expiry, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn auth_refresh_rate_limited() {
        let calls = Arc::new(AtomicU64::new(0));
        let cache = CredentialCache::from_provider(Counting(calls.clone(), None), "test");
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKID1");
        assert!(cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKID2");
        assert!(!cache.refresh_after_auth_error().await);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKID2");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.refresh_after_auth_error().await);
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "AKID3");
        assert_eq!(
            cache.stats(),
            RefreshStats {
                expiry: 0,
                auth_error: 2
            }
        );
    }
}
