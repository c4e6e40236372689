//! The forward input fed by an independent Forward-protocol client (Python's fluent-logger) and
//! by a frame shaped like the Docker fluentd log driver's, shipped to ferrokinesis with
//! `log_key log`: the raw log lines arrive.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, assert_success, stderr, terminate_and_wait};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{free_port, peers_dir, Ferrokinesis};

const CLIENT: &str = r#"
import socket, struct, sys, time
import msgpack
from fluent import sender

port = int(sys.argv[1])
s = sender.FluentSender('app', host='127.0.0.1', port=port, nanosecond_precision=True)
for i in range(3):
    assert s.emit('web', {'log': 'line %d' % i, 'i': i}), s.last_error
s.close()

# The Docker fluentd log driver: [tag, EventTime, record, {"chunk": id}], answered with an ack.
t = time.time_ns()
et = msgpack.ExtType(0, struct.pack('>II', t // 10**9, t % 10**9))
rec = {'container_id': 'abc123', 'container_name': '/web', 'source': 'stdout', 'log': 'he said "hi"\t'}
frame = msgpack.packb(['docker.abc123', et, rec, {'chunk': 'Y2h1bmsx'}], use_bin_type=True)
c = socket.create_connection(('127.0.0.1', port))
c.sendall(frame)
ack = msgpack.unpackb(c.recv(1024))
assert ack == {'ack': 'Y2h1bmsx'}, ack
c.close()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn fluent_logger_and_docker_frames_reach_kinesis_as_raw_lines() {
    let python = peers_dir().join("fluent/bin/python");
    assert!(
        python.exists(),
        "fluent-logger not found at {}: run `bash scripts/install-peers.sh`",
        python.display()
    );
    let ferro = Ferrokinesis::start();
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("fwd", 1).await.unwrap();
    let port = free_port();
    let child = agent()
        .args([
            "-i",
            "forward",
            "-p",
            "listen=127.0.0.1",
            "-p",
            &format!("port={port}"),
        ])
        .args([
            "-o",
            "kinesis_streams",
            "-p",
            "stream=fwd",
            "-p",
            "region=us-east-1",
        ])
        .args([
            "-p",
            &format!("endpoint={}", ferro.endpoint()),
            "-p",
            "log_key=log",
        ])
        .args(["-m", "*", "-f", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "forward input did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Command::new(&python)
        .args(["-c", CLIENT, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let want = 4;
    let start = Instant::now();
    while ferro.captured().len() < want && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = terminate_and_wait(child, Duration::from_secs(30)).await;
    assert_success(&out);
    let mut got: Vec<Vec<u8>> = ferro.captured().into_iter().map(|r| r.data).collect();
    got.sort();
    let mut expected: Vec<Vec<u8>> = vec![
        b"line 0\n".to_vec(),
        b"line 1\n".to_vec(),
        b"line 2\n".to_vec(),
        b"he said \"hi\"\t\n".to_vec(),
    ];
    expected.sort();
    assert_eq!(got, expected, "agent log:\n{}", stderr(&out));
}
