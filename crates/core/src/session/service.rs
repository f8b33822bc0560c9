//! The session operations every face uses: create, refresh, verify, revoke, list, claims.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::access_token::{
    AccessTokenClaims, AccessTokenError, Audience, REGISTERED_PROTECTED_CLAIMS, SUPERTOKENS_PROTECTED_CLAIMS,
    verify_access_token, verify_signature,
};
use super::refresh_token::RefreshTokenCodec;
use super::rotation::{RefreshOutcome, RefreshRequest, SessionRecord, TheftKind, UnauthorisedReason};
use crate::abuse::{AuditKind, AuditLog};
use crate::clock::{Clock, Timestamp};
use crate::keys::{KeyService, MasterKey};
use crate::store::Store;
use crate::{Error, ErrorCode};

/// Longest user id accepted.
pub const MAX_USER_ID_LEN: usize = 256;

/// Session lifetimes and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Access-token lifetime.
    pub access_token_validity: Duration,
    /// Refresh-token lifetime, reset at every rotation.
    pub refresh_token_validity: Duration,
    /// How long the token rotated last may still be used (parallel tabs, retried POSTs).
    pub refresh_grace: Duration,
    /// `iss` of access tokens.
    pub issuer: String,
    /// Largest custom-claims payload, in bytes of JSON (cookies are limited to about 4 KB).
    pub max_payload_bytes: usize,
}

/// A session's tokens, as handed to the client.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The session.
    pub session: SessionRecord,
    /// The signed access token.
    pub access_token: String,
    /// Its claims.
    pub claims: AccessTokenClaims,
    /// The refresh token (absent when only the access token was re-minted).
    pub refresh_token: Option<String>,
    /// The `front-token` value.
    pub front_token: String,
}

/// Why a refresh failed.
#[derive(Debug, Clone)]
pub enum RefreshFailure {
    /// No usable session: log in again. Tokens must be cleared.
    Unauthorised(UnauthorisedReason),
    /// A rotated-out token was reused; the session is revoked. Tokens must be cleared.
    TheftDetected {
        /// The revoked session.
        handle: String,
        /// Its user.
        user_id: String,
        /// How the token relates to the family.
        kind: TheftKind,
    },
    /// The store or signer failed; nothing is to be cleared.
    Failed(Error),
}

impl From<RefreshFailure> for Error {
    fn from(failure: RefreshFailure) -> Self {
        match failure {
            RefreshFailure::Unauthorised(reason) => {
                Self::new(ErrorCode::Unauthorised).with_internal(format!("refresh refused: {reason:?}"))
            }
            RefreshFailure::TheftDetected { handle, kind, .. } => Self::new(ErrorCode::TokenTheftDetected)
                .with_internal(format!("refresh token reuse ({kind:?}) on session {handle}; session revoked")),
            RefreshFailure::Failed(error) => error,
        }
    }
}

/// How access tokens are bound to their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenBinding {
    /// `aud` names the organization and `iss` is the configured issuer (Portcullis's own faces).
    Audience,
    /// The organization's own key ring signs them (a SuperTokens app): no `aud`, `iss` from the payload.
    OwnKeys,
}

/// Session operations over a store, the key ring and a clock.
#[derive(Debug)]
pub struct SessionService {
    store: Arc<dyn Store>,
    keys: Arc<KeyService>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    codec: RefreshTokenCodec,
    binding: TokenBinding,
}

