//! `exec`: runs a shell command and makes a record of each line it prints (Fluent Bit's
//! `in_exec`).
//!
//! Semantics follow `plugins/in_exec/in_exec.c` and the `exec` page of Fluent Bit's manual:
//! * `Command` runs as `/bin/sh -c <command>` (what `popen(3)` does), so pipelines,
//!   redirections and substitutions work; its standard output is read, its standard error
//!   goes to the agent's;
//! * every `Interval_Sec` + `Interval_NSec` (1 s when both are 0 or less), the first run one
//!   interval after start; with `Oneshot` once at start. `Exit_After_Oneshot` implies
//!   `Oneshot` and makes the agent deliver what it has and exit once the command has ended;
//!   `Propagate_Exit_Code` (only with `Exit_After_Oneshot`, as in Fluent Bit) makes the
//!   command's status the agent's exit status: its exit code, 128 + N when killed by signal N,
//!   128 when the status is unknown;
//! * output is read as `fgets(buf, Buf_Size)` reads it: a line (its `\n` removed, a `\r`
//!   kept) becomes `{"exec": "<line>"}` stamped with the time it was read, an empty line an
//!   empty string, and a line longer than `Buf_Size - 1` bytes is cut into pieces of that size
//!   (each its own record). Values are the bytes printed, not checked for UTF-8;
//! * with `Parser`, each line is parsed instead (the parser's time, else the time read); a
//!   line the parser rejects is dropped and logged, as Fluent Bit does.
//!
//! The command never blocks the engine: it is a child process read asynchronously, and only
//! this input waits for it. A run that is still going when the next interval comes is not
//! started a second time: it goes on (its lines delivered as they come) and the next run
//! starts as soon as it ends, the intervals missed meanwhile counted as one, which is when
//! Fluent Bit's timer collector runs again too (there, a hanging command blocks the whole
//! engine). There is no time limit, as in Fluent Bit. While the input is paused over
//! `Mem_Buf_Limit` its output is not read (the command blocks on a full pipe) and no new
//! run starts.
//!
//! A command that cannot be started, exits with a non-zero status or is killed by a signal is
//! logged as a warning (at most once a minute, with the number suppressed) and counted in
//! `fluentbit_exec_command_failures_total{name}`; lines a parser rejects are counted in
//! `fluentbit_exec_parse_errors_total{name}`.
//!
//! Differences from Fluent Bit, deliberate:
//! * an unknown `Parser` is a configuration error (Fluent Bit logs it and runs without one);
//! * a `Buf_Size` below 2 bytes is a configuration error (Fluent Bit's `fgets` reads nothing
//!   useful, or writes before its buffer, with it);
//! * a line holding a NUL byte is kept whole (Fluent Bit's `strnlen` cuts it at the NUL);
//! * the command's standard input is `/dev/null` (`popen` shares the agent's) and it runs in a
//!   process group of its own, which is sent SIGTERM, then SIGKILL after 500 ms, when the
//!   agent stops during a run (so neither a terminal's signals nor a stopped agent leave
//!   half-finished pipelines behind);
//! * a command that cannot be started at all with `Exit_After_Oneshot` still ends the agent,
//!   with status 127 under `Propagate_Exit_Code` (Fluent Bit's collector returns early and
//!   the agent keeps running forever).

use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::event::{EventTime, EventWriter};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, LineParser, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, MissedTickBehavior};

use crate::util::{self, Throttle};

/// Fluent Bit's `DEFAULT_BUF_SIZE`.
pub const DEFAULT_BUF_SIZE: usize = 4096;
/// The shell `popen(3)` runs.
pub const SHELL: &str = "/bin/sh";

/// Bytes asked of each read of the command's output.
const READ_BLOCK: usize = 64 * 1024;
/// Largest interval accepted (about 136 years), so time arithmetic never overflows.
const MAX_INTERVAL_SECS: u64 = u32::MAX as u64;
/// How long a stopped command gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "command",
        KeyType::Str,
        None,
        "the command to execute (with /bin/sh -c)",
    ),
    KeySpec::new(
        "parser",
        KeyType::Str,
        None,
        "name of a [PARSER] applied to each line; lines it rejects are dropped",
    ),
    KeySpec::new(
        "interval_sec",
        KeyType::SignedInt,
        Some("1"),
        "seconds between runs",
    ),
    KeySpec::new(
        "interval_nsec",
        KeyType::SignedInt,
        Some("0"),
        "nanoseconds added to interval_sec",
    ),
    KeySpec::new(
        "buf_size",
        KeyType::Size,
        Some("4096"),
        "the line buffer; longer lines are split into pieces of buf_size - 1 bytes",
    ),
    KeySpec::new(
        "oneshot",
        KeyType::Bool,
        Some("false"),
        "execute the command only once, at start",
    ),
    KeySpec::new(
        "exit_after_oneshot",
        KeyType::Bool,
        Some("false"),
        "exit the agent once the one-shot command has ended (implies oneshot)",
    ),
    KeySpec::new(
        "propagate_exit_code",
        KeyType::Bool,
        Some("false"),
        "exit with the one-shot command's status (needs exit_after_oneshot)",
    ),
];

