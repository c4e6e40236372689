//! Loading: classic ⇔ YAML ⇔ command line equivalence, command line winning over the file,
//! parser files.

mod common;

use common::{args, env, errs, shape, write};
use kb_config::{load, load_parsers_file, parse_command_line, PipelineConfig};

const CLASSIC: &str = "\
[SERVICE]
    Flush     2
    Log_Level info

[INPUT]
    Name  dummy
    Tag   app.log

[FILTER]
    Name  grep
    Match app.*
    Regex log ^a

[OUTPUT]
    Name            kinesis_streams
    Match           *
    Region          us-east-1
    Stream          my-stream
    Time_Key        ts
    Time_Key_Format %Y-%m-%dT%H:%M:%S
";

const YAML: &str = "\
service:
  flush: 2
  log_level: info
pipeline:
  inputs:
    - name: dummy
      tag: app.log
  filters:
    - name: grep
      match: app.*
      regex: log ^a
  outputs:
    - name: kinesis_streams
      match: '*'
      region: us-east-1
      stream: my-stream
      timeKey: ts
      Time_Key_Format: '%Y-%m-%dT%H:%M:%S'
";

const CLI: &[&str] = &[
    "-f",
    "2",
    "-i",
    "dummy",
    "-t",
    "app.log",
    "-F",
    "grep",
    "-m",
    "app.*",
    "-p",
    "Regex=log ^a",
    "-o",
    "kinesis_streams",
    "-m",
    "*",
    "-p",
    "region=us-east-1",
    "-p",
    "stream=my-stream",
    "-p",
    "time_key=ts",
    "-p",
    "time_key_format=%Y-%m-%dT%H:%M:%S",
];

fn load_args(a: &[&str]) -> Result<PipelineConfig, kb_config::ConfigErrors> {
    let cl = parse_command_line(args(a)).unwrap();
    load(&cl, &mut env(&[]))
}

#[test]
fn classic_yaml_and_command_line_agree() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(dir.path(), "kb.conf", CLASSIC);
    let y = write(dir.path(), "kb.YML", YAML);
    let from_classic = load_args(&["-c", c.to_str().unwrap()]).unwrap();
    let from_yaml = load_args(&["-c", y.to_str().unwrap()]).unwrap();
    let from_cli = load_args(CLI).unwrap();
    assert_eq!(shape(&from_classic), shape(&from_yaml));
    let (sections, service) = shape(&from_classic);
    let (cli_sections, cli_service) = shape(&from_cli);
    assert_eq!(sections, cli_sections);
    assert_eq!(service[0], cli_service[0]);
}

#[test]
fn command_line_wins_over_file_and_appends_sections() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(dir.path(), "kb.conf", CLASSIC);
    let cfg = load_args(&[
        "-c",
        c.to_str().unwrap(),
        "-f",
        "7",
        "-vv",
        "-o",
        "stdout",
        "-m",
        "*",
    ])
    .unwrap();
    // The spec's example: `Flush 3`/`Log_Level info` in the file, `-f 7`/`-vv` on the command
    // line — kinesis-bit lets the command line win.
    assert_eq!(
        cfg.service_get("flush").map(|p| p.value.as_str()),
        Some("7")
    );
    assert_eq!(
        cfg.service_get("log_level").map(|p| p.value.as_str()),
        Some("trace")
    );
    let names: Vec<_> = cfg.outputs.iter().filter_map(|s| s.plugin_name()).collect();
    assert_eq!(names, ["kinesis_streams", "stdout"]);
}

#[test]
fn format_selected_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    // YAML content in a .conf file is read as classic (and fails).
    let c = write(dir.path(), "kb.conf", YAML);
    assert!(load_args(&["-c", c.to_str().unwrap()]).is_err());
    let y = write(dir.path(), "kb.Yaml", YAML);
    assert!(load_args(&["-c", y.to_str().unwrap()]).is_ok());
}

#[test]
fn missing_config_file() {
    let e = errs(load_args(&["-c", "/nonexistent/kb.yaml"]));
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("could not open configuration file '/nonexistent/kb.yaml'"));
}

#[test]
fn command_line_values_are_substituted_after_file_set() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(dir.path(), "kb.conf", "@SET S=from-file\n");
    let cl = parse_command_line(args(&[
        "-c",
        c.to_str().unwrap(),
        "-o",
        "kinesis_streams",
        "-p",
        "stream=${S}",
    ]))
    .unwrap();
    let cfg = load(&cl, &mut env(&[("S", "process")])).unwrap();
    assert_eq!(
        cfg.outputs[0].get("stream").map(|p| p.value.as_str()),
        Some("from-file")
    );
}

