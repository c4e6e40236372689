//! `shard_aware on` against ferrokinesis with AWS-like per-shard limits (`--enforce-limits`:
//! 1000 records/s and 1 MiB/s per shard): a hot partition key next to random-key traffic, and a
//! reshard while the agent runs. Records are read back with GetRecords over every shard and
//! compared byte for byte; throttling is counted from the agent's monitoring API.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Output, Stdio};
use std::time::{Duration, Instant};

use common::{agent, stderr, wait_with_timeout};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{free_port, FerroOptions, Ferrokinesis};

const PTE: &str = "ProvisionedThroughputExceededException";

/// The agent reading stdin (kept open between feeds) with its monitoring server on `port`.
struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(endpoint: &str, stream: &str, workers: u32, output_extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("kb.conf");
        std::fs::write(
            &conf,
            format!(
                "[SERVICE]\n    Flush 1\n    Grace 30\n    scheduler.base 1\n    scheduler.cap 2\n    \
                 HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {port}\n\n\
                 [INPUT]\n    Name stdin\n\n\
                 [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream {stream}\n    region us-east-1\n    \
                 endpoint {endpoint}\n    partition_key $pk\n    retry_limit no_limits\n    workers {workers}\n{output_extra}"
            ),
        )
        .unwrap();
        let mut child = agent()
            .args(["-c", conf.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kinesis-bit");
        let stdin = child.stdin.take();
        Agent {
            child,
            stdin,
            port,
            _dir: dir,
        }
    }

    /// Write `input` to the agent's stdin (in a thread: the pipe may fill).
    fn feed(&mut self, input: Vec<u8>) {
        let mut stdin = self.stdin.take().expect("stdin open");
        let h = std::thread::spawn(move || {
            stdin.write_all(&input).expect("write stdin");
            stdin
        });
        self.stdin = Some(h.join().expect("stdin writer"));
    }

    /// Sum of the samples of `metric` whose labels contain every one of `labels`
    /// (`key="value"` text), from the Prometheus exposition.
    fn metric(&self, metric: &str, labels: &[&str]) -> u64 {
        let text = http_get(self.port, "/api/v2/metrics/prometheus");
        samples(&text, metric)
            .filter(|(l, _)| labels.iter().all(|want| l.contains(want)))
            .map(|(_, v)| v)
            .sum()
    }

    /// Close stdin: the agent delivers what is left and exits.
    async fn finish(mut self) -> Output {
        drop(self.stdin.take());
        let child = self.child;
        tokio::task::spawn_blocking(move || wait_with_timeout(child, Duration::from_secs(60)))
            .await
            .unwrap()
    }
}

/// `(labels, value)` of every sample of `metric`.
fn samples<'a>(text: &'a str, metric: &'a str) -> impl Iterator<Item = (&'a str, u64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(metric)?;
        let (labels, value) = rest.rsplit_once(' ')?;
        if !(labels.starts_with('{') || labels.is_empty()) {
            return None;
        }
        Some((labels, value.trim().parse::<f64>().ok()? as u64))
    })
}

fn http_get(port: u16, path: &str) -> String {
    for _ in 0..100 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        return raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
    }
    panic!("monitoring server on port {port} does not answer");
}

/// A record: JSON with its class `k` and number `i`, padded to about 150 bytes; `pk` set
/// for keyed records (the others get a random key).
fn line(class: &str, i: usize, pk: Option<&str>) -> String {
    let pad = "x".repeat(100);
    match pk {
        Some(pk) => format!("{{\"pk\":\"{pk}\",\"k\":\"{class}\",\"i\":{i},\"p\":\"{pad}\"}}\n"),
        None => format!("{{\"k\":\"{class}\",\"i\":{i},\"p\":\"{pad}\"}}\n"),
    }
}

