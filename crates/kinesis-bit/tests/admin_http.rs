//! The monitoring server of the real binary (`HTTP_Server On` / `-H -P`), over real sockets:
//! the Prometheus exposition parsed by the reference Python parser (`prometheus_client`,
//! installed by `scripts/install-peers.sh`) and checked against what our Kinesis sink saw;
//! health with and without `Health_Check`; uptime, build info, JSON metrics, 404, port in use.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, stderr, terminate, wait_with_timeout};
use kb_testkit::peers::{free_port, peers_dir};
use kb_testkit::sink::{FaultKind, FaultPlan, Sink, SinkConfig};
use serde_json::Value;

/// One HTTP/1.1 GET over a fresh connection: (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn get_ok(port: u16, path: &str) -> String {
    let (status, body) = http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Poll `check` every 100 ms until it returns Some, or panic after `limit`.
fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start the agent with `conf` (classic syntax) and wait until its HTTP server answers.
fn start_agent(dir: &Path, conf: &str, port: u16) -> Child {
    let path = dir.join("kb.conf");
    std::fs::write(&path, conf).unwrap();
    let mut child = agent()
        .args(["-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    let start = Instant::now();
    while http_get(port, "/").is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let out = wait_with_timeout(child, Duration::from_secs(5));
            panic!("agent exited with {status}: {}", stderr(&out));
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the HTTP server did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Stop the agent and return its log, asserting a clean exit.
fn stop_agent(child: Child) -> String {
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    let log = stderr(&out);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{log}",
        out.status
    );
    log
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({"name": f.name, "type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(families))
"#;

/// A parsed sample: name, labels, value.
type PromSample = (String, HashMap<String, String>, f64);

/// Parse an exposition with the reference parser; returns (family name, type, samples).
fn parse_prometheus(text: &str) -> Vec<(String, String, Vec<PromSample>)> {
    let python = peers_dir().join("prometheus/bin/python");
    assert!(
        python.exists(),
        "prometheus_client not found at {}: run `bash scripts/install-peers.sh`",
        python.display()
    );
    let mut child = Command::new(&python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels = s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    (
                        s["name"].as_str().unwrap().to_string(),
                        labels,
                        s["value"].as_f64().unwrap(),
                    )
                })
                .collect();
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
                samples,
            )
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`, or 0 when absent.
fn value(fams: &[(String, String, Vec<PromSample>)], name: &str, labels: &[(&str, &str)]) -> f64 {
    fams.iter()
        .flat_map(|(_, _, s)| s)
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

#[test]
fn prometheus_exposition_parses_and_matches_what_the_sink_received() {
    const N: u64 = 40;
    // A throttled request, then two entries failed in the next one: every request result kind
    // the sink produces here shows up in the counters.
    let sink = Sink::start_blocking(SinkConfig::default().faults(
        FaultPlan::new().at(0, FaultKind::Throttle).at(
            1,
            FaultKind::FailEntries {
                indices: vec![0, 1],
                code: "ProvisionedThroughputExceededException".into(),
            },
        ),
    ));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = start_agent(
        dir.path(),
        &format!(
            "[SERVICE]\n    Flush 1\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n\n\
             [INPUT]\n    Name dummy\n    Alias quo\"te\\d\n    Rate 20\n    Samples {N}\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    \
             endpoint {}\n    retry_limit no_limits\n",
            sink.endpoint()
        ),
        port,
    );
    // Accounting happens after each answer: wait until every record is counted delivered.
    wait_until(Duration::from_secs(60), "all records delivered", || {
        let m: Value = serde_json::from_str(&get_ok(port, "/api/v1/metrics")).ok()?;
        (m["output"]["kinesis_streams.0"]["proc_records"] == N).then_some(())
    });
    let text = get_ok(port, "/api/v1/metrics/prometheus");
    let v2 = get_ok(port, "/api/v2/metrics/prometheus");
    let log = stop_agent(child);
    let st = sink.stats();

    // One TYPE line per family, and the reference parser finds no untyped stray samples.
    let mut types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let n = types.len();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), n, "a family is typed twice:\n{text}");
    let fams = parse_prometheus(&text);
    assert!(
        fams.iter().all(|(_, t, _)| t != "unknown"),
        "samples outside their family: {fams:?}"
    );
    assert_eq!(parse_prometheus(&v2).len(), fams.len(), "v1 and v2 differ");

    let out = [("name", "kinesis_streams.0")];
    assert_eq!(st.entries_accepted, N, "{st:?}\n{log}");
    assert_eq!(
        value(&fams, "fluentbit_output_proc_records_total", &out),
        st.entries_accepted as f64
    );
    // The alias with a quote and a backslash survived escaping and parsing.
    assert_eq!(
        value(
            &fams,
            "fluentbit_input_records_total",
            &[("name", "quo\"te\\d")]
        ),
        N as f64
    );
    let req = |result: &str| {
        value(
            &fams,
            "fluentbit_kinesis_streams_requests_total",
            &[("name", "kinesis_streams.0"), ("result", result)],
        )
    };
    let all_requests = value(&fams, "fluentbit_kinesis_streams_requests_total", &out);
    assert_eq!(all_requests, st.put_requests as f64, "{st:?}");
    assert_eq!(req("throttled"), st.throttled as f64);
    assert_eq!(req("throttled"), 1.0);
    assert_eq!(req("ok") + req("partial"), st.ok as f64);
    assert_eq!(req("partial"), 1.0);
    assert_eq!(
        value(
            &fams,
            "fluentbit_kinesis_streams_record_errors_total",
            &[("error_code", "ProvisionedThroughputExceededException")]
        ),
        st.entries_failed as f64
    );

    // The latency histogram is a real histogram: cumulative buckets, +Inf == count == requests.
    let (_, kind, samples) = fams
        .iter()
        .find(|(n, _, _)| n == "fluentbit_kinesis_streams_request_duration_seconds")
        .expect("latency histogram");
    assert_eq!(kind, "histogram");
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, _, _)| n.ends_with("_bucket"))
        .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap(), *v))
        .collect();
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, all_requests));
    let count = value(
        &fams,
        "fluentbit_kinesis_streams_request_duration_seconds_count",
        &[],
    );
    let sum = value(
        &fams,
        "fluentbit_kinesis_streams_request_duration_seconds_sum",
        &[],
    );
    assert_eq!(count, all_requests);
    assert!(sum > 0.0 && sum < 60.0 * count, "sum in seconds: {sum}");
}

#[test]
fn build_info_uptime_json_metrics_health_and_404() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = start_agent(
        dir.path(),
        &format!(
            "[SERVICE]\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n    Health_Check On\n\n\
             [INPUT]\n    Name dummy\n    Rate 50\n\n[OUTPUT]\n    Name null\n    Match *\n"
        ),
        port,
    );
    let root: Value = serde_json::from_str(&get_ok(port, "/")).unwrap();
    assert_eq!(root["fluent-bit"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(root["fluent-bit"]["edition"], "Community");
    assert!(root["fluent-bit"]["flags"].is_array());

    std::thread::sleep(Duration::from_millis(1100));
    let up: Value = serde_json::from_str(&get_ok(port, "/api/v1/uptime")).unwrap();
    assert!(up["uptime_sec"].as_u64().unwrap() >= 1, "{up}");
    let hr = up["uptime_hr"].as_str().unwrap();
    assert!(
        hr.starts_with("Fluent Bit has been running:  0 day, 0 hour, 0 minute and "),
        "{hr}"
    );

    let m = wait_until(Duration::from_secs(20), "a flush", || {
        let m: Value = serde_json::from_str(&get_ok(port, "/api/v1/metrics")).ok()?;
        (m["output"]["null.0"]["proc_records"].as_u64()? > 0).then_some(m)
    });
    assert!(m["input"]["dummy.0"]["records"].as_u64().unwrap() > 0);
    assert!(m["input"]["dummy.0"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(m["filter"], serde_json::json!({}));
    let keys: Vec<&str> = m["output"]["null.0"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "proc_records",
            "proc_bytes",
            "errors",
            "retries",
            "retries_failed",
            "dropped_records",
            "retried_records"
        ]
    );

    assert_eq!(
        http_get(port, "/api/v1/health").unwrap(),
        (200, "ok\n".into())
    );
    assert_eq!(http_get(port, "/api/v1/nope").unwrap().0, 404);
    assert_eq!(http_get(port, "/api/v1/metrics/").unwrap().0, 404);
    let log = stop_agent(child);
    assert!(
        log.contains(&format!(
            "[ info] [http_server] listen iface=127.0.0.1 tcp_port={port}"
        )),
        "{log}"
    );
}

/// An output that can never deliver (nothing listens at its endpoint) and gives up at once.
fn failing_output_conf(port: u16, health_check: &str) -> String {
    format!(
        "[SERVICE]\n    Flush 1\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n    \
         Health_Check {health_check}\n    HC_Retry_Failure_Count 0\n    HC_Period 60\n\n\
         [INPUT]\n    Name dummy\n    Rate 5\n\n\
         [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    \
         endpoint http://127.0.0.1:{}\n    retry_limit no_retries\n",
        free_port()
    )
}

#[test]
fn health_check_on_turns_500_after_failed_retries() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = start_agent(dir.path(), &failing_output_conf(port, "On"), port);
    wait_until(Duration::from_secs(30), "/api/v1/health = 500", || {
        let (status, body) = http_get(port, "/api/v1/health").ok()?;
        (status == 500).then(|| assert_eq!(body, "error\n"))
    });
    let (status, body) = http_get(port, "/api/v2/health").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["status"].as_str()), (500, Some("error")));
    assert!(v["retries_failed"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["retry_failure_limit"], 0);
    assert_eq!(v["period_limit"], 60);
    stop_agent(child);
}

#[test]
fn health_check_off_stays_ok_whatever_fails() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = start_agent(dir.path(), &failing_output_conf(port, "Off"), port);
    wait_until(Duration::from_secs(30), "a failed retry", || {
        let m: Value = serde_json::from_str(&get_ok(port, "/api/v1/metrics")).ok()?;
        (m["output"]["kinesis_streams.0"]["retries_failed"].as_u64()? >= 1).then_some(())
    });
    assert_eq!(
        http_get(port, "/api/v1/health").unwrap(),
        (200, "ok\n".into())
    );
    stop_agent(child);
}

#[test]
fn port_in_use_is_a_startup_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let child = agent()
        .args(["-H", "-L", "127.0.0.1", "-P", &port.to_string()])
        .args(["-i", "dummy", "-o", "null", "-m", "*"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(20));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(255), "{log}");
    assert!(
        log.contains(&format!(
            "[error] [http_server] could not bind address 127.0.0.1:{port} (set by HTTP_Listen and HTTP_Port)"
        )),
        "{log}"
    );
    assert!(log.contains("Initialization failed"), "{log}");
    drop(taken);
}

#[test]
fn storage_endpoint_and_gauges_follow_chunks_waiting_on_disk() {
    const N: u64 = 600;
    let sink = Sink::start_blocking(SinkConfig::default());
    // The sink holds its answers: the input (never paused on the filesystem) outruns the
    // output and its chunks go down to disk beyond Mem_Buf_Limit and the backlog's limit.
    sink.stall(Duration::from_secs(4));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("buffer");
    let child = start_agent(
        dir.path(),
        &format!(
            "[SERVICE]\n    Flush 0.2\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n    storage.path {}\n    storage.backlog.mem_limit 4K\n\n\
             [INPUT]\n    Name dummy\n    Rate 300\n    Samples {N}\n    Mem_Buf_Limit 4K\n    storage.type filesystem\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream s\n    region us-east-1\n    \
             endpoint {}\n    retry_limit no_limits\n",
            storage.display(),
            sink.endpoint()
        ),
        port,
    );
    let during: Value = wait_until(Duration::from_secs(20), "chunks down", || {
        let v: Value = serde_json::from_str(&get_ok(port, "/api/v1/storage")).ok()?;
        (v["storage_layer"]["chunks"]["fs_chunks_down"].as_u64()? >= 2).then_some(v)
    });
    let input = &during["input_chunks"]["dummy.0"];
    let layer = &during["storage_layer"]["chunks"];
    assert_eq!(input["chunks"]["down"], layer["fs_chunks_down"], "{during}");
    assert_eq!(input["chunks"]["total"], layer["fs_chunks"], "{during}");
    assert_eq!(layer["mem_chunks"], 0, "{during}");
    // Fluent Bit's sizes: 4K is 4000 bytes, shown in units of 1024.
    assert_eq!(input["status"]["mem_limit"], "3.9K", "{during}");
    let files = std::fs::read_dir(storage.join("dummy.0")).unwrap().count() as u64;
    assert!(
        files >= layer["fs_chunks_down"].as_u64().unwrap(),
        "{files} files: {during}"
    );
    let fams = parse_prometheus(&get_ok(port, "/api/v1/metrics/prometheus"));
    assert!(value(&fams, "fluentbit_storage_fs_chunks_down", &[]) >= 1.0);
    assert!(
        value(
            &fams,
            "fluentbit_input_storage_chunks_down",
            &[("name", "dummy.0")]
        ) >= 1.0
    );

    // Once the sink answers, everything on disk is delivered, once, and the files go.
    wait_until(Duration::from_secs(60), "all records delivered", || {
        (sink.stats().entries_accepted >= N).then_some(())
    });
    let after: Value = wait_until(Duration::from_secs(20), "no chunk left", || {
        let v: Value = serde_json::from_str(&get_ok(port, "/api/v1/storage")).ok()?;
        (v["storage_layer"]["chunks"]["total_chunks"] == 0).then_some(v)
    });
    let fams = parse_prometheus(&get_ok(port, "/api/v1/metrics/prometheus"));
    assert!(value(&fams, "fluentbit_storage_loaded_chunks_total", &[]) >= 2.0);
    assert_eq!(
        value(&fams, "fluentbit_storage_corrupt_chunks_total", &[]),
        0.0
    );
    let log = stop_agent(child);
    assert_eq!(sink.stats().entries_accepted, N, "{log}");
    assert_eq!(after["input_chunks"]["dummy.0"]["chunks"]["busy"], 0);
    assert_eq!(
        std::fs::read_dir(storage.join("dummy.0")).unwrap().count(),
        0
    );
}
