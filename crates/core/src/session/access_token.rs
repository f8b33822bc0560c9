//! Access tokens: signed JWTs with the SuperTokens v5 claim names, verified locally against the key ring
//! or a JWKS, with no store access.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::Timestamp;

/// Claim names SuperTokens' core owns, and `stt`, which its SDKs strip: no session payload may set them.
pub const SUPERTOKENS_PROTECTED_CLAIMS: &[&str] = &[
    "sub",
    "exp",
    "iat",
    "sessionHandle",
    "refreshTokenHash1",
    "parentRefreshTokenHash1",
    "antiCsrfToken",
    "tId",
    "rsub",
    "stt",
];

/// Registered claims Portcullis's own tokens also reserve (`iss` and `aud` bind them to the server and the
/// organization); a SuperTokens app's payload carries its own `iss`.
pub const REGISTERED_PROTECTED_CLAIMS: &[&str] = &["nbf", "aud", "jti", "iss"];

/// Longest access token considered at all (a cookie cannot be much larger).
pub const MAX_ACCESS_TOKEN_LEN: usize = 8 * 1024;

/// The claims of a session access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessTokenClaims {
    /// User id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// Session handle.
    #[serde(rename = "sessionHandle")]
    pub session_handle: String,
    /// H1 of the refresh token it was issued with.
    #[serde(rename = "refreshTokenHash1")]
    pub refresh_token_hash1: String,
    /// Always `null`: Portcullis rotates at refresh (no lazy promotion).
    #[serde(rename = "parentRefreshTokenHash1")]
    pub parent_refresh_token_hash1: Option<String>,
    /// Anti-CSRF token (`null` unless the VIA_TOKEN mode is used).
    #[serde(rename = "antiCsrfToken")]
    pub anti_csrf_token: Option<String>,
    /// Tenant.
    #[serde(rename = "tId")]
    pub tenant_id: String,
    /// Recipe user id (= `sub`).
    pub rsub: String,
    /// Issuer: the configured one for Portcullis's own faces; for a SuperTokens app's token, what its
    /// backend SDK put in the payload (it always adds its `apiDomain` + `apiBasePath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The organization the session belongs to (RFC 9068 §2.2 `aud`): every verifier checks it, so a
    /// token minted through one organization's API key is refused by every other organization. Absent
    /// only in tokens minted before audiences existed, which verify as "try refresh".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Token type; absent or 0 for session tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt: Option<i64>,
    /// Custom claims (roles, email verification, …).
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl AccessTokenClaims {
    /// The `front-token` header value: padded standard base64 of `{"uid","ate","up"}`.
    #[must_use]
    pub fn front_token(&self) -> String {
        let up = serde_json::to_value(self).unwrap_or(Value::Null);
        STANDARD.encode(json!({ "uid": self.sub, "ate": self.exp.saturating_mul(1000), "up": up }).to_string())
    }

    /// The custom claims as the validators read them: the whole payload.
    #[must_use]
    pub fn payload(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// A key that verifies access tokens, with the one algorithm it accepts.
#[derive(Clone)]
pub struct VerificationKey {
    /// The key.
    pub key: DecodingKey,
    /// Its algorithm; a token's `alg` header must name exactly this.
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Where verification keys come from: the server's key ring, or the SDK's JWKS cache.
pub trait VerificationKeys {
    /// The published key with this id.
    fn verification_key(&self, kid: &str) -> Option<VerificationKey>;
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenError {
    /// Not a JWT at all: treated as no token (→ unauthorised).
    Malformed,
    /// A valid token of another organization (→ unauthorised): refreshing cannot make it this
    /// organization's.
    OtherOrganization,
    /// A JWT that cannot be used now (→ try refresh): the reason says why.
    TryRefresh(TryRefreshReason),
}

/// Why an access token that looks like a JWT is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TryRefreshReason {
    /// Past `exp`.
    Expired,
    /// The signature, `alg` or claims do not check out.
    BadSignature,
    /// No published key has its `kid`.
    UnknownKey,
    /// Another issuer.
    WrongIssuer,
    /// Not a session token (`stt` set).
    NotASessionToken,
    /// Minted before tokens named their organization: a refresh re-mints it with one.
    NoAudience,
}

/// Which organization's tokens a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Only this organization's (every face that knows its caller: the SDK, the server-to-server API).
    Organization(&'a str),
    /// Any organization's: only where the session's organization is read from the store before anything
    /// is done with it (the server's own sign-out endpoint).
    AnyOrganization,
    /// The verifying keys are one organization's own ring (a SuperTokens app's): the key is the binding,
    /// and the token carries no `aud` (SuperTokens' Python SDK refuses a token with one).
    OwnKeys,
}

/// Verifies signature, `kid`, `alg`, `exp` (against `now`, no leeway), `stt`, `aud` and, when given,
/// `iss`.
///
/// # Errors
/// See [`AccessTokenError`].
pub fn verify_access_token(
    token: &str,
    keys: &dyn VerificationKeys,
    now: Timestamp,
    issuer: Option<&str>,
    audience: Audience<'_>,
) -> Result<AccessTokenClaims, AccessTokenError> {
    let claims = verify_signature(token, keys)?;
    let refresh = AccessTokenError::TryRefresh;
    if claims.exp <= now.unix_seconds() {
        return Err(refresh(TryRefreshReason::Expired));
    }
    if claims.stt.is_some_and(|t| t != 0) {
        return Err(refresh(TryRefreshReason::NotASessionToken));
    }
    if issuer.is_some_and(|iss| Some(iss) != claims.iss.as_deref()) {
        return Err(refresh(TryRefreshReason::WrongIssuer));
    }
    match (audience, claims.aud.as_deref()) {
        (Audience::OwnKeys, _) => Ok(claims),
        (_, None) => Err(refresh(TryRefreshReason::NoAudience)),
        (Audience::Organization(expected), Some(aud)) if aud != expected => Err(AccessTokenError::OtherOrganization),
        _ => Ok(claims),
    }
}

/// Verifies only the header and signature (by `kid`, with the key's one algorithm) and reads the claims;
/// expiry and the rest are the caller's to check.
///
/// # Errors
/// [`AccessTokenError::Malformed`] or [`AccessTokenError::TryRefresh`].
pub fn verify_signature(token: &str, keys: &dyn VerificationKeys) -> Result<AccessTokenClaims, AccessTokenError> {
    if token.len() > MAX_ACCESS_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(AccessTokenError::Malformed);
    }
    let refresh = AccessTokenError::TryRefresh;
    let header = jsonwebtoken::decode_header(token).map_err(|_| refresh(TryRefreshReason::BadSignature))?;
    let kid = header.kid.as_deref().ok_or(refresh(TryRefreshReason::UnknownKey))?;
    let key = keys.verification_key(kid).ok_or(refresh(TryRefreshReason::UnknownKey))?;
    // The key decides the algorithm, never the token: this stops `none` and HS256-with-the-public-key.
    if header.alg != key.algorithm {
        return Err(refresh(TryRefreshReason::BadSignature));
    }
    let mut validation = Validation::new(key.algorithm);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<AccessTokenClaims>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|_| refresh(TryRefreshReason::BadSignature))
}

/// Reads a token's claims without verifying anything: only for tokens this process just minted or
/// verified (the front token of a re-minted token), never for input.
#[must_use]
pub fn unverified_payload(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}
