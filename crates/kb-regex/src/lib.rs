//! Regular expressions as Fluent Bit compiles them (`flb_regex.c`): Onigmo's Ruby syntax in
//! UTF-8, through Oniguruma (the `onig` crate builds it from its bundled source). A pattern
//! written `/.../` loses its slashes, and `/.../imx` sets ignore-case, Ruby's multiline (`.`
//! matches a newline) and extended mode. As in Ruby, `^` and `$` match at line breaks.
//!
//! Everything users write — parsers, grep, modify conditions, rewrite_tag rules, multiline
//! rules, `Match_Regex` — goes through this one type, so a pattern means the same everywhere
//! and the same as in Fluent Bit: look-around, atomic groups, `\h`, `\K`, possessive
//! quantifiers, named groups, and a literal `{` where it cannot start a repetition.
//!
//! Text that is not valid UTF-8 is matched with each invalid sequence replaced by U+FFFD
//! (Oniguruma's UTF-8 code expects valid input).

use std::borrow::Cow;
use std::cell::RefCell;

use onig::{MatchParam, RegexOptions, Region, SearchOptions, Syntax};

/// A pattern Oniguruma refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression '{pattern}': {reason}")]
pub struct RegexError {
    pub pattern: String,
    pub reason: String,
}

/// A compiled pattern.
pub struct Regex {
    re: onig::Regex,
    source: String,
    /// Named groups in definition order, each with its group numbers.
    names: Vec<(String, Vec<usize>)>,
    /// Set when the pattern is a plain literal (grep's `^stdout$`): `is_match` then
    /// compares bytes instead of entering Oniguruma.
    literal: Option<Literal>,
}

/// A pattern made only of literal ASCII characters, optionally anchored with `^` / `$`.
#[derive(Debug, Clone)]
struct Literal {
    text: Vec<u8>,
    start: bool,
    end: bool,
}

impl Literal {
    /// The literal form of `body`, if it has one. Only characters that are never special in
    /// Ruby syntax qualify, and only without options (`x` would make spaces special).
    fn of(body: &str, options: RegexOptions) -> Option<Literal> {
        if options != RegexOptions::REGEX_OPTION_NONE {
            return None;
        }
        let (start, rest) = match body.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, body),
        };
        let (end, text) = match rest.strip_suffix('$') {
            Some(t) => (true, t),
            None => (false, rest),
        };
        let plain = |b: u8| b.is_ascii_alphanumeric() || b" _-/:,=@%!'\";<>&~".contains(&b);
        (!text.is_empty() && text.bytes().all(plain)).then(|| Literal {
            text: text.as_bytes().to_vec(),
            start,
            end,
        })
    }

    /// Whether the literal matches `text`; `None` when Oniguruma must decide: in Ruby
    /// syntax `^` and `$` match at every line, so anchored literals take only one-line text.
    fn is_match(&self, text: &[u8]) -> Option<bool> {
        let t = &self.text[..];
        match (self.start, self.end) {
            (false, false) => Some(memchr::memmem::find(text, t).is_some()),
            _ if memchr::memchr(b'\n', text).is_some() => None,
            (true, true) => Some(text == t),
            (true, false) => Some(text.starts_with(t)),
            (false, true) => Some(text.ends_with(t)),
        }
    }
}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

impl Clone for Regex {
    fn clone(&self) -> Self {
        // The pattern compiled before; it compiles again.
        Regex::new(&self.source).expect("a pattern that compiled once compiles again")
    }
}

/// Where the groups of a match are, as byte ranges of the text matched.
#[derive(Debug, Default, Clone)]
pub struct Captures {
    groups: Vec<Option<(usize, usize)>>,
}

impl Captures {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The range of group `i` (0: the whole match), when it took part.
    pub fn get(&self, i: usize) -> Option<(usize, usize)> {
        self.groups.get(i).copied().flatten()
    }