#[test]
fn parsers_files_resolve_relative_to_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "parsers.conf",
        "[PARSER]\n    Name json\n    Format json\n[MULTILINE_PARSER]\n    Name ml\n    Type regex\n",
    );
    write(
        d,
        "more.yaml",
        "parsers:\n  - name: logfmt\n    format: logfmt\n",
    );
    let main = write(
        d,
        "kb.conf",
        "[SERVICE]\n    Parsers_File parsers.conf\n    Parsers_File parsers.conf\n",
    );
    let more = d.join("more.yaml");
    let cfg = load_args(&["-c", main.to_str().unwrap(), "-R", more.to_str().unwrap()]).unwrap();
    let names: Vec<_> = cfg.parsers.iter().filter_map(|s| s.plugin_name()).collect();
    assert_eq!(names, ["json", "logfmt"]);
    assert_eq!(cfg.multiline_parsers.len(), 1);

    let e = errs(load_args(&["-R", "/nonexistent/p.conf"]));
    assert_eq!(
        e,
        ["command line: -R /nonexistent/p.conf: could not open parsers file '/nonexistent/p.conf'"]
    );
}

#[test]
fn parsers_file_rejects_other_sections() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.conf",
        "[PARSER]\n    Name json\n[INPUT]\n    Name dummy\n",
    );
    let e = errs(load_parsers_file(&p, &mut env(&[])));
    assert_eq!(
        e,
        [format!(
            "{}:3: input sections are not allowed in a parsers file",
            p.display()
        )]
    );
    let p = write(dir.path(), "ok.conf", "[PARSER]\n    Name json\n");
    let (parsers, ml) = load_parsers_file(&p, &mut env(&[])).unwrap();
    assert_eq!((parsers.len(), ml.len()), (1, 0));
}

const OUT_KEYS: &[kb_config::KeySpec] = &[kb_config::KeySpec::new(
    "endpoint",
    kb_config::KeyType::Str,
    None,
    "endpoint",
)];
const OUT: kb_config::PluginSpec = kb_config::PluginSpec {
    kind: kb_config::SectionKind::Output,
    name: "out",
    description: "",
    keys: OUT_KEYS,
};

/// The warnings of `cfg` and the error `endpoint` gets, as text.
fn unset_report(cfg: &PipelineConfig) -> (Vec<String>, String) {
    let warnings = cfg.warnings.iter().map(ToString::to_string).collect();
    let e = kb_config::schema::validate_section(
        &OUT,
        kb_config::schema::OUTPUT_GENERIC_KEYS,
        &cfg.outputs[0],
        "out.0",
    )
    .unwrap_err();
    (warnings, e[0].to_string())
}

#[test]
fn an_unset_variable_is_named_with_its_location_in_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "kb.conf",
        "[OUTPUT]\n    Name     out\n    Match    *\n    endpoint ${KINESIS_ENDPOINT}\n",
    );
    let cfg = load_args(&["-c", conf.to_str().unwrap()]).unwrap();
    let c = conf.display();
    assert_eq!(
        unset_report(&cfg),
        (
            vec![format!(
                "{c}:4: [env] variable ${{KINESIS_ENDPOINT}} is used but not set"
            )],
            format!("{c}:4: [output out.0] key 'endpoint' has an empty value: variable ${{KINESIS_ENDPOINT}} is not set")
        )
    );

    let yaml = write(
        dir.path(),
        "kb.yaml",
        "pipeline:\n  outputs:\n    - name: out\n      match: '*'\n      endpoint: ${KINESIS_ENDPOINT}${REGION}\n",
    );
    let cfg = load_args(&["-c", yaml.to_str().unwrap()]).unwrap();
    let y = format!(
        "{}: pipeline.outputs[0].endpoint (line 5, column 7)",
        yaml.display()
    );
    assert_eq!(
        unset_report(&cfg),
        (
            vec![
                format!("{y}: [env] variable ${{KINESIS_ENDPOINT}} is used but not set"),
                format!("{y}: [env] variable ${{REGION}} is used but not set"),
            ],
            format!("{y}: [output out.0] key 'endpoint' has an empty value: variables ${{KINESIS_ENDPOINT}} and ${{REGION}} are not set")
        )
    );

    let cfg = load_args(&["-o", "out", "-m", "*", "-p", "endpoint=${KINESIS_ENDPOINT}"]).unwrap();
    let l = "command line: -p endpoint=${KINESIS_ENDPOINT}";
    assert_eq!(
        unset_report(&cfg),
        (
            vec![format!(
                "{l}: [env] variable ${{KINESIS_ENDPOINT}} is used but not set"
            )],
            format!("{l}: [output out.0] key 'endpoint' has an empty value: variable ${{KINESIS_ENDPOINT}} is not set")
        )
    );
}

#[test]
fn a_value_left_non_empty_by_an_unset_variable_is_only_warned_about() {
    let cfg = load_args(&["-o", "out", "-m", "*", "-p", "endpoint=http://${NOPE}x"]).unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.outputs[0].get("endpoint").unwrap().value, "http://x");
    assert!(kb_config::schema::validate_section(
        &OUT,
        kb_config::schema::OUTPUT_GENERIC_KEYS,
        &cfg.outputs[0],
        "out.0"
    )
    .is_ok());
}
