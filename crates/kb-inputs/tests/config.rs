//! Key tables and factory validation.

mod common;

use common::{build, build_errors, props};
use kb_config::KeyType;
use kb_inputs::{cpu, dummy, plugins, stdin};

#[test]
fn registry_lists_the_three_inputs() {
    let names: Vec<&str> = plugins().iter().map(|p| p.spec.name).collect();
    assert_eq!(
        names,
        ["dummy", "cpu", "stdin", "forward", "tail", "tcp", "http", "exec", "systemd"]
    );
}

#[test]
fn key_tables_are_well_formed_and_defaults_validate() {
    for p in plugins() {
        for k in p.spec.keys {
            assert_eq!(k.name, k.name.to_ascii_lowercase(), "{}", k.name);
            assert!(!k.description.is_empty() && !k.description.contains('\n'));
            assert!(!matches!(
                k.name,
                "name" | "tag" | "alias" | "mem_buf_limit"
            ));
            if let Some(d) = k.default {
                // Setting a key to its own default is valid and builds (with the required keys).
                let mut kv = required(&p);
                kv.push((k.name, d));
                assert!(props(&p, &kv).is_ok(), "{} {}", k.name, d);
                assert!(build(&p, &kv).is_ok(), "{} {}", k.name, d);
            }
        }
        assert!(
            build(&p, &required(&p)).is_ok(),
            "{} builds with defaults",
            p.spec.name
        );
    }
    let dummy_keys: Vec<&str> = dummy::PLUGIN.spec.keys.iter().map(|k| k.name).collect();
    assert_eq!(
        dummy_keys,
        [
            "samples",
            "dummy",
            "metadata",
            "rate",
            "interval_sec",
            "interval_nsec",
            "copies",
            "start_time_sec",
            "start_time_nsec",
            "fixed_timestamp",
            "flush_on_startup"
        ]
    );
    let buffer = &stdin::PLUGIN.spec.keys[0];
    assert_eq!(
        (buffer.name, buffer.ty, buffer.default),
        ("buffer_size", KeyType::Size, Some("16k"))
    );
    assert_eq!(cpu::PLUGIN.spec.keys.len(), 3);
}

#[test]
fn bad_dummy_json_names_key_and_location() {
    let e = build_errors(&dummy::PLUGIN, &[("tag", "t"), ("Dummy", "{\"a\": ")]);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/etc/kb/test.conf:3: [input dummy.0] 'dummy' is not valid JSON"),
        "{}",
        e[0]
    );
    let e = build_errors(&dummy::PLUGIN, &[("dummy", "[1, 2]")]);
    assert_eq!(
        e,
        ["/etc/kb/test.conf:2: [input dummy.0] 'dummy' must be a JSON object, got '[1, 2]'"]
    );
    let e = build_errors(&dummy::PLUGIN, &[("metadata", "\"x\"")]);
    assert!(
        e[0].contains("'metadata' must be a JSON object"),
        "{}",
        e[0]
    );
}

#[test]
fn every_dummy_error_is_reported() {
    let e = build_errors(
        &dummy::PLUGIN,
        &[
            ("dummy", "nope"),
            ("metadata", "{}"),
            ("copies", "0"),
            ("rate", "2000000000"),
            ("start_time_nsec", "5"),
        ],
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e
        .iter()
        .any(|m| m.starts_with("/etc/kb/test.conf:2:") && m.contains("'dummy'")));
    assert!(e
        .iter()
        .any(|m| m == "/etc/kb/test.conf:4: [input dummy.0] 'copies' must be at least 1"));
    assert!(e
        .iter()
        .any(|m| m.starts_with("/etc/kb/test.conf:5:") && m.contains("'rate'")));
    let e = build_errors(&dummy::PLUGIN, &[("start_time_sec", "soon")]);
    assert_eq!(
        e,
        ["/etc/kb/test.conf:2: [input dummy.0] invalid value 'soon' for property 'start_time_sec': expected an integer"]
    );
    let e = build_errors(&dummy::PLUGIN, &[("start_time_sec", "99999999999")]);
    assert!(e[0].contains("start time must be at most"), "{}", e[0]);
}

#[test]
fn dummy_periods() {
    let period = |kv: &[(&str, &str)]| {
        dummy::DummyInput::from_props(&props(&dummy::PLUGIN, kv).unwrap())
            .unwrap()
            .period()
    };
    use std::time::Duration;
    assert_eq!(period(&[]), Duration::from_secs(1));
    assert_eq!(period(&[("rate", "0")]), Duration::from_secs(1));
    assert_eq!(period(&[("rate", "3")]), Duration::from_nanos(333_333_333));
    assert_eq!(
        period(&[("rate", "3"), ("interval_nsec", "5")]),
        Duration::from_nanos(5)
    );
    assert_eq!(
        period(&[("interval_sec", "1"), ("interval_nsec", "1500000000")]),
        Duration::from_millis(2_500)
    );
}

/// The keys a plugin cannot start without.
fn required(p: &kb_core::registry::InputPlugin) -> Vec<(&'static str, &'static str)> {
    match p.spec.name {
        "tail" => vec![("path", "/nonexistent/kb-test/*.log")],
        "exec" => vec![("command", "true")],
        _ => vec![],
    }
}
