//! The binary run as a user would: pipelines from the command line and from files, what they
//! print, how they fail, and how they stop.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{run_with_stdin as run_cmd, stderr, terminate, wait_with_timeout};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinesis-bit"));
    c.env_remove("FLB_LOG_LEVEL");
    c
}

fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    run_cmd(bin().args(args), input, Duration::from_secs(20))
}

#[test]
fn stdin_to_stdout_json_lines_delivers_both_records_and_exits_0() {
    let out = run_with_stdin(
        &[
            "-i",
            "stdin",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ],
        b"{\"a\":1}\nplain\n",
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"a\":1}\n{\"log\":\"plain\"}\n"
    );
}

#[test]
fn stdin_with_date_key_as_in_the_issue() {
    let out = run_with_stdin(
        &[
            "-i",
            "stdin",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-m",
            "*",
        ],
        b"{\"a\":1}\nplain\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["a"], 1);
    assert_eq!(lines[1]["log"], "plain");
    assert!(lines[0]["date"].as_f64().unwrap() > 1.7e9);
}

#[test]
fn many_stdin_lines_all_arrive_in_order() {
    let mut input = Vec::new();
    for i in 0..20_000 {
        writeln!(input, "{{\"seq\":{i},\"msg\":\"line {i}\"}}").unwrap();
    }
    let out = run_with_stdin(
        &[
            "-i",
            "stdin",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, input);
}

#[test]
fn cpu_to_stdout_prints_records_every_second_and_stops_on_sigterm() {
    let child = bin()
        .args(["-i", "cpu", "-o", "stdout", "-m", "*", "-f", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    terminate(&child);
    let start = Instant::now();
    let out = wait_with_timeout(child, Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(7));
    let records: Vec<&str> = stdout.lines().filter(|l| l.contains("cpu.0: [[")).collect();
    assert!(records.len() >= 2, "expected CPU records, got:\n{stdout}");
    for r in records {
        assert!(r.starts_with('['), "{r}");
        assert!(
            r.contains("{\"cpu_p\"=>")
                && r.contains("\"user_p\"=>")
                && r.contains("\"cpu0.p_cpu\"=>"),
            "{r}"
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains("[ info] [engine] caught signal (SIGTERM)"),
        "{err}"
    );
}

#[test]
fn sigterm_delivers_everything_buffered() {
    // Flush is 30 s, so the records can only come out through shutdown's final flush.
    let child = bin()
        .args([
            "-f",
            "30",
            "-i",
            "dummy",
            "-p",
            "rate=100",
            "-p",
            "dummy={\"k\":\"v\"}",
            "-t",
            "d",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "d",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let n = text.lines().count();
    assert!(n >= 100, "expected >= 100 buffered records, got {n}");
    assert!(text.lines().all(|l| l == "{\"k\":\"v\"}"));
}

#[test]
fn dry_run_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "[SERVICE]\n    Flush 1\n\n[INPUT]\n    Name cpu\n\n[OUTPUT]\n    Name  stdout\n    Match *\n    Formt json\n",
    )
    .unwrap();
    let out = bin()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:10: [output stdout.0] unknown configuration property 'formt'; did you mean 'format'?", conf.display())),
        "{err}"
    );
    assert!(err.contains("Error: configuration file contains errors. Aborting"));
}

/// `protocol` and `tls.ciphers` are validated with the file, line and key; Firehose does not
/// offer `protocol`; `-h` lists it.
#[test]
fn protocol_and_tls_ciphers_are_validated_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "[INPUT]\n    Name dummy\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    protocol xml\n\n\
         [OUTPUT]\n    Name kinesis_firehose\n    Match *\n    delivery_stream d\n    region us-east-1\n    protocol cbor\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    protocol CBOR\n    tls.ciphers ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    protocol cbor\n    tls.ciphers TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256\n",
    )
    .unwrap();
    let out = bin()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let f = conf.display();
    for want in [
        format!("{f}:9: [output kinesis_streams.0] invalid value 'xml' for property 'protocol': expected one of: json, cbor"),
        format!("{f}:16: [output kinesis_firehose.0] unknown configuration property 'protocol'"),
        format!("{f}:24: [output kinesis_streams.1] invalid 'tls.ciphers': unknown or unsupported cipher suite 'RC4-MD5'"),
    ] {
        assert!(err.contains(&want), "no '{want}' in:\n{err}");
    }
    // The last output is valid: nothing is reported about it.
    assert!(!err.contains("kinesis_streams.2"), "{err}");
    assert_eq!(err.matches("] [config] ").count(), 3, "{err}");
    let help = bin()
        .args(["-o", "kinesis_streams", "-h"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("protocol") && help.contains("application/x-amz-cbor-1.1"),
        "{help}"
    );
}

#[test]
fn dry_run_success_message() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("good.yaml");
    std::fs::write(
        &conf,
        "service:\n  flush: 1\npipeline:\n  inputs:\n    - name: cpu\n      tag: cpu.local\n  outputs:\n    - name: stdout\n      match: '*'\n      format: json_lines\n",
    )
    .unwrap();
    let out = bin()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("configuration test is successful"));
}

#[test]
fn unknown_plugin_gets_a_suggestion_and_every_error_is_reported() {
    let out = bin()
        .args([
            "-i",
            "cpuu",
            "-o",
            "stdot",
            "-m",
            "*",
            "-p",
            "x=1",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("command line: -i cpuu: unknown input 'cpuu' — did you mean 'cpu'?"),
        "{err}"
    );
    assert!(
        err.contains("unknown output 'stdot' — did you mean 'stdout'?"),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = bin().arg("-V").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "kinesis-bit v{}\ncompatible with Fluent Bit 5.1.1\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let out = bin().arg("-h").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for p in ["stdin", "cpu", "dummy", "stdout", "null"] {
        assert!(text.contains(p), "{p} missing from help:\n{text}");
    }
    let out = bin().args(["-o", "stdout", "-h"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("OPTIONS") && text.contains("GLOBAL_OPTIONS"),
        "{text}"
    );
    assert!(
        text.contains("json_date_key") && text.contains("> default: date, type: string"),
        "{text}"
    );
}

#[test]
fn unsupported_and_unknown_options_fail() {
    let out = bin().arg("--daemon").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not supported by kinesis-bit"),
        "{}",
        stderr(&out)
    );
    let out = bin().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--bogus"), "{}", stderr(&out));
}

#[test]
fn log_file_receives_fluent_bit_formatted_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kb.log");
    let out = run_with_stdin(
        &[
            "-l",
            log.to_str().unwrap(),
            "-i",
            "stdin",
            "-o",
            "null",
            "-m",
            "*",
        ],
        b"x\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("[engine] started (pid="))
        .unwrap_or_else(|| panic!("no start line in:\n{text}"));
    // [2026/11/25 18:00:00.123] [ info] [engine] started (pid=N)
    let re = regex_lite(line);
    assert!(re, "bad log line format: {line}");
}

/// `[YYYY/MM/DD HH:MM:SS.mmm] [ info] ` prefix check without a regex dependency.
fn regex_lite(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 33
        && b[0] == b'['
        && b[5] == b'/'
        && b[8] == b'/'
        && b[11] == b' '
        && b[14] == b':'
        && b[17] == b':'
        && b[20] == b'.'
        && &line[24..33] == "] [ info]"
}

#[test]
fn quiet_and_env_level_precedence() {
    let out = run_with_stdin(&["-q", "-i", "stdin", "-o", "null", "-m", "*"], b"x\n");
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    let mut c = bin();
    c.env("FLB_LOG_LEVEL", "debug");
    let mut child = c
        .args(["-q", "-i", "stdin", "-o", "null", "-m", "*"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert!(
        stderr(&out).contains("[ info] [engine] started"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stdin_lines_go_through_a_parser_from_a_parsers_file() {
    let dir = tempfile::tempdir().unwrap();
    let parsers = dir.path().join("parsers.conf");
    std::fs::write(
        &parsers,
        "[PARSER]\n    Name   access\n    Format regex\n    Regex  ^(?<host>[^ ]+) (?<method>[A-Z]+) (?<path>[^ ]+) (?<code>\\d+)$\n    Types  code:integer\n",
    )
    .unwrap();
    let out = run_with_stdin(
        &[
            "-R",
            parsers.to_str().unwrap(),
            "-i",
            "stdin",
            "-p",
            "parser=access",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ],
        b"10.0.0.1 GET /index.html 200\nnot an access line\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"host\":\"10.0.0.1\",\"method\":\"GET\",\"path\":\"/index.html\",\"code\":200}\n{\"log\":\"not an access line\"}\n"
    );
    let out = run_with_stdin(
        &["-i", "stdin", "-p", "parser=nope", "-o", "null", "-m", "*"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown parser 'nope'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tail_applies_a_parser_and_keeps_path_key() {
    // Fluent Bit appends Path_Key after the parsed fields (flb_tail_pack_line_map).
    let dir = tempfile::tempdir().unwrap();
    let parsers = dir.path().join("parsers.conf");
    std::fs::write(&parsers, "[PARSER]\n    Name   kv\n    Format logfmt\n").unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "level=info msg=started\nlevel=warn msg=\"disk low\"\n",
    )
    .unwrap();
    let child = bin()
        .args(["-R", parsers.to_str().unwrap(), "-i", "tail"])
        .args([
            "-p",
            &format!("path={}", log.display()),
            "-p",
            "read_from_head=on",
        ])
        .args(["-p", "parser=kv", "-p", "path_key=file", "-t", "app"])
        .args([
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "app",
            "-f",
            "0.2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    let file = log.display().to_string();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{{\"level\":\"info\",\"msg\":\"started\",\"file\":\"{file}\"}}\n{{\"level\":\"warn\",\"msg\":\"disk low\",\"file\":\"{file}\"}}\n"
        )
    );
}

/// The log without its timestamps: `[ warn] [config] message` per line.
fn log_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .map(|l| match l.split_once("] ") {
            Some((stamp, rest)) if stamp.starts_with("[20") => rest.to_string(),
            _ => l.to_string(),
        })
        .collect()
}

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn an_unset_variable_is_named_in_the_warning_and_in_the_empty_value_error() {
    let conf = examples_dir().join("kinesis.conf");
    let yaml = examples_dir().join("kinesis.yaml");
    let (c, y) = (conf.display(), yaml.display());
    let y = format!("{y}: pipeline.outputs[0].endpoint (line 20, column 7)");
    for (file, at) in [(&conf, format!("{c}:18")), (&yaml, y)] {
        let out = bin()
            .env_remove("KINESIS_ENDPOINT")
            .args(["-c", file.to_str().unwrap(), "--dry-run"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            log_lines(&out),
            [
                format!("[ warn] [config] {at}: [env] variable ${{KINESIS_ENDPOINT}} is used but not set"),
                format!("[error] [config] {at}: [output kinesis_streams.0] key 'endpoint' has an empty value: variable ${{KINESIS_ENDPOINT}} is not set"),
                "Error: configuration file contains errors. Aborting".to_string(),
            ]
        );
    }
}

#[test]
fn every_example_runs_with_only_kinesis_endpoint_set() {
    let examples = examples_dir();
    let scripts: [&[&str]; 3] = [
        &["cli.sh"],
        &["run.sh", "kinesis.conf"],
        &["run.sh", "kinesis.yaml"],
    ];
    for args in scripts {
        let mut cmd = Command::new("bash");
        cmd.args(args.iter().map(|a| examples.join(a)))
            .arg("--dry-run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KINESIS_BIT", env!("CARGO_BIN_EXE_kinesis-bit"));
        let out = cmd
            .env("KINESIS_ENDPOINT", "http://127.0.0.1:4567")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "examples: no AWS credentials set; using placeholders, which a local emulator accepts\nconfiguration test is successful\n",
            "{args:?}"
        );
        let out = cmd.env_remove("KINESIS_ENDPOINT").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with("examples: KINESIS_ENDPOINT is not set: set it to the endpoint of a local Kinesis, e.g.\n  KINESIS_ENDPOINT=http://127.0.0.1:4567 bash "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_unknown_service_key_gets_a_suggestion_and_retry_limit_names_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("svc.conf");
    std::fs::write(
        &conf,
        "[SERVICE]\n    Log_Levl debug\n\n[INPUT]\n    Name cpu\n\n[OUTPUT]\n    Name        stdout\n    Match       *\n    Retry_Limit maybe\n",
    )
    .unwrap();
    let out = bin()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let c = conf.display();
    assert_eq!(
        log_lines(&out),
        [
            format!("[ warn] [config] {c}:2: [service] unknown key 'log_levl' is ignored; did you mean 'log_level'?"),
            format!("[ warn] [config] {c}:10: [stdout.0] invalid retry_limit. set default. ('maybe' is not an integer >= 1, no_limits, false, off or no_retries; using the default, 1)"),
            "configuration test is successful".to_string(),
        ]
    );
}

#[test]
fn an_unknown_filter_lists_the_filters_and_command_line_errors_say_command_line() {
    let out = bin()
        .args([
            "-i",
            "cpu",
            "-F",
            "nosuchfilter",
            "-m",
            "*",
            "-o",
            "stdout",
            "-m",
            "*",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "[error] [config] command line: -F nosuchfilter: unknown filter 'nosuchfilter'; available filters: "
        ) && lines[0].contains("rewrite_tag"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Error: command line contains errors. Aborting");
    let out = bin().args(["-F", "nosuchfilter", "-h"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("unknown filter 'nosuchfilter'; available filters: ")
            && err.contains("rewrite_tag"),
        "{err}"
    );
}

#[test]
fn an_unquoted_match_pattern_expanded_by_the_shell_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a.log", "b.log"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    // What `-m *` becomes in a directory holding a.log and b.log.
    let out = bin()
        .current_dir(dir.path())
        .args(["-i", "cpu", "-o", "stdout", "-m", "a.log", "b.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "command line: b.log: unexpected argument; it looks like the shell expanded an unquoted pattern into file names: quote the pattern (e.g. -m '*')\nTry 'kinesis-bit --help' for the list of options.\n"
    );
}

#[test]
fn help_lists_hot_reload_and_long_keys_keep_their_distance() {
    let out = bin().arg("-h").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "\n  -Y, --enable-hot-reload   reload the configuration on SIGHUP (Hot_Reload On)\n"
        ),
        "{text}"
    );
    assert!(text.contains("\nFilters\n"), "{text}");
    assert!(text.contains("\n  rewrite_tag "), "{text}");
    let out = bin()
        .args(["-o", "kinesis_streams", "-h"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "\ntls.windows.use_enterprise_store\n{:32}Windows only",
            ""
        )),
        "{text}"
    );
    // No key runs into its description: every line of the key lists that starts with a name
    // either leaves the 32-column field with a blank or ends inside it.
    let keys = text.split_once("GLOBAL_OPTIONS\n").unwrap().1;
    for line in keys.lines().filter(|l| !l.starts_with(' ') && l.len() > 32) {
        assert_eq!(line.as_bytes()[31], b' ', "{line:?}");
    }
}

/// A loopback stand-in for the EC2 instance metadata service that refuses every request, as
/// metadata endpoints behind a proxy do; the agent must not probe the real address in tests.
fn refusing_imds() -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = (&stream).write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn no_credentials_for_a_local_endpoint_is_one_clean_line_with_what_to_set() {
    let imds = refusing_imds();
    let mut cmd = bin();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k == "EKS_POD_EXECUTION_ROLE" {
            cmd.env_remove(k);
        }
    }
    // One record a second, flushed every 0.3 s and dropped at once: several failing flushes
    // of one record each within the 10 s of the rate limit.
    let child = cmd
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{imds}"),
        )
        .env("AWS_CONFIG_FILE", "/nonexistent/kb-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kb-test-credentials",
        )
        .args([
            "-i",
            "dummy",
            "-o",
            "kinesis_streams",
            "-m",
            "*",
            "-p",
            "stream=s",
            "-p",
            "region=us-east-1",
            // Nothing listens there: no request gets that far.
            "-p",
            "endpoint=http://127.0.0.1:9",
            "-p",
            "retry_limit=no_retries",
            "-f",
            "0.3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log_lines(&out);
    let output = "[output:kinesis_streams:kinesis_streams.0]";
    let failed = lines
        .iter()
        .filter(|l| l.contains("handed back"))
        .collect::<Vec<_>>();
    assert!(failed.len() >= 2, "{lines:#?}");
    for l in failed {
        assert_eq!(
            l,
            &format!("[ warn] {output} 1 record handed back for a later retry, s")
        );
    }
    assert!(
        lines.contains(&"[error] [engine] chunk '1' cannot be retried: input=dummy.0 > output=kinesis_streams.0; 1 record dropped".to_string()),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("no AWS credentials"))
            .collect::<Vec<_>>(),
        [&format!(
            "[error] {output} no AWS credentials available (environment, profile \"default\", web identity, container, EC2 IMDS): IMDS role request failed with HTTP 403; the endpoint http://127.0.0.1:9 looks like a local emulator: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to any values"
        )],
        "one line per 10 s, however many flushes fail"
    );
    // aws-config's own warning (`provider failed to provide credentials … (ProviderError(…))`)
    // is debug output.
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("ProviderError") && !l.contains("provider failed")),
        "{lines:#?}"
    );
}

#[test]
fn the_end_of_stdin_is_logged_at_info() {
    let out = run_with_stdin(&["-i", "stdin", "-o", "null", "-m", "*"], b"x\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log_lines(&out);
    assert!(
        lines.contains(
            &"[ info] [input:stdin:stdin.0] end of file (stdin closed by remote end)".to_string()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.starts_with("[ warn]")),
        "{lines:#?}"
    );
}
