//! The records of passkeys: registered credentials and the server side of unfinished ceremonies.

use serde::Serialize;

use crate::clock::Timestamp;

/// A registered passkey (a WebAuthn credential of one user of one organization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Passkey {
    /// Credential id, base64url without padding; unique across every organization.
    pub credential_id: String,
    /// Organization.
    pub organization_id: String,
    /// Owner.
    pub user_id: String,
    /// The person's name for it.
    pub name: String,
    /// Relying-party id it was made for (the organization's auth domain at registration).
    pub rp_id: String,
    /// Public key and other fixed parts, in `webauthn_rp`'s binary encoding.
    #[serde(skip)]
    pub static_state: Vec<u8>,
    /// Sign counter, user verification and backup state, in `webauthn_rp`'s binary encoding.
    #[serde(skip)]
    pub dynamic_state: Vec<u8>,
    /// The authenticator's signature counter (0: it keeps none).
    pub sign_count: u32,
    /// Backup eligible (BE): the credential may be synced to other devices.
    pub backup_eligible: bool,
    /// Backed up (BS) at its last use.
    pub backed_up: bool,
    /// Authenticator model, when it told (hex).
    pub aaguid: Option<String>,
    /// Transports the browser reported (`internal`, `hybrid`, `usb`…), comma-separated.
    pub transports: String,
    /// Registration.
    pub created_at: Timestamp,
    /// Last login with it.
    pub last_used_at: Option<Timestamp>,
}

/// Which ceremony a record serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey (after the email was verified).
    Registration,
    /// Logging in with a passkey of a known account (username first: `allowCredentials`).
    Authentication,
    /// Logging in with whichever passkey the browser offers (discoverable, autofill).
    Discoverable,
}

impl CeremonyKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Authentication => "authentication",
            Self::Discoverable => "discoverable",
        }
    }

    /// From the stored name.
    #[must_use]
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "registration" => Some(Self::Registration),
            "authentication" => Some(Self::Authentication),
            "discoverable" => Some(Self::Discoverable),
            _ => None,
        }
    }
}

/// The server side of a ceremony the browser has not finished: single use, deleted when it is finished
/// whatever the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// Id, sent to the browser with the options and back with the answer.
    pub id: String,
    /// Kind.
    pub kind: CeremonyKind,
    /// The login flow it belongs to (the browser must present the flow's cookie).
    pub flow_id: String,
    /// Organization.
    pub organization_id: String,
    /// The account (registration and username-first authentication).
    pub user_id: Option<String>,
    /// Relying-party id of the ceremony.
    pub rp_id: String,
    /// `webauthn_rp`'s server state (challenge, options), in its binary encoding.
    pub state: Vec<u8>,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A passkey's counters after a login with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// Credential id.
    pub credential_id: String,
    /// The counter read before the login: the update applies only if it is still the stored one.
    pub previous_sign_count: u32,
    /// The new counter.
    pub sign_count: u32,
    /// Backed up now (BS).
    pub backed_up: bool,
    /// The new dynamic state.
    pub dynamic_state: Vec<u8>,
    /// When.
    pub used_at: Timestamp,
}
