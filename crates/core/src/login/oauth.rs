//! The standard OAuth 2.1 / OpenID Connect face's token logic: strict token requests, JWS access and ID
//! tokens from the key ring, and refresh tokens that rotate with theft detection (the session layer's
//! rules, keyed for this purpose only).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Validation;
use serde_json::{Map, Value, json};

use super::model::{FlowFace, LoginSession, Redemption, User};
use super::pkce::{self, Face};
use super::service::{LoginService, TokenRequest};
use crate::clock::Clock;
use crate::keys::{KeyService, SigningAlgorithm, SigningKey};
use crate::organization::{ClientType, Organization};
use crate::session::{RefreshFailure, SessionService, VerificationKeys as _, sha256_hex};
use crate::store::Store;
use crate::{Error, ErrorCode};

/// Lifetime of OAuth access and ID tokens.
pub const OAUTH_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The standard face's token response.
#[derive(Debug, Clone)]
pub struct StandardTokens {
    /// JWS access token (RFC 9068 claims).
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: u64,
    /// Rotating refresh token.
    pub refresh_token: String,
    /// ID token, when `openid` was granted.
    pub id_token: Option<String>,
    /// Granted scopes.
    pub scope: Option<String>,
}

/// The standard face.
#[derive(Debug)]
pub struct OAuthService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyService>,
    id_keys: Arc<KeyService>,
    login: Arc<LoginService>,
    refresh: SessionService,
}

fn invalid_grant(message: &str) -> Error {
    Error::new(ErrorCode::TokenInvalid).with_status(400).with_message(message.to_owned())
}

fn invalid_client() -> Error {
    Error::new(ErrorCode::OrganizationIdMissing).with_status(401).with_message("Client authentication failed.")
}

