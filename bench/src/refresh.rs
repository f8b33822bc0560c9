//! Session refresh (rotation + theft check + signing a new access token) against the raw rotation
//! transaction it is built on, one client at a time, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::{KeyPolicy, KeyService, MasterKey, SigningAlgorithm};
use portcullis_core::organization::Organization;
use portcullis_core::session::{SessionConfig, SessionService};
use portcullis_core::store::Store;
use portcullis_store_conformance::TestPostgres;
use portcullis_store_postgres::{PostgresOptions, PostgresStore};
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::Map;

use crate::report::{Report, Row};

async fn session_service(store: Arc<dyn Store>, prefill: usize) -> (SessionService, String) {
    store.migrate().await.expect("migrate");
    let master = Arc::new(MasterKey::generate().expect("master key").0);
    let policy = KeyPolicy {
        algorithm: SigningAlgorithm::EdDSA,
        rotation_interval: Duration::from_secs(604_800),
        publish_lead: Duration::from_secs(60),
        retain_after_retirement: Duration::from_secs(7200),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys =
        KeyService::open(Arc::clone(&store), Arc::clone(&master), policy, Arc::clone(&clock)).await.expect("keys");
    let config = SessionConfig {
        access_token_validity: Duration::from_secs(3600),
        refresh_token_validity: Duration::from_secs(8_640_000),
        refresh_grace: Duration::from_secs(30),
        issuer: "https://auth.example.com/auth".to_owned(),
        max_payload_bytes: 3072,
    };
    let sessions = SessionService::new(Arc::clone(&store), Arc::new(keys), clock, config, &master);
    let org = Organization::new("bench", SystemClock.now()).expect("organization");
    store.insert_organization(&org).await.expect("organization");
    for i in 0..prefill {
        sessions.create(&org.id, &format!("user-{i}"), None, Map::new()).await.expect("prefill");
    }
    (sessions, org.id)
}

async fn refresh_rate(sessions: &SessionService, org: &str, window: Duration) -> f64 {
    let created = sessions.create(org, "bench-user", None, Map::new()).await.expect("session");
    let mut token = created.refresh_token.expect("refresh token");
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        let refreshed = sessions.refresh(&token, Some(org)).await.map_err(|e| format!("{e:?}")).expect("refresh");
        token = refreshed.refresh_token.expect("refresh token");
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn random_hash() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    SystemRandom::new().fill(&mut bytes).expect("random");
    bytes
}

const RAW_TABLE: &str = "CREATE TABLE refresh_tokens (hash BLOB PRIMARY KEY, family_id INTEGER NOT NULL, \
                         session_id INTEGER NOT NULL, used_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID";
const RAW_ROTATE: &str = "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL AND revoked = 0 \
                          RETURNING family_id, session_id";

/// The reference transaction: `BEGIN IMMEDIATE`; conditional `UPDATE … RETURNING`; `INSERT` the
/// successor; `COMMIT`. `synchronous` as the store's setting of the same name.
pub(crate) fn raw_sqlite_rate(
    path: &std::path::Path,
    window: Duration,
    prefill: usize,
    synchronous: Synchronous,
) -> f64 {
    let mut c = rusqlite::Connection::open(path).expect("open");
    let pragmas = format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {};", synchronous.pragma());
    c.execute_batch(&pragmas).expect("pragmas");
    c.execute_batch(RAW_TABLE).expect("table");
    {
        let tx = c.transaction().expect("tx");
        for i in 0..prefill {
            let i = i64::try_from(i).unwrap_or(0);
            tx.execute(
                "INSERT INTO refresh_tokens (hash, family_id, session_id) VALUES (?1, ?2, ?2)",
                rusqlite::params![random_hash(), i],
            )
            .expect("prefill");
        }
        tx.commit().expect("commit");
    }
    let mut current = random_hash();
    c.execute("INSERT INTO refresh_tokens (hash, family_id, session_id) VALUES (?1, 0, 0)", [&current]).expect("first");
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("begin");
        let (family, session): (i64, i64) = tx
            .prepare_cached(RAW_ROTATE)
            .and_then(|mut s| s.query_row(rusqlite::params![count, current], |r| Ok((r.get(0)?, r.get(1)?))))
            .expect("rotate");
        let next = random_hash();
        tx.prepare_cached("INSERT INTO refresh_tokens (hash, family_id, session_id) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(rusqlite::params![next, family, session]))
            .expect("successor");
        tx.commit().expect("commit");
        current = next;
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

pub(crate) async fn sqlite(report: &mut Report, window: Duration, runs: usize, prefill: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options =
        SqliteOptions { path: dir.path().join("portcullis.db"), readers: 2, synchronous: Synchronous::Normal };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).expect("open"));
    let (sessions, org) = session_service(store, prefill).await;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for run in 0..runs {
        ours.push(refresh_rate(&sessions, &org, window).await);
        let path = dir.path().join(format!("raw-{run}.db"));
        raw.push(tokio::task::block_in_place(|| raw_sqlite_rate(&path, window, prefill, Synchronous::Normal)));
    }
    report.push(Row {
        id: "refresh-sqlite-inprocess",
        name: "refresh on SQLite, 1 client",
        ours: "SessionService::refresh (rotate + theft check + sign)",
        ours_runs: ours,
        baseline: "raw rusqlite rotation transaction",
        baseline_runs: raw,
        goal: Some(0.6),
    });
}

pub(crate) async fn raw_postgres_rate(url: &str, window: Duration, prefill: usize) -> f64 {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE refresh_tokens (hash BYTEA PRIMARY KEY, family_id BIGINT NOT NULL, session_id BIGINT NOT NULL, \
             used_at BIGINT, revoked BOOLEAN NOT NULL DEFAULT false)",
        )
        .await
        .expect("table");
    let hashes: Vec<Vec<u8>> = (0..prefill).map(|_| random_hash()).collect();
    client
        .execute(
            "INSERT INTO refresh_tokens (hash, family_id, session_id) SELECT h, 0, 0 FROM unnest($1::bytea[]) AS h",
            &[&hashes],
        )
        .await
        .expect("prefill");
    let mut current = random_hash();
    client
        .execute("INSERT INTO refresh_tokens (hash, family_id, session_id) VALUES ($1, 0, 0)", &[&current])
        .await
        .expect("first");
    let rotate = client
        .prepare("UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND NOT revoked RETURNING family_id, session_id")
        .await
        .expect("prepare");
    let insert = client
        .prepare("INSERT INTO refresh_tokens (hash, family_id, session_id) VALUES ($1, $2, $3)")
        .await
        .expect("prepare");
    let start = Instant::now();
    let mut count = 0i64;
    while start.elapsed() < window {
        let tx = client.transaction().await.expect("begin");
        let row = tx.query_one(&rotate, &[&count, &current]).await.expect("rotate");
        let (family, session): (i64, i64) = (row.get(0), row.get(1));
        let next = random_hash();
        tx.execute(&insert, &[&next, &family, &session]).await.expect("successor");
        tx.commit().await.expect("commit");
        current = next;
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

pub(crate) async fn postgres(report: &mut Report, window: Duration, runs: usize, prefill: usize) {
    let ours_db = TestPostgres::create().await;
    let options = PostgresOptions { url: ours_db.url.clone(), pool_size: 4, connect_timeout: Duration::from_secs(5) };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&options).expect("pool"));
    let (sessions, org) = session_service(store, prefill).await;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(refresh_rate(&sessions, &org, window).await);
        let raw_db = TestPostgres::create().await;
        raw.push(raw_postgres_rate(&raw_db.url, window, prefill).await);
    }
    report.push(Row {
        id: "refresh-postgres-inprocess",
        name: "refresh on PostgreSQL, 1 client",
        ours: "SessionService::refresh (row lock, rotate, sign)",
        ours_runs: ours,
        baseline: "raw tokio-postgres rotation transaction",
        baseline_runs: raw,
        goal: None,
    });
}
