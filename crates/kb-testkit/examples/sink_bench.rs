//! Sink throughput with ONE keep-alive client connection:
//! `cargo run --release -p kb-testkit --example sink_bench -- [seconds] [sink threads] [id]`
//! Sends PutRecords of 500 records x 100 B (pre-built body, fixed fake signature) as fast as the
//! sink answers, and prints records/s. With `id`, the sink also counts unique ids (`seq`).

use std::time::{Duration, Instant};

use base64_simd::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kb_testkit::sink::{Sink, SinkConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let ids = args.get(3).is_some_and(|s| s == "id");

    let mut config = SinkConfig::default().worker_threads(threads);
    if ids {
        config = config.id_field("seq");
    }
    let sink = Sink::start_blocking(config);
    let port = sink.port();

    let mut body = String::from(r#"{"StreamName":"bench","Records":["#);
    for i in 0..500 {
        let mut data = format!(r#"{{"seq":{i},"msg":""#);
        while data.len() < 98 {
            data.push('x');
        }
        data.push_str("\"}");
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"Data":"{}","PartitionKey":"k{i}"}}"#,
            B64.encode_to_string(data.as_bytes())
        ));
    }
    body.push_str("]}");
    let body = Bytes::from(body);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (requests, elapsed) = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let t0 = Instant::now();
        let mut n = 0u64;
        while Instant::now() < deadline {
            let req = http::Request::post("/")
                .header("host", format!("127.0.0.1:{port}"))
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", "Kinesis_20131202.PutRecords")
                .header("x-amz-date", "20260101T000000Z")
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDTESTKEY/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
                )
                .body(Full::new(body.clone()))
                .unwrap();
            tx.ready().await.unwrap();
            let resp = tx.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let b = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(b.starts_with(b"{\"FailedRecordCount\":0,"));
            n += 1;
        }
        (n, t0.elapsed())
    });
    let st = sink.stats();
    assert_eq!(st.entries_accepted, requests * 500);
    let rps = requests as f64 / elapsed.as_secs_f64();
    println!(
        "sink threads {threads}, id counting {ids}: {requests} requests in {:.2} s = {:.0} requests/s = {:.0} records/s",
        elapsed.as_secs_f64(),
        rps,
        rps * 500.0
    );
}