/// The `exec` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "exec",
        description: "Exec Input",
        keys: KEYS,
    },
    build,
};

/// A configured `exec` input.
pub struct ExecInput {
    command: String,
    parser: Option<Arc<dyn LineParser>>,
    period: Duration,
    buf_size: usize,
    oneshot: bool,
    exit_after_oneshot: bool,
    propagate_exit_code: bool,
    failures: Arc<AtomicU64>,
    parse_errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for ExecInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecInput")
            .field("command", &self.command)
            .field("parser", &self.parser.is_some())
            .field("period", &self.period)
            .field("buf_size", &self.buf_size)
            .field("oneshot", &self.oneshot)
            .field("exit_after_oneshot", &self.exit_after_oneshot)
            .field("propagate_exit_code", &self.propagate_exit_code)
            .finish()
    }
}

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(ExecInput::from_props(props, svc)?))
}

impl ExecInput {
    /// Validate the properties of an `exec` section.
    pub fn from_props(props: &Props, svc: &ServiceContext) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let command = match props.required("command") {
            Ok(c) if !c.trim().is_empty() => Some(c.to_string()),
            Ok(_) => {
                errors.push(props.error("command", "'command' must not be empty"));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let parser = match props.str("parser") {
            None => None,
            Some(name) => match svc.parsers.parser(name) {
                Some(p) => Some(p),
                None => {
                    errors.push(props.error(
                        "parser",
                        format!(
                            "requested parser '{name}' not found: define it in a parsers file (-R / Parsers_File)"
                        ),
                    ));
                    None
                }
            },
        };
        let mut signed = |key: &str, default: i64| match props.i64(key) {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let interval_sec = signed("interval_sec", 1);
        let interval_nsec = signed("interval_nsec", 0);
        let period = period(interval_sec, interval_nsec);
        if u64::try_from(interval_sec).is_ok_and(|s| s > MAX_INTERVAL_SECS) {
            errors.push(props.error(
                "interval_sec",
                format!("'interval_sec' must be at most {MAX_INTERVAL_SECS}"),
            ));
        }
        let buf_size = util::size(props, "buf_size", DEFAULT_BUF_SIZE, &mut errors);
        if buf_size < 2 {
            errors.push(props.error(
                "buf_size",
                format!("'buf_size' {buf_size} must be at least 2 bytes"),
            ));
        }
        let mut flag = |key: &str| match props.bool(key) {
            Ok(v) => v.unwrap_or(false),
            Err(e) => {
                errors.push(e);
                false
            }
        };
        let mut oneshot = flag("oneshot");
        let exit_after_oneshot = flag("exit_after_oneshot");
        let propagate_exit_code = flag("propagate_exit_code");
        if propagate_exit_code && !exit_after_oneshot {
            errors.push(props.error(
                "propagate_exit_code",
                "propagate_exit_code=True option makes no sense without exit_after_oneshot=True",
            ));
        }
        // Fluent Bit: "exit_after_oneshot implies oneshot mode, enabling".
        oneshot |= exit_after_oneshot;

        let labels = [("name", props.instance.as_str())];
        match command {
            Some(command) if errors.is_empty() => Ok(ExecInput {
                command,
                parser,
                period,
                buf_size,
                oneshot,
                exit_after_oneshot,
                propagate_exit_code,
                failures: svc
                    .metrics
                    .counter("fluentbit_exec_command_failures_total", &labels),
                parse_errors: svc
                    .metrics
                    .counter("fluentbit_exec_parse_errors_total", &labels),
            }),
            _ => Err(errors),
        }
    }

    /// The time between two runs (unused with `Oneshot`).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether the command runs only once.
    pub fn is_oneshot(&self) -> bool {
        self.oneshot
    }

    /// The longest piece of a line one record holds (`Buf_Size - 1`, as `fgets` reads).
    pub fn max_piece(&self) -> usize {
        self.buf_size - 1
    }
}

/// Fluent Bit's interval rule: when neither part is above 0, one second; a negative part
/// counts as 0.
fn period(sec: i64, nsec: i64) -> Duration {
    if sec <= 0 && nsec <= 0 {
        return Duration::from_secs(1);
    }
    let secs = u64::try_from(sec).unwrap_or(0).min(MAX_INTERVAL_SECS);
    let nanos = u64::try_from(nsec).unwrap_or(0);
    Duration::from_secs(secs)
        .checked_add(Duration::from_nanos(nanos))
        .unwrap_or(Duration::from_secs(MAX_INTERVAL_SECS))
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The command ended; its status as Fluent Bit computes it.
    Ended(u8),
    /// The agent is stopping.
    Stopped,
}

/// Splits a byte stream as repeated `fgets(buf, max + 1)` calls do, and encodes the pieces.
pub struct Splitter {
    max: usize,
    piece: Vec<u8>,
}

impl Splitter {
    /// Pieces of at most `max` bytes (`max` counts the `\n` that ends a line).
    pub fn new(max: usize) -> Self {
        Splitter {
            max: max.max(1),
            piece: Vec::new(),
        }
    }

    /// Hand every complete piece of `data` to `emit` (a line without its `\n`, or `max` bytes
    /// of a longer one); keep the unfinished end for the next call.
    pub fn feed(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.max - self.piece.len();
            let take = &rest[..room.min(rest.len())];
            if let Some(pos) = memchr::memchr(b'\n', take) {
                if self.piece.is_empty() {
                    emit(&take[..pos]);
                } else {
                    self.piece.extend_from_slice(&take[..pos]);
                    emit(&self.piece);
                    self.piece.clear();
                }
                rest = &rest[pos + 1..];
            } else {
                self.piece.extend_from_slice(take);
                rest = &rest[take.len()..];
                if self.piece.len() == self.max {
                    emit(&self.piece);
                    self.piece.clear();
                }
            }
        }
    }

    /// End of output: an unfinished last line is a piece too.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.piece.is_empty() {
            emit(&self.piece);
            self.piece.clear();
        }
    }
}

