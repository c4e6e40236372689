//! Tag routing: `Match` globs (`*` matches any run of characters, case-sensitive) and
//! `Match_Regex` (anchored at the start of the tag only, as Fluent Bit's router does).

/// Decides which tags a filter or output receives.
#[derive(Debug, Clone)]
pub struct TagMatcher {
    glob: Option<String>,
    regex: Option<std::sync::Arc<kb_regex::Regex>>,
}

impl TagMatcher {
    /// Build from `match` and `match_regex` (Fluent Bit's Ruby syntax); either matching routes
    /// the tag. An invalid regex is an error with Oniguruma's explanation.
    pub fn new(glob: Option<&str>, regex: Option<&str>) -> Result<Self, kb_regex::RegexError> {
        let regex = match regex {
            Some(r) => Some(std::sync::Arc::new(kb_regex::Regex::new(&format!(
                "^(?:{r})"
            ))?)),
            None => None,
        };
        Ok(TagMatcher {
            glob: glob.map(str::to_string),
            regex,
        })
    }

    /// Whether neither `match` nor `match_regex` is set (the instance then receives nothing).
    pub fn is_empty(&self) -> bool {
        self.glob.is_none() && self.regex.is_none()
    }

    /// Whether `tag` is routed here.
    pub fn matches(&self, tag: &str) -> bool {
        self.glob.as_deref().is_some_and(|g| glob_match(g, tag))
            || self
                .regex
                .as_ref()
                .is_some_and(|r| r.is_match(tag.as_bytes()))
    }
}

/// Glob match where `*` matches any (possibly empty) run of characters.
pub fn glob_match(pattern: &str, tag: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), tag.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the tag position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything.here"));
        assert!(glob_match("*", ""));
        assert!(glob_match("app.*", "app.web"));
        assert!(!glob_match("app.*", "App.web"));
        assert!(glob_match("*.log", "var.app.log"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("cpu.local", "cpu.local"));
        assert!(!glob_match("cpu", "cpu.local"));
    }

    #[test]
    fn regex_is_anchored_at_start_only() {
        let m = TagMatcher::new(None, Some("app\\.")).unwrap();
        assert!(m.matches("app.web.extra"));
        assert!(!m.matches("myapp.web"));
        let both = TagMatcher::new(Some("x"), Some("y")).unwrap();
        assert!(both.matches("x") && both.matches("yz"));
        assert!(TagMatcher::new(None, None).unwrap().is_empty());
        assert!(TagMatcher::new(None, Some("(")).is_err());
    }
}
