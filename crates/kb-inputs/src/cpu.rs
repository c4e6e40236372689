//! `cpu`: CPU usage of the whole system or of one process (Fluent Bit's `in_cpu`).
//!
//! Follows `plugins/in_cpu/cpu.c` and `cpu.h` of Fluent Bit:
//! * whole system: `/proc/stat` is read every interval; the record is `cpu_p`, `user_p`,
//!   `system_p`, then `cpuN.p_cpu`, `cpuN.p_user`, `cpuN.p_system` for every CPU line (N is the
//!   line's position, as Fluent Bit numbers them), all doubles;
//! * with `pid`: `/proc/<pid>/stat` `utime`/`stime`; the record is `cpu_p`, `user_p`,
//!   `system_p`;
//! * "cpu" usage is user + nice + system jiffies, "user" is user + nice, "system" is system
//!   (for a process: utime + stime, utime, stime). With `diff` the change between two samples,
//!   `ticks` = `sysconf(_SC_CLK_TCK)` and `interval` = `interval_sec + 1e-9 * interval_nsec`:
//!   - totals (`CPU_METRIC_SYS_AVERAGE`, also used for a process):
//!     `((diff / ticks) * 100 / n_cpus) / interval`
//!   - per CPU (`CPU_METRIC_USAGE`): `((diff * 100) / ticks) / interval`
//!   - 0 when the counter did not change;
//! * the first sample (taken when the input starts) only primes the counters; records come
//!   from the first interval on.
//!
//! Differences: when samples were skipped (unreadable or malformed `/proc` content, the input
//! paused by `Mem_Buf_Limit`) the change is divided by the number of intervals that actually
//! elapsed, where Fluent Bit divides by one interval and reports inflated values. A change in
//! the number of CPU lines re-primes the counters. Read and parse failures are warnings (at
//! most one a minute) and the sample is skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::time::{Instant, MissedTickBehavior};

use crate::util::{self, Throttle};

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "pid",
        KeyType::SignedInt,
        Some("-1"),
        "measure only this process (-1 = the whole system)",
    ),
    KeySpec::new(
        "interval_sec",
        KeyType::Int,
        Some("1"),
        "seconds between samples",
    ),
    KeySpec::new(
        "interval_nsec",
        KeyType::Int,
        Some("0"),
        "nanoseconds between samples, added to interval_sec",
    ),
];

/// The `cpu` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "cpu",
        description: "CPU Usage",
        keys: KEYS,
    },
    build,
};

/// Largest `interval_sec` accepted, so time arithmetic never overflows.
const MAX_INTERVAL_SECS: u64 = u32::MAX as u64;

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(CpuInput::from_props(props)?))
}

/// A configured `cpu` input.
#[derive(Debug, Clone)]
pub struct CpuInput {
    interval_sec: u64,
    interval_nsec: u64,
    pid: Option<u32>,
    proc_root: PathBuf,
    clock_ticks: Option<u64>,
}

impl CpuInput {
    /// An input sampling every `interval_sec` seconds plus `interval_nsec` nanoseconds (both
    /// 0 means one second, as in Fluent Bit), for the whole system or for `pid`.
    pub fn new(interval_sec: u64, interval_nsec: u64, pid: Option<u32>) -> Self {
        let (interval_sec, interval_nsec) = if interval_sec == 0 && interval_nsec == 0 {
            (1, 0)
        } else {
            (interval_sec.min(MAX_INTERVAL_SECS), interval_nsec)
        };
        CpuInput {
            interval_sec,
            interval_nsec,
            pid,
            proc_root: PathBuf::from("/proc"),
            clock_ticks: None,
        }
    }

