//! The binary with `[MULTILINE_PARSER]`s, tail's `multiline.parser`, the `multiline` and
//! `parser` filters, from classic and YAML files, printing `json_lines` to stdout: the exact
//! output of Fluent Bit's documentation examples, and configuration errors with their file,
//! line and key.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{stderr, terminate, wait_with_timeout};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinesis-bit"));
    c.env_remove("FLB_LOG_LEVEL");
    c
}

/// Run `kinesis-bit -c config` until stdout holds `lines` lines (at most 20 s), then stop it.
fn run_until(config: &Path, lines: usize) -> Output {
    let mut child = bin()
        .arg("-c")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout as it comes to know when to stop.
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.iter().filter(|&&b| b == b'\n').count() < lines && Instant::now() < deadline {
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(50)) {
            got.extend_from_slice(&b);
        }
    }
    terminate(&child);
    let mut o = wait_with_timeout(child, Duration::from_secs(20));
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
        got.extend_from_slice(&b);
    }
    o.stdout = got;
    o
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const TEST_LOG: &str = r#"single line...
Dec 14 06:41:08 Exception in thread "main" java.lang.RuntimeException: Something has gone wrong, aborting!
    at com.myproject.module.MyProject.badMethod(MyProject.java:22)
    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)
    at com.myproject.module.MyProject.anotherMethod(MyProject.java:14)
    at com.myproject.module.MyProject.someMethod(MyProject.java:10)
    at com.myproject.module.MyProject.main(MyProject.java:6)
another line...
panic: my panic

goroutine 4 [running]:
panic(0x45cb40, 0x47ad70)
  /usr/local/go/src/runtime/panic.go:542 +0x46c fp=0xc42003f7b8 sp=0xc42003f710 pc=0x422f7c
main.main.func1(0xc420024120)
  foo.go:6 +0x39 fp=0xc42003f7d8 sp=0xc42003f7b8 pc=0x451339
created by main.main
  foo.go:5 +0x58
one more line, no multiline
"#;

const PARSERS_CONF: &str = r#"
[MULTILINE_PARSER]
    name          multiline-regex-test
    type          regex
    flush_timeout 1000
    #
    # rules |   state name  | regex pattern                  | next state
    # ------|---------------|--------------------------------------------
    rule      "start_state"   "/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
    rule      "cont"          "/^\s+at.*/"                     "cont"

[PARSER]
    Name dummy_test
    Format regex
    Regex ^(?<INT>[^ ]+) (?<FLOAT>[^ ]+) (?<BOOL>[^ ]+) (?<STRING>.+)$
"#;

fn setup(config: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("parsers_multiline.conf"), PARSERS_CONF).unwrap();
    std::fs::write(dir.path().join("test.log"), TEST_LOG).unwrap();
    let cfg = dir.path().join("fluent-bit.conf");
    let log = dir.path().join("test.log");
    std::fs::write(&cfg, config.replace("@LOG@", log.to_str().unwrap())).unwrap();
    (dir, cfg)
}

fn lines() -> Vec<&'static str> {
    TEST_LOG.lines().collect()
}

#[test]
fn tail_then_multiline_filter_prints_the_documented_records() {
    let (_dir, cfg) = setup(
        r#"
[SERVICE]
    Flush        0.2
    Log_Level    info
    Parsers_File parsers_multiline.conf

[INPUT]
    Name           tail
    Path           @LOG@
    Read_From_Head true

[FILTER]
    Name                  multiline
    Match                 *
    multiline.key_content log
    multiline.parser      go, multiline-regex-test

[OUTPUT]
    Name          stdout
    Match         *
    Format        json_lines
    json_date_key false
"#,
    );
    let out = run_until(&cfg, 5);
    assert!(out.status.success(), "{}", stderr(&out));
    let l = lines();
    let j = |s: &str| serde_json::json!({ "log": s }).to_string();
    let expected = [
        j(l[0]),
        j(&l[1..7].join("\n")),
        j(l[7]),
        j(&l[8..17].join("\n")),
        j(l[17]),
    ]
    .join("\n")
        + "\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(!stderr(&out).contains("[error]"), "{}", stderr(&out));
}