    /// Number of groups, the whole match included.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

thread_local! {
    /// One match region per thread, reused: Oniguruma allocates it.
    static REGION: RefCell<Region> = RefCell::new(Region::new());
}

/// Split Fluent Bit's `/pattern/options` form: the pattern and Oniguruma's options.
fn split_options(pattern: &str) -> (&str, RegexOptions) {
    let none = RegexOptions::REGEX_OPTION_NONE;
    let Some(rest) = pattern.strip_prefix('/') else {
        return (pattern, none);
    };
    let Some(last) = rest.rfind('/') else {
        return (pattern, none);
    };
    let (body, flags) = (&rest[..last], &rest[last + 1..]);
    let mut opts = none;
    for c in flags.chars() {
        opts |= match c {
            'm' => RegexOptions::REGEX_OPTION_MULTILINE,
            'i' => RegexOptions::REGEX_OPTION_IGNORECASE,
            'x' => RegexOptions::REGEX_OPTION_EXTEND,
            'o' => none,
            // Fluent Bit then takes the whole text as the pattern, slashes and all.
            _ => return (pattern, none),
        };
    }
    (body, opts)
}

/// The text to give Oniguruma: `text` itself when it is valid UTF-8.
fn utf8(text: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(text) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(String::from_utf8_lossy(text).into_owned()),
    }
}

