//! Schema migrations, tracked in `PRAGMA user_version`. Each runs in its own transaction.

use portcullis_core::store::StoreError;
use rusqlite::Connection;

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

pub(crate) fn apply(connection: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(store_error)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database schema is at version {current}, newer than this binary knows ({known}); upgrade Portcullis"
        )));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(usize::try_from(current).unwrap_or(0)) {
        let tx = connection.transaction().map_err(store_error)?;
        tx.execute_batch(sql).map_err(store_error)?;
        tx.pragma_update(None, "user_version", version).map_err(store_error)?;
        tx.commit().map_err(store_error)?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}
