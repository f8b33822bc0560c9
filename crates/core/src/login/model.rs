//! The records of a login: users, flows (one `/login` request), attempts, login sessions, authorization
//! codes and outbox messages.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A user of an organization; the email is unique within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// Email, lowercased and trimmed.
    pub email: String,
    /// Whether the email was verified by a login.
    pub verified: bool,
    /// Blocked users can still log in; the application decides what blocking means.
    pub blocked: bool,
    /// Creation.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
    /// Last login.
    pub last_login: Option<Timestamp>,
}

/// Which face started a flow: it decides parsing leniency and the error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlowFace {
    /// `/login` (CentralAuth).
    Compat,
    /// `/oauth2/authorize`.
    Standard,
    /// `/api/v1/authenticate_direct`: a mailed link, no PKCE; the token exchange needs the secret.
    Direct,
}

impl FlowFace {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Compat => "compat",
            Self::Standard => "standard",
            Self::Direct => "direct",
        }
    }

    /// From the stored name; an unknown name reads as the compat face.
    #[must_use]
    pub fn from_stored(name: &str) -> Self {
        match name {
            "standard" => Self::Standard,
            "direct" => Self::Direct,
            _ => Self::Compat,
        }
    }
}

/// A validated authorization request, waiting for the user to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginFlow {
    /// Id (in the hosted page's URL).
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// The validated callback.
    pub redirect_uri: String,
    /// `state`, echoed on the callback.
    pub state: String,
    /// PKCE challenge (S256).
    pub code_challenge: Option<String>,
    /// The face.
    pub face: FlowFace,
    /// Re-authentication requested (`affirm=1`).
    pub affirm: bool,
    /// Requested scopes (standard face).
    #[serde(default)]
    pub scope: Option<String>,
    /// OIDC `nonce`, echoed in the ID token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// `embed=1`: the pages may be framed by the organization's whitelisted origins.
    #[serde(default)]
    pub embed: bool,
    /// Page text overrides from `translations`.
    #[serde(default)]
    pub translations: serde_json::Map<String, serde_json::Value>,
    /// SHA-256 of the binding cookie: only the browser that started the flow can finish it.
    pub binding_hash: String,
    /// Creation.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// How a link attempt logs in (CentralAuth's `defaultLoginMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum LinkMethod {
    /// The device that opens the mailed link is logged in.
    #[default]
    Local,
    /// The click approves the login in the browser that started it.
    Remote,
    /// The mail carries both links; the person picks.
    UserPick,
}

/// What the mail of an attempt carries (CentralAuth's `defaultLoginAttemptType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AttemptType {
    /// A code of 6 digits or more (`login.code_digits`) typed into the starting browser.
    #[default]
    Code,
    /// Three numbers; clicking the one the starting browser shows approves it.
    Challenge,
    /// A link; the organization's [`LinkMethod`] decides which device is logged in.
    Link,
}

/// An attempt's type and, for links, its method, as one stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// See [`AttemptType::Code`].
    Code,
    /// See [`AttemptType::Challenge`].
    Challenge,
    /// See [`AttemptType::Link`].
    Link(LinkMethod),
}

impl AttemptKind {
    /// The kind an organization's settings choose.
    #[must_use]
    pub const fn new(kind: AttemptType, method: LinkMethod) -> Self {
        match kind {
            AttemptType::Code => Self::Code,
            AttemptType::Challenge => Self::Challenge,
            AttemptType::Link => Self::Link(method),
        }
    }

    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Challenge => "challenge",
            Self::Link(LinkMethod::Local) => "link:local",
            Self::Link(LinkMethod::Remote) => "link:remote",
            Self::Link(LinkMethod::UserPick) => "link:userPick",
        }
    }

    /// From the stored name; an unknown name reads as a code attempt (the strictest: it approves nothing
    /// by mail).
    #[must_use]
    pub fn from_stored(name: &str) -> Self {
        match name {
            "challenge" => Self::Challenge,
            "link:local" => Self::Link(LinkMethod::Local),
            "link:remote" => Self::Link(LinkMethod::Remote),
            "link:userPick" => Self::Link(LinkMethod::UserPick),
            _ => Self::Code,
        }
    }

    /// Whether a mail click approves the browser that started the login (which then waits for it).
    #[must_use]
    pub const fn approves_remotely(self) -> bool {
        matches!(self, Self::Challenge | Self::Link(LinkMethod::Remote | LinkMethod::UserPick))
    }
}