impl SessionService {
    /// A service whose refresh tokens are authenticated with a key derived from `master`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyService>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        master: &MasterKey,
    ) -> Self {
        Self::for_purpose(store, keys, clock, config, master, "session")
    }

    /// A service whose refresh tokens are keyed for one purpose, so tokens of one purpose (OAuth clients'
    /// refresh tokens) never authenticate as another's (browser sessions).
    #[must_use]
    pub fn for_purpose(
        store: Arc<dyn Store>,
        keys: Arc<KeyService>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        master: &MasterKey,
        purpose: &str,
    ) -> Self {
        let codec = RefreshTokenCodec::new(&master.derive(&format!("{purpose} refresh tokens")));
        Self { store, keys, clock, config, codec, binding: TokenBinding::Audience }
    }

    /// The sessions of one SuperTokens app (an organization behind the core face): access tokens signed by
    /// `app_keys`, the organization's own ring, in the shape SuperTokens' backend SDKs verify; refresh
    /// tokens keyed for the core face only, so they never authenticate at Portcullis's own endpoints.
    #[must_use]
    pub fn for_supertokens_app(
        store: Arc<dyn Store>,
        app_keys: Arc<KeyService>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        master: &MasterKey,
    ) -> Self {
        let mut service = Self::for_purpose(store, app_keys, clock, config, master, "supertokens core");
        service.binding = TokenBinding::OwnKeys;
        service
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The key ring that signs this service's access tokens.
    #[must_use]
    pub fn keys(&self) -> &KeyService {
        &self.keys
    }

    /// Creates a session for a user.
    ///
    /// # Errors
    /// `missingFields` / `entityInvalid` for a bad user id or payload; store and signing failures.
    pub async fn create(
        &self,
        organization_id: &str,
        user_id: &str,
        tenant_id: Option<&str>,
        payload: Map<String, Value>,
    ) -> Result<SessionTokens, Error> {
        self.create_with_data(organization_id, user_id, tenant_id, payload, Map::new()).await
    }

    /// Creates a session that also keeps server-side `data`, never put in a token.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn create_with_data(
        &self,
        organization_id: &str,
        user_id: &str,
        tenant_id: Option<&str>,
        payload: Map<String, Value>,
        data: Map<String, Value>,
    ) -> Result<SessionTokens, Error> {
        if user_id.trim().is_empty() {
            return Err(Error::new(ErrorCode::MissingFields).with_message("The field `userId` is required."));
        }
        if user_id.len() > MAX_USER_ID_LEN || user_id.chars().any(char::is_control) {
            return Err(Error::new(ErrorCode::EntityInvalid).with_message(format!(
                "`userId` must be at most {MAX_USER_ID_LEN} bytes without control characters."
            )));
        }
        self.check_payload(&payload)?;
        let now = self.clock.now();
        let handle = uuid::Uuid::new_v4().to_string();
        let minted = self.codec.mint(&handle, None)?;
        let session = SessionRecord {
            handle,
            organization_id: organization_id.to_owned(),
            user_id: user_id.to_owned(),
            tenant_id: tenant_id.unwrap_or("public").to_owned(),
            payload,
            current_hashes: vec![minted.hash2],
            previous_hash: None,
            rotated_at: None,
            created_at: now,
            expires_at: now.plus(self.config.refresh_token_validity),
            revoked_at: None,
            data,
        };
        self.store.insert_session(&session).await?;
        let exp = now.plus(self.config.access_token_validity).unix_seconds();
        self.tokens(session, &minted.hash1, Some(minted.token), now, exp)
    }

    /// Rotates a refresh token (see [`super::apply_refresh`] for the rules). `organization_id` limits the
    /// refresh to that organization's sessions (the server-to-server API); `None` accepts any (the
    /// server's own frontend endpoint).
    ///
    /// # Errors
    /// A [`RefreshFailure`].
    pub async fn refresh(
        &self,
        refresh_token: &str,
        organization_id: Option<&str>,
    ) -> Result<SessionTokens, RefreshFailure> {
        let presented =
            self.codec.authenticate(refresh_token).ok_or(RefreshFailure::Unauthorised(UnauthorisedReason::Missing))?;
        let minted =
            self.codec.mint(&presented.handle, Some(&presented.hash1)).map_err(|e| RefreshFailure::Failed(e.into()))?;
        let now = self.clock.now();
        let request = RefreshRequest {
            organization_id: organization_id.map(str::to_owned),
            presented_hash2: presented.hash2,
            presented_parent_hash1: presented.parent_hash1,
            new_hash2: minted.hash2,
            now,
            grace_millis: i64::try_from(self.config.refresh_grace.as_millis()).unwrap_or(i64::MAX),
            new_expires_at: now.plus(self.config.refresh_token_validity),
        };
        let outcome = self
            .store
            .refresh_session(&presented.handle, &request)
            .await
            .map_err(|e| RefreshFailure::Failed(e.into()))?
            .ok_or(RefreshFailure::Unauthorised(UnauthorisedReason::Missing))?;
        match outcome {
            RefreshOutcome::Rotated(session) | RefreshOutcome::RotatedInGrace(session) => {
                crate::activity::session_refreshed();
                let exp = now.plus(self.config.access_token_validity).unix_seconds();
                self.tokens(session, &minted.hash1, Some(minted.token), now, exp).map_err(RefreshFailure::Failed)
            }
            RefreshOutcome::TheftDetected { session, kind } => {
                let detail =
                    serde_json::json!({ "sessionHandle": session.handle, "classification": format!("{kind:?}") });
                AuditLog::new(Arc::clone(&self.store), Arc::clone(&self.clock))
                    .record(&session.organization_id, AuditKind::TheftDetected, Some(&session.user_id), detail)
                    .await;
                Err(RefreshFailure::TheftDetected { handle: session.handle, user_id: session.user_id, kind })
            }
            RefreshOutcome::Unauthorised(reason) => Err(RefreshFailure::Unauthorised(reason)),
        }
    }

    /// Verifies an access token locally (signature, key, expiry, issuer, organization). No store access.
    ///
    /// # Errors
    /// An [`AccessTokenError`]: malformed or another organization's (→ unauthorised), or try refresh.
    pub fn verify(&self, access_token: &str, audience: Audience<'_>) -> Result<AccessTokenClaims, AccessTokenError> {
        let issuer = (self.binding == TokenBinding::Audience).then_some(self.config.issuer.as_str());
        verify_access_token(access_token, self.keys.as_ref(), self.clock.now(), issuer, audience)
    }

    /// The live session (not revoked, not expired) with this handle in the organization.
    ///
    /// # Errors
    /// `unauthorised` when there is none; store failures.
    pub async fn live_session(&self, organization_id: &str, handle: &str) -> Result<SessionRecord, Error> {
        let unauthorised =
            || Error::new(ErrorCode::Unauthorised).with_internal(format!("session {handle} is not live"));
        let session = self.store.session(handle).await?.ok_or_else(unauthorised)?;
        if session.organization_id != organization_id || !session.is_active(self.clock.now()) {
            return Err(unauthorised());
        }
        Ok(session)
    }

    /// Mints a new access token for a live session from its stored claims (a fresh lifetime), bound to the
    /// refresh token the verified `claims` were issued with.
    ///
    /// # Errors
    /// Signing failures.
    pub fn remint(&self, session: SessionRecord, claims: &AccessTokenClaims) -> Result<SessionTokens, Error> {
        let now = self.clock.now();
        let exp = now.plus(self.config.access_token_validity).unix_seconds();
        self.tokens(session, &claims.refresh_token_hash1, None, now, exp)
    }

    /// Replaces the claims of a live session with `payload` (when given) and re-mints the access token with
    /// the same expiry, unless it has expired (then only the session is returned). The token's signature is
    /// checked, its expiry is not.
    ///
    /// # Errors
    /// `unauthorised` for a token that does not verify or a session that is not live; `entityInvalid` for
    /// protected names or an oversize payload.
    pub async fn regenerate_with_payload(
        &self,
        organization_id: &str,
        access_token: &str,
        payload: Option<Map<String, Value>>,
    ) -> Result<(SessionRecord, Option<SessionTokens>), Error> {
        let claims = verify_signature(access_token, self.keys.as_ref()).map_err(|e| {
            Error::new(ErrorCode::Unauthorised).with_internal(format!("regenerate with an unverifiable token: {e:?}"))
        })?;
        let mut session = self.live_session(organization_id, &claims.session_handle).await?;
        if let Some(payload) = payload {
            session = self.replace_payload(organization_id, &session.handle, payload).await?;
        }
        let now = self.clock.now();
        if claims.exp <= now.unix_seconds() {
            return Ok((session, None));
        }
        let tokens = self.tokens(session.clone(), &claims.refresh_token_hash1, None, now, claims.exp)?;
        Ok((session, Some(tokens)))
    }

    /// Replaces the claims of a live session.
    ///
    /// # Errors
    /// `unauthorised` for a session that is not live; `entityInvalid` for protected names or an oversize
    /// payload.
    pub async fn replace_payload(
        &self,
        organization_id: &str,
        handle: &str,
        payload: Map<String, Value>,
    ) -> Result<SessionRecord, Error> {
        let mut session = self.live_session(organization_id, handle).await?;
        self.check_payload(&payload)?;
        if !self.store.update_session_payload(organization_id, handle, &payload).await? {
            return Err(Error::new(ErrorCode::Unauthorised).with_internal(format!("session {handle} vanished")));
        }
        session.payload = payload;
        Ok(session)
    }

    /// Replaces the server-side data of a live session.
    ///
    /// # Errors
    /// `unauthorised` for a session that is not live; `entityInvalid` for data past the payload limit.
    pub async fn replace_data(
        &self,
        organization_id: &str,
        handle: &str,
        data: Map<String, Value>,
    ) -> Result<(), Error> {
        self.live_session(organization_id, handle).await?;
        if !self.store.update_session_data(organization_id, handle, &data).await? {
            return Err(Error::new(ErrorCode::Unauthorised).with_internal(format!("session {handle} vanished")));
        }
        Ok(())
    }

    /// Re-mints the access token of a live session with its current claims, keeping its expiry and
    /// refresh-token binding.
    ///
    /// # Errors
    /// `tryRefreshToken` / `unauthorised` for an unusable token or session.
    pub async fn regenerate(&self, organization_id: &str, access_token: &str) -> Result<SessionTokens, Error> {
        let claims = self.verify(access_token, Audience::Organization(organization_id)).map_err(access_token_error)?;
        let session = self.live_session(organization_id, &claims.session_handle).await?;
        self.tokens(session, &claims.refresh_token_hash1, None, self.clock.now(), claims.exp)
    }

    /// Merges claims into a session's payload (a `null` value removes the claim). Tokens minted from now
    /// on carry them; call [`regenerate`](Self::regenerate) to reissue the current one.
    ///
    /// # Errors
    /// `entityMissing` for an unknown session, `entityInvalid` for protected names or an oversize payload.
    pub async fn merge_claims(
        &self,
        organization_id: &str,
        handle: &str,
        updates: Map<String, Value>,
    ) -> Result<SessionRecord, Error> {
        let mut session = self.live_session(organization_id, handle).await.map_err(|_| {
            Error::new(ErrorCode::EntityMissing).with_message("There is no active session with this handle.")
        })?;
        for (key, value) in updates {
            if value.is_null() {
                session.payload.remove(&key);
            } else {
                session.payload.insert(key, value);
            }
        }
        self.check_payload(&session.payload)?;
        if !self.store.update_session_payload(organization_id, handle, &session.payload).await? {
            return Err(Error::new(ErrorCode::EntityMissing).with_message("There is no session with this handle."));
        }
        Ok(session)
    }

    /// Revokes one session.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke(&self, organization_id: &str, handle: &str) -> Result<bool, Error> {
        Ok(self.store.revoke_session(organization_id, handle, self.clock.now()).await?)
    }

    /// Revokes the session an access token belongs to (sign-out), whatever its organization.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_own(&self, claims: &AccessTokenClaims) -> Result<bool, Error> {
        let Some(session) = self.store.session(&claims.session_handle).await? else {
            return Ok(false);
        };
        self.revoke(&session.organization_id, &session.handle).await
    }

    /// Of several refresh tokens (duplicate cookies from two domains), the first one that would rotate
    /// now: current, or the previous one inside the grace window. Reads only: a stale candidate must not
    /// count as theft.
    ///
    /// # Errors
    /// Store failures.
    pub async fn usable_candidate<'a>(&self, candidates: &[&'a str]) -> Result<Option<&'a str>, Error> {
        let now = self.clock.now();
        let grace = i64::try_from(self.config.refresh_grace.as_millis()).unwrap_or(i64::MAX);
        for candidate in candidates {
            let Some(presented) = self.codec.authenticate(candidate) else {
                continue;
            };
            let Some(session) = self.store.session(&presented.handle).await? else {
                continue;
            };
            let in_grace = grace > 0
                && session.previous_hash.as_deref() == Some(presented.hash2.as_str())
                && session.rotated_at.is_some_and(|at| now.unix_millis() <= at.unix_millis().saturating_add(grace));
            if session.is_active(now) && (session.current_hashes.contains(&presented.hash2) || in_grace) {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// Revokes every session of a user.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_user(&self, organization_id: &str, user_id: &str) -> Result<u64, Error> {
        Ok(self.store.revoke_user_sessions(organization_id, user_id, self.clock.now()).await?)
    }

    /// The user's sessions that can still be refreshed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn active_sessions(&self, organization_id: &str, user_id: &str) -> Result<Vec<SessionRecord>, Error> {
        self.active_sessions_in(organization_id, user_id, None).await
    }

    /// The user's sessions that can still be refreshed, in one tenant or (`None`) in all.
    ///
    /// # Errors
    /// Store failures.
    pub async fn active_sessions_in(
        &self,
        organization_id: &str,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<SessionRecord>, Error> {
        let now = self.clock.now();
        let mut sessions = self.store.user_sessions(organization_id, user_id).await?;
        sessions.retain(|s| s.is_active(now) && tenant_id.is_none_or(|t| s.tenant_id == t));
        Ok(sessions)
    }

    /// Revokes each of the organization's sessions named; returns the handles it revoked (unknown, foreign
    /// and already revoked ones are left out).
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_each(&self, organization_id: &str, handles: &[&str]) -> Result<Vec<String>, Error> {
        let mut revoked = Vec::new();
        for &handle in handles {
            if self.revoke(organization_id, handle).await? {
                revoked.push(handle.to_owned());
            }
        }
        Ok(revoked)
    }

    /// Sessions revoked since a time, for deny-lists.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoked_since(
        &self,
        organization_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, Error> {
        Ok(self.store.revoked_since(organization_id, since).await?)
    }

    fn check_payload(&self, payload: &Map<String, Value>) -> Result<(), Error> {
        let protected = |name: &str| {
            SUPERTOKENS_PROTECTED_CLAIMS.contains(&name)
                || (self.binding == TokenBinding::Audience && REGISTERED_PROTECTED_CLAIMS.contains(&name))
        };
        if let Some(name) = payload.keys().find(|k| protected(k)) {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message(format!("The claim name `{name}` is reserved by Portcullis.")));
        }
        let size = serde_json::to_vec(payload).map_or(usize::MAX, |v| v.len());
        if size > self.config.max_payload_bytes {
            return Err(Error::new(ErrorCode::EntityInvalid).with_message(format!(
                "The claims take {size} bytes; at most {} fit in a session cookie.",
                self.config.max_payload_bytes
            )));
        }
        Ok(())
    }

    fn tokens(
        &self,
        session: SessionRecord,
        refresh_hash1: &str,
        refresh_token: Option<String>,
        now: Timestamp,
        exp: i64,
    ) -> Result<SessionTokens, Error> {
        let claims = AccessTokenClaims {
            sub: session.user_id.clone(),
            exp,
            iat: now.unix_seconds(),
            session_handle: session.handle.clone(),
            refresh_token_hash1: refresh_hash1.to_owned(),
            parent_refresh_token_hash1: None,
            anti_csrf_token: None,
            tenant_id: session.tenant_id.clone(),
            rsub: session.user_id.clone(),
            iss: (self.binding == TokenBinding::Audience).then(|| self.config.issuer.clone()),
            aud: (self.binding == TokenBinding::Audience).then(|| session.organization_id.clone()),
            stt: None,
            custom: session.payload.clone(),
        };
        let access_token = self.keys.signer()?.sign_jwt(&claims)?;
        let front_token = claims.front_token();
        Ok(SessionTokens { session, access_token, claims, refresh_token, front_token })
    }
}

/// The catalog error for a refused access token.
#[must_use]
pub fn access_token_error(error: AccessTokenError) -> Error {
    match error {
        AccessTokenError::Malformed => Error::new(ErrorCode::Unauthorised).with_internal("access token is not a JWT"),
        AccessTokenError::OtherOrganization => Error::new(ErrorCode::Unauthorised)
            .with_message("The access token belongs to another organization.")
            .with_internal("access token audience is another organization"),
        AccessTokenError::TryRefresh(reason) => {
            Error::new(ErrorCode::TryRefreshToken).with_internal(format!("access token refused: {reason:?}"))
        }
    }
}
