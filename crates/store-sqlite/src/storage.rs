//! Connector script storage on SQLite. All writes go through the one write connection, so a read-modify-write
//! inside its transaction is atomic.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::store::{ConnectorStorageStore, STORAGE_MAX_KEYS, StorageOp, StoreError};
use rusqlite::{OptionalExtension, params};

use crate::{SqliteStore, store_error};

#[async_trait]
impl ConnectorStorageStore for SqliteStore {
    async fn connector_storage_get(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (org, scope, key) = (organization_id.to_owned(), scope.to_owned(), key.to_owned());
        self.readers
            .run(move |c| {
                c.prepare_cached(
                    "SELECT value FROM connector_storage WHERE organization_id = ?1 AND scope = ?2 AND key = ?3",
                )
                .and_then(|mut s| s.query_row(params![org, scope, key], |r| r.get(0)).optional())
                .map_err(store_error)
            })
            .await
    }

    async fn connector_storage_entries(
        &self,
        organization_id: &str,
        scope: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (org, scope) = (organization_id.to_owned(), scope.to_owned());
        self.readers
            .run(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT key, value FROM connector_storage WHERE organization_id = ?1 AND scope = ?2 ORDER BY key",
                    )
                    .map_err(store_error)?;
                let rows = s.query_map(params![org, scope], |r| Ok((r.get(0)?, r.get(1)?))).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn connector_storage_apply(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
        op: &StorageOp,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let (org, scope, key, op) = (organization_id.to_owned(), scope.to_owned(), key.to_owned(), op.clone());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let old: Option<String> = tx
                    .prepare_cached(
                        "SELECT value FROM connector_storage WHERE organization_id = ?1 AND scope = ?2 AND key = ?3",
                    )
                    .and_then(|mut s| s.query_row(params![org, scope, key], |r| r.get(0)).optional())
                    .map_err(store_error)?;
                if old.is_none() {
                    let count: i64 = tx
                        .prepare_cached(
                            "SELECT COUNT(*) FROM connector_storage WHERE organization_id = ?1 AND scope = ?2",
                        )
                        .and_then(|mut s| s.query_row(params![org, scope], |r| r.get(0)))
                        .map_err(store_error)?;
                    if usize::try_from(count).unwrap_or(usize::MAX) >= STORAGE_MAX_KEYS {
                        return Err(StoreError::Conflict(format!("the storage already holds {STORAGE_MAX_KEYS} keys")));
                    }
                }
                let new = op.apply(old.as_deref())?;
                tx.prepare_cached(
                    "INSERT INTO connector_storage (organization_id, scope, key, value, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (organization_id, scope, key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at",
                )
                .and_then(|mut s| s.execute(params![org, scope, key, new, now.unix_millis()]))
                .map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                Ok(new)
            })
            .await
    }

    async fn connector_storage_delete(
        &self,
        organization_id: &str,
        scope: &str,
        key: Option<&str>,
    ) -> Result<u64, StoreError> {
        let (org, scope, key) = (organization_id.to_owned(), scope.to_owned(), key.map(str::to_owned));
        self.writer
            .run(move |c| {
                let deleted = match key {
                    Some(key) => c
                        .prepare_cached(
                            "DELETE FROM connector_storage WHERE organization_id = ?1 AND scope = ?2 AND key = ?3",
                        )
                        .and_then(|mut s| s.execute(params![org, scope, key])),
                    None => c
                        .prepare_cached("DELETE FROM connector_storage WHERE organization_id = ?1 AND scope = ?2")
                        .and_then(|mut s| s.execute(params![org, scope])),
                }
                .map_err(store_error)?;
                Ok(u64::try_from(deleted).unwrap_or(0))
            })
            .await
    }
}
