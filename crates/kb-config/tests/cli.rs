//! Command line (spec §7).

mod common;

use common::{args, kv};
use kb_config::{parse_command_line, usage, CommandLine, Location, SectionKind};

fn parse(a: &[&str]) -> Result<CommandLine, kb_config::CliError> {
    parse_command_line(args(a))
}

fn err(a: &[&str]) -> String {
    parse(a).unwrap_err().to_string()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn sections_in_order_with_their_properties() {
    let cl = parse(&[
        "-i",
        "dummy",
        "-t",
        "app",
        "-p",
        "Rate=5",
        "-F",
        "grep",
        "-m",
        "app*",
        "-o",
        "stdout",
        "-p",
        "format=json_lines",
        "-m",
        "*",
        "-c",
        "x.conf",
        "-D",
    ])
    .unwrap();
    assert_eq!(cl.sections.len(), 3);
    assert_eq!(cl.sections[0].kind, SectionKind::Input);
    assert_eq!(
        kv(&cl.sections[0]),
        pairs(&[("name", "dummy"), ("tag", "app"), ("rate", "5")])
    );
    assert_eq!(
        kv(&cl.sections[1]),
        pairs(&[("name", "grep"), ("match", "app*")])
    );
    assert_eq!(
        kv(&cl.sections[2]),
        pairs(&[("name", "stdout"), ("format", "json_lines"), ("match", "*")])
    );
    let locs: Vec<_> = cl.sections[2]
        .props
        .iter()
        .map(|p| p.location.to_string())
        .collect();
    assert_eq!(
        locs,
        [
            "command line: -o stdout",
            "command line: -p format=json_lines",
            "command line: -m *"
        ]
    );
    assert_eq!(
        cl.config_file.as_deref(),
        Some(std::path::Path::new("x.conf"))
    );
    assert!(cl.dry_run && !cl.help && !cl.version);
}

#[test]
fn prop_applies_to_the_most_recent_section() {
    let a = parse(&["-o", "stdout", "-p", "format=json", "-o", "null"]).unwrap();
    let b = parse(&["-o", "stdout", "-o", "null", "-p", "format=json"]).unwrap();
    assert_eq!(a.sections[0].props.len(), 2);
    assert_eq!(a.sections[1].props.len(), 1);
    assert_eq!(b.sections[0].props.len(), 1);
    assert_eq!(b.sections[1].props.len(), 2);
}

#[test]
fn long_forms_and_value_syntax() {
    let cl = parse(&[
        "--output=stdout",
        "--prop",
        "Json_Date_Key=a=b",
        "--match",
        "-weird",
    ])
    .unwrap();
    assert_eq!(
        kv(&cl.sections[0]),
        pairs(&[
            ("name", "stdout"),
            ("json_date_key", "a=b"),
            ("match", "-weird")
        ])
    );
}

#[test]
fn service_options() {
    let cl = parse(&[
        "-f",
        "7",
        "-R",
        "p1.conf",
        "-R",
        "p2.conf",
        "-b",
        "/var/kb",
        "-l",
        "/tmp/kb.log",
        "-H",
        "-L",
        "127.0.0.1",
        "-P",
        "2021",
        "--enable-hot-reload",
        "-vv",
        "-w",
        "/tmp",
    ])
    .unwrap();
    let svc: Vec<_> = cl
        .service
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str(), p.location.to_string()))
        .collect();
    assert_eq!(
        svc,
        [
            ("flush", "7", "command line: -f 7".to_string()),
            ("parsers_file", "p1.conf", "command line: -R p1.conf".into()),
            ("parsers_file", "p2.conf", "command line: -R p2.conf".into()),
            ("storage.path", "/var/kb", "command line: -b /var/kb".into()),
            (
                "log_file",
                "/tmp/kb.log",
                "command line: -l /tmp/kb.log".into()
            ),
            ("http_server", "on", "command line: -H".into()),
            (
                "http_listen",
                "127.0.0.1",
                "command line: -L 127.0.0.1".into()
            ),
            ("http_port", "2021", "command line: -P 2021".into()),
            ("hot_reload", "on", "command line: -Y".into()),
            ("log_level", "trace", "command line: -vv".into()),
        ]
    );
    assert_eq!(cl.workdir.as_deref(), Some(std::path::Path::new("/tmp")));
    let level = |a: &[&str]| parse(a).unwrap().service.last().map(|p| p.value.clone());
    assert_eq!(level(&["-v"]).as_deref(), Some("debug"));
    assert_eq!(level(&["-v", "--verbose"]).as_deref(), Some("trace"));
    assert_eq!(level(&["-q"]).as_deref(), Some("off"));
    assert_eq!(level(&["-vv", "-q"]).as_deref(), Some("off"));
    assert_eq!(level(&["--quiet", "-v"]).as_deref(), Some("debug"));
    assert_eq!(level(&["--http_server"]).as_deref(), Some("on"));
    assert_eq!(level(&["--port", "1"]).as_deref(), Some("1"));
    assert_eq!(level(&["--http_port", "2"]).as_deref(), Some("2"));
}

