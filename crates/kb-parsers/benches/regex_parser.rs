//! Per-record cost of `Format regex` parsers on realistic lines: Fluent Bit's default
//! `apache2`, `nginx` and `syslog-rfc3164` parsers, the EKS Container Insights `syslog`
//! parser, and a CRI line. Each iteration parses one line into one event (time parsing
//! included), the work tail and the parser filter do per record.
//!
//! The EKS Container Insights `container_firstline` parser (look-behind and look-ahead, which
//! the `regex` crate kinesis-bit used before could not compile) is measured on a Docker JSON
//! line in a group of its own.
//!
//! `cargo bench -p kb-parsers --bench regex_parser`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventTime, EventWriter};
use kb_parsers::ParserRegistry;

const PARSERS: &str = r#"
[PARSER]
    Name   apache2
    Format regex
    Regex  ^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>.*)")?$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z

[PARSER]
    Name   nginx
    Format regex
    Regex ^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$
    Time_Key time
    Time_Format %d/%b/%Y:%H:%M:%S %z

[PARSER]
    Name        syslog-rfc3164
    Format      regex
    Regex       /^\<(?<pri>[0-9]+)\>(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\/\.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$/
    Time_Key    time
    Time_Format %b %d %H:%M:%S
    Time_Keep   On

[PARSER]
    Name        eks-syslog
    Format      regex
    Regex       ^(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\/\.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$
    Time_Key    time
    Time_Format %b %d %H:%M:%S

[PARSER]
    Name        cri
    Format      regex
    Regex       ^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>[^ ]*) (?<message>.*)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
"#;

/// Patterns only Onigmo-compatible engines compile (EKS Container Insights parsers.conf).
const ONIGMO_PARSERS: &str = r#"
[PARSER]
    Name                container_firstline
    Format              regex
    Regex               (?<log>(?<="log":")\S(?!\.).*?)(?<!\\)".*(?<stream>(?<="stream":").*?)".*(?<time>\d{4}-\d{1,2}-\d{1,2}T\d{2}:\d{2}:\d{2}\.\w*).*(?=})
    Time_Key            time
    Time_Format         %Y-%m-%dT%H:%M:%S.%LZ
"#;

const DOCKER_LINE: &str = r#"{"log":"2026-11-28 10:15:32.123 ERROR 1 --- [nio-8080-exec-7] c.e.web.OrderController : order 123456 failed: timeout after 3000 ms\n","stream":"stderr","time":"2026-11-28T10:15:32.123456789Z"}"#;

const LINES: &[(&str, &str)] = &[
    (
        "apache2",
        r#"192.168.2.20 - frank [28/Nov/2026:10:15:32 +0000] "GET /cgi-bin/try/index.html?user=alice&id=42 HTTP/1.1" 200 3395 "http://example.com/start.html" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36""#,
    ),
    (
        "nginx",
        r#"172.17.0.1 web.example.com - [28/Nov/2026:10:15:32 +0000] "POST /api/v1/orders/123456/items HTTP/1.1" 201 512 "-" "python-requests/2.31.0""#,
    ),
    (
        "syslog-rfc3164",
        "<86>Nov 28 10:15:32 ip-10-0-1-17 sshd[28931]: Accepted publickey for ec2-user from 10.0.0.5 port 51622 ssh2: RSA SHA256:kJx0c2u1m0rQ",
    ),
    (
        "eks-syslog",
        "Nov 28 10:15:32 ip-10-0-1-17 kubelet[3120]: I1128 10:15:32.123456    3120 kubelet.go:2426] \"SyncLoop (PLEG): event for pod\" pod=\"prod/web-7d9f8b-x2k4l\"",
    ),
    (
        "cri",
        "2026-11-28T10:15:32.123456789+00:00 stdout F GET /api/v1/items/42 HTTP/1.1 200 0.004s user-agent=curl/8.5.0 request_id=9f1c2e7a",
    ),
];

fn registry(text: &str) -> ParserRegistry {
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    ParserRegistry::from_sections(&pc.parsers).unwrap()
}

fn bench(c: &mut Criterion) {
    let reg = registry(PARSERS);
    let now = EventTime::new(1_795_824_000, 0);
    let mut g = c.benchmark_group("regex_parser");
    for (name, line) in LINES {
        let p = reg.get(name).unwrap();
        let mut w = EventWriter::new();
        assert!(p.parse(line.as_bytes(), &mut w, now).is_ok(), "{name}");
        g.throughput(Throughput::Elements(1));
        g.bench_function(*name, |b| {
            b.iter(|| {
                w.clear();
                black_box(p.parse(black_box(line.as_bytes()), &mut w, now)).unwrap();
            })
        });
    }
    g.finish();

    let reg = registry(ONIGMO_PARSERS);
    let p = reg.get("container_firstline").unwrap();
    let mut w = EventWriter::new();
    assert!(p.parse(DOCKER_LINE.as_bytes(), &mut w, now).is_ok());
    let mut g = c.benchmark_group("onigmo_only");
    g.throughput(Throughput::Elements(1));
    g.bench_function("container_firstline", |b| {
        b.iter(|| {
            w.clear();
            black_box(p.parse(black_box(DOCKER_LINE.as_bytes()), &mut w, now)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
