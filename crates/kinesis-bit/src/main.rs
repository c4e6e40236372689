//! kinesis-bit: a Fluent Bit–compatible log agent that ships logs to Amazon Kinesis Data
//! Streams. This binary parses the command line, loads and validates the configuration,
//! sets up logging and signals, starts the monitoring server (`HTTP_Server On`), and runs the
//! engine.

mod help;
mod log;
mod malloc;
mod pipeline;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use kb_admin::{AdminConfig, AdminServer, HealthConfig};
use kb_config::cli::{parse_command_line, CommandLine};
use kb_config::env::Env;
use kb_config::service::{validate_service, LogLevel, ServiceConfig};
use kb_config::{ConfigError, Location};
use kb_core::metrics::Metrics;
use tracing::Level;

use crate::pipeline::{Registry, Rejected};

fn main() -> ExitCode {
    malloc::keep_large_blocks();
    let args: Vec<OsString> = std::env::args_os().collect();
    let registry = Registry::builtin();
    let cli = match parse_command_line(args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("Try 'kinesis-bit --help' for the list of options.");
            return ExitCode::from(1);
        }
    };
    if let Some(dir) = &cli.workdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("cannot change to directory {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    }
    if cli.version {
        print!("{}", help::version());
        return ExitCode::SUCCESS;
    }
    if cli.help {
        return print_help(&cli, &registry);
    }
    run(cli, registry)
}

fn print_help(cli: &CommandLine, registry: &Registry) -> ExitCode {
    let Some(section) = cli.sections.last() else {
        print!("{}", help::usage(registry));
        return ExitCode::SUCCESS;
    };
    let name = section.plugin_name().unwrap_or_default();
    match registry.spec(section.kind, name) {
        Some(spec) => {
            print!("{}", help::plugin_help(&spec));
            ExitCode::SUCCESS
        }
        None => {
            let names = registry.names(section.kind);
            eprintln!("{}", pipeline::unknown_plugin(section.kind, name, &names));
            ExitCode::from(1)
        }
    }
}

/// Log the warnings (an unset variable often explains an error), then every error, then
/// Fluent Bit's closing line, naming the command line when no file is involved.
fn report_errors(rejected: &Rejected) -> ExitCode {
    for w in &rejected.warnings {
        log::early(Level::WARN, "config", w);
    }
    for e in &rejected.errors {
        log::early(Level::ERROR, "config", e);
    }
    eprintln!("{}", closing_line(&rejected.errors));
    ExitCode::from(1)
}

/// `Error: configuration file contains errors. Aborting`, or `command line` in place of
/// `configuration file` when every error comes from the command line.
fn closing_line(errors: &[ConfigError]) -> &'static str {
    let only_cli = !errors.is_empty()
        && errors
            .iter()
            .all(|e| matches!(e.location, Location::CommandLine { .. }));
    if only_cli {
        "Error: command line contains errors. Aborting"
    } else {
        "Error: configuration file contains errors. Aborting"
    }
}

/// A configuration read, validated and built into an engine.
struct Loaded {
    built: pipeline::Built,
    service: ServiceConfig,
    warnings: Vec<String>,
}

/// Read the configuration named by `cli` (file and command line) and build the pipeline whose
/// metrics go to `metrics`; every error and warning is returned, none is logged here.
fn load(cli: &CommandLine, registry: &Registry, metrics: Arc<Metrics>) -> Result<Loaded, Rejected> {
    let mut env = Env::new();
    let cfg = kb_config::load::load(cli, &mut env).map_err(|errs| Rejected {
        errors: errs.0,
        warnings: Vec::new(),
    })?;
    let (service, errors, mut warnings) = validate_service(&cfg);
    warnings.splice(0..0, cfg.warnings.iter().cloned());
    match pipeline::build(&cfg, &service, registry, metrics) {
        Ok(built) if errors.is_empty() => {
            let warnings = warnings
                .iter()
                .chain(&built.warnings)
                .map(ToString::to_string)
                .collect();
            Ok(Loaded {
                built,
                service,
                warnings,
            })
        }
        Ok(built) => {
            warnings.extend(built.warnings);
            Err(Rejected { errors, warnings })
        }
        Err(mut rejected) => {
            warnings.append(&mut rejected.warnings);
            rejected.errors.splice(0..0, errors);
            Err(Rejected {
                errors: rejected.errors,
                warnings,
            })
        }
    }
}

