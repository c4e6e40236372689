//! `modify` against Fluent Bit's documentation examples, every rule and condition, and its
//! edge cases.

mod common;

use common::*;
use kb_filters::modify::PLUGIN;

const MEM: &str = r#"{"Mem.total":4050908,"Mem.used":738100,"Mem.free":3312808,"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524}"#;

fn one(kv: &[(&str, &str)], record: &str) -> String {
    let out = filter(&PLUGIN, kv, &[record]);
    assert_eq!(out.len(), 1);
    out.into_iter().next().unwrap()
}

#[test]
fn doc_example_usage() {
    let out = one(
        &[("Rename", "Key2 RenamedKey"), ("Add", "OtherKey Value3")],
        r#"{"Key1":"Value1","Key2":"Value2"}"#,
    );
    assert_eq!(
        out,
        r#"{"Key1":"Value1","RenamedKey":"Value2","OtherKey":"Value3"}"#
    );
}

#[test]
fn doc_example_1_add_and_rename() {
    let out = one(
        &[
            ("Add", "Service1 SOMEVALUE"),
            ("Add", "Service3 SOMEVALUE3"),
            ("Add", "Mem.total2 TOTALMEM2"),
            ("Rename", "Mem.free MEMFREE"),
            ("Rename", "Mem.used MEMUSED"),
            ("Rename", "Swap.total SWAPTOTAL"),
            ("Add", "Mem.total TOTALMEM"),
        ],
        MEM,
    );
    assert_eq!(
        out,
        r#"{"Mem.total":4050908,"MEMUSED":738100,"MEMFREE":3312808,"SWAPTOTAL":1046524,"Swap.used":0,"Swap.free":1046524,"Service1":"SOMEVALUE","Service3":"SOMEVALUE3","Mem.total2":"TOTALMEM2"}"#
    );
}

#[test]
fn doc_example_2_conditionally_add_and_remove() {
    let f1 = build(
        &PLUGIN,
        &[
            ("Condition", "Key_Does_Not_Exist cpustats"),
            ("Condition", "Key_Exists Mem.used"),
            ("Set", "cpustats UNKNOWN"),
        ],
    )
    .unwrap();
    let f2 = build(
        &PLUGIN,
        &[
            ("Condition", "Key_Value_Does_Not_Equal cpustats KNOWN"),
            ("Add", "sourcetype memstats"),
        ],
    )
    .unwrap();
    let f3 = build(
        &PLUGIN,
        &[
            ("Condition", "Key_Value_Equals cpustats UNKNOWN"),
            ("Remove_wildcard", "Mem"),
            ("Remove_wildcard", "Swap"),
            ("Add", "cpustats_more STILL_UNKNOWN"),
        ],
    )
    .unwrap();
    let out = run(vec![f1, f2, f3], &[MEM, MEM]);
    let want = r#"{"cpustats":"UNKNOWN","sourcetype":"memstats","cpustats_more":"STILL_UNKNOWN"}"#;
    assert_eq!(out, [want, want]);
}

#[test]
fn doc_example_3_emoji() {
    let out = one(
        &[
            ("Remove_Wildcard", "Mem"),
            ("Remove_Wildcard", "Swap"),
            ("Set", "This_plugin_is_on 🔥"),
            ("Set", "🔥 is_hot"),
            ("Copy", "🔥 💦"),
            ("Rename", "💦 ❄️"),
            ("Set", "❄️ is_cold"),
            ("Set", "💦 is_wet"),
        ],
        MEM,
    );
    // json.escape_unicode is on by default, as in Fluent Bit.
    assert_eq!(
        out,
        r#"{"This_plugin_is_on":"\ud83d\udd25","\ud83d\udd25":"is_hot","\u2744\ufe0f":"is_cold","\ud83d\udca6":"is_wet"}"#
    );
}

