use async_trait::async_trait;
use serde_json::{Map, Value};

use super::StoreError;
use crate::clock::Timestamp;
use crate::session::{RefreshOutcome, RefreshRequest, SessionRecord};

/// Sessions (refresh-token families).
#[async_trait]
pub trait SessionStore {
    /// Inserts a new session; [`StoreError::Conflict`] if its handle exists.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// The session with this handle.
    async fn session(&self, handle: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Every session of a user in an organization, revoked and expired ones included, oldest first.
    async fn user_sessions(&self, organization_id: &str, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Locks the session row, applies [`crate::session::apply_refresh`] to it and writes the result, in
    /// one transaction, so concurrent refreshes on any number of instances see each other's rotation.
    /// `None` when there is no such session.
    async fn refresh_session(
        &self,
        handle: &str,
        request: &RefreshRequest,
    ) -> Result<Option<RefreshOutcome>, StoreError>;

    /// Revokes one session of the organization; `false` if it does not exist or was already revoked.
    async fn revoke_session(&self, organization_id: &str, handle: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Revokes every active session of a user; returns how many.
    async fn revoke_user_sessions(
        &self,
        organization_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Replaces the custom claims of a session of the organization; `false` if there is no such session.
    async fn update_session_payload(
        &self,
        organization_id: &str,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<bool, StoreError>;

    /// Replaces the server-side data of a session of the organization (never put in a token); `false` if
    /// there is no such session.
    async fn update_session_data(
        &self,
        organization_id: &str,
        handle: &str,
        data: &Map<String, Value>,
    ) -> Result<bool, StoreError>;

    /// Handles of the organization's sessions revoked at or after `since`, with the time, oldest first: the
    /// feed of verifiers' deny-lists.
    async fn revoked_since(
        &self,
        organization_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError>;
}