#[test]
fn tail_multiline_parser_from_a_yaml_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.log"), TEST_LOG).unwrap();
    let log = dir.path().join("test.log");
    let cfg = dir.path().join("fluent-bit.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
service:
  flush: 0.2
multiline_parsers:
  - name: multiline-regex-test
    type: regex
    flush_timeout: 500
    rules:
      - state: start_state
        regex: '/([a-zA-Z]+ \d+ \d+\:\d+\:\d+)(.*)/'
        next_state: cont
      - state: cont
        regex: '/^\s+at.*/'
        next_state: cont
pipeline:
  inputs:
    - name: tail
      path: {}
      read_from_head: true
      multiline.parser: multiline-regex-test
  outputs:
    - name: stdout
      match: '*'
      format: json_lines
      json_date_key: false
"#,
            log.display()
        ),
    )
    .unwrap();
    let out = run_until(&cfg, 4);
    assert!(out.status.success(), "{}", stderr(&out));
    let l = lines();
    let got = json_lines(&out);
    // Without key_content every record ends with a newline, as Fluent Bit's tail gives it.
    assert_eq!(got[0], serde_json::json!({ "log": "single line...\n" }));
    assert_eq!(
        got[1],
        serde_json::json!({ "log": format!("{}\n", l[1..7].join("\n")) })
    );
    assert_eq!(got[2], serde_json::json!({ "log": "another line...\n" }));
    assert_eq!(got[3], serde_json::json!({ "log": "panic: my panic\n" }));
}

#[test]
fn parser_filter_documentation_example_from_classic_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("parsers.conf"), PARSERS_CONF).unwrap();
    let classic = dir.path().join("dummy.conf");
    std::fs::write(
        &classic,
        r#"
[SERVICE]
    Flush        0.2
    Parsers_File parsers.conf

[INPUT]
    Name    dummy
    Tag     dummy.data
    Dummy   {"data":"100 0.5 true This is example", "key1":"value1", "key2":"value2"}
    Samples 1

[FILTER]
    Name         parser
    Match        dummy.*
    Key_Name     data
    Parser       dummy_test
    Reserve_Data On
    Preserve_Key On

[OUTPUT]
    Name          stdout
    Match         *
    Format        json_lines
    json_date_key false
"#,
    )
    .unwrap();
    let out = run_until(&classic, 1);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"INT\":\"100\",\"FLOAT\":\"0.5\",\"BOOL\":\"true\",\"STRING\":\"This is example\",\"data\":\"100 0.5 true This is example\",\"key1\":\"value1\",\"key2\":\"value2\"}\n"
    );
    let yaml = dir.path().join("dummy.yaml");
    std::fs::write(
        &yaml,
        r#"
service:
  flush: 0.2
  parsers_file: parsers.conf
pipeline:
  inputs:
    - name: dummy
      tag: dummy.data
      dummy: '{"data":"100 0.5 true This is example"}'
      samples: 1
  filters:
    - name: parser
      match: 'dummy.*'
      key_name: data
      parser: dummy_test
  outputs:
    - name: stdout
      match: '*'
      format: json_lines
      json_date_key: false
"#,
    )
    .unwrap();
    let out = run_until(&yaml, 1);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"INT\":\"100\",\"FLOAT\":\"0.5\",\"BOOL\":\"true\",\"STRING\":\"This is example\"}\n"
    );
}

#[test]
fn configuration_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let parsers = dir.path().join("parsers.conf");
    std::fs::write(
        &parsers,
        "[MULTILINE_PARSER]\n    name bad\n    type regex\n    rule \"start_state\" \"/(/\" \"cont\"\n    rule \"cont\" \"/x/\" \"gone\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("a.conf");
    std::fs::write(
        &cfg,
        "[SERVICE]\n    Parsers_File parsers.conf\n[INPUT]\n    Name dummy\n[FILTER]\n    Name multiline\n    Match *\n    multiline.parser java, nope\n[FILTER]\n    Name multiline\n    Match *\n    multiline.parser go\n[OUTPUT]\n    Name null\n    Match *\n",
    )
    .unwrap();
    let out = bin().arg("-c").arg(&cfg).arg("--dry-run").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let p = parsers.display();
    let c = cfg.display();
    for want in [
        format!("{p}:4: multiline parser 'bad': 'rule': invalid regex '/(/': end pattern with unmatched parenthesis"),
        format!("{c}:8: [filter multiline.0] 'multiline.parser': unknown multiline parser 'nope'"),
        format!("{c}:12: [filter multiline.1] multiline parser 'go' has no key_content"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}
