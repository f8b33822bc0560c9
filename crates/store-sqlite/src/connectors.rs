//! Connector accounts and refresh leases on SQLite.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::store::{AccountState, ConnectorAccountRecord, ConnectorStore, StoreError};
use portcullis_core::store::{slot_micros, slot_wait};
use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use std::time::Duration;

use crate::events::append_event;
use crate::{SqliteStore, store_error};

const COLUMNS: &str = "id, organization_id, connector, sealed_credentials, version, state, cooldown_until, \
                       last_failure, created_at, updated_at, rate_strikes, rate_blocked_until";

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<ConnectorAccountRecord> {
    let state: String = row.get(5)?;
    Ok(ConnectorAccountRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        connector: row.get(2)?,
        sealed_credentials: row.get(3)?,
        version: row.get(4)?,
        state: AccountState::parse(&state)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(5, Type::Text, Box::new(e)))?,
        cooldown_until: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_unix_millis),
        last_failure: row.get(7)?,
        created_at: Timestamp::from_unix_millis(row.get(8)?),
        updated_at: Timestamp::from_unix_millis(row.get(9)?),
        rate_strikes: row.get(10)?,
        rate_blocked_until: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_unix_millis),
    })
}

#[async_trait]
impl ConnectorStore for SqliteStore {
    async fn insert_connector_account(&self, account: &ConnectorAccountRecord) -> Result<(), StoreError> {
        let a = account.clone();
        self.writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO connector_accounts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        a.id,
                        a.organization_id,
                        a.connector,
                        a.sealed_credentials,
                        a.version,
                        a.state.as_str(),
                        a.cooldown_until.map(Timestamp::unix_millis),
                        a.last_failure,
                        a.created_at.unix_millis(),
                        a.updated_at.unix_millis(),
                        a.rate_strikes,
                        a.rate_blocked_until.map(Timestamp::unix_millis),
                    ])
                })
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn connector_account(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<ConnectorAccountRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connector_accounts WHERE organization_id = ?1 AND id = ?2");
        self.organization_row(sql, organization_id, id, account_from_row).await
    }

    async fn connector_accounts(&self, organization_id: &str) -> Result<Vec<ConnectorAccountRecord>, StoreError> {
        let org = organization_id.to_owned();
        self.readers
            .scan(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM connector_accounts WHERE organization_id = ?1 ORDER BY id"
                    ))
                    .map_err(store_error)?;
                let rows = s.query_map(params![org], account_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn swap_connector_account(
        &self,
        account: &ConnectorAccountRecord,
        expected_version: i64,
        event: Option<&Event>,
    ) -> Result<bool, StoreError> {
        let (a, event) = (account.clone(), event.cloned());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let swapped = tx
                    .prepare_cached(
                        "UPDATE connector_accounts SET sealed_credentials = ?1, version = ?2, state = ?3, \
                     cooldown_until = ?4, last_failure = ?5, updated_at = ?6 \
                     WHERE organization_id = ?7 AND id = ?8 AND version = ?9",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            a.sealed_credentials,
                            a.version,
                            a.state.as_str(),
                            a.cooldown_until.map(Timestamp::unix_millis),
                            a.last_failure,
                            a.updated_at.unix_millis(),
                            a.organization_id,
                            a.id,
                            expected_version,
                        ])
                    })
                    .map(|n| n == 1)
                    .map_err(store_error)?;
                if !swapped {
                    return Ok(false);
                }
                if let Some(event) = &event {
                    append_event(&tx, event)?;
                }
                tx.commit().map_err(store_error)?;
                Ok(true)
            })
            .await
    }

    async fn strike_connector_rate(&self, organization_id: &str, id: &str) -> Result<u32, StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE connector_accounts SET rate_strikes = rate_strikes + 1 \
                     WHERE organization_id = ?1 AND id = ?2 RETURNING rate_strikes",
                )
                .and_then(|mut s| s.query_row(params![org, id], |r| r.get(0)).optional())
                .map(Option::unwrap_or_default)
                .map_err(store_error)
            })
            .await
    }

    async fn block_connector_rate(&self, organization_id: &str, id: &str, until: Timestamp) -> Result<(), StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE connector_accounts SET rate_blocked_until = MAX(COALESCE(rate_blocked_until, 0), ?3) \
                     WHERE organization_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| s.execute(params![org, id, until.unix_millis()]))
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn clear_connector_rate(&self, organization_id: &str, id: &str) -> Result<(), StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE connector_accounts SET rate_strikes = 0, rate_blocked_until = NULL \
                     WHERE organization_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| s.execute(params![org, id]))
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn reserve_connector_send_slot(
        &self,
        organization_id: &str,
        account_id: &str,
        scope: &str,
        now: Timestamp,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let (org, account, scope) = (organization_id.to_owned(), account_id.to_owned(), scope.to_owned());
        let (now, step) = slot_micros(now, interval);
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO connector_send_slots (organization_id, account_id, scope, next_at_micros) \
                     VALUES (?1, ?2, ?3, ?4 + ?5) \
                     ON CONFLICT (organization_id, account_id, scope) \
                     DO UPDATE SET next_at_micros = MAX(next_at_micros, ?4) + ?5 \
                     RETURNING next_at_micros - ?5",
                )
                .and_then(|mut s| s.query_row(params![org, account, scope, now, step], |r| r.get::<_, i64>(0)))
                .map(|slot| slot_wait(slot, now))
                .map_err(store_error)
            })
            .await
    }

    async fn delete_connector_account(&self, organization_id: &str, id: &str) -> Result<bool, StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM connector_accounts WHERE organization_id = ?1 AND id = ?2")
                    .and_then(|mut s| s.execute(params![org, id]))
                    .map(|n| n == 1)
                    .map_err(store_error)
            })
            .await
    }

    async fn try_connector_lease(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO connector_leases (key, holder, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE connector_leases.expires_at <= ?4",
                )
                .and_then(|mut s| s.execute(params![key, holder, until.unix_millis(), now.unix_millis()]))
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn release_connector_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM connector_leases WHERE key = ?1 AND holder = ?2")
                    .and_then(|mut s| s.execute(params![key, holder]))
                    .map(|_| ())
                    .map_err(store_error)
            })
            .await
    }
}
