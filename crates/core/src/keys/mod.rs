//! Signing keys: a key ring stored sealed under the master key, Ed25519 by default and RS256 available,
//! rotated with overlap and published as a JWKS.

mod algorithm;
mod key_ring;
mod master_key;
mod service;
mod signing_key;

pub use algorithm::{SigningAlgorithm, UnsupportedAlgorithm};
pub use key_ring::{KeyPolicy, KeyRing, KeyState, KeyStatus};
pub use master_key::{MASTER_KEY_LEN, MasterKey};
pub use service::KeyService;
pub use signing_key::SigningKey;

/// Why a key operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The master key is not base64 of 32 bytes.
    #[error("the master key must be base64 of exactly 32 bytes")]
    InvalidMasterKey,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// Key generation failed.
    #[error("key generation failed")]
    Generate,
    /// Encryption failed.
    #[error("sealing with the master key failed")]
    Seal,
    /// A sealed value does not open: another master key, another record, or altered data.
    #[error("a sealed value could not be opened: wrong master key, or the data was altered")]
    Unseal,
    /// A stored private key is not a key of its algorithm.
    #[error("a stored private key is invalid")]
    InvalidPrivateKey,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

impl From<KeyError> for crate::Error {
    fn from(err: KeyError) -> Self {
        Self::new(crate::ErrorCode::GenericError).with_internal(err)
    }
}
