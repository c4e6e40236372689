//! Endpoint forms of spec §8, the `port` key rules, default endpoints per partition, the Host
//! header rule of §5, and proxy URLs.

use kb_aws::endpoint::{dns_suffix, Endpoint, EndpointError, ProxyUrl, Scheme};

fn ok(s: &str, port_key: Option<u16>) -> (Scheme, String, u16) {
    let e = Endpoint::parse(s, port_key).unwrap_or_else(|e| panic!("{s}: {e}"));
    (e.scheme, e.host, e.port)
}

fn err(s: &str, port_key: Option<u16>) -> EndpointError {
    match Endpoint::parse(s, port_key) {
        Ok(e) => panic!("{s} parsed as {e:?}"),
        Err(e) => e,
    }
}

use Scheme::{Http, Https};

#[test]
fn valid_forms() {
    let cases: &[(&str, Scheme, &str, u16)] = &[
        ("kinesis.local", Https, "kinesis.local", 443),
        ("kinesis.local:4567", Https, "kinesis.local", 4567),
        ("kinesis.local/", Https, "kinesis.local", 443),
        ("127.0.0.1", Https, "127.0.0.1", 443),
        ("127.0.0.1:8443", Https, "127.0.0.1", 8443),
        ("[::1]", Https, "::1", 443),
        ("[::1]:8443", Https, "::1", 8443),
        ("[FD00::1]/", Https, "fd00::1", 443),
        ("https://kinesis.local", Https, "kinesis.local", 443),
        ("https://kinesis.local:8443", Https, "kinesis.local", 8443),
        ("https://kinesis.local/", Https, "kinesis.local", 443),
        ("HTTPS://kinesis.local", Https, "kinesis.local", 443),
        ("https://[::1]:8443/", Https, "::1", 8443),
        ("http://localhost", Http, "localhost", 80),
        ("http://localhost:4566", Http, "localhost", 4566),
        ("http://localhost:4566/", Http, "localhost", 4566),
        ("http://[::1]", Http, "::1", 80),
        ("  http://localhost:4566  ", Http, "localhost", 4566),
        (
            "vpce-0123-abcd.kinesis.us-east-1.vpce.amazonaws.com",
            Https,
            "vpce-0123-abcd.kinesis.us-east-1.vpce.amazonaws.com",
            443,
        ),
        ("my_host.internal", Https, "my_host.internal", 443),
    ];
    for (s, scheme, host, port) in cases {
        assert_eq!(ok(s, None), (*scheme, host.to_string(), *port), "{s}");
    }
}

