//! The filters through the binary, as a Fluent Bit user runs them: a classic configuration
//! file (or YAML, or the command line) with `[FILTER]` sections, records on stdin, the
//! stdout output's `json_lines`, asserted byte for byte.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod common;

use common::{agent, run_with_stdin, stderr};

const OUTPUT: &str = "\n[OUTPUT]\n    Name           stdout\n    Match          *\n    Format         json_lines\n    json_date_key  false\n";

/// Run a classic file made of `[INPUT] stdin` + `filters` + the stdout output on `input`.
fn run_conf(dir: &Path, filters: &str, input: &str) -> Output {
    let conf = dir.join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!("[INPUT]\n    Name stdin\n    Tag  mem.local\n\n{filters}{OUTPUT}"),
    )
    .unwrap();
    run_with_stdin(
        agent().args(["-c", conf.to_str().unwrap()]),
        input.as_bytes(),
        Duration::from_secs(20),
    )
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MEM: &str = r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352,"Swap.total":2064380,"Swap.used":32656,"Swap.free":2031724}"#;

#[test]
fn record_modifier_doc_append_fields_with_an_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name stdin\n    Tag  mem.local\n\n[FILTER]\n    Name record_modifier\n    Match *\n    Record hostname ${{HOSTNAME}}\n    Record product Awesome_Tool\n{OUTPUT}"
        ),
    )
    .unwrap();
    let out = run_with_stdin(
        agent().args(["-c", conf.to_str().unwrap()]),
        format!("{MEM}\n").as_bytes(),
        Duration::from_secs(20),
    );
    // As in Fluent Bit, ${HOSTNAME} is the machine's host name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        stdout(&out),
        format!("{{\"Mem.total\":1016024,\"Mem.used\":716672,\"Mem.free\":299352,\"Swap.total\":2064380,\"Swap.used\":32656,\"Swap.free\":2031724,\"hostname\":\"{}\",\"product\":\"Awesome_Tool\"}}\n", host.trim())
    );
}

#[test]
fn record_modifier_on_the_command_line_and_its_help() {
    let out = run_with_stdin(
        agent().args([
            "-i",
            "stdin",
            "-F",
            "record_modifier",
            "-p",
            "Remove_key=Swap.total",
            "-p",
            "Remove_key=Swap.free",
            "-p",
            "Remove_key=Swap.used",
            "-m",
            "*",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ]),
        format!("{MEM}\n").as_bytes(),
        Duration::from_secs(20),
    );
    assert_eq!(
        stdout(&out),
        "{\"Mem.total\":1016024,\"Mem.used\":716672,\"Mem.free\":299352}\n"
    );
    let help = agent()
        .args(["-F", "record_modifier", "-h"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for key in [
        "record",
        "remove_key",
        "allowlist_key",
        "whitelist_key",
        "uuid_key",
    ] {
        assert!(
            text.to_lowercase().contains(key),
            "{key} missing in:\n{text}"
        );
    }
}

#[test]
fn grep_doc_filter_records() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = ["aaa", "aab", "bbb", "ccc", "ddd", "eee", "fff", "ggg"]
        .iter()
        .map(|l| format!("{{\"log\": \"{l}\"}}\n"))
        .collect();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    name   grep\n    match  *\n    regex  log aa\n",
        &lines,
    );
    assert_eq!(stdout(&out), "{\"log\":\"aaa\"}\n{\"log\":\"aab\"}\n");
}

#[test]
fn grep_doc_logical_op_or_in_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.yaml");
    std::fs::write(
        &conf,
        "pipeline:\n  inputs:\n    - name: stdin\n      tag: dummy\n  filters:\n    - name: grep\n      match: '*'\n      logical_op: or\n      regex:\n        - value something\n        - value error\n  outputs:\n    - name: stdout\n      match: '*'\n      format: json_lines\n      json_date_key: false\n",
    )
    .unwrap();
    let out = run_with_stdin(
        agent().args(["-c", conf.to_str().unwrap()]),
        b"{\"endpoint\":\"localhost\", \"value\":\"something\"}\n{\"endpoint\":\"localhost\", \"value\":\"other\"}\n{\"endpoint\":\"localhost\", \"value\":\"an error\"}\n",
        Duration::from_secs(20),
    );
    assert_eq!(
        stdout(&out),
        "{\"endpoint\":\"localhost\",\"value\":\"something\"}\n{\"endpoint\":\"localhost\",\"value\":\"an error\"}\n"
    );
}

#[test]
fn modify_doc_example_2_conditionally_add_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let filters = "[FILTER]\n    Name    modify\n    Match   mem.*\n\n    Condition Key_Does_Not_Exist cpustats\n    Condition Key_Exists Mem.used\n\n    Set cpustats UNKNOWN\n\n[FILTER]\n    Name    modify\n    Match   mem.*\n\n    Condition Key_Value_Does_Not_Equal cpustats KNOWN\n\n    Add sourcetype memstats\n\n[FILTER]\n    Name    modify\n    Match   mem.*\n\n    Condition Key_Value_Equals cpustats UNKNOWN\n\n    Remove_wildcard Mem\n    Remove_wildcard Swap\n    Add cpustats_more STILL_UNKNOWN\n";
    let out = run_conf(dir.path(), filters, &format!("{MEM}\n{MEM}\n"));
    let line = "{\"cpustats\":\"UNKNOWN\",\"sourcetype\":\"memstats\",\"cpustats_more\":\"STILL_UNKNOWN\"}\n";
    assert_eq!(stdout(&out), format!("{line}{line}"));
}

