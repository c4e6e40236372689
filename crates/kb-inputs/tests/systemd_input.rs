//! `systemd` through the real engine over journal files written by systemd-journal-remote.

mod common;
mod systemd_fixture;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{build_errors, props, Recorder};
use kb_config::values::RetryLimit;
use kb_core::engine::{Engine, EngineConfig, InputInstance, OutputInstance};
use kb_core::event::{EventReader, EventTime};
use kb_core::plugin::Input;
use kb_core::tag::TagMatcher;
use kb_inputs::systemd::{self, SystemdConfig, SystemdInput};
use rmpv::Value;
use systemd_fixture::{batch1, batch2, write_journal, T0};
use tokio::time::Instant;

/// A decoded record with the tag it was routed under.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    tag: String,
    time: EventTime,
    record: Value,
}

fn decode(rec: &Recorder) -> Vec<Got> {
    let mut out = Vec::new();
    for c in rec.chunks() {
        for e in EventReader::new(&c.data) {
            let e = e.unwrap();
            out.push(Got {
                tag: c.tag.clone(),
                time: e.time,
                record: rmpv::decode::read_value(&mut &e.record[..]).unwrap(),
            });
        }
    }
    // Chunks of different tags are flushed separately: order by time (all distinct).
    out.sort_by_key(|g| (g.time.secs, g.time.nanos));
    out
}

fn input(kv: &[(&str, &str)]) -> Box<dyn Input> {
    let p = props(&systemd::PLUGIN, kv).expect("valid keys");
    Box::new(SystemdInput::new(
        SystemdConfig::from_props(&p).expect("valid systemd section"),
    ))
}

/// Run `input` (tag `tag`) until `want` records arrived (then `settle` longer, to see any
/// extra), or `limit`.
async fn run_until(
    input: Box<dyn Input>,
    tag: &str,
    mem_buf_limit: Option<usize>,
    want: usize,
    settle: Duration,
    limit: Duration,
) -> Vec<Got> {
    let rec = Recorder::default();
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(50),
        ..Default::default()
    });
    engine.add_input(InputInstance {
        plugin_name: "systemd".into(),
        name: "systemd.0".into(),
        tag: tag.into(),
        mem_buf_limit,
        filesystem: false,
        plugin: input,
    });
    engine.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "recorder.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(rec.clone()),
    });
    let watch = rec.clone();
    let shutdown = async move {
        let deadline = Instant::now() + limit;
        while decode(&watch).len() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(settle).await;
    };
    engine.run(shutdown).await.expect("engine runs");
    decode(&rec)
}

async fn read_all(dir: &Path, kv: &[(&str, &str)], tag: &str, want: usize) -> Vec<Got> {
    let mut kv = kv.to_vec();
    let path = dir.to_str().unwrap().to_string();
    kv.push(("path", &path));
    run_until(
        input(&kv),
        tag,
        None,
        want,
        Duration::from_millis(400),
        Duration::from_secs(10),
    )
    .await
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_journal(&dir.path().join("batch1.journal"), &batch1());
    dir
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn keys(v: &Value) -> Vec<String> {
    v.as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k.as_slice().unwrap()).into_owned())
        .collect()
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_slice() == Some(key.as_bytes()))
        .map(|(_, v)| v)
}

fn time(usec: u64) -> EventTime {
    EventTime::new(
        (usec / 1_000_000) as u32,
        ((usec % 1_000_000) * 1000) as u32,
    )
}

const BOOT: &str = systemd_fixture::BOOT_ID;

