use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::events::Event;

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
    /// 429 answers since the last success (the wait ladder's step); shared by every instance.
    pub rate_strikes: u32,
    /// After a 429: calls fail fast with `upstreamRateLimited` until then, on every instance.
    pub rate_blocked_until: Option<Timestamp>,
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
    /// `expected_version`, appending `event` to the outbox in the same transaction; `false` means another
    /// writer won and nothing was written.
    async fn swap_connector_account(
        &self,
        account: &ConnectorAccountRecord,
        expected_version: i64,
        event: Option<&Event>,
    ) -> Result<bool, StoreError>;

    /// Counts a 429 answer for the account and returns the strikes since the last success (0 when there is no
    /// such account). Credential writes leave the count alone.
    async fn strike_connector_rate(&self, organization_id: &str, id: &str) -> Result<u32, StoreError>;

    /// Blocks the account's calls until `until`; a later block already stored is kept.
    async fn block_connector_rate(&self, organization_id: &str, id: &str, until: Timestamp) -> Result<(), StoreError>;

    /// Forgets the account's 429 strikes and block after a success.
    async fn clear_connector_rate(&self, organization_id: &str, id: &str) -> Result<(), StoreError>;

    /// Reserves the account's next send slot in `scope` (the account, or one of its methods) under a limit of
    /// one request per `interval`, and returns how long after `now` the slot begins. Slots are kept in
    /// microseconds and taken atomically, so every instance queues behind the same schedule.
    async fn reserve_connector_send_slot(
        &self,
        organization_id: &str,
        account_id: &str,
        scope: &str,
        now: Timestamp,
        interval: std::time::Duration,
    ) -> Result<std::time::Duration, StoreError>;

    /// Deletes the account (and its send slots); `false` if there was none.
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

/// `now` and `interval` in microseconds, as [`ConnectorStore::reserve_connector_send_slot`] keeps slots.
#[must_use]
pub fn slot_micros(now: Timestamp, interval: std::time::Duration) -> (i64, i64) {
    (now.unix_millis().saturating_mul(1000), i64::try_from(interval.as_micros()).unwrap_or(i64::MAX))
}

/// How long after `now_micros` the slot starting at `slot_micros` begins.
#[must_use]
pub fn slot_wait(slot_micros: i64, now_micros: i64) -> std::time::Duration {
    std::time::Duration::from_micros(u64::try_from(slot_micros.saturating_sub(now_micros)).unwrap_or(0))
}

/// Largest stored value (its JSON text) a connector script may keep under one key.
pub const STORAGE_MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys one storage scope may hold.
pub const STORAGE_MAX_KEYS: usize = 1000;
/// Longest key.
pub const STORAGE_MAX_KEY_BYTES: usize = 256;

/// A change to one connector-storage entry, applied atomically by the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageOp {
    /// Replace the value (JSON text).
    Set(String),
    /// Add a value (JSON text) to the array under the key: a missing entry becomes `[value]`, a non-array
    /// value `[old, value]`.
    Append(String),
    /// Add to the number under the key (a missing entry counts as 0); negative amounts decrement.
    Increment(f64),
}

impl StorageOp {
    /// The new JSON text from the stored one.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when an increment meets a value that is not a number, a value is not JSON,
    /// or the result exceeds [`STORAGE_MAX_VALUE_BYTES`]; nothing is written then.
    pub fn apply(&self, old: Option<&str>) -> Result<String, StoreError> {
        let parse = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| StoreError::Conflict(format!("the storage value is not JSON: {e}")))
        };
        let new = match self {
            Self::Set(value) => parse(value)?,
            Self::Append(value) => {
                let value = parse(value)?;
                match old.map(parse).transpose()? {
                    None | Some(serde_json::Value::Null) => serde_json::Value::Array(vec![value]),
                    Some(serde_json::Value::Array(mut items)) => {
                        items.push(value);
                        serde_json::Value::Array(items)
                    }
                    Some(other) => serde_json::Value::Array(vec![other, value]),
                }
            }
            Self::Increment(amount) => {
                let current = match old.map(parse).transpose()? {
                    None | Some(serde_json::Value::Null) => 0.0,
                    Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                    Some(_) => return Err(StoreError::Conflict("the stored value is not a number".to_owned())),
                };
                let sum = current + amount;
                // Whole numbers stay integers in JSON (`2`, not `2.0`), as scripts expect from counters.
                if sum.fract() == 0.0 && sum.abs() < 9_007_199_254_740_992.0 {
                    serde_json::Value::from(sum as i64)
                } else {
                    serde_json::Number::from_f64(sum).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
            }
        };
        let text = new.to_string();
        if text.len() > STORAGE_MAX_VALUE_BYTES {
            return Err(StoreError::Conflict(format!(
                "the storage value would be {} bytes; at most {STORAGE_MAX_VALUE_BYTES} are kept",
                text.len()
            )));
        }
        Ok(text)
    }
}

/// Key-value storage of connector scripts (`cyclr_storage_*`), per organization and scope (see
/// `docs/connectors.md`). Values are JSON text.
#[async_trait]
pub trait ConnectorStorageStore {
    /// The value under `key`.
    async fn connector_storage_get(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Every entry of the scope, by key.
    async fn connector_storage_entries(
        &self,
        organization_id: &str,
        scope: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Applies `op` to the entry atomically (concurrent increments all count) and returns the new value.
    /// [`StoreError::Conflict`] when a new key would exceed [`STORAGE_MAX_KEYS`] or `op` fails; nothing is
    /// written then.
    async fn connector_storage_apply(
        &self,
        organization_id: &str,
        scope: &str,
        key: &str,
        op: &StorageOp,
        now: Timestamp,
    ) -> Result<String, StoreError>;

    /// Deletes `key`, or every entry of the scope when `None`; the number deleted.
    async fn connector_storage_delete(
        &self,
        organization_id: &str,
        scope: &str,
        key: Option<&str>,
    ) -> Result<u64, StoreError>;
}
