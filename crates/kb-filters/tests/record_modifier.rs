//! `record_modifier` against Fluent Bit's documentation examples and its edge cases.

mod common;

use common::*;
use kb_filters::record_modifier::PLUGIN;

const MEM: &str = r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352,"Swap.total":2064380,"Swap.used":32656,"Swap.free":2031724}"#;

#[test]
fn doc_append_fields() {
    // `Record hostname ${HOSTNAME}` with HOSTNAME=localhost.localdomain (variables are
    // resolved when the configuration is read).
    let out = filter(
        &PLUGIN,
        &[
            ("Record", "hostname localhost.localdomain"),
            ("Record", "product Awesome_Tool"),
        ],
        &[MEM],
    );
    assert_eq!(
        out,
        [
            r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352,"Swap.total":2064380,"Swap.used":32656,"Swap.free":2031724,"hostname":"localhost.localdomain","product":"Awesome_Tool"}"#
        ]
    );
}

#[test]
fn doc_remove_fields_with_remove_key() {
    let out = filter(
        &PLUGIN,
        &[
            ("Remove_key", "Swap.total"),
            ("Remove_key", "Swap.used"),
            ("Remove_key", "Swap.free"),
        ],
        &[MEM],
    );
    assert_eq!(
        out,
        [r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352}"#]
    );
}

#[test]
fn doc_remove_fields_with_allowlist_key() {
    for key in ["Allowlist_key", "Whitelist_key"] {
        let out = filter(
            &PLUGIN,
            &[(key, "Mem.total"), (key, "Mem.used"), (key, "Mem.free")],
            &[MEM],
        );
        assert_eq!(
            out,
            [r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352}"#],
            "{key}"
        );
    }
}

#[test]
fn names_ignore_case_and_a_trailing_star_is_a_prefix() {
    let out = filter(&PLUGIN, &[("Remove_key", "swap*")], &[MEM]);
    assert_eq!(
        out,
        [r#"{"Mem.total":1016024,"Mem.used":716672,"Mem.free":299352}"#]
    );
    let out = filter(&PLUGIN, &[("Allowlist_key", "MEM.TOTAL")], &[MEM]);
    assert_eq!(out, [r#"{"Mem.total":1016024}"#]);
    // Without the star the name must be whole.
    let out = filter(&PLUGIN, &[("Remove_key", "Swap")], &[MEM]);
    assert_eq!(out, [compact(MEM)]);
}

#[test]
fn record_values_are_the_rest_of_the_line_and_always_appended() {
    let out = filter(
        &PLUGIN,
        &[
            ("Record", "msg  two words here"),
            ("Record", r#"quoted "a \"b\" c""#),
            ("Record", "a 1"),
        ],
        &[r#"{"a":"x"}"#],
    );
    // `a` is appended again, as Fluent Bit does; the JSON writer (as Fluent Bit's) keeps the
    // last of duplicate keys.
    assert_eq!(
        out,
        [r#"{"msg":"two words here","quoted":"a \"b\" c","a":"1"}"#]
    );
}

#[test]
fn uuid_key_appends_a_v4_uuid_after_the_records() {
    let out = filter(
        &PLUGIN,
        &[("Uuid_key", "id"), ("Record", "k v")],
        &[r#"{"a":1}"#, r#"{"a":2}"#],
    );
    let mut ids = Vec::new();
    for line in &out {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "k", "id"]);
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        let b = id.as_bytes();
        assert_eq!(b[14], b'4', "{id}");
        assert!(b"89ab".contains(&b[19]), "{id}");
        assert!(id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_record_emptied_is_dropped_an_empty_one_passes() {
    let f = build(&PLUGIN, &[("Remove_key", "*")]).unwrap();
    let out = run(vec![f], &[r#"{"a":1}"#, "{}", r#"{"b":2}"#]);
    assert_eq!(out, ["{}"]);
    // With something to add an emptied record is kept.
    let out = filter(
        &PLUGIN,
        &[("Allowlist_key", "nope"), ("Record", "k v")],
        &[r#"{"a":1}"#],
    );
    assert_eq!(out, [r#"{"k":"v"}"#]);
}

#[test]
fn non_string_keys_never_match_and_bin_keys_do() {
    // {1: "int key", bin("Swap.x"): 2, "Mem": 3}
    let map = Map::new()
        .raw_kv(&[0x01], &[0xa1, b'i'])
        .raw_kv(&bin(b"Swap.x"), &[0x02])
        .raw(b"Mem", &[0x03]);
    let f = build(&PLUGIN, &[("Remove_key", "Swap*")]).unwrap();
    let out = run_events(vec![f], &map.event(), 1);
    assert_eq!(out, [r#"{"1":"i","Mem":3}"#]);
    let f = build(&PLUGIN, &[("Allowlist_key", "Mem")]).unwrap();
    let out = run_events(vec![f], &map.event(), 1);
    assert_eq!(out, [r#"{"Mem":3}"#]);
}

#[test]
fn duplicates_nested_values_and_invalid_utf8_pass_through() {
    let map = Map::new()
        .s("dup", b"1")
        .s("bad", b"\xff\xfeok")
        .j("nested", r#"{"Swap":{"x":[1,2]}}"#)
        .s("dup", b"2");
    let f = build(&PLUGIN, &[("Remove_key", "Swap"), ("Record", "new v")]).unwrap();
    let out = run_events(vec![f], &map.event(), 1);
    assert_eq!(
        out,
        [r#"{"bad":"\ufffd\ufffdok","nested":{"Swap":{"x":[1,2]}},"dup":"2","new":"v"}"#]
    );
    let f = build(&PLUGIN, &[("Remove_key", "dup")]).unwrap();
    let out = run_events(vec![f], &map.event(), 1);
    assert_eq!(
        out,
        [r#"{"bad":"\ufffd\ufffdok","nested":{"Swap":{"x":[1,2]}}}"#]
    );
}

#[test]
fn an_unchanged_record_is_copied_as_it_came() {
    let f = build(&PLUGIN, &[("Remove_key", "absent")]).unwrap();
    let ev = event(MEM);
    let mut st = stage(vec![f]);
    let (out, n) = st.run("t", "i", &ev, 1);
    assert_eq!((out, n), (ev, 1));
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[("Record", "lonely")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:2: [filter record_modifier.0] invalid record parameters 'lonely', expects 'KEY VALUE'"]
    );
    let e = build_errors(
        &PLUGIN,
        &[("Remove_key", "a"), ("Allowlist_key", "b"), ("Record", "x")],
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("/etc/kb/filter.conf:4:"), "{e:?}");
    assert_eq!(
        e[1],
        "/etc/kb/filter.conf:2: [filter record_modifier.0] remove_keys and allowlist_keys are exclusive with each other."
    );
    let e = build_errors(&PLUGIN, &[("Recrod", "a b")]);
    assert!(
        e[0].contains("unknown configuration property 'Recrod'"),
        "{e:?}"
    );
    assert!(e[0].contains("did you mean 'record'"), "{e:?}");
}
