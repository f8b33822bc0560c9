//! The script pool: a fixed number of threads run every script, so at most that many QuickJS heaps exist at
//! once (worst-case script memory is `threads × memory limit`), and CPU-bound scripts cannot take every core
//! from the async workers that answer `/health` and the other requests.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use portcullis_core::{Error, ErrorCode};
use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// How long a script thread stays awake for its next job, and a caller for its answer, before they sleep.
/// Waking a sleeping thread costs tens of µs on a virtual machine, whose idle vCPU is halted: a call with the
/// seed's hook took about 130 µs longer than a call without scripts while the hook itself took 23 µs
/// (`portcullis-bench --pairs connectors`). Under load the next job and the answer come sooner than this, and
/// the waiting side yields its core (or worker) to any other thread (or task) meanwhile.
const STAY_AWAKE: Duration = Duration::from_micros(200);

/// The next job, awake for it at first (see [`STAY_AWAKE`]); an error once the runtime is gone.
fn next_job(receiver: &Mutex<mpsc::Receiver<Job>>) -> Result<Job, mpsc::RecvError> {
    let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
    let began = Instant::now();
    loop {
        match receiver.try_recv() {
            Ok(job) => return Ok(job),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) if began.elapsed() < STAY_AWAKE => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return receiver.recv(),
        }
    }
}

/// The script thread's answer, awake for it at first (see [`STAY_AWAKE`]).
async fn answer<T>(mut result: oneshot::Receiver<T>) -> Result<T, oneshot::error::RecvError> {
    let began = Instant::now();
    loop {
        match result.try_recv() {
            Ok(value) => return Ok(value),
            Err(oneshot::error::TryRecvError::Empty) if began.elapsed() < STAY_AWAKE => tokio::task::yield_now().await,
            Err(_) => return result.await,
        }
    }
}

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
                // Until the runtime is gone.
                while let Ok(job) = next_job(&receiver) {
                    job();
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
        match answer(result).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(Error::new(ErrorCode::ScriptError).with_internal("the script host panicked")),
            Err(e) => Err(Error::new(ErrorCode::ScriptError).with_internal(e)),
        }
    }
}
