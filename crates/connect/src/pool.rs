//! The script pool: a fixed number of threads run every script, so at most that many QuickJS heaps exist at
//! once (worst-case script memory is `threads × memory limit`), and CPU-bound scripts cannot take every core
//! from the async workers that answer `/health` and the other requests.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_core::{Error, ErrorCode};
use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Fixed script threads and the admission in front of them.
#[derive(Debug)]
pub(crate) struct ScriptPool {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl ScriptPool {
    /// `size` threads (0: half the CPUs, at least 1); a job waits at most `wait` for one.
    ///
    /// # Errors
    /// A thread cannot be started.
    pub(crate) fn new(size: usize, wait: Duration) -> std::io::Result<Self> {
        let size =
            if size == 0 { std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)) } else { size };
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..size {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new().name(format!("connector-script-{n}")).spawn(move || {
                loop {
                    let job = receiver.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(),
                        // The runtime is gone.
                        Err(_) => break,
                    }
                }
            })?;
        }
        Ok(Self { jobs: sender, slots: Arc::new(Semaphore::new(size)), wait })
    }

    /// Runs `work` on a script thread. The slot is held until `work` returns, also when the caller stops
    /// waiting (the call's budget stops the script itself).
    ///
    /// # Errors
    /// `scriptsBusy` (with `Retry-After`) when no slot frees up in time; `scriptError` if the host failed.
    pub(crate) async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let slot = tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("portcullis_connector_scripts_busy_total").increment(1);
                Error::new(ErrorCode::ScriptsBusy).with_retry_after(1)
            })?
            .map_err(|e| Error::new(ErrorCode::ScriptError).with_internal(e))?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            drop(slot);
            let _ = done.send(outcome);
            // Between jobs, so no caller waits for it.
            crate::script::tidy();
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::new(ErrorCode::ScriptError).with_internal("the script threads are gone"))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(Error::new(ErrorCode::ScriptError).with_internal("the script host panicked")),
            Err(e) => Err(Error::new(ErrorCode::ScriptError).with_internal(e)),
        }
    }
}
