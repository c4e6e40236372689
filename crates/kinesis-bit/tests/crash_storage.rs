//! The crash run as a test (issue 5): tail into filesystem storage, kinesis_streams to our
//! sink; the agent is SIGKILLed at random moments while it ships and started again each
//! time. Nothing may be lost; duplicates may only be the records of the requests in flight at
//! each kill plus one tail block whose offset had not reached the DB. `bench/crash-run.sh`
//! does the same with 2M records and prints the figures.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{agent, assert_success, terminate_and_wait};
use kb_testkit::sink::{Sink, SinkConfig};

const RECORDS: u64 = 200_000;
const KILLS: usize = 5;

fn write_log(path: &Path) -> usize {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut longest = 0;
    for i in 0..RECORDS {
        let line = format!(
            "{{\"seq\":{i},\"msg\":\"crash test record {i}\",\"pad\":\"{}\"}}\n",
            "x".repeat(60)
        );
        longest = longest.max(line.len());
        f.write_all(line.as_bytes()).unwrap();
    }
    f.flush().unwrap();
    longest
}

fn start(work: &Path, endpoint: &str) -> Child {
    agent()
        .args(["-c", work.join("kb.conf").to_str().unwrap()])
        .args(["-R", work.join("parsers.conf").to_str().unwrap()])
        .env("KB_TEST_ENDPOINT", endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn chunk_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|d| d.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|d| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|f| {
                    f.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|e| e == "kbc")
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_shipping_loses_nothing_and_duplicates_at_most_the_in_flight() {
    let sink = Sink::start(SinkConfig::default().id_field("seq")).await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let longest = write_log(&w.join("app.log"));
    let storage = w.join("storage");
    std::fs::write(
        w.join("kb.conf"),
        format!(
            "[SERVICE]\n    Flush 0.3\n    Grace 5\n    storage.path {storage}\n    storage.checksum on\n\
             [INPUT]\n    Name tail\n    Path {log}\n    DB {db}\n    Read_from_Head on\n    Parser json\n    storage.type filesystem\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match *\n    region us-east-1\n    stream crash\n    endpoint ${{KB_TEST_ENDPOINT}}\n    retry_limit no_limits\n",
            storage = storage.display(),
            log = w.join("app.log").display(),
            db = w.join("tail.db").display(),
        ),
    )
    .unwrap();
    std::fs::write(
        w.join("parsers.conf"),
        "[PARSER]\n    Name json\n    Format json\n",
    )
    .unwrap();

    let mut rng = fastrand::Rng::with_seed(5);
    let mut killed_while_shipping = 0;
    for _ in 0..KILLS {
        let mut child = start(w, &sink.endpoint());
        tokio::time::sleep(Duration::from_millis(rng.u64(200..700))).await;
        if sink.stats().unique_ids < RECORDS {
            killed_while_shipping += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let child = start(w, &sink.endpoint());
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.stats().unique_ids < RECORDS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = terminate_and_wait(child, Duration::from_secs(30)).await;
    assert_success(&out);

    let st = sink.stats();
    let per_kill = 500 + 128 * 1024 / longest + 1;
    eprintln!(
        "crash test: produced {RECORDS} delivered {} duplicated {} ({killed_while_shipping} kills while shipping, bound {})",
        st.unique_ids,
        st.duplicate_entries,
        KILLS * per_kill
    );
    assert!(
        killed_while_shipping > 0,
        "every kill came after the end: the test proved nothing"
    );
    assert_eq!(st.unique_ids, RECORDS, "lost {}", RECORDS - st.unique_ids);
    assert_eq!(st.entries_without_id, 0);
    assert!(
        st.duplicate_entries as usize <= KILLS * per_kill,
        "{} duplicates, more than {KILLS} kills x {per_kill}",
        st.duplicate_entries
    );
    assert_eq!(
        chunk_files(&storage),
        0,
        "every chunk file is deleted once delivered"
    );
}
