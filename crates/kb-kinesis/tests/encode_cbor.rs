//! `protocol cbor` bodies decoded by an independent CBOR implementation (ciborium): the same
//! stream, records, partition keys and order as the JSON body of the same records, with each
//! `Data` a byte string equal to the base64-decoded JSON `Data`; the size bookkeeping exact;
//! and the CBOR answers read with the JSON answers' rules.

use ciborium::Value;
use kb_kinesis::encode::{Protocol, PutRecordsBody, MAX_BODY, MAX_RECORDS};
use kb_kinesis::response::{parse_response_as, EntryOutcome};
use kb_kinesis::service::Streams;

/// Records of every CBOR length class (heads of 1, 2, 3 and 5 bytes), with binary data and
/// keys that need JSON escaping or are not ASCII.
fn records() -> Vec<(Vec<u8>, String)> {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut out = Vec::new();
    for (i, len) in [0usize, 1, 23, 24, 255, 256, 1000, 65_535, 65_536, 70_000]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let key = match i % 4 {
            0 => format!("key-{i}"),
            1 => format!("\"quoted\\{i}\u{1}"),
            2 => format!("ключ-{i}-é"),
            _ => "k".repeat(24 + i),
        };
        out.push((data, key));
    }
    out
}

fn json_body(recs: &[(Vec<u8>, String)], stream: &str) -> Vec<u8> {
    let mut b = PutRecordsBody::new(stream);
    for (d, k) in recs {
        assert!(b.try_push(d, k));
    }
    b.finish().to_vec()
}

fn cbor_body(recs: &[(Vec<u8>, String)], stream: &str) -> Vec<u8> {
    let mut b = PutRecordsBody::with_protocol(stream, Protocol::Cbor);
    for (d, k) in recs {
        let predicted = b.body_len() + b.entry_size(d.len(), k);
        assert!(b.try_push(d, k));
        assert_eq!(b.finish().len(), predicted, "entry_size is exact");
    }
    b.finish().to_vec()
}

fn map_get<'a>(m: &'a [(Value, Value)], key: &str) -> &'a Value {
    let found: Vec<_> = m.iter().filter(|(k, _)| k.as_text() == Some(key)).collect();
    assert_eq!(found.len(), 1, "{key} exactly once");
    &found[0].1
}

