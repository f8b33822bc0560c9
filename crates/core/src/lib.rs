//! Portcullis core: the domain, with no HTTP and no SQL.
//!
//! - [`error`]: the catalog of named, documented failures, and [`Error`], the one error type.
//! - [`keys`]: signing keys, the key ring and the master key that seals secrets at rest.
//! - [`store`]: the traits every storage backend implements.
//! - [`login`]: the hosted login flow's rules (redirects, PKCE, callback answers, attempts, compat JWE).
//! - [`passkey`]: passkeys (WebAuthn) for the hosted login: registration, login, management.
//! - [`app_users`]: roles and metadata of SuperTokens apps' users (the core face's next tier).
//! - [`session`]: sessions, refresh rotation with theft detection, access tokens, claims.
//! - [`events`]: outbound events (Standard Webhooks): the outbox, endpoints, deliveries and retries.
//! - [`console`]: the admin console's operators, roles and form tokens.
//! - [`activity`]: process-wide counts of logins and refreshes (the console's charts).
//! - [`clock`]: injected time.

pub mod abuse;
pub mod activity;
pub mod app_users;
pub mod clock;
pub mod console;
pub mod error;
pub mod events;
mod failure;
pub mod keys;
pub mod login;
pub mod organization;
pub mod passkey;
pub mod session;
pub mod store;

pub use error::ErrorCode;
pub use failure::Error;
