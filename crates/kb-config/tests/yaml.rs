//! YAML parsing (spec §3).

mod common;

use std::path::Path;

use common::{env, errs, kv, write};
use kb_config::{parse_yaml_file, parse_yaml_str, Location};

fn parse(text: &str) -> Result<kb_config::PipelineConfig, kb_config::ConfigErrors> {
    parse_yaml_str(text, Path::new("fluent-bit.yaml"), &mut env(&[]))
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FULL: &str = "\
service:
  flush: 1
  log_level: info
  http_server: on
  storage.path: /var/lib/kb

pipeline:
  inputs:
    - name: dummy
      tag: app
  outputs:
    - name: kinesis_streams
      match: '*'
      time_key: t
      timeKeyFormat: '%Y'
      logKey: log
      Region: us-east-1
      retry_limit: 1.50
";

#[test]
fn full_example_scalars_as_written() {
    let cfg = parse(FULL).unwrap();
    let svc: Vec<_> = cfg
        .service
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        svc,
        [
            ("flush", "1"),
            ("log_level", "info"),
            ("http_server", "on"),
            ("storage.path", "/var/lib/kb")
        ]
    );
    assert_eq!(
        kv(&cfg.inputs[0]),
        pairs(&[("name", "dummy"), ("tag", "app")])
    );
    assert_eq!(
        kv(&cfg.outputs[0]),
        pairs(&[
            ("name", "kinesis_streams"),
            ("match", "*"),
            ("time_key", "t"),
            ("time_key_format", "%Y"),
            ("log_key", "log"),
            ("region", "us-east-1"),
            ("retry_limit", "1.50"),
        ])
    );
}

#[test]
fn locations_use_path_line_and_column() {
    let cfg = parse(FULL).unwrap();
    // The spec's example location: line 14, column 7.
    assert_eq!(
        cfg.outputs[0].props[2].location.to_string(),
        "fluent-bit.yaml: pipeline.outputs[0].time_key (line 14, column 7)"
    );
    assert_eq!(
        cfg.outputs[0].props[3].location.to_string(),
        "fluent-bit.yaml: pipeline.outputs[0].timeKeyFormat (line 15, column 7)"
    );
    assert!(cfg.outputs[0]
        .location
        .to_string()
        .starts_with("fluent-bit.yaml: pipeline.outputs[0] (line 12,"));
    assert_eq!(
        cfg.service[0].location.to_string(),
        "fluent-bit.yaml: service.flush (line 2, column 3)"
    );
}

#[test]
fn list_values_become_repeated_properties() {
    let cfg = parse(
        "pipeline:\n  filters:\n    - name: parser\n      parser:\n        - a\n        - b\n",
    )
    .unwrap();
    assert_eq!(
        kv(&cfg.filters[0]),
        pairs(&[("name", "parser"), ("parser", "a"), ("parser", "b")])
    );
    assert_eq!(
        cfg.filters[0].props[2].location.to_string(),
        "fluent-bit.yaml: pipeline.filters[0].parser[1] (line 6, column 11)"
    );
}

#[test]
fn value_errors_name_the_path() {
    let e = errs(parse(
        "service:\n  flush: [1, 2]\n  grace:\npipeline:\n  outputs:\n    - name: x\n      stream: {a: b}\n      region: ''\n      tls:\n        - {a: b}\n",
    ));
    assert_eq!(
        e,
        [
            "fluent-bit.yaml: service.flush (line 2, column 3): 'service.flush' must be a single value, not a list",
            "fluent-bit.yaml: service.grace (line 3, column 3): 'service.grace' has an empty value",
            "fluent-bit.yaml: pipeline.outputs[0].stream (line 7, column 7): 'pipeline.outputs[0].stream' must be a single value, not a map",
            "fluent-bit.yaml: pipeline.outputs[0].region (line 8, column 7): 'pipeline.outputs[0].region' has an empty value",
            "fluent-bit.yaml: pipeline.outputs[0].tls[0] (line 10, column 11): 'pipeline.outputs[0].tls[0]' must be a single value",
        ]
    );
}