#[test]
fn port_key_rules() {
    // Applies when the endpoint names no port.
    assert_eq!(ok("kinesis.local", Some(8443)).2, 8443);
    assert_eq!(ok("https://kinesis.local", Some(8443)).2, 8443);
    assert_eq!(ok("http://localhost", Some(4566)).2, 4566);
    assert_eq!(ok("[::1]", Some(9000)).2, 9000);
    // Same port in both: fine.
    assert_eq!(ok("kinesis.local:8443", Some(8443)).2, 8443);
    assert_eq!(ok("http://localhost:4566", Some(4566)).2, 4566);
    // Different: error naming both.
    let e = err("kinesis.local:8443", Some(443));
    assert_eq!(
        e,
        EndpointError::PortConflict {
            value: "kinesis.local:8443".into(),
            in_value: 8443,
            port_key: 443
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("8443") && msg.contains("'port' key is 443"),
        "{msg}"
    );
    assert!(matches!(
        err("http://localhost:4566", Some(80)),
        EndpointError::PortConflict { .. }
    ));
    assert!(matches!(
        err("[::1]:1", Some(2)),
        EndpointError::PortConflict { .. }
    ));
}

#[test]
fn invalid_forms() {
    use EndpointError as E;
    let check = |s: &str, pred: fn(&E) -> bool| {
        let e = err(s, None);
        assert!(pred(&e), "{s}: unexpected {e:?}");
        let msg = e.to_string();
        // Every message quotes the value (except the empty one) and, but for a port
        // conflict or unbracketed IPv6 (which say what to write), the accepted forms.
        if !s.trim().is_empty() {
            assert!(
                msg.contains(s.trim()) || matches!(e, E::UnbracketedIpv6 { .. }),
                "{msg}"
            );
        }
        if !matches!(e, E::UnbracketedIpv6 { .. }) {
            assert!(msg.contains("https://host[:port]"), "{msg}");
        }
    };
    check("", |e| matches!(e, E::Empty { .. }));
    check("   ", |e| matches!(e, E::Empty { .. }));
    check(
        "ftp://host",
        |e| matches!(e, E::UnsupportedScheme { scheme, .. } if scheme == "ftp"),
    );
    check("tcp://host:1", |e| matches!(e, E::UnsupportedScheme { .. }));
    check("https://user@host", |e| matches!(e, E::UserInfo { .. }));
    check("https://user:pw@host", |e| matches!(e, E::UserInfo { .. }));
    check("user@host", |e| matches!(e, E::UserInfo { .. }));
    check("https://host/path", |e| matches!(e, E::Path { .. }));
    check("host/path/", |e| matches!(e, E::Path { .. }));
    check("https://host//", |e| matches!(e, E::Path { .. }));
    check("https://host?x=1", |e| matches!(e, E::Query { .. }));
    check("https://host/?x=1", |e| matches!(e, E::Query { .. }));
    check("https://host#frag", |e| matches!(e, E::Fragment { .. }));
    check("https://host/#frag", |e| matches!(e, E::Fragment { .. }));
    check("https://", |e| matches!(e, E::MissingHost { .. }));
    check(":443", |e| matches!(e, E::MissingHost { .. }));
    check("http:///", |e| matches!(e, E::MissingHost { .. }));
    check("host:", |e| matches!(e, E::InvalidPort { .. }));
    check("host:0", |e| matches!(e, E::InvalidPort { .. }));
    check("host:65536", |e| matches!(e, E::InvalidPort { .. }));
    check("host:abc", |e| matches!(e, E::InvalidPort { .. }));
    check("host:+1", |e| matches!(e, E::InvalidPort { .. }));
    check("https://host:-1", |e| matches!(e, E::InvalidPort { .. }));
    check("ho st", |e| matches!(e, E::InvalidHost { .. }));
    check("héllo.example", |e| matches!(e, E::InvalidHost { .. }));
    check("::1", |e| matches!(e, E::UnbracketedIpv6 { .. }));
    check("fd00::1:443", |e| matches!(e, E::UnbracketedIpv6 { .. }));
    check("[::1", |e| matches!(e, E::InvalidIpv6 { .. }));
    check("[not-v6]:443", |e| matches!(e, E::InvalidIpv6 { .. }));
    check("[::1]x", |e| matches!(e, E::InvalidHost { .. }));
    check("[::1]:", |e| matches!(e, E::InvalidPort { .. }));
}

#[test]
fn unbracketed_ipv6_says_how_to_write_it() {
    let msg = err("fd00::1", None).to_string();
    assert!(msg.contains("[fd00::1]"), "{msg}");
}

#[test]
fn default_endpoints_per_partition() {
    let cases = [
        ("us-east-1", "kinesis.us-east-1.amazonaws.com"),
        ("eu-west-3", "kinesis.eu-west-3.amazonaws.com"),
        ("us-gov-west-1", "kinesis.us-gov-west-1.amazonaws.com"),
        ("cn-north-1", "kinesis.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "kinesis.cn-northwest-1.amazonaws.com.cn"),
        ("eusc-de-east-1", "kinesis.eusc-de-east-1.amazonaws.eu"),
        ("us-iso-east-1", "kinesis.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", "kinesis.us-isob-east-1.sc2s.sgov.gov"),
        ("us-isof-south-1", "kinesis.us-isof-south-1.csp.hci.ic.gov"),
        ("eu-isoe-west-1", "kinesis.eu-isoe-west-1.cloud.adc-e.uk"),
    ];
    for (region, host) in cases {
        let e = Endpoint::default_for("kinesis", region, None);
        assert_eq!(e.scheme, Https);
        assert_eq!(e.host, host);
        assert_eq!(e.port, 443);
        assert_eq!(e.host_header(), host);
        assert_eq!(e.url(), format!("https://{host}"));
        assert!(e.is_tls());
    }
    let sts = Endpoint::default_for("sts", "cn-north-1", None);
    assert_eq!(sts.host, "sts.cn-north-1.amazonaws.com.cn");
    assert_eq!(dns_suffix("ap-southeast-2"), "amazonaws.com");
    // The port key applies to the default endpoint too.
    let e = Endpoint::default_for("kinesis", "us-east-1", Some(8443));
    assert_eq!(e.port, 8443);
    assert_eq!(e.host_header(), "kinesis.us-east-1.amazonaws.com:8443");
}

#[test]
fn host_header_rule() {
    let hh = |s: &str| Endpoint::parse(s, None).unwrap().host_header();
    assert_eq!(hh("kinesis.local"), "kinesis.local");
    assert_eq!(hh("kinesis.local:443"), "kinesis.local");
    assert_eq!(hh("kinesis.local:80"), "kinesis.local:80");
    assert_eq!(hh("https://kinesis.local:8443"), "kinesis.local:8443");
    assert_eq!(hh("http://localhost"), "localhost");
    assert_eq!(hh("http://localhost:80"), "localhost");
    assert_eq!(hh("http://localhost:443"), "localhost:443");
    assert_eq!(hh("http://localhost:4566"), "localhost:4566");
    assert_eq!(hh("[::1]"), "[::1]");
    assert_eq!(hh("[::1]:8443"), "[::1]:8443");
    assert_eq!(hh("http://[fd00::1]:80"), "[fd00::1]");
    assert_eq!(hh("http://[fd00::1]:81"), "[fd00::1]:81");
}

#[test]
fn url_and_display() {
    let e = Endpoint::parse("kinesis.local", None).unwrap();
    assert_eq!(e.url(), "https://kinesis.local");
    assert_eq!(e.to_string(), "https://kinesis.local");
    assert_eq!(e.host_port(), "kinesis.local:443");
    let e = Endpoint::parse("http://[::1]:4566/", None).unwrap();
    assert_eq!(e.url(), "http://[::1]:4566");
    assert_eq!(e.host_port(), "[::1]:4566");
    assert!(!e.is_tls());
    assert_eq!(e.ip(), Some("::1".parse().unwrap()));
}

#[test]
fn proxy_urls() {
    let p = ProxyUrl::parse("http://proxy.corp:3128").unwrap();
    assert_eq!(
        (p.scheme, p.host.as_str(), p.port),
        (Http, "proxy.corp", 3128)
    );
    assert_eq!((p.username.clone(), p.password.clone()), (None, None));
    assert_eq!(p.to_string(), "http://proxy.corp:3128");

    let p = ProxyUrl::parse("https://us%40r:p%3Ass%2F@[::1]:8443/").unwrap();
    assert_eq!((p.scheme, p.host.as_str(), p.port), (Https, "::1", 8443));
    assert_eq!(p.username.as_deref(), Some("us@r"));
    assert_eq!(p.password.as_deref(), Some("p:ss/"));
    assert!(p.is_tls());
    assert_eq!(p.host_port(), "[::1]:8443");

    // A bare host:port is an HTTP proxy.
    let p = ProxyUrl::parse("10.0.0.1:3128").unwrap();
    assert_eq!((p.scheme, p.port), (Http, 3128));
    // User without password.
    let p = ProxyUrl::parse("http://alice@proxy:1").unwrap();
    assert_eq!(p.username.as_deref(), Some("alice"));
    assert_eq!(p.password, None);
    assert_eq!(p.to_string(), "http://alice@proxy:1");
}

#[test]
fn proxy_display_and_debug_mask_the_password() {
    let p = ProxyUrl::parse("http://bob:hunter2@proxy.corp:3128").unwrap();
    assert_eq!(p.to_string(), "http://bob:****@proxy.corp:3128");
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("bob"), "{dbg}");
}

#[test]
fn invalid_proxy_urls() {
    use EndpointError as E;
    type Check = fn(&E) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, E::Empty { .. })),
        ("http://proxy", |e| matches!(e, E::MissingPort { .. })),
        ("socks5://proxy:1080", |e| {
            matches!(e, E::UnsupportedScheme { .. })
        }),
        ("http://proxy:3128/path", |e| matches!(e, E::Path { .. })),
        ("http://proxy:3128?x", |e| matches!(e, E::Query { .. })),
        ("http://u:p%zz@proxy:3128", |e| {
            matches!(e, E::BadPercentEncoding { .. })
        }),
        ("http://proxy:99999", |e| matches!(e, E::InvalidPort { .. })),
    ];
    for (s, pred) in cases {
        let e = ProxyUrl::parse(s).unwrap_err();
        assert!(pred(&e), "{s}: {e:?}");
        assert!(
            e.to_string().contains("http://[user:password@]host:port"),
            "{e}"
        );
    }
    // Errors never echo the password.
    let e = ProxyUrl::parse("http://bob:hunter2@proxy:3128/x").unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("bob:****@proxy:3128/x"), "{e}");
}
