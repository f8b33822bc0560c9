//! The clients that load the server until it is killed, and check after the restart what they were told.
//!
//! A request ends in one of three ways: answered as expected, answered otherwise (a violation: the server
//! was alive and said something wrong), or cut (no complete answer: the kill). Each client stops at its
//! first cut and remembers what it held then.

pub(crate) mod connector;
pub(crate) mod login;
pub(crate) mod refresh;

use serde_json::Value;

/// What every client needs to reach the server.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) tenant: crate::setup::Tenant,
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