#[test]
fn unsupported_sections_are_errors_unknown_top_level_warns() {
    let r = parse(
        "customs:\n  - name: calyptia\npipeline:\n  inputs:\n    - name: dummy\n      processors:\n        logs:\n          - name: content_modifier\n  processors: {}\nstream_processor: []\nplugins: []\nupstream_servers: []\n",
    );
    assert_eq!(
        errs(r),
        [
            "fluent-bit.yaml: customs (line 1, column 1): section 'customs' is not supported by kinesis-bit",
            "fluent-bit.yaml: pipeline.inputs[0].processors (line 6, column 7): section 'pipeline.inputs[0].processors' is not supported by kinesis-bit",
            "fluent-bit.yaml: pipeline.processors (line 9, column 3): section 'pipeline.processors' is not supported by kinesis-bit",
            "fluent-bit.yaml: stream_processor (line 10, column 1): section 'stream_processor' is not supported by kinesis-bit",
            "fluent-bit.yaml: plugins (line 11, column 1): section 'plugins' is not supported by kinesis-bit",
            "fluent-bit.yaml: upstream_servers (line 12, column 1): section 'upstream_servers' is not supported by kinesis-bit",
        ]
    );
    let cfg = parse("foo: bar\npipeline:\n  inputs: []\n").unwrap();
    assert_eq!(
        cfg.warnings[0].to_string(),
        "fluent-bit.yaml: foo (line 1, column 1): unknown top-level key 'foo' is ignored"
    );
}

#[test]
fn syntax_error_format() {
    let e = errs(parse(
        "pipeline:\n  inputs:\n    - name: dummy\n   bad: [\n",
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "fluent-bit.yaml: YAML error found in file \"fluent-bit.yaml\", line 4, column"
        ),
        "{e:?}"
    );
}

#[test]
fn env_map_and_list_forms_win_over_process() {
    const OUTPUT: &str = "pipeline:\n  outputs:\n    - name: kinesis_streams\n      stream: ${STREAM}\n      region: ${REGION}\n      role_arn: ${SECRET:-none}\n      endpoint: ${NOPE:-http://localhost}\n      alias: ${UNSET}\n";
    let values = |text: &str| {
        let mut e = env(&[("STREAM", "process"), ("REGION", "eu-west-1")]);
        let cfg = parse_yaml_str(text, Path::new("f.yaml"), &mut e).unwrap();
        let v: Vec<String> = cfg.outputs[0]
            .props
            .iter()
            .map(|p| p.value.clone())
            .collect();
        (v, cfg.warnings)
    };
    // Map form.
    let (v, w) = values(&format!("env:\n  STREAM: from-env\n{OUTPUT}"));
    assert_eq!(
        v,
        [
            "kinesis_streams",
            "from-env",
            "eu-west-1",
            "none",
            "http://localhost",
            ""
        ]
    );
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].to_string(),
        "f.yaml: pipeline.outputs[0].alias (line 10, column 7): [env] variable ${UNSET} is used but not set"
    );
    // List form with value and file:// uri (read once, trailing newline dropped); `env` may
    // come after its use.
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "secret", "s3cr3t\n");
    let (v, _) = values(&format!(
        "{OUTPUT}env:\n  - name: STREAM\n    value: from-env\n  - name: SECRET\n    uri: file://{}\n    refresh_interval: 0\n",
        secret.display()
    ));
    assert_eq!(
        v,
        [
            "kinesis_streams",
            "from-env",
            "eu-west-1",
            "s3cr3t",
            "http://localhost",
            ""
        ]
    );
    // A second document is not accepted.
    assert!(
        errs(parse(&format!("{OUTPUT}---\n{OUTPUT}")))[0].contains("more than one YAML document")
    );

    let e = errs(parse(
        "env:\n  - name: A\n    uri: file:///x\n    refresh_interval: 5\n  - name: B\n    uri: http://x\n  - value: c\n",
    ));
    assert_eq!(
        e,
        [
            "fluent-bit.yaml: env[0].refresh_interval (line 4, column 5): refresh_interval > 0 is not supported by kinesis-bit",
            "fluent-bit.yaml: env[1].uri (line 6, column 5): unsupported uri 'http://x': only file:// is supported",
            "fluent-bit.yaml: env[2] (line 7, column 5): env entry without 'name'",
        ]
    );
}