#[test]
fn cbor_body_equals_the_json_body_for_an_independent_decoder() {
    let recs = records();
    let stream = "my-stream.1_x";
    let json: serde_json::Value = serde_json::from_slice(&json_body(&recs, stream)).unwrap();
    let cbor = cbor_body(&recs, stream);
    let v: Value = ciborium::de::from_reader(&cbor[..]).unwrap();
    let top = v.as_map().expect("a map");
    assert_eq!(top.len(), 2);
    assert_eq!(
        map_get(top, "StreamName").as_text(),
        json["StreamName"].as_str()
    );
    let entries = map_get(top, "Records").as_array().expect("an array");
    let json_entries = json["Records"].as_array().unwrap();
    assert_eq!(entries.len(), recs.len());
    assert_eq!(entries.len(), json_entries.len());
    for (i, (e, j)) in entries.iter().zip(json_entries).enumerate() {
        let m = e.as_map().expect("an entry map");
        assert_eq!(m.len(), 2, "entry {i}: Data and PartitionKey only");
        let Value::Bytes(data) = map_get(m, "Data") else {
            panic!("entry {i}: Data is not a byte string");
        };
        let from_json = base64_simd::STANDARD
            .decode_to_vec(j["Data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, &from_json, "entry {i}");
        assert_eq!(data, &recs[i].0, "entry {i}");
        assert_eq!(
            map_get(m, "PartitionKey").as_text(),
            j["PartitionKey"].as_str(),
            "entry {i}"
        );
    }
    // Raw bytes: the CBOR body is about three quarters of the JSON one.
    let json_len = json_body(&recs, stream).len();
    assert!(
        cbor.len() * 4 < json_len * 3 + 4096,
        "{} vs {json_len}",
        cbor.len()
    );
}

#[test]
fn cbor_limits_and_reuse() {
    // 500 entries at most, and the body bound holds with the CBOR sizes.
    let mut b = PutRecordsBody::with_protocol("s", Protocol::Cbor);
    for _ in 0..MAX_RECORDS {
        assert!(b.try_push(b"x", "k"));
    }
    assert!(!b.try_push(b"x", "k"));
    let bytes = b.take_bytes();
    let v: Value = ciborium::de::from_reader(&bytes[..]).unwrap();
    assert_eq!(
        map_get(v.as_map().unwrap(), "Records")
            .as_array()
            .unwrap()
            .len(),
        MAX_RECORDS
    );
    b.recycle(bytes);
    assert!(b.is_empty());
    let big = vec![7u8; MAX_BODY / 3];
    assert!(b.try_push(&big, "a"));
    assert!(b.try_push(&big, "b"));
    assert!(!b.try_push(&big, "c"), "a third would pass MAX_BODY");
    assert!(b.body_len() <= MAX_BODY);
    // An empty body is still a valid request.
    let mut e = PutRecordsBody::with_protocol("s", Protocol::Cbor);
    let v: Value = ciborium::de::from_reader(e.finish()).unwrap();
    assert_eq!(
        map_get(v.as_map().unwrap(), "Records")
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

// ------------------------------------------------------------------------------------------------
// answers

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn answer(count: Option<Value>, entries: Vec<Value>) -> Vec<u8> {
    let mut m = Vec::new();
    if let Some(c) = count {
        m.push((text("FailedRecordCount"), c));
    }
    m.push((text("Records"), Value::Array(entries)));
    m.push((text("EncryptionType"), text("NONE")));
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(m), &mut out).unwrap();
    out
}

fn ok_entry() -> Value {
    Value::Map(vec![
        (text("SequenceNumber"), text("4959")),
        (text("ShardId"), text("shardId-000000000000")),
    ])
}

fn failed_entry(code: &str) -> Value {
    Value::Map(vec![
        (text("ErrorCode"), text(code)),
        (text("ErrorMessage"), text("Rate exceeded for shard")),
    ])
}

fn parse(body: &[u8], sent: usize) -> Result<Vec<Option<String>>, String> {
    parse_response_as::<Streams>(body, sent, Protocol::Cbor)
        .map(|r| {
            r.outcomes()
                .map(|o| match o {
                    EntryOutcome::Accepted => None,
                    EntryOutcome::Failed { code, .. } => Some(code.to_string()),
                })
                .collect()
        })
        .map_err(|e| e.reason().to_string())
}

#[test]
fn cbor_answers_are_read_like_json_ones() {
    let all_ok = answer(Some(Value::Integer(0.into())), vec![ok_entry(), ok_entry()]);
    assert_eq!(parse(&all_ok, 2).unwrap(), vec![None, None]);
    let partial = answer(
        Some(Value::Integer(1.into())),
        vec![
            ok_entry(),
            failed_entry("ProvisionedThroughputExceededException"),
        ],
    );
    assert_eq!(
        parse(&partial, 2).unwrap(),
        vec![None, Some("ProvisionedThroughputExceededException".into())]
    );
    // The indefinite-length map Kinesis writes.
    let mut indefinite = partial.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    assert_eq!(
        parse(&indefinite, 2).unwrap()[1].as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    // A JSON answer to a CBOR request is read as JSON.
    let json = br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure"},{"SequenceNumber":"1"}]}"#;
    assert_eq!(
        parse(json, 2).unwrap(),
        vec![Some("InternalFailure".into()), None]
    );
}

#[test]
fn inconsistent_or_malformed_cbor_answers_are_errors() {
    let ok2 = || vec![ok_entry(), ok_entry()];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (answer(None, ok2()), "FailedRecordCount missing"),
        (answer(Some(Value::Integer((-1).into())), ok2()), "negative"),
        (answer(Some(text("0")), ok2()), "not an integer"),
        (answer(Some(Value::Float(0.0)), ok2()), "not an integer"),
        (
            answer(Some(Value::Integer(1.into())), vec![ok_entry()]),
            "1 entry in Records for 2 entries sent",
        ),
        (
            answer(
                Some(Value::Integer(2.into())),
                vec![ok_entry(), failed_entry("X")],
            ),
            "FailedRecordCount 2 but 1",
        ),
        (
            answer(
                Some(Value::Integer(1.into())),
                vec![
                    ok_entry(),
                    Value::Map(vec![(text("ErrorCode"), Value::Integer(1.into()))]),
                ],
            ),
            "not text",
        ),
        (
            answer(Some(Value::Integer(1.into())), vec![ok_entry(), text("x")]),
            "not a map",
        ),
    ];
    for (body, want) in cases {
        let e = parse(&body, 2).unwrap_err();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    // Duplicate members, trailing bytes, truncation.
    let mut dup = Vec::new();
    ciborium::ser::into_writer(
        &Value::Map(vec![
            (text("FailedRecordCount"), Value::Integer(0.into())),
            (text("FailedRecordCount"), Value::Integer(0.into())),
        ]),
        &mut dup,
    )
    .unwrap();
    assert!(parse(&dup, 1).unwrap_err().contains("duplicate"));
    let mut trailing = answer(Some(Value::Integer(0.into())), vec![ok_entry()]);
    trailing.push(0x00);
    assert!(parse(&trailing, 1)
        .unwrap_err()
        .contains("after the top-level"));
    let full = answer(Some(Value::Integer(0.into())), vec![ok_entry()]);
    for n in 1..full.len() {
        assert!(parse(&full[..n], 1).is_err(), "truncated at {n}");
    }
    let shown = parse_response_as::<Streams>(&full[..5], 1, Protocol::Cbor)
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with("PutRecords response could not be parsed, CBOR a3"),
        "{shown}"
    );
}

/// No input makes the CBOR answer parser panic, and whatever it accepts ciborium decodes too.
#[test]
fn mutated_cbor_answers_never_panic() {
    let mut rng = fastrand::Rng::with_seed(9);
    let base = answer(
        Some(Value::Integer(1.into())),
        vec![ok_entry(), failed_entry("InternalFailure"), ok_entry()],
    );
    let mut accepted = 0;
    for _ in 0..50_000 {
        let mut v = base.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(0..v.len());
            match rng.u8(0..3) {
                0 => v[at] = rng.u8(..),
                1 => v.insert(at, rng.u8(..)),
                _ => {
                    v.remove(at);
                }
            }
        }
        if v.first().is_some_and(|b| (0xa0..=0xbf).contains(b)) && parse(&v, 3).is_ok() {
            accepted += 1;
            assert!(
                ciborium::de::from_reader::<Value, _>(&v[..]).is_ok(),
                "accepted what ciborium rejects: {v:02x?}"
            );
        }
    }
    assert!(accepted > 100, "only {accepted} variants were accepted");
}

/// A stream named by ARN is addressed by `StreamARN` in CBOR as in JSON, and switching back
/// to a name writes `StreamName` again.
#[test]
fn cbor_body_names_a_stream_by_arn() {
    let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/logs";
    let mut b = PutRecordsBody::with_protocol("unused", Protocol::Cbor);
    b.set_stream_arn(arn);
    assert!(b.try_push(b"x", "k"));
    let v: Value = ciborium::from_reader(b.finish()).unwrap();
    let m = v.as_map().unwrap();
    assert_eq!(map_get(m, "StreamARN").as_text(), Some(arn));
    assert!(m.iter().all(|(k, _)| k.as_text() != Some("StreamName")));
    b.set_stream("named");
    assert!(b.try_push(b"y", "k"));
    let v: Value = ciborium::from_reader(b.finish()).unwrap();
    assert_eq!(
        map_get(v.as_map().unwrap(), "StreamName").as_text(),
        Some("named")
    );
}
