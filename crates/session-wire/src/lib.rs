//! The session transport of SuperTokens' frontend SDKs, as one set of rules for the server's own
//! endpoints and for the Rust SDK mounted in an app.
//!
//! - [`RequestTokens`]: which tokens a request carries (cookies or headers), with duplicate cookies
//!   counted on the raw `Cookie` header (parsers would drop them).
//! - [`TokenResponse`]: the `Set-Cookie`, token headers, `front-token` and CORS-exposed headers a
//!   response carries, including the "clear" of the protocol.

mod request;
mod response;

pub use request::{RequestTokens, TokenTransfer};
pub use response::{CookieSettings, IssuedTokens, SameSite, TokenResponse};

/// `sAccessToken` cookie.
pub const ACCESS_TOKEN_COOKIE: &str = "sAccessToken";
/// `sRefreshToken` cookie.
pub const REFRESH_TOKEN_COOKIE: &str = "sRefreshToken";
/// Legacy cookie of old SDKs: never issued, only expired.
pub const LEGACY_ID_REFRESH_COOKIE: &str = "sIdRefreshToken";
/// Header-mode access token.
pub const ACCESS_TOKEN_HEADER: &str = "st-access-token";
/// Header-mode refresh token.
pub const REFRESH_TOKEN_HEADER: &str = "st-refresh-token";
/// The front token header.
pub const FRONT_TOKEN_HEADER: &str = "front-token";
/// The transfer mode the SDK asks for.
pub const AUTH_MODE_HEADER: &str = "st-auth-mode";
/// The header the SDK always sends; its presence is the anti-CSRF check (VIA_CUSTOM_HEADER).
pub const RID_HEADER: &str = "rid";
/// Request headers the SDK sends cross-origin (for `Access-Control-Allow-Headers`).
pub const CORS_ALLOW_HEADERS: &[&str] =
    &["content-type", "rid", "fdi-version", "anti-csrf", "authorization", "st-auth-mode"];
/// Response headers the SDK must read cross-origin (for `Access-Control-Expose-Headers`).
pub const CORS_EXPOSE_HEADERS: &[&str] = &["front-token", "anti-csrf", "st-access-token", "st-refresh-token"];

/// Bodies of the protocol.
pub mod body {
    /// Try refresh (401).
    pub const TRY_REFRESH_TOKEN: &str = r#"{"message":"try refresh token"}"#;
    /// Unauthorised (401).
    pub const UNAUTHORISED: &str = r#"{"message":"unauthorised"}"#;
    /// Token theft (401).
    pub const TOKEN_THEFT_DETECTED: &str = r#"{"message":"token theft detected"}"#;
    /// Sign-out success (200).
    pub const SIGN_OUT_OK: &str = r#"{"status":"OK"}"#;
    /// Refresh success (200).
    pub const EMPTY: &str = "{}";
}
