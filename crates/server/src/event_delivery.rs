//! The event delivery worker: fans the outbox out to endpoints and POSTs due deliveries as Standard Webhooks.
//!
//! Every instance may run it; a lease in the store lets one pass run at a time across instances, so each
//! event is usually sent once and always at least once (a pass that outlives its lease may overlap the next
//! instance's; receivers deduplicate on `webhook-id`). Requests go through the connector egress policy and
//! follow no redirects.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use portcullis_connect::egress::EgressPolicy;
use portcullis_core::clock::{Clock, Timestamp};
use portcullis_core::events::{AttemptResult, DueDelivery, EventService, RetryPolicy};
use portcullis_core::store::Store;

use crate::config::EventsSettings;

/// The lease every instance's worker competes for.
const LEASE_KEY: &str = "events:delivery";
/// Events fanned out per pass.
const DISPATCH_BATCH: usize = 500;
/// Endpoints served per pass (one delivery each, concurrently).
const DELIVERY_BATCH: usize = 64;

/// One instance's worker.
#[derive(Debug)]
pub struct EventDelivery {
    events: EventService,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: Arc<EgressPolicy>,
    client: reqwest::Client,
    retry: RetryPolicy,
    poll: Duration,
    lease: Duration,
    holder: String,
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

impl EventDelivery {
    /// A worker with the `[events]` settings, sending under `policy`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        events: EventService,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: Arc<EgressPolicy>,
        settings: &EventsSettings,
    ) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(settings.http_timeout_secs);
        Ok(Self {
            client: policy.client(timeout)?,
            events,
            store,
            clock,
            policy,
            retry: RetryPolicy {
                initial: Duration::from_secs(settings.retry_initial_secs),
                max: Duration::from_secs(settings.retry_max_secs),
                max_attempts: settings.max_attempts,
            },
            poll: Duration::from_millis(settings.poll_interval_ms),
            // A pass sends its deliveries concurrently, so it ends within one request timeout.
            lease: timeout + Duration::from_secs(5),
            holder: format!("events-{}", uuid::Uuid::now_v7().simple()),
        })
    }

    /// Runs passes until the task is dropped.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.pass().await {
                tracing::warn!(error = ?e, "event delivery pass failed; retrying at the next tick");
            }
        }
    }

    /// One pass, if this instance gets the lease: dispatch new events, then send what is due.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pass(&self) -> Result<(), portcullis_core::Error> {
        let now = self.clock.now();
        if !self.store.try_connector_lease(LEASE_KEY, &self.holder, now, now.plus(self.lease)).await? {
            return Ok(());
        }
        let result = self.deliver_due().await;
        self.store.release_connector_lease(LEASE_KEY, &self.holder).await?;
        result
    }

    async fn deliver_due(&self) -> Result<(), portcullis_core::Error> {
        while self.events.dispatch(DISPATCH_BATCH).await? == DISPATCH_BATCH {}
        let due = self.store.due_deliveries(self.clock.now(), DELIVERY_BATCH).await?;
        let sends = due.into_iter().map(|due| self.send(due));
        for outcome in futures_util::future::join_all(sends).await {
            outcome?;
        }
        Ok(())
    }

    async fn send(&self, due: DueDelivery) -> Result<(), portcullis_core::Error> {
        let result = self.attempt(&due).await;
        let now: Timestamp = self.clock.now();
        let delivery = &due.delivery;
        let outcome = match &result {
            AttemptResult::Acknowledged(status) => {
                tracing::info!(delivery = %delivery.id, event = %delivery.event_id, endpoint = %delivery.endpoint_id,
                    status, "event delivered");
                "delivered"
            }
            AttemptResult::Failed { status, error } => {
                tracing::warn!(delivery = %delivery.id, event = %delivery.event_id, endpoint = %delivery.endpoint_id,
                    status, error = %error, attempt = delivery.attempts + 1, "event delivery failed");
                "failed"
            }
        };
        metrics::counter!("portcullis_event_deliveries_total", "outcome" => outcome).increment(1);
        let next = delivery.attempted(&result, now, &self.retry, jitter());
        if next.state == portcullis_core::events::DeliveryState::Dead {
            tracing::error!(delivery = %delivery.id, event = %delivery.event_id, endpoint = %delivery.endpoint_id,
                attempts = next.attempts, "event delivery is dead after its last attempt; replay it once the endpoint works");
        }
        self.store.record_delivery_attempt(&next, delivery.attempts).await?;
        Ok(())
    }

    async fn attempt(&self, due: &DueDelivery) -> AttemptResult {
        let failed = |status: Option<u16>, error: String| AttemptResult::Failed { status, error };
        let url = match url::Url::parse(&due.url) {
            Ok(url) => url,
            Err(e) => return failed(None, format!("the endpoint URL does not parse: {e}")),
        };
        if let Err(refused) = self.policy.check_url(&url) {
            return failed(None, format!("egressRefused: {refused}"));
        }
        let secrets = match self.events.secrets(&due.delivery.endpoint_id, &due.sealed_secrets) {
            Ok(secrets) => secrets,
            Err(e) => return failed(None, format!("the endpoint's secret cannot be opened: {}", e.code().as_str())),
        };
        let now = self.clock.now();
        // Receivers refuse timestamps outside a few minutes of their own clock, so this one is the wall
        // clock's even where the application runs on an injected one.
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = match secrets.signature(&due.delivery.event_id, timestamp, due.payload.as_bytes(), now) {
            Ok(signature) => signature,
            Err(e) => return failed(None, format!("the payload cannot be signed: {}", e.code().as_str())),
        };
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", &due.delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(due.payload.clone());
        match request.send().await {
            Ok(response) if response.status().is_success() => AttemptResult::Acknowledged(response.status().as_u16()),
            Ok(response) => {
                let status = response.status();
                failed(Some(status.as_u16()), format!("the endpoint answered {status}"))
            }
            Err(e) if e.is_timeout() => failed(None, "the endpoint did not answer in time".to_owned()),
            Err(e) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(inner) = source {
                    if let Some(refused) = inner.downcast_ref::<portcullis_connect::egress::Refused>() {
                        return failed(None, format!("egressRefused: {refused}"));
                    }
                    source = inner.source();
                }
                failed(None, format!("the endpoint could not be reached: {}", e.without_url()))
            }
        }
    }
}
