use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::organization::ApiKeyRecord;

/// Organization API keys, stored as hashes.
#[async_trait]
pub trait ApiKeyStore {
    /// Inserts a key; [`StoreError::Conflict`] if its id or hash exists.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key with this secret hash.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// An organization's keys, revoked ones included, oldest first.
    async fn api_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a live key of the organization; `false` when it has no such live key.
    async fn revoke_api_key(&self, organization_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError>;
}
