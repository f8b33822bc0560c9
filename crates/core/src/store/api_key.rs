use async_trait::async_trait;

use super::StoreError;
use crate::organization::ApiKeyRecord;

/// Organization API keys, stored as hashes.
#[async_trait]
pub trait ApiKeyStore {
    /// Inserts a key; [`StoreError::Conflict`] if its id or hash exists.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key with this secret hash.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
}
