//! The organization's event endpoints and delivery log (admin API and CLI), and the fan-out of the outbox.

use std::sync::Arc;
use std::time::Duration;

use super::{Delivery, DeliveryState, EndpointSecrets, EventEndpoint, EventType};
use crate::clock::{Clock, Timestamp};
use crate::keys::MasterKey;
use crate::store::Store;
use crate::{Error, ErrorCode};

/// Longest endpoint URL.
const MAX_URL_BYTES: usize = 2048;
/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Most endpoints per organization: each event is sent to each, so this bounds the fan-out.
const MAX_ENDPOINTS: usize = 20;

/// A new endpoint.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    /// Where to POST.
    pub url: String,
    /// The operator's note.
    pub description: String,
    /// Event types; empty: every type.
    pub event_types: Vec<String>,
}

/// A change to an endpoint; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// Where to POST.
    pub url: Option<String>,
    /// The operator's note.
    pub description: Option<String>,
    /// Event types; empty: every type.
    pub event_types: Option<Vec<String>>,
    /// Whether new events are delivered.
    pub enabled: Option<bool>,
}

/// Event endpoints and deliveries of organizations.
#[derive(Debug, Clone)]
pub struct EventService {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    secret_overlap: Duration,
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::EntityInvalid).with_message(message)
}

fn missing(what: &str) -> Error {
    Error::new(ErrorCode::EntityMissing).with_message(format!("There is no {what}."))
}

fn checked_url(url: &str) -> Result<String, Error> {
    let url = url.trim();
    if url.len() > MAX_URL_BYTES {
        return Err(invalid(format!("The endpoint URL is longer than {MAX_URL_BYTES} bytes.")));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("The endpoint URL is not a URL: {e}.")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("The endpoint URL must be an http or https URL with a host.".to_owned()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("The endpoint URL must not hold credentials; events are signed instead.".to_owned()));
    }
    if parsed.fragment().is_some() {
        return Err(invalid("The endpoint URL must not have a fragment.".to_owned()));
    }
    Ok(parsed.to_string())
}

fn checked_types(types: Vec<String>) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for name in types {
        if EventType::parse(&name).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(invalid(format!("Unknown event type {name:?}; known: {}.", known.join(", "))));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn checked_description(description: String) -> Result<String, Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!("The description is longer than {MAX_DESCRIPTION_CHARS} characters.")));
    }
    Ok(description)
}

