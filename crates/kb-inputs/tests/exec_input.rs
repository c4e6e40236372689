//! `exec` through the real engine with real commands run by /bin/sh.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build_errors, mp, props, run_input};
use kb_config::{parse_classic_str, Env};
use kb_core::event::EventTime;
use kb_core::metrics::Metrics;
use kb_core::plugin::Input;
use kb_core::registry::ServiceContext;
use kb_inputs::exec::{self, ExecInput};
use kb_inputs::parsers::ParserRegistry;

fn svc() -> ServiceContext {
    let mut env = Env::from_map(HashMap::new());
    let text = "[PARSER]\n    Name json\n    Format json\n    Time_Key time\n    Time_Format %s\n";
    let pc = parse_classic_str(text, Path::new("parsers.conf"), &mut env).unwrap();
    ServiceContext {
        parsers: Arc::new(ParserRegistry::from_sections(&pc.parsers).unwrap()),
        metrics: Arc::new(Metrics::default()),
        ..ServiceContext::default()
    }
}

fn exec_input(svc: &ServiceContext, kv: &[(&str, &str)]) -> Box<dyn Input> {
    let p = props(&exec::PLUGIN, kv).expect("valid keys");
    Box::new(ExecInput::from_props(&p, svc).expect("valid exec section"))
}

/// Run a one-shot command with Exit_After_Oneshot: the agent exits by itself.
async fn oneshot(kv: &[(&str, &str)]) -> (Vec<common::Rec>, Option<u8>) {
    let svc = svc();
    let mut kv = kv.to_vec();
    kv.push(("exit_after_oneshot", "on"));
    let input = exec_input(&svc, &kv);
    let run = run_input(input, None, std::future::pending());
    let (rec, report) = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the agent exits after the one-shot command");
    assert_eq!(report.lost_records, 0);
    (rec.events(), report.exit_status)
}

fn values(events: &[common::Rec]) -> Vec<rmpv::Value> {
    events.iter().map(|e| e.record.clone()).collect()
}

