//! `Parser::parse` never panics and either appends exactly one well-formed event or leaves
//! the writer untouched, whatever the bytes.

use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_parsers::ParserRegistry;
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

const PARSERS: &str = r#"
[PARSER]
    Name        json
    Format      json
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z

[PARSER]
    Name        regex
    Format      regex
    Regex       ^(?<a>[^ ]*) (?<time>[^ ]*)(?: (?<b>.*))?$
    Time_Format %d/%b/%Y:%H:%M:%S %z
    Types       a:integer b:hex

[PARSER]
    Name        logfmt
    Format      logfmt
    Time_Format %s.%L
    Types       n:float f:bool

[PARSER]
    Name        ltsv
    Format      ltsv
    Time_Format %b %e %T
    Time_Strict off
"#;

fn registry() -> &'static ParserRegistry {
    static REG: OnceLock<ParserRegistry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut env = Env::from_map(HashMap::new());
        let pc = parse_classic_str(PARSERS, Path::new("p.conf"), &mut env).unwrap();
        ParserRegistry::from_sections(&pc.parsers).unwrap()
    })
}

fn check(name: &str, line: &[u8]) {
    let mut w = EventWriter::new();
    let now = EventTime::new(1_700_000_000, 0);
    match registry().get(name).unwrap().parse(line, &mut w, now) {
        Ok(()) => {
            assert_eq!(w.count, 1);
            let events: Vec<_> = EventReader::new(&w.buf).collect::<Result<_, _>>().unwrap();
            assert_eq!(events.len(), 1);
            let mut rec = events[0].record;
            let v = rmpv::decode::read_value(&mut rec).unwrap();
            assert!(v.is_map());
            assert!(rec.is_empty());
        }
        Err(_) => {
            assert_eq!(w.count, 0);
            assert!(w.buf.is_empty());
        }
    }
}

/// Bytes biased towards each format's syntax.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let tokens = prop::sample::select(vec![
        &b"{"[..],
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\\",
        b"\\u",
        b"d83d",
        b":",
        b",",
        b"=",
        b" ",
        b"\t",
        b"\n",
        b"time",
        b"1",
        b"-",
        b".",
        b"e9",
        b"true",
        b"null",
        b"+0200",
        b"Oct",
        b"11/Oct/2003:22:14:15",
        b"\xff",
        b"\xc3\xa9",
        b"n",
        b"f",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(tokens, 0..60).prop_map(|t| t.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics(line in line()) {
        for name in ["json", "regex", "logfmt", "ltsv"] {
            check(name, &line);
        }
    }
}
