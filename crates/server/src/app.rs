//! The application: configuration, store, key ring and clock, with the operations every face and the
//! CLI share.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use portcullis_connect::egress::EgressPolicy;
use portcullis_core::abuse::{AuditEvent, AuditFilter, AuditKind, RateLimiter};
use portcullis_core::app_users::AppUsers;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::console::Console;
use portcullis_core::events::{EndpointChange, EventEndpoint, EventService, NewEndpoint};
use portcullis_core::keys::{KeyService, KeyStatus};
use portcullis_core::login::{LoginService, OAuthService};
use portcullis_core::organization::{ApiKeyRecord, NewApiKey, Organization};
use portcullis_core::session::{SessionConfig, SessionService, SupertokensApps};
use portcullis_core::store::Store;
use portcullis_core::{Error, ErrorCode};
use portcullis_session_wire::{CookieSettings, SameSite};
use serde_json::Value;

use crate::StartupError;
use crate::config::{Config, CookieSameSite, StoreBackend};
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
    id_token_keys: Arc<KeyService>,
    rate_limiter: RateLimiter,
    sessions: Arc<SessionService>,
    supertokens_apps: SupertokensApps,
    app_users: AppUsers,
    login: Arc<LoginService>,
    oauth: OAuthService,
    console: Console,
    connectors: Arc<portcullis_connect::ConnectorRuntime>,
    events: EventService,
    egress: Arc<EgressPolicy>,
    mailer: Option<crate::mail::Mailer>,
    cookies: CookieSettings,
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
        let master = Arc::new(master);
        let keys = KeyService::open(Arc::clone(&store), Arc::clone(&master), config.key_policy(), Arc::clone(&clock))
            .await
            .map_err(StartupError::Keys)?;
        let keys = Arc::new(keys);
        let id_token_keys = if config.keys.id_token_algorithm == config.keys.algorithm {
            Arc::clone(&keys)
        } else {
            let policy = config.id_token_key_policy();
            let family = KeyService::open_deferred(Arc::clone(&store), Arc::clone(&master), policy, Arc::clone(&clock))
                .await
                .map_err(StartupError::Keys)?;
            Arc::new(family)
        };
        let sessions = Arc::new(SessionService::new(
            Arc::clone(&store),
            Arc::clone(&keys),
            Arc::clone(&clock),
            session_config(&config),
            &master,
        ));
        let supertokens_apps = SupertokensApps::new(
            Arc::clone(&store),
            Arc::clone(&master),
            config.key_policy(),
            Arc::clone(&clock),
            session_config(&config),
        );
        let cookies = cookie_settings(&config);
        let mailer = crate::mail::Mailer::from_settings(&config.smtp)?;
        let login = Arc::new(
            LoginService::new(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&master), config.public_url())
                .with_captcha_ip_allowance(config.login.captcha_ip_allowance)
                .with_code_digits(config.login.code_digits)
                .with_max_code_failures(config.login.max_code_failures),
        );
        let oauth_refresh = SessionService::for_purpose(
            Arc::clone(&store),
            Arc::clone(&keys),
            Arc::clone(&clock),
            session_config(&config),
            &master,
            "oauth",
        );
        let oauth = OAuthService::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&keys),
            Arc::clone(&id_token_keys),
            Arc::clone(&login),
            oauth_refresh,
        );
        let console = Console::new(Arc::clone(&store), Arc::clone(&clock), &master, config.public_url());
        let egress_allow = egress_allow(&config)?;
        let egress = Arc::new(EgressPolicy::new(egress_allow.clone()));
        let connectors = Arc::new(connector_runtime(&config, egress_allow, &store, &master, &clock)?);
        let events = EventService::new(
            Arc::clone(&store),
            Arc::clone(&master),
            Arc::clone(&clock),
            std::time::Duration::from_secs(config.events.secret_overlap_secs),
        );
        Ok(Self {
            events,
            egress,
            rate_limiter: RateLimiter::new(Arc::clone(&store), Arc::clone(&clock)),
            app_users: AppUsers::new(Arc::clone(&store)),
            config,
            store,
            keys,
            id_token_keys,
            sessions,
            supertokens_apps,
            login,
            oauth,
            console,
            connectors,
            mailer,
            cookies,
            clock,
            admin_token_digest: digest(&SHA256, admin_token.as_bytes()).as_ref().to_vec(),
            admin_token_file,
        })
    }

    /// The connector runtime.
    #[must_use]
    pub fn connectors(&self) -> &portcullis_connect::ConnectorRuntime {
        &self.connectors
    }

    /// Organizations' event endpoints and delivery log.
    #[must_use]
    pub const fn events(&self) -> &EventService {
        &self.events
    }

    /// Adds an event endpoint after checking that the egress policy lets events reach it; returns it with
    /// its secret, shown once.
    ///
    /// # Errors
    /// `egressRefused`, and those of [`EventService::create_endpoint`].
    pub async fn add_event_endpoint(
        &self,
        organization_id: &str,
        new: NewEndpoint,
    ) -> Result<(EventEndpoint, String), Error> {
        self.event_url_reachable(&new.url)?;
        self.events.create_endpoint(organization_id, new).await
    }

    /// Changes an event endpoint; a new URL is checked against the egress policy first.
    ///
    /// # Errors
    /// `egressRefused`, and those of [`EventService::change_endpoint`].
    pub async fn change_event_endpoint(
        &self,
        organization_id: &str,
        id: &str,
        change: EndpointChange,
    ) -> Result<EventEndpoint, Error> {
        if let Some(url) = &change.url {
            self.event_url_reachable(url)?;
        }
        self.events.change_endpoint(organization_id, id, change).await
    }

    /// Refuses a URL the egress policy would refuse at delivery, so the mistake shows now. Malformed URLs
    /// and other schemes are the event service's to refuse, with its message.
    fn event_url_reachable(&self, url: &str) -> Result<(), Error> {
        let Some(parsed) = url::Url::parse(url.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https")) else {
            return Ok(());
        };
        self.egress.check_url(&parsed).map_err(|refused| {
            Error::new(ErrorCode::EgressRefused).with_message(format!(
                "{refused}. Add it to connectors.egress_allow if this server may send events there."
            ))
        })
    }

    /// The egress policy of every outbound request (connectors and events).
    #[must_use]
    pub fn egress(&self) -> &Arc<EgressPolicy> {
        &self.egress
    }

    /// This instance's event delivery worker.
    ///
    /// # Errors
    /// When its HTTP client cannot be built.
    pub fn event_delivery(&self) -> Result<crate::event_delivery::EventDelivery, reqwest::Error> {
        crate::event_delivery::EventDelivery::new(
            self.events.clone(),
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            Arc::clone(&self.egress),
            &self.config.events,
        )
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

    /// The rate limiter (counters in the store).
    #[must_use]
    pub const fn rate_limiter(&self) -> &RateLimiter {
        &self.rate_limiter
    }

    /// An organization's audit events that match `filter`, newest first.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization, `entityInvalid` for an unknown kind, store failures.
    pub async fn audit_events(
        &self,
        organization_id: &str,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, Error> {
        self.organization(organization_id).await?;
        if let Some(kind) = filter.kind.as_deref().filter(|k| AuditKind::parse(k).is_none()) {
            let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message(format!("Unknown event kind `{kind}`; known kinds: {}.", known.join(", "))));
        }
        Ok(self.store.audit_events(organization_id, filter, limit).await?)
    }

    /// The key ring service.
    #[must_use]
    pub fn keys(&self) -> &KeyService {
        &self.keys
    }

    /// The key families to maintain: the session keys, and the ID-token keys when their algorithm differs.
    pub fn key_families(&self) -> impl Iterator<Item = &KeyService> {
        let separate = !Arc::ptr_eq(&self.keys, &self.id_token_keys);
        std::iter::once(self.keys.as_ref()).chain(separate.then_some(self.id_token_keys.as_ref()))
    }

    /// The SuperTokens apps served by the core face, each with its own key ring.
    #[must_use]
    pub const fn supertokens_apps(&self) -> &SupertokensApps {
        &self.supertokens_apps
    }

    /// Roles and metadata of the SuperTokens apps' users.
    #[must_use]
    pub const fn app_users(&self) -> &AppUsers {
        &self.app_users
    }

    /// The session service.
    #[must_use]
    pub fn sessions(&self) -> &SessionService {
        &self.sessions
    }

    /// The hosted login flow.
    #[must_use]
    pub fn login(&self) -> &LoginService {
        &self.login
    }

    /// The standard OAuth / OIDC face.
    #[must_use]
    pub const fn oauth(&self) -> &OAuthService {
        &self.oauth
    }

    /// Whether login codes can reach people (SMTP, or the dev outbox).
    #[must_use]
    pub const fn can_deliver_mail(&self) -> bool {
        self.mailer.is_some() || self.config.login.dev_outbox
    }

    /// Delivers a login message: SMTP when configured, the dev outbox when enabled.
    ///
    /// # Errors
    /// `genericError` (503) when no delivery is configured or the SMTP server fails.
    pub async fn deliver(&self, message: &portcullis_core::login::model::OutboxMessage) -> Result<(), Error> {
        if self.config.login.dev_outbox {
            self.login.record_in_outbox(message).await?;
        }
        match &self.mailer {
            Some(mailer) => mailer.send(message).await,
            None if self.config.login.dev_outbox => Ok(()),
            None => Err(Error::new(ErrorCode::GenericError)
                .with_status(503)
                .with_message("Email delivery is not configured for this server.")
                .with_internal("smtp.host is empty and login.dev_outbox is off")),
        }
    }

    /// The admin console's operators and rules.
    #[must_use]
    pub const fn console(&self) -> &Console {
        &self.console
    }

    /// Where session cookies go.
    #[must_use]
    pub const fn cookies(&self) -> &CookieSettings {
        &self.cookies
    }

    /// Makes an API key for an organization; the secret is returned once.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization, or a store failure.
    pub async fn create_api_key(&self, organization_id: &str) -> Result<NewApiKey, Error> {
        let organization = self.organization(organization_id).await?;
        let key = ApiKeyRecord::generate(&organization.id, self.clock.now())?;
        self.store.insert_api_key(&key.record).await?;
        tracing::info!(organization = %organization.id, key = %key.record.id, "API key created");
        Ok(key)
    }

    /// An organization's API keys, revoked ones included (no secret, no hash).
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization, or a store failure.
    pub async fn api_keys(&self, organization_id: &str) -> Result<Vec<ApiKeyRecord>, Error> {
        let organization = self.organization(organization_id).await?;
        Ok(self.store.api_keys(&organization.id).await?)
    }

    /// Revokes an API key of an organization; the next request with it is refused.
    ///
    /// # Errors
    /// `entityMissing` when the organization has no such live key.
    pub async fn revoke_api_key(&self, organization_id: &str, key_id: &str) -> Result<(), Error> {
        if self.store.revoke_api_key(organization_id, key_id, self.clock.now()).await? {
            tracing::info!(organization = %organization_id, key = %key_id, "API key revoked");
            return Ok(());
        }
        Err(Error::new(ErrorCode::EntityMissing).with_message("This organization has no such live API key."))
    }

    /// The organization an API key acts for.
    ///
    /// # Errors
    /// `noPermission` (401) for an unknown or revoked key.
    pub async fn authenticate_api_key(&self, secret: &str) -> Result<String, Error> {
        let record = self.store.api_key_by_hash(&ApiKeyRecord::hash(secret)).await?;
        match record {
            Some(key) if key.revoked.is_none() => Ok(key.organization_id),
            _ => Err(Error::new(ErrorCode::NoPermission).with_status(401).with_message("The API key is not valid.")),
        }
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
        self.store
            .organization(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::EntityMissing).with_message("There is no organization with this id."))
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
        self.key_families().flat_map(KeyService::statuses).collect()
    }

    /// Rotates the signing key.
    ///
    /// # Errors
    /// See [`KeyService::rotate`].
    pub async fn rotate_keys(&self) -> Result<KeyStatus, Error> {
        self.keys.rotate().await
    }

    /// The JWKS document: the published keys of every family.
    #[must_use]
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .key_families()
            .flat_map(|family| family.jwks()["keys"].as_array().cloned().unwrap_or_default())
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn session_config(config: &Config) -> SessionConfig {
    let session = &config.session;
    SessionConfig {
        access_token_validity: std::time::Duration::from_secs(session.access_token_validity_secs),
        refresh_token_validity: std::time::Duration::from_secs(session.refresh_token_validity_secs),
        refresh_grace: std::time::Duration::from_secs(session.refresh_grace_secs),
        issuer: format!("{}{}", config.public_url(), session.api_base_path),
        max_payload_bytes: session.max_claims_bytes,
    }
}

