//! Connector accounts and refresh leases on PostgreSQL.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::store::{AccountState, ConnectorAccountRecord, ConnectorStore, StoreError};
use portcullis_core::store::{slot_micros, slot_wait};
use std::time::Duration;
use tokio_postgres::Row;

use crate::events::append_event;
use crate::{PostgresStore, decode, store_error};

const COLUMNS: &str = "id, organization_id, connector, sealed_credentials, version, state, cooldown_until, \
                       last_failure, created_at, updated_at, rate_strikes, rate_blocked_until";

fn account_from_row(row: &Row) -> Result<ConnectorAccountRecord, StoreError> {
    let state: String = row.try_get(5).map_err(|e| decode(&e))?;
    Ok(ConnectorAccountRecord {
        id: row.try_get(0).map_err(|e| decode(&e))?,
        organization_id: row.try_get(1).map_err(|e| decode(&e))?,
        connector: row.try_get(2).map_err(|e| decode(&e))?,
        sealed_credentials: row.try_get(3).map_err(|e| decode(&e))?,
        version: row.try_get(4).map_err(|e| decode(&e))?,
        state: AccountState::parse(&state)?,
        cooldown_until: row.try_get::<_, Option<i64>>(6).map_err(|e| decode(&e))?.map(Timestamp::from_unix_millis),
        last_failure: row.try_get(7).map_err(|e| decode(&e))?,
        created_at: Timestamp::from_unix_millis(row.try_get(8).map_err(|e| decode(&e))?),
        updated_at: Timestamp::from_unix_millis(row.try_get(9).map_err(|e| decode(&e))?),
        rate_strikes: strikes(row.try_get(10).map_err(|e| decode(&e))?),
        rate_blocked_until: row.try_get::<_, Option<i64>>(11).map_err(|e| decode(&e))?.map(Timestamp::from_unix_millis),
    })
}

fn strikes(stored: i64) -> u32 {
    u32::try_from(stored).unwrap_or(u32::MAX)
}

#[async_trait]
impl ConnectorStore for PostgresStore {
    async fn insert_connector_account(&self, a: &ConnectorAccountRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO connector_accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
                &[
                    &a.id,
                    &a.organization_id,
                    &a.connector,
                    &a.sealed_credentials,
                    &a.version,
                    &a.state.as_str(),
                    &a.cooldown_until.map(Timestamp::unix_millis),
                    &a.last_failure,
                    &a.created_at.unix_millis(),
                    &a.updated_at.unix_millis(),
                    &i64::from(a.rate_strikes),
                    &a.rate_blocked_until.map(Timestamp::unix_millis),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn connector_account(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<ConnectorAccountRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM connector_accounts WHERE organization_id = $1 AND id = $2"))
            .await
            .map_err(|e| store_error(&e))?;
        let row = client.query_opt(&statement, &[&organization_id, &id]).await.map_err(|e| store_error(&e))?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn connector_accounts(&self, organization_id: &str) -> Result<Vec<ConnectorAccountRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM connector_accounts WHERE organization_id = $1 ORDER BY id"),
                &[&organization_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter().map(account_from_row).collect()
    }

    async fn swap_connector_account(
        &self,
        a: &ConnectorAccountRecord,
        expected_version: i64,
        event: Option<&Event>,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        let statement = tx
            .prepare_cached(
                "UPDATE connector_accounts SET sealed_credentials = $1, version = $2, state = $3, \
                 cooldown_until = $4, last_failure = $5, updated_at = $6 \
                 WHERE organization_id = $7 AND id = $8 AND version = $9",
            )
            .await
            .map_err(|e| store_error(&e))?;
        let n = tx
            .execute(
                &statement,
                &[
                    &a.sealed_credentials,
                    &a.version,
                    &a.state.as_str(),
                    &a.cooldown_until.map(Timestamp::unix_millis),
                    &a.last_failure,
                    &a.updated_at.unix_millis(),
                    &a.organization_id,
                    &a.id,
                    &expected_version,
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        if n != 1 {
            return Ok(false);
        }
        if let Some(event) = event {
            append_event(&tx, event).await?;
        }
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(true)
    }

    async fn strike_connector_rate(&self, organization_id: &str, id: &str) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE connector_accounts SET rate_strikes = rate_strikes + 1 \
                 WHERE organization_id = $1 AND id = $2 RETURNING rate_strikes",
            )
            .await
            .map_err(|e| store_error(&e))?;
        let row = client.query_opt(&statement, &[&organization_id, &id]).await.map_err(|e| store_error(&e))?;
        row.map_or(Ok(0), |r| r.try_get(0).map(strikes).map_err(|e| decode(&e)))
    }

    async fn block_connector_rate(&self, organization_id: &str, id: &str, until: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE connector_accounts SET rate_blocked_until = GREATEST(COALESCE(rate_blocked_until, 0), $3) \
                 WHERE organization_id = $1 AND id = $2",
                &[&organization_id, &id, &until.unix_millis()],
            )
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn clear_connector_rate(&self, organization_id: &str, id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE connector_accounts SET rate_strikes = 0, rate_blocked_until = NULL \
                 WHERE organization_id = $1 AND id = $2",
                &[&organization_id, &id],
            )
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    async fn reserve_connector_send_slot(
        &self,
        organization_id: &str,
        account_id: &str,
        scope: &str,
        now: Timestamp,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let (now, step) = slot_micros(now, interval);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO connector_send_slots (organization_id, account_id, scope, next_at_micros) \
                 VALUES ($1, $2, $3, $4::BIGINT + $5::BIGINT) \
                 ON CONFLICT (organization_id, account_id, scope) \
                 DO UPDATE SET next_at_micros = GREATEST(connector_send_slots.next_at_micros, $4) + $5 \
                 RETURNING next_at_micros - $5",
            )
            .await
            .map_err(|e| store_error(&e))?;
        let row = client
            .query_one(&statement, &[&organization_id, &account_id, &scope, &now, &step])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(slot_wait(row.try_get(0).map_err(|e| decode(&e))?, now))
    }

    async fn delete_connector_account(&self, organization_id: &str, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM connector_accounts WHERE organization_id = $1 AND id = $2", &[&organization_id, &id])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn try_connector_lease(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO connector_leases (key, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE connector_leases.expires_at <= $4",
            )
            .await
            .map_err(|e| store_error(&e))?;
        let n = client
            .execute(&statement, &[&key, &holder, &until.unix_millis(), &now.unix_millis()])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn release_connector_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM connector_leases WHERE key = $1 AND holder = $2", &[&key, &holder])
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}
