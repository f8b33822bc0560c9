//! Connections. SQLite has one writer at a time, so all writes go through one connection behind an async
//! mutex (no `SQLITE_BUSY`, no lock convoy): waiters queue without blocking runtime threads, and the holder
//! runs its short transaction inline, which saves two thread hand-offs per write over a writer thread
//! (measured: see `bench/`). Reads run inline too, each on one of a few reader connections, which WAL lets
//! run beside the writer; only reads whose size the data decides go to the blocking pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use portcullis_core::store::StoreError;
use rusqlite::Connection;

use crate::checkpoint::Checkpointer;

/// The one write connection, and the thread that checkpoints what it writes.
#[derive(Debug)]
pub(crate) struct Writer {
    connection: tokio::sync::Mutex<Connection>,
    checkpointer: Checkpointer,
}

impl Writer {
    pub(crate) fn new(connection: Connection, checkpointer: Checkpointer) -> Self {
        Self { connection: tokio::sync::Mutex::new(connection), checkpointer }
    }

    /// Runs `job` on the write connection once it is free.
    pub(crate) async fn run<T>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.lock().await;
        let result = job(&mut connection);
        drop(connection);
        self.checkpointer.wrote();
        result
    }
}

/// The reader connections, each behind its own lock. A lookup runs inline on the calling thread, as a write
/// does: handing it to a reader thread and back cost more than the read itself (measured on logins over
/// HTTP: +20 % logins/s; `docs/benchmarks.md`). WAL lets readers run beside the writer and each other.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    connections: Arc<[Mutex<Connection>]>,
}

impl Readers {
    pub(crate) fn new(connections: Vec<Connection>) -> Self {
        Self { connections: connections.into_iter().map(Mutex::new).collect() }
    }

    /// Runs a lookup or a bounded list on a free reader connection, inline. The runtime's threads are
    /// fewer than the connections, so one is nearly always free; if not, this waits for one.
    pub(crate) async fn run<T>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        with_connection(&self.connections, job)
    }

    /// Runs a read whose size the data decides (an export, every organization) on the blocking pool, so
    /// it never holds up a runtime thread.
    pub(crate) async fn scan<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        tokio::task::spawn_blocking(move || with_connection(&connections, job))
            .await
            .map_err(|_| StoreError::Backend("a SQLite scan stopped without an answer".to_owned()))?
    }
}

/// A free connection if there is one, else the first once it is free. A panicking job is an error for its
/// caller; the connection goes on serving.
fn with_connection<T>(
    connections: &[Mutex<Connection>],
    job: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut connection = connections
        .iter()
        .find_map(|c| match c.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
        .unwrap_or_else(|| connections[0].lock().unwrap_or_else(PoisonError::into_inner));
    catch_unwind(AssertUnwindSafe(|| job(&mut connection))).unwrap_or_else(|_| {
        tracing::error!("a SQLite read panicked");
        Err(StoreError::Backend("a SQLite read failed".to_owned()))
    })
}
