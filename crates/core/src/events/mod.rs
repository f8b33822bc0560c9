//! Outbound events: what happened outside any request that an application must hear about (a connector
//! account that needs re-authorization, a refresh-token theft, a cloned passkey, a lockout, a key
//! rotation), pushed to the organization's endpoints as Standard Webhooks.
//!
//! An [`Event`] is written to the store's outbox in the same transaction as the state change that causes
//! it, so none is lost and none is invented when that change rolls back. A delivery worker fans each event
//! out to the endpoints that subscribe to its type and sends it, at least once, in order per endpoint.

mod delivery;
mod endpoint;
mod service;

use serde_json::{Map, Value, json};

pub use delivery::{AttemptResult, Delivery, DeliveryState, DueDelivery, RetryPolicy};
pub use endpoint::{EndpointSecrets, EventEndpoint, SECRET_PREFIX};
pub use service::{EndpointChange, EventService, NewEndpoint};

use crate::ErrorCode;
use crate::abuse::{AuditEvent, AuditKind};
use crate::clock::Timestamp;
use crate::session::{RefreshOutcome, TheftKind};
use crate::store::{AccountState, ConnectorAccountRecord, KeyOwner, SigningKeyRecord};

/// The kinds of event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A connector account's refresh or renewal was rejected: a person must re-authorize it.
    AccountNeedsReauth,
    /// A connector account that needed re-authorization works again.
    AccountRecovered,
    /// A rotated-out refresh token was reused: the session family was revoked.
    SessionTheftDetected,
    /// A passkey's signature counter did not advance: the authenticator may have been cloned.
    PasskeyCounterRegressed,
    /// An account reached the cap on consecutive wrong login codes.
    LoginLockedOut,
    /// A signing key was added to a key ring (published now, signing from `signsFrom`).
    KeysRotated,
    /// A connector account's inbound webhook arrived and its `after_webhook` handlers accepted it.
    ConnectorWebhookReceived,
}

impl EventType {
    /// Every type.
    pub const ALL: [Self; 7] = [
        Self::AccountNeedsReauth,
        Self::AccountRecovered,
        Self::SessionTheftDetected,
        Self::PasskeyCounterRegressed,
        Self::LoginLockedOut,
        Self::KeysRotated,
        Self::ConnectorWebhookReceived,
    ];

    /// The wire name (the payload's `type`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccountNeedsReauth => "connector.account.needsReauth",
            Self::AccountRecovered => "connector.account.recovered",
            Self::SessionTheftDetected => "session.theftDetected",
            Self::PasskeyCounterRegressed => "passkey.counterRegressed",
            Self::LoginLockedOut => "login.lockedOut",
            Self::KeysRotated => "keys.rotated",
            Self::ConnectorWebhookReceived => "connector.webhook.received",
        }
    }

    /// From the wire name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The catalog code of the failure the event reports; `None` for events that report no failure.
    #[must_use]
    pub const fn code(self) -> Option<ErrorCode> {
        match self {
            Self::AccountNeedsReauth => Some(ErrorCode::NeedsReauthentication),
            Self::SessionTheftDetected => Some(ErrorCode::TokenTheftDetected),
            Self::PasskeyCounterRegressed => Some(ErrorCode::PasskeyDataInvalid),
            Self::LoginLockedOut => Some(ErrorCode::LoginAttemptInvalid),
            Self::AccountRecovered | Self::KeysRotated | Self::ConnectorWebhookReceived => None,
        }
    }

    /// The event an audit record raises, for the kinds whose only state change is the audit row itself.
    /// A theft is raised by the refresh transaction that revokes the family instead.
    #[must_use]
    pub const fn raised_by_audit(kind: AuditKind) -> Option<Self> {
        match kind {
            AuditKind::PasskeyCounterRegressed => Some(Self::PasskeyCounterRegressed),
            AuditKind::LoginLockedOut => Some(Self::LoginLockedOut),
            _ => None,
        }
    }
}

/// One event in the outbox. Its payload is fixed when it is written, so every delivery and every replay
/// sends the same bytes under the same `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `msg_<UUIDv7>`: the `webhook-id` receivers deduplicate on.
    pub id: String,
    /// The organization whose endpoints hear it; `None` for the server's own key ring, which every
    /// organization's tokens depend on.
    pub organization_id: Option<String>,
    /// An [`EventType`] name.
    pub event_type: String,
    /// What it is about (an account, a user, a key ring): deliveries keep the outbox's order, which is the
    /// order of the changes to one subject.
    pub subject: String,
    /// The JSON body: `{"type", "timestamp", "data"}`; `data` names the failure's catalog `code`.
    pub payload: String,
    /// When the cause happened.
    pub created_at: Timestamp,
}

impl Event {
    fn new(organization_id: Option<&str>, event_type: EventType, subject: &str, data: Value, now: Timestamp) -> Self {
        let mut fields = match data {
            Value::Object(map) => map,
            other => Map::from_iter([("detail".to_owned(), other)]),
        };
        fields.insert("organizationId".to_owned(), organization_id.map_or(Value::Null, Value::from));
        if let Some(code) = event_type.code() {
            fields.insert("code".to_owned(), Value::from(code.as_str()));
        }
        let payload = json!({ "type": event_type.as_str(), "timestamp": now.to_rfc3339(), "data": fields });
        Self {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            organization_id: organization_id.map(str::to_owned),
            event_type: event_type.as_str().to_owned(),
            subject: subject.to_owned(),
            payload: payload.to_string(),
            created_at: now,
        }
    }

