//! `[MULTILINE_PARSER]` sections and YAML `multiline_parsers:`: what loads, and errors that
//! name file, line (or YAML path) and key.

use std::collections::HashMap;
use std::path::Path;

use kb_config::{parse_classic_str, parse_yaml_str, Env};
use kb_parsers::Parsers;

fn load(text: &str) -> Result<Parsers, Vec<String>> {
    let mut env = Env::from_map(HashMap::new());
    let pc = if text.trim_start().starts_with('[') {
        parse_classic_str(text, Path::new("parsers.conf"), &mut env)
    } else {
        parse_yaml_str(text, Path::new("parsers.yaml"), &mut env)
    }
    .unwrap();
    Parsers::from_sections(&pc.parsers, &pc.multiline_parsers)
        .map(|(p, _)| p)
        .map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

#[test]
fn a_valid_parser_with_every_key() {
    let p = load(
        r#"
[PARSER]
    Name   first
    Format regex
    Regex  ^(?<time>\S+) (?<log>.*)$

[MULTILINE_PARSER]
    name          multiline-regex-test
    type          regex
    flush_timeout 1000
    parser        first
    key_content   log
    # a comment between rules
    rule      "start_state, again"   "/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
    rule      "cont"          "/^\s+at.*/"                     "cont"

[MULTILINE_PARSER]
    name          ends
    type          endswith
    match_string  \
    negate        on
"#,
    )
    .unwrap();
    let m = p.multiline.get("Multiline-Regex-Test").unwrap();
    assert_eq!(m.flush_ms(), 1000);
    assert_eq!(m.key_content(), Some("log"));
    assert!(p.multiline.get("ends").is_some());
    // The built-ins are there too.
    for b in ["docker", "cri", "go", "python", "java", "ruby"] {
        assert!(p.multiline.get(b).is_some(), "{b}");
    }
}

#[test]
fn errors_name_file_line_and_key() {
    let e = load(
        r#"
[MULTILINE_PARSER]
    name   bad_regex
    type   regex
    rule   "start_state"   "/(unclosed/"  "cont"
    rule   "cont"          "/x/"          "cont"

[MULTILINE_PARSER]
    name   unknown_state
    type   regex
    rule   "start_state"   "/a/"  "nowhere"

[MULTILINE_PARSER]
    name   no_start
    type   regex
    rule   "cont"   "/a/"  "cont"

[MULTILINE_PARSER]
    name   needs_parser
    type   regex
    parser missing
    rule   "start_state"   "/a/"  "start_state"

[MULTILINE_PARSER]
    name   no_type
    rule   "start_state"   "/a/"

[MULTILINE_PARSER]
    name    typo
    type    regex
    flush   1000
    rule    "start_state"
"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        [
            "parsers.conf:5: multiline parser 'bad_regex': 'rule': invalid regex '/(unclosed/': end pattern with unmatched parenthesis",
            "parsers.conf:11: multiline parser 'unknown_state': 'rule': next state 'nowhere' is not the state of any rule",
            "parsers.conf:16: multiline parser 'no_start': 'rule': the first rule must start in 'start_state' (it starts in 'cont')",
            "parsers.conf:21: multiline parser 'needs_parser': 'parser': unknown parser 'missing': define it in a [PARSER] section",
            "parsers.conf:21: multiline parser 'needs_parser': 'parser': 'key_content' is missing: it names the field of the parsed record the rules apply to",
            "parsers.conf:24: multiline parser 'no_type': 'type' is not set (expected regex, endswith or equal)",
            "parsers.conf:31: multiline parser 'typo': 'flush': unknown key",
            "parsers.conf:32: multiline parser 'typo': 'rule': expected \"<state>\" \"<regex>\" \"<next state>\", got '\"start_state\"'",
        ]
    );
}

#[test]
fn yaml_rules_and_their_errors() {
    let p = load(
        r#"
multiline_parsers:
  - name: multiline-regex-test
    type: regex
    flush_timeout: 1000
    rules:
      - state: start_state
        regex: '/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/'
        next_state: cont
      - state: cont
        regex: '/^\s+at "quoted".*/'
        next_state: cont
"#,
    )
    .unwrap();
    assert!(p.multiline.get("multiline-regex-test").is_some());
    let e = load(
        r#"
multiline_parsers:
  - name: y
    type: regex
    rules:
      - state: start_state
        regex: '/a/'
        next_state: cont
      - state: cont
        regex: '/[/'
        next_state: cont
"#,
    )
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "parsers.yaml: multiline_parsers[0].rules[1] (line 9, column 9): multiline parser 'y': 'rule': invalid regex '/[/':"
        ),
        "{e:?}"
    );
}

#[test]
fn duplicates_and_builtin_names() {
    let e = load(
        "[MULTILINE_PARSER]\n    name a\n    type regex\n    rule \"start_state\" \"/a/\"\n[MULTILINE_PARSER]\n    name A\n    type regex\n    rule \"start_state\" \"/b/\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        ["parsers.conf:6: 'name': multiline parser 'A' is already defined at parsers.conf:2"]
    );
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(
        "[MULTILINE_PARSER]\n    name java\n    type regex\n    rule \"start_state\" \"/mine/\"\n",
        Path::new("parsers.conf"),
        &mut env,
    )
    .unwrap();
    let (p, warnings) = Parsers::from_sections(&pc.parsers, &pc.multiline_parsers).unwrap();
    assert_eq!(
        warnings[0].to_string(),
        "parsers.conf:2: multiline parser 'java' has the name of a built-in parser, which Fluent Bit (and kinesis-bit) use instead"
    );
    assert!(p.multiline.get("java").is_some());
}
