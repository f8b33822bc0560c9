//! Deliveries: one event to one endpoint, tried until it is acknowledged or given up.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::store::StoreError;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not acknowledged yet; tried again at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed (the dead-letter state); a replay sends it again.
    Dead,
}

impl DeliveryState {
    /// The stored and wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    ///
    /// # Errors
    /// [`StoreError::Decode`] for an unknown value.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            other => Err(StoreError::Decode(format!("unknown delivery state {other:?}"))),
        }
    }
}

/// One event for one endpoint, with its attempts so far (the delivery log).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_<UUIDv7>`.
    pub id: String,
    /// The event (its `webhook-id`).
    pub event_id: String,
    /// The event's place in the outbox: an endpoint gets its deliveries in this order.
    #[serde(skip)]
    #[schema(ignore)]
    pub event_seq: i64,
    /// The event's type.
    pub event_type: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's organization.
    pub organization_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Timestamp,
    /// When it was last tried.
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last attempt, if one came back.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (transport error, refusal, status), never a response body.
    pub last_error: Option<String>,
    /// When it was made (dispatch or replay).
    pub created_at: Timestamp,
    /// When the endpoint acknowledged it.
    pub delivered_at: Option<Timestamp>,
}

/// A delivery due now, with what sending it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// The event's body.
    pub payload: String,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's sealed secrets.
    pub sealed_secrets: Vec<u8>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx answer.
    Acknowledged(u16),
    /// Anything else: another status (redirects are not followed), a timeout, a refused address.
    Failed {
        /// The status, if an answer came.
        status: Option<u16>,
        /// What went wrong, for the delivery log.
        error: String,
    },
}

/// When failed deliveries are tried again: exponential back-off from `initial`, capped at `max`, with up to
/// a fifth of random jitter so that receivers coming back are not hit by every sender at once; dead after
/// `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Attempts before the dead-letter state.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempts` (1-based), before jitter.
    #[must_use]
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

impl Delivery {
    /// A new delivery of an event to an endpoint, due at `now` (a fan-out or a replay).
    #[must_use]
    pub fn pending(
        event_id: &str,
        event_seq: i64,
        event_type: &str,
        endpoint_id: &str,
        organization_id: &str,
        now: Timestamp,
    ) -> Self {
        Self {
            id: format!("dlv_{}", uuid::Uuid::now_v7().simple()),
            event_id: event_id.to_owned(),
            event_seq,
            event_type: event_type.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            organization_id: organization_id.to_owned(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        }
    }

    /// The delivery after one more attempt. `jitter` is a uniform random number in `[0, 1)`.
    #[must_use]
    pub fn attempted(&self, result: &AttemptResult, now: Timestamp, policy: &RetryPolicy, jitter: f64) -> Self {
        let attempts = self.attempts.saturating_add(1);
        let mut next = Self { attempts, last_attempt_at: Some(now), ..self.clone() };
        match result {
            AttemptResult::Acknowledged(status) => {
                next.state = DeliveryState::Delivered;
                next.last_status = Some(*status);
                next.last_error = None;
                next.delivered_at = Some(now);
            }
            AttemptResult::Failed { status, error } => {
                next.last_status = *status;
                next.last_error = Some(error.clone());
                if attempts >= policy.max_attempts {
                    next.state = DeliveryState::Dead;
                } else {
                    let wait = policy.backoff(attempts);
                    next.next_attempt_at = now.plus(wait.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 5.0));
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: "dlv".into(),
            event_id: "msg".into(),
            event_seq: 1,
            event_type: "keys.rotated".into(),
            endpoint_id: "ep".into(),
            organization_id: "org".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Timestamp::from_unix_millis(0),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            created_at: Timestamp::from_unix_millis(0),
            delivered_at: None,
        }
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_end_dead() {
        let policy = RetryPolicy { initial: Duration::from_secs(5), max: Duration::from_secs(60), max_attempts: 4 };
        let failed = AttemptResult::Failed { status: Some(503), error: "503 Service Unavailable".into() };
        let now = Timestamp::from_unix_millis(1_000_000);
        let first = delivery().attempted(&failed, now, &policy, 0.0);
        assert_eq!((first.state, first.attempts), (DeliveryState::Pending, 1));
        assert_eq!(first.next_attempt_at, now.plus(Duration::from_secs(5)));
        let second = first.attempted(&failed, now, &policy, 0.999);
        assert!(second.next_attempt_at > now.plus(Duration::from_secs(11)), "10 s plus jitter");
        assert!(second.next_attempt_at < now.plus(Duration::from_secs(12)));
        assert_eq!(policy.backoff(10), Duration::from_secs(60), "capped");
        let third = second.attempted(&failed, now, &policy, 0.5);
        let dead = third.attempted(&failed, now, &policy, 0.5);
        assert_eq!((dead.state, dead.attempts, dead.last_status), (DeliveryState::Dead, 4, Some(503)));
        let delivered = first.attempted(&AttemptResult::Acknowledged(204), now, &policy, 0.5);
        assert_eq!(
            (delivered.state, delivered.delivered_at, delivered.last_error),
            (DeliveryState::Delivered, Some(now), None)
        );
    }
}
