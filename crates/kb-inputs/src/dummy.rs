//! `dummy`: generates a fixed record (Fluent Bit's `in_dummy`).
//!
//! Semantics follow `plugins/in_dummy/in_dummy.c`:
//! * the period is `interval_sec`/`interval_nsec` when either is > 0, else `1s / rate` when
//!   `rate` > 1, else one second; the first records come one period after start (or at start
//!   with `flush_on_startup`);
//! * every period produces `copies` records; `samples` > 0 limits the number of periods that
//!   produce records (so `samples * copies` records in all), after which the input idles;
//! * timestamps: the current time; with `start_time_sec`/`start_time_nsec` (either >= 0; the
//!   unset one counts as 0) the start time plus the time elapsed since the input started; with
//!   `fixed_timestamp` always the start time, or the time the input started when no start time
//!   is set.
//!
//! Differences: an invalid `dummy`/`metadata` value is a configuration error instead of a
//! warning and a fallback to the default; values are not re-resolved for environment variables
//! at every generation (variables are resolved once when the configuration is read).

use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::time::Instant;

use crate::util;

/// Fluent Bit's default record.
pub const DEFAULT_DUMMY: &str = r#"{"message":"dummy"}"#;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "samples",
        KeyType::Int,
        Some("0"),
        "number of times to generate records; 0 = no limit",
    ),
    KeySpec::new(
        "dummy",
        KeyType::Str,
        Some(DEFAULT_DUMMY),
        "the record to generate, a JSON object",
    ),
    KeySpec::new(
        "metadata",
        KeyType::Str,
        Some("{}"),
        "the metadata of generated records, a JSON object",
    ),
    KeySpec::new(
        "rate",
        KeyType::Int,
        Some("1"),
        "number of events per second",
    ),
    KeySpec::new(
        "interval_sec",
        KeyType::Int,
        Some("0"),
        "seconds between generations; overrides rate",
    ),
    KeySpec::new(
        "interval_nsec",
        KeyType::Int,
        Some("0"),
        "nanoseconds between generations; overrides rate",
    ),
    KeySpec::new(
        "copies",
        KeyType::Int,
        Some("1"),
        "number of records per generation",
    ),
    KeySpec::new(
        "start_time_sec",
        KeyType::SignedInt,
        Some("-1"),
        "base timestamp in seconds (-1 = now)",
    ),
    KeySpec::new(
        "start_time_nsec",
        KeyType::SignedInt,
        Some("-1"),
        "base timestamp nanoseconds (-1 = now)",
    ),
    KeySpec::new(
        "fixed_timestamp",
        KeyType::Bool,
        Some("off"),
        "give every record the same timestamp",
    ),
    KeySpec::new(
        "flush_on_startup",
        KeyType::Bool,
        Some("false"),
        "generate the first records at startup",
    ),
];

/// The `dummy` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "dummy",
        description: "Generate dummy data",
        keys: KEYS,
    },
    build,
};

/// Largest `rate` (one record per nanosecond).
const MAX_RATE: u64 = 1_000_000_000;
/// Largest period accepted (about 136 years), so time arithmetic never overflows.
const MAX_INTERVAL_SECS: u64 = u32::MAX as u64;
/// Appends are split once this many bytes are encoded, waiting for `ready()` in between.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// How record timestamps are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// The current time.
    Now,
    /// The start time plus the time elapsed since the input started.
    From(Duration),
    /// Always the start time.
    Fixed(Duration),
    /// Always the time the input started.
    FixedAtStart,
}

/// A configured `dummy` input.
#[derive(Debug, Clone)]
pub struct DummyInput {
    /// The record, as a msgpack map.
    body: Vec<u8>,
    /// The metadata, as a msgpack map.
    metadata: Vec<u8>,
    period: Duration,
    copies: u64,
    samples: u64,
    stamp: Stamp,
    flush_on_startup: bool,
}

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(DummyInput::from_props(props)?))
}