#[test]
fn set_add_remove_act_on_every_duplicate() {
    let ev = Map::new().s("a", b"1").s("b", b"x").s("a", b"2").event();
    let f = build(&PLUGIN, &[("Set", "a new")]).unwrap();
    assert_eq!(run_events(vec![f], &ev, 1), [r#"{"b":"x","a":"new"}"#]);
    let f = build(&PLUGIN, &[("Remove", "a")]).unwrap();
    assert_eq!(run_events(vec![f], &ev, 1), [r#"{"b":"x"}"#]);
    let f = build(&PLUGIN, &[("Add", "a no"), ("Add", "c yes")]).unwrap();
    assert_eq!(
        run_events(vec![f], &ev, 1),
        [r#"{"b":"x","a":"2","c":"yes"}"#]
    );
    let f = build(&PLUGIN, &[("Rename", "a z")]).unwrap();
    assert_eq!(
        run_events(vec![f], &ev, 1),
        [r#"{"b":"x","z":"2"}"#],
        "both renamed; the JSON keeps the last"
    );
}

#[test]
fn rename_and_hard_rename() {
    let r = r#"{"a":1,"b":2,"c":3}"#;
    assert_eq!(one(&[("Rename", "a b")], r), compact(r), "target exists");
    assert_eq!(one(&[("Rename", "x y")], r), compact(r), "source missing");
    assert_eq!(one(&[("Rename", "a d")], r), r#"{"d":1,"b":2,"c":3}"#);
    assert_eq!(one(&[("Hard_rename", "a b")], r), r#"{"b":1,"c":3}"#);
    assert_eq!(one(&[("Hard_rename", "a d")], r), r#"{"d":1,"b":2,"c":3}"#);
    assert_eq!(one(&[("Hard_rename", "x b")], r), compact(r));
    assert_eq!(one(&[("Hard_rename", "a a")], r), compact(r));
}

#[test]
fn copy_and_hard_copy() {
    let r = r#"{"a":{"n":[1]},"b":2,"c":3}"#;
    assert_eq!(
        one(&[("Copy", "a d")], r),
        r#"{"a":{"n":[1]},"d":{"n":[1]},"b":2,"c":3}"#
    );
    assert_eq!(one(&[("Copy", "a b")], r), compact(r), "target exists");
    assert_eq!(one(&[("Copy", "x d")], r), compact(r));
    assert_eq!(
        one(&[("Hard_copy", "a b")], r),
        r#"{"a":{"n":[1]},"b":{"n":[1]},"c":3}"#
    );
    assert_eq!(one(&[("Hard_copy", "c a")], r), r#"{"b":2,"c":3,"a":3}"#);
    assert_eq!(one(&[("Hard_copy", "a a")], r), compact(r));
    // More than one source: not copied.
    let ev = Map::new().s("a", b"1").s("a", b"2").event();
    let f = build(&PLUGIN, &[("Copy", "a b"), ("Hard_copy", "a c")]).unwrap();
    assert_eq!(run_events(vec![f], &ev, 1), [r#"{"a":"2"}"#]);
}

#[test]
fn wildcards_regexes_and_moves() {
    assert_eq!(
        one(&[("Remove_wildcard", "Mem.*")], MEM),
        r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524}"#
    );
    assert_eq!(
        one(&[("Remove_regex", r"^(Mem|Swap)\.(used|free)$")], MEM),
        r#"{"Mem.total":4050908,"Swap.total":1046524}"#
    );
    assert_eq!(
        one(&[("Move_to_start", "Swap")], MEM),
        r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"Mem.total":4050908,"Mem.used":738100,"Mem.free":3312808}"#
    );
    assert_eq!(
        one(&[("Move_To_End", "Mem.t*")], MEM),
        r#"{"Mem.used":738100,"Mem.free":3312808,"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"Mem.total":4050908}"#
    );
    assert_eq!(
        one(&[("Move_to_end", "Mem")], MEM),
        r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"Mem.total":4050908,"Mem.used":738100,"Mem.free":3312808}"#
    );
    assert_eq!(one(&[("Move_to_start", "nothing")], MEM), compact(MEM));
}

#[test]
fn quoted_parameters_hold_spaces() {
    assert_eq!(
        one(
            &[("Set", r#"msg "hello world""#), ("Add", "'a b' 'it\\'s'")],
            "{}"
        ),
        r#"{"msg":"hello world","a b":"it's"}"#
    );
}

#[test]
fn every_condition() {
    let r = r#"{"level":"error","code":500,"ok":false,"kube":{"ns":"prod","app":"web"},"tag_a":"x1","tag_b":"x2"}"#;
    let cases: &[(&str, bool)] = &[
        ("Key_exists level", true),
        ("Key_exists nope", false),
        ("Key_exists $kube['ns']", true),
        ("Key_exists $kube['nope']", false),
        ("Key_does_not_exist nope", true),
        ("Key_does_not_exist $kube['app']", false),
        ("A_key_matches ^tag_", true),
        ("A_key_matches ^zzz", false),
        ("No_key_matches ^zzz", true),
        ("No_key_matches ^lev", false),
        ("Key_value_equals level error", true),
        ("Key_value_equals $kube['ns'] prod", true),
        ("Key_value_equals level warn", false),
        ("Key_value_equals code 500", false),
        ("Key_value_equals nope x", false),
        ("Key_value_does_not_equal level warn", true),
        ("Key_value_does_not_equal level error", false),
        ("Key_value_does_not_equal code 500", true),
        ("Key_value_does_not_equal nope x", false),
        ("Key_value_matches level ^err", true),
        ("Key_value_matches $kube['app'] ^w", true),
        ("Key_value_matches ok ^false$", true),
        ("Key_value_matches code ^5", false),
        ("Key_value_does_not_match level ^warn", true),
        ("Key_value_does_not_match level ^err", false),
        ("Key_value_does_not_match nope x", false),
        ("Matching_keys_have_matching_values ^tag_ ^x", true),
        ("Matching_keys_have_matching_values ^tag_ ^x1$", false),
        ("Matching_keys_have_matching_values ^zzz ^x", true),
        ("Matching_keys_do_not_have_matching_values ^tag_ ^x1$", true),
        ("Matching_keys_do_not_have_matching_values ^tag_ ^x", false),
    ];
    for (cond, holds) in cases {
        let out = one(&[("Condition", cond), ("Add", "hit yes")], r);
        assert_eq!(out.contains(r#""hit":"yes""#), *holds, "{cond}");
    }
    // Conditions are ANDed, whatever their order among the rules.
    let out = one(
        &[
            ("Add", "hit yes"),
            ("Condition", "Key_exists level"),
            ("Condition", "Key_exists nope"),
        ],
        r,
    );
    assert!(!out.contains("hit"), "{out}");
}

#[test]
fn non_string_keys_bin_keys_and_invalid_utf8() {
    let ev = Map::new()
        .raw_kv(&[0x05], &[0xa1, b'n'])
        .raw_kv(&bin(b"b"), &[0x01])
        .s("s", b"\xff")
        .event();
    let f = build(&PLUGIN, &[("Rename", "b c"), ("Set", "s fixed")]).unwrap();
    assert_eq!(
        run_events(vec![f], &ev, 1),
        [r#"{"5":"n","c":1,"s":"fixed"}"#]
    );
    let f = build(
        &PLUGIN,
        &[
            ("Condition", "Key_value_matches s ^\u{fffd}$"),
            ("Add", "m y"),
        ],
    )
    .unwrap();
    assert_eq!(
        run_events(vec![f], &ev, 1),
        [r#"{"5":"n","b":1,"s":"\ufffd","m":"y"}"#]
    );
}

#[test]
fn a_record_no_rule_touched_is_copied_as_it_came() {
    let f = build(&PLUGIN, &[("Remove", "absent"), ("Rename", "x y")]).unwrap();
    let ev = event(MEM);
    let mut st = stage(vec![f]);
    assert_eq!(st.run("t", "i", &ev, 1), (ev.clone(), 1));
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[("Set", "only_key")]);
    assert!(
        e[0].starts_with(
            "/etc/kb/filter.conf:2: [filter modify.0] Invalid operation set : only_key in configuration"
        ),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("Add", "a b"), ("Remove", "a b")]);
    assert!(e[0].starts_with("/etc/kb/filter.conf:3:"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Set", "a b c")]);
    assert!(e[0].contains("takes 2 parameters, got 3"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Set", "a b c d")]);
    assert!(e[0].contains("Invalid config for set : a b c d"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Condition", "Key_is_blue a")]);
    assert!(e[0].contains("unknown condition 'Key_is_blue'"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Condition", "Key_value_equals a")]);
    assert!(e[0].contains("takes 2 parameters"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Condition", "Key_exists")]);
    assert!(e[0].contains("takes 1 parameter"), "{e:?}");
    let e = build_errors(
        &PLUGIN,
        &[("Add", "a b"), ("Condition", "A_key_matches (x")],
    );
    assert!(
        e[0].starts_with(
            "/etc/kb/filter.conf:3: [filter modify.0] Unable to create regex from '(x'"
        ),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("Remove_regex", "[a")]);
    assert!(e[0].contains("Unable to create regex"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Set", "a 'open")]);
    assert!(e[0].contains("unterminated quote"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Condition", "Key_exists $a['x'")]);
    assert!(e[0].contains("invalid record accessor"), "{e:?}");
    // Keys that would not compile as regexes are fine outside Remove_regex.
    assert!(build(&PLUGIN, &[("Set", "level [INFO")]).is_ok());
    // One parameter too many on a condition is only a warning.
    let p = props(
        &PLUGIN,
        &[("Condition", "Key_exists a extra"), ("Add", "x y")],
    )
    .unwrap();
    let cx = kb_core::registry::ServiceContext::default();
    assert!((PLUGIN.build)(&p, &cx).is_ok());
    let w = cx.take_warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].to_string().contains("'extra' is ignored"), "{}", w[0]);
}
