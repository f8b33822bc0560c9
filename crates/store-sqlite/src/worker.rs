//! Connections. SQLite has one writer at a time, so all writes go through one connection behind an async
//! mutex (no `SQLITE_BUSY`, no lock convoy): waiters queue without blocking runtime threads, and the holder
//! runs its short transaction inline, which saves two thread hand-offs per write over a writer thread
//! (measured: see `bench/`). Reads go to a small pool of reader threads, each with its own connection,
//! which WAL lets run beside the writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;

use portcullis_core::store::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The one write connection.
#[derive(Debug)]
pub(crate) struct Writer {
    connection: tokio::sync::Mutex<Connection>,
}

impl Writer {
    pub(crate) fn new(connection: Connection) -> Self {
        Self { connection: tokio::sync::Mutex::new(connection) }
    }

    /// Runs `job` on the write connection once it is free.
    pub(crate) async fn run<T>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.lock().await;
        job(&mut connection)
    }
}

/// A set of threads that each own a connection and run jobs from one queue.
#[derive(Debug, Clone)]
pub(crate) struct Workers {
    jobs: Sender<Job>,
}

impl Workers {
    /// Starts one thread per connection.
    pub(crate) fn start(name: &str, connections: Vec<Connection>) -> Result<Self, StoreError> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for (i, connection) in connections.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("sqlite-{name}-{i}"))
                .spawn(move || run(connection, &queue))
                .map_err(|e| StoreError::Unavailable(format!("cannot start the {name} thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on one of the connections and returns its result.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // A send error means the caller went away; its result is not needed.
            let _ = reply.send(job(connection));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite worker threads have stopped".to_owned()))?;
        answer.await.map_err(|_| StoreError::Backend("a SQLite job failed without an answer".to_owned()))?
    }
}

fn run(mut connection: Connection, queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A panicking job drops its reply (the caller gets an error); the thread keeps serving.
        if catch_unwind(AssertUnwindSafe(|| job(&mut connection))).is_err() {
            tracing::error!("a SQLite job panicked");
        }
    }
}
