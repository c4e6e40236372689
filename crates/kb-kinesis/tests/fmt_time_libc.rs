//! `time_key_format` against the C library: every glibc conversion, with random flags, widths
//! and `E`/`O` modifiers, and random unknown conversions, must give exactly what glibc's
//! `strftime` gives for `gmtime` in the C locale (spec §2.3: "glibc's conversion set").
//! Fluent Bit's own `%3N`/`%9N`/`%L` are not glibc's and are tested in `fmt_time.rs`.

use kb_core::event::EventTime;
use kb_kinesis::time_format::{TimeCache, TimeFormat};
use proptest::prelude::*;
use std::ffi::CString;

/// glibc's `strftime` on `gmtime_r(secs)`.
fn libc_strftime(fmt: &str, secs: u32) -> Option<Vec<u8>> {
    let cfmt = CString::new(fmt).ok()?;
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: plain C calls on local, properly sized buffers.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&t, &mut tm).is_null() {
            return None;
        }
        let mut buf = vec![0u8; 8192];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm);
        buf.truncate(n);
        Some(buf)
    }
}

fn ours(fmt: &str, secs: u32) -> Vec<u8> {
    let (tf, _) = TimeFormat::compile(fmt);
    let mut out = Vec::new();
    tf.write(EventTime::new(secs, 0), &mut out).unwrap();
    // The per-second cache gives the same text, also when shared between formats.
    CACHE.with(|c| {
        let mut cached = Vec::new();
        let cache = &mut c.borrow_mut();
        tf.write_cached(EventTime::new(secs, 0), cache, &mut cached)
            .unwrap();
        assert_eq!(cached, out, "write_cached");
    });
    out
}

thread_local! {
    static CACHE: std::cell::RefCell<TimeCache> = std::cell::RefCell::new(TimeCache::default());
}

extern "C" {
    fn tzset();
}

/// `%s` makes glibc call `mktime`, which reads the local zone: pin it to UTC for this process.
fn utc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: done once, before any test of this binary formats a time.
        unsafe {
            libc::setenv(c"TZ".as_ptr(), c"UTC0".as_ptr(), 1);
            tzset();
        }
    });
}

const CONVERSIONS: &[u8] = b"aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";

fn piece() -> impl Strategy<Value = String> {
    let conv = (
        proptest::collection::vec(prop::sample::select(b"_-0^#".to_vec()), 0..3),
        prop::option::of(0u32..40),
        prop::sample::select(vec!["", "", "", "E", "O"]),
        prop_oneof![
            8 => prop::sample::select(CONVERSIONS.to_vec()),
            1 => (0x21u8..0x7f).prop_filter("not L or a digit", |c| *c != b'L' && !c.is_ascii_digit()),
        ],
    )
        .prop_map(|(flags, width, modifier, c)| {
            let mut s = String::from("%");
            s.extend(flags.iter().map(|&f| f as char));
            if let Some(w) = width {
                s.push_str(&w.to_string());
            }
            s.push_str(modifier);
            s.push(c as char);
            // Fluent Bit's %3N/%9N/%L are handled before strftime: keep them out here.
            s.replace("%3N", "%3n").replace("%9N", "%9n")
        });
    prop_oneof![
        6 => conv,
        2 => "[ -~&&[^%]]{0,4}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn fmt_time_matches_glibc(pieces in proptest::collection::vec(piece(), 1..6), secs in any::<u32>()) {
        utc();
        let fmt: String = pieces.concat();
        let expected = libc_strftime(&fmt, secs).unwrap();
        // strftime returns 0 both for "" and for overflow; our widths stay far below the buffer.
        let got = ours(&fmt, secs);
        prop_assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "format {:?} at {}", fmt, secs
        );
    }
}

#[test]
fn fmt_time_every_conversion_over_calendar_edges() {
    utc();
    // Year ends/starts (ISO weeks), leap days, noon/midnight, the u32 range ends.
    let mut times: Vec<u32> = vec![0, 1, 43_199, 43_200, 951_782_400, 1_700_000_000, u32::MAX];
    for year in [
        1970i64, 1971, 1972, 1999, 2000, 2004, 2020, 2021, 2027, 2100, 2105,
    ] {
        let jan1 = (year - 1970) * 365 + ((year - 1969) / 4) - ((year - 1901) / 100)
            + ((year - 1601) / 400);
        for d in -4..=4 {
            let t = (jan1 + d) * 86_400 + 12 * 3600;
            if (0..=u32::MAX as i64).contains(&t) {
                times.push(t as u32);
            }
        }
    }
    for &t in &times {
        for &c in CONVERSIONS {
            let fmt = format!(
                "%{}|%_5{}|%-{}|%^{}|%#{}",
                c as char, c as char, c as char, c as char, c as char
            );
            assert_eq!(
                String::from_utf8_lossy(&ours(&fmt, t)),
                String::from_utf8_lossy(&libc_strftime(&fmt, t).unwrap()),
                "format {fmt:?} at {t}"
            );
        }
    }
}