/// Parse a key holding a JSON object into msgpack map bytes.
fn json_object(props: &Props, key: &str, default: &str) -> Result<Vec<u8>, ConfigError> {
    let text = props.str(key).unwrap_or(default);
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => {
            let mut buf = Vec::new();
            kb_core::event::write_json_map(&mut buf, &m);
            Ok(buf)
        }
        Ok(_) => Err(props.error(key, format!("'{key}' must be a JSON object, got '{text}'"))),
        Err(e) => Err(props.error(key, format!("'{key}' is not valid JSON ({e}): '{text}'"))),
    }
}

impl DummyInput {
    /// Validate the properties of a `dummy` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut ok = |r: Result<Option<u64>, ConfigError>, default: u64| match r {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let samples = ok(props.u64("samples"), 0);
        let rate = ok(props.u64("rate"), 1);
        let interval_sec = ok(props.u64("interval_sec"), 0);
        let interval_nsec = ok(props.u64("interval_nsec"), 0);
        let copies = ok(props.u64("copies"), 1);

        let body = json_object(props, "dummy", DEFAULT_DUMMY).map_err(|e| errors.push(e));
        let metadata = json_object(props, "metadata", "{}").map_err(|e| errors.push(e));

        let mut signed = |key: &str| match props.i64(key) {
            Ok(v) => v.unwrap_or(-1),
            Err(e) => {
                errors.push(e);
                -1
            }
        };
        let start_sec = signed("start_time_sec");
        let start_nsec = signed("start_time_nsec");

        let mut flag = |key: &str| match props.bool(key) {
            Ok(v) => v.unwrap_or(false),
            Err(e) => {
                errors.push(e);
                false
            }
        };
        let fixed_timestamp = flag("fixed_timestamp");
        let flush_on_startup = flag("flush_on_startup");

        if copies == 0 {
            errors.push(props.error("copies", "'copies' must be at least 1"));
        }
        if rate > MAX_RATE {
            errors.push(props.error(
                "rate",
                format!("'rate' must be at most {MAX_RATE} events per second"),
            ));
        }
        if interval_sec > MAX_INTERVAL_SECS {
            errors.push(props.error(
                "interval_sec",
                format!("'interval_sec' must be at most {MAX_INTERVAL_SECS}"),
            ));
        }
        // interval_nsec is bounded by the u64 type: at most ~584 years, added below.
        let period = if interval_sec > 0 || interval_nsec > 0 {
            Duration::from_secs(interval_sec.min(MAX_INTERVAL_SECS))
                .checked_add(Duration::from_nanos(interval_nsec))
                .unwrap_or(Duration::from_secs(MAX_INTERVAL_SECS))
        } else if rate > 1 {
            Duration::from_nanos(1_000_000_000 / rate.min(MAX_RATE))
        } else {
            Duration::from_secs(1)
        };

        let mut start = None;
        if start_sec >= 0 || start_nsec >= 0 {
            let secs = start_sec.max(0) as u64;
            let nanos = start_nsec.max(0) as u64;
            let t = Duration::from_secs(secs).checked_add(Duration::from_nanos(nanos));
            match t {
                Some(t) if t.as_secs() <= u64::from(u32::MAX) => start = Some(t),
                _ => {
                    let key = if start_sec > i64::from(u32::MAX) {
                        "start_time_sec"
                    } else {
                        "start_time_nsec"
                    };
                    errors.push(props.error(
                        key,
                        format!("the start time must be at most {} seconds", u32::MAX),
                    ));
                }
            }
        }
        let stamp = match (start, fixed_timestamp) {
            (Some(t), true) => Stamp::Fixed(t),
            (Some(t), false) => Stamp::From(t),
            (None, true) => Stamp::FixedAtStart,
            (None, false) => Stamp::Now,
        };

