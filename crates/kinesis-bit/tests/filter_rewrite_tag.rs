//! `rewrite_tag` as a user runs it: Fluent Bit's documented example, its metrics, rules that
//! rewrite into each other's tags (no endless loop), and one input split into two
//! `kinesis_streams` outputs by a rule, every record exactly once in the right stream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr, terminate, wait_with_timeout};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{free_port, Ferrokinesis};

const LIMIT: Duration = Duration::from_secs(60);

/// The stdout lines of a run, timestamps replaced by `T`.
fn lines_without_times(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            // `[0] tag: [[1700000000.123456789, {}], {...}]`
            match (l.find("[["), l.find(", {}]")) {
                (Some(a), Some(b)) if a < b => format!("{}[[T{}", &l[..a], &l[b..]),
                _ => l.to_string(),
            }
        })
        .collect()
}

#[test]
fn the_documented_example_rewrites_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("example.conf");
    std::fs::write(
        &conf,
        "[SERVICE]\n  Flush     0.2\n  Log_Level info\n\n\
         [INPUT]\n  NAME   dummy\n  Dummy  {\"tool\": \"fluent\", \"sub\": {\"s1\": {\"s2\": \"bit\"}}}\n  Tag    test_tag\n  Samples 2\n  Rate 20\n\n\
         [FILTER]\n  Name          rewrite_tag\n  Match         test_tag\n  Rule          $tool ^(fluent)$  from.$TAG.new.$tool.$sub['s1']['s2'].out false\n  Emitter_Name  re_emitted\n\n\
         [OUTPUT]\n  Name   stdout\n  Match  from.*\n",
    )
    .unwrap();
    let port = free_port();
    let child = agent()
        .args(["-c", conf.to_str().unwrap(), "-H", "-P", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for both records, then read the metrics while it runs.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = http_get(port, "/api/v1/metrics");
    terminate(&child);
    let out = wait_with_timeout(child, LIMIT);
    assert_success(&out);
    assert_eq!(
        lines_without_times(&out),
        [
            r#"[0] from.test_tag.new.fluent.bit.out: [[T, {}], {"tool"=>"fluent", "sub"=>{"s1"=>{"s2"=>"bit"}}}]"#,
            r#"[1] from.test_tag.new.fluent.bit.out: [[T, {}], {"tool"=>"fluent", "sub"=>{"s1"=>{"s2"=>"bit"}}}]"#,
        ],
        "{}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(m["input"]["dummy.0"]["records"], 2, "{metrics}");
    assert_eq!(m["input"]["re_emitted"]["records"], 2, "{metrics}");
    assert_eq!(m["filter"]["rewrite_tag.0"]["drop_records"], 2, "{metrics}");
    assert_eq!(m["filter"]["rewrite_tag.0"]["records"], 2, "{metrics}");
    assert_eq!(m["output"]["stdout.0"]["proc_records"], 2, "{metrics}");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(body)
}

#[test]
fn rules_rewriting_into_each_other_do_not_loop() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("loop.conf");
    std::fs::write(
        &conf,
        "[SERVICE]\n  Flush 0.2\n\n\
         [INPUT]\n  Name stdin\n  Tag a.start\n\n\
         [FILTER]\n  Name rewrite_tag\n  Match a.*\n  Rule $msg .* b.$TAG false\n\n\
         [FILTER]\n  Name rewrite_tag\n  Match b.*\n  Rule $msg .* a.$TAG false\n\n\
         [OUTPUT]\n  Name stdout\n  Match *\n  Format json_lines\n",
    )
    .unwrap();
    let mut cmd = agent();
    cmd.args(["-c", conf.to_str().unwrap()]);
    let out = run_with_stdin(&mut cmd, b"{\"msg\":\"one\"}\n{\"msg\":\"two\"}\n", LIMIT);
    assert_success(&out);
    // a.start -> b.a.start (first filter) -> a.b.a.start (second); the first filter is still
    // working further up, so the record is not sent round again: it ends there, once each.
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split_once(',')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        got,
        ["\"msg\":\"one\"}", "\"msg\":\"two\"}"],
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_input_split_into_two_streams_exactly_once() {
    let ferro = Ferrokinesis::start();
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("errors", 2).await.unwrap();
    kds.create_stream("rest", 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("split.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Flush 0.3\n\n\
             [INPUT]\n    Name stdin\n    Tag app\n\n\
             [FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $level ^(error|fatal)$ errors.$TAG.$1 false\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match errors.*\n    stream errors\n    region us-east-1\n    endpoint {ep}\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match app\n    stream rest\n    region us-east-1\n    endpoint {ep}\n",
            ep = ferro.endpoint()
        ),
    )
    .unwrap();
    let mut input = String::new();
    let level = |i: usize| match i % 5 {
        0 => "error",
        1 => "fatal",
        _ => "info",
    };
    for i in 0..3000 {
        input.push_str(&format!("{{\"seq\":{i},\"level\":\"{}\"}}\n", level(i)));
    }
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-c", conf.to_str().unwrap()]);
        run_with_stdin(&mut cmd, input.as_bytes(), LIMIT)
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut seen: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for stream in ["errors", "rest"] {
        for r in kds.read_all(stream).await.unwrap() {
            let v: serde_json::Value =
                serde_json::from_slice(r.data.strip_suffix(b"\n").unwrap_or(&r.data)).unwrap();
            seen.entry(v["seq"].as_u64().unwrap())
                .or_default()
                .push(format!("{stream}:{}", v["level"].as_str().unwrap()));
        }
    }
    assert_eq!(seen.len(), 3000, "{}", stderr(&out));
    for (seq, places) in &seen {
        let want = match level(*seq as usize) {
            "info" => "rest:info".to_string(),
            l => format!("errors:{l}"),
        };
        assert_eq!(places, &[want], "seq {seq}");
    }
}
