use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::passkey::{Passkey, PasskeyCeremony, PasskeyUse};

/// Passkeys and their unfinished ceremonies.
#[async_trait]
pub trait PasskeyStore {
    /// Stores a ceremony.
    async fn insert_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> Result<(), StoreError>;

    /// Removes a ceremony and returns it: each is finished once, even when two requests race.
    async fn take_passkey_ceremony(&self, id: &str) -> Result<Option<PasskeyCeremony>, StoreError>;

    /// Registers a passkey. [`StoreError::Conflict`] if its credential id is registered already, in any
    /// organization.
    async fn insert_passkey(&self, passkey: &Passkey) -> Result<(), StoreError>;

    /// A passkey by credential id, in any organization.
    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError>;

    /// A user's passkeys, oldest first.
    async fn user_passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError>;

    /// Records a login with a passkey if its counter is still `previous_sign_count` (compare-and-swap: of
    /// two logins racing with one counter value, one wins); `false` otherwise.
    async fn record_passkey_use(&self, used: &PasskeyUse) -> Result<bool, StoreError>;

    /// Renames one of a user's passkeys; `false` if the user has no such passkey.
    async fn rename_passkey(&self, user_id: &str, credential_id: &str, name: &str) -> Result<bool, StoreError>;

    /// Removes one of a user's passkeys; `false` if the user has no such passkey.
    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> Result<bool, StoreError>;

    /// Forgets ceremonies that expired before `before`; returns how many went.
    async fn prune_passkey_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError>;
}