fn run(cli: CommandLine, registry: Registry) -> ExitCode {
    let started = SystemTime::now();
    let metrics = Arc::new(Metrics::default());
    let Loaded {
        built,
        service,
        warnings,
    } = match load(&cli, &registry, metrics.clone()) {
        Ok(l) => l,
        Err(rejected) => return report_errors(&rejected),
    };

    // FLB_LOG_LEVEL beats the command line, which beats the file (merged in `service`).
    let level = match std::env::var("FLB_LOG_LEVEL") {
        Ok(v) if !v.is_empty() => match v.parse::<LogLevel>() {
            Ok(l) => l,
            Err(_) => {
                eprintln!(
                    "invalid FLB_LOG_LEVEL '{v}': use off, error, warn, info, debug or trace"
                );
                return ExitCode::from(1);
            }
        },
        _ => service.log_level.unwrap_or(LogLevel::Info),
    };
    if let Err(e) = log::init(level, service.log_file.as_deref(), built.log_levels.clone()) {
        let path = service
            .log_file
            .as_deref()
            .unwrap_or(std::path::Path::new("-"));
        eprintln!("cannot open log file {}: {e}", path.display());
        return ExitCode::from(1);
    }
    for w in &warnings {
        tracing::warn!(target: "config", "{w}");
    }
    if cli.dry_run {
        eprintln!("configuration test is successful");
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(255);
        }
    };
    tracing::info!(target: "kinesis-bit", "version={}, compatible with Fluent Bit 5.1.1", env!("CARGO_PKG_VERSION"));
    // Bound before anything runs, so a taken port stops the start with nothing collected.
    let admin = if service.http_server {
        match runtime.block_on(start_admin(&service, metrics.clone(), started)) {
            Ok(server) => Some(server),
            Err(e) => {
                // Only detectable at start, like a plugin's init failure (spec §8: 255).
                tracing::error!(target: "http_server", "{e}");
                eprintln!("Initialization failed");
                return ExitCode::from(255);
            }
        }
    } else {
        None
    };
    tracing::info!(target: "engine", "started (pid={})", std::process::id());
    if let Some(server) = &admin {
        tracing::info!(
            target: "http_server",
            "listen iface={} tcp_port={}",
            service.http_listen,
            server.local_addr().port()
        );
    }
    let mut engine = built.engine;
    // Whether the next SIGHUP reloads follows the configuration in force, not the first one.
    let mut hot_reload = service.hot_reload;
    let result = loop {
        let mut reloaded = None;
        let stop = stop_or_reload(&cli, &registry, &metrics, hot_reload, &mut reloaded);
        let result = runtime.block_on(engine.run(stop));
        match (result, reloaded) {
            (Ok(_), Some(next)) => {
                // The old pipeline delivered what it held (within its Grace) before this.
                for w in &next.warnings {
                    tracing::warn!(target: "config", "{w}");
                }
                tracing::info!(target: "reload", "the new configuration is running");
                hot_reload = next.service.hot_reload;
                engine = next.built.engine;
            }
            (result, _) => break result,
        }
    };
    if let Some(server) = admin {
        runtime.block_on(server.shutdown());
    }
    match result {
        // An input or filter may choose the status (exec's Propagate_Exit_Code, expect's
        // action exit), as Fluent Bit's config->exit_status_code does.
        Ok(report) => report.exit_status.map_or(ExitCode::SUCCESS, ExitCode::from),
        Err(e) => {
            tracing::error!(target: "engine", "{e}");
            eprintln!("Initialization failed");
            ExitCode::from(255)
        }
    }
}

/// Start the monitoring server of `HTTP_Server On` on `HTTP_Listen`:`HTTP_Port`.
async fn start_admin(
    service: &ServiceConfig,
    metrics: Arc<Metrics>,
    started: SystemTime,
) -> Result<AdminServer, kb_admin::AdminError> {
    let config = AdminConfig {
        listen: service.http_listen.clone(),
        port: service.http_port,
        health_check: service.health_check.then_some(HealthConfig {
            errors_count: service.hc_errors_count,
            retry_failure_count: service.hc_retry_failure_count,
            period_secs: service.hc_period,
        }),
        version: env!("CARGO_PKG_VERSION"),
    };
    AdminServer::start(config, metrics, started).await
}

/// Resolves on SIGTERM or SIGINT, or on SIGHUP once a reloaded configuration is built (put in
/// `reloaded`). A configuration that does not load is logged and the running pipeline goes on;
/// without `Hot_Reload` SIGHUP is logged and ignored.
async fn stop_or_reload(
    cli: &CommandLine,
    registry: &Registry,
    metrics: &Arc<Metrics>,
    hot_reload: bool,
    reloaded: &mut Option<Loaded>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!(target: "engine", "cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        tracing::info!(target: "engine", "caught signal ({name})");
        if name != "SIGHUP" {
            return;
        }
        if !hot_reload {
            tracing::warn!(target: "reload", "hot reload is off (Hot_Reload On or -Y turns it on); SIGHUP ignored");
            continue;
        }
        match load(cli, registry, metrics.clone()) {
            Ok(next) => {
                tracing::info!(target: "reload", "configuration reloaded; stopping the running pipeline (it delivers what it holds within Grace)");
                *reloaded = Some(next);
                return;
            }
            Err(Rejected { errors, warnings }) => {
                for w in &warnings {
                    tracing::warn!(target: "reload", "{w}");
                }
                for e in &errors {
                    tracing::error!(target: "reload", "{e}");
                }
                tracing::error!(target: "reload", "the new configuration has {}; the running pipeline goes on unchanged", kb_core::count(errors.len() as u64, "error"));
            }
        }
    }
}
