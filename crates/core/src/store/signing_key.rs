use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::keys::SigningAlgorithm;

/// A signing key as stored: the private key is sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`), `d-<created at, Unix ms>`.
    pub kid: String,
    /// Signature algorithm.
    pub algorithm: SigningAlgorithm,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// PKCS#8 private key sealed with AES-256-GCM under the master key (nonce ‖ ciphertext ‖ tag).
    pub sealed_private_key: Vec<u8>,
    /// When the key was created and published in the JWKS.
    pub created_at: Timestamp,
    /// From when it signs; before that it is only published, so verifiers learn it first.
    pub signs_from: Timestamp,
}

/// Whose key ring: each ring has its own keys and its own newest-key head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner<'a> {
    /// The server's own families (session and ID-token keys), published at `/.well-known/jwks.json`.
    Server,
    /// One organization's ring for the SuperTokens core face: its JWKS publishes only these keys, so a
    /// token minted for one app verifies at no other app's backend.
    Organization(&'a str),
}

/// The key rings' storage.
#[async_trait]
pub trait SigningKeyStore {
    /// Every key of one ring, oldest first (by `signs_from`, then `kid`).
    async fn signing_keys(&self, owner: KeyOwner<'_>) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Adds `key` to a ring only if that ring's newest key is still `expected_newest` (`None`: the ring is
    /// empty), so that several instances rotating at once add exactly one key. Otherwise
    /// [`StoreError::Conflict`] and nothing is written.
    async fn insert_signing_key(
        &self,
        owner: KeyOwner<'_>,
        key: &SigningKeyRecord,
        expected_newest: Option<&str>,
    ) -> Result<(), StoreError>;
}
