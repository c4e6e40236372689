//! `kinesis`, the Go plugin's output (amazon-kinesis-streams-for-fluent-bit), configured as its
//! README shows, against ferrokinesis: the Data the Go plugin writes (sorted keys, Go's JSON,
//! `append_newline`, `replace_dots`, zlib) and its partition-key rule (the value of
//! `partition_key`, nested with `->`, else a random 8-character key).

mod common;

use std::io::Read;
use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr};
use kb_testkit::kds::Kds;
use kb_testkit::peers::Ferrokinesis;

fn ship(keys: &[(&str, &str)], input: &[u8]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    let mut text = "[SERVICE]\n    Flush 1\n    Grace 10\n\n[INPUT]\n    Name stdin\n\n[OUTPUT]\n    Name kinesis\n    Match *\n".to_string();
    for (k, v) in keys {
        text.push_str(&format!("    {k} {v}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    let mut cmd = agent();
    cmd.args(["-c", conf.to_str().unwrap()]);
    run_with_stdin(&mut cmd, input, Duration::from_secs(60))
}

async fn ferro(stream: &str) -> Ferrokinesis {
    let f = Ferrokinesis::start();
    Kds::new(&f.endpoint(), "us-east-1")
        .create_stream(stream, 2)
        .await
        .unwrap();
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_config_sends_the_go_plugins_records_and_keys() {
    let f = ferro("my-kinesis-stream-name").await;
    let ep = f.endpoint();
    let input = concat!(
        r#"{"log":"line 1","container_id":"c-1","source":"stdout","x.y":{"a.b":1}}"#,
        "\n",
        r#"{"log":"<line 2>","source":"stderr","n":1e21,"f":1.0}"#,
        "\n",
        r#"{"log":"line 3","container_id":17}"#,
        "\n",
    );
    let out = tokio::task::spawn_blocking(move || {
        ship(
            &[
                ("region", "us-east-1"),
                ("stream", "my-kinesis-stream-name"),
                ("partition_key", "container_id"),
                ("append_newline", "true"),
                ("replace_dots", "_"),
                ("endpoint", &ep),
            ],
            input.as_bytes(),
        )
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut recs = f.captured();
    recs.sort_by(|a, b| a.data.cmp(&b.data));
    let data: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.data.clone()).unwrap())
        .collect();
    assert_eq!(
        data,
        vec![
            "{\"container_id\":\"c-1\",\"log\":\"line 1\",\"source\":\"stdout\",\"x_y\":{\"a_b\":1}}\n",
            "{\"container_id\":17,\"log\":\"line 3\"}\n",
            "{\"f\":1,\"log\":\"\\u003cline 2\\u003e\",\"n\":1e+21,\"source\":\"stderr\"}\n",
        ],
        "{}",
        stderr(&out)
    );
    assert_eq!(recs[0].partition_key, "c-1");
    // Missing or not a string: a random key of 8 characters, with the Go plugin's words.
    for r in &recs[1..] {
        assert_eq!(r.partition_key.len(), 8, "{:?}", r.partition_key);
        assert!(r.partition_key.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    assert!(
        stderr(&out).contains(
            "The partition key could not be found in the record, using a random string instead"
        ),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_partition_key_data_keys_log_key_and_zlib() {
    let f = ferro("s").await;
    let ep = f.endpoint();
    let input = concat!(
        r#"{"kubernetes":{"pod_name":"web-7"},"log":"hello","other":1}"#,
        "\n",
    );
    let out = tokio::task::spawn_blocking(move || {
        ship(
            &[
                ("region", "us-east-1"),
                ("stream", "s"),
                ("partition_key", "kubernetes->pod_name"),
                ("data_keys", "log"),
                ("compression", "zlib"),
                ("endpoint", &ep),
            ],
            input.as_bytes(),
        )
    })
    .await
    .unwrap();
    assert_success(&out);
    let recs = f.captured();
    assert_eq!(recs.len(), 1, "{}", stderr(&out));
    assert_eq!(recs[0].partition_key, "web-7");
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(&recs[0].data[..])
        .read_to_string(&mut text)
        .unwrap();
    // append_newline defaults to false in the Go plugin.
    assert_eq!(text, "{\"log\":\"hello\"}");

    // log_key: the raw string value.
    let f = ferro("s2").await;
    let ep = f.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        ship(
            &[
                ("region", "us-east-1"),
                ("stream", "s2"),
                ("log_key", "log"),
                ("append_newline", "true"),
                ("endpoint", &ep),
            ],
            b"{\"log\":\"he said \\\"hi\\\"\"}\n",
        )
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(f.captured()[0].data, b"he said \"hi\"\n");
}

#[test]
fn go_plugin_validation_is_kept() {
    let out = agent()
        .args([
            "-i",
            "dummy",
            "-o",
            "kinesis",
            "-m",
            "*",
            "-p",
            "region=us-east-1",
        ])
        .args([
            "-p",
            "stream=s",
            "-p",
            "partition_key=log",
            "-p",
            "compression=lz4",
        ])
        .args(["-p", "experimental_concurrency=11", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'log' cannot be set as the partition key"),
        "{err}"
    );
    assert!(
        err.contains("Invalid 'compression' value (lz4) specified"),
        "{err}"
    );
    assert!(err.contains("must be less than or equal to 10"), "{err}");
    for (plugin, key) in [
        ("kinesis_firehose", "delivery_stream"),
        ("firehose", "delivery_stream"),
    ] {
        let out = agent()
            .args([
                "-i",
                "dummy",
                "-o",
                plugin,
                "-m",
                "*",
                "-p",
                "region=us-east-1",
                "--dry-run",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("'{key}' is a required field")),
            "{err}"
        );
        let out = agent().args(["-o", plugin, "-h"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("delivery_stream"),
            "{help}"
        );
    }
    let out = agent().args(["-o", "kinesis", "-h"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("replace_dots") && help.contains("experimental_concurrency"),
        "{help}"
    );
}

/// The new examples pass `--dry-run` as the README runs them.
#[test]
fn firehose_and_go_examples_pass_dry_run() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (file, var, ep) in [
        (
            "firehose.conf",
            "FIREHOSE_ENDPOINT",
            "http://127.0.0.1:5000",
        ),
        (
            "firehose-go.conf",
            "FIREHOSE_ENDPOINT",
            "http://127.0.0.1:5000",
        ),
        (
            "kinesis-go.conf",
            "KINESIS_ENDPOINT",
            "http://127.0.0.1:4567",
        ),
    ] {
        let out = std::process::Command::new("bash")
            .arg(examples.join("run.sh"))
            .arg(examples.join(file))
            .arg("--dry-run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KINESIS_BIT", env!("CARGO_BIN_EXE_kinesis-bit"))
            .env(var, ep)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {err}");
        assert!(
            err.ends_with("configuration test is successful\n"),
            "{file}: {err}"
        );
    }
}
