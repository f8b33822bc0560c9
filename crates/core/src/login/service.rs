//! The hosted login flow: one service for both faces. The CentralAuth-compatible face (`/login`,
//! `/api/v1/*`) and the standard OAuth face call the same methods with their [`FlowFace`]; every rule
//! lives here or in the sibling modules.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use url::Url;

use super::attempt::{self, AttemptState, CodeOutcome};
use super::callback::{self, ErrorFormat};
use super::jwe;
use super::model::{
    AttemptKind, AuthorizationCode, FlowFace, LinkMethod, LoginAttempt, LoginFlow, LoginSession, OutboxMessage,
    RecentAttempts, Redemption, Undo, User,
};
use super::pkce::{self, Face};
use super::redirect::{self, Whitelist};
use crate::abuse::{AuditKind, AuditLog, CaptchaService, RateLimiter, captcha};
use crate::clock::{Clock, Timestamp};
use crate::keys::MasterKey;
use crate::organization::{ClientType, Organization, client_secret_context, generate_client_secret};
use crate::session::sha256_hex;
use crate::store::Store;
use crate::{Error, ErrorCode};

/// How long a `/login` flow may take.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// How long an authorization code is valid.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Longest email accepted.
pub const MAX_EMAIL_LEN: usize = 254;

/// The authorization request, as either face parsed it.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    /// `client_id` (the organization id).
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type`.
    pub response_type: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `affirm=1`.
    pub affirm: bool,
    /// `scope`.
    pub scope: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `embed=1`.
    pub embed: bool,
    /// `translations` (base64 JSON).
    pub translations: Option<String>,
    /// The host the request came to (`Host`); `None` for in-process callers, which skip the auth-domain
    /// rule.
    pub host: Option<String>,
    /// A parameter the request carried more than once (RFC 6749 §3.1 forbids it), if any.
    pub repeated_parameter: Option<String>,
}

/// Why an authorization request failed, and where the answer goes.
#[derive(Debug)]
pub enum AuthorizeFailure {
    /// The client or callback cannot be trusted: show the error page, never redirect.
    Page(Error),
    /// Tell the application: redirect to its (validated) callback with the error.
    Redirect(Url, Error),
    /// The organization logs in on its own auth domain (its passkeys are bound to it): the same request
    /// goes to this origin, before any flow or cookie is made.
    AuthDomain(String),
}

/// A started flow, with the secret that binds it to the browser (set as a cookie; only its hash is stored).
#[derive(Debug, Clone)]
pub struct StartedFlow {
    /// The flow.
    pub flow: LoginFlow,
    /// The organization (for the page: name).
    pub organization: Organization,
    /// Browser binding.
    pub binding: String,
}

/// Where a finished login sends the browser.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// To the callback (success, or a terminal error).
    Redirect(Url),
    /// The email is verified and the session open; the browser goes to the flow's passkey page (add or
    /// manage passkeys) and on to the callback from there.
    PasskeyStep {
        /// The flow.
        flow_id: String,
    },
}

/// Email steps an address may make per hour before its captcha level rises (`login.captcha_ip_allowance`).
pub const DEFAULT_CAPTCHA_IP_ALLOWANCE: u32 = 10;

/// Window over which an address's email steps raise its captcha level.
const EMAIL_STEP_WINDOW: Duration = Duration::from_secs(3600);

fn email_step_bucket(ip: &str) -> String {
    format!("email-step:{ip}")
}

/// What the browser sent with the email step besides the email.
#[derive(Debug, Clone, Default)]
pub struct EmailStep {
    /// The client's address (for captcha escalation).
    pub ip: Option<String>,
    /// The captcha solution the page's script found.
    pub captcha: Option<String>,
}

/// What the email step started.
#[derive(Debug, Clone)]
pub struct EmailSent {
    /// The message to deliver.
    pub message: OutboxMessage,
    /// The attempt's kind: a code page follows, or a wait for the mail click.
    pub kind: AttemptKind,
    /// The number the page shows (challenge attempts).
    pub challenge: Option<u8>,
}

/// What the person chose on a mailed link (from its query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChoice {
    /// The attempt's own method.
    Default,
    /// `userPick`: log in on the device that opened the mail.
    ThisDevice,
    /// `userPick`: approve the device that started the login.
    OtherDevice,
    /// A challenge number.
    Pick(u8),
}

/// What a confirmed mail link did.
#[derive(Debug, Clone)]
pub enum LinkOutcome {
    /// This device is logged in.
    LoggedIn(LoginOutcome),
    /// The starting browser is approved and logs in on its next wait.
    Approved {
        /// Organization name, for the page.
        organization: String,
        /// The email, for the page.
        email: String,
    },
}

/// Where a waiting browser stands.
#[derive(Debug, Clone)]
pub enum WaitOutcome {
    /// Not approved yet: keep waiting.
    Pending {
        /// The attempt's kind.
        kind: AttemptKind,
        /// Where the mail went.
        email: String,
        /// The number to show (challenge attempts).
        challenge: Option<u8>,
        /// The flow, for the page.
        flow: Box<LoginFlow>,
        /// Its organization, for the page.
        organization: Box<Organization>,
    },
    /// Approved: logged in.
    Done(LoginOutcome),
}

/// A token request at `/api/v1/verify` or the standard token endpoint.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<String>,
    /// `refresh_token` (standard face).
    pub refresh_token: Option<String>,
    /// Client id (HTTP Basic or body).
    pub client_id: Option<String>,
    /// Client secret (HTTP Basic or body).
    pub client_secret: Option<String>,
    /// A parameter the body carried more than once (RFC 6749 §3.2 forbids it), if any.
    pub repeated_parameter: Option<String>,
}

/// What `authenticate_direct` did.
#[derive(Debug, Clone)]
pub enum DirectOutcome {
    /// A link is on its way.
    Sent {
        /// The attempt.
        login_attempt_id: String,
        /// The message to deliver.
        message: OutboxMessage,
    },
    /// Inside the per-email delay: nothing was sent.
    Throttled {
        /// When the next attempt is allowed.
        allowed_date: Timestamp,
    },
}

/// The compat token response.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// JWE `{sessionId}`.
    pub access_token: String,
    /// JWE `{sessionId, user}`.
    pub id_token: String,
    /// Seconds until the session's absolute limit, when it has one.
    pub expires_in: Option<u64>,
    /// The same as a time.
    pub expires_at: Option<Timestamp>,
}

/// What a userinfo request carries besides the token.
#[derive(Debug, Clone, Default)]
pub struct UserinfoRequest {
    /// `domain` query parameter.
    pub domain: Option<String>,
    /// `auth-ip` header (first entry).
    pub ip: Option<String>,
    /// `user-agent` header.
    pub user_agent: Option<String>,
    /// `device-id` header.
    pub device_id: Option<String>,
}

/// The login flow service.
#[derive(Debug)]
pub struct LoginService {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    master: Arc<MasterKey>,
    code_key: [u8; 32],
    issuer: String,
    pub(super) audit: AuditLog,
    limiter: RateLimiter,
    captcha: CaptchaService,
    captcha_ip_allowance: u32,
    code_digits: u8,
    max_code_failures: u32,
    pub(super) passkey_decoy_key: [u8; 32],
}

/// Whether `binding` (the browser's flow cookie) is the one `flow` was started with.
pub(super) fn is_bound_to(flow: &LoginFlow, binding: Option<&str>) -> bool {
    let presented = binding.map(|b| sha256_hex(b.as_bytes())).unwrap_or_default();
    verify_slices_are_equal(presented.as_bytes(), flow.binding_hash.as_bytes()).is_ok()
}

pub(super) fn repeated(name: &str) -> Error {
    Error::new(ErrorCode::EntityInvalid).with_message(format!("The parameter `{name}` must not be repeated."))
}

fn missing(field: &str) -> Error {
    Error::new(ErrorCode::MissingFields).with_message(format!("The field `{field}` is required."))
}

/// 32 random bytes, base64url: flow bindings, states, PKCE verifiers.
///
/// # Errors
/// `genericError` when the system random source fails.
pub fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("the system random source failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Lowercases and trims an email, and checks its shape.
///
/// # Errors
/// `missingFields` or `entityInvalid`.
pub fn normalize_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(missing("email"));
    }
    let valid = email.len() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::new(ErrorCode::EntityInvalid).with_message("Please enter a valid email address."))
    }
}

impl LoginService {
    /// A service; `issuer` is the server's public URL (the `iss` of callbacks).
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, master: Arc<MasterKey>, issuer: String) -> Self {
        let code_key = master.derive("login attempt codes");
        let passkey_decoy_key = master.derive("passkey decoy credentials");
        let audit = AuditLog::new(Arc::clone(&store), Arc::clone(&clock));
        let limiter = RateLimiter::new(Arc::clone(&store), Arc::clone(&clock));
        let captcha = CaptchaService::new(Arc::clone(&store), Arc::clone(&clock), &master);
        Self {
            store,
            clock,
            master,
            code_key,
            issuer,
            audit,
            limiter,
            captcha,
            captcha_ip_allowance: DEFAULT_CAPTCHA_IP_ALLOWANCE,
            code_digits: attempt::DEFAULT_CODE_DIGITS,
            max_code_failures: attempt::DEFAULT_MAX_CODE_FAILURES,
            passkey_decoy_key,
        }
    }

    /// Email steps an address may make per hour before its captcha level rises (0: the address never
    /// raises it; the per-email escalation stays).
    #[must_use]
    pub const fn with_captcha_ip_allowance(mut self, steps: u32) -> Self {
        self.captcha_ip_allowance = steps;
        self
    }

    /// Digits of the mailed login codes (`login.code_digits`, 6–10; clamped to that range).
    #[must_use]
    pub fn with_code_digits(mut self, digits: u8) -> Self {
        self.code_digits = digits.clamp(attempt::MIN_CODE_DIGITS, attempt::MAX_CODE_DIGITS);
        self
    }

    /// Consecutive wrong codes an account may have before its email step needs the highest captcha
    /// (`login.max_code_failures`, 1–100; clamped to that range).
    #[must_use]
    pub fn with_max_code_failures(mut self, failures: u32) -> Self {
        self.max_code_failures = failures.clamp(1, attempt::MAX_CODE_FAILURES_LIMIT);
        self
    }

    /// Digits of the mailed login codes (the code page's field asks for exactly these).
    #[must_use]
    pub const fn code_digits(&self) -> u8 {
        self.code_digits
    }

    /// An email's attempts in the last hour: from every network (the captcha level counts them) and from
    /// `network` with the newest one's time (the per-email delay counts those, so a third party's steps
    /// never make the owner wait).
    async fn recent_attempts(
        &self,
        organization_id: &str,
        email: &str,
        network: &str,
    ) -> Result<RecentAttempts, Error> {
        let hour_ago = Timestamp::from_unix_millis(self.clock.now().unix_millis() - 3_600_000);
        Ok(self.store.attempts_since(organization_id, email, network, hour_ago).await?)
    }

    /// Whether an account (organization and normalised email, known or not) reached the cap on
    /// consecutive wrong codes.
    async fn locked_out(&self, organization_id: &str, email: &str) -> Result<bool, Error> {
        Ok(self.store.code_failures(organization_id, email).await? >= self.max_code_failures)
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(super) async fn organization(&self, id: &str) -> Result<Organization, Error> {
        self.store
            .organization(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::EntityMissing).with_message("There is no organization with this id."))
    }

    /// Updates an organization's whitelist and settings: each one given replaces the stored one.
    ///
    /// # Errors
    /// `entityMissing`, or `entityInvalid` for a bad whitelist entry or setting.
    pub async fn configure(
        &self,
        organization_id: &str,
        whitelist: Option<Vec<String>>,
        settings: Option<crate::organization::OrganizationSettings>,
    ) -> Result<Organization, Error> {
        let organization = self.organization(organization_id).await?;
        self.save_configuration(organization, whitelist, settings).await
    }

    /// Updates an organization's whitelist (when given) and only the settings `changes` names.
    ///
    /// # Errors
    /// `entityMissing`, or `entityInvalid` for a bad whitelist entry, an unknown setting or a bad value;
    /// then nothing is changed.
    pub async fn merge_configuration(
        &self,
        organization_id: &str,
        whitelist: Option<Vec<String>>,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<Organization, Error> {
        let organization = self.organization(organization_id).await?;
        let settings = organization.settings.merged(changes)?;
        self.save_configuration(organization, whitelist, Some(settings)).await
    }

    async fn save_configuration(
        &self,
        mut organization: Organization,
        whitelist: Option<Vec<String>>,
        settings: Option<crate::organization::OrganizationSettings>,
    ) -> Result<Organization, Error> {
        if let Some(whitelist) = whitelist {
            organization.set_whitelist(whitelist)?;
        }
        if let Some(settings) = settings {
            settings.validate()?;
            organization.settings = settings;
        }
        self.store.update_organization(&organization).await?;
        Ok(organization)
    }

    /// Makes a client secret, shown once: the active one if there is none yet, otherwise a staged one
    /// that [`activate_secret`](Self::activate_secret) turns active (the old one then stops working).
    ///
    /// # Errors
    /// `entityMissing`, or a store failure.
    pub async fn new_secret(&self, organization_id: &str) -> Result<(String, bool), Error> {
        let organization = self.organization(organization_id).await?;
        let secret = generate_client_secret()?;
        let sealed = self.master.seal(&client_secret_context(&organization.id), secret.as_bytes())?;
        let (active, _) = self.store.client_secrets(&organization.id).await?;
        let staged = active.is_some();
        self.store.set_client_secret(&organization.id, &sealed, staged).await?;
        Ok((secret, staged))
    }

    /// Activates the staged secret.
    ///
    /// # Errors
    /// `entityInvalid` when none is staged.
    pub async fn activate_secret(&self, organization_id: &str) -> Result<(), Error> {
        if self.store.activate_client_secret(organization_id).await? {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::EntityInvalid).with_message("There is no new secret to activate."))
        }
    }

    pub(crate) async fn active_secret(&self, organization_id: &str) -> Result<Option<String>, Error> {
        let (active, _) = self.store.client_secrets(organization_id).await?;
        active
            .map(|sealed| {
                let plain = self.master.open(&client_secret_context(organization_id), &sealed)?;
                String::from_utf8(plain)
                    .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("secret is not UTF-8"))
            })
            .transpose()
    }

    /// Authenticates a confidential client; returns its organization and secret.
    pub(crate) async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(Organization, String), Error> {
        let bad = || {
            Error::new(ErrorCode::NoPermission).with_status(401).with_message("The client credentials are not valid.")
        };
        let organization = self.store.organization(client_id).await?.ok_or_else(bad)?;
        let active = self.active_secret(&organization.id).await?.ok_or_else(bad)?;
        verify_slices_are_equal(active.as_bytes(), secret.as_bytes()).map_err(|_| bad())?;
        Ok((organization, active))
    }

    /// Validates an authorization request and starts a flow. Checks run in the order the reference
    /// prescribes: client, then callback (failures there show a page), then the rest (redirected).
    ///
    /// # Errors
    /// An [`AuthorizeFailure`].
    pub async fn start(&self, request: &AuthorizeRequest, face: FlowFace) -> Result<StartedFlow, AuthorizeFailure> {
        let page = AuthorizeFailure::Page;
        let client_id = request
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| page(Error::new(ErrorCode::OrganizationIdMissing)))?;
        let organization = match self.store.organization(client_id).await {
            Ok(Some(org)) => org,
            Ok(None) => return Err(page(Error::new(ErrorCode::OrganizationIdMissing))),
            Err(e) => return Err(page(e.into())),
        };
        if let (Some(domain), Some(host)) = (&organization.settings.auth_domain, request.host.as_deref()) {
            let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
            if !name.eq_ignore_ascii_case(domain) {
                return Err(AuthorizeFailure::AuthDomain(self.relying_party(&organization).map_err(page)?.origin));
            }
        }
        // A repeated client or redirect URI leaves no callback to trust: the page says so.
        if let Some(name) = request.repeated_parameter.as_deref().filter(|n| matches!(*n, "client_id" | "redirect_uri"))
        {
            return Err(page(repeated(name)));
        }
        let callback = match face {
            FlowFace::Standard => {
                redirect::registered_redirect_uri(request.redirect_uri.as_deref(), &organization.settings.redirect_uris)
            }
            FlowFace::Compat | FlowFace::Direct => organization.parsed_whitelist().and_then(|whitelist| {
                redirect::validate_redirect_uri(
                    request.redirect_uri.as_deref(),
                    &whitelist,
                    organization.settings.allow_localhost,
                )
            }),
        }
        .map_err(page)?;
        let format = ErrorFormat::for_face(face);
        let redirect_error = |error: Error, state: Option<&str>| {
            let url = callback::error(&callback, &error, state, &self.issuer, format);
            AuthorizeFailure::Redirect(url, error)
        };
        let state = match pkce::check_state(request.state.as_deref()) {
            Ok(state) => state.to_owned(),
            Err(error) => {
                // An over-long or unprintable state is not echoed.
                return Err(redirect_error(error, None));
            }
        };
        if let Some(name) = &request.repeated_parameter {
            return Err(redirect_error(repeated(name), Some(&state)));
        }
        // The compat face tolerates an absent response_type (PHP's library); the standard face does not.
        let response_type_ok = match request.response_type.as_deref() {
            Some(t) => t == "code",
            None => face == FlowFace::Compat,
        };
        if !response_type_ok {
            // An absent response_type is a malformed request; another one is unsupported (RFC 6749 §4.1.2.1).
            let error = Error::new(ErrorCode::EntityInvalid).with_message("Only response_type=code is supported.");
            let error = if request.response_type.is_some() {
                error.with_oauth_error("unsupported_response_type")
            } else {
                error
            };
            return Err(redirect_error(error, Some(&state)));
        }
        let challenge = pkce::check_challenge(
            request.code_challenge.as_deref(),
            request.code_challenge_method.as_deref(),
            organization.settings.pkce_required(),
        )
        .map_err(|e| redirect_error(e, Some(&state)))?;
        let now = self.clock.now();
        let binding = random_token().map_err(page)?;
        let flow = LoginFlow {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization.id.clone(),
            redirect_uri: callback.to_string(),
            state,
            code_challenge: challenge.map(str::to_owned),
            face,
            affirm: request.affirm,
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            embed: request.embed,
            translations: request.translations.as_deref().map(super::texts::parse_translations).unwrap_or_default(),
            binding_hash: sha256_hex(binding.as_bytes()),
            created_at: now,
            expires_at: now.plus(FLOW_LIFETIME),
        };
        self.store.insert_flow(&flow).await.map_err(|e| page(e.into()))?;
        Ok(StartedFlow { flow, organization, binding })
    }

    /// The flow a page belongs to, checked against the browser's binding.
    ///
    /// # Errors
    /// `loginAttemptMissing` for an unknown flow or another browser; `loginAttemptExpired` after 30 minutes.
    pub async fn flow(&self, flow_id: &str, binding: Option<&str>) -> Result<(LoginFlow, Organization), Error> {
        let missing = || {
            Error::new(ErrorCode::LoginAttemptMissing)
                .with_message("This login page is not valid in this browser. Please start again from the application.")
        };
        let flow = self.store.flow(flow_id).await?.filter(|flow| is_bound_to(flow, binding)).ok_or_else(missing)?;
        if flow.expires_at <= self.clock.now() {
            return Err(Error::new(ErrorCode::LoginAttemptExpired)
                .with_message("This login page has expired. Please start again from the application."));
        }
        let organization = self.organization(&flow.organization_id).await?;
        Ok((flow, organization))
    }

    /// The captcha challenge the email step of `flow_id` shows now, if its level is above zero: the level
    /// the next submission needs, from the recent attempts of `email` (when known) and of the address.
    ///
    /// # Errors
    /// Store failures.
    pub async fn email_step_captcha(
        &self,
        flow_id: &str,
        organization_id: &str,
        email: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let ip_steps = match ip {
            Some(ip) if self.captcha_ip_allowance > 0 => {
                self.limiter.peek(&email_step_bucket(ip), EMAIL_STEP_WINDOW).await?
            }
            _ => 0,
        };
        let (email_attempts, locked_out) = match email.and_then(|e| normalize_email(e).ok()) {
            Some(email) => (
                self.recent_attempts(organization_id, &email, &email_network(ip)).await?.total,
                self.locked_out(organization_id, &email).await?,
            ),
            None => (0, false),
        };
        self.captcha
            .challenge(flow_id, required_captcha_level(self.captcha_ip_allowance, email_attempts, ip_steps, locked_out))
    }

    /// Starts an email attempt of the organization's type and returns the message to deliver (only an
    /// HMAC of its code or link token is stored). Known and unknown emails get the same answer; the
    /// growing per-email delay applies to both. The delay counts the email's attempts from the step's
    /// network only; attempts from other networks raise the captcha level instead, so nobody can make
    /// the owner of an address wait. A locked-out account needs the highest captcha.
    ///
    /// # Errors
    /// Flow errors, `connectionMissing` when email login is off, `entityInvalid` for a bad email,
    /// `tooManyRequests` (with `Retry-After`) inside the delay, `captchaInvalid` without the captcha the
    /// step needs.
    pub async fn send_code(
        &self,
        flow_id: &str,
        binding: Option<&str>,
        email: &str,
        step: &EmailStep,
    ) -> Result<EmailSent, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        let settings = &organization.settings;
        if !settings.email_login_allowed() {
            return Err(Error::new(ErrorCode::ConnectionMissing)
                .with_message("Logging in by email is not enabled for this application."));
        }
        let email = normalize_email(email)?;
        let now = self.clock.now();
        let network = email_network(step.ip.as_deref());
        let recent = self.recent_attempts(&organization.id, &email, &network).await?;
        let next = attempt::next_allowed(recent.from_network, recent.last_from_network);
        if let Some(allowed) = next.filter(|allowed| *allowed > now) {
            let wait = u64::try_from((allowed.unix_millis() - now.unix_millis() + 999) / 1000).unwrap_or(1);
            return Err(Error::new(ErrorCode::TooManyRequests)
                .with_message(format!("Please wait {wait} seconds before requesting another code."))
                .with_retry_after(wait));
        }
        // Every email step from an address counts toward its captcha level, whatever the email.
        let ip_steps = match &step.ip {
            Some(ip) if self.captcha_ip_allowance > 0 => {
                self.limiter.count(&email_step_bucket(ip), EMAIL_STEP_WINDOW).await?.saturating_sub(1)
            }
            _ => 0,
        };
        let locked_out = self.locked_out(&organization.id, &email).await?;
        let required = required_captcha_level(self.captcha_ip_allowance, recent.total, ip_steps, locked_out);
        self.captcha.check(&flow.id, required, step.captcha.as_deref()).await?;
        let kind = AttemptKind::new(settings.default_login_attempt_type, settings.default_login_method);
        let (attempt, message) = self.new_attempt(&flow, &organization, &email, kind, network)?;
        self.store.insert_attempt(&attempt).await?;
        Ok(EmailSent { message, kind, challenge: attempt.challenge })
    }

    /// A new attempt, asked for from `network`, and its mail. A code attempt mails `login.code_digits`
    /// digits; the others mail links carrying a 256-bit token, and an undo link.
    fn new_attempt(
        &self,
        flow: &LoginFlow,
        organization: &Organization,
        email: &str,
        kind: AttemptKind,
        network: String,
    ) -> Result<(LoginAttempt, OutboxMessage), Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = if kind == AttemptKind::Code { attempt::new_code(self.code_digits)? } else { random_token()? };
        let numbers = if kind == AttemptKind::Challenge { Some(attempt::challenge_numbers()?) } else { None };
        let name = &organization.name;
        let link = format!("{}/login/link/{id}/{secret}", self.issuer);
        let undo = format!(
            "\n\nIf you did not try to log in, open this link to undo it:\n{}/login/undo/{id}/{secret}\n",
            self.issuer
        );
        let (subject, body) = match (kind, numbers) {
            (AttemptKind::Code, _) => (
                format!("Your login code for {name}"),
                format!(
                    "Your login code for {name} is {secret}.\n\nIt is valid for 15 minutes. If you did not try to log in, ignore this message.\n"
                ),
            ),
            (AttemptKind::Challenge, Some((_, shown))) => {
                let choices: String =
                    shown.iter().map(|n| format!("  {n}: {link}?pick={n}\n")).collect::<Vec<_>>().concat();
                (
                    format!("Approve your login to {name}"),
                    format!(
                        "Someone is logging in to {name} with this email. Click the number that the login page shows:\n\n{choices}\nThe other numbers cancel the login. Valid for 15 minutes.{undo}"
                    ),
                )
            }
            (AttemptKind::Link(LinkMethod::UserPick), _) => (
                format!("Log in to {name}"),
                format!(
                    "Log in to {name} on the device where you opened this email:\n{link}?device=this\n\nOr approve the login on the device where you started it:\n{link}?device=other\n\nBoth are valid for 15 minutes.{undo}"
                ),
            ),
            (AttemptKind::Link(LinkMethod::Remote), _) => (
                format!("Approve your login to {name}"),
                format!(
                    "Open this link to approve your login to {name} on the device where you started it:\n\n{link}\n\nIt is valid for 15 minutes.{undo}"
                ),
            ),
            _ => (
                format!("Log in to {name}"),
                format!("Open this link to log in to {name}:\n\n{link}\n\nIt is valid for 15 minutes.{undo}"),
            ),
        };
        let now = self.clock.now();
        let attempt = LoginAttempt {
            code_digest: attempt::code_digest(&self.code_key, &id, &secret),
            id,
            flow_id: flow.id.clone(),
            organization_id: organization.id.clone(),
            email: email.to_owned(),
            created_at: now,
            wrong_entries: 0,
            closed_at: None,
            kind,
            challenge: numbers.map(|(right, _)| right),
            approved_at: None,
            session_id: None,
            undone_at: None,
            handed_over_at: None,
            network,
        };
        let message = OutboxMessage {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization.id.clone(),
            to: email.to_owned(),
            subject,
            body,
            created: now,
        };
        Ok((attempt, message))
    }

    /// Keeps a message in the dev outbox. Only for development: the body holds a live login code.
    ///
    /// # Errors
    /// Store failures.
    pub async fn record_in_outbox(&self, message: &OutboxMessage) -> Result<(), Error> {
        Ok(self.store.push_outbox(message).await?)
    }

    /// The email the flow's newest attempt went to (for the code page).
    ///
    /// # Errors
    /// Store failures.
    pub async fn pending_email(&self, flow_id: &str) -> Result<Option<String>, Error> {
        Ok(self.store.latest_attempt(flow_id).await?.map(|attempt| attempt.email))
    }

    /// Checks a code. Right: the user is logged in and the browser goes to the callback with a code.
    /// Wrong: it counts against the attempt (void after 5) and against the account across attempts; at
    /// the account's cap (`login.max_code_failures`) the lockout is audited, and from then on each wrong
    /// code voids its attempt, so every guess needs a new email step with the highest captcha.
    ///
    /// # Errors
    /// `loginAttemptMissing`, `loginAttemptExpired`, `loginAttemptInvalid` (wrong code, with the tries
    /// left; void after 5, or at once past the account's cap), flow errors.
    pub async fn enter_code(&self, flow_id: &str, binding: Option<&str>, code: &str) -> Result<LoginOutcome, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        let attempt =
            self.store.latest_attempt(&flow.id).await?.ok_or_else(|| {
                Error::new(ErrorCode::LoginAttemptMissing).with_message("Please request a code first.")
            })?;
        if attempt.kind != AttemptKind::Code {
            return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login continues from the email we sent, not with a code."));
        }
        let now = self.clock.now();
        let state = AttemptState {
            created_at: attempt.created_at,
            wrong_entries: attempt.wrong_entries,
            closed: attempt.closed_at.is_some(),
        };
        let presented = attempt::code_digest(&self.code_key, &attempt.id, code.trim());
        match attempt::enter_code(&state, &attempt.code_digest, &presented, now)? {
            CodeOutcome::Rejected { .. } => {
                let wrong = self.store.record_wrong_entry(&attempt.id).await?;
                let failures = self.store.record_code_failure(&organization.id, &attempt.email, now).await?;
                let locked_out = failures >= self.max_code_failures;
                let left = if locked_out { 0 } else { attempt::MAX_WRONG_ENTRIES.saturating_sub(wrong) };
                let detail = json!({
                    "attempt": attempt.id, "wrongEntries": wrong, "accountFailures": failures, "void": left == 0,
                });
                self.audit.record(&organization.id, AuditKind::LoginFailed, Some(&attempt.email), detail).await;
                if failures == self.max_code_failures {
                    let detail = json!({ "attempt": attempt.id, "failures": failures });
                    self.audit.record(&organization.id, AuditKind::LoginLockedOut, Some(&attempt.email), detail).await;
                }
                if left == 0 {
                    self.store.close_attempt(&attempt.id, now).await?;
                    return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                        .with_message("Too many wrong codes. Please request a new code."));
                }
                Err(Error::new(ErrorCode::LoginAttemptInvalid)
                    .with_message(format!("That code is not right. {left} tries left.")))
            }
            CodeOutcome::Accepted => {
                if !self.store.close_attempt(&attempt.id, now).await? {
                    return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                        .with_message("This code was already used. Please request a new code."));
                }
                self.finish(&flow, &organization, &attempt, true).await
            }
        }
    }

    /// The starting browser waits for a mail click (challenge and link attempts). Once a click approved
    /// it, this call logs it in, once.
    ///
    /// # Errors
    /// Flow errors; `loginAttemptMissing` without an attempt; `loginAttemptExpired` after 15 minutes
    /// unapproved; `loginAttemptInvalid` when the attempt was undone, cancelled by a wrong number, used on
    /// another device, or is a code attempt.
    pub async fn wait(&self, flow_id: &str, binding: Option<&str>) -> Result<WaitOutcome, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        let attempt = self.store.latest_attempt(&flow.id).await?.ok_or_else(|| {
            Error::new(ErrorCode::LoginAttemptMissing).with_message("Please request a login email first.")
        })?;
        let invalid = |text: &str| Error::new(ErrorCode::LoginAttemptInvalid).with_message(text.to_owned());
        if attempt.kind == AttemptKind::Code {
            return Err(invalid("Please enter the code we sent."));
        }
        if attempt.undone_at.is_some() {
            return Err(invalid("This login was undone from the email. Please start again."));
        }
        let now = self.clock.now();
        if attempt.approved_at.is_some() {
            if !self.store.close_attempt(&attempt.id, now).await? {
                return Err(invalid("This login was already completed."));
            }
            return self.finish(&flow, &organization, &attempt, true).await.map(WaitOutcome::Done);
        }
        if attempt.closed_at.is_some() {
            return Err(invalid(
                "This login attempt was used on another device or cancelled. Please request a new email.",
            ));
        }
        if attempt.created_at.plus(attempt::ATTEMPT_LIFETIME) <= now {
            return Err(Error::new(ErrorCode::LoginAttemptExpired));
        }
        Ok(WaitOutcome::Pending {
            kind: attempt.kind,
            email: attempt.email,
            challenge: attempt.challenge,
            flow: Box::new(flow),
            organization: Box::new(organization),
        })
    }

    /// Logs the attempt's email in: the user (created if the organization allows), a login session
    /// attached to the attempt, then the callback with a code, or the passkey step when `offer_passkeys`
    /// (the browser that started the flow is the one logged in) and the organization has passkeys on.
    async fn finish(
        &self,
        flow: &LoginFlow,
        organization: &Organization,
        attempt: &LoginAttempt,
        offer_passkeys: bool,
    ) -> Result<LoginOutcome, Error> {
        let email = attempt.email.as_str();
        let now = self.clock.now();
        // The mailbox is proven: the account's wrong codes are forgotten (known or unknown alike).
        self.forget_code_failures(&organization.id, email).await?;
        // A first login creates its user verified and logged in, in one write.
        let candidate = organization.settings.enable_user_creation.then(|| User {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization.id.clone(),
            email: email.to_owned(),
            verified: true,
            blocked: false,
            created: now,
            updated: now,
            last_login: Some(now),
        });
        let Some(user) = self.store.user_by_email(&organization.id, email, candidate.as_ref()).await? else {
            let detail = json!({ "attempt": attempt.id, "reason": "userCreationDisabled" });
            self.audit.record(&organization.id, AuditKind::LoginFailed, Some(email), detail).await;
            let callback =
                Url::parse(&flow.redirect_uri).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
            let url = callback::error(
                &callback,
                &Error::new(ErrorCode::NoPermission).with_message("This account cannot log in to this application."),
                Some(&flow.state),
                &self.issuer,
                ErrorFormat::for_face(flow.face),
            );
            return Ok(LoginOutcome::Redirect(url));
        };
        let created = candidate.is_some_and(|c| c.id == user.id);
        let session = self.open_session(flow, organization, &user, !created).await?;
        let passkey_step = offer_passkeys && organization.settings.passkey_connection_enabled;
        // An undo that raced this login wins: the session it would have missed is ended here. Without a
        // passkey step, the browser goes on now: the same write records it.
        let handed_over = (!passkey_step).then_some(now);
        if !self.store.attach_attempt_session(&attempt.id, &session.id, handed_over).await? {
            self.store.end_login_session(&session.id, now).await?;
            return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login was undone from the email. Please start again."));
        }
        let detail = json!({
            "attempt": attempt.id, "attemptType": attempt.kind.as_str(), "sessionId": session.id,
            "userId": session.user_id, "face": flow.face.as_str(),
        });
        self.audit.record(&organization.id, AuditKind::LoginSucceeded, Some(email), detail).await;
        if passkey_step {
            return Ok(LoginOutcome::PasskeyStep { flow_id: flow.id.clone() });
        }
        self.redirect_with_code(flow, &session).await
    }

    /// After a login (email or passkey): the account's consecutive wrong codes start again from zero. Read
    /// first, so a login without wrong codes adds no write.
    pub(super) async fn forget_code_failures(&self, organization_id: &str, email: &str) -> Result<(), Error> {
        if self.store.code_failures(organization_id, email).await? > 0 {
            self.store.reset_code_failures(organization_id, email).await?;
        }
        Ok(())
    }

    /// Opens a login session for a user who just proved who they are; `record_login` marks the login on
    /// the user (not needed for a user this login created).
    pub(super) async fn open_session(
        &self,
        flow: &LoginFlow,
        organization: &Organization,
        user: &User,
        record_login: bool,
    ) -> Result<LoginSession, Error> {
        let now = self.clock.now();
        if record_login {
            self.store.record_login(&user.id, now).await?;
        }
        let session = LoginSession {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization.id.clone(),
            user_id: user.id.clone(),
            created_at: now,
            last_active_at: now,
            ended_at: None,
            verified_domains: Vec::new(),
            ip: None,
            user_agent: None,
            device_id: None,
            scope: flow.scope.clone(),
            nonce: flow.nonce.clone(),
        };
        self.store.insert_login_session(&session).await?;
        crate::activity::login_opened();
        Ok(session)
    }

    /// The callback with a fresh authorization code for the session.
    pub(super) async fn redirect_with_code(
        &self,
        flow: &LoginFlow,
        session: &LoginSession,
    ) -> Result<LoginOutcome, Error> {
        let now = self.clock.now();
        let callback =
            Url::parse(&flow.redirect_uri).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        let code = random_token()?;
        self.store
            .insert_code(&AuthorizationCode {
                code_hash: sha256_hex(code.as_bytes()),
                organization_id: session.organization_id.clone(),
                session_id: session.id.clone(),
                redirect_uri: flow.redirect_uri.clone(),
                code_challenge: flow.code_challenge.clone(),
                face: flow.face,
                created_at: now,
                expires_at: now.plus(CODE_LIFETIME),
                used_at: None,
            })
            .await?;
        Ok(LoginOutcome::Redirect(callback::success(&callback, &code, &flow.state, &self.issuer, flow.affirm)))
    }

    /// The CentralAuth token exchange (`/api/v1/verify`): lenient parsing, strict rules.
    ///
    /// # Errors
    /// `missingFields`, `noPermission` (401, bad client), `tokenInvalid` (400: unknown, expired, reused or
    /// foreign code; a reused code also ends the session), `callbackUrlInvalid`, `codeChallengeInvalid`.
    pub async fn exchange_compat(&self, request: &TokenRequest) -> Result<IssuedTokens, Error> {
        if request.grant_type.as_deref().is_some_and(|g| g != "authorization_code") {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_oauth_error("unsupported_grant_type")
                .with_message("Only grant_type=authorization_code is supported."));
        }
        let code = request.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| missing("code"))?;
        let redirect_uri =
            request.redirect_uri.as_deref().filter(|r| !r.is_empty()).ok_or_else(|| missing("redirect_uri"))?;
        let now = self.clock.now();
        let invalid_code =
            || Error::new(ErrorCode::TokenInvalid).with_status(400).with_message("The authorization code is invalid.");
        let granted = match self.store.redeem_code(&sha256_hex(code.as_bytes()), now).await? {
            Redemption::Unknown => return Err(invalid_code()),
            Redemption::Replayed(code) => {
                // RFC 6749 §4.1.2: a reused code revokes what it issued.
                self.store.end_login_session(&code.session_id, now).await?;
                return Err(
                    invalid_code().with_internal(format!("code replay; login session {} ended", code.session_id))
                );
            }
            Redemption::Redeemed(code) => code,
        };
        if granted.expires_at <= now {
            return Err(invalid_code().with_internal("code expired"));
        }
        let secret = match (request.client_id.as_deref(), request.client_secret.as_deref()) {
            (client_id, Some(secret)) => {
                let (organization, secret) =
                    self.authenticate_client(client_id.unwrap_or(&granted.organization_id), secret).await?;
                if organization.id != granted.organization_id {
                    return Err(invalid_code().with_internal("code of another organization"));
                }
                secret
            }
            // Only a public client may leave out its secret, and its code is bound by PKCE; its tokens still
            // need the secret as key.
            (_, None) if granted.code_challenge.is_some() => {
                if self.organization(&granted.organization_id).await?.settings.client_type != ClientType::Public {
                    return Err(Error::new(ErrorCode::NoPermission).with_status(401).with_message(
                        "This application is a confidential client: the code exchange needs its client secret.",
                    ));
                }
                self.active_secret(&granted.organization_id).await?.ok_or_else(|| {
                    Error::new(ErrorCode::NoPermission)
                        .with_status(401)
                        .with_message("The organization has no client secret yet.")
                })?
            }
            (_, None) => {
                return Err(Error::new(ErrorCode::NoPermission)
                    .with_status(401)
                    .with_message("Client authentication is required for a login without PKCE."));
            }
        };
        let authorized =
            Url::parse(&granted.redirect_uri).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        let presented = Url::parse(redirect_uri).map_err(|_| {
            Error::new(ErrorCode::CallbackUrlInvalid).with_message("The redirect_uri does not match the login request.")
        })?;
        if redirect::without_return_to(&authorized) != redirect::without_return_to(&presented) {
            return Err(Error::new(ErrorCode::CallbackUrlInvalid)
                .with_message("The redirect_uri does not match the login request."));
        }
        match granted.face {
            FlowFace::Standard => {
                return Err(invalid_code().with_internal("a standard-face code at the compat endpoint"));
            }
            // Direct-auth codes have no challenge and were granted to an authenticated client; the npm
            // library still posts a verifier ("undefined"), which is ignored.
            FlowFace::Direct if request.client_secret.is_none() => {
                return Err(Error::new(ErrorCode::NoPermission)
                    .with_status(401)
                    .with_message("Client authentication is required for a direct login."));
            }
            FlowFace::Direct => {}
            FlowFace::Compat => {
                pkce::check_verifier(
                    granted.code_challenge.as_deref(),
                    request.code_verifier.as_deref(),
                    Face::Compat,
                )?;
            }
        }

        let organization = self.organization(&granted.organization_id).await?;
        let mut session = self.store.login_session(&granted.session_id).await?.ok_or_else(invalid_code)?;
        let origin = presented.origin().ascii_serialization();
        if !session.verified_domains.contains(&origin) {
            session.verified_domains.push(origin);
        }
        session.last_active_at = now;
        self.store.update_login_session(&session).await?;
        let user = self.store.user(&session.user_id).await?.ok_or_else(invalid_code)?;

        let max = organization.settings.max_session_time;
        let expires_at = (max > 0).then(|| session.created_at.plus(Duration::from_secs(max)));
        let exp = expires_at.map(Timestamp::unix_seconds);
        let mut access = json!({ "sessionId": session.id, "iat": now.unix_seconds() });
        let mut id = json!({ "sessionId": session.id, "user": user_json(&user), "iat": now.unix_seconds() });
        if let Some(exp) = exp {
            access["exp"] = json!(exp);
            id["exp"] = json!(exp);
        }
        let seal = |claims: &Value| {
            jwe::encrypt(secret.as_bytes(), claims.to_string().as_bytes())
                .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))
        };
        Ok(IssuedTokens {
            access_token: seal(&access)?,
            id_token: seal(&id)?,
            expires_in: expires_at.map(|at| u64::try_from((at.unix_millis() - now.unix_millis()) / 1000).unwrap_or(0)),
            expires_at,
        })
    }

    /// Decrypts a compat token and finds its live session, in the reference's check order.
    async fn session_for_token(
        &self,
        client_id: &str,
        secret: &str,
        token: &str,
    ) -> Result<(Organization, LoginSession), Error> {
        let (organization, secret) = self.authenticate_client(client_id, secret).await?;
        if token.trim().is_empty() {
            return Err(Error::new(ErrorCode::TokenMissing));
        }
        let invalid = || Error::new(ErrorCode::TokenInvalid);
        let plain = jwe::decrypt(secret.as_bytes(), token.trim()).map_err(|_| invalid())?;
        let claims: Value = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        let session_id = claims["sessionId"].as_str().ok_or_else(invalid)?;
        let session =
            self.store.login_session(session_id).await?.ok_or_else(|| Error::new(ErrorCode::SessionMissing))?;
        if session.organization_id != organization.id {
            return Err(Error::new(ErrorCode::NoPermission));
        }
        Ok((organization, session))
    }

    /// The CentralAuth userinfo ("session check").
    ///
    /// # Errors
    /// In order: client, `tokenMissing`, `tokenInvalid`, `sessionMissing`, `noPermission`,
    /// `sessionInactive`, `sessionExpired`, `domainInvalid`, `sessionNotVerified`, `sessionInvalid`.
    pub async fn userinfo(
        &self,
        client_id: &str,
        secret: &str,
        token: &str,
        request: &UserinfoRequest,
    ) -> Result<Value, Error> {
        let (organization, mut session) = self.session_for_token(client_id, secret, token).await?;
        let now = self.clock.now();
        if session.ended_at.is_some() {
            return Err(Error::new(ErrorCode::SessionInactive));
        }
        let settings = &organization.settings;
        let absolute = settings.max_session_time > 0
            && session.created_at.plus(Duration::from_secs(settings.max_session_time)) <= now;
        let idle = settings.max_inactivity_time > 0
            && session.last_active_at.plus(Duration::from_secs(settings.max_inactivity_time)) <= now;
        if absolute || idle {
            return Err(Error::new(ErrorCode::SessionExpired));
        }
        let origin = request
            .domain
            .as_deref()
            .and_then(|d| Url::parse(d).ok())
            .filter(|url| {
                organization.parsed_whitelist().is_ok_and(|w: Whitelist| w.allows(url, settings.allow_localhost))
            })
            .map(|url| url.origin().ascii_serialization())
            .ok_or_else(|| Error::new(ErrorCode::DomainInvalid))?;
        if !session.verified_domains.contains(&origin) {
            return Err(Error::new(ErrorCode::SessionNotVerified));
        }
        if settings.hijack_protection && hijacked(&mut session, request, settings) {
            self.store.end_login_session(&session.id, now).await?;
            return Err(Error::new(ErrorCode::SessionInvalid).with_internal("session bindings changed"));
        }
        session.last_active_at = now;
        self.store.update_login_session(&session).await?;
        let user = self.store.user(&session.user_id).await?.ok_or_else(|| Error::new(ErrorCode::SessionMissing))?;
        Ok(user_json(&user))
    }

    /// Ends the session a compat token names.
    ///
    /// # Errors
    /// Client and token errors.
    pub async fn logout(&self, client_id: &str, secret: &str, token: &str) -> Result<(), Error> {
        let (_, session) = self.session_for_token(client_id, secret, token).await?;
        self.store.end_login_session(&session.id, self.clock.now()).await?;
        Ok(())
    }

    /// `POST /api/v1/authenticate_direct`: the application asks Portcullis to mail a login link (type
    /// `link`, method `local`: the device that opens the link is logged in). Returns the attempt id and
    /// the message to deliver, or, inside the per-email delay, only the time the next one is allowed.
    ///
    /// # Errors
    /// Client errors, `callbackUrlMissing` / `callbackUrlInvalid`, `stateMissing` / `stateInvalid`,
    /// `missingFields` / `entityInvalid` for the email.
    pub async fn authenticate_direct(
        &self,
        client_id: &str,
        secret: &str,
        email: &str,
        redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<DirectOutcome, Error> {
        let (organization, _) = self.authenticate_client(client_id, secret).await?;
        if !organization.settings.email_login_allowed() {
            return Err(Error::new(ErrorCode::ConnectionMissing)
                .with_message("Logging in by email is not enabled for this application."));
        }
        let whitelist = organization.parsed_whitelist()?;
        let callback =
            redirect::validate_redirect_uri(redirect_uri, &whitelist, organization.settings.allow_localhost)?;
        let state = pkce::check_state(state).map_err(|e| e.with_status(400))?.to_owned();
        let email = normalize_email(email)?;
        let now = self.clock.now();
        // The application asks, not a browser: its attempts have their own delay, apart from the pages'.
        let network = format!("client:{}", organization.id);
        let recent = self.recent_attempts(&organization.id, &email, &network).await?;
        let next = attempt::next_allowed(recent.from_network, recent.last_from_network);
        if let Some(allowed) = next.filter(|allowed| *allowed > now) {
            return Ok(DirectOutcome::Throttled { allowed_date: allowed });
        }
        let flow = LoginFlow {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: organization.id.clone(),
            redirect_uri: callback.to_string(),
            state,
            code_challenge: None,
            face: FlowFace::Direct,
            affirm: false,
            scope: None,
            nonce: None,
            embed: false,
            translations: serde_json::Map::new(),
            binding_hash: String::new(),
            created_at: now,
            expires_at: now.plus(FLOW_LIFETIME),
        };
        self.store.insert_flow(&flow).await?;
        let (attempt, message) =
            self.new_attempt(&flow, &organization, &email, AttemptKind::Link(LinkMethod::Local), network)?;
        self.store.insert_attempt(&attempt).await?;
        let attempt_id = attempt.id;
        Ok(DirectOutcome::Sent { login_attempt_id: attempt_id, message })
    }

    /// Checks a mailed link without using it: opening a link (as mail scanners do) never logs anyone in.
    ///
    /// # Errors
    /// `loginAttemptInvalid` for an unknown link, a code attempt or a used one; `loginAttemptExpired`.
    pub async fn link(&self, attempt_id: &str, token: &str) -> Result<(LoginAttempt, Organization), Error> {
        let attempt = self.mailed_attempt(attempt_id, token).await?;
        if attempt.closed_at.is_some() || attempt.approved_at.is_some() {
            return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login link was already used. Please request a new one."));
        }
        if attempt.created_at.plus(attempt::ATTEMPT_LIFETIME) <= self.clock.now() {
            return Err(Error::new(ErrorCode::LoginAttemptExpired));
        }
        let organization = self.organization(&attempt.organization_id).await?;
        Ok((attempt, organization))
    }

    /// The attempt a mailed link names, after checking its token. Code attempts have no links: their
    /// short code must never be accepted as a link token.
    async fn mailed_attempt(&self, attempt_id: &str, token: &str) -> Result<LoginAttempt, Error> {
        let invalid = || {
            Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login link is not valid. Please request a new one.")
        };
        let attempt = self.store.attempt(attempt_id).await?.ok_or_else(invalid)?;
        let presented = attempt::code_digest(&self.code_key, &attempt.id, token);
        let genuine = verify_slices_are_equal(attempt.code_digest.as_bytes(), presented.as_bytes()).is_ok();
        if !genuine || attempt.kind == AttemptKind::Code {
            return Err(invalid());
        }
        Ok(attempt)
    }

    /// Uses a mailed link after the person clicked. Depending on the attempt and the `choice`, the device
    /// that clicked is logged in, or the browser that started the login is approved (it then logs in on
    /// its next wait). A challenge answered with a wrong number is cancelled.
    ///
    /// # Errors
    /// As [`link`](Self::link); `loginAttemptInvalid` when the link was already used, the number is
    /// wrong or missing, or the choice does not fit the attempt.
    pub async fn confirm_link(&self, attempt_id: &str, token: &str, choice: LinkChoice) -> Result<LinkOutcome, Error> {
        let (attempt, organization) = self.link(attempt_id, token).await?;
        let flow =
            self.store.flow(&attempt.flow_id).await?.ok_or_else(|| Error::new(ErrorCode::LoginAttemptMissing))?;
        let now = self.clock.now();
        let used = || Error::new(ErrorCode::LoginAttemptInvalid).with_message("This login link was already used.");
        let log_in_here = match (attempt.kind, choice) {
            (AttemptKind::Link(LinkMethod::Local), LinkChoice::Default)
            | (AttemptKind::Link(LinkMethod::UserPick), LinkChoice::ThisDevice) => true,
            (AttemptKind::Link(LinkMethod::Remote), LinkChoice::Default)
            | (AttemptKind::Link(LinkMethod::UserPick), LinkChoice::OtherDevice) => false,
            (AttemptKind::Challenge, LinkChoice::Pick(number)) if attempt.challenge == Some(number) => false,
            (AttemptKind::Challenge, LinkChoice::Pick(_)) => {
                // A wrong number means the person did not start this login, or guessed: cancel it.
                self.store.close_attempt(&attempt.id, now).await?;
                let detail = json!({ "attempt": attempt.id });
                self.audit.record(&organization.id, AuditKind::ChallengeMismatch, Some(&attempt.email), detail).await;
                return Err(Error::new(ErrorCode::LoginAttemptInvalid).with_message(
                    "That number is not the one the login page showed, so the login was cancelled for your safety.",
                ));
            }
            _ => {
                return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                    .with_message("This login link is not valid. Please request a new one."));
            }
        };
        if log_in_here {
            if !self.store.close_attempt(&attempt.id, now).await? {
                return Err(used());
            }
            return self.finish(&flow, &organization, &attempt, false).await.map(LinkOutcome::LoggedIn);
        }
        if !self.store.approve_attempt(&attempt.id, now).await? {
            return Err(used());
        }
        Ok(LinkOutcome::Approved { organization: organization.name, email: attempt.email })
    }

    /// Checks an undo link without using it.
    ///
    /// # Errors
    /// `loginAttemptInvalid` for an unknown link.
    pub async fn undo_target(&self, attempt_id: &str, token: &str) -> Result<(LoginAttempt, Organization), Error> {
        let attempt = self.mailed_attempt(attempt_id, token).await?;
        let organization = self.organization(&attempt.organization_id).await?;
        Ok((attempt, organization))
    }

    /// Undoes a mailed login: the attempt can no longer be used and the session it created, if any, ends
    /// (its tokens then get `sessionInactive`). Undoing twice is harmless. Undo has no time limit: "that
    /// was not me" may come late.
    ///
    /// # Errors
    /// `loginAttemptInvalid` for an unknown link; store failures.
    pub async fn undo(&self, attempt_id: &str, token: &str) -> Result<(), Error> {
        let attempt = self.mailed_attempt(attempt_id, token).await?;
        let now = self.clock.now();
        if let Undo::Undone { session_id } = self.store.undo_attempt(&attempt.id, now).await? {
            if let Some(session_id) = &session_id {
                self.store.end_login_session(session_id, now).await?;
            }
            let detail = json!({ "attempt": attempt.id, "sessionId": session_id });
            self.audit.record(&attempt.organization_id, AuditKind::LoginUndone, Some(&attempt.email), detail).await;
        }
        Ok(())
    }

    /// Messages in the outbox, newest first, only those to `to` when given (dev mode).
    ///
    /// # Errors
    /// Store failures.
    pub async fn outbox(&self, to: Option<&str>, limit: usize) -> Result<Vec<OutboxMessage>, Error> {
        Ok(self.store.outbox(to, limit).await?)
    }
}

/// Records the bindings on first use; afterwards reports whether a protected one changed.
fn hijacked(
    session: &mut LoginSession,
    request: &UserinfoRequest,
    settings: &crate::organization::OrganizationSettings,
) -> bool {
    let ip = request.ip.as_deref().filter(|ip| *ip != "0.0.0.0").map(ip_prefix);
    let mut changed = false;
    let mut check =
        |stored: &mut Option<String>, presented: Option<String>, enabled: bool| match (stored.as_ref(), presented) {
            (None, presented) => *stored = presented,
            (Some(old), Some(new)) if enabled && *old != new => changed = true,
            _ => {}
        };
    check(&mut session.ip, ip, settings.hijack_protection_ip);
    check(&mut session.user_agent, request.user_agent.clone(), settings.hijack_protection_user_agent);
    check(&mut session.device_id, request.device_id.clone(), settings.hijack_protection_device_id);
    changed
}

/// The captcha level from an email's attempts (from every network) and an address's email steps this hour,
/// and whether the account is locked out. The address counts one level per allowance used up
/// (`login.captcha_ip_allowance`, 0: off), so a shared office address logs in freely and a sprayer pays; a
/// locked-out account needs the highest level.
fn required_captcha_level(allowance: u32, email_attempts: usize, ip_steps: u32, locked_out: bool) -> u8 {
    if locked_out {
        return captcha::level_for(u32::MAX);
    }
    let from_ip = ip_steps.checked_div(allowance).unwrap_or(0);
    captcha::level_for(u32::try_from(email_attempts).unwrap_or(u32::MAX).max(from_ip))
}

/// The network an email step came from, for the per-email delay: the address's /24 or /56 (empty when the
/// client address is unknown, as for in-process callers).
fn email_network(ip: Option<&str>) -> String {
    ip.map(ip_prefix).unwrap_or_default()
}

/// The network an address belongs to: /24 for IPv4, /56 for IPv6 (`auth-ip` is what the RP saw).
fn ip_prefix(ip: &str) -> String {
    // An IPv4 client of a dual-stack listener arrives as `::ffff:a.b.c.d`: it is an IPv4 /24.
    match ip.trim().parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/56", s[0], s[1], s[2], s[3] & 0xff00)
        }
        Err(_) => ip.trim().to_owned(),
    }
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "gravatar": format!("https://www.gravatar.com/avatar/{}", sha256_hex(user.email.as_bytes())),
        "verified": user.verified,
        "blocked": user.blocked,
        "organizationId": user.organization_id,
        "created": user.created,
        "updated": user.updated,
        "lastLogin": user.last_login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM "), Ok("ada@example.com".to_owned()));
        assert_eq!(normalize_email("").map_err(|e| e.code()), Err(ErrorCode::MissingFields));
        for bad in ["ada", "@example.com", "ada@example", "a b@example.com", "ada@.example.com"] {
            assert_eq!(normalize_email(bad).map_err(|e| e.code()), Err(ErrorCode::EntityInvalid), "{bad}");
        }
    }

    #[test]
    fn ip_bindings_compare_networks() {
        assert_eq!(ip_prefix("203.0.113.7"), ip_prefix("203.0.113.200"));
        assert_ne!(ip_prefix("203.0.113.7"), ip_prefix("203.0.114.7"));
        assert_eq!(ip_prefix("2001:db8:1:2:3::1"), ip_prefix("2001:db8:1:2:ffff::9"));
    }

    #[test]
    fn email_steps_are_keyed_by_network() {
        assert_eq!(email_network(Some("203.0.113.7")), "203.0.113.0/24");
        assert_eq!(email_network(Some("203.0.113.7")), email_network(Some("203.0.113.250")), "one /24");
        assert_ne!(email_network(Some("203.0.113.7")), email_network(Some("198.51.100.7")));
        assert_eq!(email_network(Some("2001:db8:1:2ff::1")), email_network(Some("2001:db8:1:200::9")), "one /56");
        assert_ne!(email_network(Some("2001:db8:1:2ff::1")), email_network(Some("2001:db8:1:300::1")));
        assert_eq!(email_network(None), "", "in-process callers share one key");
        assert_eq!(email_network(Some("::ffff:203.0.113.7")), "203.0.113.0/24", "IPv4 on a dual-stack listener");
    }

    #[test]
    fn a_locked_out_account_needs_the_highest_captcha() {
        assert_eq!(required_captcha_level(10, 0, 0, false), 0);
        assert_eq!(required_captcha_level(10, 1, 0, false), 1, "the email's own attempts");
        assert_eq!(required_captcha_level(10, 0, 25, false), 2, "an address past two allowances");
        assert_eq!(required_captcha_level(0, 0, 25, false), 0, "the per-address escalation off");
        assert_eq!(required_captcha_level(10, 0, 0, true), 3, "locked out: the highest level at once");
    }

    #[test]
    fn hijack_check_records_first_then_compares() {
        let settings = crate::organization::OrganizationSettings { hijack_protection: true, ..Default::default() };
        let mut session = LoginSession {
            id: "s".to_owned(),
            organization_id: "o".to_owned(),
            user_id: "u".to_owned(),
            created_at: Timestamp::from_unix_millis(0),
            last_active_at: Timestamp::from_unix_millis(0),
            ended_at: None,
            verified_domains: Vec::new(),
            ip: None,
            user_agent: None,
            device_id: None,
            scope: None,
            nonce: None,
        };
        let first = UserinfoRequest {
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("UA".to_owned()),
            ..Default::default()
        };
        assert!(!hijacked(&mut session, &first, &settings));
        let same_network = UserinfoRequest {
            ip: Some("203.0.113.9".to_owned()),
            user_agent: Some("UA".to_owned()),
            ..Default::default()
        };
        assert!(!hijacked(&mut session, &same_network, &settings));
        let skipped =
            UserinfoRequest { ip: Some("0.0.0.0".to_owned()), user_agent: Some("UA".to_owned()), ..Default::default() };
        assert!(!hijacked(&mut session, &skipped, &settings), "0.0.0.0 skips the IP check");
        let moved = UserinfoRequest {
            ip: Some("198.51.100.1".to_owned()),
            user_agent: Some("UA".to_owned()),
            ..Default::default()
        };
        assert!(hijacked(&mut session, &moved, &settings));
    }
}