/// `{"exec": line}` stamped `time`.
pub fn write_exec_record(w: &mut EventWriter, time: EventTime, line: &[u8]) {
    w.begin(time);
    let _ = rmp::encode::write_map_len(&mut w.buf, 1);
    let _ = rmp::encode::write_str(&mut w.buf, "exec");
    let _ = rmp::encode::write_str_len(&mut w.buf, u32::try_from(line.len()).unwrap_or(u32::MAX));
    w.buf.extend_from_slice(line);
}

/// Per-input run state: the encoder and the rate limits of warnings.
struct Run {
    writer: EventWriter,
    fail_warn: Throttle,
    parse_warn: Throttle,
}

impl ExecInput {
    fn encode(&self, run: &mut Run, line: &[u8]) {
        let now = EventTime::now();
        match &self.parser {
            None => write_exec_record(&mut run.writer, now, line),
            Some(p) => {
                if let Err(e) = p.parse_line(line, &mut run.writer, now) {
                    kb_core::metrics::add(&self.parse_errors, 1);
                    if let Some(n) = run.parse_warn.allow() {
                        tracing::error!(
                            "parser returned an error ({e}); line dropped{}",
                            util::suppressed_note(n)
                        );
                    }
                }
            }
        }
    }

    fn failed(&self, run: &mut Run, what: std::fmt::Arguments<'_>) {
        kb_core::metrics::add(&self.failures, 1);
        if let Some(n) = run.fail_warn.allow() {
            tracing::warn!(
                "command '{}' {what}{}",
                self.command,
                util::suppressed_note(n)
            );
        }
    }

    fn flush(&self, run: &mut Run, ctx: &InputContext) {
        ctx.append(&run.writer.buf, run.writer.count);
        run.writer.clear();
    }

    /// Run the command once, delivering its lines as they come.
    async fn run_once(&self, run: &mut Run, ctx: &InputContext) -> Outcome {
        let mut cmd = tokio::process::Command::new(SHELL);
        cmd.arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.failed(run, format_args!("could not be started with {SHELL}: {e}"));
                return Outcome::Ended(127);
            }
        };
        let pid = child.id();
        let Some(mut stdout) = child.stdout.take() else {
            return Outcome::Ended(128);
        };
        let mut splitter = Splitter::new(self.max_piece());
        let mut buf = vec![0u8; READ_BLOCK];
        loop {
            let read = tokio::select! {
                _ = ctx.stopped() => {
                    stop_child(&mut child, pid).await;
                    return Outcome::Stopped;
                }
                r = stdout.read(&mut buf) => r,
            };
            match read {
                Ok(0) => break,
                Ok(n) => {
                    let mut lines = Vec::new();
                    splitter.feed(&buf[..n], &mut |l| lines.push(l.to_vec()));
                    for l in &lines {
                        self.encode(run, l);
                    }
                    self.flush(run, ctx);
                    // Paused: the command's output waits in its pipe.
                    ctx.ready().await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("reading the output of '{}': {e}", self.command);
                    break;
                }
            }
        }
        let mut lines = Vec::new();
        splitter.finish(&mut |l| lines.push(l.to_vec()));
        for l in &lines {
            self.encode(run, l);
        }
        self.flush(run, ctx);
        drop(stdout);

        let status = tokio::select! {
            _ = ctx.stopped() => {
                stop_child(&mut child, pid).await;
                return Outcome::Stopped;
            }
            s = child.wait() => s,
        };
        let code = match &status {
            Ok(s) => exit_code(*s),
            Err(e) => {
                tracing::debug!(
                    "unexpected error while waiting for exit of command {}: {e}",
                    self.command
                );
                128
            }
        };
        match status {
            Ok(s) if s.success() => {
                tracing::debug!("command {} exited with code 0", self.command);
            }
            Ok(s) => match std::os::unix::process::ExitStatusExt::signal(&s) {
                Some(sig) => self.failed(run, format_args!("was killed by signal {sig}")),
                None => self.failed(run, format_args!("exited with code {code}")),
            },
            Err(_) => self.failed(run, format_args!("ended with an unknown status")),
        }
        Outcome::Ended(code)
    }
}

