//! Sessions and API keys on PostgreSQL.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::organization::ApiKeyRecord;
use portcullis_core::session::{RefreshOutcome, RefreshRequest, SessionRecord, apply_refresh};
use portcullis_core::store::{ApiKeyStore, SessionStore, StoreError};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use crate::events::append_event;
use crate::{PostgresStore, decode, store_error};

const SESSION_COLUMNS: &str = "handle, organization_id, user_id, tenant_id, payload, current_hashes, previous_hash, \
                               rotated_at, created_at, expires_at, revoked_at, data";

fn session_from_row(row: &Row) -> Result<SessionRecord, StoreError> {
    let at = |i: usize| -> Result<Option<Timestamp>, StoreError> {
        Ok(row.try_get::<_, Option<i64>>(i).map_err(|e| decode(&e))?.map(Timestamp::from_unix_millis))
    };
    let payload: Value = row.try_get(4).map_err(|e| decode(&e))?;
    let Value::Object(payload) = payload else {
        return Err(StoreError::Decode("a session payload is not a JSON object".to_owned()));
    };
    let data: Value = row.try_get(11).map_err(|e| decode(&e))?;
    let Value::Object(data) = data else {
        return Err(StoreError::Decode("a session's data is not a JSON object".to_owned()));
    };
    Ok(SessionRecord {
        handle: row.try_get(0).map_err(|e| decode(&e))?,
        organization_id: row.try_get(1).map_err(|e| decode(&e))?,
        user_id: row.try_get(2).map_err(|e| decode(&e))?,
        tenant_id: row.try_get(3).map_err(|e| decode(&e))?,
        payload,
        current_hashes: row.try_get(5).map_err(|e| decode(&e))?,
        previous_hash: row.try_get(6).map_err(|e| decode(&e))?,
        rotated_at: at(7)?,
        created_at: Timestamp::from_unix_millis(row.try_get(8).map_err(|e| decode(&e))?),
        expires_at: Timestamp::from_unix_millis(row.try_get(9).map_err(|e| decode(&e))?),
        revoked_at: at(10)?,
        data,
    })
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::unix_millis)
}

