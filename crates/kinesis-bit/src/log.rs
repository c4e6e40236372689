//! Log lines in Fluent Bit's format, so existing log parsing keeps working:
//! `[2026/11/25 18:00:00.123] [ info] [engine] message`.
//!
//! The component is the `component` field of the innermost `plugin` span (set by the engine
//! around each input and output task, e.g. `output:stdout.0`), else the event's target.

use std::collections::HashMap;
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
                if let Some(c) = ext
                    .get::<FormattedFields<N>>()
                    .and_then(|f| component_of(f.fields.as_str()))
                {
                    component = Some(c.to_string());
                    break;
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

/// The level an event is filtered at. Events of other crates (aws-config, hyper, rustls, …)
/// count as debug at least: their text is written for programmers (Debug-formatted errors,
/// fields instead of sentences), and what matters to a user is reported by a line of ours.
/// aws-config's credential chain, for one, warns on every flush that finds no credentials.
fn effective_level(meta: &tracing::Metadata<'_>) -> Level {
    let ours = meta
        .module_path()
        .is_none_or(|m| m.starts_with("kb_") || m.starts_with("kinesis_bit"));
    if ours {
        *meta.level()
    } else {
        (*meta.level()).max(Level::DEBUG)
    }
}

/// The component named by a `plugin` span's formatted fields (`component=output:stdout:stdout.0`).
fn component_of(fields: &str) -> Option<&str> {
    let rest = fields.split("component=").nth(1)?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// Install the global logger: Fluent Bit's line format at `level`, to `file` (appended,
/// created if missing) or to stderr. `instance_levels` are per-instance `log_level` keys, by
/// component (`input:cpu:cpu.0`); they apply to what runs inside that instance's span.
pub fn init(
    level: LogLevel,
    file: Option<&Path>,
    instance_levels: HashMap<String, LogLevel>,
) -> io::Result<()> {
    use tracing_subscriber::filter::{DynFilterFn, LevelFilter};
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let global = filter_for(level);
    let overrides: HashMap<String, LevelFilter> = instance_levels
        .into_iter()
        .map(|(k, v)| (k, filter_for(v)))
        .collect();
    let max = overrides
        .values()
        .copied()
        .chain([global])
        .max()
        .unwrap_or(global);
    let filter = DynFilterFn::new(move |meta, cx| {
        // Spans stay enabled: the per-instance decision needs them.
        if meta.is_span() {
            return true;
        }
        let level = effective_level(meta);
        if let Some(span) = cx.lookup_current() {
            for s in span.scope() {
                let ext = s.extensions();
                let component = ext
                    .get::<FormattedFields<DefaultFields>>()
                    .and_then(|f| component_of(f.fields.as_str()).map(str::to_string));
                if let Some(l) = component.and_then(|c| overrides.get(&c).copied()) {
                    return l >= level;
                }
            }
        }
        global >= level
    })
    .with_max_level_hint(max);
    let layer = tracing_subscriber::fmt::layer().event_format(FluentBitFormat);
    let layer = match file {
        Some(path) => {
            let f = OpenOptions::new().create(true).append(true).open(path)?;
            layer.with_writer(Mutex::new(f)).boxed()
        }
        None => layer.with_writer(io::stderr).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(io::Error::other)
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
