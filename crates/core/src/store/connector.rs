use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;

/// Whether an account's credentials can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Usable.
    Ok,
    /// A refresh or renewal was rejected; see `cooldown_until`.
    NeedsReauth,
}

impl AccountState {
    /// The stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NeedsReauth => "needs_reauth",
        }
    }

    /// Parses the stored spelling.
    ///
    /// # Errors
    /// [`StoreError::Decode`] for an unknown value.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "ok" => Ok(Self::Ok),
            "needs_reauth" => Ok(Self::NeedsReauth),
            other => Err(StoreError::Decode(format!("unknown connector account state {other:?}"))),
        }
    }
}

/// One connector installed for an organization. The credentials (properties and auth value) are sealed
/// by the connector runtime with the master key; the store only sees ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorAccountRecord {
    /// Account id, unique per organization.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// The connector definition's name.
    pub connector: String,
    /// Sealed credentials (context: the account id).
    pub sealed_credentials: Vec<u8>,
    /// Compare-and-swap guard, incremented by every credential write.
    pub version: i64,
    /// Usable or not.
    pub state: AccountState,
    /// With `NeedsReauth`: calls fail fast until then; `None` means until the credentials change.
    pub cooldown_until: Option<Timestamp>,
    /// Why the last refresh or renewal failed.
    pub last_failure: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last write.
    pub updated_at: Timestamp,
}

/// Connector accounts and the cross-instance refresh lease.
#[async_trait]
pub trait ConnectorStore {
    /// Inserts an account; [`StoreError::Conflict`] if the id is taken in the organization.
    async fn insert_connector_account(&self, account: &ConnectorAccountRecord) -> Result<(), StoreError>;

    /// The account, if it exists in the organization.
    async fn connector_account(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<ConnectorAccountRecord>, StoreError>;

    /// The organization's accounts, by id.
    async fn connector_accounts(&self, organization_id: &str) -> Result<Vec<ConnectorAccountRecord>, StoreError>;

    /// Writes `account` (its `version` is the new one) only if the stored version is still
    /// `expected_version`; `false` means another writer won and nothing was written.
    async fn swap_connector_account(
        &self,
        account: &ConnectorAccountRecord,
        expected_version: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes the account; `false` if there was none.
    async fn delete_connector_account(&self, organization_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Takes the lease `key` for `holder` until `until` if it is free or expired at `now`.
    async fn try_connector_lease(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Releases the lease if `holder` still has it.
    async fn release_connector_lease(&self, key: &str, holder: &str) -> Result<(), StoreError>;
}