#[test]
fn includes_relative_and_twice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sub/outputs.yaml",
        "pipeline:\n  outputs:\n    - name: stdout\n      match: '*'\n",
    );
    write(d, "sub/bad.yaml", "pipeline:\n  outputs:\n    - name:\n");
    let main = write(
        d,
        "main.yaml",
        "includes:\n  - sub/outputs.yaml\npipeline:\n  inputs:\n    - name: dummy\n",
    );
    let cfg = parse_yaml_file(&main, &mut env(&[])).unwrap();
    assert_eq!(cfg.outputs[0].plugin_name(), Some("stdout"));
    assert_eq!(cfg.inputs[0].plugin_name(), Some("dummy"));
    let Location::Yaml { included_from, .. } = &cfg.outputs[0].location else {
        panic!("yaml location expected");
    };
    assert!(included_from.as_ref().is_some_and(|l| l
        .to_string()
        .ends_with("main.yaml: includes[0] (line 2, column 5)")));

    let main = write(
        d,
        "main2.yaml",
        "includes:\n  - sub/outputs.yaml\n  - sub/outputs.yaml\n  - sub/bad.yaml\n",
    );
    let e = errs(parse_yaml_file(&main, &mut env(&[])));
    let out = d.join("sub/outputs.yaml");
    let bad = d.join("sub/bad.yaml");
    assert_eq!(
        e,
        [
            format!(
                "{}: includes[1] (line 3, column 5): file '{}' is included more than once",
                main.display(),
                out.display()
            ),
            format!(
                "{}: pipeline.outputs[0].name (line 3, column 7) (included from {}: includes[2] (line 4, column 5)): 'pipeline.outputs[0].name' has an empty value",
                bad.display(),
                main.display()
            ),
        ]
    );
}

#[test]
fn parsers_and_multiline_rules() {
    let cfg = parse(
        "parsers:\n  - name: json\n    format: json\n    timeKey: time\nmultiline_parsers:\n  - name: ml\n    type: regex\n    rules:\n      - state: start_state\n        regex: '/^\\d+ \"x\"/'\n        next_state: cont\n",
    )
    .unwrap();
    assert_eq!(
        kv(&cfg.parsers[0]),
        pairs(&[("name", "json"), ("format", "json"), ("time_key", "time")])
    );
    assert_eq!(
        kv(&cfg.multiline_parsers[0]),
        pairs(&[
            ("name", "ml"),
            ("type", "regex"),
            ("rule", "\"start_state\" \"/^\\d+ \\\"x\\\"/\" \"cont\""),
        ])
    );
}

#[test]
fn odd_documents() {
    assert!(parse("").unwrap().outputs.is_empty());
    assert!(parse("# only a comment\n").unwrap().outputs.is_empty());
    assert_eq!(
        errs(parse("- a\n- b\n")),
        ["fluent-bit.yaml: (top level) (line 1, column 1): the top level of the file must be a map"]
    );
    assert!(errs(parse("a: &x 1\nb: *x\n"))[0].contains("aliases are not supported"));
    assert_eq!(
        errs(parse("pipeline:\n  output:\n    - name: x\n")),
        ["fluent-bit.yaml: pipeline.output (line 2, column 3): unknown section 'pipeline.output' (expected inputs, filters or outputs)"]
    );
    assert_eq!(
        errs(parse("pipeline:\n  outputs:\n    - stdout\n")),
        ["fluent-bit.yaml: pipeline.outputs[0] (line 3, column 7): 'pipeline.outputs[0]' must be a map of properties"]
    );
    let deep = "a: ".to_string() + &"[".repeat(200) + &"]".repeat(200);
    assert!(errs(parse(&deep))[0].contains("YAML error"));
}
