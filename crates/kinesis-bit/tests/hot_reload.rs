//! SIGHUP with `Hot_Reload On`: a broken new configuration is logged and the running pipeline
//! goes on; a good one replaces the pipeline after the old one delivered what it held. Without
//! `Hot_Reload`, SIGHUP is logged and ignored.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{agent, terminate, wait_with_timeout};

/// Lines a child prints, collected by a thread as they come.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(src: impl std::io::Read + Send + 'static) -> Self {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(src).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Wait until a line contains `needle`; returns its index.
    fn wait_for(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self.snapshot()[from.min(self.len())..]
                .iter()
                .position(|l| l.contains(needle))
            {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} after line {from}: {:#?}",
                self.snapshot()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn config(value: u32, hot_reload: bool) -> String {
    format!(
        "[SERVICE]\n    Flush 0.2\n    Grace 2\n    Hot_Reload {}\n\n[INPUT]\n    Name dummy\n    Tag app\n    Rate 20\n    Dummy {{\"v\":{value}}}\n\n[OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n",
        if hot_reload { "On" } else { "Off" }
    )
}

fn start(conf: &std::path::Path) -> (Child, Lines, Lines) {
    let mut child = agent()
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::follow(child.stdout.take().unwrap());
    let err = Lines::follow(child.stderr.take().unwrap());
    (child, out, err)
}

fn hup(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_running_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(&conf, config(1, true)).unwrap();
    let (mut child, out, err) = start(&conf);
    out.wait_for(r#""v":1"#, 0);

    // A broken configuration: logged with its location, the old pipeline goes on.
    std::fs::write(&conf, config(1, true).replace("Rate 20", "Rte 20")).unwrap();
    hup(&child);
    let e = err.wait_for("the running pipeline goes on unchanged", 0);
    let all = err.snapshot();
    assert!(
        all[..e]
            .iter()
            .any(|l| l.contains("kb.conf:9") && l.contains("'rte'")),
        "{all:#?}"
    );
    let before = out.len();
    out.wait_for(r#""v":1"#, before);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent must keep running"
    );

    // A good one: the new pipeline replaces the old one.
    std::fs::write(&conf, config(2, true)).unwrap();
    hup(&child);
    let second = err.wait_for("the new configuration is running", e);
    let first_new = out.wait_for(r#""v":2"#, 0);
    std::thread::sleep(Duration::from_millis(600));
    let lines = out.snapshot();
    assert!(
        lines[first_new..].iter().all(|l| l.contains(r#""v":2"#)),
        "records of the old pipeline after the new one started: {lines:#?}"
    );

    // The configuration in force decides about the next SIGHUP: one that turns Hot_Reload
    // off is loaded, and the SIGHUP after it is ignored.
    std::fs::write(&conf, config(3, false)).unwrap();
    hup(&child);
    let third = err.wait_for("the new configuration is running", second + 1);
    out.wait_for(r#""v":3"#, 0);
    std::fs::write(&conf, config(4, false)).unwrap();
    hup(&child);
    err.wait_for("hot reload is off", third);
    let n = out.len();
    out.wait_for(r#""v":3"#, n);
    assert!(!out.snapshot().iter().any(|l| l.contains(r#""v":4"#)));

    terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {:#?}", err.snapshot());
}

#[test]
fn sighup_without_hot_reload_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kb.conf");
    std::fs::write(&conf, config(1, false)).unwrap();
    let (child, out, err) = start(&conf);
    out.wait_for(r#""v":1"#, 0);
    std::fs::write(&conf, config(2, false)).unwrap();
    hup(&child);
    err.wait_for("hot reload is off", 0);
    let n = out.len();
    out.wait_for(r#""v":1"#, n);
    assert!(!out.snapshot().iter().any(|l| l.contains(r#""v":2"#)));
    terminate(&child);
    let o = wait_with_timeout(child, Duration::from_secs(20));
    assert!(o.status.success(), "{:?}", o.status);
}
