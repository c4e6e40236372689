//! The agent shipping to ferrokinesis, a real independent Kinesis implementation, as a user
//! would run it: records are read back and compared byte for byte.

mod common;

use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr, terminate_and_wait};
use kb_testkit::kds::Kds;
use kb_testkit::peers::{FerroOptions, Ferrokinesis};

const LIMIT: Duration = Duration::from_secs(60);

async fn ferro_with_stream(stream: &str, shards: u32) -> (Ferrokinesis, Kds) {
    let ferro = Ferrokinesis::start();
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream(stream, shards)
        .await
        .expect("create stream");
    (ferro, kds)
}

fn ship_stdin(endpoint: &str, stream: &str, extra: &[&str], input: &[u8]) -> std::process::Output {
    let mut cmd = agent();
    cmd.args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
        .args(["-p", &format!("stream={stream}"), "-p", "region=us-east-1"])
        .args(["-p", &format!("endpoint={endpoint}")]);
    for p in extra {
        cmd.args(["-p", p]);
    }
    run_with_stdin(&mut cmd, input, LIMIT)
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_records_arrive_byte_for_byte() {
    let (ferro, kds) = ferro_with_stream("s1", 2).await;
    let input = "{\"msg\":\"héllo\",\"n\":1,\"f\":0.5}\nplain text line\n{\"a\":{\"b\":[1,2,null]},\"t\":true}\n";
    let out = tokio::task::spawn_blocking({
        let ep = ferro.endpoint();
        move || ship_stdin(&ep, "s1", &[], input.as_bytes())
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut got: Vec<Vec<u8>> = ferro.captured().into_iter().map(|r| r.data).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = vec![
        b"{\"msg\":\"h\\u00e9llo\",\"n\":1,\"f\":0.5}\n".to_vec(),
        b"{\"log\":\"plain text line\"}\n".to_vec(),
        b"{\"a\":{\"b\":[1,2,null]},\"t\":true}\n".to_vec(),
    ];
    want.sort();
    assert_eq!(got, want);
    // The same bytes come back through GetRecords.
    let mut read: Vec<Vec<u8>> = kds
        .read_all("s1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    read.sort();
    assert_eq!(read, want);
    // Random partition keys: 16 alphanumeric characters, all different.
    let keys: Vec<String> = ferro
        .captured()
        .into_iter()
        .map(|r| r.partition_key)
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_alphanumeric())),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn formatting_keys_shape_the_records() {
    let (ferro, _kds) = ferro_with_stream("s2", 1).await;
    let input = "{\"log\":\"he said \\\"hi\\\"\\t\",\"user\":\"u1\"}\n{\"user\":\"u2\"}\n";
    let out = tokio::task::spawn_blocking({
        let ep = ferro.endpoint();
        move || {
            ship_stdin(
                &ep,
                "s2",
                &["log_key=log", "partition_key=$user"],
                input.as_bytes(),
            )
        }
    })
    .await
    .unwrap();
    assert_success(&out);
    let recs = ferro.captured();
    assert_eq!(
        recs.len(),
        1,
        "the record without 'log' is dropped: {recs:?}"
    );
    assert_eq!(recs[0].data, b"he said \"hi\"\t\n");
    assert_eq!(recs[0].partition_key, "u1");
    assert!(
        stderr(&out).contains("Could not find log_key 'log' in record, s2"),
        "{}",
        stderr(&out)
    );

    let (ferro, _kds) = ferro_with_stream("s3", 1).await;
    let input = "{\"a\":1,\"time\":\"old\"}\n";
    let out = tokio::task::spawn_blocking({
        let ep = ferro.endpoint();
        move || {
            ship_stdin(
                &ep,
                "s3",
                &["time_key=time", "time_key_format=%Y", "append_newline=off"],
                input.as_bytes(),
            )
        }
    })
    .await
    .unwrap();
    assert_success(&out);
    let recs = ferro.captured();
    let year = current_year();
    assert_eq!(
        String::from_utf8_lossy(&recs[0].data),
        format!("{{\"a\":1,\"time\":\"{year}\"}}")
    );
}

fn current_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    kb_core::civil::civil_from_days(secs.div_euclid(86_400)).0
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_command_line_ships_cpu_records() {
    let (ferro, kds) = ferro_with_stream("my-stream", 1).await;
    let child = agent()
        .args([
            "-i",
            "cpu",
            "-o",
            "kinesis_streams",
            "-p",
            "stream=my-stream",
            "-p",
            "region=us-west-2",
        ])
        .args([
            "-p",
            &format!("endpoint={}", ferro.endpoint()),
            "-m",
            "*",
            "-f",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let out = terminate_and_wait(child, LIMIT).await;
    assert_success(&out);
    let recs = kds.read_all("my-stream").await.unwrap();
    assert!(
        recs.len() >= 2,
        "expected CPU records; agent log:\n{}",
        stderr(&out)
    );
    for r in recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("JSON record");
        assert!(
            v["cpu_p"].is_number() && v["user_p"].is_number() && v["cpu0.p_cpu"].is_number(),
            "{v}"
        );
        assert_eq!(r.data.last(), Some(&b'\n'));
    }
}

/// `protocol cbor` (what the AWS Java SDK and the KPL send): ferrokinesis accepts the CBOR
/// PutRecords and answers in CBOR; the records read back are the same bytes. The logged body
/// size is the CBOR body's, so the request really was CBOR (a JSON body is a third larger).
#[tokio::test(flavor = "multi_thread")]
async fn cbor_records_arrive_byte_for_byte() {
    use kb_kinesis::encode::{Protocol, PutRecordsBody};
    let (ferro, kds) = ferro_with_stream("cb", 2).await;
    let input = "{\"msg\":\"héllo\",\"n\":1}\nplain text line\n{\"bin\":\"\\u0000\\u00ff\"}\n";
    let out = tokio::task::spawn_blocking({
        let ep = ferro.endpoint();
        move || {
            ship_stdin(
                &ep,
                "cb",
                &["protocol=cbor", "log_level=debug"],
                input.as_bytes(),
            )
        }
    })
    .await
    .unwrap();
    assert_success(&out);
    let want: Vec<Vec<u8>> = vec![
        b"{\"msg\":\"h\\u00e9llo\",\"n\":1}\n".to_vec(),
        b"{\"log\":\"plain text line\"}\n".to_vec(),
        b"{\"bin\":\"\\u0000\\u00ff\"}\n".to_vec(),
    ];
    let mut read: Vec<Vec<u8>> = kds
        .read_all("cb")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    read.sort();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(read, sorted, "{}", stderr(&out));
    // Random keys are 16 characters: the CBOR body of these records has this exact size.
    let mut body = PutRecordsBody::with_protocol("cb", Protocol::Cbor);
    for d in &want {
        assert!(body.try_push(d, "0123456789abcdef"));
    }
    let line = format!("PutRecords with 3 records ({} bytes), cb", body.body_len());
    assert!(
        stderr(&out).contains(&line),
        "no '{line}' in:\n{}",
        stderr(&out)
    );
}

/// Partial throttling by a real peer, answered in CBOR: only the failed entries are sent
/// again, every record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn cbor_throttled_stream_gets_everything_exactly_once() {
    throttled_exactly_once("    protocol cbor\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_stream_gets_everything_exactly_once() {
    throttled_exactly_once("").await;
}

async fn throttled_exactly_once(extra: &str) {
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("slow", 1).await.unwrap();
    // 3000 records at once on one shard: the shard takes 1000 records/s, so most requests are
    // partially throttled and only the failed entries may be sent again.
    let n = 3000;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"seq\":{i},\"pad\":\"{}\"}}\n",
            "x".repeat(100)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Grace 60\n    scheduler.base 1\n    scheduler.cap 2\n\n[INPUT]\n    Name stdin\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream slow\n    region us-east-1\n    \
             endpoint {}\n    retry_limit no_limits\n{extra}",
            ferro.endpoint()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.args(["-c", conf.to_str().unwrap()]);
        run_with_stdin(&mut cmd, input.as_bytes(), Duration::from_secs(120))
    })
    .await
    .unwrap();
    let mut counts = vec![0u32; n];
    for r in ferro.captured() {
        let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
        counts[v["seq"].as_u64().unwrap() as usize] += 1;
    }
    let missing: Vec<usize> = (0..n).filter(|i| counts[*i] == 0).collect();
    let dups: Vec<usize> = (0..n).filter(|i| counts[*i] > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "missing {missing:?}, duplicated {dups:?}; log:\n{}",
        stderr(&out)
    );
    assert_success(&out);
    assert!(
        stderr(&out).contains("retrying only the failed records"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_stream_fails_at_startup_and_in_dry_run() {
    for dry in [true, false] {
        let mut cmd = agent();
        cmd.args([
            "-i",
            "cpu",
            "-o",
            "kinesis_streams",
            "-p",
            "region=us-west-2",
            "-m",
            "*",
        ]);
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("command line: -o kinesis_streams: [output kinesis_streams.0] 'stream' is a required field"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn seed_yaml_typo_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.yaml");
    std::fs::write(
        &conf,
        "pipeline:\n  inputs:\n    - name: cpu\n  outputs:\n    - name: kinesis_steams\n      match: '*'\n      region: us-east-1\n      stream: my-stream\n",
    )
    .unwrap();
    let out = agent()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown output 'kinesis_steams' — did you mean 'kinesis_streams'?"),
        "{}",
        stderr(&out)
    );
}

/// Run one of `examples/` as the README says (`bash examples/cli.sh`, `bash examples/run.sh
/// FILE`) for a few seconds against a fresh stream, with only `KINESIS_ENDPOINT` (and
/// `KINESIS_BIT`, the binary under test) set: no AWS credentials. Returns what arrived.
async fn run_example(script_args: &[&str]) -> Vec<serde_json::Value> {
    let (ferro, kds) = ferro_with_stream("my-stream", 1).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut cmd = std::process::Command::new("bash");
    cmd.args(
        script_args
            .iter()
            .map(|a| a.replace("{examples}", examples)),
    );
    cmd.envs(
        agent()
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env("KINESIS_BIT", env!("CARGO_BIN_EXE_kinesis-bit"));
    let child = cmd
        .env("KINESIS_ENDPOINT", ferro.endpoint())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = terminate_and_wait(child, LIMIT).await;
    assert_success(&out);
    assert!(
        stderr(&out).starts_with(
            "examples: no AWS credentials set; using placeholders, which a local emulator accepts\n"
        ),
        "{}",
        stderr(&out)
    );
    let recs = kds.read_all("my-stream").await.unwrap();
    assert!(
        !recs.is_empty(),
        "no records arrived; log:\n{}",
        stderr(&out)
    );
    recs.iter()
        .map(|r| serde_json::from_slice(&r.data).expect("JSON record"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_examples_ship_cpu_records() {
    for v in run_example(&["{examples}/cli.sh"]).await {
        assert!(v["cpu_p"].is_number(), "{v}");
    }
    for file in ["kinesis.yaml", "kinesis.conf"] {
        let path = format!("{{examples}}/{file}");
        for v in run_example(&["{examples}/run.sh", &path]).await {
            assert!(v["cpu_p"].is_number(), "{file}: {v}");
            // time_key time with the default format: 2026-11-27T23:50:00
            let t = v["time"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no time in {v}"));
            assert_eq!(t.len(), 19, "{file}: {t}");
            assert_eq!(&t[10..11], "T");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_fails_the_start_for_a_missing_stream() {
    let (ferro, _kds) = ferro_with_stream("present", 1).await;
    let ep = ferro.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let missing = ship_stdin(&ep, "absent", &["healthcheck=on"], b"{\"a\":1}\n");
        let present = ship_stdin(&ep, "present", &["healthcheck=on"], b"{\"a\":1}\n");
        (missing, present)
    })
    .await
    .unwrap();
    let (missing, present) = out;
    assert_eq!(missing.status.code(), Some(255), "{}", stderr(&missing));
    assert!(
        stderr(&missing)
            .contains("healthcheck of stream 'absent' failed: ResourceNotFoundException"),
        "{}",
        stderr(&missing)
    );
    assert_success(&present);
    assert!(
        stderr(&present).contains("healthcheck: stream present is ACTIVE"),
        "{}",
        stderr(&present)
    );
    assert_eq!(ferro.captured().len(), 1);
}

fn numbered(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"seq\":{i},\"user\":\"u{}\"}}\n", i % 3))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_records_decompress_to_the_json_lines() {
    use std::io::Read;
    let (ferro, _kds) = ferro_with_stream("gz", 1).await;
    let ep = ferro.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        ship_stdin(&ep, "gz", &["compression=gzip"], &numbered(5))
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut got: Vec<String> = ferro
        .captured()
        .iter()
        .map(|r| {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&r.data[..])
                .read_to_string(&mut s)
                .expect("one gzip member");
            s
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..5)
        .map(|i| format!("{{\"seq\":{i},\"user\":\"u{}\"}}\n", i % 3))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn kpl_aggregates_deaggregate_to_the_same_records_keys_and_order() {
    use kb_kinesis::aggregate::deaggregate;
    let (ferro, _kds) = ferro_with_stream("kpl", 1).await;
    let ep = ferro.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        ship_stdin(
            &ep,
            "kpl",
            &["aggregation=on", "partition_key=$user"],
            &numbered(30),
        )
    })
    .await
    .unwrap();
    assert_success(&out);
    let captured = ferro.captured();
    assert!(
        captured.len() < 30,
        "records were aggregated: {} Kinesis records",
        captured.len()
    );
    let mut users: Vec<(String, String)> = Vec::new();
    for r in &captured {
        match deaggregate(&r.data).expect("valid aggregate") {
            Some(inner) => {
                for u in inner {
                    assert_eq!(u.partition_key, r.partition_key, "table key = outer key");
                    users.push((
                        u.partition_key.to_string(),
                        String::from_utf8(u.data.to_vec()).unwrap(),
                    ));
                }
            }
            None => users.push((
                r.partition_key.clone(),
                String::from_utf8(r.data.clone()).unwrap(),
            )),
        }
    }
    // Per key, records keep their order; every record is there once, with its own key.
    users.sort_by_key(|(k, d)| {
        let v: serde_json::Value = serde_json::from_str(d).unwrap();
        (k.clone(), v["seq"].as_u64().unwrap())
    });
    let mut want: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("u{}", i % 3),
                format!("{{\"seq\":{i},\"user\":\"u{}\"}}\n", i % 3),
            )
        })
        .collect();
    want.sort_by_key(|(k, d)| {
        let v: serde_json::Value = serde_json::from_str(d).unwrap();
        (k.clone(), v["seq"].as_u64().unwrap())
    });
    assert_eq!(users, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_aggregation_packs_newline_separated_records() {
    let (ferro, _kds) = ferro_with_stream("simple", 1).await;
    let ep = ferro.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        ship_stdin(&ep, "simple", &["simple_aggregation=on"], &numbered(50))
    })
    .await
    .unwrap();
    assert_success(&out);
    let captured = ferro.captured();
    assert_eq!(captured.len(), 1, "50 small records fit one aggregate");
    assert_eq!(captured[0].data, numbered(50));
}
