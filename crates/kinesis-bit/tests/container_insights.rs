//! The public Container Insights DaemonSet's Fluent Bit configuration
//! (`fixtures/container-insights/`, see its SOURCE.md: `fluent-bit.conf`,
//! `application-log.conf`, `dataplane-log.conf`, `host-log.conf`, `parsers.conf`) through
//! `--dry-run`, with the environment the DaemonSet sets. Every input, filter and parser
//! validates as it is; its outputs are `cloudwatch_logs`, which kinesis-bit does not have, so
//! the files as published fail on exactly those three sections, and the same files with each
//! of them turned into a `kinesis_streams` output (what a user switching does) pass.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{agent, run_with_stdin, stderr};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/container-insights")
}

fn dry_run(dir: &Path) -> (bool, String) {
    let mut cmd = agent();
    cmd.env("HTTP_SERVER", "On")
        .env("HTTP_PORT", "2020")
        .env("READ_FROM_HEAD", "Off")
        .env("READ_FROM_TAIL", "On")
        .env("AWS_REGION", "eu-west-1")
        .env("CLUSTER_NAME", "prod")
        .env("HOST_NAME", "ip-10-0-12-34.eu-west-1.compute.internal")
        .arg("-c")
        .arg(dir.join("fluent-bit.conf"))
        .arg("--dry-run");
    let out = run_with_stdin(&mut cmd, b"", Duration::from_secs(30));
    (out.status.success(), stderr(&out))
}

/// `text` with every `[OUTPUT]` section naming `cloudwatch_logs` replaced by a
/// `kinesis_streams` output with the same `Match`.
fn to_kinesis(text: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut String| {
        let is_cw = block.iter().any(|l| {
            let w: Vec<String> = l.split_whitespace().map(str::to_ascii_lowercase).collect();
            w == ["name", "cloudwatch_logs"]
        });
        if is_cw {
            let matcher = block
                .iter()
                .find(|l| l.trim().to_ascii_lowercase().starts_with("match"))
                .copied()
                .unwrap_or("    Match *");
            out.push_str(&format!(
                "[OUTPUT]\n    Name kinesis_streams\n{matcher}\n    region ${{AWS_REGION}}\n    stream logs\n\n"
            ));
        } else {
            for l in block.iter() {
                out.push_str(l);
                out.push('\n');
            }
        }
        block.clear();
    };
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') || t.starts_with('@') {
            flush(&mut block, &mut out);
        }
        if t.eq_ignore_ascii_case("[output]") || !block.is_empty() {
            block.push(line);
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    flush(&mut block, &mut out);
    out
}

#[test]
fn as_published_only_the_cloudwatch_outputs_are_refused() {
    let (ok, log) = dry_run(&fixtures());
    assert!(!ok, "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert_eq!(errors.len(), 3, "{log}");
    for (e, file) in errors.iter().zip([
        "application-log.conf",
        "dataplane-log.conf",
        "host-log.conf",
    ]) {
        assert!(
            e.contains(&format!("/{file}:")) && e.contains("unknown output 'cloudwatch_logs'"),
            "{e}\n{log}"
        );
    }
}

#[test]
fn with_kinesis_outputs_the_whole_configuration_passes_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap();
        let text = if p.extension().is_some_and(|e| e == "conf") {
            to_kinesis(&text)
        } else {
            text
        };
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (ok, log) = dry_run(dir.path());
    assert!(ok, "{log}");
    assert!(log.contains("configuration test is successful"), "{log}");
}
