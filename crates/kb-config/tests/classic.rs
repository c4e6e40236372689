//! Classic `.conf` parsing (spec §2).

mod common;

use std::path::Path;

use common::{env, errs, kv, write};
use kb_config::{parse_classic_file, parse_classic_str, Location};

fn parse(text: &str) -> Result<kb_config::PipelineConfig, kb_config::ConfigErrors> {
    parse_classic_str(text, Path::new("a.conf"), &mut env(&[]))
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn sections_keys_and_values() {
    let cfg = parse(
        "[SERVICE]\n    Flush 5\n    Log_Level debug\n\n# comment\n[INPUT]\n    Name dummy\n    Tag  app.*\n\n[filter]\n    Name grep\n    Match *\n[Output]\n    Name  kinesis_streams\n    Match *\n    Stream foo # x\n    # indented comment\n",
    )
    .unwrap();
    let svc: Vec<_> = cfg
        .service
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(svc, [("flush", "5"), ("log_level", "debug")]);
    assert_eq!(
        kv(&cfg.inputs[0]),
        pairs(&[("name", "dummy"), ("tag", "app.*")])
    );
    assert_eq!(cfg.filters.len(), 1);
    // No end-of-line comments: the value keeps "# x".
    assert_eq!(
        kv(&cfg.outputs[0]),
        pairs(&[
            ("name", "kinesis_streams"),
            ("match", "*"),
            ("stream", "foo # x")
        ])
    );
    assert_eq!(cfg.outputs[0].location, Location::classic("a.conf", 13));
    assert_eq!(cfg.outputs[0].props[2].location.to_string(), "a.conf:16");
    assert!(cfg.warnings.is_empty());
}

#[test]
fn tabs_as_separator_and_indent() {
    let cfg = parse("[OUTPUT]\n\tName\tstdout\n\tMatch \t *\n").unwrap();
    assert_eq!(
        kv(&cfg.outputs[0]),
        pairs(&[("name", "stdout"), ("match", "*")])
    );
}

#[test]
fn crlf_line_endings() {
    let cfg = parse("[OUTPUT]\r\n    Name stdout\r\n    Match *\r\n").unwrap();
    assert_eq!(
        kv(&cfg.outputs[0]),
        pairs(&[("name", "stdout"), ("match", "*")])
    );
}

#[test]
fn parser_sections() {
    let cfg = parse(
        "[PARSER]\n    Name json\n    Format json\n[MULTILINE_PARSER]\n    name ml\n    rule \"start\" \"/^a/\" \"cont\"\n",
    )
    .unwrap();
    assert_eq!(cfg.parsers.len(), 1);
    assert_eq!(
        cfg.multiline_parsers[0].props[1].value,
        "\"start\" \"/^a/\" \"cont\""
    );
}

#[test]
fn every_error_is_reported_once_with_file_and_line() {
    let e = errs(parse(
        "    Name x\n[CUSTOM]\n    Name calyptia\n[OUTPUT]\n    Name stdout\n    Stream\n  Match *\n      Tag x\n\t Alias y\n[UPSTREAM]\n@FOO bar\n[OUTPUT\n",
    ));
    assert_eq!(
        e,
        [
            "a.conf:1: property outside of any section",
            "a.conf:2: section [CUSTOM] is not supported by kinesis-bit",
            "a.conf:6: key 'stream' has an empty value",
            "a.conf:7: invalid indentation level",
            "a.conf:8: extra indentation level",
            "a.conf:9: inconsistent use of tab and space",
            "a.conf:10: section [UPSTREAM] is not supported by kinesis-bit",
            "a.conf:11: unknown directive '@FOO'",
            "a.conf:12: invalid section header: missing ']'",
        ]
    );
}

#[test]
fn first_indented_line_fixes_indent() {
    let e = errs(parse(
        "[INPUT]\n  Name dummy\n    Tag x\n[OUTPUT]\n    Name stdout\n",
    ));
    assert_eq!(
        e,
        [
            "a.conf:3: extra indentation level",
            "a.conf:5: extra indentation level"
        ]
    );
    let e = errs(parse("[INPUT]\nName dummy\n"));
    assert_eq!(e, ["a.conf:2: invalid indentation level"]);
}

#[test]
fn set_wins_over_process_env_and_applies_everywhere() {
    let mut e = env(&[("STREAM", "from-process"), ("REGION", "eu-west-1")]);
    let cfg = parse_classic_str(
        "[OUTPUT]\n    Name kinesis_streams\n    Stream ${STREAM}\n    Region ${REGION}\n    Role ${ROLE:-none}\n    Key ${MISSING}\n@SET STREAM=from-set\n",
        Path::new("a.conf"),
        &mut e,
    )
    .unwrap();
    let v: Vec<_> = cfg.outputs[0]
        .props
        .iter()
        .map(|p| p.value.as_str())
        .collect();
    assert_eq!(v, ["kinesis_streams", "from-set", "eu-west-1", "none", ""]);
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(
        cfg.warnings[0].to_string(),
        "a.conf:6: [env] variable ${MISSING} is used but not set"
    );
    // Keys are never substituted.
    let cfg = parse_classic_str("[OUTPUT]\n    ${X} y\n", Path::new("a.conf"), &mut e).unwrap();
    assert_eq!(cfg.outputs[0].props[0].key, "${x}");
}

#[test]
fn set_syntax_errors() {
    assert_eq!(
        errs(parse("@SET NOVALUE\n")),
        ["a.conf:1: invalid @SET: expected @SET KEY=VALUE"]
    );
    assert_eq!(
        errs(parse("[INPUT]\n    @INCLUDE x.conf\n")),
        ["a.conf:2: a directive (@INCLUDE, @SET) must start at column 0"]
    );
}

#[test]
fn includes_with_sorted_globs_and_included_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "conf.d/b.conf", "[OUTPUT]\n    Name b\n");
    write(d, "conf.d/a.conf", "[OUTPUT]\n    Name a\n");
    write(d, "conf.d/c.conf", "[OUTPUT]\n    Name c\n    Bad\n");
    write(d, "in.conf", "[INPUT]\n    Name dummy\n");
    let main = write(
        d,
        "main.conf",
        "[SERVICE]\n    Flush 1\n@INCLUDE in.conf\n@INCLUDE conf.d/*.conf\n",
    );
    let r = parse_classic_file(&main, &mut env(&[]));
    let e = errs(r);
    let c = d.join("conf.d/c.conf");
    assert_eq!(
        e,
        [format!(
            "{}:3 (included from {}:4): key 'bad' has an empty value",
            c.display(),
            main.display()
        )]
    );
    std::fs::remove_file(&c).unwrap();
    let cfg = parse_classic_file(&main, &mut env(&[])).unwrap();
    let names: Vec<_> = cfg.outputs.iter().filter_map(|s| s.plugin_name()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(cfg.inputs[0].plugin_name(), Some("dummy"));
    let Location::Classic { included_from, .. } = &cfg.inputs[0].location else {
        panic!("classic location expected");
    };
    assert_eq!(
        included_from.as_deref(),
        Some(&Location::classic(main.clone(), 3))
    );
}

