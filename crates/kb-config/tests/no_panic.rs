//! The parsers must never panic, whatever the input.

mod common;

use std::path::Path;

use common::env;
use kb_config::{parse_classic_str, parse_command_line, parse_yaml_str};
use proptest::prelude::*;

/// Characters that matter to the two formats, so generated text hits their syntax often.
const CONFIG_CHARS: &str = "[\\[\\]@#$:{}()*&!|>'\",=.\\-_ \t\r\naAzZ0-9]{0,300}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn classic_never_panics(text in any::<String>(), shaped in CONFIG_CHARS) {
        for t in [&text, &shaped] {
            let _ = parse_classic_str(t, Path::new("/nonexistent/p.conf"), &mut env(&[]));
        }
    }

    #[test]
    fn yaml_never_panics(text in any::<String>(), shaped in CONFIG_CHARS) {
        for t in [&text, &shaped] {
            let _ = parse_yaml_str(t, Path::new("/nonexistent/p.yaml"), &mut env(&[]));
        }
    }

    #[test]
    fn command_line_never_panics(a in proptest::collection::vec("-?-?[a-zA-Z=*]{0,8}", 0..8)) {
        let _ = parse_command_line(
            std::iter::once("kb".to_string()).chain(a).map(std::ffi::OsString::from),
        );
    }
}

#[test]
fn yaml_structured_inputs_never_panic() {
    // Line-structured YAML fragments stress indentation handling more than random text.
    let pieces = [
        "pipeline:",
        "  inputs:",
        "    - name: x",
        "      tag: [",
        "  outputs: {",
        "- ",
        "env:",
        "  - name:",
        "    uri: file://",
        "includes:",
        "  - ''",
        "\t",
        "? a",
        ": b",
        "&a",
        "*a",
        "|",
        ">-",
        "---",
        "...",
        "%YAML 1.2",
        "!!str x",
        "\"\\u12",
        "'",
        "#",
    ];
    let mut seed = 7u64;
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(seed % 12) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            text.push(if seed & 1 == 0 { '\n' } else { ' ' });
        }
        seed = seed.wrapping_add(1);
        let _ = parse_yaml_str(&text, Path::new("/nonexistent/p.yaml"), &mut env(&[]));
        let _ = parse_classic_str(&text, Path::new("/nonexistent/p.conf"), &mut env(&[]));
    }
}

#[test]
fn very_deep_yaml_nesting_is_an_error_not_a_crash() {
    for open in ["[", "{a: ", "- "] {
        let text = open.repeat(100_000);
        let r = parse_yaml_str(&text, Path::new("d.yaml"), &mut env(&[]));
        assert!(r.is_err());
    }
}
