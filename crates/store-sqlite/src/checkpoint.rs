//! WAL checkpoints beside the writer, not inside its commits.
//!
//! SQLite's automatic checkpoint runs in the commit that crosses its threshold, on the one write
//! connection: that commit waits for the copy into the database file and its two syncs, and so does every
//! write queued behind it. Here a thread with a connection of its own runs a passive checkpoint shortly
//! after writes, while the writer goes on. Measured on logins over HTTP: about +10 % logins/s (with no
//! checkpoint during the run at all, +30 %: the copying and syncing still share the machine). The writer
//! keeps its automatic checkpoint at a high threshold ([`BACKSTOP_PAGES`]) in case this thread falls behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use portcullis_core::store::StoreError;
use rusqlite::Connection;

/// How long the thread lets writes gather before it checkpoints them together.
const GATHER: Duration = Duration::from_millis(100);

/// The writer's own automatic checkpoint threshold, in pages (SQLite's default is 1,000).
pub(crate) const BACKSTOP_PAGES: u32 = 10_000;

/// The checkpoint thread's handle; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    state: Arc<State>,
    thread: Thread,
}

#[derive(Debug, Default)]
struct State {
    /// A write landed since the last checkpoint began.
    dirty: AtomicBool,
    stopped: AtomicBool,
}

impl Checkpointer {
    /// Starts the thread on `connection` (a read-write connection to the same database).
    pub(crate) fn start(connection: Connection) -> Result<Self, StoreError> {
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let handle = thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || run(&connection, &shared))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { state, thread: handle.thread().clone() })
    }

    /// Called after each write; wakes the thread for the first write since its last checkpoint.
    pub(crate) fn wrote(&self) {
        if !self.state.dirty.load(Ordering::Relaxed) && !self.state.dirty.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn run(connection: &Connection, state: &State) {
    loop {
        thread::park();
        if state.stopped.load(Ordering::Acquire) {
            return;
        }
        if !state.dirty.load(Ordering::Acquire) {
            continue;
        }
        thread::sleep(GATHER);
        // Cleared before the checkpoint, so a write during it wakes the thread again.
        state.dirty.store(false, Ordering::Release);
        // Passive: copies what no reader still needs and never blocks the writer or the readers. A failure
        // (a full disk, say) leaves the frames in the WAL, where the next checkpoint or the backstop finds them.
        if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "a WAL checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::{SqliteOptions, SqliteStore, Synchronous};

    /// In WAL mode a commit reaches the database file only at a checkpoint, so the file changing after a
    /// few writes (far below the writer's own threshold) shows that this thread checkpointed them.
    #[tokio::test]
    async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("portcullis.db");
        let options = SqliteOptions { path: path.clone(), readers: 1, synchronous: Synchronous::Normal };
        let store = SqliteStore::open(&options).expect("open");
        store
            .writer
            .run(|c| c.execute_batch("CREATE TABLE t (x BLOB)").map_err(crate::store_error))
            .await
            .expect("table");
        // Let the table's own checkpoint pass, then write a few pages.
        tokio::time::sleep(super::GATHER * 5).await;
        let before = std::fs::read(&path).expect("read the database file");
        for _ in 0..20 {
            store
                .writer
                .run(|c| c.execute("INSERT INTO t VALUES (zeroblob(1000))", []).map_err(crate::store_error))
                .await
                .expect("insert");
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read(&path).expect("read the database file") == before {
            assert!(Instant::now() < deadline, "the writes never reached the database file");
            tokio::time::sleep(super::GATHER).await;
        }
    }
}