/// Fluent Bit's status of a command run through a shell: the exit code, 128 + N for a
/// signal N, 128 otherwise.
pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(c) = status.code() {
        return u8::try_from(c & 0xff).unwrap_or(128);
    }
    match status.signal() {
        Some(sig) => u8::try_from(128 + sig).unwrap_or(128),
        None => 128,
    }
}

/// End the command's process group: SIGTERM, then SIGKILL if it lingers.
async fn stop_child(child: &mut tokio::process::Child, pid: Option<u32>) {
    let group = pid.and_then(|p| libc::pid_t::try_from(p).ok());
    let signal_group = |sig| {
        if let Some(g) = group {
            // SAFETY: plain syscall; the group was created for this child (process_group(0)).
            unsafe {
                libc::killpg(g, sig);
            }
        }
    };
    signal_group(libc::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(libc::SIGKILL);
        let _ = child.kill().await;
    } else {
        // The shell is gone; whatever it left in its group goes too.
        signal_group(libc::SIGKILL);
    }
}

#[async_trait]
impl Input for ExecInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let mut run = Run {
            writer: EventWriter::new(),
            fail_warn: Throttle::per_minute(),
            parse_warn: Throttle::per_minute(),
        };
        if self.oneshot {
            ctx.ready().await;
            if ctx.is_stopping() {
                return Ok(());
            }
            let Outcome::Ended(code) = self.run_once(&mut run, &ctx).await else {
                return Ok(());
            };
            if self.exit_after_oneshot {
                tracing::info!("one-shot command exited, terminating the agent");
                if self.propagate_exit_code {
                    ctx.request_exit_with_status(code);
                } else {
                    ctx.request_exit();
                }
            } else {
                tracing::debug!("one-shot command exited but exit_after_oneshot not set");
            }
            ctx.stopped().await;
            return Ok(());
        }

        // A timer like Fluent Bit's timerfd collector: the first run one interval after start;
        // intervals missed while a run goes on are one run, right after it.
        let mut tick = tokio::time::interval_at(Instant::now() + self.period, self.period);
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
            if self.run_once(&mut run, &ctx).await == Outcome::Stopped {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        let mut emit = |l: &[u8]| out.push(String::from_utf8_lossy(l).into_owned());
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn splits_as_fgets_does() {
        // fgets(buf, 5) reads at most 4 bytes, the '\n' included.
        assert_eq!(pieces(4, &[b"ab\n\ncd"]), ["ab", "", "cd"]);
        assert_eq!(pieces(4, &[b"abc\n"]), ["abc"]);
        assert_eq!(pieces(4, &[b"abcd\n"]), ["abcd", ""]);
        assert_eq!(pieces(4, &[b"abcdefghij\n"]), ["abcd", "efgh", "ij"]);
        assert_eq!(pieces(4, &[b"a", b"b", b"c", b"de\nf"]), ["abcd", "e", "f"]);
        assert_eq!(pieces(4, &[b"x\r\n", b"\0y\n"]), ["x\r", "\0y"]);
        assert_eq!(pieces(4096, &[b""]), Vec::<String>::new());
    }

    #[test]
    fn interval_rule() {
        assert_eq!(period(0, 0), Duration::from_secs(1));
        assert_eq!(period(-5, -1), Duration::from_secs(1));
        assert_eq!(period(0, 250_000_000), Duration::from_millis(250));
        assert_eq!(period(2, 500_000_000), Duration::from_millis(2500));
        assert_eq!(period(-1, 100), Duration::from_nanos(100));
    }

    #[test]
    fn shell_status_conventions() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(255 << 8)), 255);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
