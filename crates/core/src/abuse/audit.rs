//! The audit log: security events an operator can query per organization (admin API). Events never hold
//! secrets: emails are kept as given by the person, codes and tokens never.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::clock::{Clock, Timestamp};
use crate::store::Store;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditKind {
    /// A login finished: a login session was created.
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    /// A wrong code was entered (`detail.void`: the attempt is now void).
    #[serde(rename = "login.failed")]
    LoginFailed,
    /// An account reached the cap on consecutive wrong codes (`login.max_code_failures`): its email step
    /// now needs a solved captcha at the highest level, and each attempt allows one wrong code, until a
    /// login.
    #[serde(rename = "login.lockedOut")]
    LoginLockedOut,
    /// A challenge was answered with a wrong number; the attempt was cancelled.
    #[serde(rename = "login.challengeMismatch")]
    ChallengeMismatch,
    /// A mailed login was undone.
    #[serde(rename = "login.undone")]
    LoginUndone,
    /// A refresh token was reused outside the grace window: the session family was revoked.
    #[serde(rename = "session.theftDetected")]
    TheftDetected,
    /// A passkey was registered.
    #[serde(rename = "passkey.added")]
    PasskeyAdded,
    /// A passkey was removed by its owner.
    #[serde(rename = "passkey.removed")]
    PasskeyRemoved,
    /// A login with a passkey whose signature counter did not advance: the authenticator may have been
    /// cloned. The login was refused.
    #[serde(rename = "passkey.counterRegressed")]
    PasskeyCounterRegressed,
    /// A passkey of another organization was presented on this organization's page. The login was refused.
    #[serde(rename = "passkey.wrongOrganization")]
    PasskeyWrongOrganization,
    /// An operator acted in the admin console (`detail.action`, `detail.target`); the subject is the
    /// operator's email. Recorded in the console's operator organization.
    #[serde(rename = "console.action")]
    ConsoleAction,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [Self; 11] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginLockedOut,
        Self::ChallengeMismatch,
        Self::LoginUndone,
        Self::TheftDetected,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyCounterRegressed,
        Self::PasskeyWrongOrganization,
        Self::ConsoleAction,
    ];

    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoginLockedOut => "login.lockedOut",
            Self::ChallengeMismatch => "login.challengeMismatch",
            Self::LoginUndone => "login.undone",
            Self::TheftDetected => "session.theftDetected",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::PasskeyCounterRegressed => "passkey.counterRegressed",
            Self::PasskeyWrongOrganization => "passkey.wrongOrganization",
            Self::ConsoleAction => "console.action",
        }
    }

    /// From the wire name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Which of an organization's audit events to list; every part that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Of this kind (an [`AuditKind`] name).
    pub kind: Option<String>,
    /// About this subject (an email or a user id, as recorded).
    pub subject: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// Events of one kind.
    #[must_use]
    pub fn kind(kind: AuditKind) -> Self {
        Self { kind: Some(kind.as_str().to_owned()), ..Self::default() }
    }
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Id (UUIDv7: sorts by time).
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// What happened (an [`AuditKind`] name).
    pub kind: String,
    /// Who: an email or a user id.
    pub subject: Option<String>,
    /// Details (attempt, session, classification…).
    pub detail: Value,
    /// When.
    pub created: Timestamp,
}

/// Records events; a failure to record is logged, never fails the request that caused it.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    /// An audit log on `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Records an event.
    pub async fn record(&self, organization_id: &str, kind: AuditKind, subject: Option<&str>, detail: Value) {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: organization_id.to_owned(),
            kind: kind.as_str().to_owned(),
            subject: subject.map(str::to_owned),
            detail,
            created: self.clock.now(),
        };
        tracing::info!(organization = %organization_id, kind = kind.as_str(), "audit event");
        if let Err(e) = self.store.record_audit_event(&event).await {
            tracing::error!(error = %e, kind = kind.as_str(), "the audit event could not be stored");
        }
    }
}