impl PostgresStore {
    /// Runs `sql`, which replaces a JSON-object column of one session of the organization (`$1` the value,
    /// `$2` the organization, `$3` the handle); `false` if there is no such session.
    async fn set_session_object(
        &self,
        sql: &str,
        organization_id: &str,
        handle: &str,
        value: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let value = Value::Object(value.clone());
        let n = client.execute(sql, &[&value, &organization_id, &handle]).await.map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .await
            .map_err(|e| store_error(&e))?;
        let payload = Value::Object(s.payload.clone());
        let data = Value::Object(s.data.clone());
        client
            .execute(
                &statement,
                &[
                    &s.handle,
                    &s.organization_id,
                    &s.user_id,
                    &s.tenant_id,
                    &payload,
                    &s.current_hashes,
                    &s.previous_hash,
                    &millis(s.rotated_at),
                    &s.created_at.unix_millis(),
                    &s.expires_at.unix_millis(),
                    &millis(s.revoked_at),
                    &data,
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn session(&self, handle: &str) -> Result<Option<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE handle = $1"))
            .await
            .map_err(|e| store_error(&e))?;
        let row = client.query_opt(&statement, &[&handle]).await.map_err(|e| store_error(&e))?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn user_sessions(&self, organization_id: &str, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE organization_id = $1 AND user_id = $2 \
                     ORDER BY created_at, handle"
                ),
                &[&organization_id, &user_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter().map(session_from_row).collect()
    }

    async fn refresh_session(
        &self,
        handle: &str,
        request: &RefreshRequest,
    ) -> Result<Option<RefreshOutcome>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        let select = tx
            .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE handle = $1 FOR UPDATE"))
            .await
            .map_err(|e| store_error(&e))?;
        // The row lock makes concurrent refreshes on every instance wait and then see this rotation.
        let Some(row) = tx.query_opt(&select, &[&handle]).await.map_err(|e| store_error(&e))? else {
            return Ok(None);
        };
        let mut session = session_from_row(&row)?;
        let (changed, outcome) = apply_refresh(&mut session, request);
        if changed {
            let update = tx
                .prepare_cached(
                    "UPDATE sessions SET current_hashes = $1, previous_hash = $2, rotated_at = $3, expires_at = $4, \
                     revoked_at = $5 WHERE handle = $6",
                )
                .await
                .map_err(|e| store_error(&e))?;
            tx.execute(
                &update,
                &[
                    &session.current_hashes,
                    &session.previous_hash,
                    &millis(session.rotated_at),
                    &session.expires_at.unix_millis(),
                    &millis(session.revoked_at),
                    &session.handle,
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        }
        if let Some(event) = Event::for_refresh(&outcome, request.now) {
            append_event(&tx, &event).await?;
        }
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(Some(outcome))
    }

    async fn revoke_session(&self, organization_id: &str, handle: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE sessions SET revoked_at = $1 WHERE organization_id = $2 AND handle = $3 AND revoked_at IS NULL",
                &[&now.unix_millis(), &organization_id, &handle],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn revoke_user_sessions(
        &self,
        organization_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE sessions SET revoked_at = $1 WHERE organization_id = $2 AND user_id = $3 \
                 AND revoked_at IS NULL AND expires_at > $1",
                &[&now.unix_millis(), &organization_id, &user_id],
            )
            .await
            .map_err(|e| store_error(&e))
    }

    async fn update_session_payload(
        &self,
        organization_id: &str,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET payload = $1 WHERE organization_id = $2 AND handle = $3";
        self.set_session_object(sql, organization_id, handle, payload).await
    }

    async fn update_session_data(
        &self,
        organization_id: &str,
        handle: &str,
        data: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET data = $1 WHERE organization_id = $2 AND handle = $3";
        self.set_session_object(sql, organization_id, handle, data).await
    }

    async fn revoked_since(
        &self,
        organization_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT handle, revoked_at FROM sessions WHERE organization_id = $1 AND revoked_at >= $2 \
                 ORDER BY revoked_at, handle",
                &[&organization_id, &since.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| decode(&e))?,
                    Timestamp::from_unix_millis(r.try_get(1).map_err(|e| decode(&e))?),
                ))
            })
            .collect()
    }
}

const API_KEY_COLUMNS: &str = "id, organization_id, secret_hash, created_at, revoked_at";

fn api_key_row(r: &tokio_postgres::Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: r.try_get(0).map_err(|e| decode(&e))?,
        organization_id: r.try_get(1).map_err(|e| decode(&e))?,
        secret_hash: r.try_get(2).map_err(|e| decode(&e))?,
        created: Timestamp::from_unix_millis(r.try_get(3).map_err(|e| decode(&e))?),
        revoked: r.try_get::<_, Option<i64>>(4).map_err(|e| decode(&e))?.map(Timestamp::from_unix_millis),
    })
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO api_keys (id, organization_id, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
                &[&k.id, &k.organization_id, &k.secret_hash, &k.created.unix_millis(), &millis(k.revoked)],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1");
        let statement = client.prepare_cached(&sql).await.map_err(|e| store_error(&e))?;
        let row = client.query_opt(&statement, &[&hash]).await.map_err(|e| store_error(&e))?;
        row.as_ref().map(api_key_row).transpose()
    }

    async fn api_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 ORDER BY created_at, id");
        let rows = client.query(&sql, &[&organization_id]).await.map_err(|e| store_error(&e))?;
        rows.iter().map(api_key_row).collect()
    }

    async fn revoke_api_key(&self, organization_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL",
                &[&now.unix_millis(), &organization_id, &id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(changed == 1)
    }
}
