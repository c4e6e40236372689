//! The `exec` input run by the binary as a Fluent Bit user would: `-i exec -p command=...`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{agent, assert_success, stderr, terminate, wait_with_timeout};

fn run(args: &[&str]) -> Output {
    let child = agent()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    wait_with_timeout(child, Duration::from_secs(30))
}

/// `-i exec <props> -o stdout json_lines` without the date key.
fn exec_args<'a>(props: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-i", "exec"];
    for p in props {
        a.extend(["-p", p]);
    }
    a.extend([
        "-o",
        "stdout",
        "-p",
        "format=json_lines",
        "-p",
        "json_date_key=false",
        "-m",
        "*",
    ]);
    a
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn oneshot_lines_are_records_and_the_agent_exits() {
    let out = run(&exec_args(&[
        "command=printf 'hello\\n\\nworld \"quoted\"\\n'",
        "exit_after_oneshot=true",
    ]));
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "{\"exec\":\"hello\"}\n{\"exec\":\"\"}\n{\"exec\":\"world \\\"quoted\\\"\"}\n"
    );
    assert!(
        stderr(&out).contains("one-shot command exited"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn propagate_exit_code_is_the_agents_status() {
    let out = run(&exec_args(&[
        "command=echo last words; exit 42",
        "exit_after_oneshot=on",
        "propagate_exit_code=on",
    ]));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    // What the command printed was delivered before the exit.
    assert_eq!(stdout(&out), "{\"exec\":\"last words\"}\n");

    let out = run(&exec_args(&[
        "command=exit 0",
        "exit_after_oneshot=on",
        "propagate_exit_code=on",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Without Propagate_Exit_Code a failing command does not change the agent's status.
    let out = run(&exec_args(&["command=exit 42", "exit_after_oneshot=on"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn json_lines_through_a_json_parser() {
    let dir = tempfile::tempdir().unwrap();
    let parsers = dir.path().join("parsers.conf");
    std::fs::write(
        &parsers,
        "[PARSER]\n    Name   json\n    Format json\n    Time_Key ts\n    Time_Format %s\n",
    )
    .unwrap();
    let mut args = vec!["-R", parsers.to_str().unwrap()];
    args.extend(exec_args(&[
        r#"command=echo '{"ts":"1700000000","level":"info","n":[1,{"k":null}]}'; echo '{"msg":"no time"}'"#,
        "parser=json",
        "exit_after_oneshot=true",
    ]));
    let out = run(&args);
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "{\"level\":\"info\",\"n\":[1,{\"k\":null}]}\n{\"msg\":\"no time\"}\n"
    );

    // The record time is the parsed one: shown as the date key.
    let mut args = vec!["-R", parsers.to_str().unwrap()];
    args.extend([
        "-i",
        "exec",
        "-p",
        r#"command=echo '{"ts":"1700000000","a":1}'"#,
        "-p",
        "parser=json",
        "-p",
        "exit_after_oneshot=true",
        "-o",
        "stdout",
        "-p",
        "format=json_lines",
        "-p",
        "json_date_format=epoch",
        "-m",
        "*",
    ]);
    let out = run(&args);
    assert_success(&out);
    assert_eq!(stdout(&out), "{\"date\":1700000000,\"a\":1}\n");
}

#[test]
fn interval_runs_until_stopped() {
    let child = agent()
        .args(exec_args(&[
            "command=echo tick",
            "interval_sec=0",
            "interval_nsec=250000000",
        ]))
        .args(["-f", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    std::thread::sleep(Duration::from_millis(2600));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert_success(&out);
    let text = stdout(&out);
    let n = text.lines().count();
    assert!(text.lines().all(|l| l == "{\"exec\":\"tick\"}"), "{text}");
    // About ten runs in 2.6 s; bounds, not timing (start-up is not instant).
    assert!((5..=11).contains(&n), "{n} runs:\n{}", stderr(&out));
}

#[test]
fn a_failing_command_is_logged_once_a_minute_and_produces_nothing() {
    let child = agent()
        .args(exec_args(&[
            "command=echo oops >&2; exit 3",
            "interval_sec=0",
            "interval_nsec=100000000",
        ]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kinesis-bit");
    std::thread::sleep(Duration::from_millis(1500));
    terminate(&child);
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert_success(&out);
    assert_eq!(stdout(&out), "");
    let log = stderr(&out);
    // The command's own stderr passes through.
    assert!(log.contains("oops"), "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("command 'echo oops >&2; exit 3' exited with code 3"))
        .collect();
    assert_eq!(warnings.len(), 1, "rate-limited:\n{log}");
    assert!(warnings[0].contains("[ warn]"), "{log}");
    assert!(warnings[0].contains("exec.0"), "{log}");
}

#[test]
fn configuration_errors_fail_the_start_and_dry_run() {
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = exec_args(&["command=true", "propagate_exit_code=true"]);
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "propagate_exit_code=True option makes no sense without exit_after_oneshot=True"
            ),
            "{}",
            stderr(&out)
        );
    }
    let out = run(&["-i", "exec", "-o", "null", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("'command' is a required field"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dry_run_starts_no_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let conf = dir.path().join("exec.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name exec\n    Tag exec_ls\n    Command touch {}\n    Interval_Sec 1\n    Interval_NSec 0\n    Buf_Size 8mb\n    Oneshot On\n\n[OUTPUT]\n    Name null\n    Match *\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = run(&["-c", conf.to_str().unwrap(), "--dry-run"]);
    assert_success(&out);
    assert!(stderr(&out).contains("configuration test is successful"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "--dry-run must not run the command");
}

#[test]
fn exec_is_listed_in_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-bit"))
        .args(["-i", "exec", "-h"])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for key in [
        "command",
        "parser",
        "interval_sec",
        "interval_nsec",
        "buf_size",
        "oneshot",
        "exit_after_oneshot",
        "propagate_exit_code",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
}