#[tokio::test]
async fn every_field_as_a_string_tagged_by_unit() {
    // Fields come in libsystemd's order (journalctl -o export shows the same): an entry's
    // items sorted by where their data objects sit in the file, so values an earlier entry
    // already wrote (_HOSTNAME=node-1) come first.
    let dir = fixture();
    let got = read_all(dir.path(), &[], "host.*", 5).await;
    let tags: Vec<&str> = got.iter().map(|g| g.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "host.kubelet.service",
            "host.containerd.service",
            "host.docker.service",
            "host.unknown",
            "host.kubelet.service"
        ]
    );
    // The receive time (__REALTIME_TIMESTAMP), not _SOURCE_REALTIME_TIMESTAMP.
    let times: Vec<EventTime> = got.iter().map(|g| g.time).collect();
    assert_eq!(
        times,
        [100_000, 200_000, 300_000, 400_000, 500_000].map(|d| time(T0 + d))
    );
    assert_eq!(
        got[0].record,
        map(&[
            ("_BOOT_ID", s(BOOT)),
            ("MESSAGE", s("Started kubelet")),
            ("_SYSTEMD_UNIT", s("kubelet.service")),
            ("_PID", s("1001")),
            ("PRIORITY", s("6")),
            ("_HOSTNAME", s("node-1")),
            ("_SOURCE_REALTIME_TIMESTAMP", s("1699999999000001")),
        ])
    );
    assert_eq!(
        got[1].record,
        map(&[
            ("_BOOT_ID", s(BOOT)),
            ("_HOSTNAME", s("node-1")),
            ("MESSAGE", s("containerd is up")),
            ("_SYSTEMD_UNIT", s("containerd.service")),
            ("_PID", s("1002")),
            ("PRIORITY", s("5")),
        ])
    );
    // A binary field: its bytes as they are, in a msgpack str.
    assert_eq!(
        keys(&got[2].record),
        [
            "_BOOT_ID",
            "_HOSTNAME",
            "MESSAGE",
            "_SYSTEMD_UNIT",
            "_PID",
            "PRIORITY"
        ]
    );
    assert_eq!(
        get(&got[2].record, "MESSAGE").unwrap().as_slice(),
        Some(&b"bin\x00ary\xff\nline"[..])
    );
    assert_eq!(
        got[3].record,
        map(&[
            ("_BOOT_ID", s(BOOT)),
            ("_HOSTNAME", s("node-1")),
            ("MESSAGE", s("a kernel message")),
            ("PRIORITY", s("4")),
            ("_TRANSPORT", s("kernel")),
        ])
    );
    // A repeated field is an array of its values.
    assert_eq!(
        got[4].record,
        map(&[
            ("_BOOT_ID", s(BOOT)),
            ("_SYSTEMD_UNIT", s("kubelet.service")),
            ("_PID", s("1001")),
            ("PRIORITY", s("6")),
            ("_HOSTNAME", s("node-1")),
            ("MESSAGE", s("kubelet again")),
            ("TAGS", Value::Array(vec![s("a"), s("b")])),
        ])
    );
}

#[tokio::test]
async fn a_fixed_tag_is_kept() {
    let dir = fixture();
    let got = read_all(dir.path(), &[], "journal", 5).await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|g| g.tag == "journal"));
}

