//! `[SERVICE]` keys (spec §4).

mod common;

use std::path::{Path, PathBuf};

use common::env;
use kb_config::{parse_classic_str, validate_service, LogLevel, ServiceConfig};

fn check(body: &str) -> (ServiceConfig, Vec<String>, Vec<String>) {
    let cfg = parse_classic_str(
        &format!("[SERVICE]\n{body}"),
        Path::new("s.conf"),
        &mut env(&[]),
    )
    .unwrap();
    let (sc, e, w) = validate_service(&cfg);
    (
        sc,
        e.iter().map(|e| e.to_string()).collect(),
        w.iter().map(|w| w.to_string()).collect(),
    )
}

#[test]
fn all_typed_keys() {
    let (sc, e, w) = check(
        "    Flush 0.5\n    Grace 10\n    Log_Level warning\n    Log_File /tmp/kb.log\n    Parsers_File a.conf\n    Parsers_File b.conf\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port 2021\n    scheduler.base 2\n    scheduler.cap 30\n    json.escape_unicode off\n    storage.path /var/kb\n    Health_Check yes\n    HC_Errors_Count 3\n    HC_Retry_Failure_Count 4\n    HC_Period 10\n    storage.sync full\n    storage.backlog.mem_limit 5M\n    storage.max_chunks_up 64\n    storage.type filesystem\n    storage.metrics off\n    json.convert_nan_to_null on\n    Daemon off\n    security.fips_mode off\n    Hot_Reload On\n",
    );
    assert!(e.is_empty(), "{e:?}");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(sc.flush_secs, 0.5);
    assert_eq!(sc.grace_secs, 10);
    assert_eq!(sc.log_level, Some(LogLevel::Warn));
    assert_eq!(sc.log_file, Some(PathBuf::from("/tmp/kb.log")));
    assert_eq!(
        sc.parsers_files,
        [PathBuf::from("a.conf"), PathBuf::from("b.conf")]
    );
    assert!(sc.http_server);
    assert_eq!((sc.http_listen.as_str(), sc.http_port), ("127.0.0.1", 2021));
    assert_eq!((sc.scheduler_base, sc.scheduler_cap), (2, 30));
    assert!(!sc.json_escape_unicode);
    assert_eq!(sc.storage_path, Some(PathBuf::from("/var/kb")));
    assert!(sc.health_check);
    assert!(sc.hot_reload);
    assert_eq!(
        (sc.hc_errors_count, sc.hc_retry_failure_count, sc.hc_period),
        (3, 4, 10)
    );
    let storage: Vec<_> = sc.storage.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        storage,
        [
            "storage.sync",
            "storage.backlog.mem_limit",
            "storage.max_chunks_up",
            "storage.type",
            "storage.metrics"
        ]
    );
}

#[test]
fn bad_values_are_errors_with_locations() {
    let (_, e, _) = check(
        "    Flush 0\n    HTTP_Server maybe\n    Log_Level loud\n    HTTP_Port 70000\n    storage.sync sometimes\n    storage.type memrb\n    storage.backlog.mem_limit lots\n",
    );
    assert_eq!(
        e,
        [
            "s.conf:2: [service] invalid value '0' for property 'flush': expected a number of seconds greater than 0",
            "s.conf:3: [service] invalid value 'maybe' for property 'http_server': expected a boolean (on/off)",
            "s.conf:4: [service] invalid value 'loud' for property 'log_level': expected one of off, error, warn, info, debug, trace",
            "s.conf:5: [service] invalid value '70000' for property 'http_port': expected a TCP port (1-65535)",
            "s.conf:6: [service] invalid value 'sometimes' for property 'storage.sync': expected normal or full",
            "s.conf:7: [service] storage.type memrb is not supported by kinesis-bit",
            "s.conf:8: [service] invalid value 'lots' for property 'storage.backlog.mem_limit': expected a size",
        ]
    );
}

#[test]
fn scheduler_limits() {
    let (_, e, _) = check("    scheduler.base 0\n");
    assert_eq!(e, ["s.conf:2: [service] scheduler.base must be at least 1"]);
    let (_, e, _) = check("    scheduler.base 10\n    scheduler.cap 5\n");
    assert_eq!(
        e,
        ["s.conf:3: [service] scheduler.cap (5) must not be less than scheduler.base (10)"]
    );
    let (_, e, _) = check("    scheduler.base 3000\n");
    assert_eq!(
        e,
        ["s.conf:2: [service] scheduler.cap (2000) must not be less than scheduler.base (3000)"]
    );
}

#[test]
fn unsupported_features_are_errors() {
    let (_, e, _) = check(
        "    Daemon on\n    Plugins_File p.conf\n    Streams_File s.conf\n    security.fips_mode on\n",
    );
    assert_eq!(
        e,
        [
            "s.conf:2: [service] Daemon on is not supported by kinesis-bit",
            "s.conf:3: [service] 'plugins_file' is not supported by kinesis-bit",
            "s.conf:4: [service] 'streams_file' is not supported by kinesis-bit",
            "s.conf:5: [service] security.fips_mode on is not supported by kinesis-bit",
        ]
    );
}

#[test]
fn ignored_and_unknown_keys_warn() {
    let (_, e, w) = check(
        "    flush.adaptive on\n    Coro_Stack_Size 24576\n    dns.mode UDP\n    Hot_Reload.Ensure_Thread_Safety on\n    Enable_Chunk_Trace on\n    windows.maxstdio 512\n    sp.convert_from_str_to_num off\n    telemetry.enabled on\n    multiline_buffer_limit 2M\n    Flsuh 1\n",
    );
    assert!(e.is_empty());
    assert_eq!(w.len(), 10);
    assert_eq!(
        w[1],
        "s.conf:3: [service] key 'coro_stack_size' is accepted and ignored"
    );
    assert_eq!(
        w[9],
        "s.conf:11: [service] unknown key 'flsuh' is ignored; did you mean 'flush'?"
    );
}