#[test]
fn include_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "x.conf", "[INPUT]\n    Name dummy\n");
    write(d, "self.conf", "@INCLUDE self.conf\n");
    let main = write(
        d,
        "main.conf",
        "@INCLUDE x.conf\n@INCLUDE x.conf\n@INCLUDE self.conf\n",
    );
    let e = errs(parse_classic_file(&main, &mut env(&[])));
    let x = d.join("x.conf");
    let s = d.join("self.conf");
    assert_eq!(
        e,
        [
            format!(
                "{}:2: file '{}' is included more than once",
                main.display(),
                x.display()
            ),
            format!(
                "{}:1 (included from {}:3): file '{}' is included more than once",
                s.display(),
                main.display(),
                s.display()
            ),
        ]
    );
}

#[test]
fn include_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "main.conf", "@INCLUDE nope.conf\n");
    let e = errs(parse_classic_file(&main, &mut env(&[])));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with(&format!(
        "{}:1: could not open configuration file '{}'",
        main.display(),
        dir.path().join("nope.conf").display()
    )));
}

#[test]
fn include_glob_without_match_warns() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "main.conf", "@INCLUDE none/*.conf\n");
    let cfg = parse_classic_file(&main, &mut env(&[])).unwrap();
    assert!(cfg.warnings[0].message.contains("matches no file"));
}

#[test]
fn unreadable_file() {
    let e = errs(parse_classic_file(
        Path::new("/nonexistent/kb.conf"),
        &mut env(&[]),
    ));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with(
        "/nonexistent/kb.conf: could not open configuration file '/nonexistent/kb.conf'"
    ));
}

#[test]
fn not_utf8_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.conf");
    std::fs::write(&p, b"[INPUT]\n    Name \xff\n").unwrap();
    let e = errs(parse_classic_file(&p, &mut env(&[])));
    assert!(e[0].ends_with("is not valid UTF-8 (line 2)"), "{e:?}");
}

#[test]
fn indent_resets_per_include() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "two.conf", "[OUTPUT]\n  Name stdout\n");
    let main = write(
        d,
        "main.conf",
        "[INPUT]\n    Name dummy\n@INCLUDE two.conf\n    Tag t\n",
    );
    let cfg = parse_classic_file(&main, &mut env(&[])).unwrap();
    // After the include, lines continue the including file's section.
    assert_eq!(
        kv(&cfg.inputs[0]),
        pairs(&[("name", "dummy"), ("tag", "t")])
    );
    assert_eq!(cfg.outputs[0].plugin_name(), Some("stdout"));
}

#[test]
fn at_most_1000_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("many")).unwrap();
    for i in 0..1000 {
        std::fs::write(d.join(format!("many/{i:04}.conf")), "").unwrap();
    }
    let main = write(d, "main.conf", "@INCLUDE many/*.conf\n");
    let e = errs(parse_classic_file(&main, &mut env(&[])));
    // The main file plus 999 includes make 1000; the limit is reported once.
    assert_eq!(
        e,
        [format!(
            "{}:1: too many configuration files (at most 1000)",
            main.display()
        )]
    );
}
