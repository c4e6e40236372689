//! The `systemd` input run by the binary over journal files written by systemd-journal-remote
//! (see kb-inputs' `tests/systemd_fixture`), and the EKS Container Insights configuration.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
#[path = "../../kb-inputs/tests/systemd_fixture/mod.rs"]
mod systemd_fixture;

use common::{agent, assert_success, stderr, terminate, wait_with_timeout};
use systemd_fixture::{batch1, batch2, write_journal, BOOT_ID};

/// Run the agent until it printed `want` lines (then `settle` more), stop it with SIGTERM.
fn run_until_lines(args: &[&str], want: usize, settle: Duration) -> (Vec<String>, Output) {
    let mut child = agent()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while lines.len() < want && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
            lines.push(l);
        }
    }
    std::thread::sleep(settle);
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(20));
    let _ = reader.join();
    lines.extend(rx.try_iter());
    (lines, out)
}

fn stdout_args<'a>(input: &[&'a str], matching: &'a str) -> Vec<&'a str> {
    let mut a = vec!["-i", "systemd"];
    for p in input {
        a.extend(["-p", p]);
    }
    a.extend([
        "-o",
        "stdout",
        "-p",
        "format=json_lines",
        "-p",
        "json_date_key=false",
        "-m",
        matching,
        "-f",
        "1",
    ]);
    a
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_journal(&dir.path().join("batch1.journal"), &batch1());
    dir
}

fn path_prop(dir: &Path) -> String {
    format!("path={}", dir.display())
}

#[test]
fn records_as_json_lines_exactly() {
    let dir = fixture();
    let path = path_prop(dir.path());
    let (lines, out) = run_until_lines(
        &stdout_args(&[&path, "tag=journal"], "*"),
        5,
        Duration::from_millis(500),
    );
    assert_success(&out);
    let b = BOOT_ID;
    assert_eq!(
        lines,
        [
            format!(
                r#"{{"_BOOT_ID":"{b}","MESSAGE":"Started kubelet","_SYSTEMD_UNIT":"kubelet.service","_PID":"1001","PRIORITY":"6","_HOSTNAME":"node-1","_SOURCE_REALTIME_TIMESTAMP":"1699999999000001"}}"#
            ),
            format!(
                r#"{{"_BOOT_ID":"{b}","_HOSTNAME":"node-1","MESSAGE":"containerd is up","_SYSTEMD_UNIT":"containerd.service","_PID":"1002","PRIORITY":"5"}}"#
            ),
            // The binary message: NUL and newline escaped, the invalid byte as U+FFFD.
            format!(
                r#"{{"_BOOT_ID":"{b}","_HOSTNAME":"node-1","MESSAGE":"bin\u0000ary\ufffd\nline","_SYSTEMD_UNIT":"docker.service","_PID":"1003","PRIORITY":"3"}}"#
            ),
            format!(
                r#"{{"_BOOT_ID":"{b}","_HOSTNAME":"node-1","MESSAGE":"a kernel message","PRIORITY":"4","_TRANSPORT":"kernel"}}"#
            ),
            format!(
                r#"{{"_BOOT_ID":"{b}","_SYSTEMD_UNIT":"kubelet.service","_PID":"1001","PRIORITY":"6","_HOSTNAME":"node-1","MESSAGE":"kubelet again","TAGS":["a","b"]}}"#
            ),
        ]
    );
}

