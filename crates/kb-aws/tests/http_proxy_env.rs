//! `proxy_from_env` with an injected environment: which variable applies, and NO_PROXY rules.

use std::collections::HashMap;

use kb_aws::endpoint::{Endpoint, EndpointError, Scheme};
use kb_aws::http::proxy_from_env;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn proxy_for(target: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let ep = Endpoint::parse(target, None).unwrap();
    proxy_from_env(&ep, env(pairs))
        .unwrap()
        .map(|p| p.host_port())
}

const KINESIS: &str = "kinesis.us-east-1.amazonaws.com";

#[test]
fn nothing_set_means_no_proxy() {
    assert_eq!(proxy_for(KINESIS, &[]), None);
    assert_eq!(proxy_for(KINESIS, &[("HTTPS_PROXY", "  ")]), None);
}

#[test]
fn https_targets_use_https_proxy_then_http_proxy() {
    assert_eq!(
        proxy_for(
            KINESIS,
            &[("HTTPS_PROXY", "http://s:1"), ("HTTP_PROXY", "http://h:2")]
        ),
        Some("s:1".into())
    );
    assert_eq!(
        proxy_for(
            KINESIS,
            &[("https_proxy", "http://s:1"), ("HTTP_PROXY", "http://h:2")]
        ),
        Some("s:1".into())
    );
    // Fluent Bit uses HTTP_PROXY for all traffic: honoured when no HTTPS_PROXY is set.
    assert_eq!(
        proxy_for(KINESIS, &[("HTTP_PROXY", "http://h:2")]),
        Some("h:2".into())
    );
    assert_eq!(
        proxy_for(KINESIS, &[("http_proxy", "http://h:2")]),
        Some("h:2".into())
    );
    // Upper case wins over lower case.
    assert_eq!(
        proxy_for(
            KINESIS,
            &[("HTTPS_PROXY", "http://u:1"), ("https_proxy", "http://l:1")]
        ),
        Some("u:1".into())
    );
}

#[test]
fn http_targets_use_only_http_proxy() {
    let t = "http://localhost:4566";
    assert_eq!(proxy_for(t, &[("HTTPS_PROXY", "http://s:1")]), None);
    assert_eq!(
        proxy_for(
            t,
            &[("HTTPS_PROXY", "http://s:1"), ("http_proxy", "http://h:2")]
        ),
        Some("h:2".into())
    );
}

#[test]
fn proxy_url_details_are_parsed() {
    let ep = Endpoint::parse(KINESIS, None).unwrap();
    let p = proxy_from_env(&ep, env(&[("HTTPS_PROXY", "https://u:p%21@proxy:8443")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.scheme, Scheme::Https);
    assert_eq!(p.username.as_deref(), Some("u"));
    assert_eq!(p.password.as_deref(), Some("p!"));
}

#[test]
fn invalid_proxy_variable_is_an_error_naming_it() {
    let ep = Endpoint::parse(KINESIS, None).unwrap();
    let e = proxy_from_env(&ep, env(&[("https_proxy", "http://u:secret@proxy/x")])).unwrap_err();
    assert!(matches!(e, EndpointError::Env { ref var, .. } if var == "https_proxy"));
    let msg = e.to_string();
    assert!(
        msg.starts_with("environment variable https_proxy:"),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
}

fn bypassed(target: &str, no_proxy: &str) -> bool {
    proxy_for(
        target,
        &[
            ("HTTPS_PROXY", "http://p:1"),
            ("HTTP_PROXY", "http://p:1"),
            ("NO_PROXY", no_proxy),
        ],
    )
    .is_none()
}

#[test]
fn no_proxy_rules() {
    // '*'
    assert!(bypassed(KINESIS, "*"));
    // exact host, case-insensitive, with surrounding spaces
    assert!(bypassed(
        KINESIS,
        "foo.example, Kinesis.US-East-1.amazonaws.com "
    ));
    // domain forms: bare, leading dot, '*.'
    assert!(bypassed(KINESIS, "amazonaws.com"));
    assert!(bypassed(KINESIS, ".amazonaws.com"));
    assert!(bypassed(KINESIS, "*.amazonaws.com"));
    assert!(bypassed("amazonaws.com", ".amazonaws.com"));
    // not a suffix on a label boundary
    assert!(!bypassed(KINESIS, "zonaws.com"));
    assert!(!bypassed(KINESIS, "*.example.com,example.org"));
    // host:port
    assert!(bypassed("localhost:8443", "localhost:8443"));
    assert!(!bypassed("localhost:8443", "localhost:9443"));
    assert!(bypassed("localhost", "localhost:443"));
    // IP addresses and CIDR
    assert!(bypassed("127.0.0.1:8443", "127.0.0.1"));
    assert!(bypassed("10.1.2.3", "10.0.0.0/8"));
    assert!(!bypassed("11.1.2.3", "10.0.0.0/8"));
    assert!(bypassed("[fd00::5]", "fd00::/16"));
    assert!(bypassed("[fd00::5]", "[fd00::5]"));
    assert!(bypassed("[fd00::5]:8443", "[fd00::5]:8443"));
    assert!(!bypassed("[fd00::5]", "fd01::/16"));
    // CIDR never matches names (no DNS lookups)
    assert!(!bypassed("localhost", "127.0.0.0/8"));
    // lower-case variable and empty entries
    assert!(proxy_for(
        KINESIS,
        &[
            ("HTTPS_PROXY", "http://p:1"),
            ("no_proxy", ",,amazonaws.com,")
        ]
    )
    .is_none());
    assert!(!bypassed(KINESIS, ""));
}

#[test]
fn no_proxy_applies_to_http_targets_too() {
    assert!(bypassed("http://localhost:4566", "localhost"));
    assert!(!bypassed("http://localhost:4566", "example.com"));
}
