//! The background side of the metadata filters: a thread with its own single-threaded tokio
//! runtime, started by the first record that needs a request (a factory starts nothing), that
//! runs the filter's requests as tasks. It ends when the filter is dropped (configuration
//! reload, shutdown): the job channel closes and the runtime drops its tasks.
//!
//! A thread of its own rather than a task on the engine's runtime: the filter may wait a few
//! milliseconds for a first answer (see the kubernetes filter), which must never stall the
//! runtime that would run the request, whatever its flavour and number of workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A lazily started request runner.
pub struct Worker {
    name: String,
    tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Job>>>,
}

impl Worker {
    /// A runner whose thread will be called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Worker {
            name: name.into(),
            tx: Mutex::new(None),
        }
    }

    /// Run `job` in the background; `false` if the thread could not be started.
    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.is_none() {
            let (s, mut r) = tokio::sync::mpsc::unbounded_channel::<Job>();
            let started = std::thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!("metadata worker: cannot start a runtime: {e}");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        while let Some(job) = r.recv().await {
                            tokio::spawn(job);
                        }
                    });
                });
            if let Err(e) = started {
                tracing::error!("metadata worker: cannot start a thread: {e}");
                return false;
            }
            *tx = Some(s);
        }
        tx.as_ref().is_some_and(|s| s.send(Box::pin(job)).is_ok())
    }
}

/// A warning logged at most once per interval; the ones in between are counted and reported
/// with the next one.
pub struct RateLimited {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// At most one message per `every`.
    pub fn new(every: Duration) -> Self {
        RateLimited {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Log `msg()` at warn level unless one was logged within the interval.
    pub fn warn(&self, msg: impl FnOnce() -> String) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        let n = self.suppressed.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!("{} ({n} similar messages suppressed)", msg());
        } else {
            tracing::warn!("{}", msg());
        }
    }
}