#[test]
fn prop_and_match_errors() {
    assert_eq!(
        err(&["-p", "format=json", "-o", "stdout"]),
        "command line: -p format=json: -p given before any -i, -F or -o"
    );
    assert_eq!(
        err(&["-o", "stdout", "-p", "format"]),
        "command line: -p format: expected KEY=VALUE"
    );
    assert_eq!(
        err(&["-i", "dummy", "-m", "*"]),
        "command line: -m *: -m applies to the last -F or -o, but the last section is an input"
    );
    assert_eq!(
        err(&["-m", "*"]),
        "command line: -m *: -m given before any -i, -F or -o"
    );
    // All problems are reported, in order.
    assert_eq!(
        err(&["-p", "a=b", "-i", "dummy", "-m", "x", "-d"]),
        "command line: -p a=b: -p given before any -i, -F or -o\n\
         command line: -m x: -m applies to the last -F or -o, but the last section is an input\n\
         command line: -d: option not supported by kinesis-bit"
    );
}

#[test]
fn unsupported_options() {
    for (a, shown) in [
        (&["-d"][..], "-d"),
        (&["--daemon"], "--daemon"),
        (&["-e", "x.so"], "-e"),
        (&["-C", "calyptia"], "-C"),
        (&["-T", "SELECT 1"], "-T"),
        (&["-W"], "-W"),
        (&["-Z"], "-Z"),
        (&["--trace", "x"], "--trace"),
        (&["--trace-input", "x"], "--trace-input"),
        (&["--trace-output", "x"], "--trace-output"),
        (&["--trace-output-property", "x"], "--trace-output-property"),
        (&["--enable-fips"], "--enable-fips"),
        (&["-S"], "-S"),
        (&["--supervisor"], "--supervisor"),
        (&["-r", "x"], "-r"),
        (&["-J"], "-J"),
        (&["--help-json"], "--help-json"),
    ] {
        assert_eq!(
            err(a),
            format!("command line: {shown}: option not supported by kinesis-bit"),
            "{a:?}"
        );
    }
}

#[test]
fn unknown_and_malformed_options() {
    assert_eq!(err(&["--bogus"]), "command line: --bogus: unknown option");
    assert_eq!(err(&["-x"]), "command line: -x: unknown option");
    assert_eq!(err(&["stray"]), "command line: stray: unexpected argument");
    assert!(err(&["-o"]).ends_with("a value is required"));
}

#[test]
fn help_version_and_plugin_help() {
    let cl = parse(&["-h"]).unwrap();
    assert!(cl.help && cl.help_target().is_none());
    let cl = parse(&["-o", "kinesis_streams", "-h", "-i", "dummy", "-p", "broken"]).unwrap();
    // Options after -h are not processed: the help is for the last section before it.
    assert!(cl.help);
    assert_eq!(
        cl.help_target().and_then(|s| s.plugin_name()),
        Some("kinesis_streams")
    );
    assert!(parse(&["--version"]).unwrap().version);
    assert!(parse(&["-V"]).unwrap().version);
}

#[test]
fn coro_stack_size_warns() {
    let cl = parse(&["-s", "24576"]).unwrap();
    assert_eq!(cl.warnings.len(), 1);
    assert_eq!(
        cl.warnings[0].location,
        Location::CommandLine {
            arg: "-s 24576".into()
        }
    );
}

#[test]
fn usage_lists_options() {
    let u = usage();
    assert!(u.starts_with("Usage: kinesis-bit [OPTION]"));
    for o in [
        "--config",
        "--input",
        "--output",
        "--prop",
        "--match",
        "--dry-run",
        "--version",
    ] {
        assert!(u.contains(o), "{o}");
    }
    assert!(!u.contains("--daemon"));
}