impl EventService {
    /// The service; after a secret rotation the older secret keeps signing for `secret_overlap`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, clock: Arc<dyn Clock>, secret_overlap: Duration) -> Self {
        Self { store, master, clock, secret_overlap }
    }

    async fn organization_exists(&self, organization_id: &str) -> Result<(), Error> {
        self.store.organization(organization_id).await?.map(|_| ()).ok_or_else(|| missing("such organization"))
    }

    /// Adds an endpoint; returns it with its secret (`whsec_…`), shown this once.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization; `entityInvalid` for a bad URL, type or description, or
    /// past the per-organization cap.
    pub async fn create_endpoint(
        &self,
        organization_id: &str,
        new: NewEndpoint,
    ) -> Result<(EventEndpoint, String), Error> {
        self.organization_exists(organization_id).await?;
        let url = checked_url(&new.url)?;
        let event_types = checked_types(new.event_types)?;
        let description = checked_description(new.description)?;
        if self.store.event_endpoints(Some(organization_id)).await?.len() >= MAX_ENDPOINTS {
            return Err(invalid(format!("An organization has at most {MAX_ENDPOINTS} event endpoints.")));
        }
        let id = format!("ep_{}", uuid::Uuid::now_v7().simple());
        let secrets = EndpointSecrets::generate()?;
        let now = self.clock.now();
        let endpoint = EventEndpoint {
            sealed_secrets: secrets.seal(&self.master, &id)?,
            id,
            organization_id: organization_id.to_owned(),
            url,
            description,
            event_types,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_event_endpoint(&endpoint).await?;
        tracing::info!(organization = %organization_id, endpoint = %endpoint.id, "event endpoint added");
        Ok((endpoint, secrets.current().to_owned()))
    }

    /// One endpoint.
    ///
    /// # Errors
    /// `entityMissing`.
    pub async fn endpoint(&self, organization_id: &str, id: &str) -> Result<EventEndpoint, Error> {
        self.store.event_endpoint(organization_id, id).await?.ok_or_else(|| missing("such event endpoint"))
    }

    /// The organization's endpoints.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization.
    pub async fn endpoints(&self, organization_id: &str) -> Result<Vec<EventEndpoint>, Error> {
        self.organization_exists(organization_id).await?;
        Ok(self.store.event_endpoints(Some(organization_id)).await?)
    }

    /// Changes an endpoint.
    ///
    /// # Errors
    /// `entityMissing`; `entityInvalid` as for [`Self::create_endpoint`].
    pub async fn change_endpoint(
        &self,
        organization_id: &str,
        id: &str,
        change: EndpointChange,
    ) -> Result<EventEndpoint, Error> {
        let mut endpoint = self.endpoint(organization_id, id).await?;
        if let Some(url) = change.url {
            endpoint.url = checked_url(&url)?;
        }
        if let Some(description) = change.description {
            endpoint.description = checked_description(description)?;
        }
        if let Some(types) = change.event_types {
            endpoint.event_types = checked_types(types)?;
        }
        if let Some(enabled) = change.enabled {
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = self.clock.now();
        if !self.store.update_event_endpoint(&endpoint).await? {
            return Err(missing("such event endpoint"));
        }
        Ok(endpoint)
    }

    /// Deletes an endpoint and its delivery log.
    ///
    /// # Errors
    /// `entityMissing`.
    pub async fn delete_endpoint(&self, organization_id: &str, id: &str) -> Result<(), Error> {
        if !self.store.delete_event_endpoint(organization_id, id).await? {
            return Err(missing("such event endpoint"));
        }
        tracing::info!(organization = %organization_id, endpoint = %id, "event endpoint deleted");
        Ok(())
    }

    /// Gives an endpoint a new secret (returned, shown once); the previous one keeps signing beside it for
    /// the configured overlap.
    ///
    /// # Errors
    /// `entityMissing`.
    pub async fn rotate_secret(&self, organization_id: &str, id: &str) -> Result<String, Error> {
        let mut endpoint = self.endpoint(organization_id, id).await?;
        let now = self.clock.now();
        let secrets = self.secrets(&endpoint.id, &endpoint.sealed_secrets)?.rotated(now, self.secret_overlap)?;
        endpoint.sealed_secrets = secrets.seal(&self.master, &endpoint.id)?;
        endpoint.updated_at = now;
        if !self.store.update_event_endpoint(&endpoint).await? {
            return Err(missing("such event endpoint"));
        }
        tracing::info!(organization = %organization_id, endpoint = %id, "event endpoint secret rotated");
        Ok(secrets.current().to_owned())
    }

    /// Opens an endpoint's secrets.
    ///
    /// # Errors
    /// `genericError` when they cannot be opened (another master key).
    pub fn secrets(&self, endpoint_id: &str, sealed: &[u8]) -> Result<EndpointSecrets, Error> {
        EndpointSecrets::open(&self.master, endpoint_id, sealed)
    }

    /// The delivery log, newest first.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization or endpoint.
    pub async fn deliveries(
        &self,
        organization_id: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, Error> {
        self.organization_exists(organization_id).await?;
        if let Some(endpoint) = endpoint_id {
            self.endpoint(organization_id, endpoint).await?;
        }
        Ok(self.store.deliveries(organization_id, endpoint_id, state, limit).await?)
    }

    /// Sends a delivery's event to its endpoint again, whatever became of it: a new pending delivery, in
    /// the event's place in the endpoint's order.
    ///
    /// # Errors
    /// `entityMissing`.
    pub async fn replay(&self, organization_id: &str, delivery_id: &str) -> Result<Delivery, Error> {
        let original =
            self.store.delivery(organization_id, delivery_id).await?.ok_or_else(|| missing("such delivery"))?;
        let replay = Delivery::pending(
            &original.event_id,
            original.event_seq,
            &original.event_type,
            &original.endpoint_id,
            &original.organization_id,
            self.clock.now(),
        );
        self.store.insert_delivery(&replay).await?;
        tracing::info!(organization = %organization_id, delivery = %delivery_id, replay = %replay.id, "delivery replayed");
        Ok(replay)
    }

    /// Fans the outbox's undispatched events (at most `limit`) out to the endpoints that hear them and were
    /// added before the event; returns how many events were dispatched. Each event is dispatched once even
    /// when two workers race.
    ///
    /// # Errors
    /// If the store fails.
    pub async fn dispatch(&self, limit: usize) -> Result<usize, Error> {
        let events = self.store.undispatched_events(limit).await?;
        let mut dispatched = 0;
        for (seq, event) in events {
            let endpoints = self.store.event_endpoints(event.organization_id.as_deref()).await?;
            let now: Timestamp = self.clock.now();
            let deliveries: Vec<Delivery> = endpoints
                .iter()
                // An endpoint hears what happened after it was added, whenever this pass runs.
                .filter(|endpoint| endpoint.created_at <= event.created_at && endpoint.accepts(&event.event_type))
                .map(|endpoint| {
                    Delivery::pending(&event.id, seq, &event.event_type, &endpoint.id, &endpoint.organization_id, now)
                })
                .collect();
            if self.store.dispatch_event(&event.id, &deliveries).await? {
                dispatched += 1;
            }
        }
        Ok(dispatched)
    }
}
