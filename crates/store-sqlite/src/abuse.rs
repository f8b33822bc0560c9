//! Rate-limit counters and the audit log on SQLite.

use async_trait::async_trait;
use portcullis_core::abuse::{AuditEvent, AuditFilter};
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::store::{AbuseStore, StoreError};
use rusqlite::types::{Type, Value as SqlValue};
use rusqlite::{OptionalExtension, params};

use crate::events::append_event;
use crate::{SqliteStore, store_error};

#[async_trait]
impl AbuseStore for SqliteStore {
    async fn hit_rate_limit(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError> {
        let bucket = bucket.to_owned();
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?1, ?2, 1) \
                     ON CONFLICT (bucket, window_start) DO UPDATE SET hits = hits + 1 RETURNING hits",
                )
                .and_then(|mut s| s.query_row(params![bucket, window_start.unix_millis()], |r| r.get(0)))
                .map_err(store_error)
            })
            .await
    }

    async fn rate_limit_hits(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError> {
        let bucket = bucket.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached("SELECT hits FROM rate_limits WHERE bucket = ?1 AND window_start = ?2")
                    .and_then(|mut s| s.query_row(params![bucket, window_start.unix_millis()], |r| r.get(0)).optional())
                    .map(Option::unwrap_or_default)
                    .map_err(store_error)
            })
            .await
    }

    async fn prune_abuse_records(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .run(move |c| {
                let windows = c
                    .execute("DELETE FROM rate_limits WHERE window_start < ?1", [before.unix_millis()])
                    .map_err(store_error)?;
                let captchas = c
                    .execute("DELETE FROM captcha_solutions WHERE expires_at < ?1", [before.unix_millis()])
                    .map_err(store_error)?;
                Ok(u64::try_from(windows + captchas).unwrap_or(0))
            })
            .await
    }

    async fn spend_captcha(&self, signature: &str, expires_at: Timestamp) -> Result<bool, StoreError> {
        let signature = signature.to_owned();
        self.writer
            .run(move |c| {
                c.execute(
                    "INSERT INTO captcha_solutions (signature, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![signature, expires_at.unix_millis()],
                )
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn record_code_failure(&self, organization_id: &str, email: &str, now: Timestamp) -> Result<u32, StoreError> {
        let (org, email) = (organization_id.to_owned(), email.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO code_failures (organization_id, email, failures, updated_at) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT (organization_id, email) \
                     DO UPDATE SET failures = failures + 1, updated_at = excluded.updated_at RETURNING failures",
                )
                .and_then(|mut s| s.query_row(params![org, email, now.unix_millis()], |r| r.get(0)))
                .map_err(store_error)
            })
            .await
    }

    async fn code_failures(&self, organization_id: &str, email: &str) -> Result<u32, StoreError> {
        let (org, email) = (organization_id.to_owned(), email.to_owned());
        self.readers
            .run(move |c| {
                c.prepare_cached("SELECT failures FROM code_failures WHERE organization_id = ?1 AND email = ?2")
                    .and_then(|mut s| s.query_row(params![org, email], |r| r.get(0)).optional())
                    .map(Option::unwrap_or_default)
                    .map_err(store_error)
            })
            .await
    }

    async fn reset_code_failures(&self, organization_id: &str, email: &str) -> Result<(), StoreError> {
        let (org, email) = (organization_id.to_owned(), email.to_owned());
        self.writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM code_failures WHERE organization_id = ?1 AND email = ?2")
                    .and_then(|mut s| s.execute(params![org, email]))
                    .map(|_| ())
                    .map_err(store_error)
            })
            .await
    }

    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let e = event.clone();
        let detail = e.detail.to_string();
        let outbound = Event::for_audit(event);
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                tx.prepare_cached(
                    "INSERT INTO audit_events (id, organization_id, kind, subject, detail, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![e.id, e.organization_id, e.kind, e.subject, detail, e.created.unix_millis()])
                })
                .map_err(store_error)?;
                if let Some(outbound) = &outbound {
                    append_event(&tx, outbound)?;
                }
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn audit_events(
        &self,
        organization_id: &str,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Only the parts that are set go into the statement: `(? IS NULL OR …)` would keep SQLite from
        // using the subject index.
        let mut sql = "SELECT id, organization_id, kind, subject, detail, created_at FROM audit_events \
                       WHERE organization_id = ?1"
            .to_owned();
        let mut values = vec![SqlValue::Text(organization_id.to_owned())];
        let parts = [
            ("kind = ", filter.kind.clone().map(SqlValue::Text)),
            ("subject = ", filter.subject.clone().map(SqlValue::Text)),
            ("created_at >= ", filter.since.map(|t| SqlValue::Integer(t.unix_millis()))),
            ("created_at < ", filter.until.map(|t| SqlValue::Integer(t.unix_millis()))),
        ];
        for (condition, value) in parts {
            if let Some(value) = value {
                values.push(value);
                sql.push_str(&format!(" AND {condition}?{}", values.len()));
            }
        }
        values.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ?{}", values.len()));
        self.readers
            .scan(move |c| {
                let mut statement = c.prepare_cached(&sql).map_err(store_error)?;
                let rows = statement
                    .query_map(rusqlite::params_from_iter(values), |r| {
                        let detail: String = r.get(4)?;
                        Ok(AuditEvent {
                            id: r.get(0)?,
                            organization_id: r.get(1)?,
                            kind: r.get(2)?,
                            subject: r.get(3)?,
                            detail: serde_json::from_str(&detail)
                                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(e)))?,
                            created: Timestamp::from_unix_millis(r.get(5)?),
                        })
                    })
                    .map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }
}
