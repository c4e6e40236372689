//! Endpoints: the `endpoint`/`sts_endpoint` URL forms of spec §8, the default endpoint per
//! partition, the `Host` header rule of §5, and proxy URLs (`proxy` key, `HTTPS_PROXY` & co).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The forms accepted by [`Endpoint::parse`], quoted in every parse error.
const ENDPOINT_FORMS: &str =
    "expected host, host:port, [ipv6], [ipv6]:port, https://host[:port] or http://host[:port]";

/// The forms accepted by [`ProxyUrl::parse`], quoted in every parse error.
const PROXY_FORMS: &str =
    "expected http://[user:password@]host:port or https://[user:password@]host:port";

/// URL scheme of an endpoint or proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 for http, 443 for https.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint or proxy value was rejected. Every message quotes the value and says which
/// forms are accepted; the caller prefixes the key name (`endpoint`, `sts_endpoint`, `proxy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the value is empty; {forms}")]
    Empty { forms: &'static str },
    #[error("'{value}': unsupported scheme '{scheme}://'; {forms}")]
    UnsupportedScheme {
        value: String,
        scheme: String,
        forms: &'static str,
    },
    #[error("'{value}': user info ('user@') is not allowed here; {forms}")]
    UserInfo { value: String, forms: &'static str },
    #[error("'{value}': a path is not allowed (only one trailing '/'); {forms}")]
    Path { value: String, forms: &'static str },
    #[error("'{value}': a query ('?…') is not allowed; {forms}")]
    Query { value: String, forms: &'static str },
    #[error("'{value}': a fragment ('#…') is not allowed; {forms}")]
    Fragment { value: String, forms: &'static str },
    #[error("'{value}': no host name; {forms}")]
    MissingHost { value: String, forms: &'static str },
    #[error(
        "'{value}': invalid host name '{host}' (letters, digits, '-', '_' and '.' only); {forms}"
    )]
    InvalidHost {
        value: String,
        host: String,
        forms: &'static str,
    },
    #[error("'{value}': '{host}' is not a valid IPv6 address; {forms}")]
    InvalidIpv6 {
        value: String,
        host: String,
        forms: &'static str,
    },
    #[error(
        "'{value}': an IPv6 address must be written in brackets, as [{value}] or [{value}]:port"
    )]
    UnbracketedIpv6 { value: String },
    #[error("'{value}': invalid port '{port}', must be a number between 1 and 65535; {forms}")]
    InvalidPort {
        value: String,
        port: String,
        forms: &'static str,
    },
    #[error("'{value}': a proxy URL needs a port; {forms}")]
    MissingPort { value: String, forms: &'static str },
    #[error(
        "'{value}' names port {in_value} but the 'port' key is {port_key}; remove one of them or make them equal"
    )]
    PortConflict {
        value: String,
        in_value: u16,
        port_key: u16,
    },
    #[error("'{value}': invalid percent-encoding in the user name or password; {forms}")]
    BadPercentEncoding { value: String, forms: &'static str },
    #[error("environment variable {var}: {source}")]
    Env {
        var: String,
        #[source]
        source: Box<EndpointError>,
    },
}

/// Where requests go: scheme, host (IPv6 without brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address; IPv6 addresses without brackets.
    pub host: String,
    pub port: u16,
}

/// The pieces of a URL-ish value common to endpoints and proxies.
struct Parts<'a> {
    scheme: Option<Scheme>,
    userinfo: Option<&'a str>,
    host: String,
    port: Option<u16>,
}

