//! `shard_aware` and its limits (issue 15) from the key table to the settings: defaults,
//! located errors naming the key, and the combination it refuses.

use std::time::Duration;

use kb_kinesis::config::{Settings, ShardAware};

mod common;

/// With `region us-east-1`, which every case here needs.
fn settings(props: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
    let all: Vec<(&str, &str)> = [("region", "us-east-1")]
        .into_iter()
        .chain(props.iter().copied())
        .collect();
    common::settings(&all)
}

fn errors(props: &[(&str, &str)]) -> String {
    settings(props).expect_err("an error").join("\n")
}

#[test]
fn off_by_default_and_the_service_limits_when_on() {
    let s = settings(&[("stream", "s")]).unwrap();
    assert_eq!(s.shard_aware, None);
    let s = settings(&[("stream", "s"), ("shard_aware", "on")]).unwrap();
    assert_eq!(
        s.shard_aware,
        Some(ShardAware {
            refresh: Duration::from_secs(60),
            bytes_per_s: 1 << 20,
            records_per_s: 1000,
        })
    );
    let s = settings(&[
        ("stream", "s"),
        ("shard_aware", "on"),
        ("shard_refresh_interval", "2m"),
        ("shard_max_bytes_per_s", "512k"),
        ("shard_max_records_per_s", "200"),
    ])
    .unwrap();
    assert_eq!(
        s.shard_aware,
        Some(ShardAware {
            refresh: Duration::from_secs(120),
            // Sizes as Fluent Bit reads them: k is 1000.
            bytes_per_s: 512_000,
            records_per_s: 200,
        })
    );
}

#[test]
fn bad_values_are_located_errors_naming_the_key() {
    let e = errors(&[
        ("stream", "s"),
        ("shard_aware", "on"),
        ("shard_refresh_interval", "0"),
        ("shard_max_bytes_per_s", "100"),
        ("shard_max_records_per_s", "0"),
    ]);
    for want in [
        "-p shard_refresh_interval=0: [output kinesis_streams.0] shard_refresh_interval must be at least 1 second",
        "-p shard_max_bytes_per_s=100: [output kinesis_streams.0] shard_max_bytes_per_s 100 is too small",
        "-p shard_max_records_per_s=0: [output kinesis_streams.0] shard_max_records_per_s must be at least 1",
    ] {
        assert!(e.contains(want), "{want} in\n{e}");
    }
    let e = errors(&[("stream", "s"), ("shard_max_records_per_s", "many")]);
    assert!(e.contains("shard_max_records_per_s"), "{e}");
    let e = errors(&[("stream", "logs-$app"), ("shard_aware", "on")]);
    assert!(
        e.contains("-p shard_aware=on: [output kinesis_streams.0] 'shard_aware' can not be used with a per-record stream template"),
        "{e}"
    );
}

#[test]
fn limits_without_shard_aware_warn() {
    let s = settings(&[("stream", "s"), ("shard_max_records_per_s", "10")]).unwrap();
    assert_eq!(s.shard_aware, None);
    assert!(
        s.warnings
            .iter()
            .any(|w| w == "'shard_max_records_per_s' has no effect without 'shard_aware on'"),
        "{:?}",
        s.warnings
    );
}
