//! The built-in multiline parsers, with the rules of Fluent Bit's
//! `src/multiline/flb_ml_parser_{docker,cri,java,go,ruby,python}.c`.
//!
//! * `docker`: each line is Docker's JSON (`{"log": …, "stream": …, "time": …}`, parsed with
//!   `time` kept); a `log` that does not end with `\n` goes on in the next line of the same
//!   `stream` (type `endswith "\n"`, `key_content log`, `key_group stream`).
//! * `cri`: `<time> <stream> <P|F> <log>`; `P` parts go on until an `F` line of the same
//!   stream (type `equal "F"` on `key_pattern _p`, `key_content log`, `key_group stream`).
//! * `java`, `go`, `python`, `ruby`: regex rules for stack traces, on the raw line (or the
//!   record's `key_content`, which the multiline filter sets).

use std::sync::Arc;

use super::{MlParser, MlType};
use crate::Parser;

/// Names of the built-ins.
pub const NAMES: &[&str] = &["docker", "cri", "java", "go", "ruby", "python"];

/// Every built-in, in Fluent Bit's order.
pub fn all() -> Vec<MlParser> {
    vec![docker(), cri(), java(), go(), ruby(), python()]
}

fn with_rules(name: &str, rules: &[(&str, &str, &str)]) -> MlParser {
    let mut p = MlParser::new(name, MlType::Regex);
    for (i, (from, regex, to)) in rules.iter().enumerate() {
        p.add_rule(i == 0, from, regex, Some(to))
            .unwrap_or_else(|e| panic!("built-in multiline parser {name}: {e}"));
    }
    p.init()
        .unwrap_or_else(|(_, e)| panic!("built-in multiline parser {name}: {e}"));
    p
}

/// `docker`.
pub fn docker() -> MlParser {
    let mut p = MlParser::new("docker", MlType::EndsWith);
    p.match_str = b"\n".to_vec();
    p.key_content = Some("log".into());
    p.key_group = Some("stream".into());
    p.parser = Some(Arc::new(Parser::docker_json()));
    p
}

/// `cri`.
pub fn cri() -> MlParser {
    let mut p = MlParser::new("cri", MlType::Equal);
    p.match_str = b"F".to_vec();
    p.key_content = Some("log".into());
    p.key_group = Some("stream".into());
    p.key_pattern = Some("_p".into());
    p.parser = Some(Arc::new(Parser::cri()));
    p
}

/// `java` (Google Cloud's Java stack traces, C# traces too).
pub fn java() -> MlParser {
    with_rules(
        "java",
        &[
            (
                "start_state, java_start_exception",
                r"/(.)(?:Exception|Error|Throwable|V8 errors stack trace)[:\r\n]/",
                "java_after_exception",
            ),
            (
                "java_after_exception",
                r"/^[\t ]*nested exception is:[\t ]*/",
                "java_start_exception",
            ),
            (
                "java_after_exception",
                r"/^[\r\n]*$/",
                "java_after_exception",
            ),
            (
                "java_after_exception, java",
                r"/^[\t ]+(?:eval )?at /",
                "java",
            ),
            (
                "java_after_exception, java",
                r"/^[\t ]+--- End of inner exception stack trace ---$/",
                "java",
            ),
            (
                "java_after_exception, java",
                // Fluent Bit's C source splits this literal in two around `(?x:`; the
                // pattern is the concatenation.
                r"/^--- End of stack trace from previous (?x:)location where exception was thrown ---$/",
                "java",
            ),
            (
                "java_after_exception, java",
                r"/^[\t ]*(?:Caused by|Suppressed):/",
                "java_after_exception",
            ),
            (
                "java_after_exception, java",
                r"/^[\t ]*... \d+ (?:more|common frames omitted)/",
                "java",
            ),
        ],
    )
}

/// `go` (panics and goroutine dumps).
pub fn go() -> MlParser {
    with_rules(
        "go",
        &[
            ("start_state", r"/\bpanic: /", "go_after_panic"),
            ("start_state", r"/http: panic serving/", "go_goroutine"),
            ("start_state", r"/\bfatal error: /", "go_after_panic"),
            ("go_after_panic", r"/^$/", "go_goroutine"),
            (
                "go_after_panic, go_after_signal, go_frame_1",
                r"/^$/",
                "go_goroutine",
            ),
            ("go_after_panic", r"/^\[signal /", "go_after_signal"),
            (
                "go_goroutine",
                r"/^goroutine \d+ \[[^\]]+\]:$/",
                "go_frame_1",
            ),
            (
                "go_frame_1",
                r"/^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by /",
                "go_frame_2",
            ),
            ("go_frame_2", r"/^\s/", "go_frame_1"),
        ],
    )
}

/// `ruby`.
pub fn ruby() -> MlParser {
    with_rules(
        "ruby",
        &[
            (
                "start_state, ruby_start_exception",
                r"/^.+:\d+:in\s+.*/",
                "ruby_after_exception",
            ),
            (
                "ruby_after_exception, ruby",
                r"/^\s+from\s+.*:\d+:in\s+.*/",
                "ruby",
            ),
        ],
    )
}

/// `python` (tracebacks).
pub fn python() -> MlParser {
    with_rules(
        "python",
        &[
            (
                "start_state",
                r"/^Traceback \(most recent call last\):$/",
                "python",
            ),
            ("python", r"/^[\t ]+File /", "python_code"),
            ("python_code", r"/[^\t ]/", "python"),
            ("python", r"/^(?:[^\s.():]+\.)*[^\s.():]+:/", "start_state"),
        ],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_compiles() {
        let all = super::all();
        assert_eq!(all.len(), super::NAMES.len());
        for (p, n) in all.iter().zip(super::NAMES) {
            assert_eq!(p.name(), *n);
        }
    }
}
