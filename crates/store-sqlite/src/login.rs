//! The hosted login flow's records on SQLite.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::login::model::{
    AttemptKind, AuthorizationCode, FlowFace, LoginAttempt, LoginFlow, LoginSession, OutboxMessage, RecentAttempts,
    Redemption, Undo, User,
};
use portcullis_core::organization::Organization;
use portcullis_core::store::{LoginStore, StoreError};
use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use crate::{SqliteStore, organization_config, store_error};

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp::from_unix_millis))
}

const USER_COLUMNS: &str = "id, organization_id, email, verified, blocked, created_at, updated_at, last_login_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        email: row.get(2)?,
        verified: row.get(3)?,
        blocked: row.get(4)?,
        created: Timestamp::from_unix_millis(row.get(5)?),
        updated: Timestamp::from_unix_millis(row.get(6)?),
        last_login: at(row, 7)?,
    })
}

const ATTEMPT_COLUMNS: &str = "id, flow_id, organization_id, email, code_digest, created_at, wrong_entries, closed_at, \
     kind, challenge, approved_at, session_id, undone_at, handed_over_at, network";

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<LoginAttempt> {
    Ok(LoginAttempt {
        id: row.get(0)?,
        flow_id: row.get(1)?,
        organization_id: row.get(2)?,
        email: row.get(3)?,
        code_digest: row.get(4)?,
        created_at: Timestamp::from_unix_millis(row.get(5)?),
        wrong_entries: row.get(6)?,
        closed_at: at(row, 7)?,
        kind: AttemptKind::from_stored(&row.get::<_, String>(8)?),
        challenge: row.get(9)?,
        approved_at: at(row, 10)?,
        session_id: row.get(11)?,
        undone_at: at(row, 12)?,
        handed_over_at: at(row, 13)?,
        network: row.get(14)?,
    })
}

const CODE_COLUMNS: &str =
    "code_hash, organization_id, session_id, redirect_uri, code_challenge, face, created_at, expires_at, used_at";

fn code_from_row(row: &Row<'_>) -> rusqlite::Result<AuthorizationCode> {
    let face: String = row.get(5)?;
    Ok(AuthorizationCode {
        code_hash: row.get(0)?,
        organization_id: row.get(1)?,
        session_id: row.get(2)?,
        redirect_uri: row.get(3)?,
        code_challenge: row.get(4)?,
        face: FlowFace::from_stored(&face),
        created_at: Timestamp::from_unix_millis(row.get(6)?),
        expires_at: Timestamp::from_unix_millis(row.get(7)?),
        used_at: at(row, 8)?,
    })
}

#[async_trait]
impl LoginStore for SqliteStore {
    async fn update_organization(&self, organization: &Organization) -> Result<bool, StoreError> {
        let (id, name, config) =
            (organization.id.clone(), organization.name.clone(), organization_config(organization)?);
        self.writer
            .run(move |c| {
                c.execute("UPDATE organizations SET name = ?1, config = ?2 WHERE id = ?3", params![name, config, id])
                    .map(|n| n == 1)
                    .map_err(store_error)
            })
            .await
    }

