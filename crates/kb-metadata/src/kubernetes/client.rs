//! Talking to the API server and the kubelet: the bearer token (re-read when its file
//! changes, after `Kube_Token_TTL`, and after a 401: projected service account tokens
//! rotate), `Buffer_Size`, `Kube_Meta_Preload_Cache_Dir`, and the requests themselves.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use kb_aws::http::HttpClient;
use serde_json::Value;

use crate::http;

/// Where the token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    File(PathBuf),
    /// `Kube_Token_Command`, run with `sh -c`.
    Command(String),
}

struct TokenState {
    value: Option<String>,
    read_at: Option<Instant>,
    mtime: Option<SystemTime>,
}

/// The bearer token, cached.
pub struct Token {
    source: TokenSource,
    ttl: Duration,
    state: Mutex<TokenState>,
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Token {
    pub fn new(source: TokenSource, ttl: Duration) -> Token {
        Token {
            source,
            ttl,
            state: Mutex::new(TokenState {
                value: None,
                read_at: None,
                mtime: None,
            }),
        }
    }

    /// The token (read again when `force`, when its TTL passed or when its file changed);
    /// `None` when there is none (not running in a pod): requests go without one.
    pub fn get(&self, force: bool) -> Option<String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let stale = match (&self.source, s.read_at) {
            (_, None) => true,
            (_, Some(at)) if now.duration_since(at) >= self.ttl => true,
            (TokenSource::File(p), Some(_)) => mtime(p) != s.mtime,
            (TokenSource::Command(_), Some(_)) => false,
        };
        if force || stale {
            let (value, m) = match &self.source {
                TokenSource::File(p) => {
                    let m = mtime(p);
                    match std::fs::read_to_string(p) {
                        Ok(t) => (Some(t.trim().to_string()).filter(|t| !t.is_empty()), m),
                        Err(e) => {
                            tracing::debug!("kubernetes: cannot read {}: {e}", p.display());
                            (None, m)
                        }
                    }
                }
                TokenSource::Command(cmd) => {
                    let out = std::process::Command::new("sh").arg("-c").arg(cmd).output();
                    match out {
                        Ok(o) if o.status.success() => (
                            Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
                                .filter(|t| !t.is_empty()),
                            None,
                        ),
                        Ok(o) => {
                            tracing::warn!("kubernetes: failed to run command {cmd}: {}", o.status);
                            (None, None)
                        }
                        Err(e) => {
                            tracing::warn!("kubernetes: failed to run command {cmd}: {e}");
                            (None, None)
                        }
                    }
                }
            };
            if value != s.value && s.read_at.is_some() {
                tracing::info!("kubernetes: token updated");
            }
            s.value = value;
            s.mtime = m;
            s.read_at = Some(now);
        }
        s.value.clone()
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One metadata source (the API server, or the kubelet) with the token and the size limit.
pub struct Source {
    pub client: HttpClient,
    /// `Buffer_Size` (0: no limit).
    pub buffer_size: usize,
}

impl Source {
    /// `GET path` as JSON; a 401 reads the token again and tries once more.
    pub async fn get_json(&self, path: &str, token: &Token) -> Result<Value, String> {
        for attempt in 0..2 {
            let bearer = token.get(attempt > 0).map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| vec![("authorization", b)])
                .unwrap_or_default();
            let answer = http::get(&self.client, path, &headers).await?;
            if answer.status == 401 && attempt == 0 {
                continue;
            }
            if answer.status != 200 {
                return Err(format!("GET {path}: HTTP {}", answer.status));
            }
            if self.buffer_size > 0 && answer.body.len() > self.buffer_size {
                return Err(format!(
                    "GET {path}: the answer ({} bytes) is larger than Buffer_Size ({} bytes); raise Buffer_Size (0: no limit)",
                    answer.body.len(),
                    self.buffer_size
                ));
            }
            return serde_json::from_slice(&answer.body)
                .map_err(|e| format!("GET {path}: the answer is not JSON: {e}"));
        }
        Err(format!("GET {path}: HTTP 401"))
    }
}

/// `Kube_Meta_Preload_Cache_Dir`: `<dir>/<namespace>_<pod>.meta` for a pod, or
/// `<dir>/<namespace>.namespace_meta` for a namespace, as JSON, if the file is there.
pub fn preloaded(dir: Option<&PathBuf>, namespace: &str, pod: Option<&str>) -> Option<Value> {
    let dir = dir?;
    let file = match pod {
        Some(p) => dir.join(format!("{namespace}_{p}.meta")),
        None => dir.join(format!("{namespace}.namespace_meta")),
    };
    let text = std::fs::read(&file).ok()?;
    match serde_json::from_slice(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("kubernetes: {} is not JSON: {e}", file.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("kube-system"), "kube-system");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_token_follows_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "one\n").unwrap();
        let t = Token::new(TokenSource::File(p.clone()), Duration::from_secs(600));
        assert_eq!(t.get(false).as_deref(), Some("one"));
        // A rotation is a new file (kubelet swaps a symlink); its time differs.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("token.new"), "two").unwrap();
        std::fs::rename(dir.path().join("token.new"), &p).unwrap();
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(1))
            .unwrap();
        assert_eq!(t.get(false).as_deref(), Some("two"));
        let none = Token::new(
            TokenSource::File(dir.path().join("missing")),
            Duration::from_secs(600),
        );
        assert_eq!(none.get(false), None);
    }
}
