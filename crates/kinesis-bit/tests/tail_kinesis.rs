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
