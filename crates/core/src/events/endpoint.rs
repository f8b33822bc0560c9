//! Event endpoints and their signing secrets.

use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::keys::{KeyError, MasterKey};
use crate::{Error, ErrorCode};

/// Every endpoint secret starts with this, as Standard Webhooks specifies.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// One organization's receiver of events, as stored. The secrets are sealed under the master key: the store
/// never sees them, and they are never serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEndpoint {
    /// `ep_<UUIDv7>`.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Where events are POSTed (http or https; the egress policy applies).
    pub url: String,
    /// The operator's note.
    pub description: String,
    /// The event types it hears; empty: every type.
    pub event_types: Vec<String>,
    /// Disabled endpoints get no new deliveries; their pending ones wait.
    pub enabled: bool,
    /// [`EndpointSecrets`] sealed with the endpoint id as context.
    #[serde(skip)]
    #[schema(ignore)]
    pub sealed_secrets: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl EventEndpoint {
    /// Whether a new event of this type is delivered here.
    #[must_use]
    pub fn accepts(&self, event_type: &str) -> bool {
        self.enabled && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EndpointSecret {
    secret: String,
    /// Unix ms after which this (older) secret no longer signs; `None` for the newest.
    expires_at: Option<i64>,
}

/// An endpoint's signing secrets, newest first. After a rotation the older secret keeps signing beside the
/// new one until its overlap ends, so a receiver can switch without losing an event: Standard Webhooks
/// receivers accept a message when any of the signatures in `webhook-signature` verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSecrets(Vec<EndpointSecret>);

fn fresh_secret() -> Result<String, Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| Error::from(KeyError::Random))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

impl EndpointSecrets {
    /// One fresh secret.
    ///
    /// # Errors
    /// If the system random source fails.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self(vec![EndpointSecret { secret: fresh_secret()?, expires_at: None }]))
    }

    /// Opens the sealed secrets of endpoint `endpoint_id`.
    ///
    /// # Errors
    /// `genericError` when they were sealed under another master key or altered.
    pub fn open(master: &MasterKey, endpoint_id: &str, sealed: &[u8]) -> Result<Self, Error> {
        let plain = master.open(endpoint_id.as_bytes(), sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("endpoint secrets: {e}")))
    }

    /// Seals them for endpoint `endpoint_id`.
    ///
    /// # Errors
    /// If sealing fails.
    pub fn seal(&self, master: &MasterKey, endpoint_id: &str) -> Result<Vec<u8>, Error> {
        let plain = serde_json::to_vec(self)
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("endpoint secrets: {e}")))?;
        Ok(master.seal(endpoint_id.as_bytes(), &plain)?)
    }

    /// The newest secret: the one to give the receiver.
    #[must_use]
    pub fn current(&self) -> &str {
        self.0.first().map_or("", |s| s.secret.as_str())
    }

    /// A new secret in front; the ones still valid keep signing until `now + overlap` (or their earlier
    /// end), expired ones go.
    ///
    /// # Errors
    /// If the system random source fails.
    pub fn rotated(&self, now: Timestamp, overlap: Duration) -> Result<Self, Error> {
        let until = now.plus(overlap).unix_millis();
        let mut next = vec![EndpointSecret { secret: fresh_secret()?, expires_at: None }];
        next.extend(
            self.0
                .iter()
                .filter(|s| s.expires_at.is_none_or(|end| end > now.unix_millis()))
                .map(|s| EndpointSecret {
                    secret: s.secret.clone(),
                    expires_at: Some(s.expires_at.map_or(until, |end| end.min(until))),
                })
                .filter(|_| overlap > Duration::ZERO),
        );
        Ok(Self(next))
    }

    /// The `webhook-signature` header: one `v1,<base64>` per secret still signing at `now`, newest first,
    /// space-separated.
    ///
    /// # Errors
    /// `genericError` when a stored secret is not valid base64 or the payload is not UTF-8.
    pub fn signature(&self, message_id: &str, timestamp: i64, payload: &[u8], now: Timestamp) -> Result<String, Error> {
        let signatures: Result<Vec<String>, Error> = self
            .0
            .iter()
            .filter(|s| s.expires_at.is_none_or(|end| end > now.unix_millis()))
            .map(|s| {
                standardwebhooks::Webhook::new(&s.secret)
                    .and_then(|hook| hook.sign(message_id, timestamp, payload))
                    .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("webhook signature: {e}")))
            })
            .collect();
        Ok(signatures?.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends_and_receivers_of_either_verify() {
        let start = Timestamp::from_unix_millis(1_000_000);
        let first = EndpointSecrets::generate().expect("ok");
        assert!(first.current().starts_with(SECRET_PREFIX));
        let second = first.rotated(start, Duration::from_secs(60)).expect("ok");
        assert_ne!(second.current(), first.current());
        let body = br#"{"type":"keys.rotated"}"#;
        let header = second.signature("msg_1", 1000, body, start).expect("ok");
        assert_eq!(header.split(' ').count(), 2);
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().expect("ok"));
        headers.insert(
            "webhook-timestamp",
            time::OffsetDateTime::now_utc().unix_timestamp().to_string().parse().expect("ok"),
        );
        let ts: i64 = headers["webhook-timestamp"].to_str().expect("ok").parse().expect("ok");
        headers
            .insert("webhook-signature", second.signature("msg_1", ts, body, start).expect("ok").parse().expect("ok"));
        for secret in [first.current(), second.current()] {
            standardwebhooks::Webhook::new(secret).expect("ok").verify(body, &headers).expect("either secret verifies");
        }
        let later = start.plus(Duration::from_secs(61));
        assert_eq!(
            second.signature("msg_1", 1000, body, later).expect("ok").split(' ').count(),
            1,
            "the old one ended"
        );
        let third = second.rotated(later, Duration::from_secs(60)).expect("ok");
        assert_eq!(third.0.len(), 2, "the expired secret is dropped, the current one overlaps");
        let immediate = third.rotated(later, Duration::ZERO).expect("ok");
        assert_eq!(immediate.0.len(), 1, "no overlap: only the new secret signs");
    }

    #[test]
    fn an_endpoint_hears_its_types_only_while_enabled() {
        let mut endpoint = EventEndpoint {
            id: "ep".into(),
            organization_id: "org".into(),
            url: "https://example.com".into(),
            description: String::new(),
            event_types: vec!["keys.rotated".into()],
            enabled: true,
            sealed_secrets: Vec::new(),
            created_at: Timestamp::from_unix_millis(0),
            updated_at: Timestamp::from_unix_millis(0),
        };
        assert!(endpoint.accepts("keys.rotated"));
        assert!(!endpoint.accepts("session.theftDetected"));
        endpoint.event_types.clear();
        assert!(endpoint.accepts("session.theftDetected"));
        endpoint.enabled = false;
        assert!(!endpoint.accepts("keys.rotated"));
    }
}
