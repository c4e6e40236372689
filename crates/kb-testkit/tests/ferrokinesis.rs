//! ferrokinesis: start, Kds round trip, capture file, --enforce-limits.

use std::collections::BTreeSet;

use kb_testkit::kds::Kds;
use kb_testkit::peers::{FerroOptions, Ferrokinesis};
use serde_json::json;

fn test_records() -> Vec<(String, Vec<u8>)> {
    (0..40u32)
        .map(|i| {
            let mut data = format!("record-{i}-").into_bytes();
            data.extend((0..=255u8).map(|b| b.wrapping_add(i as u8))); // every byte value
            (format!("key-{i}"), data)
        })
        .collect()
}

#[tokio::test]
async fn round_trip_and_capture() {
    let ferro = Ferrokinesis::start();
    assert!(ferro.endpoint().starts_with("http://127.0.0.1:"));
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("t", 4).await.unwrap();
    assert_eq!(kds.shard_ids("t").await.unwrap().len(), 4);

    let recs = test_records();
    let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
    let (status, resp) = kds.put_records("t", &refs).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["FailedRecordCount"], 0);
    assert_eq!(resp["Records"].as_array().unwrap().len(), recs.len());

    let read = kds
        .wait_for_count("t", recs.len(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(read.len(), recs.len());
    let got: BTreeSet<(String, Vec<u8>)> = read
        .iter()
        .map(|r| (r.partition_key.clone(), r.data.clone()))
        .collect();
    let want: BTreeSet<(String, Vec<u8>)> = recs.iter().cloned().collect();
    assert_eq!(got, want);
    // shard order, then sequence order
    let shards: Vec<&str> = read.iter().map(|r| r.shard_id.as_str()).collect();
    let mut sorted = shards.clone();
    sorted.sort();
    assert_eq!(shards, sorted);
    assert!(
        shards.iter().collect::<BTreeSet<_>>().len() > 1,
        "records spread over shards"
    );

    let cap = ferro.captured();
    assert_eq!(cap.len(), recs.len());
    for (c, (k, d)) in cap.iter().zip(&recs) {
        assert_eq!(c.stream, "t");
        assert!(c.op.starts_with("Put"), "{}", c.op);
        assert_eq!(&c.partition_key, k);
        assert_eq!(&c.data, d);
        assert!(!c.sequence_number.is_empty());
        assert!(c.shard_id.starts_with("shardId-"));
    }
    // sequence numbers and shards agree with GetRecords
    for r in &read {
        let c = cap
            .iter()
            .find(|c| c.sequence_number == r.sequence_number)
            .unwrap();
        assert_eq!(c.shard_id, r.shard_id);
    }

    kds.delete_stream("t").await.unwrap();
}

#[tokio::test]
async fn two_instances_and_errors() {
    let a = Ferrokinesis::start();
    let b = Ferrokinesis::start();
    assert_ne!(a.port(), b.port());
    let kds = Kds::new(&a.endpoint(), "us-east-1");
    let (status, v) = kds
        .call("DescribeStreamSummary", json!({"StreamName": "missing"}))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "ResourceNotFoundException", "{v}");
    let port = a.port();
    drop(a);
    // stopped: the port is free again
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[tokio::test]
async fn enforce_limits_throttles() {
    let ferro = Ferrokinesis::start_with(FerroOptions {
        enforce_limits: true,
        extra_args: vec![],
    });
    let kds = Kds::new(&ferro.endpoint(), "us-east-1");
    kds.create_stream("one", 1).await.unwrap();
    let data = [b'x'; 10];
    let recs: Vec<(&str, &[u8])> = (0..500).map(|_| ("k", &data[..])).collect();
    let mut failed = 0;
    for _ in 0..3 {
        let (status, v) = kds.put_records("one", &recs).await.unwrap();
        assert_eq!(status, 200, "{v}");
        failed += v["FailedRecordCount"].as_u64().unwrap();
    }
    assert!(
        failed > 0,
        "3 x 500 records on one shard within a second must be throttled"
    );
    let accepted = ferro.captured().len() as u64;
    assert_eq!(accepted + failed, 1500);
}
