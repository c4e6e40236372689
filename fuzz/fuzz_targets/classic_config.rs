//! `parse_classic_str` on arbitrary (lossy UTF-8) text. The file path lives in an empty
//! temporary directory so relative `@INCLUDE`s find nothing. Inputs that `@INCLUDE` a path
//! with a separator are skipped: `@INCLUDE /dev/zero` or `/dev/stdin` would hang the harness
//! on a file read, not exercise the parser.
#![no_main]

use kb_config::{parse_classic_str, Env};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn conf_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kb-fuzz-classic-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join("fluent-bit.conf")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.to_ascii_lowercase().contains("@include") && text.contains(['/', '\\']) {
        return;
    }
    let mut env = Env::from_map(HashMap::from([
        ("HOME".to_string(), "/nonexistent".to_string()),
        ("TAG".to_string(), "app.*".to_string()),
    ]));
    let _ = parse_classic_str(&text, conf_path(), &mut env);
});
