//! `Time_Format`, `Time_Offset`, `Time_Strict` and `Time_Keep`.

use kb_config::{parse_classic_str, Env};
use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_parsers::ParserRegistry;
use std::collections::HashMap;
use std::path::Path;

const NOW: EventTime = EventTime {
    secs: 1_795_824_000, // 2026-11-28T00:00:00Z
    nanos: 7,
};

/// Parse `value` as the `time` field of a regex parser with `Time_Format fmt` plus `extra`
/// lines; returns the event time and the number of record fields left.
fn time_with(fmt: &str, extra: &str, value: &str) -> (EventTime, usize) {
    let text = format!(
        "[PARSER]\n    Name p\n    Format regex\n    Regex ^(?<time>.*)$\n    Time_Format {fmt}\n{extra}"
    );
    let mut env = Env::from_map(HashMap::new());
    let pc = parse_classic_str(&text, Path::new("p.conf"), &mut env).unwrap();
    let reg = ParserRegistry::from_sections(&pc.parsers).unwrap();
    let mut w = EventWriter::new();
    reg.get("p")
        .unwrap()
        .parse(value.as_bytes(), &mut w, NOW)
        .unwrap();
    let ev = EventReader::new(&w.buf).next().unwrap().unwrap();
    let v = rmpv::decode::read_value(&mut &ev.record[..]).unwrap();
    (ev.time, v.as_map().unwrap().len())
}

fn time(fmt: &str, value: &str) -> EventTime {
    time_with(fmt, "", value).0
}

#[test]
fn common_conversions() {
    let t = EventTime::new(1_065_910_455, 0); // 2003-10-11T22:14:15Z
    assert_eq!(time("%Y-%m-%d %H:%M:%S", "2003-10-11 22:14:15"), t);
    assert_eq!(time("%FT%T", "2003-10-11T22:14:15"), t);
    assert_eq!(time("%y%m%d%H%M%S", "031011221415"), t);
    assert_eq!(time("%d/%b/%Y:%H:%M:%S", "11/Oct/2003:22:14:15"), t);
    assert_eq!(time("%B %e %Y %T", "october 11 2003 22:14:15"), t);
    assert_eq!(
        time("%a, %d %b %Y %T %Z", "Sat, 11 Oct 2003 22:14:15 GMT"),
        t
    );
    assert_eq!(time("%Y %j %T", "2003 284 22:14:15"), t);
    assert_eq!(time("%m/%d/%Y %I:%M:%S %p", "10/11/2003 10:14:15 PM"), t);
    assert_eq!(
        time("%D %R", "10/11/03 22:14"),
        EventTime::new(1_065_910_440, 0)
    );
    assert_eq!(time("%s", "1065910455"), t);
    assert_eq!(
        time("%s.%L", "1065910455.25"),
        EventTime::new(1_065_910_455, 250_000_000)
    );
    assert_eq!(time("%Y%%%m", "2003%10"), EventTime::new(1_064_966_400, 0));
    // Text after the format is ignored, as by Fluent Bit's strptime.
    assert_eq!(time("%Y-%m-%d %H:%M:%S", "2003-10-11 22:14:15 trailing"), t);
    // Whitespace in the format matches any run of blanks.
    assert_eq!(time("%Y-%m-%d %H:%M:%S", "2003-10-11     22:14:15"), t);
}

#[test]
fn zones_and_offsets() {
    let t = EventTime::new(1_065_910_455, 0);
    assert_eq!(time("%Y-%m-%dT%H:%M:%S%z", "2003-10-12T00:14:15+0200"), t);
    assert_eq!(time("%Y-%m-%dT%H:%M:%S%z", "2003-10-12T00:14:15+02:00"), t);
    assert_eq!(time("%Y-%m-%dT%H:%M:%S%z", "2003-10-11T19:44:15-02:30"), t);
    assert_eq!(time("%Y-%m-%dT%H:%M:%S%z", "2003-10-11T22:14:15Z"), t);
    assert_eq!(time("%Y-%m-%dT%H:%M:%S %z", "2003-10-11T17:14:15 -05"), t);
    // Time_Offset applies when the format has no zone...
    let (got, _) = time_with(
        "%Y-%m-%d %H:%M:%S",
        "    Time_Offset +0130\n",
        "2003-10-11 23:44:15",
    );
    assert_eq!(got, t);
    let (got, _) = time_with(
        "%Y-%m-%d %H:%M:%S",
        "    Time_Offset -0700\n",
        "2003-10-11 15:14:15",
    );
    assert_eq!(got, t);
    // ...and not when it has one.
    let (got, _) = time_with(
        "%Y-%m-%d %H:%M:%S %z",
        "    Time_Offset -0700\n",
        "2003-10-11 22:14:15 +0000",
    );
    assert_eq!(got, t);
    let (got, _) = time_with(
        "%Y-%m-%dT%H:%M:%SZ",
        "    Time_Offset -0700\n",
        "2003-10-11T22:14:15Z",
    );
    assert_eq!(got, t);
}

#[test]
fn fractional_seconds() {
    let base = 1_065_910_455;
    let f = "%Y-%m-%dT%H:%M:%S.%L%z";
    assert_eq!(
        time(f, "2003-10-11T22:14:15.1Z"),
        EventTime::new(base, 100_000_000)
    );
    assert_eq!(
        time(f, "2003-10-11T22:14:15.123456+00:00"),
        EventTime::new(base, 123_456_000)
    );
    assert_eq!(
        time(f, "2003-10-11T22:14:15.123456789-01:00"),
        EventTime::new(base + 3600, 123_456_789)
    );
    // At most nine digits are read; the next conversion must then match.
    let (got, fields) = time_with(f, "", "2003-10-11T22:14:15.1234567891Z");
    assert_eq!((got, fields), (NOW, 0));
    assert_eq!(
        time("%Y-%m-%dT%H:%M:%S.%L", "2003-10-11T22:14:15.000000001"),
        EventTime::new(base, 1)
    );
}

#[test]
fn missing_year_uses_now() {
    // NOW is 2026-11-28.
    assert_eq!(
        time("%b %d %H:%M:%S", "Jan 02 03:04:05"),
        EventTime::new(1_767_323_045, 0)
    );
    // Only a time of day: today's date.
    assert_eq!(
        time("%H:%M:%S", "01:00:00"),
        EventTime::new(1_795_824_000 + 3600, 0)
    );
}

#[test]
fn failures_and_time_strict() {
    // Strict (default): no match keeps the current time; the regex parser drops the field.
    assert_eq!(time_with("%Y-%m-%d", "", "2003/10/11"), (NOW, 0));
    assert_eq!(time_with("%Y-%m-%d", "", "2003-13-11"), (NOW, 0));
    assert_eq!(time_with("%Y-%m-%d %H", "", "2003-10-11 24"), (NOW, 0));
    assert_eq!(time_with("%s", "", "-5"), (NOW, 0));
    assert_eq!(time_with("%Y", "", "2200"), (NOW, 0));
    assert_eq!(time_with("%Y-%m-%d %Z", "", "2003-10-11 CEST"), (NOW, 0));
    // Time_Strict off: the fields read before the mismatch are used.
    let (got, fields) = time_with("%Y-%m-%d %H:%M", "    Time_Strict off\n", "2003-10-11 x");
    assert_eq!(got, EventTime::new(1_065_830_400, 0));
    assert_eq!(fields, 0);
    // Time_Keep on keeps the field.
    let (got, fields) = time_with("%Y", "    Time_Keep on\n", "2003");
    assert_eq!((got, fields), (EventTime::new(1_041_379_200, 0), 1));
}
