//! Passkeys and their ceremonies on SQLite.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::passkey::{CeremonyKind, Passkey, PasskeyCeremony, PasskeyUse};
use portcullis_core::store::{PasskeyStore, StoreError};
use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};

use crate::{SqliteStore, store_error};

const PASSKEY_COLUMNS: &str = "credential_id, organization_id, user_id, name, rp_id, static_state, dynamic_state, \
     sign_count, backup_eligible, backed_up, aaguid, transports, created_at, last_used_at";

fn passkey_from_row(row: &Row<'_>) -> rusqlite::Result<Passkey> {
    Ok(Passkey {
        credential_id: row.get(0)?,
        organization_id: row.get(1)?,
        user_id: row.get(2)?,
        name: row.get(3)?,
        rp_id: row.get(4)?,
        static_state: row.get(5)?,
        dynamic_state: row.get(6)?,
        sign_count: row.get(7)?,
        backup_eligible: row.get(8)?,
        backed_up: row.get(9)?,
        aaguid: row.get(10)?,
        transports: row.get(11)?,
        created_at: Timestamp::from_unix_millis(row.get(12)?),
        last_used_at: row.get::<_, Option<i64>>(13)?.map(Timestamp::from_unix_millis),
    })
}

fn ceremony_from_row(row: &Row<'_>) -> rusqlite::Result<PasskeyCeremony> {
    let kind: String = row.get(1)?;
    Ok(PasskeyCeremony {
        id: row.get(0)?,
        kind: CeremonyKind::from_stored(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(1, Type::Text, format!("unknown ceremony kind {kind}").into())
        })?,
        flow_id: row.get(2)?,
        organization_id: row.get(3)?,
        user_id: row.get(4)?,
        rp_id: row.get(5)?,
        state: row.get(6)?,
        expires_at: Timestamp::from_unix_millis(row.get(7)?),
    })
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn insert_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> Result<(), StoreError> {
        let c = ceremony.clone();
        self.writer
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO passkey_ceremonies (id, kind, flow_id, organization_id, user_id, rp_id, state, \
                     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        c.id,
                        c.kind.as_str(),
                        c.flow_id,
                        c.organization_id,
                        c.user_id,
                        c.rp_id,
                        c.state,
                        c.expires_at.unix_millis()
                    ],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn take_passkey_ceremony(&self, id: &str) -> Result<Option<PasskeyCeremony>, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| {
                c.query_row(
                    "DELETE FROM passkey_ceremonies WHERE id = ?1 \
                     RETURNING id, kind, flow_id, organization_id, user_id, rp_id, state, expires_at",
                    [id],
                    ceremony_from_row,
                )
                .optional()
                .map_err(store_error)
            })
            .await
    }

    async fn insert_passkey(&self, passkey: &Passkey) -> Result<(), StoreError> {
        let p = passkey.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO passkeys ({PASSKEY_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                    ),
                    params![
                        p.credential_id,
                        p.organization_id,
                        p.user_id,
                        p.name,
                        p.rp_id,
                        p.static_state,
                        p.dynamic_state,
                        p.sign_count,
                        p.backup_eligible,
                        p.backed_up,
                        p.aaguid,
                        p.transports,
                        p.created_at.unix_millis(),
                        p.last_used_at.map(Timestamp::unix_millis)
                    ],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        let id = credential_id.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?1"))
                    .and_then(|mut s| s.query_row([id], passkey_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn user_passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let user = user_id.to_owned();
        self.readers
            .run(move |c| {
                let mut statement = c
                    .prepare_cached(&format!(
                        "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, credential_id"
                    ))
                    .map_err(store_error)?;
                let rows = statement.query_map([user], passkey_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn record_passkey_use(&self, used: &PasskeyUse) -> Result<bool, StoreError> {
        let u = used.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE passkeys SET sign_count = ?1, backed_up = ?2, dynamic_state = ?3, last_used_at = ?4 \
                     WHERE credential_id = ?5 AND sign_count = ?6",
                    params![
                        u.sign_count,
                        u.backed_up,
                        u.dynamic_state,
                        u.used_at.unix_millis(),
                        u.credential_id,
                        u.previous_sign_count
                    ],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn rename_passkey(&self, user_id: &str, credential_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user, id, name) = (user_id.to_owned(), credential_id.to_owned(), name.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE passkeys SET name = ?1 WHERE user_id = ?2 AND credential_id = ?3",
                    params![name, user, id],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> Result<bool, StoreError> {
        let (user, id) = (user_id.to_owned(), credential_id.to_owned());
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM passkeys WHERE user_id = ?1 AND credential_id = ?2", params![user, id])
                    .map(|n| n == 1)
                    .map_err(store_error)
            })
            .await
    }

    async fn prune_passkey_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .run(move |c| {
                c.execute("DELETE FROM passkey_ceremonies WHERE expires_at < ?1", [before.unix_millis()])
                    .map(|n| u64::try_from(n).unwrap_or(0))
                    .map_err(store_error)
            })
            .await
    }
}
