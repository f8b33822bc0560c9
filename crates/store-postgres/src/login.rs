//! The hosted login flow's records on PostgreSQL.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::login::model::{
    AttemptKind, AuthorizationCode, FlowFace, LoginAttempt, LoginFlow, LoginSession, OutboxMessage, RecentAttempts,
    Redemption, Undo, User,
};
use portcullis_core::organization::Organization;
use portcullis_core::store::{LoginStore, StoreError};
use serde_json::Value;
use tokio_postgres::Row;

use crate::{PostgresStore, decode, organization_config, store_error};

fn json<T: serde::Serialize>(value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row, index: usize) -> Result<T, StoreError> {
    let value: Value = row.try_get(index).map_err(|e| decode(&e))?;
    serde_json::from_value(value).map_err(|e| StoreError::Decode(e.to_string()))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| decode(&e))
}

fn at(row: &Row, index: usize) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<i64>>(row, index)?.map(Timestamp::from_unix_millis))
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::unix_millis)
}

const USER_COLUMNS: &str = "id, organization_id, email, verified, blocked, created_at, updated_at, last_login_at";

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: get(row, 0)?,
        organization_id: get(row, 1)?,
        email: get(row, 2)?,
        verified: get(row, 3)?,
        blocked: get(row, 4)?,
        created: Timestamp::from_unix_millis(get(row, 5)?),
        updated: Timestamp::from_unix_millis(get(row, 6)?),
        last_login: at(row, 7)?,
    })
}

const ATTEMPT_COLUMNS: &str = "id, flow_id, organization_id, email, code_digest, created_at, wrong_entries, closed_at, \
     kind, challenge, approved_at, session_id, undone_at, handed_over_at, network";

fn attempt_from_row(row: &Row) -> Result<LoginAttempt, StoreError> {
    let wrong: i32 = get(row, 6)?;
    Ok(LoginAttempt {
        id: get(row, 0)?,
        flow_id: get(row, 1)?,
        organization_id: get(row, 2)?,
        email: get(row, 3)?,
        code_digest: get(row, 4)?,
        created_at: Timestamp::from_unix_millis(get(row, 5)?),
        wrong_entries: u32::try_from(wrong).unwrap_or(0),
        closed_at: at(row, 7)?,
        kind: AttemptKind::from_stored(&get::<String>(row, 8)?),
        challenge: get::<Option<i16>>(row, 9)?.and_then(|n| u8::try_from(n).ok()),
        approved_at: at(row, 10)?,
        session_id: get(row, 11)?,
        undone_at: at(row, 12)?,
        handed_over_at: at(row, 13)?,
        network: get(row, 14)?,
    })
}

const CODE_COLUMNS: &str =
    "code_hash, organization_id, session_id, redirect_uri, code_challenge, face, created_at, expires_at, used_at";

fn code_from_row(row: &Row) -> Result<AuthorizationCode, StoreError> {
    let face: String = get(row, 5)?;
    Ok(AuthorizationCode {
        code_hash: get(row, 0)?,
        organization_id: get(row, 1)?,
        session_id: get(row, 2)?,
        redirect_uri: get(row, 3)?,
        code_challenge: get(row, 4)?,
        face: FlowFace::from_stored(&face),
        created_at: Timestamp::from_unix_millis(get(row, 6)?),
        expires_at: Timestamp::from_unix_millis(get(row, 7)?),
        used_at: at(row, 8)?,
    })
}

