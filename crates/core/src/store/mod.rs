//! Store traits: the only way core reaches persistent state. Each backend implements them and passes the
//! one conformance suite (`crates/store-conformance`).

mod abuse;
mod api_key;
mod app_user;
mod connector;
mod event;
mod login;
mod organization;
mod passkey;
mod session;
mod signing_key;

use std::fmt;

use async_trait::async_trait;

pub use abuse::AbuseStore;
pub use api_key::ApiKeyStore;
pub use app_user::{AppUserStore, RoleChange};
pub use connector::{
    AccountState, ConnectorAccountRecord, ConnectorStorageStore, ConnectorStore, STORAGE_MAX_KEY_BYTES,
    STORAGE_MAX_KEYS, STORAGE_MAX_VALUE_BYTES, StorageOp, slot_micros, slot_wait,
};
pub use event::EventStore;
pub use login::LoginStore;
pub use organization::OrganizationStore;
pub use passkey::PasskeyStore;
pub use session::SessionStore;
pub use signing_key::{KeyOwner, SigningKeyRecord, SigningKeyStore};

use crate::{Error, ErrorCode};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule or a compare-and-swap precondition failed; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached right now; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed the operation.
    #[error("store backend failure: {0}")]
    Backend(String),
    /// Stored data could not be decoded into domain types.
    #[error("stored data could not be decoded: {0}")]
    Decode(String),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(_) => Error::new(ErrorCode::EntityInvalid)
                .with_status(409)
                .with_message("The entity conflicts with one that already exists.")
                .with_internal(err),
            StoreError::Unavailable(_) => Error::new(ErrorCode::GenericError)
                .with_status(503)
                .with_message("The service is temporarily unavailable. Please try again.")
                .with_retry_after(1)
                .with_internal(err),
            StoreError::Backend(_) | StoreError::Decode(_) => Error::new(ErrorCode::GenericError).with_internal(err),
        }
    }
}

/// Everything a backend provides.
#[async_trait]
pub trait Store:
    OrganizationStore
    + ApiKeyStore
    + SigningKeyStore
    + SessionStore
    + LoginStore
    + ConnectorStore
    + AbuseStore
    + ConnectorStorageStore
    + PasskeyStore
    + AppUserStore
    + EventStore
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The backend's name, as `/health` reports it.
    fn backend(&self) -> &'static str;

    /// Brings the schema up to date; safe to run from several instances at once.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