    /// Validate the properties of a `cpu` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut get = |key: &str, default: u64| match props.u64(key) {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let interval_sec = get("interval_sec", 1);
        let interval_nsec = get("interval_nsec", 0);
        if interval_sec > MAX_INTERVAL_SECS {
            errors.push(props.error(
                "interval_sec",
                format!("'interval_sec' must be at most {MAX_INTERVAL_SECS}"),
            ));
        }
        let pid = match props.i64("pid") {
            Ok(None) => None,
            Ok(Some(p)) if p < 0 => None,
            Ok(Some(p)) => match u32::try_from(p) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    errors.push(props.error(
                        "pid",
                        format!("'pid' must be a process id (or -1 for the whole system), got {p}"),
                    ));
                    None
                }
            },
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CpuInput::new(interval_sec, interval_nsec, pid))
    }

    /// Read `<root>/stat` and `<root>/<pid>/stat` instead of `/proc` (tests).
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self
    }

    /// Use this many clock ticks per second instead of `sysconf(_SC_CLK_TCK)` (tests).
    pub fn with_clock_ticks(mut self, ticks: u64) -> Self {
        self.clock_ticks = Some(ticks.max(1));
        self
    }

    /// The time between two samples.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_sec)
            .checked_add(Duration::from_nanos(self.interval_nsec))
            .unwrap_or(Duration::from_secs(MAX_INTERVAL_SECS))
    }

    /// The interval in seconds, computed as Fluent Bit does.
    fn interval_f64(&self) -> f64 {
        self.interval_sec as f64 + 1e-9 * self.interval_nsec as f64
    }
}

/// Jiffies of one CPU line (or of one process: nice is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Jiffies {
    user: u64,
    nice: u64,
    system: u64,
}

impl Jiffies {
    fn cpu(self) -> u64 {
        self.user.wrapping_add(self.nice).wrapping_add(self.system)
    }

    fn user(self) -> u64 {
        self.user.wrapping_add(self.nice)
    }
}

/// One sample of `/proc/stat`: the total line and each CPU line in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatSample {
    total: Jiffies,
    cpus: Vec<Jiffies>,
}

/// Parse the numbers of a `cpu`/`cpuN` line (user nice system idle iowait ...). Fluent Bit's
/// `sscanf` needs at least these five.
fn parse_cpu_fields<'a>(mut fields: impl Iterator<Item = &'a str>) -> Option<Jiffies> {
    let mut next = || fields.next()?.parse::<u64>().ok();
    let user = next()?;
    let nice = next()?;
    let system = next()?;
    let _idle = next()?;
    let _iowait = next()?;
    Some(Jiffies { user, nice, system })
}

/// Parse `/proc/stat`: the first line must be the `cpu` total, followed by `cpuN` lines.
pub(crate) fn parse_proc_stat(text: &str) -> Result<StatSample, String> {
    let mut lines = text.lines();
    let first = lines.next().ok_or("empty file")?;
    let mut fields = first.split_whitespace();
    if fields.next() != Some("cpu") {
        return Err(format!(
            "first line is not the 'cpu' total: '{}'",
            clip(first)
        ));
    }
    let total = parse_cpu_fields(fields)
        .ok_or_else(|| format!("malformed 'cpu' line: '{}'", clip(first)))?;
    let mut cpus = Vec::new();
    for line in lines {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { break };
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            break;
        }
        let j = parse_cpu_fields(fields)
            .ok_or_else(|| format!("malformed '{name}' line: '{}'", clip(line)))?;
        cpus.push(j);
    }
    if cpus.is_empty() {
        return Err("no per-CPU lines".into());
    }
    Ok(StatSample { total, cpus })
}

/// Parse `/proc/<pid>/stat`: utime and stime, fields 14 and 15 (after the `(comm)` field,
/// which may itself contain spaces and parentheses).
pub(crate) fn parse_pid_stat(text: &str) -> Result<Jiffies, String> {
    let close = text
        .rfind(')')
        .ok_or_else(|| format!("no ')' after the command name: '{}'", clip(text)))?;
    let rest = text.get(close + 1..).unwrap_or("");
    // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || fields.next()?.parse::<u64>().ok();
    match (next(), next()) {
        (Some(user), Some(system)) => Ok(Jiffies {
            user,
            nice: 0,
            system,
        }),
        _ => Err(format!("malformed process stat: '{}'", clip(text))),
    }
}

