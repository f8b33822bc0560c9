//! Connector script storage on PostgreSQL. An update locks its row (`FOR UPDATE`), so concurrent increments
//! queue and all count; a new key takes a transaction-scoped advisory lock on its scope so the key cap holds.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::store::{ConnectorStorageStore, STORAGE_MAX_KEYS, StorageOp, StoreError};

use crate::{PostgresStore, decode, store_error};

#[async_trait]
impl ConnectorStorageStore for PostgresStore {
    async fn connector_storage_get(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM connector_storage WHERE organization_id = $1 AND scope = $2 AND key = $3",
                &[&organization_id, &scope, &key],
            )
            .await
            .map_err(|e| store_error(&e))?;
        row.map(|r| r.try_get(0).map_err(|e| decode(&e))).transpose()
    }

    async fn connector_storage_entries(
        &self,
        organization_id: &str,
        scope: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, value FROM connector_storage WHERE organization_id = $1 AND scope = $2 ORDER BY key",
                &[&organization_id, &scope],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(|e| decode(&e))?, r.try_get(1).map_err(|e| decode(&e))?)))
            .collect()
    }

    async fn connector_storage_apply(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
        op: &StorageOp,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        let row = tx
            .query_opt(
                "SELECT value FROM connector_storage WHERE organization_id = $1 AND scope = $2 AND key = $3 FOR UPDATE",
                &[&organization_id, &scope, &key],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let mut old: Option<String> = row.map(|r| r.try_get(0).map_err(|e| decode(&e))).transpose()?;
        if old.is_none() {
            // New keys of one scope are added one at a time, so the count below stays exact; the row lock
            // cannot help here because there is no row yet.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", &[&organization_id, &scope])
                .await
                .map_err(|e| store_error(&e))?;
            let again = tx
                .query_opt(
                    "SELECT value FROM connector_storage WHERE organization_id = $1 AND scope = $2 AND key = $3 FOR UPDATE",
                    &[&organization_id, &scope, &key],
                )
                .await
                .map_err(|e| store_error(&e))?;
            old = again.map(|r| r.try_get(0).map_err(|e| decode(&e))).transpose()?;
            if old.is_none() {
                let count: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM connector_storage WHERE organization_id = $1 AND scope = $2",
                        &[&organization_id, &scope],
                    )
                    .await
                    .map_err(|e| store_error(&e))?
                    .get(0);
                if usize::try_from(count).unwrap_or(usize::MAX) >= STORAGE_MAX_KEYS {
                    return Err(StoreError::Conflict(format!("the storage already holds {STORAGE_MAX_KEYS} keys")));
                }
            }
        }
        let value = op.apply(old.as_deref())?;
        tx.execute(
            "INSERT INTO connector_storage (organization_id, scope, key, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (organization_id, scope, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&organization_id, &scope, &key, &value, &now.unix_millis()],
        )
        .await
        .map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(value)
    }

    async fn connector_storage_delete(
        &self,
        organization_id: &str,
        scope: &str,
        key: Option<&str>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let deleted = match key {
            Some(key) => {
                client
                    .execute(
                        "DELETE FROM connector_storage WHERE organization_id = $1 AND scope = $2 AND key = $3",
                        &[&organization_id, &scope, &key],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM connector_storage WHERE organization_id = $1 AND scope = $2",
                        &[&organization_id, &scope],
                    )
                    .await
            }
        };
        deleted.map_err(|e| store_error(&e))
    }
}
