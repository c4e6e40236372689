//! `kb-sink`: the kb-testkit Kinesis PutRecords / Firehose PutRecordBatch sink as a program (benchmarks, manual runs).
//! Prints its endpoint on the first line of stdout; on SIGINT/SIGTERM prints one JSON line with
//! the counters and exits.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use kb_testkit::sink::{FaultPlan, Sink, SinkConfig};

#[derive(Parser, Debug)]
#[command(
    name = "kb-sink",
    about = "Kinesis PutRecords and Firehose PutRecordBatch sink with deterministic fault injection"
)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// Fraction of entries failed with one of --fail-codes.
    #[arg(long, default_value_t = 0.0)]
    fail_entries: f64,
    /// Comma-separated ErrorCodes for --fail-entries.
    #[arg(
        long,
        default_value = "ProvisionedThroughputExceededException,InternalFailure"
    )]
    fail_codes: String,
    /// Fraction of entries failed with InvalidArgumentException (never acceptable).
    #[arg(long, default_value_t = 0.0)]
    reject_entries: f64,
    /// Fraction of requests answered 400 ProvisionedThroughputExceededException.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Fraction of requests answered 500 InternalFailure.
    #[arg(long, default_value_t = 0.0)]
    error500: f64,
    /// Fraction of requests answered 503 ServiceUnavailable.
    #[arg(long, default_value_t = 0.0)]
    error503: f64,
    /// Fraction of requests answered 403 ExpiredTokenException.
    #[arg(long, default_value_t = 0.0)]
    expired_token: f64,
    /// Fraction of requests answered 200 with an unparseable body.
    #[arg(long, default_value_t = 0.0)]
    unparseable: f64,
    /// Fraction of requests answered 200 without FailedRecordCount.
    #[arg(long, default_value_t = 0.0)]
    missing_count: f64,
    /// Fraction of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Delay before every PutRecords answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Seed of the fault decisions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Count accepted records by this numeric JSON field of the data.
    #[arg(long)]
    id_field: Option<String>,
    /// Verify SigV4 signatures: ACCESS_KEY_ID:SECRET.
    #[arg(long)]
    verify_sigv4: Option<String>,
    /// Stop answering PutRecords for --stall-secs, this many seconds after start.
    #[arg(long, requires = "stall_secs")]
    stall_after_secs: Option<f64>,
    /// Length of the stall (see --stall-after-secs).
    #[arg(long, requires = "stall_after_secs")]
    stall_secs: Option<f64>,
    /// Worker threads (0 = number of CPUs).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() {
    // Keep freed request bodies in the heap instead of unmapping them, as the agent does (see
    // crates/kinesis-bit/src/malloc.rs): page faults were 8 % of the sink's CPU in a profile.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((read(c), read(k))),
        _ => None,
    };
    let codes: Vec<&str> = args
        .fail_codes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut faults = FaultPlan::new()
        .seed(args.seed)
        .fail_entries(args.fail_entries, &codes)
        .reject_entries(args.reject_entries)
        .throttle(args.throttle)
        .error500(args.error500)
        .error503(args.error503)
        .expired_token(args.expired_token)
        .unparseable(args.unparseable)
        .missing_failed_count(args.missing_count)
        .drop_connection(args.drop);
    if args.delay_ms > 0 {
        faults = faults.delay(Duration::from_millis(args.delay_ms));
    }
    let verify_sigv4 = args.verify_sigv4.as_deref().map(|s| {
        let (a, b) = s.split_once(':').unwrap_or_else(|| {
            eprintln!("kb-sink: --verify-sigv4 wants ACCESS_KEY_ID:SECRET");
            std::process::exit(2)
        });
        (a.to_string(), b.to_string())
    });
    let config = SinkConfig {
        port: args.port,
        tls,
        verify_sigv4,
        faults,
        store: false,
        id_field: args.id_field.clone(),
        worker_threads: args.threads,
    };
    let sink = std::sync::Arc::new(Sink::start_blocking(config));
    if let (Some(after), Some(len)) = (args.stall_after_secs, args.stall_secs) {
        let sink = sink.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(after));
            sink.stall(Duration::from_secs_f64(len));
        });
    }
    println!("{}", sink.endpoint());
    let _ = std::io::stdout().flush();

    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    signals.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    let mut summary = serde_json::to_value(sink.stats()).expect("stats");
    summary["endpoint"] = sink.endpoint().into();
    if args.id_field.is_some() {
        summary["duplicate_ids"] = (sink.duplicates().len() as u64).into();
    }
    println!("{summary}");
    let _ = std::io::stdout().flush();
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("kb-sink: read {path}: {e}");
        std::process::exit(2)
    })
}
