//! `throttle`: let through at most `Rate` records per `Interval` on average over a sliding
//! window of `Window` intervals (Fluent Bit's `filter_throttle`).
//!
//! As in `plugins/filter_throttle/{throttle,window}.c`: the window is a ring of `Window`
//! panes, one per `Interval`; a record arriving while the average of the panes' counts is at
//! or above `Rate` is dropped, otherwise it is counted in the current pane. When an interval
//! ends, the oldest pane is cleared and becomes the current one. The state is shared by every
//! input the filter matches (behind a mutex). `Interval` is a number of seconds with an
//! optional `s`, `m`, `h` or `d` suffix (`1.5m`). `Print_Status` logs the limit and the
//! current rate at info level once per interval.
//!
//! Differences, deliberate:
//! * The average is taken over the panes used so far, so during the first `Window` intervals
//!   at most `Rate` records pass per interval, as the documentation's "slow start" describes;
//!   Fluent Bit divides by `Window` from the start and lets `Rate × Window` records through in
//!   the first interval.
//! * The window moves when records arrive (a pane per elapsed interval) instead of on a
//!   ticker thread, and so do the `Print_Status` lines; the counts are the same.
//! * Fractional intervals are kept (`0.5` is half a second; Fluent Bit truncates it to 0 and
//!   spins). `Window 1` is one pane and `Rate` may be fractional (Fluent Bit silently turns a
//!   `Window` ≤ 1 into 5 and a `Rate` ≤ 1 into 1); a `Rate` or `Window` of 0, or an interval
//!   that is not a positive duration, is a configuration error (Fluent Bit warns and goes
//!   on). Fluent Bit's development `Retain` key is not taken.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::record::Record;
use kb_core::registry::{FilterPlugin, ServiceContext};

use crate::util::{component, in_span};

const KEYS: &[KeySpec] = &[
    KeySpec::new("rate", KeyType::Double, Some("1"), "Set throttle rate"),
    KeySpec::new("window", KeyType::Int, Some("5"), "Set throttle window"),
    KeySpec::new(
        "print_status",
        KeyType::Bool,
        Some("false"),
        "Set whether or not to print status information",
    ),
    KeySpec::new(
        "interval",
        KeyType::Str,
        Some("1"),
        "Set the slide interval",
    ),
];

/// The `throttle` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "throttle",
        description: "Throttle messages using sliding window algorithm",
        keys: KEYS,
    },
    build,
};

/// Time since the filter was built.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

#[derive(Debug)]
struct Window {
    panes: Vec<u64>,
    /// Index of the current pane.
    current: usize,
    /// Panes used so far (at most `panes.len()`).
    used: usize,
    total: u64,
    /// The interval number the current pane belongs to.
    tick: u64,
}

/// A configured `throttle`.
pub struct Throttle {
    rate: f64,
    interval: Duration,
    interval_text: String,
    print_status: bool,
    component: String,
    clock: Clock,
    window: Mutex<Window>,
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let start = Instant::now();
    Ok(Box::new(Throttle::from_props(
        props,
        Arc::new(move || start.elapsed()),
    )?))
}

/// Fluent Bit's `parse_duration`: a number and an optional `s`/`m`/`h`/`d`.
fn parse_interval(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 's') => (&t[..i], 1.0),
        (i, 'm') => (&t[..i], 60.0),
        (i, 'h') => (&t[..i], 3600.0),
        (i, 'd') => (&t[..i], 86400.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    let secs = v * mult;
    (secs.is_finite() && secs > 0.0 && secs < 1e12).then(|| Duration::from_secs_f64(secs))
}

impl Throttle {
    /// Build from validated properties, reading time from `clock`.
    pub fn from_props(props: &Props, clock: Clock) -> Result<Throttle, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let rate = match props.f64("rate") {
            Ok(Some(r)) if r > 0.0 => r,
            Ok(_) => {
                errors.push(props.error("rate", "'rate' must be a number above 0"));
                1.0
            }
            Err(e) => {
                errors.push(e);
                1.0
            }
        };
        let window = match props.u64("window") {
            Ok(Some(w)) if (1..=1_000_000).contains(&w) => w as usize,
            Ok(_) => {
                errors.push(props.error("window", "'window' must be between 1 and 1000000"));
                5
            }
            Err(e) => {
                errors.push(e);
                5
            }
        };
        let print_status = match props.bool("print_status") {
            Ok(v) => v.unwrap_or(false),
            Err(e) => {
                errors.push(e);
                false
            }
        };
        let interval_text = props.str("interval").unwrap_or("1").to_string();
        let interval = match parse_interval(&interval_text) {
            Some(d) => d,
            None => {
                errors.push(props.error(
                    "interval",
                    format!(
                        "invalid time interval '{interval_text}': expected a positive number of \
                         seconds with an optional s, m, h or d suffix"
                    ),
                ));
                Duration::from_secs(1)
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Throttle {
            rate,
            interval,
            interval_text,
            print_status,
            component: component("throttle", props),
            clock,
            window: Mutex::new(Window {
                panes: vec![0; window],
                current: 0,
                used: 1,
                total: 0,
                tick: 0,
            }),
        })
    }

    /// Move the window to interval `tick`.
    fn advance(&self, w: &mut Window, tick: u64) {
        let n = w.panes.len();
        let steps = (tick - w.tick).min(n as u64) as usize;
        for _ in 0..steps {
            w.current = (w.current + 1) % n;
            w.total -= w.panes[w.current];
            w.panes[w.current] = 0;
        }
        w.used = (w.used as u64 + (tick - w.tick)).min(n as u64) as usize;
        w.tick = tick;
        if self.print_status {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let current = w.total / w.used as u64;
            in_span(&self.component, || {
                tracing::info!(
                    "{now}: limit is {:.2} per {} with window size of {}, current rate is: {current} per interval",
                    self.rate,
                    self.interval_text,
                    n
                );
            });
        }
    }
}

impl Filter for Throttle {
    fn filter(&self, _: &mut Record<'_>, _: &mut FilterCx<'_>) -> Verdict {
        let elapsed = (self.clock)();
        let tick = (elapsed.as_secs_f64() / self.interval.as_secs_f64()) as u64;
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if tick > w.tick {
            self.advance(&mut w, tick);
        }
        if w.total as f64 / w.used as f64 >= self.rate {
            return Verdict::Drop;
        }
        let c = w.current;
        w.panes[c] += 1;
        w.total += 1;
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_take_fluent_bits_suffixes() {
        assert_eq!(parse_interval("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_interval("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_interval("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_interval("0.5h"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_interval("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_interval("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("0"), None);
        assert_eq!(parse_interval("-1"), None);
        assert_eq!(parse_interval("1x"), None);
        assert_eq!(parse_interval("1ms"), None);
    }
}
