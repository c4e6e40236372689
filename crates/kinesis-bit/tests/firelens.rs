//! The configuration ECS FireLens generates for a task (forward on a unix socket and on
//! 127.0.0.1, a tcp health-check input routed to `null`, `record_modifier` adding the task's
//! metadata, `@INCLUDE` of the user's file with a `kinesis_streams` output), fed by Python's
//! fluent-logger over the unix socket and over TCP: every record reaches ferrokinesis once
//! with the ECS fields, the health checks reach nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, assert_success, stderr, terminate_and_wait};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{free_port, peers_dir, Ferrokinesis};

const CLIENT: &str = r#"
import socket, sys
from fluent import sender

sock, port, health = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = sender.FluentSender('app-firelens-1234', host='unix://' + sock, nanosecond_precision=True)
for i in range(50):
    assert u.emit(None, {'log': 'unix %d' % i, 'container_name': 'app', 'source': 'stdout'}), u.last_error
u.close()
t = sender.FluentSender('app-firelens-1234', host='127.0.0.1', port=port, nanosecond_precision=True)
for i in range(50):
    assert t.emit(None, {'log': 'tcp %d' % i, 'container_name': 'app', 'source': 'stderr'}), t.last_error
t.close()
# What the ECS agent's health check sends to the tcp input.
h = socket.create_connection(('127.0.0.1', health))
h.sendall(b'{"health": "check"}\n')
h.close()
"#;

/// FireLens's generated main file, as the ECS agent writes it (`/fluent-bit/etc/fluent-bit.conf`).
fn generated(sock: &str, port: u16, health: u16, include: &str) -> String {
    format!(
        "[INPUT]\n    Name tcp\n    Tag firelens-healthcheck\n    Listen 127.0.0.1\n    Port {health}\n\n\
         [INPUT]\n    Name forward\n    Mem_Buf_Limit 25MB\n    unix_path {sock}\n\n\
         [INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port {port}\n\n\
         [FILTER]\n    Name record_modifier\n    Match *\n\
         \x20   Record ec2_instance_id i-01dce3798d7c17a58\n\
         \x20   Record ecs_cluster furrlens\n\
         \x20   Record ecs_task_arn arn:aws:ecs:us-east-1:144718711470:task/737d73bf-8c6e-44f1-aa86-7b3ae3922011\n\
         \x20   Record ecs_task_definition firelens-example-twitch-session:5\n\n\
         [OUTPUT]\n    Name null\n    Match firelens-healthcheck\n\n\
         @INCLUDE {include}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn firelens_configuration_ships_every_record_with_the_task_metadata() {
    let python = peers_dir().join("fluent/bin/python");
    assert!(
        python.exists(),
        "fluent-logger not found at {}: run `bash scripts/install-peers.sh`",
        python.display()
    );
    let ferro = Ferrokinesis::start();
    Kds::new(&ferro.endpoint(), "us-east-1")
        .create_stream("app-logs", 2)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fluent.sock");
    let user = dir.path().join("extra.conf");
    std::fs::write(
        &user,
        format!(
            "[SERVICE]\n    Flush 0.3\n\n[OUTPUT]\n    Name kinesis_streams\n    Match app-firelens*\n    region us-east-1\n    stream app-logs\n    endpoint {}\n",
            ferro.endpoint()
        ),
    )
    .unwrap();
    let (port, health) = (free_port(), free_port());
    let main = dir.path().join("fluent-bit.conf");
    std::fs::write(
        &main,
        generated(sock.to_str().unwrap(), port, health, user.to_str().unwrap()),
    )
    .unwrap();
    let child = agent()
        .args(["-c", main.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !(sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "inputs did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Command::new(&python)
        .args([
            "-c",
            CLIENT,
            sock.to_str().unwrap(),
            &port.to_string(),
            &health.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let start = Instant::now();
    while ferro.captured().len() < 100 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = terminate_and_wait(child, Duration::from_secs(30)).await;
    assert_success(&out);
    let mut got: Vec<String> = ferro
        .captured()
        .into_iter()
        .map(|r| String::from_utf8(r.data).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..50)
        .map(|i| ("unix", "stdout", i))
        .chain((0..50).map(|i| ("tcp", "stderr", i)))
        .map(|(via, source, i)| {
            format!(
                "{{\"log\":\"{via} {i}\",\"container_name\":\"app\",\"source\":\"{source}\",\
                 \"ec2_instance_id\":\"i-01dce3798d7c17a58\",\"ecs_cluster\":\"furrlens\",\
                 \"ecs_task_arn\":\"arn:aws:ecs:us-east-1:144718711470:task/737d73bf-8c6e-44f1-aa86-7b3ae3922011\",\
                 \"ecs_task_definition\":\"firelens-example-twitch-session:5\"}}\n"
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "agent log:\n{}", stderr(&out));
}