/// At most 120 bytes of a line for messages.
fn clip(s: &str) -> &str {
    let s = s.trim_end();
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Fluent Bit's `CPU_METRIC_SYS_AVERAGE`: usage over all CPUs, 0..100.
fn sys_average(pre: u64, now: u64, ticks: f64, n_cpus: f64, interval: f64) -> f64 {
    if pre == now {
        return 0.0;
    }
    let diff = pre.abs_diff(now) as f64;
    (((diff / ticks) * 100.0) / n_cpus) / interval
}

/// Fluent Bit's `CPU_METRIC_USAGE`: usage of one CPU, 0..100.
fn usage(pre: u64, now: u64, ticks: f64, interval: f64) -> f64 {
    if pre == now {
        return 0.0;
    }
    let diff = pre.abs_diff(now) as f64;
    ((diff * 100.0) / ticks) / interval
}

/// `(cpu_p, user_p, system_p)` over all CPUs.
fn totals(pre: Jiffies, now: Jiffies, ticks: f64, n_cpus: f64, interval: f64) -> [f64; 3] {
    [
        sys_average(pre.cpu(), now.cpu(), ticks, n_cpus, interval),
        sys_average(pre.user(), now.user(), ticks, n_cpus, interval),
        sys_average(pre.system, now.system, ticks, n_cpus, interval),
    ]
}

fn write_field(buf: &mut Vec<u8>, key: &str, v: f64) {
    let _ = rmp::encode::write_str(buf, key);
    let _ = rmp::encode::write_f64(buf, v);
}

/// Encode the whole-system record.
pub(crate) fn write_system_record(
    buf: &mut Vec<u8>,
    pre: &StatSample,
    now: &StatSample,
    ticks: f64,
    interval: f64,
) {
    let n = now.cpus.len();
    let [cpu, user, system] = totals(pre.total, now.total, ticks, n as f64, interval);
    let _ = rmp::encode::write_map_len(buf, u32::try_from(3 + 3 * n).unwrap_or(u32::MAX));
    write_field(buf, "cpu_p", cpu);
    write_field(buf, "user_p", user);
    write_field(buf, "system_p", system);
    for (i, (p, c)) in pre.cpus.iter().zip(&now.cpus).enumerate() {
        write_field(
            buf,
            &format!("cpu{i}.p_cpu"),
            usage(p.cpu(), c.cpu(), ticks, interval),
        );
        write_field(
            buf,
            &format!("cpu{i}.p_user"),
            usage(p.user(), c.user(), ticks, interval),
        );
        write_field(
            buf,
            &format!("cpu{i}.p_system"),
            usage(p.system, c.system, ticks, interval),
        );
    }
}

/// Encode the process record.
fn write_pid_record(
    buf: &mut Vec<u8>,
    pre: Jiffies,
    now: Jiffies,
    ticks: f64,
    n_cpus: f64,
    interval: f64,
) {
    let [cpu, user, system] = totals(pre, now, ticks, n_cpus, interval);
    let _ = rmp::encode::write_map_len(buf, 3);
    write_field(buf, "cpu_p", cpu);
    write_field(buf, "user_p", user);
    write_field(buf, "system_p", system);
}

/// `sysconf(_SC_CLK_TCK)`, 100 when unavailable.
fn system_clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// What the last good sample was.
enum Prev {
    None,
    System(StatSample),
    Pid(Jiffies),
}

struct Sampler {
    input: CpuInput,
    ticks: f64,
    /// CPUs for a process's averages (the number of CPU lines of `/proc/stat`).
    pid_cpus: f64,
    prev: Prev,
    prev_at: Instant,
    warn: Throttle,
}

impl Sampler {
    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn warn(&mut self, msg: &str) {
        if let Some(n) = self.warn.allow() {
            tracing::warn!("{msg}; sample skipped{}", util::suppressed_note(n));
        }
    }

    /// Take a sample; encode a record into `buf` when there is a previous one to compare with.
    /// Returns whether a record was written.
    fn sample(&mut self, buf: &mut Vec<u8>) -> bool {
        let now = Instant::now();
        let interval = self.input.interval();
        // Whole intervals since the previous good sample (normally 1).
        let intervals = (now.saturating_duration_since(self.prev_at).as_secs_f64()
            / interval.as_secs_f64().max(1e-9))
        .round()
        .max(1.0);
        let span = self.input.interval_f64() * intervals;
        let (next, written) = match self.input.pid {
            None => {
                let path = self.input.proc_root.join("stat");
                let sample = match self.read(&path).and_then(|t| parse_proc_stat(&t)) {
                    Ok(s) => s,
                    Err(e) => {
                        self.warn(&e);
                        return false;
                    }
                };
                let written = match &self.prev {
                    Prev::System(pre) if pre.cpus.len() == sample.cpus.len() => {
                        write_system_record(buf, pre, &sample, self.ticks, span);
                        true
                    }
                    Prev::System(pre) => {
                        let msg = format!(
                            "the number of CPUs changed from {} to {}; counters reset",
                            pre.cpus.len(),
                            sample.cpus.len()
                        );
                        self.warn(&msg);
                        false
                    }
                    _ => false,
                };
                (Prev::System(sample), written)
            }
            Some(pid) => {
                let path = self.input.proc_root.join(pid.to_string()).join("stat");
                let sample = match self.read(&path).and_then(|t| parse_pid_stat(&t)) {
                    Ok(s) => s,
                    Err(e) => {
                        self.warn(&e);
                        return false;
                    }
                };
                let written = match &self.prev {
                    Prev::Pid(pre) => {
                        write_pid_record(buf, *pre, sample, self.ticks, self.pid_cpus, span);
                        true
                    }
                    _ => false,
                };
                (Prev::Pid(sample), written)
            }
        };
        self.prev = next;
        self.prev_at = now;
        written
    }
}

#[async_trait]
impl Input for CpuInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let interval = self.interval();
        let ticks = self.clock_ticks.unwrap_or_else(system_clock_ticks) as f64;
        let pid_cpus = if self.pid.is_some() {
            let path = self.proc_root.join("stat");
            std::fs::read(&path)
                .ok()
                .and_then(|b| parse_proc_stat(&String::from_utf8_lossy(&b)).ok())
                .map(|s| s.cpus.len())
                .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
                .unwrap_or(1) as f64
        } else {
            1.0
        };
        let mut sampler = Sampler {
            input: *self,
            ticks,
            pid_cpus,
            prev: Prev::None,
            prev_at: Instant::now(),
            warn: Throttle::per_minute(),
        };
        // Prime the counters.
        let mut writer = EventWriter::new();
        sampler.sample(&mut writer.buf);
        writer.buf.clear();

        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ctx.stopped() => return Ok(()),
                _ = tick.tick() => {}
            }
            ctx.ready().await;
            if ctx.is_stopping() {
                return Ok(());
            }
            writer.clear();
            writer.begin(EventTime::now());
            // `begin` wrote the header; the sampler writes the record after it.
            let header = writer.buf.len();
            if sampler.sample(&mut writer.buf) {
                ctx.append(&writer.buf, writer.count);
            } else {
                writer.buf.truncate(header);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let s = parse_proc_stat(
            "cpu  10 1 5 100 0 0 0 0 0 0\ncpu0 6 1 3 50 0 0 0 0 0 0\ncpu1 4 0 2 50 0 0 0 0 0 0\nintr 1 2 3\n",
        )
        .unwrap();
        assert_eq!(
            s.total,
            Jiffies {
                user: 10,
                nice: 1,
                system: 5
            }
        );
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(
            s.cpus[1],
            Jiffies {
                user: 4,
                nice: 0,
                system: 2
            }
        );
    }

    #[test]
    fn malformed_proc_stat_is_an_error() {
        for bad in [
            "",
            "intr 1 2\n",
            "cpu 1 2 3\ncpu0 1 2 3 4 5\n",
            "cpu 1 2 3 4 5\n",
            "cpu 1 2 3 4 5\ncpu0 1 x 3 4 5\n",
            "cpu 1 2 3 4 99999999999999999999999\ncpu0 1 2 3 4 5\n",
        ] {
            assert!(parse_proc_stat(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_pid_stat_with_odd_command_names() {
        let j = parse_pid_stat(
            "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 1 2 3\n",
        )
        .unwrap();
        assert_eq!(
            j,
            Jiffies {
                user: 250,
                nice: 0,
                system: 75
            }
        );
        assert!(parse_pid_stat("42 (x) S 1 2").is_err());
        assert!(parse_pid_stat("garbage").is_err());
    }

    #[test]
    fn formulas_match_fluent_bit() {
        // 2 CPUs, 100 ticks/s, 1 s: 50 jiffies of a CPU = 50 %; over the system = 25 %.
        assert_eq!(usage(0, 50, 100.0, 1.0), 50.0);
        assert_eq!(sys_average(0, 50, 100.0, 2.0, 1.0), 25.0);
        assert_eq!(sys_average(7, 7, 100.0, 2.0, 1.0), 0.0);
        // Counters going backwards count as their absolute change, as ULL_ABS does.
        assert_eq!(usage(50, 0, 100.0, 1.0), 50.0);
    }
}
