//! The application: configuration, store, key ring and clock, with the operations every face and the
//! CLI share.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::{KeyService, KeyStatus};
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;
use portcullis_core::{Error, ErrorCode};
use serde_json::Value;

use crate::StartupError;
use crate::config::{Config, StoreBackend};
use crate::local_secrets;
use crate::storage::open_store;

/// How to open the application.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Apply schema migrations first.
    pub migrate: bool,
}

/// Everything a request needs.
#[derive(Debug)]
pub struct App {
    config: Config,
    store: Arc<dyn Store>,
    keys: Arc<KeyService>,
    clock: Arc<dyn Clock>,
    admin_token_digest: Vec<u8>,
    admin_token_file: Option<PathBuf>,
}

impl App {
    /// Opens the store (migrating if asked), the secrets and the key ring, on the system clock.
    ///
    /// # Errors
    /// A [`StartupError`] that says what to fix.
    pub async fn open(config: Config, options: OpenOptions) -> Result<Self, StartupError> {
        Self::open_with_clock(config, options, Arc::new(SystemClock)).await
    }

    /// Like [`open`](Self::open), with an injected clock.
    ///
    /// # Errors
    /// See [`open`](Self::open).
    pub async fn open_with_clock(
        config: Config,
        options: OpenOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let needs_data_dir = config.master_key.is_empty()
            || config.admin.token.is_empty()
            || config.store.backend == StoreBackend::Sqlite;
        if needs_data_dir {
            local_secrets::ensure_data_dir(&config.data_dir)?;
        }
        let master = local_secrets::master_key(config.master_key.expose(), &config.data_dir)?;
        let (admin_token, admin_token_file) =
            local_secrets::admin_token(config.admin.token.expose(), &config.data_dir)?;
        let store = open_store(&config)?;
        if options.migrate {
            store.migrate().await?;
        }
        let keys = KeyService::open(
            Arc::clone(&store),
            master,
            config.key_policy(),
            Arc::clone(&clock),
        )
        .await
        .map_err(StartupError::Keys)?;
        Ok(Self {
            config,
            store,
            keys,
            clock,
            admin_token_digest: digest(&SHA256, admin_token.as_bytes()).as_ref().to_vec(),
            admin_token_file,
        })
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The backend's name.
    #[must_use]
    pub fn store_backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Where the generated admin token is, when it was generated.
    #[must_use]
    pub fn admin_token_file(&self) -> Option<&PathBuf> {
        self.admin_token_file.as_ref()
    }

    /// The key ring service.
    #[must_use]
    pub const fn keys(&self) -> &KeyService {
        &self.keys
    }

    /// Whether `presented` is the admin token (constant time over digests, so length leaks nothing).
    #[must_use]
    pub fn admin_token_matches(&self, presented: &str) -> bool {
        let presented = digest(&SHA256, presented.as_bytes());
        verify_slices_are_equal(presented.as_ref(), &self.admin_token_digest).is_ok()
    }

    /// Checks the store.
    ///
    /// # Errors
    /// `genericError` (503) when the store does not answer.
    pub async fn health(&self) -> Result<(), Error> {
        self.store.ping().await.map_err(|e| {
            Error::new(ErrorCode::GenericError)
                .with_status(503)
                .with_message("The store is not reachable.")
                .with_retry_after(5)
                .with_internal(e)
        })
    }

    /// Creates an organization.
    ///
    /// # Errors
    /// `missingFields` / `entityInvalid` for a bad name, or a store failure.
    pub async fn create_organization(&self, name: &str) -> Result<Organization, Error> {
        let organization = Organization::new(name, self.clock.now())?;
        self.store.insert_organization(&organization).await?;
        tracing::info!(id = %organization.id, "organization created");
        Ok(organization)
    }

    /// One organization.
    ///
    /// # Errors
    /// `entityMissing` when there is none with this id.
    pub async fn organization(&self, id: &str) -> Result<Organization, Error> {
        self.store.organization(id).await?.ok_or_else(|| {
            Error::new(ErrorCode::EntityMissing)
                .with_message("There is no organization with this id.")
        })
    }

    /// Every organization, oldest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn organizations(&self) -> Result<Vec<Organization>, Error> {
        Ok(self.store.organizations().await?)
    }

    /// The signing keys and their states.
    #[must_use]
    pub fn key_statuses(&self) -> Vec<KeyStatus> {
        self.keys.statuses()
    }

    /// Rotates the signing key.
    ///
    /// # Errors
    /// See [`KeyService::rotate`].
    pub async fn rotate_keys(&self) -> Result<KeyStatus, Error> {
        self.keys.rotate().await
    }

    /// The JWKS document.
    #[must_use]
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }
}
