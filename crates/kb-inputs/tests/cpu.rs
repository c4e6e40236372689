//! `cpu` through the real engine, reading fixture `/proc` files rewritten between intervals.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{build_errors, keys, props, run_input};
use kb_inputs::cpu::{self, CpuInput};
use tokio::time::sleep;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn floats(v: &rmpv::Value) -> Vec<f64> {
    v.as_map()
        .unwrap()
        .iter()
        .map(|(_, v)| match v {
            rmpv::Value::F64(f) => *f,
            other => panic!("not a float64: {other:?}"),
        })
        .collect()
}

// Fluent Bit's formulas (plugins/in_cpu/cpu.h), spelled out for the expected values.
fn sys_average(diff: f64, ticks: f64, n_cpus: f64, interval: f64) -> f64 {
    if diff == 0.0 {
        return 0.0;
    }
    (((diff / ticks) * 100.0) / n_cpus) / interval
}

fn usage(diff: f64, ticks: f64, interval: f64) -> f64 {
    if diff == 0.0 {
        return 0.0;
    }
    ((diff * 100.0) / ticks) / interval
}

const S0: &str = "cpu  100 10 50 1000 5 0 0 0 0 0\n\
                  cpu0 60 5 30 500 2 0 0 0 0 0\n\
                  cpu1 40 5 20 500 3 0 0 0 0 0\n\
                  intr 12345 1 2 3\nctxt 999\nbtime 1700000000\n";
const S1: &str = "cpu  155 15 90 1100 5 0 0 0 0 0\n\
                  cpu0 95 10 60 550 2 0 0 0 0 0\n\
                  cpu1 60 5 30 550 3 0 0 0 0 0\n\
                  intr 12346 1 2 3\n";
const S3: &str = "cpu  255 15 190 1300 5 0 0 0 0 0\n\
                  cpu0 195 10 110 650 2 0 0 0 0 0\n\
                  cpu1 60 5 80 650 3 0 0 0 0 0\n";

#[tokio::test(start_paused = true)]
async fn whole_system_percentages() {
    let dir = tempfile::tempdir().unwrap();
    let stat = dir.path().join("stat");
    write(&stat, S0);
    let input = CpuInput::from_props(&props(&cpu::PLUGIN, &[]).unwrap())
        .unwrap()
        .with_proc_root(dir.path())
        .with_clock_ticks(100);
    let shutdown = {
        let stat = stat.clone();
        async move {
            sleep(Duration::from_millis(500)).await;
            write(&stat, S1); // read at 1 s
            sleep(Duration::from_secs(1)).await;
            // unchanged at 2 s
            sleep(Duration::from_secs(1)).await;
            write(&stat, "cpu garbage\n"); // skipped at 3 s
            sleep(Duration::from_secs(1)).await;
            write(&stat, S3); // read at 4 s: two intervals since the last good sample
            sleep(Duration::from_secs(1)).await;
        }
    };
    let (rec, _) = run_input(Box::new(input), None, shutdown).await;
    let events = rec.events();
    assert_eq!(events.len(), 3, "{events:?}");
    let names = [
        "cpu_p",
        "user_p",
        "system_p",
        "cpu0.p_cpu",
        "cpu0.p_user",
        "cpu0.p_system",
        "cpu1.p_cpu",
        "cpu1.p_user",
        "cpu1.p_system",
    ];
    for e in &events {
        assert_eq!(keys(&e.record), names);
    }
    let (t, n) = (100.0, 2.0);
    assert_eq!(
        floats(&events[0].record),
        [
            sys_average(100.0, t, n, 1.0),
            sys_average(60.0, t, n, 1.0),
            sys_average(40.0, t, n, 1.0),
            usage(70.0, t, 1.0),
            usage(40.0, t, 1.0),
            usage(30.0, t, 1.0),
            usage(30.0, t, 1.0),
            usage(20.0, t, 1.0),
            usage(10.0, t, 1.0),
        ]
    );
    let approx = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    assert!(approx(
        &floats(&events[0].record),
        &[50.0, 30.0, 20.0, 70.0, 40.0, 30.0, 30.0, 20.0, 10.0]
    ));
    assert_eq!(floats(&events[1].record), [0.0; 9]);
    assert_eq!(
        floats(&events[2].record),
        [
            sys_average(200.0, t, n, 2.0),
            sys_average(100.0, t, n, 2.0),
            sys_average(100.0, t, n, 2.0),
            usage(150.0, t, 2.0),
            usage(100.0, t, 2.0),
            usage(50.0, t, 2.0),
            usage(50.0, t, 2.0),
            0.0,
            usage(50.0, t, 2.0),
        ]
    );
    assert!(approx(
        &floats(&events[2].record),
        &[50.0, 25.0, 25.0, 75.0, 50.0, 25.0, 25.0, 0.0, 25.0]
    ));
}

