//! Passkeys for the hosted login: registration after a verified email, login username-first or
//! discoverable, and management. The relying party is the organization's auth domain, so one
//! organization's passkeys are never offered on another's pages.

mod model;

pub use model::{CeremonyKind, Passkey, PasskeyCeremony, PasskeyUse};
