//! The clients that load the server until it is killed, and check after the restart what they were told.
//!
//! A request ends in one of three ways: answered as expected, answered otherwise (a violation: the server
//! was alive and said something wrong), or cut (no complete answer: the kill). Each client stops at its
//! first cut and remembers what it held then.

pub(crate) mod connector;
pub(crate) mod login;
pub(crate) mod refresh;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What every client needs to reach the server.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) tenant: crate::setup::Tenant,
    /// Where the latency of every request sent through [`Target::send`] goes, if anywhere.
    pub(crate) meter: Option<Arc<Meter>>,
}

impl Target {
    /// Sends `request`; `None` when it was cut. The time to the response's head is metered.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Option<reqwest::Response> {
        let sent = Instant::now();
        let response = request.send().await.ok()?;
        if let Some(meter) = &self.meter {
            meter.record(sent.elapsed());
        }
        Some(response)
    }

    /// [`answer`], metered.
    pub(crate) async fn answer(&self, request: reqwest::RequestBuilder) -> Option<(u16, String)> {
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }
}

/// Request latencies since the last [`Meter::take`].
#[derive(Debug, Default)]
pub(crate) struct Meter {
    latencies: Mutex<Vec<Duration>>,
}

impl Meter {
    fn record(&self, latency: Duration) {
        self.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(latency);
    }

    /// The latencies recorded since the last call.
    pub(crate) fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// A complete answer, or `None` when the request was cut.
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> Option<(u16, String)> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.text().await.ok()?;
    Some((status, body))
}

pub(crate) fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}
