//! The store conformance suite on SQLite, one fresh database file per test.

use std::sync::Arc;

use portcullis_store_conformance::{Fixture, conformance_suite};
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let options =
        SqliteOptions { path: dir.path().join("portcullis.db"), readers: 4, synchronous: Synchronous::Normal };
    let store = SqliteStore::open(&options).expect("open SQLite");
    Fixture { store: Arc::new(store), guard: Box::new(dir) }
}

conformance_suite!(fixture());
