//! Passkeys and their ceremonies on PostgreSQL.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::passkey::{CeremonyKind, Passkey, PasskeyCeremony, PasskeyUse};
use portcullis_core::store::{PasskeyStore, StoreError};
use tokio_postgres::Row;

use crate::{PostgresStore, decode, store_error};

const PASSKEY_COLUMNS: &str = "credential_id, organization_id, user_id, name, rp_id, static_state, dynamic_state, \
     sign_count, backup_eligible, backed_up, aaguid, transports, created_at, last_used_at";

const CEREMONY_COLUMNS: &str = "id, kind, flow_id, organization_id, user_id, rp_id, state, expires_at";

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| decode(&e))
}

fn counter(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn passkey_from_row(row: &Row) -> Result<Passkey, StoreError> {
    Ok(Passkey {
        credential_id: get(row, 0)?,
        organization_id: get(row, 1)?,
        user_id: get(row, 2)?,
        name: get(row, 3)?,
        rp_id: get(row, 4)?,
        static_state: get(row, 5)?,
        dynamic_state: get(row, 6)?,
        sign_count: counter(get(row, 7)?),
        backup_eligible: get(row, 8)?,
        backed_up: get(row, 9)?,
        aaguid: get(row, 10)?,
        transports: get(row, 11)?,
        created_at: Timestamp::from_unix_millis(get(row, 12)?),
        last_used_at: get::<Option<i64>>(row, 13)?.map(Timestamp::from_unix_millis),
    })
}

fn ceremony_from_row(row: &Row) -> Result<PasskeyCeremony, StoreError> {
    let kind: String = get(row, 1)?;
    Ok(PasskeyCeremony {
        id: get(row, 0)?,
        kind: CeremonyKind::from_stored(&kind)
            .ok_or_else(|| StoreError::Decode(format!("unknown ceremony kind {kind}")))?,
        flow_id: get(row, 2)?,
        organization_id: get(row, 3)?,
        user_id: get(row, 4)?,
        rp_id: get(row, 5)?,
        state: get(row, 6)?,
        expires_at: Timestamp::from_unix_millis(get(row, 7)?),
    })
}

#[async_trait]
impl PasskeyStore for PostgresStore {
    async fn insert_passkey_ceremony(&self, c: &PasskeyCeremony) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO passkey_ceremonies ({CEREMONY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                &[
                    &c.id,
                    &c.kind.as_str(),
                    &c.flow_id,
                    &c.organization_id,
                    &c.user_id,
                    &c.rp_id,
                    &c.state,
                    &c.expires_at.unix_millis(),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn take_passkey_ceremony(&self, id: &str) -> Result<Option<PasskeyCeremony>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("DELETE FROM passkey_ceremonies WHERE id = $1 RETURNING {CEREMONY_COLUMNS}"), &[&id])
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(ceremony_from_row).transpose()
    }

    async fn insert_passkey(&self, p: &Passkey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO passkeys ({PASSKEY_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ),
                &[
                    &p.credential_id,
                    &p.organization_id,
                    &p.user_id,
                    &p.name,
                    &p.rp_id,
                    &p.static_state,
                    &p.dynamic_state,
                    &i64::from(p.sign_count),
                    &p.backup_eligible,
                    &p.backed_up,
                    &p.aaguid,
                    &p.transports,
                    &p.created_at.unix_millis(),
                    &p.last_used_at.map(Timestamp::unix_millis),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"), &[&credential_id])
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    async fn user_passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, credential_id"
                ),
                &[&user_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn record_passkey_use(&self, u: &PasskeyUse) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE passkeys SET sign_count = $1, backed_up = $2, dynamic_state = $3, last_used_at = $4 \
                 WHERE credential_id = $5 AND sign_count = $6",
                &[
                    &i64::from(u.sign_count),
                    &u.backed_up,
                    &u.dynamic_state,
                    &u.used_at.unix_millis(),
                    &u.credential_id,
                    &i64::from(u.previous_sign_count),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn rename_passkey(&self, user_id: &str, credential_id: &str, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE passkeys SET name = $1 WHERE user_id = $2 AND credential_id = $3",
                &[&name, &user_id, &credential_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2", &[&user_id, &credential_id])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn prune_passkey_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM passkey_ceremonies WHERE expires_at < $1", &[&before.unix_millis()])
            .await
            .map_err(|e| store_error(&e))
    }
}