/// Split `value` into scheme, user info, host and port. `allow_userinfo` is only for proxies.
fn split<'a>(
    value: &'a str,
    forms: &'static str,
    allow_userinfo: bool,
) -> Result<Parts<'a>, EndpointError> {
    let s = value.trim();
    let shown = if allow_userinfo {
        mask_password(s)
    } else {
        s.to_string()
    };
    let owned = || shown.clone();
    if s.is_empty() {
        return Err(EndpointError::Empty { forms });
    }
    let (scheme, rest) = match s.find("://") {
        Some(i) => {
            let name = &s[..i];
            let scheme = if name.eq_ignore_ascii_case("https") {
                Scheme::Https
            } else if name.eq_ignore_ascii_case("http") {
                Scheme::Http
            } else {
                return Err(EndpointError::UnsupportedScheme {
                    value: owned(),
                    scheme: name.to_string(),
                    forms,
                });
            };
            (Some(scheme), &s[i + 3..])
        }
        None => (None, s),
    };
    // Authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        let t = tail.strip_prefix('/').unwrap_or(tail);
        return Err(if t.starts_with('?') {
            EndpointError::Query {
                value: owned(),
                forms,
            }
        } else if t.starts_with('#') {
            EndpointError::Fragment {
                value: owned(),
                forms,
            }
        } else {
            EndpointError::Path {
                value: owned(),
                forms,
            }
        });
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) if allow_userinfo => (Some(&authority[..i]), &authority[i + 1..]),
        Some(_) => {
            return Err(EndpointError::UserInfo {
                value: owned(),
                forms,
            })
        }
        None => (None, authority),
    };
    let (host, port_str) = if let Some(after_bracket) = hostport.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return Err(EndpointError::InvalidIpv6 {
                value: owned(),
                host: hostport.to_string(),
                forms,
            });
        };
        let inner = &after_bracket[..close];
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(EndpointError::InvalidIpv6 {
                value: owned(),
                host: inner.to_string(),
                forms,
            });
        }
        let after = &after_bracket[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(EndpointError::InvalidHost {
                    value: owned(),
                    host: hostport.to_string(),
                    forms,
                })
            }
        };
        (inner.to_ascii_lowercase(), port)
    } else {
        match hostport.matches(':').count() {
            0 => (hostport.to_string(), None),
            1 => {
                let (h, p) = hostport.split_once(':').expect("one colon");
                (h.to_string(), Some(p))
            }
            _ => {
                return Err(EndpointError::UnbracketedIpv6 {
                    value: hostport.to_string(),
                })
            }
        }
    };
    if host.is_empty() {
        return Err(EndpointError::MissingHost {
            value: owned(),
            forms,
        });
    }
    if !host.contains(':')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(EndpointError::InvalidHost {
            value: owned(),
            host,
            forms,
        });
    }
    let port = match port_str {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                return Err(EndpointError::InvalidPort {
                    value: owned(),
                    port: p.to_string(),
                    forms,
                })
            }
        },
    };
    Ok(Parts {
        scheme,
        userinfo,
        host,
        port,
    })
}

