//! Passkeys for the hosted login: registration after a verified email, login username-first or
//! discoverable, and management. The relying party is the organization's auth domain, so one
//! organization's passkeys are never offered on another's pages.

mod model;
mod webauthn;

pub use model::{CeremonyKind, Passkey, PasskeyCeremony, PasskeyUse};
pub use webauthn::{
    Assertion, CEREMONY_LIFETIME, CredentialRef, LoginRejection, NewCredential, RelyingParty, Started, Verified,
    user_id_of_handle,
};
