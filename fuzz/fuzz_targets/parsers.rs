//! `Parser::parse` on arbitrary lines, one parser per format (first byte picks it). A
//! successful parse must append exactly one well-formed event; a failed one must leave the
//! writer untouched.
#![no_main]

use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_inputs::parsers::ParserRegistry;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

const PARSERS: &str = r#"
[PARSER]
    Name        json
    Format      json
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
    Time_Keep   on

[PARSER]
    Name        regex
    Format      regex
    Regex       ^(?<a>[^ ]*) (?<time>[^ \]]*)(?: (?<b>[^ ]*))?(?: (?<c>.*))?$
    Time_Key    time
    Time_Format %d/%b/%Y:%H:%M:%S %z
    Types       a:integer b:hex c:float

[PARSER]
    Name        logfmt
    Format      logfmt
    Time_Key    ts
    Time_Format %s.%L
    Types       n:float f:bool i:integer

[PARSER]
    Name        ltsv
    Format      ltsv
    Time_Key    time
    Time_Format %b %e %T
    Time_Strict off
    Types       n:integer h:hex
"#;

const NAMES: [&str; 4] = ["json", "regex", "logfmt", "ltsv"];

fn registry() -> &'static ParserRegistry {
    static REG: OnceLock<ParserRegistry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut env = Env::from_map(HashMap::new());
        let pc = parse_classic_str(PARSERS, Path::new("parsers.conf"), &mut env)
            .expect("fuzz parsers config");
        ParserRegistry::from_sections(&pc.parsers).expect("fuzz parser registry")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, line)) = data.split_first() else {
        return;
    };
    let parser = registry().get(NAMES[*first as usize % 4]).unwrap();
    let mut w = EventWriter::new();
    let now = EventTime::new(1_700_000_000, 0);
    match parser.parse(line, &mut w, now) {
        Ok(()) => {
            assert_eq!(w.count, 1);
            let events: Vec<_> = EventReader::new(&w.buf)
                .collect::<Result<_, _>>()
                .expect("parser wrote a malformed event");
            assert_eq!(events.len(), 1);
            let rec = events[0].record;
            assert!(
                matches!(rec.first(), Some(0x80..=0x8f | 0xde | 0xdf)),
                "the record is not a map"
            );
        }
        Err(_) => {
            assert_eq!(w.count, 0);
            assert!(w.buf.is_empty());
        }
    }
});