/// Polls ferrokinesis' capture until `done(records)` holds for each named class; returns the
/// time each class completed (from `start`).
async fn wait_classes(
    ferro: &Ferrokinesis,
    start: Instant,
    classes: &[(&str, usize)],
    limit: Duration,
) -> Vec<Duration> {
    let mut done: Vec<Option<Duration>> = vec![None; classes.len()];
    loop {
        let captured = ferro.captured();
        for (i, (class, n)) in classes.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let tag = format!("\"k\":\"{class}\"");
            let got = captured
                .iter()
                .filter(|r| String::from_utf8_lossy(&r.data).contains(&tag))
                .count();
            if got >= *n {
                done[i] = Some(start.elapsed());
            }
        }
        if done.iter().all(Option::is_some) {
            return done.into_iter().flatten().collect();
        }
        assert!(
            start.elapsed() < limit,
            "not delivered within {limit:?}: {classes:?} done {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every fed record came back exactly once, byte for byte (GetRecords over all shards).
fn assert_exactly_once(mut want: Vec<Vec<u8>>, mut got: Vec<Vec<u8>>) {
    want.sort();
    got.sort();
    if want != got {
        let w: HashSet<&Vec<u8>> = want.iter().collect();
        let g: HashSet<&Vec<u8>> = got.iter().collect();
        panic!(
            "read back {} records for {} fed: {} missing, {} unexpected, {} duplicates",
            got.len(),
            want.len(),
            w.difference(&g).count(),
            g.difference(&w).count(),
            got.len() - g.len()
        );
    }
}

struct HotRun {
    pte: u64,
    uniform_done: Duration,
    hot_done: Duration,
}

/// 5000 records of one hot key (5 s of one shard's record limit, offered at once) interleaved
/// with 5000 random-key records, into a 4-shard stream.
async fn hot_run(shard_aware: bool) -> HotRun {
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("hot", 4).await.unwrap();
    let n = 5000;
    let mut input = String::new();
    let mut want = Vec::new();
    for i in 0..n {
        for l in [line("h", i, Some("hot")), line("u", i, None)] {
            want.push(l.as_bytes().to_vec());
            input.push_str(&l);
        }
    }
    let extra = format!(
        "    shard_aware {}\n",
        if shard_aware { "on" } else { "off" }
    );
    let mut a = Agent::start(&ferro.endpoint(), "hot", 2, &extra);
    let start = Instant::now();
    a.feed(input.into_bytes());
    let done = wait_classes(
        &ferro,
        start,
        &[("u", n), ("h", n)],
        Duration::from_secs(50),
    )
    .await;
    let pte = a.metric(
        "fluentbit_kinesis_streams_record_errors_total",
        &[&format!("error_code=\"{PTE}\"")],
    );
    if shard_aware {
        // Per-shard counters: everything accepted counted once on the shard it reached.
        let sent = a.metric(
            "fluentbit_kinesis_streams_shard_sent_records_total",
            &["shard=\"shardId-"],
        );
        assert_eq!(sent, 2 * n as u64, "per-shard sent counters");
        let delayed = a.metric("fluentbit_kinesis_streams_shard_delayed_records_total", &[]);
        assert!(delayed > 0, "the hot shard's records waited: {delayed}");
        let throttled = a.metric(
            "fluentbit_kinesis_streams_shard_throttled_records_total",
            &[],
        );
        assert_eq!(throttled, pte, "throttled per shard = PTE answers");
    }
    let out = a.finish().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Vec<u8>> = kds
        .read_all("hot")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_exactly_once(want, got);
    HotRun {
        pte,
        uniform_done: done[0],
        hot_done: done[1],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_key_waits_for_its_shard_while_the_others_go_on() {
    let on = hot_run(true).await;
    let off = hot_run(false).await;
    eprintln!(
        "shard_aware on: {} PTE, uniform done {:?}, hot done {:?}; off: {} PTE, uniform done {:?}, hot done {:?}",
        on.pte, on.uniform_done, on.hot_done, off.pte, off.uniform_done, off.hot_done
    );
    assert!(
        off.pte >= 10 && off.pte >= 10 * on.pte,
        "PTE answers: on {} vs off {}",
        on.pte,
        off.pte
    );
    // 5000 hot records need at least 5 s of their shard; the random-key records use the
    // other shards' room and must not wait for them.
    assert!(on.hot_done >= Duration::from_secs(4), "{:?}", on.hot_done);
    assert!(
        on.uniform_done + Duration::from_secs(2) <= on.hot_done,
        "uniform {:?} vs hot {:?}",
        on.uniform_done,
        on.hot_done
    );
}

struct PacedRun {
    pte: u64,
    uniform_done: Duration,
    hot_done: Duration,
}

/// For 5 s, every 100 ms: 300 records of one hot key (3,000/s, three times a shard's record
/// limit) and 100 random-key records (1,000/s over 4 shards), into a 4-shard stream, with
/// `workers` flush workers.
async fn paced_run(shard_aware: bool, workers: u32) -> PacedRun {
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("hot", 4).await.unwrap();
    let extra = format!(
        "    shard_aware {}\n",
        if shard_aware { "on" } else { "off" }
    );
    let mut a = Agent::start(&ferro.endpoint(), "hot", workers, &extra);
    let (ticks, hot, uniform) = (50, 300, 100);
    let mut want = Vec::new();
    let mut inputs = Vec::new();
    for t in 0..ticks {
        let mut s = String::new();
        for j in 0..hot {
            s.push_str(&line("h", t * hot + j, Some("hot")));
        }
        for j in 0..uniform {
            s.push_str(&line("u", t * uniform + j, None));
        }
        want.extend(s.lines().map(|l| format!("{l}\n").into_bytes()));
        inputs.push(s.into_bytes());
    }
    let mut stdin = a.stdin.take().expect("stdin");
    let start = Instant::now();
    let feeder = std::thread::spawn(move || {
        for (t, input) in inputs.into_iter().enumerate() {
            stdin.write_all(&input).expect("write stdin");
            let next = start + Duration::from_millis(100 * (t as u64 + 1));
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        stdin
    });
    let done = wait_classes(
        &ferro,
        start,
        &[("u", ticks * uniform), ("h", ticks * hot)],
        Duration::from_secs(50),
    )
    .await;
    a.stdin = Some(feeder.join().expect("feeder"));
    let pte = a.metric(
        "fluentbit_kinesis_streams_record_errors_total",
        &[&format!("error_code=\"{PTE}\"")],
    );
    let out = a.finish().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Vec<u8>> = kds
        .read_all("hot")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_exactly_once(want, got);
    PacedRun {
        pte,
        uniform_done: done[0],
        hot_done: done[1],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_hot_key_does_not_delay_the_other_shards() {
    // One worker, the default: a chunk whose records all wait for the hot shard goes back to
    // the engine until the shard refills, so the worker's next chunks (the random-key
    // records) are not held behind it. Off gets 8 workers, its best case.
    let on = paced_run(true, 1).await;
    let off = paced_run(false, 8).await;
    eprintln!(
        "paced, shard_aware on: {} PTE, uniform done {:?}, hot done {:?}; off: {} PTE, uniform done {:?}, hot done {:?}",
        on.pte, on.uniform_done, on.hot_done, off.pte, off.uniform_done, off.hot_done
    );
    assert!(
        off.pte >= 10 && off.pte >= 10 * on.pte,
        "PTE answers: on {} vs off {}",
        on.pte,
        off.pte
    );
    // 15,000 hot records need 15 s of their shard: the hot key was over its limit throughout.
    assert!(on.hot_done >= Duration::from_secs(14), "{:?}", on.hot_done);
    // The random-key records are in soon after the 5 s of feeding, long before the hot key's.
    assert!(
        on.uniform_done <= Duration::from_secs(8),
        "uniform {:?} (hot {:?})",
        on.uniform_done,
        on.hot_done
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reshard_mid_run_is_followed() {
    reshard_run("").await;
}

/// CBOR answers name their shards too.
#[tokio::test(flavor = "multi_thread")]
async fn cbor_reshard_mid_run_is_followed() {
    reshard_run("    protocol cbor\n").await;
}

async fn reshard_run(extra: &str) {
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("rs", 4).await.unwrap();
    let old: HashSet<String> = kds.shard_ids("rs").await.unwrap().into_iter().collect();
    let mut want = Vec::new();
    let batch = |class: &str, n: usize, want: &mut Vec<Vec<u8>>| {
        let mut input = String::new();
        for i in 0..n {
            let key = format!("key-{}", i % 64);
            for l in [line(class, i, Some(&key)), line(class, n + i, None)] {
                want.push(l.as_bytes().to_vec());
                input.push_str(&l);
            }
        }
        input.into_bytes()
    };
    let mut a = Agent::start(
        &ferro.endpoint(),
        "rs",
        2,
        // No periodic listing during the test: only answers naming unknown shards list again.
        &format!("    shard_aware on\n    shard_refresh_interval 3600\n{extra}"),
    );
    let start = Instant::now();
    // 8000 records: at least 2 s of 4 shards; the reshard comes while they are being sent.
    a.feed(batch("a", 4000, &mut want));
    while ferro.captured().len() < 1000 {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kds.update_shard_count("rs", 8).await.unwrap();
    let resharded = start.elapsed();
    wait_classes(&ferro, start, &[("a", 8000)], Duration::from_secs(50)).await;
    // After the reshard only the new shards take records.
    a.feed(batch("b", 2000, &mut want));
    wait_classes(&ferro, start, &[("b", 4000)], Duration::from_secs(50)).await;
    let loads = a.metric("fluentbit_kinesis_streams_shard_map_loads_total", &[]);
    let text = http_get(a.port, "/api/v2/metrics/prometheus");
    let mut sent_by_shard: BTreeMap<String, u64> = BTreeMap::new();
    for (labels, v) in samples(&text, "fluentbit_kinesis_streams_shard_sent_records_total") {
        let id = labels
            .split("shard=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        *sent_by_shard.entry(id.to_string()).or_default() += v;
    }
    let out = a.finish().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let read = kds.read_all("rs").await.unwrap();
    let mut read_by_shard: BTreeMap<String, u64> = BTreeMap::new();
    for r in &read {
        *read_by_shard.entry(r.shard_id.clone()).or_default() += 1;
    }
    eprintln!(
        "reshard at {resharded:?}; {loads} shard map loads; sent by shard {sent_by_shard:?}; read by shard {read_by_shard:?}"
    );
    assert_exactly_once(want, read.iter().map(|r| r.data.clone()).collect());
    assert!(loads >= 2, "the shards were listed again: {loads}");
    let new_sent: u64 = sent_by_shard
        .iter()
        .filter(|(id, _)| !old.contains(*id))
        .map(|(_, v)| v)
        .sum();
    assert!(
        new_sent >= 4000,
        "the new shards' buckets were used: {sent_by_shard:?}"
    );
    // A record counted on a shard went to that shard: never more counted than it holds.
    for (id, n) in &sent_by_shard {
        let there = read_by_shard.get(id).copied().unwrap_or(0);
        assert!(*n <= there, "shard {id}: {n} counted, {there} stored");
    }
    // Phase b went to the new shards only, by their hash ranges.
    let b_in_old = read
        .iter()
        .filter(|r| {
            old.contains(&r.shard_id) && String::from_utf8_lossy(&r.data).contains("\"k\":\"b\"")
        })
        .count();
    assert_eq!(b_in_old, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn kpl_aggregates_are_limited_by_their_key_shard() {
    use kb_kinesis::aggregate::deaggregate;
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("agg", 4).await.unwrap();
    // 1 KiB records: 3 MiB of the hot key is three aggregates of about 1 MiB, each a second
    // of its shard's byte limit; the random-key records are packed under random keys; the
    // records of 200 other keys are packed per shard (each aggregate holds many keys).
    let n = 3000;
    let pad = "y".repeat(1000);
    let mut input = String::new();
    let mut want = Vec::new();
    for i in 0..n {
        for l in [
            format!("{{\"pk\":\"hot\",\"k\":\"h\",\"i\":{i},\"p\":\"{pad}\"}}\n"),
            format!("{{\"k\":\"u\",\"i\":{i},\"p\":\"{pad}\"}}\n"),
            format!(
                "{{\"pk\":\"m{}\",\"k\":\"m\",\"i\":{i},\"p\":\"{pad}\"}}\n",
                i % 200
            ),
        ] {
            want.push(l.as_bytes().to_vec());
            input.push_str(&l);
        }
    }
    let mut a = Agent::start(
        &ferro.endpoint(),
        "agg",
        2,
        "    shard_aware on\n    aggregation on\n",
    );
    a.feed(input.into_bytes());
    let start = Instant::now();
    loop {
        let users: usize = ferro
            .captured()
            .iter()
            .map(|r| match deaggregate(&r.data) {
                Ok(Some(inner)) => inner.len(),
                _ => 1,
            })
            .sum();
        if users >= 3 * n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{users} records after 40 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pte = a.metric(
        "fluentbit_kinesis_streams_record_errors_total",
        &[&format!("error_code=\"{PTE}\"")],
    );
    let sent = a.metric("fluentbit_kinesis_streams_shard_sent_records_total", &[]);
    let out = a.finish().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let read = kds.read_all("agg").await.unwrap();
    eprintln!(
        "aggregation: {} Kinesis records, {sent} counted sent, {pte} PTE",
        read.len()
    );
    assert_eq!(
        sent,
        read.len() as u64,
        "aggregates counted on their shards"
    );
    // The stream's map, read independently of the agent.
    let (shards, _) = kb_kinesis::shards::parse_list_shards(
        &kds.call_raw("ListShards", br#"{"StreamName":"agg"}"#.to_vec())
            .await
            .unwrap()
            .1,
    )
    .unwrap();
    let map = kb_kinesis::shards::ShardMap::new(shards);
    let shard_of = |key: &str| map.shards()[map.shard_of_key(key).unwrap()].id.clone();
    let mut got = Vec::new();
    let mut multi_key = 0;
    for r in &read {
        match deaggregate(&r.data).expect("valid aggregate") {
            Some(inner) => {
                let keys: HashSet<&str> = inner.iter().map(|u| u.partition_key).collect();
                multi_key += usize::from(keys.len() > 1);
                for u in inner {
                    // Every record of an aggregate belongs to the shard the aggregate reached.
                    assert_eq!(
                        shard_of(u.partition_key),
                        r.shard_id,
                        "key {}",
                        u.partition_key
                    );
                    got.push(u.data.to_vec());
                }
            }
            None => got.push(r.data.clone()),
        }
    }
    // The 200 keys' records packed per shard: packed per key they would need at least 200
    // Kinesis records (one or more per key).
    let m_records = read
        .iter()
        .filter(|r| r.partition_key.starts_with('m'))
        .count();
    eprintln!(
        "{m_records} Kinesis records carry the 200 keys' records, {multi_key} hold several keys"
    );
    assert!(multi_key >= 4, "{multi_key} aggregates of several keys");
    assert!(m_records < 100, "{m_records} Kinesis records for 200 keys");
    assert_exactly_once(want, got);
    // Every hot aggregate is on the hot key's shard, as predicted.
    let hot_shards: HashSet<&str> = read
        .iter()
        .filter(|r| r.partition_key == "hot")
        .map(|r| r.shard_id.as_str())
        .collect();
    assert_eq!(hot_shards.len(), 1, "{hot_shards:?}");
    assert_eq!(
        pte, 0,
        "aggregates kept under the byte limit of their shard"
    );
}

/// Without `kinesis:ListShards` (kb-sink does not implement it) the output sends without shard
/// limits: every record delivered, the failure logged, and ListShards tried again only every
/// few seconds, not at every request.
#[tokio::test(flavor = "multi_thread")]
async fn failed_list_shards_sends_blind() {
    use kb_testkit::sink::{Sink, SinkConfig};
    let sink = Sink::start(SinkConfig::default().store(true)).await;
    let n = 3000;
    let input: String = (0..n).map(|i| line("u", i, None)).collect();
    let mut a = Agent::start(&sink.endpoint(), "blind", 2, "    shard_aware on\n");
    a.feed(input.into_bytes());
    let start = Instant::now();
    while sink.records().len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} records",
            sink.records().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = a.finish().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sink.records().len(), n, "exactly once");
    let log = stderr(&out);
    assert!(
        log.contains("ListShards of blind failed: UnknownOperationException"),
        "{log}"
    );
    // Unknown operations are the sink's bad requests: the ListShards calls, a few at most.
    let listings = sink.stats().bad_requests;
    assert!((1..=4).contains(&listings), "{listings} ListShards calls");
}

/// `-h` lists the keys; `--dry-run` rejects bad values with located errors naming the key.
#[test]
fn help_lists_the_keys_and_dry_run_checks_them() {
    let out = agent()
        .args(["-o", "kinesis_streams", "-h"])
        .output()
        .expect("run -h");
    let help = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    for k in [
        "shard_aware",
        "shard_refresh_interval",
        "shard_max_bytes_per_s",
        "shard_max_records_per_s",
    ] {
        assert!(help.contains(k), "{k} in\n{help}");
    }
    let out = agent()
        .args([
            "--dry-run",
            "-i",
            "dummy",
            "-o",
            "kinesis_streams",
            "-m",
            "*",
        ])
        .args([
            "-p",
            "stream=s",
            "-p",
            "region=us-east-1",
            "-p",
            "shard_aware=on",
        ])
        .args([
            "-p",
            "shard_refresh_interval=0",
            "-p",
            "shard_max_records_per_s=0",
        ])
        .output()
        .expect("run --dry-run");
    assert!(!out.status.success());
    let log = stderr(&out);
    assert!(
        log.contains("-p shard_refresh_interval=0: [output kinesis_streams.0] shard_refresh_interval must be at least 1 second"),
        "{log}"
    );
    assert!(
        log.contains("-p shard_max_records_per_s=0: [output kinesis_streams.0] shard_max_records_per_s must be at least 1"),
        "{log}"
    );
    let out = agent()
        .args([
            "--dry-run",
            "-i",
            "dummy",
            "-o",
            "kinesis_streams",
            "-m",
            "*",
        ])
        .args([
            "-p",
            "stream=s",
            "-p",
            "region=us-east-1",
            "-p",
            "shard_aware=on",
        ])
        .output()
        .expect("run --dry-run");
    assert!(out.status.success(), "{}", stderr(&out));
}
