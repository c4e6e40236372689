//! Spec §3 (limits and batching) and §5 (body shape): exact size accounting, the 500-record
//! cap, the body budget boundary, and a property test that the body is the JSON the service
//! expects.

use kb_kinesis::encode::{base64_len, json_string_len, PutRecordsBody, MAX_BODY, MAX_RECORDS};
use proptest::prelude::*;

fn parse(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("body is JSON")
}

fn b64(s: &str) -> Vec<u8> {
    base64_simd::STANDARD.decode_to_vec(s).unwrap()
}

#[test]
fn encode_body_shape_and_field_order() {
    let mut b = PutRecordsBody::new("my-stream");
    assert!(b.try_push(b"hello\n", "k1"));
    assert!(b.try_push(b"", "k\"2"));
    let body = b.finish().to_vec();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"StreamName\":\"my-stream\",\"Records\":[{\"Data\":\"aGVsbG8K\",\"PartitionKey\":\"k1\"},\
         {\"Data\":\"\",\"PartitionKey\":\"k\\\"2\"}]}"
    );
}

#[test]
fn encode_body_empty() {
    let mut b = PutRecordsBody::new("s");
    assert!(b.is_empty());
    assert_eq!(b.finish(), b"{\"StreamName\":\"s\",\"Records\":[]}");
    assert_eq!(b.body_len(), b.finish().len());
}

#[test]
fn encode_stream_and_keys_json_escaped() {
    let mut b = PutRecordsBody::new("a\"b\\c\u{1}");
    assert!(b.try_push(b"x", "ключ\n"));
    let body = b.finish().to_vec();
    let v = parse(&body);
    assert_eq!(v["StreamName"], "a\"b\\c\u{1}");
    assert_eq!(v["Records"][0]["PartitionKey"], "ключ\n");
}

#[test]
fn encode_base64_standard_with_padding() {
    let mut b = PutRecordsBody::new("s");
    for data in [&b"a"[..], b"ab", b"abc", &[0xfb, 0xff, 0xbf]] {
        b.try_push(data, "k");
    }
    let v = parse(b.finish());
    let datas: Vec<&str> = v["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Data"].as_str().unwrap())
        .collect();
    assert_eq!(datas, ["YQ==", "YWI=", "YWJj", "+/+/"]);
}

#[test]
fn encode_entry_size_is_exact() {
    let mut b = PutRecordsBody::new("stream");
    let keys = ["k", "a\"b", "ü€😀", "ctl\u{1}\u{7f}", ""];
    for (i, key) in keys.iter().enumerate() {
        let data = vec![b'x'; i * 37 + 1];
        let predicted = b.entry_size(data.len(), key);
        let before = b.body_len();
        assert!(b.try_push(&data, key));
        assert_eq!(b.body_len() - before, predicted, "key {key:?}");
        assert_eq!(
            PutRecordsBody::entry_len(data.len(), key) + usize::from(i > 0),
            predicted
        );
    }
    assert_eq!(b.body_len(), b.finish().len());
    assert_eq!(base64_len(0), 0);
    assert_eq!(base64_len(4), 8);
    assert_eq!(json_string_len("a\"\u{1}é"), 2 + 1 + 2 + 6 + 2);
}

#[test]
fn encode_500_record_cap() {
    let mut b = PutRecordsBody::new("s");
    for i in 0..MAX_RECORDS {
        assert!(b.try_push(b"x", "k"), "record {i}");
    }
    assert!(!b.fits(1, "k"));
    assert!(!b.try_push(b"x", "k"), "the 501st goes to the next request");
    assert_eq!(b.len(), 500);
    assert_eq!(parse(b.finish())["Records"].as_array().unwrap().len(), 500);
    // 1200 records → 500/500/200.
    let mut sizes = Vec::new();
    let mut b = PutRecordsBody::new("s");
    for _ in 0..1200 {
        if !b.try_push(b"x", "k") {
            sizes.push(b.len());
            b.clear();
            assert!(b.try_push(b"x", "k"));
        }
    }
    sizes.push(b.len());
    assert_eq!(sizes, [500, 500, 200]);
}

/// Data length whose entry makes the body exactly `MAX_BODY + extra` bytes.
fn fill_to(b: &PutRecordsBody, key: &str, extra: usize) -> Option<usize> {
    let target = MAX_BODY + extra - b.body_len() - b.entry_size(0, key);
    // base64 grows in steps of 4 per 3 bytes: only multiples of 4 are reachable exactly.
    target.is_multiple_of(4).then_some(target / 4 * 3)
}

