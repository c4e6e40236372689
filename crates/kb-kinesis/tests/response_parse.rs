//! Spec §6.1: parsing an HTTP 200 PutRecords response, one test per row.

use kb_kinesis::response::{parse_put_records_response, EntryOutcome, BODY_EXCERPT};

const PTE: &str = "ProvisionedThroughputExceededException";

#[test]
fn response_empty_body_all_accepted() {
    for body in [&b""[..], b"  \n"] {
        let r = parse_put_records_response(body, 3).unwrap();
        assert!(r.all_accepted());
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.outcomes().collect::<Vec<_>>(),
            vec![EntryOutcome::Accepted; 3]
        );
    }
}

#[test]
fn response_failed_count_zero_all_accepted_records_optional() {
    let r = parse_put_records_response(br#"{"FailedRecordCount":0}"#, 2).unwrap();
    assert!(r.all_accepted());
    assert_eq!(r.outcomes().count(), 2);
    let body = br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},{"SequenceNumber":"2","ShardId":"shardId-000000000001"}],"EncryptionType":"NONE"}"#;
    let r = parse_put_records_response(body, 2).unwrap();
    assert_eq!(r.accepted_count(), 2);
    assert_eq!(r.failed_count(), 0);
}

#[test]
fn response_partial_failure_by_position() {
    let body = format!(
        r#"{{"FailedRecordCount":2,"Records":[
            {{"SequenceNumber":"1","ShardId":"s"}},
            {{"ErrorCode":"{PTE}","ErrorMessage":"Rate exceeded for shard s"}},
            {{"SequenceNumber":"3","ShardId":"s"}},
            {{"ErrorCode":"InternalFailure"}}
        ]}}"#
    );
    let r = parse_put_records_response(body.as_bytes(), 4).unwrap();
    assert!(!r.all_accepted());
    assert_eq!(r.failed_count(), 2);
    assert_eq!(r.accepted_count(), 2);
    let o: Vec<_> = r.outcomes().collect();
    assert_eq!(o[0], EntryOutcome::Accepted);
    assert_eq!(
        o[1],
        EntryOutcome::Failed {
            code: PTE,
            message: "Rate exceeded for shard s"
        }
    );
    assert_eq!(o[2], EntryOutcome::Accepted);
    assert_eq!(
        o[3],
        EntryOutcome::Failed {
            code: "InternalFailure",
            message: ""
        }
    );
    assert_eq!(r.first_failure(), Some((PTE, "Rate exceeded for shard s")));
}

#[test]
fn response_all_failed_counts_per_code() {
    let mut entries = Vec::new();
    for i in 0..40 {
        let code = if i == 7 { "InternalFailure" } else { PTE };
        entries.push(format!(r#"{{"ErrorCode":"{code}","ErrorMessage":"m{i}"}}"#));
    }
    let body = format!(
        r#"{{"FailedRecordCount":40,"Records":[{}]}}"#,
        entries.join(",")
    );
    let r = parse_put_records_response(body.as_bytes(), 40).unwrap();
    assert_eq!(r.accepted_count(), 0);
    assert_eq!(r.error_counts(), vec![(PTE, 39), ("InternalFailure", 1)]);
}

#[test]
fn response_null_error_code_is_success_kinesis_local() {
    // kinesis-local (kinesalite-based) writes explicit nulls.
    let body = br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":null,"ErrorMessage":null,"SequenceNumber":"1","ShardId":"s"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"}]}"#;
    let r = parse_put_records_response(body, 2).unwrap();
    assert_eq!(r.outcome(0), EntryOutcome::Accepted);
    assert_eq!(
        r.outcome(1),
        EntryOutcome::Failed {
            code: PTE,
            message: "slow down"
        }
    );
}

#[test]
fn response_moto_style() {
    // moto: every entry has SequenceNumber/ShardId, no ErrorCode keys at all, count 0.
    let body = br#"{"FailedRecordCount": 0, "Records": [{"SequenceNumber": "49", "ShardId": "shardId-000000000000"}]}"#;
    assert!(parse_put_records_response(body, 1).unwrap().all_accepted());
}

#[test]
fn response_escaped_strings_are_decoded() {
    let body = br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"bad \"thing\" \u00e9"}]}"#;
    let r = parse_put_records_response(body, 1).unwrap();
    assert_eq!(
        r.outcome(0),
        EntryOutcome::Failed {
            code: "InternalFailure",
            message: "bad \"thing\" é"
        }
    );
}

fn unparseable(body: &[u8], sent: usize) -> String {
    let e = parse_put_records_response(body, sent).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("PutRecords response could not be parsed, "),
        "{msg}"
    );
    assert!(!e.reason().is_empty());
    msg
}

#[test]
fn response_missing_failed_record_count_unparseable() {
    unparseable(br#"{"Records":[{"ErrorCode":"InternalFailure"}]}"#, 1);
    unparseable(br#"{"FailedRecordCount":null,"Records":[{}]}"#, 1);
}

#[test]
fn response_negative_failed_record_count_unparseable() {
    unparseable(br#"{"FailedRecordCount":-1,"Records":[{}]}"#, 1);
}

#[test]
fn response_count_disagreeing_with_entries_unparseable() {
    unparseable(
        br#"{"FailedRecordCount":2,"Records":[{"ErrorCode":"InternalFailure"},{}]}"#,
        2,
    );
    unparseable(br#"{"FailedRecordCount":1,"Records":[{},{}]}"#, 2);
}

#[test]
fn response_records_length_mismatch_unparseable() {
    unparseable(
        br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure"}]}"#,
        2,
    );
    unparseable(
        br#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure"},{},{}]}"#,
        2,
    );
    unparseable(br#"{"FailedRecordCount":1}"#, 1);
}

#[test]
fn response_garbage_unparseable() {
    for body in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"{",
        b"[]",
        b"null",
        b"\"x\"",
        b"{\"FailedRecordCount\":\"1\"}",
        b"\xff\xfe",
    ] {
        let msg = unparseable(body, 1);
        assert!(msg.len() < 600, "{msg}");
    }
    let msg = unparseable(b"<html>502 Bad Gateway</html>", 1);
    assert_eq!(
        msg,
        "PutRecords response could not be parsed, <html>502 Bad Gateway</html>"
    );
}

#[test]
fn response_body_cut_to_512_bytes_on_char_boundary() {
    let body = format!("{}{}", "x".repeat(BODY_EXCERPT - 1), "é".repeat(100));
    let e = parse_put_records_response(body.as_bytes(), 1).unwrap_err();
    assert_eq!(
        e.body(),
        "x".repeat(BODY_EXCERPT - 1),
        "the split 'é' is left out"
    );
    let body = "y".repeat(5000);
    let e = parse_put_records_response(body.as_bytes(), 1).unwrap_err();
    assert_eq!(e.body().len(), BODY_EXCERPT);
    assert_eq!(
        e.to_string(),
        format!(
            "PutRecords response could not be parsed, {}",
            "y".repeat(512)
        )
    );
}