    async fn set_client_secret(&self, organization_id: &str, sealed: &[u8], staged: bool) -> Result<(), StoreError> {
        let (org, sealed) = (organization_id.to_owned(), sealed.to_vec());
        let column = if staged { "sealed_staged" } else { "sealed_secret" };
        self.writer
            .run(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO organization_secrets (organization_id, {column}) VALUES (?1, ?2) \
                         ON CONFLICT (organization_id) DO UPDATE SET {column} = excluded.{column}"
                    ),
                    params![org, sealed],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn activate_client_secret(&self, organization_id: &str) -> Result<bool, StoreError> {
        let org = organization_id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE organization_secrets SET sealed_secret = sealed_staged, sealed_staged = NULL \
                     WHERE organization_id = ?1 AND sealed_staged IS NOT NULL",
                    [org],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn client_secrets(&self, organization_id: &str) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), StoreError> {
        let org = organization_id.to_owned();
        self.readers
            .run(move |c| {
                c.query_row(
                    "SELECT sealed_secret, sealed_staged FROM organization_secrets WHERE organization_id = ?1",
                    [org],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map(Option::unwrap_or_default)
                .map_err(store_error)
            })
            .await
    }

    async fn user_by_email(
        &self,
        organization_id: &str,
        email: &str,
        create: Option<&User>,
    ) -> Result<Option<User>, StoreError> {
        let (org, email, create) = (organization_id.to_owned(), email.to_owned(), create.cloned());
        self.writer
            .run(move |c| {
                if let Some(user) = create {
                    c.execute(
                        "INSERT INTO users (id, organization_id, email, verified, blocked, created_at, updated_at, \
                         last_login_at) VALUES (?1, ?2, ?3, ?5, 0, ?4, ?4, ?6) ON CONFLICT (organization_id, email) DO NOTHING",
                        params![
                            user.id,
                            org,
                            email,
                            user.created.unix_millis(),
                            user.verified,
                            user.last_login.map(Timestamp::unix_millis)
                        ],
                    )
                    .map_err(store_error)?;
                }
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE organization_id = ?1 AND email = ?2"))
                    .and_then(|mut s| s.query_row(params![org, email], user_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
                    .and_then(|mut s| s.query_row([id], user_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn record_login(&self, user_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let id = user_id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE users SET verified = 1, last_login_at = ?1, updated_at = ?1 WHERE id = ?2",
                    params![now.unix_millis(), id],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn insert_flow(&self, flow: &LoginFlow) -> Result<(), StoreError> {
        let (id, org, data, expires) = (flow.id.clone(), flow.organization_id.clone(), json(flow)?, flow.expires_at);
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO login_flows (id, organization_id, data, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, org, data, expires.unix_millis()],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn flow(&self, id: &str) -> Result<Option<LoginFlow>, StoreError> {
        let id = id.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached("SELECT data FROM login_flows WHERE id = ?1")
                    .and_then(|mut s| s.query_row([id], |r| from_json(r, 0)).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn insert_attempt(&self, attempt: &LoginAttempt) -> Result<(), StoreError> {
        let a = attempt.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    &format!("INSERT INTO login_attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
                    params![
                        a.id,
                        a.flow_id,
                        a.organization_id,
                        a.email,
                        a.code_digest,
                        a.created_at.unix_millis(),
                        a.wrong_entries,
                        a.closed_at.map(Timestamp::unix_millis),
                        a.kind.as_str(),
                        a.challenge,
                        a.approved_at.map(Timestamp::unix_millis),
                        a.session_id,
                        a.undone_at.map(Timestamp::unix_millis),
                        a.handed_over_at.map(Timestamp::unix_millis),
                        a.network
                    ],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn attempt(&self, id: &str) -> Result<Option<LoginAttempt>, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| {
                c.prepare_cached(&format!("SELECT {ATTEMPT_COLUMNS} FROM login_attempts WHERE id = ?1"))
                    .and_then(|mut s| s.query_row([id], attempt_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn latest_attempt(&self, flow_id: &str) -> Result<Option<LoginAttempt>, StoreError> {
        let flow = flow_id.to_owned();
        self.writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM login_attempts WHERE flow_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 1"
                ))
                .and_then(|mut s| s.query_row([flow], attempt_from_row).optional())
                .map_err(store_error)
            })
            .await
    }

    async fn attempts_since(
        &self,
        organization_id: &str,
        email: &str,
        network: &str,
        since: Timestamp,
    ) -> Result<RecentAttempts, StoreError> {
        let (org, email, network) = (organization_id.to_owned(), email.to_owned(), network.to_owned());
        self.writer
            .run(move |c| {
                c.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(network = ?3), 0), MAX(CASE WHEN network = ?3 THEN created_at END) \
                     FROM login_attempts WHERE organization_id = ?1 AND email = ?2 AND created_at >= ?4",
                    params![org, email, network, since.unix_millis()],
                    |r| {
                        Ok(RecentAttempts {
                            total: usize::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                            from_network: usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                            last_from_network: at(r, 2)?,
                        })
                    },
                )
                .map_err(store_error)
            })
            .await
    }

    async fn record_wrong_entry(&self, attempt_id: &str) -> Result<u32, StoreError> {
        let id = attempt_id.to_owned();
        self.writer
            .run(move |c| {
                c.query_row(
                    "UPDATE login_attempts SET wrong_entries = wrong_entries + 1 WHERE id = ?1 RETURNING wrong_entries",
                    [id],
                    |r| r.get(0),
                )
                .map_err(store_error)
            })
            .await
    }

    async fn close_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = attempt_id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE login_attempts SET closed_at = ?1 WHERE id = ?2 AND closed_at IS NULL",
                    params![now.unix_millis(), id],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn approve_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = attempt_id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE login_attempts SET approved_at = ?1 \
                     WHERE id = ?2 AND approved_at IS NULL AND closed_at IS NULL",
                    params![now.unix_millis(), id],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn hand_over_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = attempt_id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE login_attempts SET handed_over_at = ?1 \
                     WHERE id = ?2 AND handed_over_at IS NULL AND session_id IS NOT NULL AND undone_at IS NULL",
                    params![now.unix_millis(), id],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn attach_attempt_session(
        &self,
        attempt_id: &str,
        session_id: &str,
        handed_over: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let (id, session) = (attempt_id.to_owned(), session_id.to_owned());
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE login_attempts SET session_id = ?1, handed_over_at = ?3 WHERE id = ?2 AND undone_at IS NULL",
                    params![session, id, handed_over.map(Timestamp::unix_millis)],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn undo_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<Undo, StoreError> {
        let id = attempt_id.to_owned();
        self.writer
            .run(move |c| {
                c.query_row(
                    "UPDATE login_attempts SET undone_at = ?1, closed_at = COALESCE(closed_at, ?1) \
                     WHERE id = ?2 AND undone_at IS NULL RETURNING session_id",
                    params![now.unix_millis(), id],
                    |r| r.get(0),
                )
                .optional()
                .map(|found| found.map_or(Undo::AlreadyUndone, |session_id| Undo::Undone { session_id }))
                .map_err(store_error)
            })
            .await
    }

    async fn insert_login_session(&self, session: &LoginSession) -> Result<(), StoreError> {
        let (id, org, data) = (session.id.clone(), session.organization_id.clone(), json(session)?);
        let (user, ended) = (session.user_id.clone(), session.ended_at.map(Timestamp::unix_millis));
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO login_sessions (id, organization_id, data, ended_at, user_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, org, data, ended, user],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn login_session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| {
                c.prepare_cached("SELECT data, ended_at FROM login_sessions WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row([id], |r| {
                            let mut session: LoginSession = from_json(r, 0)?;
                            session.ended_at = at(r, 1)?;
                            Ok(session)
                        })
                        .optional()
                    })
                    .map_err(store_error)
            })
            .await
    }

    async fn live_login_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<LoginSession>, StoreError> {
        let (user, limit) = (user_id.to_owned(), i64::try_from(limit).unwrap_or(i64::MAX));
        let mut sessions = self
            .readers
            .run(move |c| {
                let mut statement = c
                    .prepare_cached("SELECT data FROM login_sessions WHERE user_id = ?1 AND ended_at IS NULL LIMIT ?2")
                    .map_err(store_error)?;
                let rows = statement
                    .query_map(params![user, limit], |r| from_json::<LoginSession>(r, 0))
                    .map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    async fn update_login_session(&self, session: &LoginSession) -> Result<(), StoreError> {
        let (id, data) = (session.id.clone(), json(session)?);
        self.writer
            .run(move |c| {
                c.execute("UPDATE login_sessions SET data = ?1 WHERE id = ?2", params![data, id])
                    .map(|_| ())
                    .map_err(store_error)
            })
            .await
    }

    async fn end_login_session(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "UPDATE login_sessions SET ended_at = ?1 WHERE id = ?2 AND ended_at IS NULL",
                    params![now.unix_millis(), id],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let k = code.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ),
                    params![
                        k.code_hash,
                        k.organization_id,
                        k.session_id,
                        k.redirect_uri,
                        k.code_challenge,
                        k.face.as_str(),
                        k.created_at.unix_millis(),
                        k.expires_at.unix_millis(),
                        k.used_at.map(Timestamp::unix_millis)
                    ],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn redeem_code(&self, code_hash: &str, now: Timestamp) -> Result<Redemption, StoreError> {
        let hash = code_hash.to_owned();
        self.writer
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
                let found = tx
                    .prepare_cached(&format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = ?1"))
                    .and_then(|mut s| s.query_row([&hash], code_from_row).optional())
                    .map_err(store_error)?;
                let outcome = match found {
                    None => Redemption::Unknown,
                    Some(code) if code.used_at.is_some() => Redemption::Replayed(code),
                    Some(mut code) => {
                        tx.execute(
                            "UPDATE authorization_codes SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL",
                            params![now.unix_millis(), hash],
                        )
                        .map_err(store_error)?;
                        code.used_at = Some(now);
                        Redemption::Redeemed(code)
                    }
                };
                tx.commit().map_err(store_error)?;
                Ok(outcome)
            })
            .await
    }

    async fn push_outbox(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let m = message.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO outbox (id, organization_id, recipient, subject, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![m.id, m.organization_id, m.to, m.subject, m.body, m.created.unix_millis()],
                )
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn outbox(&self, to: Option<&str>, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let to = to.map(str::to_owned);
        let read = |r: &Row<'_>| {
            Ok(OutboxMessage {
                id: r.get(0)?,
                organization_id: r.get(1)?,
                to: r.get(2)?,
                subject: r.get(3)?,
                body: r.get(4)?,
                created: Timestamp::from_unix_millis(r.get(5)?),
            })
        };
        self.readers
            .run(move |c| {
                // Only a filter that is set goes into the statement, so the recipient index serves it.
                let filter = if to.is_some() { "WHERE recipient = ?2" } else { "" };
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT id, organization_id, recipient, subject, body, created_at FROM outbox {filter} \
                         ORDER BY created_at DESC, id DESC LIMIT ?1"
                    ))
                    .map_err(store_error)?;
                let rows = match &to {
                    Some(to) => st.query_map(params![limit, to], read),
                    None => st.query_map(params![limit], read),
                }
                .map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }
}