#[test]
fn the_record_time_is_the_journal_receive_time() {
    let dir = fixture();
    let path = path_prop(dir.path());
    let (lines, out) = run_until_lines(
        &[
            "-i",
            "systemd",
            "-p",
            &path,
            "-p",
            "systemd_filter=_SYSTEMD_UNIT=kubelet.service",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_format=epoch",
            "-m",
            "*",
        ],
        2,
        Duration::from_millis(300),
    );
    assert_success(&out);
    let dates: Vec<i64> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["date"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // __REALTIME_TIMESTAMP 1700000000.1 and .5; the _SOURCE_REALTIME_TIMESTAMP field says 1699999999.
    assert_eq!(dates, [1_700_000_000, 1_700_000_000]);
}

#[test]
fn tag_expansion_routes_by_unit() {
    let dir = fixture();
    let path = path_prop(dir.path());
    let (lines, out) = run_until_lines(
        &stdout_args(
            &[&path, "tag=host.*", "strip_underscores=on"],
            "host.kubelet.service",
        ),
        2,
        Duration::from_millis(700),
    );
    assert_success(&out);
    let messages: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["SYSTEMD_UNIT"], "kubelet.service", "{l}");
            v["MESSAGE"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(messages, ["Started kubelet", "kubelet again"]);

    let (lines, out) = run_until_lines(
        &stdout_args(&[&path, "tag=host.*", "lowercase=on"], "host.unknown"),
        1,
        Duration::from_millis(700),
    );
    assert_success(&out);
    let b = BOOT_ID;
    assert_eq!(
        lines,
        [format!(
            r#"{{"_boot_id":"{b}","_hostname":"node-1","message":"a kernel message","priority":"4","_transport":"kernel"}}"#
        )]
    );
}

#[test]
fn filters_and_max_fields() {
    let dir = fixture();
    let path = path_prop(dir.path());
    let (lines, out) = run_until_lines(
        &stdout_args(
            &[
                &path,
                "systemd_filter=_SYSTEMD_UNIT=docker.service",
                "systemd_filter=PRIORITY=5",
                "max_fields=2",
            ],
            "*",
        ),
        2,
        Duration::from_millis(700),
    );
    assert_success(&out);
    let b = BOOT_ID;
    assert_eq!(
        lines,
        [
            format!(r#"{{"_BOOT_ID":"{b}","_HOSTNAME":"node-1"}}"#),
            format!(r#"{{"_BOOT_ID":"{b}","_HOSTNAME":"node-1"}}"#),
        ]
    );
    let (lines, out) = run_until_lines(
        &stdout_args(
            &[
                &path,
                "systemd_filter=_SYSTEMD_UNIT=kubelet.service",
                "systemd_filter=TAGS=a",
                "systemd_filter_type=And",
                "strip_underscores=true",
            ],
            "*",
        ),
        1,
        Duration::from_millis(700),
    );
    assert_success(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(r#""MESSAGE":"kubelet again""#),
        "{lines:?}"
    );
}

#[test]
fn a_restart_with_db_neither_repeats_nor_skips() {
    let dir = fixture();
    let state = tempfile::tempdir().unwrap();
    let path = path_prop(dir.path());
    let db = format!("db={}", state.path().join("systemd.db").display());
    let args = stdout_args(&[&path, &db, "tag=journal"], "*");
    let message = |l: &String| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["MESSAGE"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let (first, out) = run_until_lines(&args, 5, Duration::from_millis(300));
    assert_success(&out);
    assert_eq!(first.len(), 5);

    write_journal(&dir.path().join("batch2.journal"), &batch2());
    let (second, out) = run_until_lines(&args, 2, Duration::from_millis(1000));
    assert_success(&out);
    assert_eq!(
        second.iter().map(message).collect::<Vec<_>>(),
        ["later kubelet", "later docker"]
    );
    assert!(stderr(&out).contains("seek_cursor="), "{}", stderr(&out));

    // Entries that arrive while the agent runs are read, and the cursor follows them.
    let later = dir.path().join("batch3.journal");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        write_journal(
            &later,
            &[
                systemd_fixture::Entry::new(systemd_fixture::T0 + 30_000_000, 30_000_000)
                    .field("MESSAGE", "while running")
                    .field("_SYSTEMD_UNIT", "kubelet.service"),
            ],
        );
    });
    let (third, out) = run_until_lines(&args, 1, Duration::from_millis(500));
    writer.join().unwrap();
    assert_success(&out);
    assert_eq!(
        third.iter().map(message).collect::<Vec<_>>(),
        ["while running"]
    );

    let (fourth, out) = run_until_lines(&args, 1, Duration::from_millis(300));
    assert_success(&out);
    assert!(fourth.is_empty(), "{fourth:?}");
}

#[test]
fn read_from_tail_skips_the_journal_so_far() {
    let dir = fixture();
    let path = path_prop(dir.path());
    let later = dir.path().join("batch2.journal");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        write_journal(&later, &batch2());
    });
    let (lines, out) = run_until_lines(
        &stdout_args(&[&path, "read_from_tail=on", "tag=journal"], "*"),
        2,
        Duration::from_millis(500),
    );
    writer.join().unwrap();
    assert_success(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("later kubelet") && lines[1].contains("later docker"));
}

#[test]
fn a_missing_path_is_reported_at_start() {
    let (lines, out) = run_until_lines(
        &stdout_args(&["path=/nonexistent/kb-journal"], "*"),
        1,
        Duration::from_millis(300),
    );
    assert!(lines.is_empty());
    let log = stderr(&out);
    assert!(
        log.contains("given path /nonexistent/kb-journal is invalid"),
        "{log}"
    );
    assert!(log.contains("[error]"), "{log}");
}

/// The `[INPUT] Name systemd` section of `dataplane-log.conf` in the Container Insights
/// Fluent Bit ConfigMap: repository aws-samples/amazon-cloudwatch-container-insights, file
/// k8s-deployment-manifest-templates/deployment-mode/daemonset/container-insights-monitoring/
/// fluent-bit/fluent-bit.yaml (commit 0709891017790bb0bdef6fd462a6815d924d13e7), copied as
/// it is there. That ConfigMap's `host-log.conf` has no systemd section (only tail inputs),
/// so it adds nothing for this input.
const EKS_DATAPLANE_SYSTEMD: &str = "\
[INPUT]
    Name                systemd
    Tag                 dataplane.systemd.*
    Systemd_Filter      _SYSTEMD_UNIT=docker.service
    Systemd_Filter      _SYSTEMD_UNIT=containerd.service
    Systemd_Filter      _SYSTEMD_UNIT=kubelet.service
    DB                  /var/fluent-bit/state/systemd.db
    Path                /var/log/journal
    Read_From_Tail      ${READ_FROM_TAIL}
";

#[test]
fn eks_container_insights_systemd_section_passes_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dataplane-log.conf");
    std::fs::write(
        &conf,
        format!("{EKS_DATAPLANE_SYSTEMD}\n[OUTPUT]\n    Name   null\n    Match  dataplane.*\n"),
    )
    .unwrap();
    for read_from_tail in ["Off", "On"] {
        let out = agent()
            .args(["-c", conf.to_str().unwrap(), "--dry-run"])
            .env("READ_FROM_TAIL", read_from_tail)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_success(&out);
        assert!(stderr(&out).contains("configuration test is successful"));
    }

    // The same input in YAML.
    let yaml = dir.path().join("dataplane.yaml");
    std::fs::write(
        &yaml,
        "pipeline:\n  inputs:\n    - name: systemd\n      tag: dataplane.systemd.*\n      systemd_filter:\n        - _SYSTEMD_UNIT=docker.service\n        - _SYSTEMD_UNIT=containerd.service\n        - _SYSTEMD_UNIT=kubelet.service\n      db: /var/fluent-bit/state/systemd.db\n      path: /var/log/journal\n      read_from_tail: ${READ_FROM_TAIL}\n  outputs:\n    - name: 'null'\n      match: 'dataplane.*'\n",
    )
    .unwrap();
    let out = agent()
        .args(["-c", yaml.to_str().unwrap(), "--dry-run"])
        .env("READ_FROM_TAIL", "Off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn eks_container_insights_systemd_section_reads_the_three_units() {
    let dir = fixture();
    let state = tempfile::tempdir().unwrap();
    // The section as shipped, pointed at the fixture journal and a scratch DB.
    let section = EKS_DATAPLANE_SYSTEMD
        .replace("/var/log/journal", &dir.path().display().to_string())
        .replace(
            "/var/fluent-bit/state/systemd.db",
            &state.path().join("systemd.db").display().to_string(),
        );
    let conf = state.path().join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Flush 1\n\n{section}\n[OUTPUT]\n    Name   stdout\n    Match  dataplane.systemd.*\n    Format json_lines\n    json_date_key false\n"
        ),
    )
    .unwrap();
    let mut child = agent()
        .args(["-c", conf.to_str().unwrap()])
        .env("READ_FROM_TAIL", "Off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(4)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert_success(&out);
    let mut units: Vec<String> = reader
        .join()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["_SYSTEMD_UNIT"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    units.sort();
    // Everything but the entry without a unit.
    assert_eq!(
        units,
        [
            "containerd.service",
            "docker.service",
            "kubelet.service",
            "kubelet.service"
        ]
    );
}