impl OAuthService {
    /// The face over the login service; `refresh` is a session service keyed for OAuth refresh tokens.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<KeyService>,
        id_keys: Arc<KeyService>,
        login: Arc<LoginService>,
        refresh: SessionService,
    ) -> Self {
        Self { store, clock, keys, id_keys, login, refresh }
    }

    /// The discovery document (OIDC Discovery 1.0 and RFC 8414).
    #[must_use]
    pub fn discovery(&self) -> Value {
        let issuer = self.login.issuer();
        let alg = self.id_keys.policy().algorithm.as_str();
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
            "token_endpoint": format!("{issuer}/oauth2/token"),
            "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
            "scopes_supported": ["openid", "email", "offline_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// Authenticates the client: a secret (Basic or body), or none only for a client configured as public
    /// (bound by PKCE); a confidential client's `none` is `invalid_client` (RFC 9700 §2.5).
    async fn client(&self, request: &TokenRequest) -> Result<(Organization, bool), Error> {
        let client_id = request.client_id.as_deref().filter(|c| !c.is_empty()).ok_or_else(invalid_client)?;
        match request.client_secret.as_deref() {
            Some(secret) => {
                let (organization, _) =
                    self.login.authenticate_client(client_id, secret).await.map_err(|_| invalid_client())?;
                Ok((organization, true))
            }
            None => {
                let organization = self.store.organization(client_id).await?.ok_or_else(invalid_client)?;
                if organization.settings.client_type == ClientType::Confidential {
                    return Err(invalid_client().with_internal("a confidential client sent no client secret"));
                }
                Ok((organization, false))
            }
        }
    }

    /// `POST /oauth2/token`: `grant_type` is required.
    ///
    /// # Errors
    /// `missingFields` (`invalid_request`), `organizationIdMissing` (401, `invalid_client`), `tokenInvalid`
    /// (400, `invalid_grant`), `callbackUrlInvalid`, `codeChallengeInvalid`, `entityInvalid`
    /// (`unsupported_grant_type`).
    pub async fn token(&self, request: &TokenRequest) -> Result<StandardTokens, Error> {
        if let Some(name) = &request.repeated_parameter {
            return Err(super::service::repeated(name));
        }
        match request.grant_type.as_deref() {
            None | Some("") => {
                Err(Error::new(ErrorCode::MissingFields).with_message("The field `grant_type` is required."))
            }
            Some("authorization_code") => self.exchange(request).await,
            Some("refresh_token") => self.refresh(request).await,
            Some(_) => Err(Error::new(ErrorCode::EntityInvalid)
                .with_oauth_error("unsupported_grant_type")
                .with_message("Only authorization_code and refresh_token are supported.")),
        }
    }

    async fn exchange(&self, request: &TokenRequest) -> Result<StandardTokens, Error> {
        let (organization, confidential) = self.client(request).await?;
        let code = request
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::new(ErrorCode::MissingFields).with_message("The field `code` is required."))?;
        let redirect_uri = request.redirect_uri.as_deref().filter(|r| !r.is_empty()).ok_or_else(|| {
            Error::new(ErrorCode::MissingFields).with_message("The field `redirect_uri` is required.")
        })?;
        let now = self.clock.now();
        let granted = match self.store.redeem_code(&sha256_hex(code.as_bytes()), now).await? {
            Redemption::Unknown => return Err(invalid_grant("The authorization code is invalid.")),
            Redemption::Replayed(code) => {
                // A reused code revokes what it issued: the login session, which every token refers to.
                self.store.end_login_session(&code.session_id, now).await?;
                return Err(invalid_grant("The authorization code was already used.")
                    .with_internal(format!("code replay; login session {} ended", code.session_id)));
            }
            Redemption::Redeemed(code) => code,
        };
        if granted.expires_at <= now || granted.organization_id != organization.id || granted.face != FlowFace::Standard
        {
            return Err(invalid_grant("The authorization code is invalid."));
        }
        // Exact string comparison (RFC 9700 §2.1).
        if granted.redirect_uri != redirect_uri {
            return Err(Error::new(ErrorCode::CallbackUrlInvalid)
                .with_message("The redirect_uri does not match the authorization request."));
        }
        if !confidential && granted.code_challenge.is_none() {
            return Err(invalid_client());
        }
        pkce::check_verifier(granted.code_challenge.as_deref(), request.code_verifier.as_deref(), Face::Strict)?;
        let session = self
            .store
            .login_session(&granted.session_id)
            .await?
            .ok_or_else(|| invalid_grant("The session is gone."))?;
        let user = self.store.user(&session.user_id).await?.ok_or_else(|| invalid_grant("The user is gone."))?;
        let mut payload = Map::new();
        payload.insert("sid".to_owned(), json!(session.id));
        let refresh = self.refresh.create(&organization.id, &user.id, None, payload).await?;
        let refresh_token = refresh
            .refresh_token
            .ok_or_else(|| Error::new(ErrorCode::GenericError).with_internal("no refresh token minted"))?;
        let id_signer = self.id_keys.current_signer().await?;
        self.issue(&organization, &session, &user, refresh_token, &id_signer)
    }

    async fn refresh(&self, request: &TokenRequest) -> Result<StandardTokens, Error> {
        let (organization, _) = self.client(request).await?;
        let token = request.refresh_token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            Error::new(ErrorCode::MissingFields).with_message("The field `refresh_token` is required.")
        })?;
        let rotated = match self.refresh.refresh(token, Some(&organization.id)).await {
            Ok(rotated) => rotated,
            Err(RefreshFailure::Failed(e)) => return Err(e),
            Err(RefreshFailure::TheftDetected { handle, kind, .. }) => {
                // The whole grant ends, not only its refresh family: the access tokens it issued stop at
                // once (userinfo and the console check the login session).
                let family = self.store.session(&handle).await?;
                if let Some(sid) = family.as_ref().and_then(|f| f.payload.get("sid")).and_then(Value::as_str) {
                    self.store.end_login_session(sid, self.clock.now()).await?;
                }
                return Err(invalid_grant("The refresh token was already used; the session is revoked.")
                    .with_internal(format!("refresh token reuse ({kind:?}) on {handle}; login session ended")));
            }
            Err(RefreshFailure::Unauthorised(reason)) => {
                return Err(invalid_grant("The refresh token is invalid.").with_internal(format!("{reason:?}")));
            }
        };
        let session_id = rotated.session.payload.get("sid").and_then(Value::as_str).unwrap_or_default().to_owned();
        let session = self
            .store
            .login_session(&session_id)
            .await?
            .filter(|s| s.ended_at.is_none())
            .ok_or_else(|| invalid_grant("The login session has ended."))?;
        let user = self.store.user(&session.user_id).await?.ok_or_else(|| invalid_grant("The user is gone."))?;
        let refresh_token = rotated
            .refresh_token
            .ok_or_else(|| Error::new(ErrorCode::GenericError).with_internal("no refresh token minted"))?;
        let id_signer = self.id_keys.current_signer().await?;
        self.issue(&organization, &session, &user, refresh_token, &id_signer)
    }

    fn issue(
        &self,
        organization: &Organization,
        session: &LoginSession,
        user: &User,
        refresh_token: String,
        id_signer: &SigningKey,
    ) -> Result<StandardTokens, Error> {
        let now = self.clock.now();
        let exp = now.plus(OAUTH_TOKEN_LIFETIME).unix_seconds();
        let issuer = self.login.issuer();
        let signer = self.keys.signer()?;
        let jti = uuid::Uuid::new_v4().to_string();
        let access = json!({
            "iss": issuer, "sub": user.id, "aud": organization.id, "client_id": organization.id,
            "exp": exp, "iat": now.unix_seconds(), "jti": jti, "sid": session.id,
            "scope": session.scope.clone().unwrap_or_default(),
        });
        let scopes: Vec<&str> = session.scope.as_deref().unwrap_or_default().split_whitespace().collect();
        let id_token = if scopes.contains(&"openid") {
            let mut claims = json!({
                "iss": issuer, "sub": user.id, "aud": organization.id, "exp": exp, "iat": now.unix_seconds(),
                "auth_time": session.created_at.unix_seconds(), "email": user.email, "email_verified": user.verified,
            });
            if let Some(nonce) = &session.nonce {
                claims["nonce"] = json!(nonce);
            }
            Some(id_signer.sign_jwt(&claims)?)
        } else {
            None
        };
        Ok(StandardTokens {
            access_token: signer.sign_jwt(&access)?,
            expires_in: OAUTH_TOKEN_LIFETIME.as_secs(),
            refresh_token,
            id_token,
            scope: session.scope.clone(),
        })
    }

    /// `GET /oauth2/userinfo` with a Bearer access token.
    ///
    /// # Errors
    /// `tokenMissing`, `tokenInvalid` (bad signature, expired, not an OAuth access token), `sessionInactive`.
    pub async fn userinfo(&self, bearer: Option<&str>) -> Result<Value, Error> {
        let (_, user) = self.access(bearer).await?;
        Ok(json!({
            "sub": user.id,
            "email": user.email,
            "email_verified": user.verified,
            "updated_at": user.updated.unix_seconds(),
        }))
    }

    /// The live login session and user behind one of this server's OAuth access tokens.
    ///
    /// # Errors
    /// `tokenMissing`, `tokenInvalid` (bad signature, expired, not an OAuth access token), `sessionInactive`.
    pub async fn access(&self, bearer: Option<&str>) -> Result<(LoginSession, User), Error> {
        let token = bearer.filter(|t| !t.is_empty()).ok_or_else(|| Error::new(ErrorCode::TokenMissing))?;
        let invalid = || Error::new(ErrorCode::TokenInvalid);
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let key = header.kid.as_deref().and_then(|kid| self.keys.verification_key(kid)).ok_or_else(invalid)?;
        if header.alg != key.algorithm {
            return Err(invalid());
        }
        let mut validation = Validation::new(key.algorithm);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|_| invalid())?.claims;
        let now = self.clock.now().unix_seconds();
        let fresh = claims["exp"].as_i64().is_some_and(|exp| exp > now);
        let ours = claims["iss"].as_str() == Some(self.login.issuer()) && claims["client_id"].is_string();
        if !fresh || !ours {
            return Err(invalid());
        }
        let session_id = claims["sid"].as_str().ok_or_else(invalid)?;
        let session = self.store.login_session(session_id).await?.ok_or_else(invalid)?;
        if session.ended_at.is_some() {
            return Err(Error::new(ErrorCode::SessionInactive));
        }
        let user = self.store.user(&session.user_id).await?.ok_or_else(invalid)?;
        Ok((session, user))
    }

    /// The ID-token algorithm in use.
    #[must_use]
    pub fn id_token_algorithm(&self) -> SigningAlgorithm {
        self.id_keys.policy().algorithm
    }
}
