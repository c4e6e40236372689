//! As a new user would run it: `kinesis-bit -i tail -p path=…/*.log -p db=… -o kinesis_streams`
//! ships a growing, rotating log file to a local Kinesis, across an agent restart, with every
//! line exactly once.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{agent, assert_success, stderr, terminate_and_wait};
use kb_testkit::kds::Kds;
use kb_testkit::peers::Ferrokinesis;

fn append(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "{{\"seq\":{i},\"msg\":\"line {i}\"}}").unwrap();
    }
}

fn start(dir: &Path, endpoint: &str) -> Child {
    agent()
        .args(["-i", "tail", "-p", &format!("path={}/*.log", dir.display())])
        .args([
            "-p",
            &format!("db={}/tail.db", dir.display()),
            "-p",
            "refresh_interval=1",
        ])
        .args(["-p", "rotate_wait=3", "-t", "app"])
        .args([
            "-o",
            "kinesis_streams",
            "-p",
            "stream=logs",
            "-p",
            "region=us-east-1",
        ])
        .args([
            "-p",
            &format!("endpoint={endpoint}"),
            "-m",
            "app",
            "-f",
            "0.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// How often each seq arrived, once `n` distinct ones are there (or the time is up).
async fn wait_for(ferro: &Ferrokinesis, n: u64) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let mut counts = vec![0u32; n as usize + 1000];
        for r in ferro.captured() {
            let line = String::from_utf8_lossy(&r.data);
            let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
            let log: serde_json::Value = serde_json::from_str(v["log"].as_str().unwrap()).unwrap();
            counts[log["seq"].as_u64().unwrap() as usize] += 1;
        }
        let seen = counts.iter().filter(|c| **c > 0).count() as u64;
        if seen >= n || start.elapsed() > Duration::from_secs(30) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn growing_rotating_file_arrives_exactly_once_across_a_restart() {
    let ferro = Ferrokinesis::start();
    Kds::new(&ferro.endpoint(), "us-east-1")
        .create_stream("logs", 2)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::File::create(&log).unwrap();

    let agent1 = start(dir.path(), &ferro.endpoint());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    append(&log, 0..500);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Rotation by rename: the old file is followed until Rotate_Wait, the new one from its head.
    append(&log, 500..600);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 600..900);
    wait_for(&ferro, 900).await;
    let out1 = terminate_and_wait(agent1, Duration::from_secs(30)).await;
    assert_success(&out1);

    // Written while the agent is down: the DB offset resumes exactly there.
    append(&log, 900..1200);
    let agent2 = start(dir.path(), &ferro.endpoint());
    let counts = wait_for(&ferro, 1200).await;
    let out2 = terminate_and_wait(agent2, Duration::from_secs(30)).await;
    assert_success(&out2);
    let missing: Vec<usize> = (0..1200).filter(|i| counts[*i] == 0).collect();
    let dups: Vec<usize> = (0..1200).filter(|i| counts[*i] > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "missing {missing:?} duplicated {dups:?}\nfirst run:\n{}\nsecond run:\n{}",
        stderr(&out1),
        stderr(&out2)
    );
}

/// Lines of equal length, so that a copy-truncated file comes back at exactly its old size.
fn write_batch(path: &Path, range: std::ops::Range<u64>) {
    let mut text = String::new();
    for i in range {
        text.push_str(&format!(
            "{{\"seq\":{i:>7},\"msg\":\"copy-truncate scenario line\"}}\n"
        ));
    }
    // One write: the file is back at its old size before the agent can look.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The configuration of the issue: `Path dir/*.log`, `Refresh_Interval 1`, `Rotate_Wait 5`,
/// `DB`, `Parser json`.
fn start_parsed(dir: &Path, endpoint: &str, inotify: &str) -> Child {
    let parsers = dir.join("parsers.conf");
    std::fs::write(&parsers, "[PARSER]\n    Name   json\n    Format json\n").unwrap();
    agent()
        .args(["-R", parsers.to_str().unwrap()])
        .args(["-i", "tail", "-p", &format!("path={}/*.log", dir.display())])
        .args(["-p", &format!("db={}/tail.db", dir.display())])
        .args(["-p", "refresh_interval=1", "-p", "rotate_wait=5"])
        .args([
            "-p",
            "parser=json",
            "-p",
            &format!("inotify_watcher={inotify}"),
        ])
        .args(["-t", "app", "-o", "kinesis_streams", "-p", "stream=logs"])
        .args([
            "-p",
            "region=us-east-1",
            "-p",
            &format!("endpoint={endpoint}"),
        ])
        .args(["-m", "app", "-f", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// How often each seq arrived (parsed records: a torn line would arrive unparsed and fail).
async fn wait_parsed(ferro: &Ferrokinesis, n: usize) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let mut counts = vec![0u32; 21_000];
        for r in ferro.captured() {
            let line = String::from_utf8_lossy(&r.data);
            let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
            let seq = v["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("not a parsed line (torn?): {line}"));
            counts[seq as usize] += 1;
        }
        let seen = counts[..n].iter().filter(|c| **c > 0).count();
        if seen >= n || start.elapsed() > Duration::from_secs(60) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rename rotation, copy-truncate regrowing at once to the old size and beyond, a new file:
/// 21,000 lines, each in Kinesis exactly once, across a restart in the middle.
async fn copy_truncate_scenario(inotify: &str) {
    let ferro = Ferrokinesis::start();
    Kds::new(&ferro.endpoint(), "us-east-1")
        .create_stream("logs", 2)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("app.log");
    std::fs::File::create(&log).unwrap();
    let agent1 = start_parsed(d, &ferro.endpoint(), inotify);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write_batch(&log, 0..5000);
    wait_parsed(&ferro, 5000).await;
    std::fs::rename(&log, d.join("app.log.1")).unwrap();
    write_batch(&log, 5000..10_000);
    wait_parsed(&ferro, 10_000).await;
    let out1 = terminate_and_wait(agent1, Duration::from_secs(30)).await;
    assert_success(&out1);

    // While the agent is down, logrotate's copytruncate runs and the writer goes on.
    std::fs::copy(&log, d.join("app.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_batch(&log, 10_000..12_000);
    let agent2 = start_parsed(d, &ferro.endpoint(), inotify);
    wait_parsed(&ferro, 12_000).await;
    // And once more while it runs: back at the old size at once, then beyond.
    std::fs::copy(&log, d.join("app.log.3")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_batch(&log, 12_000..14_000);
    write_batch(&log, 14_000..20_000);
    write_batch(&d.join("late.log"), 20_000..21_000);
    let counts = wait_parsed(&ferro, 21_000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out2 = terminate_and_wait(agent2, Duration::from_secs(30)).await;
    assert_success(&out2);
    let counts_after = wait_parsed(&ferro, 21_000).await;
    assert_eq!(counts, counts_after, "records arrived after all were there");
    let missing: Vec<usize> = (0..21_000).filter(|i| counts[*i] == 0).collect();
    let dups: Vec<usize> = (0..21_000).filter(|i| counts[*i] > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "{} missing (first {:?}), {} duplicated (first {:?})\nfirst run:\n{}\nsecond run:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        dups.len(),
        &dups[..dups.len().min(10)],
        stderr(&out1),
        stderr(&out2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_truncate_scenario_with_inotify() {
    copy_truncate_scenario("on").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_truncate_scenario_polling() {
    copy_truncate_scenario("off").await;
}