    /// The event of a refresh decision: a theft, or nothing.
    #[must_use]
    pub fn for_refresh(outcome: &RefreshOutcome, now: Timestamp) -> Option<Self> {
        let RefreshOutcome::TheftDetected { session, kind } = outcome else {
            return None;
        };
        let classification = match kind {
            TheftKind::RecentPrev => "recentPrev",
            TheftKind::OrphanedBranch => "orphanedBranch",
            TheftKind::StaleLineage => "staleLineage",
        };
        let data = json!({
            "sessionHandle": session.handle,
            "userId": session.user_id,
            "tenantId": session.tenant_id,
            "classification": classification,
        });
        Some(Self::new(Some(&session.organization_id), EventType::SessionTheftDetected, &session.user_id, data, now))
    }

    /// The event of a connector account write: a change from usable to needing re-authorization, or back.
    /// Rewrites that keep the state (a new cooldown, refreshed tokens) raise none.
    #[must_use]
    pub fn for_account_write(before: &ConnectorAccountRecord, after: &ConnectorAccountRecord) -> Option<Self> {
        let event_type = match (before.state, after.state) {
            (AccountState::Ok, AccountState::NeedsReauth) => EventType::AccountNeedsReauth,
            (AccountState::NeedsReauth, AccountState::Ok) => EventType::AccountRecovered,
            _ => return None,
        };
        let mut data = json!({ "accountId": after.id, "connector": after.connector });
        if event_type == EventType::AccountNeedsReauth {
            data["reason"] = after.last_failure.clone().map_or(Value::Null, Value::from);
        }
        let subject = format!("connector-account:{}", after.id);
        Some(Self::new(Some(&after.organization_id), event_type, &subject, data, after.updated_at))
    }

    /// The event of an inbound webhook a connector account's handlers accepted: `payload` is
    /// `method_response` after `after_webhook`. Ordered with the account's other events.
    #[must_use]
    pub fn for_webhook(record: &ConnectorAccountRecord, method: &str, payload: Value, now: Timestamp) -> Self {
        let data =
            json!({ "accountId": record.id, "connector": record.connector, "method": method, "payload": payload });
        let subject = format!("connector-account:{}", record.id);
        Self::new(Some(&record.organization_id), EventType::ConnectorWebhookReceived, &subject, data, now)
    }

    /// The event an audit record raises, if any (see [`EventType::raised_by_audit`]).
    #[must_use]
    pub fn for_audit(audit: &AuditEvent) -> Option<Self> {
        let kind = crate::abuse::AuditKind::parse(&audit.kind)?;
        let event_type = EventType::raised_by_audit(kind)?;
        let mut data = match &audit.detail {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        let subject = audit.subject.clone().unwrap_or_default();
        let who = if event_type == EventType::LoginLockedOut { "email" } else { "userId" };
        data.insert(who.to_owned(), Value::from(subject.clone()));
        Some(Self::new(Some(&audit.organization_id), event_type, &subject, Value::Object(data), audit.created))
    }

    /// The event of a key added to a family (its algorithm's keys in one ring) that had keys already: the
    /// first key of a family is no rotation, even in a ring whose other family has keys (the RS256 ID-token
    /// keys made after the EdDSA session keys).
    #[must_use]
    pub fn for_key_insert(owner: KeyOwner<'_>, key: &SigningKeyRecord, family_had_keys: bool) -> Option<Self> {
        if !family_had_keys {
            return None;
        }
        let (organization, ring) = match owner {
            KeyOwner::Server => (None, "server"),
            KeyOwner::Organization(id) => (Some(id), "supertokensApp"),
        };
        let data = json!({
            "kid": key.kid,
            "algorithm": key.algorithm.as_str(),
            "ring": ring,
            "signsFrom": key.signs_from.to_rfc3339(),
        });
        Some(Self::new(organization, EventType::KeysRotated, &format!("key-ring:{ring}"), data, key.created_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_failures_name_their_code() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("session.created"), None);
        let event = Event::new(
            Some("org"),
            EventType::LoginLockedOut,
            "a@b.c",
            json!({"failures": 10}),
            Timestamp::from_unix_millis(0),
        );
        let payload: Value = serde_json::from_str(&event.payload).expect("ok");
        assert_eq!(payload["type"], "login.lockedOut");
        assert_eq!(payload["data"]["code"], "loginAttemptInvalid");
        assert_eq!(payload["data"]["organizationId"], "org");
        assert_eq!(payload["data"]["failures"], 10);
        assert_eq!(payload["timestamp"], "1970-01-01T00:00:00Z");
        let key = SigningKeyRecord {
            kid: "d-1".into(),
            algorithm: crate::keys::SigningAlgorithm::RS256,
            public_jwk: String::new(),
            sealed_private_key: Vec::new(),
            created_at: Timestamp::from_unix_millis(0),
            signs_from: Timestamp::from_unix_millis(0),
        };
        assert!(Event::for_key_insert(KeyOwner::Server, &key, false).is_none(), "a family's first key is no rotation");
        let rotated = Event::for_key_insert(KeyOwner::Server, &key, true).expect("ok");
        let payload: Value = serde_json::from_str(&rotated.payload).expect("ok");
        assert!(payload["data"].get("code").is_none(), "a rotation reports no failure");
        assert_eq!(payload["data"]["organizationId"], Value::Null);
    }
}
