use async_trait::async_trait;

use super::StoreError;
use crate::clock::Timestamp;
use crate::events::{Delivery, DeliveryState, DueDelivery, Event, EventEndpoint};

/// Event endpoints, the outbox and the delivery log. Events are appended by the state changes that cause
/// them (see [`crate::events`]); the methods here are the delivery worker's and the admin API's.
#[async_trait]
pub trait EventStore {
    /// Adds an endpoint.
    async fn insert_event_endpoint(&self, endpoint: &EventEndpoint) -> Result<(), StoreError>;

    /// One endpoint of the organization.
    async fn event_endpoint(&self, organization_id: &str, id: &str) -> Result<Option<EventEndpoint>, StoreError>;

    /// The organization's endpoints, oldest first; `None`: every organization's.
    async fn event_endpoints(&self, organization_id: Option<&str>) -> Result<Vec<EventEndpoint>, StoreError>;

    /// Replaces an endpoint (matched by organization and id); `false` if there is none.
    async fn update_event_endpoint(&self, endpoint: &EventEndpoint) -> Result<bool, StoreError>;

    /// Deletes an endpoint with its deliveries; `false` if there was none.
    async fn delete_event_endpoint(&self, organization_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Appends an event whose cause writes nothing else (an accepted inbound webhook).
    async fn append_event(&self, event: &Event) -> Result<(), StoreError>;

    /// Events not yet fanned out to endpoints, in outbox order, with their place in it.
    async fn undispatched_events(&self, limit: usize) -> Result<Vec<(i64, Event)>, StoreError>;

    /// Records the fan-out of an event in one transaction: its deliveries are inserted and it is marked
    /// dispatched, only if it was not dispatched yet (`false` then, and nothing is written).
    async fn dispatch_event(&self, event_id: &str, deliveries: &[Delivery]) -> Result<bool, StoreError>;

    /// For each endpoint, its first pending delivery in outbox order, if that one is due at `now`: an
    /// endpoint gets its events one at a time and in order, a failing one holding back the later ones.
    async fn due_deliveries(&self, now: Timestamp, limit: usize) -> Result<Vec<DueDelivery>, StoreError>;

    /// Writes a delivery after an attempt, only if its stored attempt count is still `expected_attempts`
    /// and it is pending; `false` otherwise.
    async fn record_delivery_attempt(&self, delivery: &Delivery, expected_attempts: u32) -> Result<bool, StoreError>;

    /// One delivery of the organization.
    async fn delivery(&self, organization_id: &str, id: &str) -> Result<Option<Delivery>, StoreError>;

    /// The organization's delivery log, newest first, optionally of one endpoint and one state.
    async fn deliveries(
        &self,
        organization_id: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Adds a delivery (a replay).
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
}