fn bytes(text: Cow<'_, str>) -> Cow<'_, [u8]> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

impl Regex {
    /// Compile a pattern the way Fluent Bit does.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let (body, options) = split_options(pattern);
        let re =
            onig::Regex::with_options(body, options, Syntax::ruby()).map_err(|e| RegexError {
                pattern: pattern.to_string(),
                reason: e.description().to_string(),
            })?;
        let mut names: Vec<(String, Vec<usize>)> = Vec::new();
        re.foreach_name(|name, groups| {
            names.push((
                name.to_string(),
                groups.iter().map(|g| *g as usize).collect::<Vec<usize>>(),
            ));
            true
        });
        // Oniguruma walks its name table in no set order: definition order is the order of
        // the groups' first numbers.
        names.sort_by_key(|(_, g)| g.first().copied().unwrap_or(0));
        Ok(Regex {
            re,
            source: pattern.to_string(),
            names,
            literal: Literal::of(body, options),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Named groups in definition order, each with its group numbers.
    pub fn names(&self) -> &[(String, Vec<usize>)] {
        &self.names
    }

    /// Number of groups, the whole match included.
    pub fn groups_len(&self) -> usize {
        self.re.captures_len() + 1
    }

    fn search(&self, text: &str, region: Option<&mut Region>) -> bool {
        // A match that hits Oniguruma's retry limit counts as no match.
        matches!(
            self.re.search_with_param(
                text,
                0,
                text.len(),
                SearchOptions::SEARCH_OPTION_NONE,
                region,
                MatchParam::default(),
            ),
            Ok(Some(_))
        )
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        // An ASCII literal matches the raw bytes exactly where it matches their UTF-8-lossy
        // form: replacement only touches non-ASCII sequences.
        if let Some(m) = self.literal.as_ref().and_then(|l| l.is_match(text)) {
            return m;
        }
        let text = utf8(text);
        self.search(&text, None)
    }

    /// Search `text`; on a match, fill `caps` with the groups' ranges and return the text they
    /// index (`text` itself unless it had to be made valid UTF-8).
    pub fn captures<'t>(&self, text: &'t [u8], caps: &mut Captures) -> Option<Cow<'t, [u8]>> {
        let text = utf8(text);
        caps.groups.clear();
        let found = REGION.with(|r| {
            let mut region = r.borrow_mut();
            region.clear();
            if !self.search(&text, Some(&mut region)) {
                return false;
            }
            caps.groups.extend((0..region.len()).map(|i| region.pos(i)));
            true
        });
        found.then(|| bytes(text))
    }

    /// The first match's range.
    pub fn find(&self, text: &[u8]) -> Option<(usize, usize)> {
        let mut caps = Captures::new();
        self.captures(text, &mut caps)?;
        caps.get(0)
    }

    /// The value of named group `name` in a match (its last group that took part).
    pub fn named<'c>(&self, name: &str, caps: &Captures, text: &'c [u8]) -> Option<&'c [u8]> {
        let (_, groups) = self.names.iter().find(|(n, _)| n == name)?;
        groups
            .iter()
            .rev()
            .find_map(|g| caps.get(*g))
            .map(|(s, e)| &text[s..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_as_oniguruma_matches() {
        let patterns = [
            "^stdout$",
            "stdout",
            "^std",
            "out$",
            "a b",
            "^x-y:z$",
            "st.out",
            "^$",
            "/^stdout$/i",
        ];
        let texts: [&[u8]; 10] = [
            b"stdout",
            b"stderr",
            b"xstdout",
            b"stdoutx",
            b"a\nstdout",
            b"stdout\n",
            b"",
            b"std\xffout",
            b"stdout\xff",
            b"STDOUT",
        ];
        for p in patterns {
            let re = Regex::new(p).unwrap();
            for t in texts {
                let onig = re.search(&utf8(t), None);
                assert_eq!(
                    re.is_match(t),
                    onig,
                    "{p} on {:?}",
                    String::from_utf8_lossy(t)
                );
            }
        }
        assert!(Regex::new("^stdout$").unwrap().literal.is_some());
        assert!(Regex::new("st.out").unwrap().literal.is_none());
        assert!(Regex::new("/stdout/i").unwrap().literal.is_none());
    }

    fn caps(re: &Regex, text: &str) -> Vec<(String, String)> {
        let mut c = Captures::new();
        let t = re.captures(text.as_bytes(), &mut c).expect("a match");
        re.names()
            .iter()
            .map(|(n, _)| {
                let v = re.named(n, &c, &t).unwrap_or(b"");
                (n.clone(), String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    #[test]
    fn container_insights_firstline_parsers_compile_and_capture() {
        // amazon-cloudwatch-container-insights parsers.conf: look-ahead the regex crate lacks.
        let re = Regex::new(r#"/^(?<log>(?:(?!\d{4}-\d{2}-\d{2}).)*$)/"#);
        assert!(re.is_ok(), "{re:?}");
        let re = Regex::new(
            r#"^(?<log>(?<timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z) \[(?<level>[A-Z]+)\] (?<message>.*))"#,
        )
        .unwrap();
        assert_eq!(
            caps(&re, "2024-01-02T03:04:05Z [INFO] hello there"),
            [
                ("log", "2024-01-02T03:04:05Z [INFO] hello there"),
                ("timestamp", "2024-01-02T03:04:05Z"),
                ("level", "INFO"),
                ("message", "hello there"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_literal_brace_is_a_brace() {
        let re = Regex::new(r#"^{name=\"(?<name>[^"]*)\""#).unwrap();
        assert_eq!(
            caps(&re, r#"{name="web", x=1}"#),
            [("name".to_string(), "web".to_string())]
        );
    }

    #[test]
    fn slashes_and_options_as_fluent_bit_reads_them() {
        let re = Regex::new("/^hello$/i").unwrap();
        assert!(re.is_match(b"HeLLo"));
        let re = Regex::new("/a.b/m").unwrap();
        assert!(re.is_match(b"a\nb"));
        let re = Regex::new("/a.b/").unwrap();
        assert!(!re.is_match(b"a\nb"));
        // Unknown option letters: the whole text is the pattern.
        let re = Regex::new("/x/q").unwrap();
        assert!(re.is_match(b"/x/q"));
        assert!(!re.is_match(b"x"));
    }

    #[test]
    fn ruby_anchors_and_escapes() {
        // `$` and `^` match at line breaks, `\h` is a hex digit, `\A`/`\z` are the text's ends.
        assert!(Regex::new("^b$").unwrap().is_match(b"a\nb\nc"));
        assert!(!Regex::new(r"\Ab\z").unwrap().is_match(b"a\nb"));
        assert!(Regex::new(r"^\h+$").unwrap().is_match(b"deadBEEF"));
        assert!(Regex::new(r"(?<=foo)bar").unwrap().is_match(b"foobar"));
        assert!(Regex::new(r"a++b").unwrap().is_match(b"aab"));
    }

    #[test]
    fn invalid_patterns_and_text() {
        let e = Regex::new("(unclosed").unwrap_err();
        assert!(e.to_string().contains("(unclosed"), "{e}");
        let re = Regex::new("(?<v>b.d)").unwrap();
        let mut c = Captures::new();
        let t = re.captures(b"a b\xffd", &mut c).unwrap();
        assert_eq!(re.named("v", &c, &t), Some("b\u{fffd}d".as_bytes()));
        assert!(re.find(b"xyz").is_none());
    }

    #[test]
    fn groups_in_definition_order_and_unmatched_ones() {
        let re = Regex::new(r"(?<z>\d+)(?<a>x)?(?<m>y)").unwrap();
        let names: Vec<&str> = re.names().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
        let mut c = Captures::new();
        let t = re.captures(b"12y", &mut c).unwrap();
        assert_eq!(re.named("a", &c, &t), None);
        assert_eq!(re.named("m", &c, &t), Some(&b"y"[..]));
    }
}
