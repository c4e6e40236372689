//! The agent against the project's own fault-injecting Kinesis sink: partial failures,
//! throttling, 5xx, dropped connections, lost responses, auth errors and request rejections.
//! Every record carries a unique `seq`, so the sink can tell lost from duplicated records.

mod common;

use std::time::Duration;

use common::{agent, assert_success, run_with_stdin, stderr};
use kb_testkit::sink::{FaultKind, FaultPlan, Sink, SinkConfig, SinkStats};

fn records(n: u64) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(
            format!("{{\"seq\":{i},\"msg\":\"record number {i}\"}}\n").as_bytes(),
        );
    }
    input
}

/// Ship `input` through stdin with retries fast and unlimited; returns the agent's output.
fn ship(endpoint: &str, input: Vec<u8>, extra: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(
        &conf,
        format!(
            "[SERVICE]\n    Grace 120\n    scheduler.base 1\n    scheduler.cap 2\n\n[INPUT]\n    Name stdin\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    stream faults\n    region us-east-1\n    \
             endpoint {endpoint}\n    retry_limit no_limits\n{extra}"
        ),
    )
    .unwrap();
    let mut cmd = agent();
    cmd.args(["-c", conf.to_str().unwrap()]);
    run_with_stdin(&mut cmd, &input, Duration::from_secs(180))
}

async fn sink(faults: FaultPlan) -> Sink {
    Sink::start(SinkConfig::default().id_field("seq").faults(faults)).await
}

/// Ship records 0..n through a sink that fails 10 % of the entries (throughput exceeded or
/// internal failure) and the given fractions of the requests; asserts every record arrived
/// exactly once and the agent exited 0, and returns the sink's counters.
async fn exactly_once_through(
    n: u64,
    seed: u64,
    throttle: f64,
    error500: f64,
    drop_connection: f64,
) -> SinkStats {
    exactly_once_through_as(n, seed, throttle, error500, drop_connection, "").await
}

/// `protocol cbor` on the output.
const CBOR: &str = "    protocol cbor\n";

/// [`exactly_once_through`] with `extra` output keys; with [`CBOR`], every put request must
/// have been CBOR.
async fn exactly_once_through_as(
    n: u64,
    seed: u64,
    throttle: f64,
    error500: f64,
    drop_connection: f64,
    extra: &'static str,
) -> SinkStats {
    let sink = sink(
        FaultPlan::new()
            .seed(seed)
            .fail_entries(
                0.10,
                &["ProvisionedThroughputExceededException", "InternalFailure"],
            )
            .throttle(throttle)
            .error500(error500)
            .drop_connection(drop_connection),
    )
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(n), extra))
        .await
        .unwrap();
    let st = sink.stats();
    let cbor = if extra == CBOR { st.put_requests } else { 0 };
    assert_eq!(st.cbor_requests, cbor, "{st:?}");
    let missing = sink.missing(0..n);
    assert!(
        missing.is_empty(),
        "lost {} records; {st:?}\n{}",
        missing.len(),
        stderr(&out)
    );
    let dups = sink.duplicates();
    assert!(
        dups.is_empty(),
        "duplicated: {:?}",
        &dups[..dups.len().min(10)]
    );
    assert!(sink.unexpected(0..n).is_empty());
    assert_success(&out);
    st
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_exactly_once_through_failures_throttles_500s_and_resets() {
    // Per request: with ~50 requests these fractions make every kind happen.
    let st = exactly_once_through(20_000, 42, 0.1, 0.1, 0.1).await;
    // The faults really happened.
    assert!(
        st.entries_failed > 0 && st.throttled > 0 && st.error500 > 0 && st.dropped > 0,
        "{st:?}"
    );
}

