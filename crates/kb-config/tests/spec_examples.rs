//! The examples written in `config-and-cli.md` (the kinesis_streams spec has no configuration
//! listings, only key tables covered elsewhere).

mod common;

use std::path::Path;

use common::{args, env, write};
use kb_config::schema::{validate_section, OUTPUT_GENERIC_KEYS};
use kb_config::{
    load, parse_classic_str, parse_command_line, parse_yaml_str, KeySpec, KeyType, PluginSpec,
    SectionKind,
};

const KINESIS_KEYS: &[KeySpec] = &[
    KeySpec::new("stream", KeyType::Str, None, "stream"),
    KeySpec::new("region", KeyType::Str, None, "region"),
    KeySpec::new("time_key", KeyType::Str, None, "time key"),
    KeySpec::new("log_key", KeyType::Str, None, "log key"),
];
const KINESIS: PluginSpec = PluginSpec {
    kind: SectionKind::Output,
    name: "kinesis_streams",
    description: "",
    keys: KINESIS_KEYS,
};

/// §5: `/etc/kb/out.conf:12: [output kinesis_streams.0] unknown configuration property
/// 'strem'; did you mean 'stream'?`
#[test]
fn classic_error_report_example() {
    let text = "# outputs\n\n[SERVICE]\n    Flush 1\n\n[INPUT]\n    Name dummy\n\n[OUTPUT]\n    Name   kinesis_streams\n    Match  *\n    strem  my-stream\n";
    let cfg = parse_classic_str(text, Path::new("/etc/kb/out.conf"), &mut env(&[])).unwrap();
    let e = validate_section(
        &KINESIS,
        OUTPUT_GENERIC_KEYS,
        &cfg.outputs[0],
        "kinesis_streams.0",
    )
    .unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "/etc/kb/out.conf:12: [output kinesis_streams.0] unknown configuration property 'strem'; did you mean 'stream'?"
    );
}

/// §5: `fluent-bit.yaml: pipeline.outputs[0].time_key (line 14, column 7): …`
#[test]
fn yaml_error_report_example() {
    let text = "service:\n  flush: 1\n  log_level: info\n\npipeline:\n  inputs:\n    - name: dummy\n      tag: app\n\n  outputs:\n    - name: kinesis_streams\n      match: '*'\n      stream: s\n      time_key: t\n      log_key: log\n";
    let cfg = parse_yaml_str(text, Path::new("fluent-bit.yaml"), &mut env(&[])).unwrap();
    let p = cfg.outputs[0].get("time_key").unwrap();
    assert_eq!(
        p.location.to_string(),
        "fluent-bit.yaml: pipeline.outputs[0].time_key (line 14, column 7)"
    );
}

/// §2: no end-of-line comments: `Stream foo # x` has the value `foo # x`.
#[test]
fn no_end_of_line_comments() {
    let cfg = parse_classic_str(
        "[OUTPUT]\n    Stream foo # x\n",
        Path::new("a.conf"),
        &mut env(&[]),
    )
    .unwrap();
    assert_eq!(cfg.outputs[0].props[0].value, "foo # x");
}

/// §7: `Flush 3` in the file and `-f 7`; `Log_Level info` and `-vv`: the command line wins
/// (a deliberate change from FB).
#[test]
fn command_line_beats_file_example() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fb.conf",
        "[SERVICE]\n    Flush 3\n    Log_Level info\n",
    );
    let cl = parse_command_line(args(&["-c", f.to_str().unwrap(), "-f", "7", "-vv"])).unwrap();
    let cfg = load(&cl, &mut env(&[])).unwrap();
    let (sc, e, _) = kb_config::validate_service(&cfg);
    assert!(e.is_empty());
    assert_eq!(sc.flush_secs, 7.0);
    assert_eq!(sc.log_level, Some(kb_config::LogLevel::Trace));
}

/// §1: `${VAR}` and `${VAR:-default}` (default when unset or empty), `${HOSTNAME}` predefined.
#[test]
fn variables_example() {
    let mut e = env(&[("EMPTY", "")]);
    let cfg = parse_classic_str(
        "[OUTPUT]\n    A ${EMPTY:-d1}\n    B ${UNSET:-d2}\n    C ${HOSTNAME}\n",
        Path::new("a.conf"),
        &mut e,
    )
    .unwrap();
    let v: Vec<_> = cfg.outputs[0]
        .props
        .iter()
        .map(|p| p.value.as_str())
        .collect();
    assert_eq!(&v[..2], ["d1", "d2"]);
    if std::path::Path::new("/proc/sys/kernel/hostname").exists() {
        assert!(!v[2].is_empty());
        assert!(cfg.warnings.is_empty());
    }
}

/// §7 shell note: `-m '*'` reaches the program as `*`.
#[test]
fn quoted_match_pattern() {
    let cl = parse_command_line(args(&["-i", "dummy", "-o", "stdout", "-m", "*"])).unwrap();
    assert_eq!(
        cl.sections[1].get("match").map(|p| p.value.as_str()),
        Some("*")
    );
}
