//! A pooled connection the server ended (as a PostgreSQL restart ends them all) is replaced, not handed
//! out dead for more than the request that meets the server's goodbye. (What a restart answers while it is in progress is unavailability: see `is_unavailability`,
//! and `portcullis-reliability instances`, which restarts PostgreSQL under load.)

use std::time::Duration;

use portcullis_core::store::{OrganizationStore as _, Store as _, StoreError};
use portcullis_store_conformance::TestPostgres;
use portcullis_store_postgres::{PostgresOptions, PostgresStore};

#[tokio::test]
async fn connections_ended_by_the_server_are_replaced() {
    let database = TestPostgres::create().await;
    let options = PostgresOptions { url: database.url.clone(), pool_size: 1, connect_timeout: Duration::from_secs(5) };
    let store = PostgresStore::connect(&options).expect("PostgreSQL pool");
    store.migrate().await.expect("migrate");
    store.organizations().await.expect("the pooled connection works");

    // What a shutdown does to every open session: SQLSTATE 57P01 (admin_shutdown), then the socket closes.
    let (admin, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.expect("admin");
    tokio::spawn(connection);
    let ended = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .await
        .expect("terminate");
    assert_eq!(ended.get::<_, i64>(0), 1, "the pool's one connection");

    // The pool notices the end when its connection task reads it; a request sent before that meets the
    // server's goodbye, which must be unavailability (503), and the requests after it a new connection.
    let mut refused = 0;
    let organizations = loop {
        match store.organizations().await {
            Ok(organizations) => break organizations,
            Err(StoreError::Unavailable(_)) if refused < 3 => refused += 1,
            Err(other) => panic!("after {refused} refusals: {other:?}"),
        }
    };
    assert!(organizations.is_empty());
}
