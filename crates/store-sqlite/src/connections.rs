//! Connections. SQLite has one writer at a time, so all writes go through one connection behind an async
//! mutex (no `SQLITE_BUSY`, no lock convoy): waiters queue without blocking runtime threads, and the holder
//! runs its short transaction inline, which saves two thread hand-offs per write over a writer thread
//! (measured: see `bench/`). Writes of one kind that arrive together can share a transaction ([`Group`]).
//! Reads run inline too, each on one of a few reader connections, which WAL lets run beside the writer;
//! only reads whose size the data decides go to the blocking pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use portcullis_core::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::store_error;

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

    /// Runs `job` in a transaction it may share with the other jobs of `group` that are waiting when the
    /// write connection comes free (group commit): whoever gets the connection runs every queued job, each in
    /// a savepoint of its own, and commits them together. A job that fails rolls back only its own writes.
    /// Each caller hears its result only after the commit, so the durability of each write is that of a
    /// transaction of its own; with `synchronous = FULL`, one `fsync` serves the whole group.
    pub(crate) async fn run_grouped<T: Send + 'static>(
        &self,
        group: &Group<T>,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, mut answer) = oneshot::channel();
        group.queue().push(Queued { job: Box::new(job), done });
        let result = tokio::select! {
            biased;
            // Another caller took this job into its transaction.
            result = &mut answer => result,
            mut connection = self.connection.lock() => {
                let batch = std::mem::take(&mut *group.queue());
                commit_together(&mut connection, batch);
                drop(connection);
                self.checkpointer.wrote();
                // Ran in this batch or, if another caller took it first, in one that ended before this caller
                // had the connection: either way the answer is there.
                answer.await
            }
        };
        result.map_err(|_| StoreError::Backend("a grouped SQLite write stopped without an answer".to_owned()))?
    }
}

/// Jobs of one kind that wait for the write connection; see [`Writer::run_grouped`].
pub(crate) struct Group<T> {
    pending: Mutex<Vec<Queued<T>>>,
}

impl<T> Group<T> {
    pub(crate) const fn new() -> Self {
        Self { pending: Mutex::new(Vec::new()) }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued<T>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("pending", &self.queue().len()).finish()
    }
}

type GroupJob<T> = Box<dyn FnOnce(&Connection) -> Result<T, StoreError> + Send>;

struct Queued<T> {
    job: GroupJob<T>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

/// Runs `batch` in one transaction, each job in its own savepoint, commits, then answers every caller. A job
/// whose caller is gone is not run: nobody would hear that it happened.
fn commit_together<T>(connection: &mut Connection, batch: Vec<Queued<T>>) {
    let (jobs, callers): (Vec<_>, Vec<_>) =
        batch.into_iter().filter(|queued| !queued.done.is_closed()).map(|q| (q.job, q.done)).unzip();
    if jobs.is_empty() {
        return;
    }
    match run_batch(connection, jobs) {
        Ok(results) => {
            for (done, result) in std::iter::zip(callers, results) {
                let _ = done.send(result);
            }
        }
        Err(error) => {
            for done in callers {
                let _ = done.send(Err(error.clone()));
            }
        }
    }
}

/// Each job's result once the batch is committed, or the error that undid the whole transaction (a savepoint
/// that cannot be made or undone, the commit): then nothing of the batch is kept.
fn run_batch<T>(connection: &mut Connection, jobs: Vec<GroupJob<T>>) -> Result<Vec<Result<T, StoreError>>, StoreError> {
    let mut tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let savepoint = tx.savepoint().map_err(store_error)?;
        let result = catch_unwind(AssertUnwindSafe(|| job(&savepoint))).unwrap_or_else(|_| {
            tracing::error!("a grouped SQLite write panicked");
            Err(StoreError::Backend("a SQLite write failed".to_owned()))
        });
        // A failed job keeps none of its writes (`finish` rolls the savepoint back).
        if result.is_ok() { savepoint.commit() } else { savepoint.finish() }.map_err(store_error)?;
        results.push(result);
    }
    tx.commit().map_err(store_error)?;
    Ok(results)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use portcullis_core::store::StoreError;

    use super::Group;
    use crate::{SqliteOptions, SqliteStore, Synchronous, store_error};

    /// Writes that queue while the connection is busy take one commit; the one that fails keeps none of its
    /// writes, and the others keep theirs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_waiting_together_share_one_commit_and_a_failing_one_keeps_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteOptions { path: dir.path().join("p.db"), readers: 1, synchronous: Synchronous::Full };
        let store = Arc::new(SqliteStore::open(&options).expect("open"));
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&commits);
        store
            .writer
            .run(move |c| {
                c.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)").map_err(store_error)?;
                c.commit_hook(Some(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    false
                }));
                Ok(())
            })
            .await
            .expect("table");
        let group = Arc::new(Group::<i64>::new());
        let busy = store.writer.connection.lock().await;
        let writes: Vec<_> = (0..3_i64)
            .map(|x| {
                let (store, group) = (Arc::clone(&store), Arc::clone(&group));
                tokio::spawn(async move {
                    store
                        .writer
                        .run_grouped(&group, move |c| {
                            c.execute("INSERT INTO t (x) VALUES (?1)", [x]).map_err(store_error)?;
                            if x == 1 { Err(StoreError::Conflict("the second write fails".to_owned())) } else { Ok(x) }
                        })
                        .await
                })
            })
            .collect();
        while group.queue().len() < 3 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        let mut results = Vec::new();
        for write in writes {
            results.push(write.await.expect("task"));
        }
        assert_eq!(results, [Ok(0), Err(StoreError::Conflict("the second write fails".to_owned())), Ok(2)]);
        assert_eq!(commits.load(Ordering::SeqCst), 1, "one commit for the three writes");
        let kept = store
            .writer
            .run(|c| {
                let mut st = c.prepare("SELECT x FROM t ORDER BY x").map_err(store_error)?;
                let rows = st.query_map([], |r| r.get::<_, i64>(0)).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
            .expect("rows");
        assert_eq!(kept, [0, 2]);
    }
}