fn messages(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| {
            String::from_utf8_lossy(
                get(&g.record, "MESSAGE")
                    .or_else(|| get(&g.record, "message"))
                    .unwrap()
                    .as_slice()
                    .unwrap(),
            )
            .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn systemd_filter_or_and_and() {
    let dir = fixture();
    // Or (the default): either unit.
    let got = read_all(
        dir.path(),
        &[
            ("systemd_filter", "_SYSTEMD_UNIT=kubelet.service"),
            ("systemd_filter", "_SYSTEMD_UNIT=docker.service"),
        ],
        "host.*",
        3,
    )
    .await;
    assert_eq!(
        messages(&got),
        ["Started kubelet", "bin\0ary\u{fffd}\nline", "kubelet again"]
    );
    let got = read_all(
        dir.path(),
        &[
            ("systemd_filter", "_SYSTEMD_UNIT=containerd.service"),
            ("systemd_filter", "PRIORITY=4"),
            ("systemd_filter_type", "Or"),
        ],
        "host.*",
        2,
    )
    .await;
    assert_eq!(messages(&got), ["containerd is up", "a kernel message"]);
    assert_eq!(got[1].tag, "host.unknown");

    // And: every filter must match.
    let got = read_all(
        dir.path(),
        &[
            ("systemd_filter", "_SYSTEMD_UNIT=kubelet.service"),
            ("systemd_filter", "TAGS=b"),
            ("systemd_filter_type", "And"),
        ],
        "host.*",
        1,
    )
    .await;
    assert_eq!(messages(&got), ["kubelet again"]);
    let got = read_all(
        dir.path(),
        &[
            ("systemd_filter", "_SYSTEMD_UNIT=kubelet.service"),
            ("systemd_filter", "_SYSTEMD_UNIT=docker.service"),
            ("systemd_filter_type", "and"),
        ],
        "host.*",
        1,
    )
    .await;
    assert!(got.is_empty(), "no entry has two units: {got:?}");
}

#[tokio::test]
async fn strip_underscores_and_lowercase() {
    let dir = fixture();
    let got = read_all(
        dir.path(),
        &[
            ("strip_underscores", "on"),
            ("systemd_filter", "_SYSTEMD_UNIT=containerd.service"),
        ],
        "t",
        1,
    )
    .await;
    assert_eq!(
        keys(&got[0].record),
        [
            "BOOT_ID",
            "HOSTNAME",
            "MESSAGE",
            "SYSTEMD_UNIT",
            "PID",
            "PRIORITY"
        ]
    );
    let got = read_all(
        dir.path(),
        &[
            ("strip_underscores", "on"),
            ("lowercase", "on"),
            ("systemd_filter", "_SYSTEMD_UNIT=containerd.service"),
        ],
        "t",
        1,
    )
    .await;
    assert_eq!(
        got[0].record,
        map(&[
            ("boot_id", s(BOOT)),
            ("hostname", s("node-1")),
            ("message", s("containerd is up")),
            ("systemd_unit", s("containerd.service")),
            ("pid", s("1002")),
            ("priority", s("5")),
        ])
    );
    let got = read_all(
        dir.path(),
        &[
            ("lowercase", "on"),
            ("systemd_filter", "_SYSTEMD_UNIT=containerd.service"),
        ],
        "t",
        1,
    )
    .await;
    assert_eq!(
        keys(&got[0].record),
        [
            "_boot_id",
            "_hostname",
            "message",
            "_systemd_unit",
            "_pid",
            "priority"
        ]
    );
}

#[tokio::test]
async fn max_fields_and_max_entries() {
    let dir = fixture();
    let got = read_all(dir.path(), &[("max_fields", "3")], "t", 5).await;
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0].record,
        map(&[
            ("_BOOT_ID", s(BOOT)),
            ("MESSAGE", s("Started kubelet")),
            ("_SYSTEMD_UNIT", s("kubelet.service")),
        ])
    );
    // A repeated field counts each time.
    let got = read_all(dir.path(), &[("max_fields", "0")], "t", 5).await;
    assert!(got.iter().all(|g| g.record == map(&[])), "{got:?}");

    // Rounds of one entry still read everything, in order.
    let got = read_all(dir.path(), &[("max_entries", "1")], "t", 5).await;
    assert_eq!(
        messages(&got),
        [
            "Started kubelet",
            "containerd is up",
            "bin\0ary\u{fffd}\nline",
            "a kernel message",
            "kubelet again"
        ]
    );
}

#[tokio::test]
async fn read_from_tail_skips_what_is_there_and_reads_what_comes() {
    let dir = fixture();
    let path = dir.path().to_str().unwrap().to_string();
    let later = dir.path().join("batch2.journal");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokio::task::spawn_blocking(move || write_journal(&later, &batch2()))
            .await
            .unwrap();
    });
    let got = run_until(
        input(&[("path", &path), ("read_from_tail", "on")]),
        "host.*",
        None,
        2,
        Duration::from_millis(400),
        Duration::from_secs(10),
    )
    .await;
    writer.await.unwrap();
    assert_eq!(messages(&got), ["later kubelet", "later docker"]);
    assert_eq!(got[0].tag, "host.kubelet.service");
    assert_eq!(got[1].tag, "host.docker.service");
}