fn cookie_settings(config: &Config) -> CookieSettings {
    let session = &config.session;
    let domain = |d: &str| (!d.is_empty()).then(|| d.to_owned());
    CookieSettings {
        domain: domain(&session.cookie_domain),
        older_domains: session.older_cookie_domains.iter().map(|d| domain(d)).collect(),
        secure: config.cookies_secure(),
        same_site: match session.cookie_same_site {
            CookieSameSite::Lax => SameSite::Lax,
            CookieSameSite::Strict => SameSite::Strict,
            CookieSameSite::None => SameSite::None,
        },
        refresh_path: format!("{}/session/refresh", session.api_base_path),
    }
}

/// Loads the connector definitions of `connectors.dir` (none when it is empty).
/// `connectors.egress_allow` parsed: the networks every outbound request may reach although reserved.
fn egress_allow(config: &Config) -> Result<Vec<ipnet::IpNet>, StartupError> {
    config
        .connectors
        .egress_allow
        .iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    crate::config::ConfigError(format!(
                        "connectors.egress_allow: {entry:?} is neither a network (10.0.0.0/8) nor an address"
                    ))
                    .into()
                })
        })
        .collect()
}

fn connector_runtime(
    config: &Config,
    egress_allow: Vec<ipnet::IpNet>,
    store: &Arc<dyn Store>,
    master: &Arc<portcullis_core::keys::MasterKey>,
    clock: &Arc<dyn Clock>,
) -> Result<portcullis_connect::ConnectorRuntime, StartupError> {
    let settings = &config.connectors;
    if !settings.dir.as_os_str().is_empty() && settings.script_timeout_secs >= config.server.request_timeout_secs {
        tracing::warn!(
            script_timeout_secs = settings.script_timeout_secs,
            request_timeout_secs = config.server.request_timeout_secs,
            "a connector call can outlive server.request_timeout_secs; raise it above connectors.script_timeout_secs"
        );
    }
    let definitions = if settings.dir.as_os_str().is_empty() {
        std::collections::BTreeMap::new()
    } else {
        portcullis_connect::Connector::load_dir(&settings.dir).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            crate::config::ConfigError(format!("connectors.dir: invalid connector definitions:\n{}", lines.join("\n")))
        })?
    };
    let runtime_config = portcullis_connect::RuntimeConfig {
        limits: portcullis_connect::script::Limits {
            timeout: std::time::Duration::from_secs(settings.script_timeout_secs),
            memory_bytes: settings.script_memory_limit_bytes,
        },
        http_timeout: std::time::Duration::from_secs(settings.http_timeout_secs),
        max_inline_rate_limit_wait: std::time::Duration::from_secs(settings.max_inline_rate_limit_wait_secs),
        egress_allow,
        max_concurrent_scripts: settings.max_concurrent_scripts,
        script_queue_wait: std::time::Duration::from_millis(settings.script_queue_wait_ms),
        api_key_step_scripts: settings.api_key_step_scripts,
        reauth_cooldown: std::time::Duration::from_secs(settings.reauth_cooldown_secs),
        ..portcullis_connect::RuntimeConfig::default()
    };
    portcullis_connect::ConnectorRuntime::new(
        definitions,
        Arc::clone(store),
        Arc::clone(master),
        Arc::clone(clock),
        runtime_config,
    )
    .map_err(|e| crate::config::ConfigError(format!("connectors: {}", e.internal().unwrap_or(e.message()))).into())
}
