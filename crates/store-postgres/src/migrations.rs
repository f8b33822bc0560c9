//! Schema migrations, recorded in `portcullis_schema_migrations`. One transaction under an advisory lock,
//! so instances starting together migrate once.

use portcullis_core::store::StoreError;
use tokio_postgres::Client;

use crate::store_error;

// Append-only: a migration's version is its position, so new ones go last whatever their file number
// (0004 shipped before 0003).
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_foundation.sql"),
    include_str!("../migrations/0002_sessions.sql"),
    include_str!("../migrations/0004_login.sql"),
    include_str!("../migrations/0003_connectors.sql"),
    include_str!("../migrations/0005_login_attempt_kinds.sql"),
    include_str!("../migrations/0006_abuse.sql"),
    include_str!("../migrations/0007_connector_storage.sql"),
    include_str!("../migrations/0008_passkeys.sql"),
    include_str!("../migrations/0009_code_guessing.sql"),
    include_str!("../migrations/0010_supertokens_core.sql"),
    include_str!("../migrations/0011_app_users.sql"),
    include_str!("../migrations/0012_events.sql"),
    include_str!("../migrations/0013_connector_rates.sql"),
    include_str!("../migrations/0014_login_sessions_by_user.sql"),
    include_str!("../migrations/0015_audit_by_subject.sql"),
    include_str!("../migrations/0016_outbox_by_recipient.sql"),
];

/// Arbitrary but fixed: "port" in ASCII.
const MIGRATION_LOCK: i64 = 0x706f_7274;

pub(crate) async fn apply(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(|e| store_error(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(|e| store_error(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS portcullis_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| store_error(&e))?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM portcullis_schema_migrations", &[])
        .await
        .map_err(|e| store_error(&e))?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database schema is at version {current}, newer than this binary knows ({known}); upgrade Portcullis"
        )));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(usize::try_from(current).unwrap_or(0)) {
        tx.batch_execute(sql).await.map_err(|e| store_error(&e))?;
        tx.execute("INSERT INTO portcullis_schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .map_err(|e| store_error(&e))?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(|e| store_error(&e))
}
