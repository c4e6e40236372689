//! The public Container Insights DaemonSet's Fluent Bit configuration
//! (`fixtures/container-insights/`, see its SOURCE.md) through `--dry-run`, with the
//! environment the DaemonSet sets. The metadata filters it uses (`kubernetes` with
//! `Use_Kubelet`, `aws`) must validate; the other errors are each about a piece owned
//! elsewhere, listed in `ELSEWHERE`: when one of them is merged its line goes, and this test
//! then requires the dry run to pass without it.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{agent, run_with_stdin, stderr};

/// Errors about plugins and features not on this branch (owner: another branch).
const ELSEWHERE: &[&str] = &[
    // the systemd input
    "unknown input 'systemd'",
    // the modify filter
    "unknown filter 'modify'",
    // CloudWatch Logs is no output of kinesis-bit
    "unknown output 'cloudwatch_logs'",
    // [PARSER] regexes with look-around: kb-inputs' parsers compile with Rust's regex crate
    "look-around, including look-ahead and look-behind, is not supported",
    // ... and with parsers.conf rejected, the tail inputs that name its `syslog` parser
    "unknown parser 'syslog'",
];

#[test]
fn the_container_insights_configuration_passes_dry_run_as_far_as_the_metadata_filters_go() {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/container-insights/fluent-bit.conf");
    let mut cmd = agent();
    cmd.env("HTTP_SERVER", "On")
        .env("HTTP_PORT", "2020")
        .env("READ_FROM_HEAD", "Off")
        .env("READ_FROM_TAIL", "On")
        .env("AWS_REGION", "eu-west-1")
        .env("CLUSTER_NAME", "prod")
        .env("HOST_NAME", "ip-10-0-12-34.eu-west-1.compute.internal")
        .arg("-c")
        .arg(&conf)
        .arg("--dry-run");
    let out = run_with_stdin(&mut cmd, b"", Duration::from_secs(30));
    let log = stderr(&out);
    if out.status.success() {
        assert!(log.contains("configuration test is successful"), "{log}");
        return;
    }
    // An error's message may span lines (a regex error): a block runs from its `[error]`
    // line to the next log line.
    let mut errors: Vec<String> = Vec::new();
    let mut in_error = false;
    for l in log.lines() {
        if l.starts_with('[') && l.contains("] [") {
            in_error = l.contains("[error]");
            if in_error {
                errors.push(l.to_string());
            }
        } else if in_error {
            if let Some(e) = errors.last_mut() {
                e.push('\n');
                e.push_str(l);
            }
        }
    }
    for e in &errors {
        assert!(
            ![
                "[filter kubernetes",
                "[filter aws",
                "filter 'kubernetes'",
                "filter 'aws'"
            ]
            .iter()
            .any(|m| e.contains(m)),
            "a metadata filter is rejected: {e}\n{log}"
        );
    }
    let unexplained: Vec<&String> = errors
        .iter()
        .filter(|e| !ELSEWHERE.iter().any(|w| e.contains(w)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "unexpected errors: {unexplained:#?}\n{log}"
    );
}
