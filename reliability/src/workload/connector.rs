//! Connector calls (`POST /api/v1/connectors/upstream/accounts/…/calls`) against the rotating upstream:
//! the access token runs out every few calls, so the account refreshes all the time.
//!
//! Promise checked after every restart: a call succeeds. The upstream itself reports any refresh token
//! presented after its successor was used (the stored token fell behind a completed rotation).

use serde_json::json;

use super::{Target, json};
use crate::setup::{ACCOUNT, CONNECTOR};

#[derive(Debug, Default)]
pub(crate) struct ConnectorClient {
    pub(crate) calls: u64,
    pub(crate) cut: u64,
}

pub(crate) async fn call(target: &Target) -> Option<(u16, String)> {
    let request = target
        .http
        .post(format!("{}/api/v1/connectors/{CONNECTOR}/accounts/{ACCOUNT}/calls", target.url))
        .bearer_auth(&target.tenant.api_key)
        .json(&json!({ "method": "items" }));
    target.answer(request).await
}

pub(crate) fn succeeded(body: &str) -> bool {
    json(body)["outcome"] == "success"
}

impl ConnectorClient {
    /// Calls until a request is cut; a failed call is a violation.
    pub(crate) async fn load(mut self, target: Target) -> (Self, Vec<String>) {
        loop {
            match call(&target).await {
                Some((200, body)) if succeeded(&body) => self.calls += 1,
                Some((status, body)) => {
                    return (self, vec![format!("connector call under load answered {status}: {body}")]);
                }
                None => {
                    self.cut += 1;
                    return (self, Vec::new());
                }
            }
        }
    }

    /// After a restart: a call succeeds.
    pub(crate) async fn check(target: &Target) -> Result<(), String> {
        match call(target).await {
            Some((200, body)) if succeeded(&body) => Ok(()),
            other => Err(format!("after the restart a connector call answered {other:?}")),
        }
    }
}
