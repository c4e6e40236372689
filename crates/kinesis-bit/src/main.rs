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
use kb_config::ConfigError;
use kb_core::metrics::Metrics;
use tracing::Level;

use crate::pipeline::Registry;

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
            eprintln!("unknown {} '{name}'", section.kind.as_str());
            ExitCode::from(1)
        }
    }
}

fn report_errors(errors: &[ConfigError]) -> ExitCode {
    for e in errors {
        log::early(Level::ERROR, "config", e);
    }
    eprintln!("Error: configuration file contains errors. Aborting");
    ExitCode::from(1)
}

fn run(cli: CommandLine, registry: Registry) -> ExitCode {
    let started = SystemTime::now();
    let mut env = Env::new();
    let cfg = match kb_config::load::load(&cli, &mut env) {
        Ok(cfg) => cfg,
        Err(errs) => return report_errors(&errs.0),
    };
    let (service, mut errors, service_warnings) = validate_service(&cfg);
    let built = pipeline::build(&cfg, &service, &registry);
    let built = match built {
        Ok(b) if errors.is_empty() => b,
        Ok(_) => return report_errors(&errors),
        Err(errs) => {
            errors.extend(errs);
            return report_errors(&errors);
        }
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
    for w in cfg
        .warnings
        .iter()
        .chain(&service_warnings)
        .chain(&built.warnings)
    {
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
        match runtime.block_on(start_admin(&service, built.engine.metrics(), started)) {
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
    let result = runtime.block_on(built.engine.run(shutdown_signal()));
    if let Some(server) = admin {
        runtime.block_on(server.shutdown());
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
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

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(target: "engine", "cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(target: "engine", "caught signal ({name})");
}