#[tokio::test]
async fn db_cursor_resumes_without_loss_or_repeat() {
    let dir = fixture();
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("systemd.db");
    let db_s = db.to_str().unwrap().to_string();
    let kv = [("db", db_s.as_str()), ("db.sync", "normal")];

    let first = read_all(dir.path(), &kv, "host.*", 5).await;
    assert_eq!(first.len(), 5);

    // Fluent Bit's table: one row holding the cursor of the last entry read.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let (cursor, updated): (String, i64) = conn
            .query_row("SELECT cursor, updated FROM in_systemd_cursor", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(cursor.starts_with("s="), "{cursor}");
        assert!(cursor.contains(&format!("b={BOOT}")), "{cursor}");
        assert!(updated > 1_700_000_000);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM in_systemd_cursor", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    // Nothing new: nothing read again.
    let again = read_all(dir.path(), &kv, "host.*", 1).await;
    assert!(again.is_empty(), "{again:?}");

    // New entries in a new file: exactly those.
    write_journal(&dir.path().join("batch2.journal"), &batch2());
    let second = read_all(dir.path(), &kv, "host.*", 2).await;
    assert_eq!(messages(&second), ["later kubelet", "later docker"]);

    // Read_From_Tail does not beat a stored cursor; more entries after a stop are read.
    write_journal(
        &dir.path().join("batch3.journal"),
        &[systemd_fixture::Entry::new(T0 + 30_000_000, 30_000_000)
            .field("MESSAGE", "third")
            .field("_SYSTEMD_UNIT", "kubelet.service")],
    );
    let mut kv_tail = kv.to_vec();
    kv_tail.push(("read_from_tail", "on"));
    let third = read_all(dir.path(), &kv_tail, "host.*", 1).await;
    assert_eq!(messages(&third), ["third"]);
}

#[tokio::test]
async fn a_cursor_whose_entry_is_gone_loses_nothing_after_it() {
    let dir = fixture();
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("systemd.db");
    let db_s = db.to_str().unwrap().to_string();
    let kv = [("db", db_s.as_str())];
    assert_eq!(read_all(dir.path(), &kv, "t", 5).await.len(), 5);
    // The file holding the cursor's entry is rotated away; newer entries are in another.
    std::fs::remove_file(dir.path().join("batch1.journal")).unwrap();
    write_journal(&dir.path().join("batch2.journal"), &batch2());
    // Fluent Bit would skip "later kubelet" (next_skip(1) past a cursor it did not find).
    let got = read_all(dir.path(), &kv, "t", 2).await;
    assert_eq!(messages(&got), ["later kubelet", "later docker"]);
}

#[tokio::test]
async fn huge_and_odd_fields_are_read_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let huge: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let odd: Vec<u8> = (0..=255u8).collect();
    write_journal(
        &dir.path().join("odd.journal"),
        &[systemd_fixture::Entry::new(T0, 1_000)
            .field("MESSAGE", &huge)
            .field("BINARY", &odd)
            .field("EMPTY", "")],
    );
    let got = read_all(dir.path(), &[], "t", 1).await;
    assert_eq!(got.len(), 1);
    let m = get(&got[0].record, "MESSAGE").unwrap().as_slice().unwrap();
    // libsystemd's data threshold (64 KiB, kept as Fluent Bit keeps it) may cut a
    // compressed value; what comes is the value's start.
    assert!(
        m.len() >= 65_536 && huge.starts_with(m),
        "{} bytes",
        m.len()
    );
    assert_eq!(
        get(&got[0].record, "BINARY").unwrap().as_slice(),
        Some(&odd[..])
    );
    assert_eq!(
        get(&got[0].record, "EMPTY").unwrap().as_slice(),
        Some(&b""[..])
    );
}

