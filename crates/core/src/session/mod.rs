//! Sessions, SuperTokens-compatible: signed access tokens, opaque rotating refresh tokens stored as
//! hashes, theft detection with a grace window, claims and their validators.

mod access_token;
mod apps;
mod claims;
mod refresh_token;
mod rotation;
mod service;

pub use access_token::{
    AccessTokenClaims, AccessTokenError, Audience, MAX_ACCESS_TOKEN_LEN, REGISTERED_PROTECTED_CLAIMS,
    SUPERTOKENS_PROTECTED_CLAIMS, TryRefreshReason, VerificationKey, VerificationKeys, unverified_payload,
    verify_access_token, verify_signature,
};
pub use apps::SupertokensApps;
pub use claims::{
    ClaimValidationError, ClaimValidator, EMAIL_VERIFIED, PERMISSIONS, ROLES, claim_entry, claim_value, validate_claims,
};
pub use refresh_token::{
    MAX_REFRESH_TOKEN_LEN, MintedRefreshToken, PresentedRefreshToken, RefreshTokenCodec, hash1, hash2_of_hash1,
    sha256_hex,
};
pub use rotation::{
    MAX_SIBLINGS, RefreshOutcome, RefreshRequest, SessionRecord, TheftKind, UnauthorisedReason, apply_refresh,
};
pub use service::{MAX_USER_ID_LEN, RefreshFailure, SessionConfig, SessionService, SessionTokens, access_token_error};
