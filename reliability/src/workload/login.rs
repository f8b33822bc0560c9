//! Complete logins through the hosted page (email code, CentralAuth face): authorize, email step, the code
//! from the development outbox, code step, token exchange at `/api/v1/verify`.
//!
//! Promise checked after every restart: every login whose token exchange was answered 200 gave a token
//! that `/api/v1/userinfo` still accepts (the user, login session and grant were durable).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Target, json};
use crate::setup::APP;

const VERIFIER: &str = "reliability-harness-pkce-verifier-0123456789abcdefghij";

#[derive(Debug)]
pub(crate) struct LoginClient {
    id: usize,
    next: u64,
    /// Access tokens of the logins completed since the last check, with their email.
    pub(crate) completed: Vec<(String, String)>,
    pub(crate) total: u64,
    pub(crate) cut: u64,
}

/// How one login ended.
pub(crate) enum Step {
    Done(String),
    Cut,
    Wrong(String),
}

fn location(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn callback() -> String {
    format!("{APP}/callback")
}

impl LoginClient {
    pub(crate) fn new(id: usize) -> Self {
        Self { id, next: 0, completed: Vec::new(), total: 0, cut: 0 }
    }

    /// One complete login of `email`; the browser's requests carry `browser` as `X-Forwarded-For` (the
    /// server reads it only from a trusted proxy).
    pub(crate) async fn log_in(target: &Target, email: &str, browser: &str) -> Step {
        let challenge =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()));
        let query = [
            ("client_id", target.tenant.org.as_str()),
            ("redirect_uri", &callback()),
            ("response_type", "code"),
            ("state", "reliability"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        let authorize = target.http.get(format!("{}/login", target.url)).query(&query);
        let Some(started) = target.send(authorize.header("x-forwarded-for", browser)).await else {
            return Step::Cut;
        };
        let (Some(page), Some(cookie)) = (
            location(started.headers()),
            started.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_owned),
        ) else {
            return Step::Wrong(format!("authorize answered {} without a flow", started.status()));
        };
        let flow = page.split('?').next().unwrap_or_default().to_owned();
        let binding = cookie.split(';').next().unwrap_or_default().to_owned();

        let email_step = target
            .http
            .post(format!("{}{flow}/email", target.url))
            .header("cookie", &binding)
            .header("x-forwarded-for", browser)
            .form(&[("email", email)]);
        match target.answer(email_step).await {
            Some((303, _)) => {}
            Some((status, body)) => return Step::Wrong(format!("email step answered {status}: {body}")),
            None => return Step::Cut,
        }
        let Some((200, outbox)) = target.answer(target.http.get(format!("{}/dev/outbox", target.url))).await else {
            return Step::Cut;
        };
        let outbox = json(&outbox);
        let message = outbox["messages"].as_array().and_then(|m| m.iter().find(|m| m["to"] == email));
        let Some(code) = message.and_then(|m| m["body"].as_str()).and_then(|body| {
            body.split(|c: char| !c.is_ascii_digit()).find(|w| (6..=10).contains(&w.len())).map(str::to_owned)
        }) else {
            return Step::Wrong(format!("no code for {email} in the outbox"));
        };

        let code_step = target
            .http
            .post(format!("{}{flow}/code", target.url))
            .header("cookie", &binding)
            .header("x-forwarded-for", browser)
            .form(&[("code", &code)]);
        let Some(done) = target.send(code_step).await else { return Step::Cut };
        let Some(grant) = location(done.headers())
            .and_then(|l| url::Url::parse(&l).ok())
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()))
        else {
            return Step::Wrong(format!("code step answered {} without a grant", done.status()));
        };

        let exchange = target
            .http
            .post(format!("{}/api/v1/verify", target.url))
            .basic_auth(&target.tenant.org, Some(&target.tenant.secret))
            .form(&[("code", grant.as_str()), ("redirect_uri", &callback()), ("code_verifier", VERIFIER)]);
        match target.answer(exchange).await {
            Some((200, body)) => match json(&body)["access_token"].as_str() {
                Some(token) => Step::Done(token.to_owned()),
                None => Step::Wrong(format!("token exchange answered 200 without a token: {body}")),
            },
            Some((status, body)) => Step::Wrong(format!("token exchange answered {status}: {body}")),
            None => Step::Cut,
        }
    }

    /// Logs in new users until a request is cut.
    pub(crate) async fn load(mut self, target: Target) -> (Self, Vec<String>) {
        loop {
            self.next += 1;
            let email = format!("c{}-{}@example.com", self.id, self.next);
            match Self::log_in(&target, &email, "127.0.0.1").await {
                Step::Done(token) => {
                    self.completed.push((email, token));
                    self.total += 1;
                }
                Step::Wrong(violation) => return (self, vec![violation]),
                Step::Cut => {
                    self.cut += 1;
                    return (self, Vec::new());
                }
            }
        }
    }

    /// After a restart: every completed login's token is accepted (see the module documentation).
    pub(crate) async fn check(&mut self, target: &Target) -> Result<(), String> {
        for (email, token) in self.completed.drain(..) {
            let request = target
                .http
                .post(format!("{}/api/v1/userinfo", target.url))
                .query(&[("domain", APP)])
                .basic_auth(&target.tenant.org, Some(&target.tenant.secret))
                .header("content-type", "text/plain")
                .body(token);
            match target.answer(request).await {
                Some((200, body)) if json(&body)["email"] == email.as_str() => {}
                other => return Err(format!("after the restart the login of {email} answered {other:?}")),
            }
        }
        Ok(())
    }
}
