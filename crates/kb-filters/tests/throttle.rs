//! `throttle` against Fluent Bit's documented sliding window, on a test clock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kb_filters::throttle::{Throttle, PLUGIN};

struct Clocked {
    millis: Arc<AtomicU64>,
    stage: kb_core::filter::Standalone,
}

impl Clocked {
    fn new(kv: &[(&str, &str)]) -> Clocked {
        let millis = Arc::new(AtomicU64::new(0));
        let m = millis.clone();
        let p = props(&PLUGIN, kv).unwrap();
        let t = Throttle::from_props(
            &p,
            Arc::new(move || Duration::from_millis(m.load(Ordering::Relaxed))),
        )
        .unwrap();
        Clocked {
            millis,
            stage: stage(vec![Box::new(t)]),
        }
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        self.millis.store(ms, Ordering::Relaxed);
        self
    }

    /// Send `n` records; how many pass.
    fn send(&mut self, n: usize) -> usize {
        let mut events = Vec::new();
        for i in 0..n {
            events.extend_from_slice(&event(&format!(r#"{{"seq":{i}}}"#)));
        }
        self.stage.run("t", "i", &events, n).1
    }
}

#[test]
fn doc_functional_description() {
    // Rate 5, Window 5, Interval 1s; arrivals per interval 1, 3, 5, 7, 3, 4, 7: the first six
    // intervals pass everything (slow start, then an average of 4.4), the seventh would make
    // the average 5.2 and loses one record (its pane becomes 6, the average 5).
    let mut c = Clocked::new(&[("Rate", "5"), ("Window", "5"), ("Interval", "1s")]);
    let passed: Vec<usize> = [1, 3, 5, 7, 3, 4, 7]
        .iter()
        .enumerate()
        .map(|(i, &n)| c.at(i as u64 * 1000 + 500).send(n))
        .collect();
    assert_eq!(passed, [1, 3, 5, 7, 3, 4, 6]);
}

#[test]
fn a_flood_passes_rate_per_interval() {
    let mut c = Clocked::new(&[("Rate", "5"), ("Window", "5"), ("Interval", "1s")]);
    // Slow start: Rate in the first interval (Fluent Bit lets Rate × Window through).
    assert_eq!(c.at(0).send(100), 5);
    assert_eq!(c.at(999).send(100), 0);
    for i in 1..20 {
        assert_eq!(c.at(i * 1000).send(100), 5, "interval {i}");
    }
    // A quiet period empties the window.
    assert_eq!(c.at(60_000).send(100), 25);
}

#[test]
fn intervals_and_windows() {
    // Rate 60 per minute: all 60 in the first second, then nothing for the minute.
    let mut c = Clocked::new(&[("Rate", "60"), ("Window", "5"), ("Interval", "1m")]);
    assert_eq!(c.at(0).send(100), 60);
    assert_eq!(c.at(30_000).send(10), 0);
    assert_eq!(c.at(60_000).send(100), 60);
    // Rate 1 over 300 one-second panes: one per second.
    let mut c = Clocked::new(&[("Rate", "1"), ("Window", "300"), ("Interval", "1s")]);
    for s in 0..10 {
        assert_eq!(c.at(s * 1000).send(3), 1, "second {s}");
    }
    // Fractional intervals, fractional rates and a single pane.
    let mut c = Clocked::new(&[("Rate", "2.5"), ("Window", "1"), ("Interval", "0.5")]);
    assert_eq!(c.at(0).send(10), 3);
    assert_eq!(c.at(499).send(10), 0);
    assert_eq!(c.at(500).send(10), 3);
    // Defaults: Rate 1, Window 5, Interval 1 second.
    let mut c = Clocked::new(&[("Print_Status", "on")]);
    assert_eq!(c.at(0).send(5), 1);
    assert_eq!(c.at(1000).send(5), 1);
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let e = build_errors(&PLUGIN, &[("Rate", "0")]);
    assert_eq!(
        e,
        ["/etc/kb/filter.conf:2: [filter throttle.0] 'rate' must be a number above 0"]
    );
    let e = build_errors(&PLUGIN, &[("Window", "0")]);
    assert!(e[0].contains("'window' must be between 1"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Rate", "1"), ("Interval", "soon")]);
    assert!(
        e[0].starts_with("/etc/kb/filter.conf:3: [filter throttle.0] invalid time interval 'soon'"),
        "{e:?}"
    );
    let e = build_errors(&PLUGIN, &[("Window", "-3")]);
    assert!(e[0].contains("expected an integer"), "{e:?}");
    let e = build_errors(&PLUGIN, &[("Retain", "on")]);
    assert!(
        e[0].contains("unknown configuration property 'Retain'"),
        "{e:?}"
    );
}