#[tokio::test]
async fn one_record_per_line_with_the_exec_key() {
    let before = EventTime::now();
    let (events, status) = oneshot(&[(
        "command",
        r"printf 'first\nsecond line\n\nlast\r\nno newline'",
    )])
    .await;
    assert_eq!(
        values(&events),
        [
            mp(r#"{"exec":"first"}"#),
            mp(r#"{"exec":"second line"}"#),
            mp(r#"{"exec":""}"#),
            mp("{\"exec\":\"last\\r\"}"),
            mp(r#"{"exec":"no newline"}"#),
        ]
    );
    let after = EventTime::now();
    for e in &events {
        assert!(e.time >= before && e.time <= after, "stamped when read");
        assert_eq!(e.metadata, rmpv::Value::Map(vec![]));
    }
    // Without Propagate_Exit_Code the agent's own status is kept.
    assert_eq!(status, None);
}

#[tokio::test]
async fn runs_through_the_shell_with_pipes_and_substitutions() {
    let (events, _) = oneshot(&[(
        "command",
        "for i in 3 1 2; do echo \"n=$i\"; done | sort | tr 'n' 'N'; echo \"$(echo sub)\"",
    )])
    .await;
    assert_eq!(
        values(&events),
        [
            mp(r#"{"exec":"N=1"}"#),
            mp(r#"{"exec":"N=2"}"#),
            mp(r#"{"exec":"N=3"}"#),
            mp(r#"{"exec":"sub"}"#),
        ]
    );
}

#[tokio::test]
async fn binary_output_is_kept_as_bytes() {
    let (events, _) = oneshot(&[("command", r"printf 'a\000b\377\n'")]).await;
    assert_eq!(events.len(), 1);
    let m = events[0].record.as_map().unwrap();
    assert_eq!(m[0].0.as_str(), Some("exec"));
    // rmpv keeps a str that is not UTF-8 as raw bytes.
    assert_eq!(m[0].1.as_slice(), Some(&b"a\0b\xff"[..]));
}

#[tokio::test]
async fn json_parser_with_its_time() {
    let (events, _) = oneshot(&[
        (
            "command",
            r#"echo '{"time":"1700000000","msg":"hi","n":1}'; echo 'not json'; echo '{"b":[1,2]}'"#,
        ),
        ("parser", "json"),
    ])
    .await;
    // The line the parser rejects is dropped, as Fluent Bit does.
    assert_eq!(
        values(&events),
        [mp(r#"{"msg":"hi","n":1}"#), mp(r#"{"b":[1,2]}"#)]
    );
    assert_eq!(events[0].time, EventTime::new(1_700_000_000, 0));
    assert!(
        events[1].time.secs > 1_700_000_000,
        "no time key: the time read"
    );
}

#[tokio::test]
async fn parse_errors_are_counted() {
    let svc = svc();
    let input = exec_input(
        &svc,
        &[
            ("command", "echo nope; echo '{}'"),
            ("parser", "json"),
            ("exit_after_oneshot", "true"),
        ],
    );
    let (rec, _) = run_input(input, None, std::future::pending()).await;
    assert_eq!(values(&rec.events()), [mp("{}")]);
    assert_eq!(
        svc.metrics
            .counter_value("fluentbit_exec_parse_errors_total", &[("name", "exec.0")]),
        1
    );
}

#[tokio::test]
async fn propagate_exit_code_follows_shell_conventions() {
    let (events, status) = oneshot(&[
        ("command", "echo bye; exit 3"),
        ("propagate_exit_code", "true"),
    ])
    .await;
    assert_eq!(values(&events), [mp(r#"{"exec":"bye"}"#)]);
    assert_eq!(status, Some(3));

    let (_, status) = oneshot(&[("command", "true"), ("propagate_exit_code", "true")]).await;
    assert_eq!(status, Some(0));

    // Killed by a signal: 128 + the signal, as a shell reports it.
    let (_, status) = oneshot(&[("command", "kill -9 $$"), ("propagate_exit_code", "true")]).await;
    assert_eq!(status, Some(137));

    // Not found: the shell's 127.
    let (_, status) = oneshot(&[
        ("command", "/nonexistent/kb-no-such-command"),
        ("propagate_exit_code", "true"),
    ])
    .await;
    assert_eq!(status, Some(127));
}

#[tokio::test]
async fn buf_size_cuts_long_lines_as_fgets_does() {
    let (events, _) =
        oneshot(&[("command", "echo abcdefghij; echo abcd"), ("buf_size", "5")]).await;
    // fgets(buf, 5) reads 4 bytes at a time, the '\n' counted.
    assert_eq!(
        values(&events),
        [
            mp(r#"{"exec":"abcd"}"#),
            mp(r#"{"exec":"efgh"}"#),
            mp(r#"{"exec":"ij"}"#),
            mp(r#"{"exec":"abcd"}"#),
            mp(r#"{"exec":""}"#),
        ]
    );
}

#[tokio::test]
async fn oneshot_without_exit_runs_once_and_idles() {
    let svc = svc();
    let input = exec_input(&svc, &[("command", "echo once"), ("oneshot", "true")]);
    let (rec, report) =
        run_input(input, None, tokio::time::sleep(Duration::from_millis(1500))).await;
    assert_eq!(values(&rec.events()), [mp(r#"{"exec":"once"}"#)]);
    assert_eq!(report.exit_status, None);
}

#[tokio::test]
async fn runs_every_interval() {
    let svc = svc();
    let input = exec_input(
        &svc,
        &[
            ("command", "echo tick"),
            ("interval_sec", "0"),
            ("interval_nsec", "200000000"),
        ],
    );
    let (rec, _) = run_input(input, None, tokio::time::sleep(Duration::from_millis(2100))).await;
    let n = rec.events().len();
    // Ten intervals fit; the first run is one interval after start. Bounds, not timing.
    assert!((6..=11).contains(&n), "{n} runs in 2.1 s at 200 ms");
    assert!(rec
        .events()
        .iter()
        .all(|e| e.record == mp(r#"{"exec":"tick"}"#)));
}

#[tokio::test]
async fn a_command_slower_than_its_interval_never_runs_twice_at_once() {
    let svc = svc();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("running");
    // Fails (and says so) when another run is still going.
    let cmd = format!(
        "if [ -e {m} ]; then echo overlap; fi; touch {m}; echo start; sleep 0.7; rm {m}",
        m = marker.display()
    );
    let input = exec_input(
        &svc,
        &[
            ("command", &cmd),
            ("interval_sec", "0"),
            ("interval_nsec", "100000000"),
        ],
    );
    let (rec, _) = run_input(input, None, tokio::time::sleep(Duration::from_millis(2000))).await;
    let events = values(&rec.events());
    assert!(!events.contains(&mp(r#"{"exec":"overlap"}"#)), "{events:?}");
    // Runs start at 0.1 s, then back to back: 0.8, 1.5 (the missed intervals are one run).
    let starts = events
        .iter()
        .filter(|e| **e == mp(r#"{"exec":"start"}"#))
        .count();
    assert!((2..=3).contains(&starts), "{starts} runs: {events:?}");
}

#[tokio::test]
async fn failing_commands_are_counted_and_logged_without_records() {
    let svc = svc();
    let input = exec_input(
        &svc,
        &[
            ("command", "exit 7"),
            ("interval_sec", "0"),
            ("interval_nsec", "100000000"),
        ],
    );
    let (rec, _) = run_input(input, None, tokio::time::sleep(Duration::from_millis(1050))).await;
    assert!(rec.events().is_empty());
    let failures = svc.metrics.counter_value(
        "fluentbit_exec_command_failures_total",
        &[("name", "exec.0")],
    );
    assert!((5..=11).contains(&failures), "{failures} failures");
}

#[tokio::test]
async fn stopping_ends_a_running_command_and_what_it_started() {
    let svc = svc();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let cmd = format!(
        "sleep 60 & echo $! > {p}; echo started; wait",
        p = pidfile.display()
    );
    let input = exec_input(&svc, &[("command", &cmd), ("oneshot", "true")]);
    let started = Instant::now();
    let (rec, _) = run_input(input, None, tokio::time::sleep(Duration::from_millis(800))).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert_eq!(values(&rec.events()), [mp(r#"{"exec":"started"}"#)]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The background sleep was in the command's process group, which was ended.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sleep {pid} outlived the agent's stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn configuration_errors() {
    let e = build_errors(&exec::PLUGIN, &[]);
    assert!(
        e.iter()
            .any(|e| e.contains("'command' is a required field")),
        "{e:?}"
    );

    let e = build_errors(
        &exec::PLUGIN,
        &[("command", "true"), ("propagate_exit_code", "on")],
    );
    assert!(
        e.iter()
            .any(|e| e.contains("test.conf:3") && e.contains("exit_after_oneshot")),
        "{e:?}"
    );

    let e = build_errors(&exec::PLUGIN, &[("command", "true"), ("parser", "nope")]);
    assert!(
        e.iter()
            .any(|e| e.contains("test.conf:3") && e.contains("parser 'nope' not found")),
        "{e:?}"
    );

    let e = build_errors(&exec::PLUGIN, &[("command", "true"), ("buf_size", "1")]);
    assert!(e.iter().any(|e| e.contains("buf_size")), "{e:?}");

    let e = build_errors(&exec::PLUGIN, &[("command", "true"), ("interval_sec", "x")]);
    assert!(e.iter().any(|e| e.contains("interval_sec")), "{e:?}");
}

#[test]
fn defaults_and_implied_oneshot() {
    let s = svc();
    let p = props(&exec::PLUGIN, &[("command", "true")]).unwrap();
    let e = ExecInput::from_props(&p, &s).unwrap();
    assert_eq!(e.period(), Duration::from_secs(1));
    assert_eq!(e.max_piece(), 4095);
    assert!(!e.is_oneshot());

    let p = props(
        &exec::PLUGIN,
        &[
            ("command", "true"),
            ("exit_after_oneshot", "true"),
            ("interval_sec", "-3"),
            ("buf_size", "8mb"),
        ],
    )
    .unwrap();
    let e = ExecInput::from_props(&p, &s).unwrap();
    assert!(e.is_oneshot(), "exit_after_oneshot implies oneshot");
    assert_eq!(e.period(), Duration::from_secs(1));
    let size = kb_config::values::parse_size("8mb").unwrap() as usize;
    assert!(size >= 8_000_000);
    assert_eq!(e.max_piece(), size - 1);
}