#[test]
fn encode_body_budget_boundary_exact() {
    // Pad the key so the remaining budget is a multiple of 4 for each case.
    for extra in [0usize, 4] {
        let mut found = false;
        for pad in 0..4 {
            let key = format!("k{}", "p".repeat(pad));
            let mut b = PutRecordsBody::new("boundary");
            assert!(b.try_push(b"first", "k"));
            let Some(len) = fill_to(&b, &key, extra) else {
                continue;
            };
            found = true;
            let data = vec![7u8; len];
            let pushed = b.try_push(&data, &key);
            if extra == 0 {
                assert!(pushed, "a body of exactly MAX_BODY is accepted");
                assert_eq!(b.finish().len(), MAX_BODY);
            } else {
                assert!(!pushed, "MAX_BODY + {extra} is rejected");
                assert_eq!(b.len(), 1);
            }
            break;
        }
        assert!(found);
    }
    // One byte over, with the key absorbing the base64 granularity.
    for pad in 0..4 {
        let key = format!("k{}", "p".repeat(pad));
        let mut b = PutRecordsBody::new("boundary");
        assert!(b.try_push(b"first", "k"));
        let Some(len) = fill_to(&b, &key, 0) else {
            continue;
        };
        let longer_key = format!("{key}x");
        assert_eq!(b.body_len() + b.entry_size(len, &longer_key), MAX_BODY + 1);
        assert!(
            !b.try_push(&vec![7u8; len], &longer_key),
            "MAX_BODY + 1 is rejected"
        );
        assert!(b.try_push(&vec![7u8; len], &key));
        assert_eq!(b.finish().len(), MAX_BODY);
        return;
    }
    panic!("no padding gave an exact fit");
}

#[test]
fn encode_single_oversize_entry_only_alone() {
    let huge = vec![1u8; MAX_BODY]; // base64 alone is 4/3 of the budget
    let mut b = PutRecordsBody::new("s");
    assert!(b.try_push(b"small", "k"));
    assert!(!b.try_push(&huge, "k"), "not into a body with entries");
    b.clear();
    assert!(b.try_push(&huge, "k"), "accepted alone");
    assert!(!b.try_push(b"x", "k"), "nothing joins it");
    let body = b.finish().to_vec();
    assert!(body.len() > MAX_BODY);
    let v = parse(&body);
    assert_eq!(b64(v["Records"][0]["Data"].as_str().unwrap()), huge);
}

#[test]
fn encode_finish_then_reuse() {
    let mut b = PutRecordsBody::new("s");
    b.try_push(b"a", "k");
    let first = b.finish().to_vec();
    assert_eq!(b.finish(), &first[..], "finish is idempotent");
    assert!(b.try_push(b"b", "k"), "entries may follow a finish");
    assert_eq!(parse(b.finish())["Records"].as_array().unwrap().len(), 2);
    b.reset();
    assert!(b.is_empty());
    b.try_push(b"a", "k");
    assert_eq!(b.finish(), &first[..]);
    b.set_stream("other");
    assert_eq!(b.finish(), b"{\"StreamName\":\"other\",\"Records\":[]}");
}

/// Whether the JSON text has whitespace between tokens.
fn whitespace_outside_strings(body: &[u8]) -> bool {
    let mut in_str = false;
    let mut i = 0;
    while i < body.len() {
        match (in_str, body[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_str = !in_str,
            (false, b' ' | b'\n' | b'\r' | b'\t') => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

proptest! {
    #[test]
    fn encode_finish_is_the_expected_json(
        stream in "[A-Za-z0-9_.-]{1,20}",
        records in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..300), "\\PC{1,20}"),
            0..40,
        ),
    ) {
        let mut b = PutRecordsBody::new(&stream);
        for (data, key) in &records {
            let predicted = b.body_len() + b.entry_size(data.len(), key);
            prop_assert!(b.try_push(data, key));
            prop_assert_eq!(b.body_len(), predicted);
        }
        let body = b.finish().to_vec();
        prop_assert!(!whitespace_outside_strings(&body));
        let v = parse(&body);
        let obj = v.as_object().unwrap();
        prop_assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["StreamName", "Records"]);
        prop_assert_eq!(obj["StreamName"].as_str().unwrap(), stream.as_str());
        let arr = obj["Records"].as_array().unwrap();
        prop_assert_eq!(arr.len(), records.len());
        for (entry, (data, key)) in arr.iter().zip(&records) {
            let e = entry.as_object().unwrap();
            prop_assert_eq!(e.keys().collect::<Vec<_>>(), vec!["Data", "PartitionKey"]);
            prop_assert_eq!(&b64(e["Data"].as_str().unwrap()), data);
            prop_assert_eq!(e["PartitionKey"].as_str().unwrap(), key.as_str());
        }
    }
}

#[test]
fn encode_take_bytes_then_recycle_reuses_the_buffer() {
    let mut body = PutRecordsBody::new("s");
    assert!(body.try_push(b"hello", "k1"));
    let want = body.finish().to_vec();
    let bytes = body.take_bytes();
    assert_eq!(
        &bytes[..],
        &want[..],
        "the same body, not a copy of another state"
    );
    assert!(body.is_empty());
    assert_eq!(body.finish(), br#"{"StreamName":"s","Records":[]}"#);

    // While something else holds the bytes, the body keeps its own buffer.
    let held = bytes.clone();
    body.recycle(bytes);
    let ptr = held.as_ptr();
    assert!(body.try_push(b"x", "k"));
    assert_ne!(body.finish().as_ptr(), ptr);

    // Once the request is done the allocation comes back and the next body is written into it.
    body.clear();
    body.recycle(held);
    assert!(body.try_push(b"again", "k2"));
    assert_eq!(body.finish().as_ptr(), ptr);
    let v = parse(body.finish());
    assert_eq!(v["Records"][0]["Data"], "YWdhaW4=");
    assert_eq!(v["Records"].as_array().unwrap().len(), 1);
}
