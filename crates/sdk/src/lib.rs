//! The Portcullis SDK for Rust apps (axum).
//!
//! - Verifies access tokens locally against the server's JWKS (cached; refetched on an unknown `kid`),
//!   with optional claim validators per route and an optional deny-list of revoked sessions. Only tokens
//!   of the API key's own organization are accepted (their `aud`): the SDK asks the server at start.
//! - Answers failures through [`ErrorHandlers`], whose defaults are SuperTokens' statuses and bodies.
//! - Mounts the SuperTokens frontend endpoints (`/auth/session/refresh`, `/auth/signout`) in the app's
//!   own router, backed by Portcullis's server-to-server API, so a page on the app's domain works with
//!   `supertokens-web-js` unchanged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), portcullis_sdk::SdkError> {
//! use axum::{Router, routing::get, middleware::from_fn_with_state};
//! use portcullis_sdk::{Portcullis, Session, require_session};
//! use portcullis_core::session::ClaimValidator;
//!
//! let portcullis = Portcullis::builder("http://127.0.0.1:7420", "pcak_…").build().await?;
//! let app: Router = Router::new()
//!     .route("/api/me", get(|session: Session| async move { session.user_id().to_owned() }))
//!     .route("/api/admin", get(|| async { "hello admin" })
//!         .route_layer(from_fn_with_state(portcullis.guard(vec![ClaimValidator::HasRole("admin".into())]), require_session)))
//!     .merge(portcullis.session_routes())
//!     .with_state(portcullis.clone());
//! # Ok(()) }
//! ```

mod client;
mod deny_list;
mod endpoints;
mod guard;
mod handlers;
mod jwks;
mod login;
mod verified_tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use portcullis_session_wire::{CookieSettings, IssuedTokens, RequestTokens, SameSite, TokenResponse, TokenTransfer};
use serde_json::{Map, Value};

pub use client::{Client, ClientError, IssuedSession, OrganizationInfo, RefreshError, SessionInfo};
pub use deny_list::DenyList;
pub use guard::{Guard, Session, SessionRejection, require_session};
pub use handlers::{DefaultErrorHandlers, ErrorContext, ErrorHandlers, ResponseDraft};
pub use jwks::{JwksCache, REFETCH_COOLDOWN};
pub use login::{CallbackQuery, LoginClient, LoginError, LoginUser};
pub use verified_tokens::{DEFAULT_VERIFIED_TOKEN_CACHE_BYTES, KeyGeneration, VerifiedTokens};

/// Why the SDK could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Talking to Portcullis failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The API key belongs to another organization than the one the app was built for.
    #[error("the API key belongs to organization {actual}, not {expected}")]
    WrongOrganization {
        /// The organization given to [`PortcullisBuilder::organization`].
        expected: String,
        /// The API key's organization.
        actual: String,
    },
}

/// Everything the SDK needs, cheap to clone (use it as axum state, or put it in yours with `FromRef`).
#[derive(Clone)]
pub struct Portcullis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    jwks: JwksCache,
    verified: VerifiedTokens,
    deny_list: Option<DenyList>,
    handlers: Arc<dyn ErrorHandlers>,
    cookies: CookieSettings,
    api_base_path: String,
    anti_csrf: bool,
    issuer: Option<String>,
    organization_id: String,
}

impl std::fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portcullis").field("server", &self.inner.client.base_url()).finish_non_exhaustive()
    }
}

/// Builds a [`Portcullis`].
#[must_use = "call build()"]
pub struct PortcullisBuilder {
    base_url: String,
    api_key: String,
    handlers: Arc<dyn ErrorHandlers>,
    /// `None`: the server's `[session]` cookie settings.
    cookies: Option<CookieSettings>,
    api_base_path: String,
    /// `None`: the server's `session.anti_csrf`.
    anti_csrf: Option<bool>,
    revocation_poll: Option<Duration>,
    access_token_lifetime: Duration,
    issuer: Option<String>,
    organization: Option<String>,
    verified_token_cache_bytes: u64,
}

impl std::fmt::Debug for PortcullisBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortcullisBuilder").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl Portcullis {
    /// Starts a builder for the Portcullis at `base_url` with an organization API key.
    pub fn builder(base_url: &str, api_key: &str) -> PortcullisBuilder {
        PortcullisBuilder {
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            handlers: Arc::new(DefaultErrorHandlers),
            cookies: None,
            api_base_path: "/auth".to_owned(),
            anti_csrf: None,
            revocation_poll: None,
            access_token_lifetime: Duration::from_secs(3600),
            issuer: None,
            organization: None,
            verified_token_cache_bytes: DEFAULT_VERIFIED_TOKEN_CACHE_BYTES,
        }
    }

    /// The organization whose sessions this app accepts (the API key's).
    #[must_use]
    pub fn organization_id(&self) -> &str {
        &self.inner.organization_id
    }

    /// The server-to-server client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// How many times the JWKS was fetched since start.
    #[must_use]
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks.fetches()
    }

    /// The cache of verified access tokens (for monitoring its size against its budget).
    #[must_use]
    pub fn verified_tokens(&self) -> &VerifiedTokens {
        &self.inner.verified
    }

    /// A guard for [`require_session`] with these claim validators.
    #[must_use]
    pub fn guard(&self, validators: Vec<portcullis_core::session::ClaimValidator>) -> Guard {
        Guard::new(self.clone(), validators)
    }

    /// Creates a session for `user_id` and returns the headers that hand its tokens to the client, in the
    /// mode the request asks for (`st-auth-mode`).
    ///
    /// # Errors
    /// When Portcullis refuses or cannot be reached.
    pub async fn create_session(
        &self,
        request_headers: &HeaderMap,
        user_id: &str,
        claims: Map<String, Value>,
    ) -> Result<HeaderMap, SdkError> {
        let issued = self.inner.client.create_session(user_id, claims).await?;
        let mode = TokenTransfer::requested(request_headers);
        let tokens = RequestTokens::from_headers(request_headers);
        let other = if mode == TokenTransfer::Cookie { TokenTransfer::Header } else { TokenTransfer::Cookie };
        let mut headers = HeaderMap::new();
        self.attach(&mut headers, mode, &issued, tokens.carries(other));
        Ok(headers)
    }

    fn attach(&self, headers: &mut HeaderMap, mode: TokenTransfer, issued: &IssuedSession, clear_other: bool) {
        let refresh = issued.refresh_token.as_deref().zip(issued.refresh_token_expiry);
        let tokens = IssuedTokens {
            access_token: &issued.access_token,
            refresh_token: refresh,
            front_token: &issued.front_token,
        };
        TokenResponse::new(&self.inner.cookies).attach(headers, mode, &tokens, clear_other);
    }
}

