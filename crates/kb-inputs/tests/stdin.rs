//! `stdin` through the real engine over in-memory readers.

mod common;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{build_errors, mp, props, run_input};
use kb_core::event::EventTime;
use kb_inputs::stdin::{self, StdinInput};
use tokio::io::{AsyncRead, ReadBuf};

/// Returns one scripted piece per `read()`, then end of file.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new(pieces: &[&[u8]]) -> Self {
        Pieces(pieces.iter().map(|p| p.to_vec()).collect())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut p) = self.0.pop_front() {
            let n = p.len().min(buf.remaining());
            buf.put_slice(&p[..n]);
            if n < p.len() {
                self.0.push_front(p.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

async fn records(pieces: &[&[u8]], buffer_size: usize) -> Vec<rmpv::Value> {
    let input = StdinInput::new(Pieces::new(pieces), buffer_size);
    // End of input makes the engine exit: `run` returns without any shutdown signal.
    let (rec, report) = run_input(Box::new(input), None, std::future::pending()).await;
    assert_eq!(report.lost_records, 0);
    rec.events().into_iter().map(|e| e.record).collect()
}

#[tokio::test(start_paused = true)]
async fn object_line_and_plain_line() {
    let before = EventTime::now();
    let input = StdinInput::new(Pieces::new(&[b"{\"a\":1}\nplain\n"]), 16_000);
    let (rec, _) = run_input(Box::new(input), None, std::future::pending()).await;
    let events = rec.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record, mp(r#"{"a":1}"#));
    assert_eq!(events[1].record, mp(r#"{"log":"plain"}"#));
    assert!(events
        .iter()
        .all(|e| e.time >= before && e.metadata_bytes == [0x80]));
}

#[tokio::test(start_paused = true)]
async fn mixed_lines_split_across_reads() {
    let got = records(
        &[
            b"{\"z\": 1, \"a\": {\"n\": [1.5, null]}}\r\n",
            b"\n\r\n[1,2]\n42\n\"str\"\n{not json\n  spaced  \nhal",
            b"f a line\r",
            b"\nlast line without newline",
        ],
        16_000,
    )
    .await;
    let expected = [
        mp(r#"{"z": 1, "a": {"n": [1.5, null]}}"#),
        mp(r#"{"log":"[1,2]"}"#),
        mp(r#"{"log":"42"}"#),
        mp(r#"{"log":"\"str\""}"#),
        mp(r#"{"log":"{not json"}"#),
        mp(r#"{"log":"  spaced  "}"#),
        mp(r#"{"log":"half a line"}"#),
        mp(r#"{"log":"last line without newline"}"#),
    ];
    assert_eq!(got, expected);
    assert_eq!(common::keys(&got[0]), ["z", "a"]);
}

#[tokio::test(start_paused = true)]
async fn invalid_utf8_and_long_lines() {
    let long = vec![b'x'; 16_001];
    let mut long_line = long.clone();
    long_line.push(b'\n');
    let exact = vec![b'y'; 16_000];
    let got = records(
        &[
            b"bad \xff\xfe bytes\n",
            &long_line[..10_000],
            &long_line[10_000..],
            &exact,
            b"\r\n",
            b"after\n",
            &long, // too long at end of input, without newline
        ],
        16_000,
    )
    .await;
    let exact = String::from_utf8(exact).unwrap();
    assert_eq!(
        got,
        [
            mp(r#"{"log":"bad \ufffd\ufffd bytes"}"#),
            mp(&serde_json::json!({ "log": exact }).to_string()),
            mp(r#"{"log":"after"}"#),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn empty_input_exits() {
    assert!(records(&[], 16_000).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stops_on_shutdown_while_waiting_for_input() {
    let (_writer, reader) = tokio::io::duplex(64);
    let input = StdinInput::new(reader, 16_000);
    let start = tokio::time::Instant::now();
    let (rec, _) = run_input(
        Box::new(input),
        None,
        tokio::time::sleep(Duration::from_secs(1)),
    )
    .await;
    assert!(rec.events().is_empty());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn buffer_size_validation() {
    assert_eq!(
        stdin::buffer_size(&props(&stdin::PLUGIN, &[]).unwrap()).unwrap(),
        16_000
    );
    assert_eq!(
        stdin::buffer_size(&props(&stdin::PLUGIN, &[("buffer_size", "1M")]).unwrap()).unwrap(),
        1_000_000
    );
    let e = build_errors(&stdin::PLUGIN, &[("buffer_size", "1k")]);
    assert_eq!(
        e,
        ["/etc/kb/test.conf:2: [input stdin.0] 'buffer_size' 1000 must be at least 16000 bytes"]
    );
    let e = common::build(&stdin::PLUGIN, &[("parser", "json")])
        .err()
        .unwrap();
    assert!(
        e[0].to_string().contains("unknown parser 'json'"),
        "{}",
        e[0]
    );
}

/// A blocking source that never returns (a terminal nobody types into).
struct Never;

impl std::io::Read for Never {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        loop {
            std::thread::park();
        }
    }
}

#[tokio::test]
async fn blocking_reader_delivers_blocks_then_end_of_file() {
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.extend_from_slice(format!("{{\"i\":{i}}}\n").as_bytes());
    }
    let reader = stdin::BlockingReader::new(std::io::Cursor::new(data));
    let input = StdinInput::new(reader, 16_000);
    let (rec, _) = run_input(Box::new(input), None, std::future::pending()).await;
    let events = rec.events();
    assert_eq!(events.len(), 20_000);
    assert_eq!(events[19_999].record, mp(r#"{"i":19999}"#));
}

#[tokio::test]
async fn blocking_reader_does_not_hold_up_shutdown() {
    let input = StdinInput::new(stdin::BlockingReader::new(Never), 16_000);
    let (rec, _) = run_input(
        Box::new(input),
        None,
        tokio::time::sleep(Duration::from_millis(200)),
    )
    .await;
    assert!(rec.events().is_empty());
}
