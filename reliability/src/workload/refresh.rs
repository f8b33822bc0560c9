//! Session refreshes through the server-to-server API (`POST /api/v1/sessions/refresh`): each client owns
//! one session and rotates its refresh token as fast as the server answers.
//!
//! Promise checked after every restart: the token the client holds refreshes. If its last refresh was
//! answered, that is the new token (the rotation was durable); if it was cut, the client still holds the
//! old one, which is current (the rotation never committed) or the previous one within the grace window
//! (it committed): either way 200, never `unauthorised`, never theft.

use serde_json::json;

use super::{Target, json};

#[derive(Debug)]
pub(crate) struct RefreshClient {
    pub(crate) token: String,
    pub(crate) answered: u64,
    pub(crate) cut: u64,
}

pub(crate) async fn refresh(target: &Target, token: &str) -> Option<(u16, String)> {
    let request = target
        .http
        .post(format!("{}/api/v1/sessions/refresh", target.url))
        .bearer_auth(&target.tenant.api_key)
        .json(&json!({ "refreshToken": token }));
    target.answer(request).await
}

impl RefreshClient {
    /// A new session for `user`.
    pub(crate) async fn create(target: &Target, user: &str) -> Result<Self, String> {
        let request = target
            .http
            .post(format!("{}/api/v1/sessions", target.url))
            .bearer_auth(&target.tenant.api_key)
            .json(&json!({ "userId": user }));
        match target.answer(request).await {
            Some((201, body)) => {
                let token = json(&body)["refreshToken"].as_str().map(str::to_owned);
                Ok(Self { token: token.ok_or(format!("no refreshToken in {body}"))?, answered: 0, cut: 0 })
            }
            other => Err(format!("create session: {other:?}")),
        }
    }

    /// Refreshes until a request is cut; a refused refresh is a violation.
    pub(crate) async fn load(mut self, target: Target) -> (Self, Vec<String>) {
        loop {
            match refresh(&target, &self.token).await {
                Some((200, body)) => match json(&body)["refreshToken"].as_str() {
                    Some(token) => {
                        self.token = token.to_owned();
                        self.answered += 1;
                    }
                    None => return (self, vec![format!("refresh answered 200 without a token: {body}")]),
                },
                Some((status, body)) => return (self, vec![format!("refresh under load answered {status}: {body}")]),
                None => {
                    self.cut += 1;
                    return (self, Vec::new());
                }
            }
        }
    }

    /// After a restart: the token held refreshes (see the module documentation).
    pub(crate) async fn check(&mut self, target: &Target) -> Result<(), String> {
        match refresh(target, &self.token).await {
            Some((200, body)) => {
                let token = json(&body)["refreshToken"].as_str().map(str::to_owned);
                self.token = token.ok_or(format!("refresh answered 200 without a token: {body}"))?;
                Ok(())
            }
            other => Err(format!("after the restart the client's refresh token answered {other:?}")),
        }
    }
}
