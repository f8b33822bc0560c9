//! The hosted login flow's rules, shared by the CentralAuth-compatible face and the standard OAuth face:
//! where a login may redirect, PKCE and `state`, the callback answer, email login attempts, and the
//! compat token format. Each rule lives here once; the faces only parse and render.

pub mod attempt;
pub mod callback;
mod flow_failure;
pub mod jwe;
pub mod model;
mod oauth;
mod operator_users;
mod passkey_steps;
pub mod pkce;
pub mod redirect;
mod service;
pub mod texts;

pub use oauth::{OAUTH_TOKEN_LIFETIME, OAuthService, StandardTokens};
pub use operator_users::MAX_LISTED_SESSIONS;
pub use passkey_steps::{MAX_PASSKEY_NAME_CHARS, PasskeyPage, offers_passkeys};

pub use service::{
    AuthorizeFailure, AuthorizeRequest, CODE_LIFETIME, DEFAULT_CAPTCHA_IP_ALLOWANCE, DirectOutcome, EmailSent,
    EmailStep, FLOW_LIFETIME, IssuedTokens, LinkChoice, LinkOutcome, LoginOutcome, LoginService, MAX_EMAIL_LEN,
    StartedFlow, TokenRequest, UserinfoRequest, WaitOutcome, normalize_email, random_token,
};