/// The fault mix of the fault run (bench/fault-run.sh runs it with 1,000,000 records
/// on the release build): 10 % of the entries failed, 2 % of the requests throttled, 1 %
/// answered 500, 1 % of the connections reset. Failures in every request must not stall the
/// flush: the whole run has to finish well inside the 180 s the agent is given.
#[tokio::test(flavor = "multi_thread")]
async fn fault_run_mix_over_100k_records_loses_and_duplicates_nothing() {
    const N: u64 = 100_000;
    let st = exactly_once_through(N, 7, 0.02, 0.01, 0.01).await;
    assert_eq!(st.unique_ids, N);
    assert!(
        st.entries_failed > N / 20 && st.throttled > 0 && st.error500 > 0 && st.dropped > 0,
        "the faults did not all happen: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_of_1200_is_sent_500_500_200() {
    let sink = sink(FaultPlan::new()).await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(1200), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![500, 500, 200]);
    assert!(sink.missing(0..1200).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_entries_go_out_first_in_order() {
    // Entries 3 and 7 of request 0 fail: they lead request 1, before entries 500.., in order.
    let sink = Sink::start(SinkConfig::default().id_field("seq").store(true).faults(
        FaultPlan::new().at(
            0,
            FaultKind::FailEntries {
                indices: vec![3, 7],
                code: "ProvisionedThroughputExceededException".into(),
            },
        ),
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(1200), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![500, 500, 202]);
    let order: Vec<u64> = sink
        .records()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
            v["seq"].as_u64().unwrap()
        })
        .collect();
    let mut want: Vec<u64> = (0..500).filter(|i| *i != 3 && *i != 7).collect();
    want.extend([3, 7]);
    want.extend(500..1200);
    assert_eq!(order, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_failure_resends_only_the_failed_entries() {
    // Request 0: entries 3 and 7 throttled. The retry must carry exactly those two.
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::FailEntries {
            indices: vec![3, 7],
            code: "ProvisionedThroughputExceededException".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(10), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![10, 2]);
    assert!(sink.duplicates().is_empty() && sink.missing(0..10).is_empty());
    assert!(
        stderr(&out).contains("2 out of 10 records failed to be delivered, retrying only the failed records, faults (ProvisionedThroughputExceededException=2"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn never_acceptable_records_are_dropped_with_a_log_line() {
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::FailEntries {
            indices: vec![1],
            code: "InvalidArgumentException".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(4), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![4]);
    assert_eq!(sink.missing(0..4), vec![1]);
    assert!(
        stderr(&out).contains("record rejected by Kinesis and dropped: InvalidArgumentException"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_request_is_split_to_isolate_nothing_lost() {
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::Error {
            status: 400,
            code: "ValidationException".into(),
            message: "1 validation error detected".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(10), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![10, 5, 5]);
    assert!(sink.missing(0..10).is_empty() && sink.duplicates().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_responses_lose_nothing() {
    // Acceptance of these requests cannot be known, so their entries are sent again:
    // at-least-once, nothing lost.
    const N: u64 = 3_000;
    let sink = sink(
        FaultPlan::new()
            .seed(5)
            .lose_response(0.1)
            .unparseable(0.05)
            .missing_failed_count(0.05),
    )
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(N), ""))
        .await
        .unwrap();
    assert_success(&out);
    assert!(sink.missing(0..N).is_empty(), "{:?}", sink.stats());
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_retry_requests_resends_once_after_a_reset() {
    let sink = sink(FaultPlan::new().at(0, FaultKind::Reset)).await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(3), ""))
        .await
        .unwrap();
    assert_success(&out);
    // The reset request was not processed; the immediate re-send was.
    assert_eq!(sink.stats().dropped, 1);
    assert_eq!(sink.request_sizes(), vec![3, 3]);
    assert!(sink.missing(0..3).is_empty());
    assert!(
        !stderr(&out).contains("handed back"),
        "the auto retry should have delivered in the flush"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_instance_log_level_applies_inside_that_instance_only() {
    let sink = sink(FaultPlan::new()).await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = agent();
        cmd.env("FLB_LOG_LEVEL", "error")
            .args([
                "-i",
                "stdin",
                "-o",
                "kinesis_streams",
                "-m",
                "*",
                "-p",
                "stream=faults",
            ])
            .args([
                "-p",
                "region=us-east-1",
                "-p",
                &format!("endpoint={ep}"),
                "-p",
                "log_level=debug",
            ]);
        run_with_stdin(&mut cmd, &records(3), Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_success(&out);
    let log = stderr(&out);
    assert!(
        log.contains(
            "[debug] [output:kinesis_streams:kinesis_streams.0] PutRecords with 3 records"
        ),
        "{log}"
    );
    assert!(
        !log.contains("[ info] [engine]"),
        "the service level (error) still applies elsewhere:\n{log}"
    );
}

// ------------------------------------------------------------------------------------------------
// The same faults with `protocol cbor`: CBOR requests, CBOR answers and CBOR error bodies.

#[tokio::test(flavor = "multi_thread")]
async fn cbor_every_record_exactly_once_through_failures_throttles_500s_and_resets() {
    let st = exactly_once_through_as(20_000, 42, 0.1, 0.1, 0.1, CBOR).await;
    assert!(
        st.entries_failed > 0 && st.throttled > 0 && st.error500 > 0 && st.dropped > 0,
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_fault_run_mix_over_100k_records_loses_and_duplicates_nothing() {
    const N: u64 = 100_000;
    let st = exactly_once_through_as(N, 7, 0.02, 0.01, 0.01, CBOR).await;
    assert_eq!(st.unique_ids, N);
    assert!(
        st.entries_failed > N / 20 && st.throttled > 0 && st.error500 > 0 && st.dropped > 0,
        "the faults did not all happen: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_partial_failure_resends_only_the_failed_entries() {
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::FailEntries {
            indices: vec![3, 7],
            code: "ProvisionedThroughputExceededException".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(10), CBOR))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![10, 2]);
    assert_eq!(sink.stats().cbor_requests, 2);
    assert!(sink.duplicates().is_empty() && sink.missing(0..10).is_empty());
    assert!(
        stderr(&out).contains("2 out of 10 records failed to be delivered, retrying only the failed records, faults (ProvisionedThroughputExceededException=2"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_never_acceptable_records_are_dropped_with_a_log_line() {
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::FailEntries {
            indices: vec![1],
            code: "InvalidArgumentException".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(4), CBOR))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![4]);
    assert_eq!(sink.missing(0..4), vec![1]);
    assert!(
        stderr(&out).contains("record rejected by Kinesis and dropped: InvalidArgumentException"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sink.stats().cbor_requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_rejected_request_is_split_to_isolate_nothing_lost() {
    let sink = sink(FaultPlan::new().at(
        0,
        FaultKind::Error {
            status: 400,
            code: "ValidationException".into(),
            message: "1 validation error detected".into(),
        },
    ))
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(10), CBOR))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(sink.request_sizes(), vec![10, 5, 5]);
    assert!(sink.missing(0..10).is_empty() && sink.duplicates().is_empty());
    assert!(
        stderr(&out).contains("(ValidationException: 1 validation error detected); splitting it"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_lost_and_unparseable_answers_lose_nothing() {
    const N: u64 = 3_000;
    let sink = sink(
        FaultPlan::new()
            .seed(5)
            .lose_response(0.1)
            .unparseable(0.05)
            .missing_failed_count(0.05),
    )
    .await;
    let ep = sink.endpoint();
    let out = tokio::task::spawn_blocking(move || ship(&ep, records(N), CBOR))
        .await
        .unwrap();
    assert_success(&out);
    let st = sink.stats();
    assert!(sink.missing(0..N).is_empty(), "{st:?}");
    assert!(st.unparseable > 0 && st.missing_failed_count > 0, "{st:?}");
    assert!(
        stderr(&out).contains("PutRecords response could not be parsed, CBOR bf"),
        "{}",
        stderr(&out)
    );
}
