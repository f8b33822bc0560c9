//! The running key ring: opened once, re-read from the store so keys rotated elsewhere (another
//! instance, the CLI) are published before they sign, and rotated when due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use super::{KeyPolicy, KeyRing, KeyStatus, MasterKey, SigningKey};
use crate::clock::Clock;
use crate::session::{VerificationKey, VerificationKeys};
use crate::store::{KeyOwner, Store, StoreError};
use crate::{Error, ErrorCode};

/// The key ring shared by every request.
#[derive(Debug)]
pub struct KeyService {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    policy: KeyPolicy,
    clock: Arc<dyn Clock>,
    /// The organization whose own ring this is (`None`: the server's).
    organization: Option<String>,
    /// The ring, with the number of the reload that read it.
    ring: RwLock<(u64, Arc<KeyRing>)>,
    /// Numbers reloads in the order they start reading.
    reloads: AtomicU64,
}

impl KeyService {
    /// Opens the ring, making the first key if there is none.
    ///
    /// # Errors
    /// If the store fails or a stored key does not open with `master`.
    pub async fn open(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let service = Self::open_deferred(store, master, policy, clock).await?;
        service.ensure_signer().await?;
        Ok(service)
    }

    /// Opens an organization's own ring (the SuperTokens core face's app keys), making its first key if
    /// there is none.
    ///
    /// # Errors
    /// If the store fails or a stored key does not open with `master`.
    pub async fn open_for_organization(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
        organization_id: &str,
    ) -> Result<Self, Error> {
        let service = Self::unloaded(store, master, policy, clock, Some(organization_id.to_owned()));
        service.reload().await?;
        service.ensure_signer().await?;
        Ok(service)
    }

    fn unloaded(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
        organization: Option<String>,
    ) -> Self {
        Self {
            store,
            master,
            policy,
            clock,
            organization,
            ring: RwLock::new((0, Arc::default())),
            reloads: AtomicU64::new(0),
        }
    }

    /// Makes the first key unless the ring has a signer; a first key made by another instance at the same
    /// moment stands.
    async fn ensure_signer(&self) -> Result<(), Error> {
        if self.ring().signer(self.clock.now(), self.policy.algorithm).is_some() {
            return Ok(());
        }
        match self.add_key().await {
            Err(e) if e.code() == ErrorCode::EntityInvalid => self.signer().map(|_| ()),
            other => other.map(|_| ()),
        }
    }

    fn owner(&self) -> KeyOwner<'_> {
        self.organization.as_deref().map_or(KeyOwner::Server, KeyOwner::Organization)
    }

    /// Opens the ring without making a first key: [`maintain`](Self::maintain) or
    /// [`current_signer`](Self::current_signer) makes it when needed. For a second family (the RSA ID-token
    /// keys) whose key generation should not delay start-up.
    ///
    /// # Errors
    /// If the store fails or a stored key does not open with `master`.
    pub async fn open_deferred(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let service = Self::unloaded(store, master, policy, clock, None);
        service.reload().await?;
        Ok(service)
    }

    /// The key that signs now, making the first key of the family if there is none yet.
    ///
    /// # Errors
    /// If the store fails or key generation fails.
    pub async fn current_signer(&self) -> Result<Arc<SigningKey>, Error> {
        if let Ok(signer) = self.signer() {
            return Ok(signer);
        }
        self.maintain().await?;
        self.signer()
    }

    /// The current ring.
    #[must_use]
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner).1)
    }

    /// The rotation policy.
    #[must_use]
    pub const fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    /// Re-reads the keys from the store.
    ///
    /// # Errors
    /// If the store fails or a key does not open.
    pub async fn reload(&self) -> Result<(), Error> {
        // Concurrent reloads (the maintenance loop, a rotation) may finish out of order: only a read that
        // started after the installed one may replace it, so a stale read never hides a newer key.
        let number = self.reloads.fetch_add(1, Ordering::SeqCst) + 1;
        let ring = KeyRing::open(self.store.signing_keys(self.owner()).await?, &self.master)?;
        let mut installed = self.ring.write().unwrap_or_else(PoisonError::into_inner);
        if number > installed.0 {
            *installed = (number, Arc::new(ring));
        }
        Ok(())
    }

    /// Makes a new key now: published at once, signing after the publish lead.
    ///
    /// # Errors
    /// `entityInvalid` (409) when another instance rotated at the same moment (its key stands), or a
    /// store failure.
    pub async fn rotate(&self) -> Result<KeyStatus, Error> {
        self.reload().await?;
        let mut attempts = 0;
        let kid = loop {
            let before = self.ring().newest_kid_of(self.policy.algorithm).map(str::to_owned);
            match self.add_key().await {
                Ok(kid) => break kid,
                // The precondition spans every family: a key of another family (the ID-token keys) added
                // at the same moment is no rotation of this one, so try again.
                Err(e)
                    if e.code() == ErrorCode::EntityInvalid
                        && attempts < 3
                        && self.ring().newest_kid_of(self.policy.algorithm).map(str::to_owned) == before =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let now = self.clock.now();
        self.ring()
            .statuses(now, &self.policy)
            .find(|s| s.kid == kid)
            .ok_or_else(|| Error::new(ErrorCode::GenericError).with_internal("the new key is missing after rotation"))
    }

    /// Reloads, then rotates if the newest key has signed for the rotation interval. Returns the id of
    /// the key this call added, if any.
    ///
    /// # Errors
    /// If the store fails; a rotation lost to another instance is not an error.
    pub async fn maintain(&self) -> Result<Option<String>, Error> {
        self.reload().await?;
        if !self.ring().rotation_due(self.clock.now(), &self.policy) {
            return Ok(None);
        }
        match self.add_key().await {
            Ok(kid) => Ok(Some(kid)),
            Err(e) if e.code() == ErrorCode::EntityInvalid => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_key(&self) -> Result<String, Error> {
        let ring = self.ring();
        let record = ring.next_key(self.clock.now(), &self.policy, &self.master)?;
        match self.store.insert_signing_key(self.owner(), &record, ring.newest_kid()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(detail)) => {
                self.reload().await?;
                return Err(Error::new(ErrorCode::EntityInvalid)
                    .with_status(409)
                    .with_message("Another rotation happened at the same moment; its key stands.")
                    .with_internal(detail));
            }
            Err(other) => return Err(other.into()),
        }
        self.reload().await?;
        Ok(record.kid)
    }

    /// Every key with its state.
    #[must_use]
    pub fn statuses(&self) -> Vec<KeyStatus> {
        self.ring().statuses(self.clock.now(), &self.policy).collect()
    }

    /// The JWKS document.
    #[must_use]
    pub fn jwks(&self) -> Value {
        self.ring().jwks(self.clock.now(), &self.policy)
    }

    /// The key that signs now.
    ///
    /// # Errors
    /// `genericError` if the ring has no usable key (it always has one once opened).
    pub fn signer(&self) -> Result<Arc<SigningKey>, Error> {
        self.ring()
            .signer(self.clock.now(), self.policy.algorithm)
            .cloned()
            .ok_or_else(|| Error::new(ErrorCode::GenericError).with_internal("the key ring has no signing key"))
    }
}

impl VerificationKeys for KeyService {
    fn verification_key(&self, kid: &str) -> Option<VerificationKey> {
        self.ring().verifier(kid, self.clock.now(), &self.policy).map(|k| k.verification_key().clone())
    }
}
