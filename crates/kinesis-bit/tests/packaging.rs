//! The files under `packaging/`: the shipped configuration passes the real binary's
//! `--dry-run`, the EKS ConfigMap carries exactly that configuration, and the Dockerfile,
//! systemd unit and DaemonSet agree on where the configuration and the state live.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{agent, run_with_stdin, stderr};

fn packaging(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(packaging(name))
        .unwrap_or_else(|e| panic!("{}: {e}", packaging(name).display()))
}

/// The literal block `kinesis-bit.yaml: |` of the ConfigMap, de-indented.
fn configmap_config(manifest: &str) -> String {
    let mut lines = manifest.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == "  kinesis-bit.yaml: |")
        .expect("the ConfigMap's kinesis-bit.yaml key");
    let mut block: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect();
    while block.last() == Some(&"") {
        block.pop();
    }
    block.join("\n") + "\n"
}

#[test]
fn packaged_config_passes_dry_run() {
    let mut cmd = agent();
    cmd.env("AWS_REGION", "eu-west-1")
        .env("KINESIS_STREAM", "node-logs")
        .arg("-c")
        .arg(packaging("kinesis-bit.yaml"))
        .arg("--dry-run");
    let out = run_with_stdin(&mut cmd, b"", Duration::from_secs(30));
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("configuration test is successful"), "{log}");
}

#[test]
fn daemonset_configmap_carries_the_packaged_config() {
    let manifest = read("eks-daemonset.yaml");
    assert_eq!(
        configmap_config(&manifest),
        read("kinesis-bit.yaml"),
        "the ConfigMap in eks-daemonset.yaml differs from packaging/kinesis-bit.yaml"
    );
}

#[test]
fn image_unit_and_daemonset_agree_on_paths() {
    let config = "/etc/kinesis-bit/kinesis-bit.yaml";
    let docker = read("Dockerfile");
    assert!(docker.contains(&format!("CMD [\"-c\", \"{config}\"]")));
    assert!(docker.contains("cargo build --release --locked -p kinesis-bit"));
    assert!(read("kinesis-bit.service")
        .contains(&format!("ExecStart=/usr/bin/kinesis-bit -c {config}")));
    let manifest = read("eks-daemonset.yaml");
    assert!(manifest.contains(&format!("args: [\"-c\", \"{config}\"]")));
    // The tail offsets live in the state directory of the unit and the DaemonSet's hostPath.
    assert!(read("kinesis-bit.yaml").contains("db: /var/lib/kinesis-bit/tail.db"));
    assert!(read("kinesis-bit.service").contains("StateDirectory=kinesis-bit"));
    assert!(manifest.contains("mountPath: /var/lib/kinesis-bit"));
    assert!(manifest.contains("path: /api/v1/health"));
}