/// An email login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// Id.
    pub id: String,
    /// The flow it belongs to.
    pub flow_id: String,
    /// Organization.
    pub organization_id: String,
    /// Email, normalised.
    pub email: String,
    /// HMAC of the code.
    pub code_digest: String,
    /// Creation.
    pub created_at: Timestamp,
    /// Wrong entries so far.
    pub wrong_entries: u32,
    /// When it was used or voided.
    pub closed_at: Option<Timestamp>,
    /// What the mail carries.
    pub kind: AttemptKind,
    /// The number the starting browser shows (challenge attempts).
    pub challenge: Option<u8>,
    /// When a mail click approved the starting browser (challenge and remote links).
    pub approved_at: Option<Timestamp>,
    /// The login session this attempt created, for undo.
    pub session_id: Option<String>,
    /// When the person undid it.
    pub undone_at: Option<Timestamp>,
    /// When the browser went on to the application after the passkey step (code attempts, once).
    pub handed_over_at: Option<Timestamp>,
    /// Who asked for it: the client network of the email step (`203.0.113.0/24`, an IPv6 /56), or
    /// `client:<organization>` for direct authentication. The per-email delay counts per network.
    pub network: String,
}

/// An email's login attempts since some time: the per-email delay counts those from the asking
/// network, the captcha escalation counts them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentAttempts {
    /// Attempts from every network.
    pub total: usize,
    /// Attempts from the asking network.
    pub from_network: usize,
    /// The newest attempt from the asking network.
    pub last_from_network: Option<Timestamp>,
}

/// What undoing an attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Undone now; the session it had created, if any, is for the caller to end.
    Undone {
        /// The attempt's login session.
        session_id: Option<String>,
    },
    /// It was undone before (or does not exist).
    AlreadyUndone,
}

/// A login session (CentralAuth's "session"): created when the user logs in, checked by userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginSession {
    /// Id (`sessionId` inside the compat tokens).
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// User.
    pub user_id: String,
    /// Start.
    pub created_at: Timestamp,
    /// Last activity.
    pub last_active_at: Timestamp,
    /// End (logout, code replay, hijack).
    pub ended_at: Option<Timestamp>,
    /// Origins verified for this session by a code exchange.
    pub verified_domains: Vec<String>,
    /// Bindings recorded at the first userinfo, for hijack protection.
    pub ip: Option<String>,
    /// See `ip`.
    pub user_agent: Option<String>,
    /// See `ip`.
    pub device_id: Option<String>,
    /// Scopes granted (standard face).
    #[serde(default)]
    pub scope: Option<String>,
    /// OIDC `nonce` of the login.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// An authorization code: single use, 60 seconds, bound to its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code (the code itself is never stored).
    pub code_hash: String,
    /// Organization.
    pub organization_id: String,
    /// Login session it grants.
    pub session_id: String,
    /// Callback of the flow.
    pub redirect_uri: String,
    /// PKCE challenge of the flow.
    pub code_challenge: Option<String>,
    /// Face of the flow.
    pub face: FlowFace,
    /// Creation.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Redemption time.
    pub used_at: Option<Timestamp>,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// First use: the code is now spent.
    Redeemed(AuthorizationCode),
    /// Already used: a replay. The caller ends the session it granted.
    Replayed(AuthorizationCode),
    /// No such code.
    Unknown,
}

/// A message for a user (login codes), kept for the dev outbox and delivered by SMTP when configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    /// Id.
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Creation.
    pub created: Timestamp,
}