#[tokio::test]
async fn mem_buf_limit_pauses_the_reading() {
    let dir = fixture();
    let path = dir.path().to_str().unwrap().to_string();
    let rec = Recorder::default();
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let gated = common::Gated {
        rec: rec.clone(),
        open: open_rx,
    };
    let mut engine = Engine::new(EngineConfig {
        flush: Duration::from_millis(50),
        ..Default::default()
    });
    let metrics = engine.metrics();
    engine.add_input(InputInstance {
        plugin_name: "systemd".into(),
        name: "systemd.0".into(),
        tag: "t".into(),
        mem_buf_limit: Some(1),
        filesystem: false,
        plugin: input(&[("path", &path), ("max_entries", "1")]),
    });
    engine.add_output(OutputInstance {
        plugin_name: "test".into(),
        name: "gated.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        retry_limit: RetryLimit::Limited(1),
        workers: 1,
        total_limit_size: None,
        plugin: Arc::new(gated),
    });
    let watch = rec.clone();
    let shutdown = async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let produced = metrics
            .inputs()
            .iter()
            .find(|(n, _)| n == "systemd.0")
            .map(|(_, m)| m.records.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap();
        // Over the limit after the first round of one entry: no second round while paused.
        assert_eq!(produced, 1, "records appended while the output was stalled");
        open_tx.send(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while decode(&watch).len() < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    engine.run(shutdown).await.unwrap();
    assert_eq!(decode(&rec).len(), 5);
}

#[tokio::test]
async fn a_missing_path_stops_the_input_with_an_error() {
    let got = run_until(
        input(&[("path", "/nonexistent/kb-journal")]),
        "t",
        None,
        1,
        Duration::ZERO,
        Duration::from_millis(500),
    )
    .await;
    assert!(got.is_empty());
}

#[test]
fn configuration() {
    let p = props(&systemd::PLUGIN, &[]).unwrap();
    let c = SystemdConfig::from_props(&p).unwrap();
    assert_eq!(c.path, None);
    assert!(!c.filter_and);
    assert_eq!(c.fields.max_fields, 8000);
    assert_eq!(c.max_entries, 5000);
    assert!(!c.read_from_tail && !c.fields.lowercase && !c.fields.strip_underscores);
    assert_eq!(c.db_sync, None);

    let p = props(
        &systemd::PLUGIN,
        &[
            ("Systemd_Filter", "_SYSTEMD_UNIT=a.service"),
            ("Systemd_Filter", "PRIORITY=3"),
            ("Systemd_Filter_Type", "AND"),
            ("DB.Sync", "Off"),
        ],
    )
    .unwrap();
    let c = SystemdConfig::from_props(&p).unwrap();
    assert_eq!(
        c.filters,
        [b"_SYSTEMD_UNIT=a.service".to_vec(), b"PRIORITY=3".to_vec()]
    );
    assert!(c.filter_and);
    assert_eq!(c.db_sync, Some(0));

    let e = build_errors(
        &systemd::PLUGIN,
        &[
            ("systemd_filter", "_SYSTEMD_UNIT=ok.service"),
            ("systemd_filter", "unit=lower"),
        ],
    );
    assert!(
        e.iter()
            .any(|e| e.contains("test.conf:3") && e.contains("invalid input 'unit=lower'")),
        "{e:?}"
    );
    let e = build_errors(&systemd::PLUGIN, &[("systemd_filter_type", "xor")]);
    assert!(e.iter().any(|e| e.contains("systemd_filter_type")), "{e:?}");
    let e = build_errors(&systemd::PLUGIN, &[("db.sync", "sometimes")]);
    assert!(e.iter().any(|e| e.contains("db.sync")), "{e:?}");
    let e = build_errors(&systemd::PLUGIN, &[("max_entries", "-1")]);
    assert!(e.iter().any(|e| e.contains("max_entries")), "{e:?}");
}
