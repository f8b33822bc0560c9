//! Rate-limit counters and the audit log on PostgreSQL.

use async_trait::async_trait;
use portcullis_core::abuse::{AuditEvent, AuditFilter};
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::store::{AbuseStore, StoreError};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::events::append_event;
use crate::{PostgresStore, decode, store_error};

#[async_trait]
impl AbuseStore for PostgresStore {
    async fn hit_rate_limit(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits",
                &[&bucket, &window_start.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let hits: i32 = row.try_get(0).map_err(|e| decode(&e))?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
    }

    async fn rate_limit_hits(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT hits FROM rate_limits WHERE bucket = $1 AND window_start = $2",
                &[&bucket, &window_start.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let hits: i32 = row.map(|r| r.try_get(0)).transpose().map_err(|e| decode(&e))?.unwrap_or(0);
        Ok(u32::try_from(hits).unwrap_or(0))
    }

    async fn prune_abuse_records(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let windows = client
            .execute("DELETE FROM rate_limits WHERE window_start < $1", &[&before.unix_millis()])
            .await
            .map_err(|e| store_error(&e))?;
        let captchas = client
            .execute("DELETE FROM captcha_solutions WHERE expires_at < $1", &[&before.unix_millis()])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(windows + captchas)
    }

    async fn spend_captcha(&self, signature: &str, expires_at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO captcha_solutions (signature, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&signature, &expires_at.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn record_code_failure(&self, organization_id: &str, email: &str, now: Timestamp) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO code_failures (organization_id, email, failures, updated_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (organization_id, email) \
                 DO UPDATE SET failures = code_failures.failures + 1, updated_at = EXCLUDED.updated_at RETURNING failures",
                &[&organization_id, &email, &now.unix_millis()],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let failures: i32 = row.try_get(0).map_err(|e| decode(&e))?;
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    async fn code_failures(&self, organization_id: &str, email: &str) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT failures FROM code_failures WHERE organization_id = $1 AND email = $2",
                &[&organization_id, &email],
            )
            .await
            .map_err(|e| store_error(&e))?;
        let failures: i32 = row.map(|r| r.try_get(0)).transpose().map_err(|e| decode(&e))?.unwrap_or(0);
        Ok(u32::try_from(failures).unwrap_or(0))
    }

    async fn reset_code_failures(&self, organization_id: &str, email: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM code_failures WHERE organization_id = $1 AND email = $2", &[&organization_id, &email])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        tx.execute(
            "INSERT INTO audit_events (id, organization_id, kind, subject, detail, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &event.id,
                &event.organization_id,
                &event.kind,
                &event.subject,
                &event.detail,
                &event.created.unix_millis(),
            ],
        )
        .await
        .map_err(|e| store_error(&e))?;
        if let Some(outbound) = Event::for_audit(event) {
            append_event(&tx, &outbound).await?;
        }
        tx.commit().await.map_err(|e| store_error(&e))
    }

    async fn audit_events(
        &self,
        organization_id: &str,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (since, until) = (filter.since.map(Timestamp::unix_millis), filter.until.map(Timestamp::unix_millis));
        // Only the parts that are set go into the statement, so the planner can use the subject index.
        let mut sql = "SELECT id, organization_id, kind, subject, detail, created_at FROM audit_events \
                       WHERE organization_id = $1"
            .to_owned();
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&organization_id];
        let parts: [(&str, Option<&(dyn ToSql + Sync)>); 4] = [
            ("kind = ", filter.kind.as_ref().map(|v| v as &(dyn ToSql + Sync))),
            ("subject = ", filter.subject.as_ref().map(|v| v as &(dyn ToSql + Sync))),
            ("created_at >= ", since.as_ref().map(|v| v as &(dyn ToSql + Sync))),
            ("created_at < ", until.as_ref().map(|v| v as &(dyn ToSql + Sync))),
        ];
        for (condition, value) in parts {
            if let Some(value) = value {
                values.push(value);
                sql.push_str(&format!(" AND {condition}${}", values.len()));
            }
        }
        values.push(&limit);
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${}", values.len()));
        let rows = client.query(&sql, &values).await.map_err(|e| store_error(&e))?;
        rows.iter()
            .map(|row| {
                let detail: Value = row.try_get(4).map_err(|e| decode(&e))?;
                Ok(AuditEvent {
                    id: row.try_get(0).map_err(|e| decode(&e))?,
                    organization_id: row.try_get(1).map_err(|e| decode(&e))?,
                    kind: row.try_get(2).map_err(|e| decode(&e))?,
                    subject: row.try_get(3).map_err(|e| decode(&e))?,
                    detail,
                    created: Timestamp::from_unix_millis(row.try_get(5).map_err(|e| decode(&e))?),
                })
            })
            .collect()
    }
}
