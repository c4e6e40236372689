//! Parser section validation: every error names where it was written and which key.

use kb_config::{parse_classic_str, parse_yaml_str, ConfigError, Env};
use kb_parsers::{parse_types, FieldType, ParserRegistry};
use std::collections::HashMap;
use std::path::Path;

fn errors(text: &str) -> Vec<String> {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    let errs: Vec<ConfigError> = ParserRegistry::from_sections(&pc.parsers).unwrap_err();
    errs.iter().map(|e| e.to_string()).collect()
}

#[test]
fn unknown_format() {
    assert_eq!(
        errors("[PARSER]\n    Name x\n    Format csv\n"),
        ["parsers.conf:3: parser 'x': 'format': unknown format 'csv' (expected json, regex, logfmt or ltsv)"]
    );
}

#[test]
fn missing_name_format_regex() {
    assert_eq!(
        errors("[PARSER]\n    Format json\n"),
        ["parsers.conf:1: parser section without 'name'"]
    );
    assert_eq!(
        errors("[PARSER]\n    Name x\n"),
        ["parsers.conf:1: parser 'x': 'format' is not set"]
    );
    assert_eq!(
        errors("[PARSER]\n    Name x\n    Format regex\n"),
        ["parsers.conf:1: parser 'x': 'regex' is required with format regex"]
    );
}

#[test]
fn bad_regex_explains() {
    // Oniguruma's own message, as Fluent Bit would report it.
    let e = errors("[PARSER]\n    Name x\n    Format regex\n    Regex ^(?<a>[a-\n");
    assert_eq!(
        e,
        ["parsers.conf:4: parser 'x': 'regex': invalid regex: premature end of char-class"]
    );
}

#[test]
fn regex_without_named_groups() {
    assert_eq!(
        errors("[PARSER]\n    Name x\n    Format regex\n    Regex ^(\\d+) (.*)$\n"),
        ["parsers.conf:4: parser 'x': 'regex': the regex has no named capture group such as (?<name>...)"]
    );
}

#[test]
fn bad_types() {
    assert_eq!(
        errors("[PARSER]\n    Name x\n    Format ltsv\n    Types a:integer b:number\n"),
        ["parsers.conf:4: parser 'x': 'types': unknown type 'number' for 'b' (expected integer, float, hex, bool or string)"]
    );
    assert_eq!(
        errors("[PARSER]\n    Name x\n    Format ltsv\n    Types a\n"),
        ["parsers.conf:4: parser 'x': 'types': 'a' is not 'key:type'"]
    );
    assert_eq!(
        parse_types("a:integer B:Bool c:FLOAT d:hex e:string").unwrap(),
        [
            ("a".to_string(), FieldType::Integer),
            ("B".to_string(), FieldType::Bool),
            ("c".to_string(), FieldType::Float),
            ("d".to_string(), FieldType::Hex),
            ("e".to_string(), FieldType::String),
        ]
    );
}

#[test]
fn unknown_key_and_bad_values() {
    let e = errors(
        "[PARSER]\n    Name x\n    Format json\n    Tiem_Key t\n    Time_Keep maybe\n    Time_Offset 0200\n    Time_Format %Y %Q\n",
    );
    assert_eq!(
        e,
        [
            "parsers.conf:4: parser 'x': 'tiem_key': unknown key",
            "parsers.conf:5: parser 'x': 'time_keep': invalid boolean 'maybe'",
            "parsers.conf:6: parser 'x': 'time_offset': invalid offset '0200' (expected +HHMM or -HHMM)",
            "parsers.conf:7: parser 'x': 'time_format': unsupported conversion '%Q'",
        ]
    );
}

#[test]
fn duplicate_names() {
    let e = errors(
        "[PARSER]\n    Name x\n    Format json\n\n[PARSER]\n    Name x\n    Format logfmt\n",
    );
    assert_eq!(
        e,
        ["parsers.conf:6: 'name': parser 'x' is already defined at parsers.conf:2"]
    );
}

#[test]
fn all_errors_are_reported() {
    let e = errors(
        "[PARSER]\n    Name a\n    Format xml\n\n[PARSER]\n    Name b\n    Format regex\n    Regex (\n",
    );
    assert_eq!(e.len(), 2);
    assert!(e[0].starts_with("parsers.conf:3: parser 'a'"));
    assert!(e[1].starts_with("parsers.conf:8: parser 'b': 'regex'"));
}

#[test]
fn yaml_parsers_section() {
    let text = r#"
parsers:
  - name: apache_error
    format: regex
    regex: '^\[[^ ]* (?<time>[^\]]*)\] \[(?<level>[^\]]*)\](?: \[pid (?<pid>[^\]]*)\])?( \[client (?<client>[^\]]*)\])? (?<message>.*)$'
  - name: bad
    format: regex
    regex: '(?<a>x'
"#;
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_yaml_str(text, Path::new("fluent-bit.yaml"), &mut env).unwrap();
    let e = ParserRegistry::from_sections(&pc.parsers).unwrap_err();
    assert_eq!(e.len(), 1);
    let msg = e[0].to_string();
    assert!(msg.starts_with("fluent-bit.yaml: "), "{msg}");
    assert!(
        msg.contains("parser 'bad': 'regex': invalid regex"),
        "{msg}"
    );

    let ok = &pc.parsers[..1];
    let reg = ParserRegistry::from_sections(ok).unwrap();
    assert!(reg.get("apache_error").is_some());
}