/// `value` with the password of its user info replaced by `****` (for error messages).
fn mask_password(value: &str) -> String {
    let start = value.find("://").map_or(0, |i| i + 3);
    let rest = &value[start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else {
        return value.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:****{}", &value[..start], &rest[..colon], &rest[at..]),
        None => value.to_string(),
    }
}

/// `host`, or `[host]` for IPv6 addresses.
fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl Endpoint {
    /// Parse an `endpoint`/`sts_endpoint`-style value: bare host, `host:port`, `[v6]`,
    /// `[v6]:port`, `https://host[:port]`, `http://host[:port]`; one trailing `/` tolerated; any
    /// other path, query, fragment or user info is an error.
    ///
    /// `port_key` is the `port` key if the user set it (pass `None` when unset, not its default):
    /// it applies when the value names no port; a port in the value that differs from it is an
    /// error. Default ports: 443 for bare and `https://` values, 80 for `http://`.
    pub fn parse(s: &str, port_key: Option<u16>) -> Result<Endpoint, EndpointError> {
        let parts = split(s, ENDPOINT_FORMS, false)?;
        let scheme = parts.scheme.unwrap_or(Scheme::Https);
        let port = match (parts.port, port_key) {
            (Some(p), Some(k)) if p != k => {
                return Err(EndpointError::PortConflict {
                    value: s.trim().to_string(),
                    in_value: p,
                    port_key: k,
                })
            }
            (Some(p), _) => p,
            (None, Some(k)) => k,
            (None, None) => scheme.default_port(),
        };
        Ok(Endpoint {
            scheme,
            host: parts.host,
            port,
        })
    }

    /// The regional default `<service>.<region>.<suffix>` over https, with the partition suffix
    /// of [`dns_suffix`]; port 443 unless `port_key` is set.
    pub fn default_for(service: &str, region: &str, port_key: Option<u16>) -> Endpoint {
        Endpoint {
            scheme: Scheme::Https,
            host: format!("{service}.{region}.{}", dns_suffix(region)),
            port: port_key.unwrap_or(443),
        }
    }

    /// The `Host` header value: `host`, or `host:port` unless the port is the scheme's default
    /// (443 for https, 80 for http); IPv6 addresses in brackets.
    pub fn host_header(&self) -> String {
        let host = bracketed(&self.host);
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `scheme://host[:port]` (port omitted when it is the scheme's default), for logs and for
    /// an SDK `endpoint_url`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host_header())
    }

    /// `host:port` with IPv6 in brackets (for error messages and CONNECT).
    pub fn host_port(&self) -> String {
        format!("{}:{}", bracketed(&self.host), self.port)
    }

    /// True for https endpoints.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// The DNS suffix of the partition `region` belongs to (spec §8).
pub fn dns_suffix(region: &str) -> &'static str {
    // Most specific prefixes first: `us-isob-`/`us-isof-` also start with `us-iso`.
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("eusc-") {
        "amazonaws.eu"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-isof-") {
        "csp.hci.ic.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else if region.starts_with("eu-isoe-") {
        "cloud.adc-e.uk"
    } else {
        "amazonaws.com"
    }
}

/// A proxy: `http://[user:password@]host:port` or `https://…`. `Display` and `Debug` mask the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: Scheme,
    /// Host name or IP address; IPv6 addresses without brackets.
    pub host: String,
    pub port: u16,
    /// Percent-decoded user name.
    pub username: Option<String>,
    /// Percent-decoded password.
    pub password: Option<String>,
}

impl ProxyUrl {
    /// Parse a proxy URL. The scheme defaults to `http://` when missing; the port is required
    /// (`host:port`). User name and password are percent-decoded. One trailing `/` is tolerated.
    pub fn parse(s: &str) -> Result<ProxyUrl, EndpointError> {
        let parts = split(s, PROXY_FORMS, true)?;
        let value = || mask_password(s.trim());
        let scheme = parts.scheme.unwrap_or(Scheme::Http);
        let Some(port) = parts.port else {
            return Err(EndpointError::MissingPort {
                value: value(),
                forms: PROXY_FORMS,
            });
        };
        let (username, password) = match parts.userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let dec = |x: &str| {
                    percent_decode(x).ok_or_else(|| EndpointError::BadPercentEncoding {
                        value: value(),
                        forms: PROXY_FORMS,
                    })
                };
                let u = dec(u)?;
                let p = p.map(dec).transpose()?;
                if u.is_empty() && p.is_none() {
                    (None, None)
                } else {
                    (Some(u), p)
                }
            }
        };
        Ok(ProxyUrl {
            scheme,
            host: parts.host,
            port,
            username,
            password,
        })
    }

    /// `host:port` with IPv6 in brackets.
    pub fn host_port(&self) -> String {
        format!("{}:{}", bracketed(&self.host), self.port)
    }

    /// True when the proxy itself is reached over TLS (`https://`).
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// The proxy as an [`Endpoint`] (the first hop).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.username {
            f.write_str(u)?;
            if self.password.is_some() {
                f.write_str(":****")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host_port())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish()
    }
}

/// Decode `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac").as_deref(), Some("a@b:c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None); // not UTF-8
    }

    #[test]
    fn password_masking() {
        assert_eq!(mask_password("http://u:pw@h:1"), "http://u:****@h:1");
        assert_eq!(mask_password("u:p@w@h:1/x"), "u:****@h:1/x");
        assert_eq!(mask_password("http://u@h:1"), "http://u@h:1");
        assert_eq!(mask_password("http://h:1/a@b"), "http://h:1/a@b");
    }

    #[test]
    fn suffix_prefixes_are_not_confused() {
        assert_eq!(dns_suffix("us-isob-east-1"), "sc2s.sgov.gov");
        assert_eq!(dns_suffix("us-iso-east-1"), "c2s.ic.gov");
        assert_eq!(dns_suffix("us-isof-south-1"), "csp.hci.ic.gov");
        assert_eq!(dns_suffix("us-east-1"), "amazonaws.com");
    }
}
