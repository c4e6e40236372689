//! `nest` against Fluent Bit's documentation examples and its edge cases.

mod common;

use common::*;
use kb_filters::nest::PLUGIN;

fn f(kv: &[(&str, &str)]) -> Box<dyn kb_core::filter::Filter> {
    build(&PLUGIN, kv).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn doc_example_usage_nest_and_lift() {
    let out = filter(
        &PLUGIN,
        &[
            ("Operation", "nest"),
            ("Wildcard", "Key*"),
            ("Nest_under", "NestKey"),
        ],
        &[r#"{"Key1":"Value1","Key2":"Value2","OtherKey":"Value3"}"#],
    );
    assert_eq!(
        out,
        [r#"{"OtherKey":"Value3","NestKey":{"Key1":"Value1","Key2":"Value2"}}"#]
    );
    // Fluent Bit appends the lifted keys after the others (the documentation's illustration
    // shows them first).
    let out = filter(
        &PLUGIN,
        &[("Operation", "lift"), ("Nested_under", "NestKey")],
        &[r#"{"OtherKey":"Value3","NestKey":{"Key1":"Value1","Key2":"Value2"}}"#],
    );
    assert_eq!(
        out,
        [r#"{"OtherKey":"Value3","Key1":"Value1","Key2":"Value2"}"#]
    );
}

#[test]
fn doc_example_1_nest() {
    let out = filter(
        &PLUGIN,
        &[
            ("Operation", "nest"),
            ("Wildcard", "Mem.*"),
            ("Nest_under", "Memstats"),
            ("Remove_prefix", "Mem."),
        ],
        &[
            r#"{"Mem.total":4050908,"Mem.used":714984,"Mem.free":3335924,"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524}"#,
        ],
    );
    assert_eq!(
        out,
        [
            r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"Memstats":{"total":4050908,"used":714984,"free":3335924}}"#
        ]
    );
}

#[test]
fn doc_example_2_nest_and_lift_undo() {
    let rec = r#"{"Mem.total":8053656,"Mem.used":6940380,"Mem.free":1113276,"Swap.total":16532988,"Swap.used":1286772,"Swap.free":15246216}"#;
    let nest = f(&[
        ("Operation", "nest"),
        ("Wildcard", "Mem.*"),
        ("Wildcard", "Swap.*"),
        ("Nest_under", "Stats"),
        ("Add_prefix", "NESTED"),
    ]);
    let out = run(vec![nest], &[rec]);
    assert_eq!(
        out,
        [
            r#"{"Stats":{"NESTEDMem.total":8053656,"NESTEDMem.used":6940380,"NESTEDMem.free":1113276,"NESTEDSwap.total":16532988,"NESTEDSwap.used":1286772,"NESTEDSwap.free":15246216}}"#
        ]
    );
    let nest = f(&[
        ("Operation", "nest"),
        ("Wildcard", "Mem.*"),
        ("Wildcard", "Swap.*"),
        ("Nest_under", "Stats"),
        ("Add_prefix", "NESTED"),
    ]);
    let lift = f(&[
        ("Operation", "lift"),
        ("Nested_under", "Stats"),
        ("Remove_prefix", "NESTED"),
    ]);
    assert_eq!(run(vec![nest, lift], &[rec]), [compact(rec)]);
}

fn three_levels() -> Vec<Box<dyn kb_core::filter::Filter>> {
    vec![
        f(&[
            ("Operation", "nest"),
            ("Wildcard", "Mem.*"),
            ("Nest_under", "LAYER1"),
        ]),
        f(&[
            ("Operation", "nest"),
            ("Wildcard", "LAYER1*"),
            ("Nest_under", "LAYER2"),
        ]),
        f(&[
            ("Operation", "nest"),
            ("Wildcard", "LAYER2*"),
            ("Nest_under", "LAYER3"),
        ]),
    ]
}

const MEM: &str = r#"{"Mem.total":4050908,"Mem.used":1112036,"Mem.free":2938872,"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524}"#;

#[test]
fn doc_example_3_nest_three_levels_deep() {
    assert_eq!(
        run(three_levels(), &[MEM]),
        [
            r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"LAYER3":{"LAYER2":{"LAYER1":{"Mem.total":4050908,"Mem.used":1112036,"Mem.free":2938872}}}}"#
        ]
    );
}

#[test]
fn doc_example_4_multiple_nest_and_lift_with_prefix() {
    let mut filters = three_levels();
    filters.push(f(&[
        ("Operation", "lift"),
        ("Nested_under", "LAYER3"),
        ("Add_prefix", "Lifted3_"),
    ]));
    filters.push(f(&[
        ("Operation", "lift"),
        ("Nested_under", "Lifted3_LAYER2"),
        ("Add_prefix", "Lifted3_Lifted2_"),
    ]));
    filters.push(f(&[
        ("Operation", "lift"),
        ("Nested_under", "Lifted3_Lifted2_LAYER1"),
        ("Add_prefix", "Lifted3_Lifted2_Lifted1_"),
    ]));
    assert_eq!(
        run(filters, &[MEM]),
        [
            r#"{"Swap.total":1046524,"Swap.used":0,"Swap.free":1046524,"Lifted3_Lifted2_Lifted1_Mem.total":4050908,"Lifted3_Lifted2_Lifted1_Mem.used":1112036,"Lifted3_Lifted2_Lifted1_Mem.free":2938872}"#
        ]
    );
}

#[test]
fn exact_wildcards_existing_keys_and_no_match() {
    let n = |kv: &[(&str, &str)], r: &str| filter(&PLUGIN, kv, &[r]).remove(0);
    let r = r#"{"a":1,"ab":2,"n":"old"}"#;
    assert_eq!(
        n(
            &[
                ("Operation", "nest"),
                ("Wildcard", "a"),
                ("Nest_under", "n")
            ],
            r
        ),
        r#"{"ab":2,"n":"old","n":{"a":1}}"#.replace(r#""n":"old","#, ""),
        "the JSON keeps the last of the two n keys"
    );
    assert_eq!(
        n(
            &[
                ("Operation", "nest"),
                ("Wildcard", "zz*"),
                ("Nest_under", "x")
            ],
            r
        ),
        compact(r)
    );
    // A key to lift whose value is not a map stays.
    assert_eq!(
        n(&[("Operation", "lift"), ("Nested_under", "n")], r),
        compact(r)
    );
    // Remove_prefix only touches keys that have it.
    assert_eq!(
        n(
            &[
                ("Operation", "lift"),
                ("Nested_under", "m"),
                ("Remove_prefix", "p_")
            ],
            r#"{"m":{"p_a":1,"b":2},"c":3}"#
        ),
        r#"{"c":3,"a":1,"b":2}"#
    );
    // Both key names serve both operations; the last wins.
    assert_eq!(
        n(
            &[("Operation", "lift"), ("Nest_under", "m")],
            r#"{"m":{"x":1}}"#
        ),
        r#"{"x":1}"#
    );
}

#[test]
fn duplicate_maps_are_all_lifted_and_other_keys_kept() {
    let ev = Map::new()
        .j("m", r#"{"a":1}"#)
        .raw_kv(&[0x07], &[0x08])
        .j("m", r#"{"b":2}"#)
        .raw_kv(&bin(b"k"), &[0x09])
        .event();
    let lift = f(&[
        ("Operation", "lift"),
        ("Nested_under", "m"),
        ("Add_prefix", "x."),
    ]);
    assert_eq!(
        run_events(vec![lift], &ev, 1),
        [r#"{"7":8,"k":9,"x.a":1,"x.b":2}"#]
    );
    let nest = f(&[
        ("Operation", "nest"),
        ("Wildcard", "k"),
        ("Nest_under", "n"),
        ("Add_prefix", "p_"),
    ]);
    assert_eq!(
        run_events(vec![nest], &ev, 1),
        [r#"{"7":8,"m":{"b":2},"n":{"p_k":9}}"#]
    );
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[("Wildcard", "a*"), ("Nest_under", "x")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:1: [filter nest.0] Operation can only be NEST or LIFT"]
    );
    let e = build_errors(&PLUGIN, &[("Operation", "flatten")]);
    assert!(e[0].contains("expected one of: nest, lift"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Operation", "nest"), ("Wildcard", "a*")]);
    assert!(e[0].contains("'nest_under' is required"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Operation", "lift")]);
    assert!(e[0].contains("'nested_under' is required"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Operation", "nest"), ("Nest_under", "x")]);
    assert!(e[0].contains("'wildcard' is required"), "{e:?}");
    let e = build_errors(
        &PLUGIN,
        &[
            ("Operation", "lift"),
            ("Nested_under", "x"),
            ("Add_prefix", "a"),
            ("Remove_prefix", "b"),
        ],
    );
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:5: [filter nest.0] Add_prefix and Remove_prefix are exclusive"]
    );
}
