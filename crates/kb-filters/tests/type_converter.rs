//! `type_converter` against Fluent Bit's documentation example and its conversions.

mod common;

use common::*;
use kb_filters::type_converter::PLUGIN;

#[test]
fn doc_convert_uint_to_string() {
    let out = filter(
        &PLUGIN,
        &[
            ("uint_key", "Mem.total Mem.total_str string"),
            ("uint_key", "Mem.used  Mem.used_str  string"),
            ("uint_key", "Mem.free  Mem.free_str  string"),
        ],
        &[
            r#"{"Mem.total":8146052,"Mem.used":4513564,"Mem.free":3632488,"Swap.total":1918356,"Swap.used":0,"Swap.free":1918356}"#,
        ],
    );
    assert_eq!(
        out,
        [
            r#"{"Mem.total":8146052,"Mem.used":4513564,"Mem.free":3632488,"Swap.total":1918356,"Swap.used":0,"Swap.free":1918356,"Mem.total_str":"8146052","Mem.used_str":"4513564","Mem.free_str":"3632488"}"#
        ]
    );
}

#[test]
fn string_conversions() {
    let out = filter(
        &PLUGIN,
        &[
            ("str_key", "i i_out int"),
            ("str_key", "u u_out uint"),
            ("str_key", "h h_out hex"),
            ("str_key", "f f_out float"),
            ("str_key", "b b_out bool"),
            ("str_key", "z z_out int"),
        ],
        &[r#"{"i":" -42xyz","u":"-1","h":"0x1f","f":"3.25e2","b":"TRUE!","z":"0"}"#],
    );
    assert_eq!(
        out,
        [
            r#"{"i":" -42xyz","u":"-1","h":"0x1f","f":"3.25e2","b":"TRUE!","z":"0","i_out":-42,"u_out":18446744073709551615,"h_out":31,"f_out":325.0,"b_out":true,"z_out":0}"#
        ]
    );
}

#[test]
fn number_conversions() {
    let out = filter(
        &PLUGIN,
        &[
            ("int_key", "n n_str string"),
            ("int_key", "n n_float float"),
            ("int_key", "neg neg_uint uint"),
            ("uint_key", "neg neg_ustr str"),
            ("uint_key", "n n_int int"),
            ("float_key", "f f_str string"),
            ("float_key", "g g_str string"),
            ("float_key", "f f_int int"),
            ("float_key", "f f_uint uint"),
            ("float_key", "nf nf_uint uint"),
        ],
        &[r#"{"n":42,"neg":-1,"f":3.0,"g":0.1,"nf":-2.5}"#],
    );
    assert_eq!(
        out,
        [
            r#"{"n":42,"neg":-1,"f":3.0,"g":0.1,"nf":-2.5,"n_str":"42","n_float":42.0,"neg_uint":18446744073709551615,"neg_ustr":"18446744073709551615","n_int":42,"f_str":"3.0","g_str":"0.1","f_int":3,"f_uint":3,"nf_uint":0}"#
        ]
    );
}

#[test]
fn str_keys_run_first_and_accessors_reach_nested_values() {
    let out = filter(
        &PLUGIN,
        &[
            ("int_key", "n a string"),
            ("str_key", "$k['v'] b int"),
            ("str_key", "$k['missing'] c int"),
        ],
        &[r#"{"n":1,"k":{"v":"7"}}"#],
    );
    assert_eq!(out, [r#"{"n":1,"k":{"v":"7"},"b":7,"a":"1"}"#]);
}

#[test]
fn failed_conversions_copy_the_original_value() {
    let kv = [("str_key", "s s_int int"), ("int_key", "n n_str string")];
    // One conversion worked: the failed one's copy is kept, as Fluent Bit does.
    let out = filter(&PLUGIN, &kv, &[r#"{"s":"abc","n":5}"#]);
    assert_eq!(out, [r#"{"s":"abc","n":5,"s_int":"abc","n_str":"5"}"#]);
    // None worked (wrong types): the record goes on as it came.
    let ev = event(r#"{"s":5,"n":"x"}"#);
    let f = build(&PLUGIN, &kv).unwrap();
    let mut st = stage(vec![f]);
    let (out, n) = st.run("t", "i", &ev, 1);
    assert_eq!(json_lines(&out), [r#"{"s":5,"n":"x"}"#]);
    assert_eq!(n, 1);
    // Missing keys, empty records.
    let out = filter(&PLUGIN, &kv, &["{}", r#"{"other":1}"#]);
    assert_eq!(out, ["{}", r#"{"other":1}"#]);
}

#[test]
fn bin_values_and_duplicates() {
    // A bin value is not a string source; the last duplicate is the one read.
    let ev = Map::new()
        .raw(b"s", &bin(b"12"))
        .s("d", b"1")
        .s("d", b"2")
        .event();
    let f = build(&PLUGIN, &[("str_key", "s s2 int"), ("str_key", "d d2 int")]).unwrap();
    assert_eq!(
        run_events(vec![f], &ev, 1),
        [r#"{"s":"12","d":"2","s2":"12","d2":2}"#]
    );
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:1: [filter type_converter.0] no rules"]
    );
    let e = build_errors(&PLUGIN, &[("int_key", "a b")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:2: [filter type_converter.0] invalid record parameters 'a b', expects 'from_key to_key type'"]
    );
    let e = build_errors(&PLUGIN, &[("str_key", "a b c"), ("int_key", "a b nope")]);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("/etc/kb/filter.conf:2:") && e[0].contains("unknown type 'c'"));
    assert!(e[1].starts_with("/etc/kb/filter.conf:3:") && e[1].contains("unknown type 'nope'"));
    let e = build_errors(&PLUGIN, &[("int_key", "a b int")]);
    assert!(
        e[0].contains("int_key cannot convert a int value to int"),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("str_key", "a b string")]);
    assert!(
        e[0].contains("cannot convert a string value to string"),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("str_key", "$a[ b int")]);
    assert!(e[0].contains("invalid record accessor"), "{e:?}");
}
