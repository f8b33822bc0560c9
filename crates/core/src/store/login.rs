use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::login::model::{
    AuthorizationCode, LoginAttempt, LoginFlow, LoginSession, OutboxMessage, RecentAttempts, Redemption, Undo, User,
};
use crate::organization::Organization;

/// Everything the hosted login flow stores.
#[async_trait]
pub trait LoginStore {
    /// Replaces an organization's name, whitelist and settings; `false` if it does not exist.
    async fn update_organization(&self, organization: &Organization) -> Result<bool, StoreError>;

    /// Sets the sealed client secret (`staged`: the new secret shown once, not active yet).
    async fn set_client_secret(&self, organization_id: &str, sealed: &[u8], staged: bool) -> Result<(), StoreError>;

    /// Promotes the staged secret to active; `false` if none is staged.
    async fn activate_client_secret(&self, organization_id: &str) -> Result<bool, StoreError>;

    /// The sealed active and staged secrets.
    async fn client_secrets(&self, organization_id: &str) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), StoreError>;

    /// The user with this email, created as `create` (its verified flag and last login included) if absent
    /// and `create` is set (one row per email even under concurrent logins). `None` when absent and not
    /// created.
    async fn user_by_email(
        &self,
        organization_id: &str,
        email: &str,
        create: Option<&User>,
    ) -> Result<Option<User>, StoreError>;

    /// A user by id.
    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Marks a login: verified email, last login.
    async fn record_login(&self, user_id: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Stores a flow.
    async fn insert_flow(&self, flow: &LoginFlow) -> Result<(), StoreError>;

    /// A flow by id.
    async fn flow(&self, id: &str) -> Result<Option<LoginFlow>, StoreError>;

    /// Stores an attempt.
    async fn insert_attempt(&self, attempt: &LoginAttempt) -> Result<(), StoreError>;

    /// An attempt by id.
    async fn attempt(&self, id: &str) -> Result<Option<LoginAttempt>, StoreError>;

    /// The newest attempt of a flow.
    async fn latest_attempt(&self, flow_id: &str) -> Result<Option<LoginAttempt>, StoreError>;

    /// Attempts for an email since a time: how many from every network, how many from `network`, and the
    /// newest one's time from `network` (the growing delay counts per network).
    async fn attempts_since(
        &self,
        organization_id: &str,
        email: &str,
        network: &str,
        since: Timestamp,
    ) -> Result<RecentAttempts, StoreError>;

    /// Counts a wrong entry (atomically); returns the new count.
    async fn record_wrong_entry(&self, attempt_id: &str) -> Result<u32, StoreError>;

    /// Closes an open attempt (compare-and-swap on `closed_at`); `false` if it was already closed.
    async fn close_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Records that a mail click approved the starting browser, once, while the attempt is open.
    async fn approve_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Records, once, that the browser went on to the application with the attempt's session (after the
    /// passkey step); `false` if it did before, or the attempt has no session or was undone.
    async fn hand_over_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Names the login session the attempt created, unless it was undone meanwhile (then `false`);
    /// `handed_over` also records the hand-over in the same write (no passkey step comes first).
    async fn attach_attempt_session(
        &self,
        attempt_id: &str,
        session_id: &str,
        handed_over: Option<Timestamp>,
    ) -> Result<bool, StoreError>;

    /// Undoes an attempt once: it is closed and marked undone.
    async fn undo_attempt(&self, attempt_id: &str, now: Timestamp) -> Result<Undo, StoreError>;

    /// Stores a login session.
    async fn insert_login_session(&self, session: &LoginSession) -> Result<(), StoreError>;

    /// A login session by id.
    async fn login_session(&self, id: &str) -> Result<Option<LoginSession>, StoreError>;

    /// A user's live (not ended) login sessions, newest first, at most `limit`.
    async fn live_login_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<LoginSession>, StoreError>;

    /// Replaces a login session's activity, bindings and verified domains.
    async fn update_login_session(&self, session: &LoginSession) -> Result<(), StoreError>;

    /// Ends a login session; `false` if it had already ended.
    async fn end_login_session(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Stores an authorization code.
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;

    /// Spends a code in one conditional write.
    async fn redeem_code(&self, code_hash: &str, now: Timestamp) -> Result<Redemption, StoreError>;

    /// Queues an outbox message.
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<(), StoreError>;

    /// The newest outbox messages, newest first; only those to `to` when given.
    async fn outbox(&self, to: Option<&str>, limit: usize) -> Result<Vec<OutboxMessage>, StoreError>;
}