#[tokio::test(start_paused = true)]
async fn one_process() {
    let dir = tempfile::tempdir().unwrap();
    // 4 CPUs in /proc/stat: process averages are divided by 4, as Fluent Bit does.
    write(
        &dir.path().join("stat"),
        "cpu 1 1 1 1 1\ncpu0 1 1 1 1 1\ncpu1 1 1 1 1 1\ncpu2 1 1 1 1 1\ncpu3 1 1 1 1 1\n",
    );
    std::fs::create_dir(dir.path().join("1234")).unwrap();
    let pid_stat = dir.path().join("1234").join("stat");
    let line = |utime: u64, stime: u64| {
        format!("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 10 0 0 0 {utime} {stime} 0 0 20 0 1 0 5 6 7\n")
    };
    write(&pid_stat, &line(100, 50));
    let input = CpuInput::from_props(
        &props(&cpu::PLUGIN, &[("PID", "1234"), ("interval_sec", "2")]).unwrap(),
    )
    .unwrap()
    .with_proc_root(dir.path())
    .with_clock_ticks(100);
    let shutdown = {
        let pid_stat = pid_stat.clone();
        async move {
            sleep(Duration::from_secs(1)).await;
            write(&pid_stat, &line(150, 75));
            sleep(Duration::from_secs(2)).await;
            std::fs::remove_file(&pid_stat).unwrap(); // process gone at 4 s: skipped
            sleep(Duration::from_secs(1)).await;
        }
    };
    let (rec, _) = run_input(Box::new(input), None, shutdown).await;
    let events = rec.events();
    assert_eq!(events.len(), 1);
    assert_eq!(keys(&events[0].record), ["cpu_p", "user_p", "system_p"]);
    assert_eq!(
        floats(&events[0].record),
        [
            sys_average(75.0, 100.0, 4.0, 2.0),
            sys_average(50.0, 100.0, 4.0, 2.0),
            sys_average(25.0, 100.0, 4.0, 2.0),
        ]
    );
    assert_eq!(floats(&events[0].record), [9.375, 6.25, 3.125]);
}

#[tokio::test(start_paused = true)]
async fn sub_second_interval_and_missing_proc() {
    let dir = tempfile::tempdir().unwrap();
    // No stat file at all: every sample is skipped with a (rate-limited) warning, no panic.
    let input = CpuInput::from_props(
        &props(
            &cpu::PLUGIN,
            &[("interval_sec", "0"), ("interval_nsec", "250000000")],
        )
        .unwrap(),
    )
    .unwrap()
    .with_proc_root(dir.path());
    assert_eq!(input.interval(), Duration::from_millis(250));
    let (rec, _) = run_input(Box::new(input), None, sleep(Duration::from_secs(2))).await;
    assert!(rec.events().is_empty());

    let zero = CpuInput::from_props(
        &props(
            &cpu::PLUGIN,
            &[("interval_sec", "0"), ("interval_nsec", "0")],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        zero.interval(),
        Duration::from_secs(1),
        "0/0 falls back to 1 s"
    );
}

#[test]
fn pid_validation() {
    let e = build_errors(&cpu::PLUGIN, &[("pid", "abc")]);
    assert_eq!(
        e,
        ["/etc/kb/test.conf:2: [input cpu.0] invalid value 'abc' for property 'pid': expected an integer"]
    );
    let e = build_errors(&cpu::PLUGIN, &[("interval_sec", "1"), ("pid", "0")]);
    assert!(e[0].starts_with("/etc/kb/test.conf:3: [input cpu.0] 'pid' must be a process id"));
    assert!(common::build(&cpu::PLUGIN, &[("pid", "-1")]).is_ok());
}
