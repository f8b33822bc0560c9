//! The store conformance suite on PostgreSQL, one fresh database per test.

use std::sync::Arc;
use std::time::Duration;

use portcullis_store_conformance::{Fixture, TestPostgres, conformance_suite};
use portcullis_store_postgres::{PostgresOptions, PostgresStore};

async fn fixture() -> Fixture {
    let database = TestPostgres::create().await;
    let options = PostgresOptions { url: database.url.clone(), pool_size: 16, connect_timeout: Duration::from_secs(5) };
    let store = PostgresStore::connect(&options).expect("PostgreSQL pool");
    Fixture { store: Arc::new(store), guard: Box::new(database) }
}

conformance_suite!(fixture());
