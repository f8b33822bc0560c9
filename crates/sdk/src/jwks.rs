//! The JWKS cache: keys by `kid`, refetched when a token names a key the cache does not know (at most
//! once per cooldown, one fetch at a time), so verification needs no network call per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis_core::session::{VerificationKey, VerificationKeys};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::client::{Client, ClientError};
use crate::verified_tokens::KeyGeneration;

/// Shortest time between two fetches triggered by unknown key ids.
pub const REFETCH_COOLDOWN: Duration = Duration::from_millis(500);

/// Cached verification keys.
#[derive(Debug)]
pub struct JwksCache {
    keys: RwLock<HashMap<String, VerificationKey>>,
    last_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    generation: AtomicU64,
}

impl JwksCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self {
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// How many times the JWKS was fetched (for monitoring: a steady climb means tokens name keys the
    /// server does not publish).
    #[must_use]
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Replaces the keys with a JWKS document's. A key that leaves moves the [`KeyGeneration`], so tokens
    /// verified with it are verified again (and refused).
    pub fn load(&self, jwks: &Value) {
        let keys: HashMap<String, VerificationKey> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
                let kid = jwk.common.key_id.clone()?;
                let algorithm = match entry["alg"].as_str()? {
                    "EdDSA" => Algorithm::EdDSA,
                    "RS256" => Algorithm::RS256,
                    _ => return None,
                };
                Some((kid, VerificationKey { key: DecodingKey::from_jwk(&jwk).ok()?, algorithm }))
            })
            .collect();
        let mut current = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if current.keys().any(|kid| !keys.contains_key(kid)) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        *current = keys;
    }

    /// Fetches the JWKS now.
    ///
    /// # Errors
    /// When Portcullis cannot be reached.
    pub async fn fetch(&self, client: &Client) -> Result<(), ClientError> {
        let mut last = self.last_fetch.lock().await;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.load(&client.jwks().await?);
        *last = Some(Instant::now());
        Ok(())
    }

    /// Fetches again unless a fetch happened within the cooldown; concurrent callers share one fetch.
    /// Returns whether the keys may have changed.
    pub async fn refetch_for_unknown_key(&self, client: &Client) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_COOLDOWN) {
            return true;
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match client.jwks().await {
            Ok(jwks) => {
                self.load(&jwks);
                *last = Some(Instant::now());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refetch the JWKS");
                false
            }
        }
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyGeneration for JwksCache {
    fn key_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl VerificationKeys for JwksCache {
    fn verification_key(&self, kid: &str) -> Option<VerificationKey> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).get(kid).cloned()
    }
}
