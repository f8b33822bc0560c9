//! Sessions and API keys on SQLite.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::organization::ApiKeyRecord;
use portcullis_core::session::{RefreshOutcome, RefreshRequest, SessionRecord, apply_refresh};
use portcullis_core::store::{ApiKeyStore, SessionStore, StoreError};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use crate::events::append_event;
use crate::{SqliteStore, store_error};

const SESSION_COLUMNS: &str = "handle, organization_id, user_id, tenant_id, payload, current_hashes, previous_hash, \
                               rotated_at, created_at, expires_at, revoked_at, data";

fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    let at = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp::from_unix_millis))
    };
    Ok(SessionRecord {
        handle: row.get(0)?,
        organization_id: row.get(1)?,
        user_id: row.get(2)?,
        tenant_id: row.get(3)?,
        payload: json_column::<Map<String, Value>>(row, 4)?,
        current_hashes: json_column::<Vec<String>>(row, 5)?,
        previous_hash: row.get(6)?,
        rotated_at: at(7)?,
        created_at: Timestamp::from_unix_millis(row.get(8)?),
        expires_at: Timestamp::from_unix_millis(row.get(9)?),
        revoked_at: at(10)?,
        data: json_column::<Map<String, Value>>(row, 11)?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn write_rotation(c: &Connection, s: &SessionRecord) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE sessions SET current_hashes = ?1, previous_hash = ?2, rotated_at = ?3, expires_at = ?4, \
         revoked_at = ?5 WHERE handle = ?6",
    )
    .and_then(|mut st| {
        st.execute(params![
            to_json(&s.current_hashes).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            s.previous_hash,
            s.rotated_at.map(Timestamp::unix_millis),
            s.expires_at.unix_millis(),
            s.revoked_at.map(Timestamp::unix_millis),
            s.handle,
        ])
    })
    .map(|_| ())
    .map_err(store_error)
}

impl SqliteStore {
    /// Runs `sql`, which replaces a JSON-object column of one session of the organization (`?1` the value,
    /// `?2` the organization, `?3` the handle); `false` if there is no such session.
    async fn set_session_object(
        &self,
        sql: &'static str,
        organization_id: &str,
        handle: &str,
        value: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let (org, handle, value) = (organization_id.to_owned(), handle.to_owned(), to_json(value)?);
        self.writer.run(move |c| c.execute(sql, params![value, org, handle]).map(|n| n == 1).map_err(store_error)).await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let s = session.clone();
        let payload = to_json(&s.payload)?;
        let data = to_json(&s.data)?;
        let hashes = to_json(&s.current_hashes)?;
        self.writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))
                .and_then(|mut st| {
                    st.execute(params![
                        s.handle,
                        s.organization_id,
                        s.user_id,
                        s.tenant_id,
                        payload,
                        hashes,
                        s.previous_hash,
                        s.rotated_at.map(Timestamp::unix_millis),
                        s.created_at.unix_millis(),
                        s.expires_at.unix_millis(),
                        s.revoked_at.map(Timestamp::unix_millis),
                        data,
                    ])
                })
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn session(&self, handle: &str) -> Result<Option<SessionRecord>, StoreError> {
        let handle = handle.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE handle = ?1"))
                    .and_then(|mut st| st.query_row([handle], session_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn user_sessions(&self, organization_id: &str, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let (org, user) = (organization_id.to_owned(), user_id.to_owned());
        self.readers
            .run(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLUMNS} FROM sessions WHERE organization_id = ?1 AND user_id = ?2 \
                         ORDER BY created_at, handle"
                    ))
                    .map_err(store_error)?;
                let rows = st.query_map([org, user], session_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn refresh_session(
        &self,
        handle: &str,
        request: &RefreshRequest,
    ) -> Result<Option<RefreshOutcome>, StoreError> {
        let (handle, request) = (handle.to_owned(), request.clone());
        // Rotations that arrive together commit together (group commit).
        self.writer
            .run_grouped(&self.rotations, move |tx| {
                let found = tx
                    .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE handle = ?1"))
                    .and_then(|mut st| st.query_row([&handle], session_from_row).optional())
                    .map_err(store_error)?;
                let Some(mut session) = found else {
                    return Ok(None);
                };
                let (changed, outcome) = apply_refresh(&mut session, &request);
                if changed {
                    write_rotation(tx, &session)?;
                }
                if let Some(event) = Event::for_refresh(&outcome, request.now) {
                    append_event(tx, &event)?;
                }
                Ok(Some(outcome))
            })
            .await
    }

    async fn revoke_session(&self, organization_id: &str, handle: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (org, handle) = (organization_id.to_owned(), handle.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE sessions SET revoked_at = ?1 WHERE organization_id = ?2 AND handle = ?3 AND revoked_at IS NULL",
                    params![now.unix_millis(), org, handle],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn revoke_user_sessions(
        &self,
        organization_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (org, user) = (organization_id.to_owned(), user_id.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE sessions SET revoked_at = ?1 WHERE organization_id = ?2 AND user_id = ?3 \
                     AND revoked_at IS NULL AND expires_at > ?1",
                    params![now.unix_millis(), org, user],
                )
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
                .map_err(store_error)
            })
            .await
    }

    async fn update_session_payload(
        &self,
        organization_id: &str,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET payload = ?1 WHERE organization_id = ?2 AND handle = ?3";
        self.set_session_object(sql, organization_id, handle, payload).await
    }

    async fn update_session_data(
        &self,
        organization_id: &str,
        handle: &str,
        data: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET data = ?1 WHERE organization_id = ?2 AND handle = ?3";
        self.set_session_object(sql, organization_id, handle, data).await
    }

    async fn revoked_since(
        &self,
        organization_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let org = organization_id.to_owned();
        self.readers
            .scan(move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT handle, revoked_at FROM sessions WHERE organization_id = ?1 AND revoked_at >= ?2 \
                         ORDER BY revoked_at, handle",
                    )
                    .map_err(store_error)?;
                let rows = st
                    .query_map(params![org, since.unix_millis()], |r| {
                        Ok((r.get::<_, String>(0)?, Timestamp::from_unix_millis(r.get(1)?)))
                    })
                    .map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }
}

const API_KEY_COLUMNS: &str = "id, organization_id, secret_hash, created_at, revoked_at";

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        secret_hash: r.get(2)?,
        created: Timestamp::from_unix_millis(r.get(3)?),
        revoked: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_unix_millis),
    })
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let k = key.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO api_keys (id, organization_id, secret_hash, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![k.id, k.organization_id, k.secret_hash, k.created.unix_millis(), k.revoked.map(Timestamp::unix_millis)],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let hash = hash.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?1"))
                    .and_then(|mut st| st.query_row([hash], api_key_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn api_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let org = organization_id.to_owned();
        self.readers
            .run(move |c| {
                let sql = format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE organization_id = ?1 ORDER BY created_at, id"
                );
                let mut statement = c.prepare_cached(&sql).map_err(store_error)?;
                let rows = statement.query_map([org], api_key_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn revoke_api_key(&self, organization_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE organization_id = ?2 AND id = ?3 AND revoked_at IS NULL",
                    params![now.unix_millis(), org, id],
                )
                .map(|changed| changed == 1)
                .map_err(store_error)
            })
            .await
    }
}
