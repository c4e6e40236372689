//! Running the agent binary in tests: with input on stdin, until it exits or is stopped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The agent binary with a clean logging environment and test credentials.
pub fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinesis-bit"));
    c.env_remove("FLB_LOG_LEVEL")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTKEY")
        .env("AWS_SECRET_ACCESS_KEY", "testsecret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/kb-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kb-test-credentials",
        );
    c
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut v);
        }
        v
    })
}

/// Wait for the agent to exit, reading its output meanwhile; kill it after `limit`.
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the agent") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kinesis-bit did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Run the agent with `input` on stdin (it exits at end of input after delivering).
pub fn run_with_stdin(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = wait_with_timeout(child, limit);
    let _ = writer.join();
    out
}

/// Send SIGTERM to the agent.
pub fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM failed");
}

/// SIGTERM the agent and wait for it (up to `limit`) without blocking the async runtime.
pub async fn terminate_and_wait(child: Child, limit: Duration) -> Output {
    terminate(&child);
    tokio::task::spawn_blocking(move || wait_with_timeout(child, limit))
        .await
        .expect("wait for the agent")
}

/// The agent's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a successful exit, showing the log otherwise.
pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}; stderr:\n{}",
        o.status,
        stderr(o)
    );
}