#[test]
fn modify_doc_example_1_on_the_command_line_keeps_rule_order() {
    let out = run_with_stdin(
        agent().args([
            "-i",
            "stdin",
            "-p",
            "tag=mem.local",
            "-F",
            "modify",
            "-p",
            "Add=Service1 SOMEVALUE",
            "-p",
            "Add=Service2 SOMEVALUE3",
            "-p",
            "Add=Mem.total2 TOTALMEM2",
            "-p",
            "Rename=Mem.free MEMFREE",
            "-p",
            "Rename=Mem.used MEMUSED",
            "-p",
            "Rename=Swap.total SWAPTOTAL",
            "-p",
            "Add=Mem.total TOTALMEM",
            "-m",
            "*",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ]),
        format!("{MEM}\n").as_bytes(),
        Duration::from_secs(20),
    );
    assert_eq!(
        stdout(&out),
        "{\"Mem.total\":1016024,\"MEMUSED\":716672,\"MEMFREE\":299352,\"SWAPTOTAL\":2064380,\"Swap.used\":32656,\"Swap.free\":2031724,\"Service1\":\"SOMEVALUE\",\"Service2\":\"SOMEVALUE3\",\"Mem.total2\":\"TOTALMEM2\"}\n"
    );
}

#[test]
fn modify_configuration_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "[INPUT]\n    Name stdin\n\n[FILTER]\n    Name modify\n    Match *\n    Condition Key_is_blue a\n    Rename only_one\n    Remove_regex (x\n\n[OUTPUT]\n    Name stdout\n    Match *\n",
    )
    .unwrap();
    let out = agent()
        .args(["-c", conf.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let c = conf.display();
    for (line, what) in [
        (7, "unknown condition 'Key_is_blue'"),
        (8, "Invalid operation rename : only_one in configuration"),
        (9, "Unable to create regex from '(x'"),
    ] {
        assert!(
            err.contains(&format!("{c}:{line}: [filter modify.0] ")) && err.contains(what),
            "line {line}, {what}:\n{err}"
        );
    }
}

#[test]
fn nest_doc_example_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    Name nest\n    Match *\n    Operation nest\n    Wildcard Mem.*\n    Nest_under Memstats\n    Remove_prefix Mem.\n",
        &format!("{MEM}\n"),
    );
    assert_eq!(
        stdout(&out),
        "{\"Swap.total\":2064380,\"Swap.used\":32656,\"Swap.free\":2031724,\"Memstats\":{\"total\":1016024,\"used\":716672,\"free\":299352}}\n"
    );
}

#[test]
fn type_converter_doc_uint_to_string() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    Name type_converter\n    Match *\n    uint_key Mem.total Mem.total_str string\n    uint_key Mem.used  Mem.used_str  string\n    uint_key Mem.free  Mem.free_str  string\n",
        &format!("{MEM}\n"),
    );
    assert_eq!(
        stdout(&out),
        "{\"Mem.total\":1016024,\"Mem.used\":716672,\"Mem.free\":299352,\"Swap.total\":2064380,\"Swap.used\":32656,\"Swap.free\":2031724,\"Mem.total_str\":\"1016024\",\"Mem.used_str\":\"716672\",\"Mem.free_str\":\"299352\"}\n"
    );
}

const DATA: &str = "{\"color\": \"blue\", \"label\": {\"name\": null}}\n{\"color\": \"red\", \"label\": {\"name\": \"abc\"}, \"meta\": \"data\"}\n{\"color\": \"green\", \"label\": {\"name\": \"abc\"}, \"meta\": null}\n";

#[test]
fn expect_doc_validating_pipeline_passes() {
    let dir = tempfile::tempdir().unwrap();
    let filters = "[FILTER]\n    name       expect\n    match      *\n    key_exists color\n    key_exists label\n    action     exit\n\n[FILTER]\n    name       grep\n    match      *\n    regex      $label['name'] ^abc$\n\n[FILTER]\n    name       expect\n    match      *\n    key_val_eq $label['name'] abc\n    action     exit\n\n[FILTER]\n    name       record_modifier\n    match      *\n    record     hostname myhost\n\n[FILTER]\n    name       expect\n    match      *\n    key_exists hostname\n    action     exit\n";
    let out = run_conf(dir.path(), filters, DATA);
    assert_eq!(
        stdout(&out),
        "{\"color\":\"red\",\"label\":{\"name\":\"abc\"},\"meta\":\"data\",\"hostname\":\"myhost\"}\n{\"color\":\"green\",\"label\":{\"name\":\"abc\"},\"meta\":null,\"hostname\":\"myhost\"}\n"
    );
}

#[test]
fn expect_action_exit_stops_with_status_255_after_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    name        expect\n    match       *\n    key_exists  meta\n    action      exit\n",
        DATA,
    );
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[filter:expect:expect.0] exception on rule #0 'key_exists', key 'meta' not found. Record content:"),
        "{err}"
    );
    assert!(err.contains("expect check failed"), "{err}");
    // Records are never dropped by expect: what was read is delivered.
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("{\"color\":\"blue\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn expect_result_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    name        expect\n    match       *\n    key_val_is_not_null meta\n    action      result_key\n    result_key  valid\n",
        DATA,
    );
    assert_eq!(
        stdout(&out),
        "{\"valid\":false,\"color\":\"blue\",\"label\":{\"name\":null}}\n{\"valid\":true,\"color\":\"red\",\"label\":{\"name\":\"abc\"},\"meta\":\"data\"}\n{\"valid\":false,\"color\":\"green\",\"label\":{\"name\":\"abc\"},\"meta\":null}\n"
    );
}

#[test]
fn throttle_passes_rate_records_in_the_first_interval() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..10).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    let out = run_conf(
        dir.path(),
        "[FILTER]\n    Name     throttle\n    Match    *\n    Rate     3\n    Window   5\n    Interval 1h\n",
        &input,
    );
    assert_eq!(stdout(&out), "{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2}\n");
}