impl PortcullisBuilder {
    /// Replaces the error handlers.
    pub fn error_handlers(mut self, handlers: impl ErrorHandlers) -> Self {
        self.handlers = Arc::new(handlers);
        self
    }

    /// Cookie settings (domain, older domains, `Secure`, `SameSite`) in place of the server's `[session]`
    /// ones, which apply by default. The refresh cookie's path follows the API base path.
    pub fn cookies(mut self, cookies: CookieSettings) -> Self {
        self.cookies = Some(cookies);
        self
    }

    /// Base path of the mounted endpoints (default `/auth`, the frontend SDK's `apiBasePath`).
    pub fn api_base_path(mut self, path: &str) -> Self {
        path.trim_end_matches('/').clone_into(&mut self.api_base_path);
        self
    }

    /// Requires the `rid` header on cookie-mode requests that change state (default: the server's
    /// `session.anti_csrf`, on unless set to `none`).
    pub const fn anti_csrf(mut self, on: bool) -> Self {
        self.anti_csrf = Some(on);
        self
    }

    /// Checks a deny-list of revoked sessions, polled at this interval; `access_token_lifetime` bounds
    /// how long entries are kept.
    pub const fn revocation_check(mut self, poll: Duration, access_token_lifetime: Duration) -> Self {
        self.revocation_poll = Some(poll);
        self.access_token_lifetime = access_token_lifetime;
        self
    }

    /// Only accepts tokens whose `iss` is this (the server's public URL plus its session base path).
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Pins the organization: [`build`](Self::build) fails unless the API key belongs to it, so a key
    /// pasted from another organization's settings is caught at start rather than at the first login.
    pub fn organization(mut self, organization_id: &str) -> Self {
        self.organization = Some(organization_id.to_owned());
        self
    }

    /// The byte budget of the cache of verified access tokens (default
    /// [`DEFAULT_VERIFIED_TOKEN_CACHE_BYTES`], 16 MiB; 0 verifies every request's signature). A token seen
    /// again skips the signature check; expiry, the deny-list and the claim validators still run on every
    /// request. See [`VerifiedTokens`].
    pub const fn verified_token_cache(mut self, budget_bytes: u64) -> Self {
        self.verified_token_cache_bytes = budget_bytes;
        self
    }

    /// Asks which organization the API key belongs to, fetches the JWKS (and starts the deny-list
    /// poller, if asked).
    ///
    /// # Errors
    /// When Portcullis cannot be reached or refuses the key, or the key belongs to another organization
    /// than the pinned one.
    pub async fn build(mut self) -> Result<Portcullis, SdkError> {
        let client = Client::new(&self.base_url, &self.api_key)?;
        let OrganizationInfo { id: organization_id, cookies: server_cookies, anti_csrf: server_anti_csrf } =
            client.organization().await?;
        if let Some(expected) = self.organization.take().filter(|expected| *expected != organization_id) {
            return Err(SdkError::WrongOrganization { expected, actual: organization_id });
        }
        let jwks = JwksCache::new();
        jwks.fetch(&client).await?;
        let mut cookies = self.cookies.or(server_cookies).unwrap_or(CookieSettings {
            domain: None,
            older_domains: Vec::new(),
            secure: false,
            same_site: SameSite::Lax,
            refresh_path: String::new(),
        });
        cookies.refresh_path = format!("{}/session/refresh", self.api_base_path);
        let portcullis = Portcullis {
            inner: Arc::new(Inner {
                client,
                jwks,
                verified: VerifiedTokens::new(self.verified_token_cache_bytes),
                deny_list: self.revocation_poll.map(|_| DenyList::default()),
                handlers: self.handlers,
                cookies,
                api_base_path: self.api_base_path,
                anti_csrf: self.anti_csrf.or(server_anti_csrf).unwrap_or(true),
                issuer: self.issuer,
                organization_id,
            }),
        };
        if let Some(every) = self.revocation_poll {
            let weak = Arc::downgrade(&portcullis.inner);
            let keep = self.access_token_lifetime;
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                loop {
                    ticker.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if let Some(deny_list) = &inner.deny_list {
                        deny_list.poll(&inner.client, keep).await;
                    }
                }
            });
        }
        Ok(portcullis)
    }
}
