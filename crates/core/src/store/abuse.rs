use async_trait::async_trait;

use super::StoreError;
use crate::abuse::{AuditEvent, AuditFilter};
use crate::clock::Timestamp;

/// Rate-limit counters, spent captchas, wrong-code counts per account, and the audit log.
#[async_trait]
pub trait AbuseStore {
    /// Counts one hit on `bucket` in the window starting at `window_start` (one atomic upsert); returns the
    /// window's count including this hit.
    async fn hit_rate_limit(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError>;

    /// The hits counted so far on `bucket` in the window starting at `window_start` (0 if none).
    async fn rate_limit_hits(&self, bucket: &str, window_start: Timestamp) -> Result<u32, StoreError>;

    /// Forgets rate-limit windows that started, and spent captcha signatures that expired, before
    /// `before`; returns how many rows went.
    async fn prune_abuse_records(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Spends a captcha solution (its challenge's signature) once: `false` if it was spent before.
    async fn spend_captcha(&self, signature: &str, expires_at: Timestamp) -> Result<bool, StoreError>;

    /// Counts one more wrong login code for an account (organization and normalised email, known or not)
    /// in one atomic upsert; returns its consecutive wrong codes including this one.
    async fn record_code_failure(&self, organization_id: &str, email: &str, now: Timestamp) -> Result<u32, StoreError>;

    /// An account's consecutive wrong login codes (0 if none).
    async fn code_failures(&self, organization_id: &str, email: &str) -> Result<u32, StoreError>;

    /// Forgets an account's wrong login codes (a login proved the mailbox).
    async fn reset_code_failures(&self, organization_id: &str, email: &str) -> Result<(), StoreError>;

    /// Appends an audit event.
    async fn record_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// An organization's events that match `filter`, newest first.
    async fn audit_events(
        &self,
        organization_id: &str,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}
