//! Log lines in Fluent Bit's format, so existing log parsing keeps working:
//! `[2026/11/25 18:00:00.123] [ info] [engine] message`.
//!
//! The component is the `component` field of the innermost `plugin` span (set by the engine
//! around each input and output task, e.g. `output:stdout.0`), else the event's target.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use kb_config::service::LogLevel;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Fluent Bit's five-character level tag.
fn level_tag(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => " warn",
        Level::INFO => " info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Formats events as Fluent Bit log lines.
pub struct FluentBitFormat;

impl<S, N> FormatEvent<S, N> for FluentBitFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = jiff::Zoned::now();
        write!(
            writer,
            "[{}] [{}] ",
            now.strftime("%Y/%m/%d %H:%M:%S%.3f"),
            level_tag(event.metadata().level())
        )?;
        // An explicit target (`target: "engine"`) names the component, as Fluent Bit's
        // `[engine]`/`[input]` lines do; otherwise the enclosing plugin span does.
        let target = event.metadata().target();
        let mut component: Option<String> = (!target.contains("::")).then(|| target.to_string());
        if let (None, Some(scope)) = (&component, ctx.event_scope()) {
            for span in scope {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if let Some(rest) = fields.fields.as_str().split("component=").nth(1) {
                        component = Some(rest.split(' ').next().unwrap_or(rest).to_string());
                        break;
                    }
                }
            }
        }
        let component = component.unwrap_or_else(|| match target.rsplit_once("::") {
            Some((_, last)) => last.to_string(),
            None => target.to_string(),
        });
        write!(writer, "[{component}] ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The tracing level filter for a Fluent Bit log level.
pub fn filter_for(level: LogLevel) -> tracing_subscriber::filter::LevelFilter {
    use tracing_subscriber::filter::LevelFilter;
    match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Install the global logger: Fluent Bit's line format at `level`, to `file` (appended,
/// created if missing) or to stderr.
pub fn init(level: LogLevel, file: Option<&Path>) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .event_format(FluentBitFormat)
        .with_max_level(filter_for(level));
    match file {
        Some(path) => {
            let f = OpenOptions::new().create(true).append(true).open(path)?;
            builder.with_writer(Mutex::new(f)).init();
        }
        None => builder.with_writer(io::stderr).init(),
    }
    Ok(())
}

/// Write one Fluent Bit–formatted line straight to stderr, for errors found before the logger
/// is set up (configuration errors decide where the log goes).
pub fn early(level: Level, component: &str, message: &dyn fmt::Display) {
    let now = jiff::Zoned::now();
    eprintln!(
        "[{}] [{}] [{component}] {message}",
        now.strftime("%Y/%m/%d %H:%M:%S%.3f"),
        level_tag(&level)
    );
}