#[async_trait]
impl LoginStore for PostgresStore {
    async fn update_organization(&self, organization: &Organization) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let config = organization_config(organization)?;
        let n = client
            .execute(
                "UPDATE organizations SET name = $1, config = $2 WHERE id = $3",
                &[&organization.name, &config, &organization.id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn set_client_secret(&self, organization_id: &str, sealed: &[u8], staged: bool) -> Result<(), StoreError> {
        let client = self.client().await?;
        let column = if staged { "sealed_staged" } else { "sealed_secret" };
        client
            .execute(
                &format!(
                    "INSERT INTO organization_secrets (organization_id, {column}) VALUES ($1, $2) \
                     ON CONFLICT (organization_id) DO UPDATE SET {column} = excluded.{column}"
                ),
                &[&organization_id, &sealed],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn activate_client_secret(&self, organization_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE organization_secrets SET sealed_secret = sealed_staged, sealed_staged = NULL \
                 WHERE organization_id = $1 AND sealed_staged IS NOT NULL",
                &[&organization_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn client_secrets(&self, organization_id: &str) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT sealed_secret, sealed_staged FROM organization_secrets WHERE organization_id = $1",
                &[&organization_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        match row {
            Some(row) => Ok((get(&row, 0)?, get(&row, 1)?)),
            None => Ok((None, None)),
        }
    }

    async fn user_by_email(
        &self,
        organization_id: &str,
        email: &str,
        create: Option<&User>,
    ) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        if let Some(user) = create {
            client
                .execute(
                    "INSERT INTO users (id, organization_id, email, verified, blocked, created_at, updated_at, \
                     last_login_at) VALUES ($1, $2, $3, $5, false, $4, $4, $6) ON CONFLICT (organization_id, email) DO NOTHING",
                    &[
                        &user.id,
                        &organization_id,
                        &email,
                        &user.created.unix_millis(),
                        &user.verified,
                        &millis(user.last_login),
                    ],
                )
                .await
                .map_err(|e| store_error(&e))?;
        }
        let row = client
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 AND email = $2"),
                &[&organization_id, &email],
            )
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"), &[&id])
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn record_login(&self, user_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE users SET verified = true, last_login_at = $1, updated_at = $1 WHERE id = $2",
                &[&now.unix_millis(), &user_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn insert_flow(&self, flow: &LoginFlow) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO login_flows (id, organization_id, data, expires_at) VALUES ($1, $2, $3, $4)",
                &[&flow.id, &flow.organization_id, &json(flow)?, &flow.expires_at.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn flow(&self, id: &str) -> Result<Option<LoginFlow>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT data FROM login_flows WHERE id = $1", &[&id])
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(|r| from_json(r, 0)).transpose()
    }

    async fn insert_attempt(&self, a: &LoginAttempt) -> Result<(), StoreError> {
        let client = self.client().await?;
        let wrong = i32::try_from(a.wrong_entries).unwrap_or(i32::MAX);
        client
            .execute(
                &format!("INSERT INTO login_attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"),
                &[
                    &a.id,
                    &a.flow_id,
                    &a.organization_id,
                    &a.email,
                    &a.code_digest,
                    &a.created_at.unix_millis(),
                    &wrong,
                    &millis(a.closed_at),
                    &a.kind.as_str(),
                    &a.challenge.map(i16::from),
                    &millis(a.approved_at),
                    &a.session_id,
                    &millis(a.undone_at),
                    &millis(a.handed_over_at),
                    &a.network,
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn attempt(&self, id: &str) -> Result<Option<LoginAttempt>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {ATTEMPT_COLUMNS} FROM login_attempts WHERE id = $1"), &[&id])
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn latest_attempt(&self, flow_id: &str) -> Result<Option<LoginAttempt>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM login_attempts WHERE flow_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
                ),
                &[&flow_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn attempts_since(
        &self,
        organization_id: &str,
        email: &str,
        network: &str,
        since: Timestamp,
    ) -> Result<RecentAttempts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE network = $3), MAX(created_at) FILTER (WHERE network = $3) \
                 FROM login_attempts WHERE organization_id = $1 AND email = $2 AND created_at >= $4",
                &[&organization_id, &email, &network, &since.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let total: i64 = get(&row, 0)?;
        let from_network: i64 = get(&row, 1)?;
        Ok(RecentAttempts {
            total: usize::try_from(total).unwrap_or(0),
            from_network: usize::try_from(from_network).unwrap_or(0),
            last_from_network: at(&row, 2)?,
        })
    }

    async fn record_wrong_entry(&self, attempt_id: &str) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "UPDATE login_attempts SET wrong_entries = wrong_entries + 1 WHERE id = $1 RETURNING wrong_entries",
                &[&attempt_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let wrong: i32 = get(&row, 0)?;
        Ok(u32::try_from(wrong).unwrap_or(0))
    }

    async fn close_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE login_attempts SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL",
                &[&now.unix_millis(), &attempt_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn approve_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE login_attempts SET approved_at = $1 \
                 WHERE id = $2 AND approved_at IS NULL AND closed_at IS NULL",
                &[&now.unix_millis(), &attempt_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn hand_over_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE login_attempts SET handed_over_at = $1 \
                 WHERE id = $2 AND handed_over_at IS NULL AND session_id IS NOT NULL AND undone_at IS NULL",
                &[&now.unix_millis(), &attempt_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn attach_attempt_session(
        &self,
        attempt_id: &str,
        session_id: &str,
        handed_over: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE login_attempts SET session_id = $1, handed_over_at = $3 WHERE id = $2 AND undone_at IS NULL",
                &[&session_id, &attempt_id, &millis(handed_over)],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn undo_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<Undo, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE login_attempts SET undone_at = $1, closed_at = COALESCE(closed_at, $1) \
                 WHERE id = $2 AND undone_at IS NULL RETURNING session_id",
                &[&now.unix_millis(), &attempt_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        row.map_or(Ok(Undo::AlreadyUndone), |row| Ok(Undo::Undone { session_id: get(&row, 0)? }))
    }

    async fn insert_login_session(&self, session: &LoginSession) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO login_sessions (id, organization_id, data, ended_at, user_id) VALUES ($1, $2, $3, $4, $5)",
                &[&session.id, &session.organization_id, &json(session)?, &millis(session.ended_at), &session.user_id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn login_session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT data, ended_at FROM login_sessions WHERE id = $1", &[&id])
            .await
            .map_err(|e| store_error(&e))?;
        let Some(row) = row else { return Ok(None) };
        let mut session: LoginSession = from_json(&row, 0)?;
        session.ended_at = at(&row, 1)?;
        Ok(Some(session))
    }

    async fn live_login_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<LoginSession>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT data FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL LIMIT $2",
                &[&user_id, &limit],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let mut sessions = rows.iter().map(|row| from_json::<LoginSession>(row, 0)).collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    async fn update_login_session(&self, session: &LoginSession) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("UPDATE login_sessions SET data = $1 WHERE id = $2", &[&json(session)?, &session.id])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn end_login_session(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE login_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
                &[&now.unix_millis(), &id],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn insert_code(&self, k: &AuthorizationCode) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &k.code_hash,
                    &k.organization_id,
                    &k.session_id,
                    &k.redirect_uri,
                    &k.code_challenge,
                    &k.face.as_str(),
                    &k.created_at.unix_millis(),
                    &k.expires_at.unix_millis(),
                    &millis(k.used_at),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str, now: Timestamp) -> Result<Redemption, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        // The row lock makes a concurrent redemption wait, then see `used_at` set: one wins, one replays.
        let row = tx
            .query_opt(
                &format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1 FOR UPDATE"),
                &[&code_hash],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let outcome = match row.as_ref().map(code_from_row).transpose()? {
            None => Redemption::Unknown,
            Some(code) if code.used_at.is_some() => Redemption::Replayed(code),
            Some(mut code) => {
                tx.execute(
                    "UPDATE authorization_codes SET used_at = $1 WHERE code_hash = $2",
                    &[&now.unix_millis(), &code_hash],
                )
                .await
                .map_err(|e| store_error(&e))?;
                code.used_at = Some(now);
                Redemption::Redeemed(code)
            }
        };
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(outcome)
    }

    async fn push_outbox(&self, m: &OutboxMessage) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO outbox (id, organization_id, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&m.id, &m.organization_id, &m.to, &m.subject, &m.body, &m.created.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn outbox(&self, to: Option<&str>, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let columns = "SELECT id, organization_id, recipient, subject, body, created_at FROM outbox";
        let rows = match to {
            Some(to) => {
                client
                    .query(
                        &format!("{columns} WHERE recipient = $2 ORDER BY created_at DESC, id DESC LIMIT $1"),
                        &[&limit, &to],
                    )
                    .await
            }
            None => client.query(&format!("{columns} ORDER BY created_at DESC, id DESC LIMIT $1"), &[&limit]).await,
        }
        .map_err(|e| store_error(&e))?;
        rows.iter()
            .map(|r| {
                Ok(OutboxMessage {
                    id: get(r, 0)?,
                    organization_id: get(r, 1)?,
                    to: get(r, 2)?,
                    subject: get(r, 3)?,
                    body: get(r, 4)?,
                    created: Timestamp::from_unix_millis(get(r, 5)?),
                })
            })
            .collect()
    }
}