        match (body, metadata) {
            (Ok(body), Ok(metadata)) if errors.is_empty() => Ok(DummyInput {
                body,
                metadata,
                period,
                copies,
                samples,
                stamp,
                flush_on_startup,
            }),
            _ => Err(errors),
        }
    }

    /// The time between two generations.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// Per-run state: clock bases and counters.
struct Run {
    base: Instant,
    base_wall: EventTime,
    /// Generations done (counted against `samples`).
    generations: u64,
    writer: EventWriter,
}

impl DummyInput {
    fn timestamp(&self, run: &Run) -> EventTime {
        match self.stamp {
            Stamp::Now => EventTime::now(),
            Stamp::From(t) => {
                let elapsed = Instant::now().saturating_duration_since(run.base);
                util::event_time(t.saturating_add(elapsed))
            }
            Stamp::Fixed(t) => util::event_time(t),
            Stamp::FixedAtStart => run.base_wall,
        }
    }

    /// Generations still allowed by `samples` (`u64::MAX` when unlimited).
    fn remaining(&self, run: &Run) -> u64 {
        if self.samples == 0 {
            u64::MAX
        } else {
            self.samples.saturating_sub(run.generations)
        }
    }

    /// Produce `generations` generations of `copies` records. Returns false when stopped.
    async fn generate(&self, run: &mut Run, ctx: &InputContext, generations: u64) -> bool {
        for _ in 0..generations.min(self.remaining(run)) {
            for _ in 0..self.copies {
                let time = self.timestamp(run);
                let w = &mut run.writer;
                util::write_header_with_metadata(&mut w.buf, time, &self.metadata);
                w.buf.extend_from_slice(&self.body);
                w.count += 1;
                if w.buf.len() >= MAX_BATCH_BYTES {
                    ctx.append(&w.buf, w.count);
                    w.clear();
                    ctx.ready().await;
                    if ctx.is_stopping() {
                        return false;
                    }
                }
            }
            run.generations += 1;
        }
        let w = &mut run.writer;
        ctx.append(&w.buf, w.count);
        w.clear();
        true
    }
}

#[async_trait]
impl Input for DummyInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut run = Run {
            base: Instant::now(),
            base_wall: EventTime::now(),
            generations: 0,
            writer: EventWriter::new(),
        };
        let period = self.period;
        let period_nanos = period.as_nanos().max(1);
        // When the task falls behind (very high rates, a busy machine), up to one second of
        // missed periods is produced at once; older ones are dropped, as Fluent Bit's timer
        // collector coalesces missed expirations.
        let max_catch_up = (1_000_000_000 / period_nanos).max(1);

        if self.flush_on_startup {
            ctx.ready().await;
            if ctx.is_stopping() || !self.generate(&mut run, &ctx, 1).await {
                return Ok(());
            }
        }

        let mut next = run.base + period;
        loop {
            if self.remaining(&run) == 0 {
                // Samples exhausted: idle until the engine stops, as Fluent Bit does.
                ctx.stopped().await;
                return Ok(());
            }
            tokio::select! {
                _ = ctx.stopped() => return Ok(()),
                _ = tokio::time::sleep_until(next) => {}
            }
            let now = Instant::now();
            let behind = now.saturating_duration_since(next).as_nanos();
            let mut due = (1 + behind / period_nanos).min(max_catch_up);
            next += Duration::from_nanos(u64::try_from(period_nanos * due).unwrap_or(u64::MAX));
            if next <= now {
                next = now + period;
            }

            let was_paused = ctx.is_paused();
            ctx.ready().await;
            if ctx.is_stopping() {
                return Ok(());
            }
            if was_paused {
                // Nothing is generated while paused (Fluent Bit pauses the collector).
                due = 1;
                next = Instant::now() + period;
            }
            let due = u64::try_from(due).unwrap_or(u64::MAX);
            if !self.generate(&mut run, &ctx, due).await {
                return Ok(());
            }
        }
    }
}
