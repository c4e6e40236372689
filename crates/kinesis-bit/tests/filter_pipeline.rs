//! A filter chain as EKS users run it, end to end: tail → parser (`Reserve_Data On`) → grep →
//! modify → nest → lua → kinesis_streams, into ferrokinesis; the records that arrive are
//! exactly the expected ones, byte for byte.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{agent, assert_success, stderr, terminate_and_wait};
use kb_testkit::kds::Kds;
use kb_testkit::peers::Ferrokinesis;

#[tokio::test(flavor = "multi_thread")]
async fn tail_parser_grep_modify_nest_lua_to_kinesis() {
    let ferro = Ferrokinesis::start();
    Kds::new(&ferro.endpoint(), "us-east-1")
        .create_stream("filtered", 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("parsers.conf"),
        "[PARSER]\n    Name   app\n    Format regex\n    Regex  ^(?<level>[A-Z]+) (?<user>\\w+) (?<msg>.*)$\n",
    )
    .unwrap();
    std::fs::write(
        d.join("filters.lua"),
        "function add_len(tag, ts, record)\n  if record[\"msg\"] == nil then\n    return 0, ts, record\n  end\n  record[\"msg_len\"] = string.len(record[\"msg\"])\n  return 2, ts, record\nend\n",
    )
    .unwrap();
    let log = d.join("app.log");
    std::fs::File::create(&log).unwrap();
    std::fs::write(
        d.join("kb.conf"),
        format!(
            "[SERVICE]\n    Flush 0.3\n    Parsers_File parsers.conf\n\n\
             [INPUT]\n    Name tail\n    Path {log}\n    Tag app\n    Read_from_Head On\n\n\
             [FILTER]\n    Name parser\n    Match app\n    Key_Name log\n    Parser app\n    Reserve_Data On\n\n\
             [FILTER]\n    Name grep\n    Match app\n    Exclude level ^DEBUG$\n\n\
             [FILTER]\n    Name modify\n    Match app\n    Rename user account\n    Add env prod\n\n\
             [FILTER]\n    Name modify\n    Match app\n    Condition Key_value_equals level ERROR\n    Set alert yes\n\n\
             [FILTER]\n    Name nest\n    Match app\n    Operation nest\n    Wildcard acc*\n    Nest_under who\n\n\
             [FILTER]\n    Name lua\n    Match app\n    script filters.lua\n    call add_len\n\n\
             [OUTPUT]\n    Name kinesis_streams\n    Match app\n    region us-east-1\n    stream filtered\n    endpoint {ep}\n",
            log = log.display(),
            ep = ferro.endpoint()
        ),
    )
    .unwrap();
    let child = agent()
        .args(["-c", d.join("kb.conf").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    write!(
        f,
        "INFO alice logged in\nDEBUG bob noisy detail\nERROR carol disk full\nnot an app line\n"
    )
    .unwrap();
    drop(f);
    let start = Instant::now();
    while ferro.captured().len() < 3 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let out = terminate_and_wait(child, Duration::from_secs(30)).await;
    assert_success(&out);
    let got: Vec<String> = ferro
        .captured()
        .into_iter()
        .map(|r| String::from_utf8(r.data).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "{\"level\":\"INFO\",\"msg\":\"logged in\",\"env\":\"prod\",\"who\":{\"account\":\"alice\"},\"msg_len\":9}\n",
            "{\"level\":\"ERROR\",\"msg\":\"disk full\",\"env\":\"prod\",\"alert\":\"yes\",\"who\":{\"account\":\"carol\"},\"msg_len\":9}\n",
            "{\"log\":\"not an app line\",\"env\":\"prod\"}\n",
        ],
        "agent log:\n{}",
        stderr(&out)
    );
}
