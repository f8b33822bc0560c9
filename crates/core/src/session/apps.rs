//! SuperTokens apps: organizations whose sessions the SuperTokens core face serves, each with its own key
//! ring (RS256, the only algorithm SuperTokens' backend SDKs verify), so one app's backend never accepts
//! another app's tokens. A ring is opened, and its first key made, the first time the face needs it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::{SessionConfig, SessionService};
use crate::Error;
use crate::clock::Clock;
use crate::keys::{KeyPolicy, KeyService, MasterKey, SigningAlgorithm};
use crate::store::Store;

/// The opened apps, by organization id.
#[derive(Debug)]
pub struct SupertokensApps {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    policy: KeyPolicy,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    opened: RwLock<HashMap<String, Arc<SessionService>>>,
    rings: RwLock<Vec<Arc<KeyService>>>,
}

impl SupertokensApps {
    /// Apps whose rings rotate like `policy` (its algorithm is replaced by RS256) and whose sessions
    /// follow `config`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
    ) -> Self {
        let policy = KeyPolicy { algorithm: SigningAlgorithm::RS256, ..policy };
        Self { store, master, policy, clock, config, opened: RwLock::default(), rings: RwLock::default() }
    }

    /// The sessions of an existing organization's app, opening its key ring (and making its first key) on
    /// first use. Concurrent first uses on any number of instances make one first key.
    ///
    /// # Errors
    /// Store failures, or a stored key that does not open with the master key.
    pub async fn sessions(&self, organization_id: &str) -> Result<Arc<SessionService>, Error> {
        if let Some(service) = self.opened.read().unwrap_or_else(PoisonError::into_inner).get(organization_id) {
            return Ok(Arc::clone(service));
        }
        let ring = KeyService::open_for_organization(
            Arc::clone(&self.store),
            Arc::clone(&self.master),
            self.policy,
            Arc::clone(&self.clock),
            organization_id,
        )
        .await?;
        let ring = Arc::new(ring);
        let service = Arc::new(SessionService::for_supertokens_app(
            Arc::clone(&self.store),
            Arc::clone(&ring),
            Arc::clone(&self.clock),
            self.config.clone(),
            &self.master,
        ));
        let mut opened = self.opened.write().unwrap_or_else(PoisonError::into_inner);
        let service = opened.entry(organization_id.to_owned()).or_insert_with(|| {
            self.rings.write().unwrap_or_else(PoisonError::into_inner).push(ring);
            service
        });
        Ok(Arc::clone(service))
    }

    /// The key rings opened so far, for the maintenance loop (re-read, rotate when due).
    #[must_use]
    pub fn key_rings(&self) -> Vec<Arc<KeyService>> {
        self.rings.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
