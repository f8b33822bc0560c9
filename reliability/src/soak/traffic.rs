//! The soak's clients: each loops at its own pace until the deadline and books every answer as expected,
//! intended (a rate limit or a captcha the traffic was built to meet) or unexpected.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior};

use crate::server::ADMIN_TOKEN;
use crate::setup::APP;
use crate::workload::connector::{call, succeeded};
use crate::workload::login::{LoginClient, Step};
use crate::workload::refresh::refresh;
use crate::workload::{Target, json};

/// Unexpected answers kept word for word; the rest are only counted.
const KEPT: usize = 20;

/// How the answers of the whole run were booked.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    inner: Mutex<Books>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct Books {
    /// Expected answers per kind of work.
    pub(super) expected: BTreeMap<&'static str, u64>,
    /// Intended refusals per kind (429 of the page limit, the captcha the allowance asks for).
    pub(super) intended: BTreeMap<&'static str, u64>,
    pub(super) unexpected: u64,
    pub(super) unexpected_kept: Vec<String>,
}

impl Ledger {
    fn book(&self, f: impl FnOnce(&mut Books)) {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn expected(&self, kind: &'static str) {
        self.book(|b| *b.expected.entry(kind).or_default() += 1);
    }

    fn intended(&self, kind: &'static str) {
        self.book(|b| *b.intended.entry(kind).or_default() += 1);
    }

    fn unexpected(&self, what: String) {
        self.book(|b| {
            b.unexpected += 1;
            if b.unexpected_kept.len() < KEPT {
                b.unexpected_kept.push(what);
            }
        });
    }

    pub(super) fn books(&self) -> Books {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// What every client shares.
#[derive(Debug, Clone)]
pub(super) struct Traffic {
    pub(super) target: Target,
    pub(super) ledger: std::sync::Arc<Ledger>,
    pub(super) until: Instant,
}

impl Traffic {
    async fn tick(&self, ticker: &mut tokio::time::Interval) -> bool {
        ticker.tick().await;
        Instant::now() < self.until
    }

    fn authorize(&self, browser: &str) -> reqwest::RequestBuilder {
        let query = [
            ("client_id", self.target.tenant.org.as_str()),
            ("redirect_uri", &format!("{APP}/callback")),
            ("response_type", "code"),
            ("state", "soak"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ];
        let url = format!("{}/login", self.target.url);
        self.target.http.get(url).query(&query).header("x-forwarded-for", browser)
    }

    /// A new user logs in by email code every `every`, each from an address of its own, and the
    /// application reads the user with the access token (a protected call of the CentralAuth face).
    pub(super) async fn logins(self, worker: u8, every: Duration) {
        let mut ticker = ticker(every);
        let mut n = 0u32;
        while self.tick(&mut ticker).await {
            n += 1;
            let [_, _, high, low] = n.to_be_bytes();
            let browser = format!("10.{worker}.{high}.{low}");
            let email = format!("soak-{worker}-{n}@example.com");
            let token = match LoginClient::log_in(&self.target, &email, &browser).await {
                Step::Done(token) => token,
                Step::Wrong(wrong) => {
                    self.ledger.unexpected(format!("login of {email}: {wrong}"));
                    continue;
                }
                Step::Cut => {
                    self.ledger.unexpected(format!("login of {email}: no answer"));
                    continue;
                }
            };
            self.ledger.expected("login");
            let userinfo = self
                .target
                .http
                .post(format!("{}/api/v1/userinfo", self.target.url))
                .query(&[("domain", APP)])
                .basic_auth(&self.target.tenant.org, Some(&self.target.tenant.secret))
                .header("content-type", "text/plain")
                .body(token);
            match self.target.answer(userinfo).await {
                Some((200, body)) if json(&body)["email"] == email.as_str() => self.ledger.expected("userinfo"),
                other => self.ledger.unexpected(format!("userinfo of {email}: {other:?}")),
            }
        }
    }

    async fn create_session(&self, user: &str) -> Option<(String, String, String)> {
        let request = self
            .target
            .http
            .post(format!("{}/api/v1/sessions", self.target.url))
            .bearer_auth(&self.target.tenant.api_key)
            .json(&json!({ "userId": user }));
        match self.target.answer(request).await {
            Some((201, body)) => {
                let body = json(&body);
                let field = |value: &Value| value.as_str().map(str::to_owned);
                let created =
                    (field(&body["session"]["handle"])?, field(&body["accessToken"])?, field(&body["refreshToken"])?);
                self.ledger.expected("session created");
                Some(created)
            }
            other => {
                self.ledger.unexpected(format!("create session: {other:?}"));
                None
            }
        }
    }

    /// One user's sessions through the server-to-server API: the access token verified every tick (the
    /// protected call), refreshed every `refresh_every` ticks, the session revoked and a new one created
    /// every `revoke_every` ticks.
    pub(super) async fn sessions(self, worker: usize, every: Duration, refresh_every: u32, revoke_every: u32) {
        let user = format!("soak-user-{worker}");
        let mut ticker = ticker(every);
        let mut session = None;
        let mut n = 0u32;
        while self.tick(&mut ticker).await {
            n += 1;
            let Some((handle, access, refresh_token)) = &mut session else {
                session = self.create_session(&user).await;
                continue;
            };
            if n.is_multiple_of(revoke_every) {
                let url = format!("{}/api/v1/sessions/{handle}", self.target.url);
                let revoke = self.target.http.delete(url).bearer_auth(&self.target.tenant.api_key);
                match self.target.answer(revoke).await {
                    Some((200, body)) if json(&body)["revoked"] == true => self.ledger.expected("session revoked"),
                    other => self.ledger.unexpected(format!("revoke session: {other:?}")),
                }
                session = None;
            } else if n.is_multiple_of(refresh_every) {
                match refresh(&self.target, refresh_token).await {
                    Some((200, body)) => {
                        let body = json(&body);
                        match (body["accessToken"].as_str(), body["refreshToken"].as_str()) {
                            (Some(a), Some(r)) => {
                                *access = a.to_owned();
                                *refresh_token = r.to_owned();
                                self.ledger.expected("refresh");
                            }
                            _ => self.ledger.unexpected(format!("refresh answered 200 without tokens: {body}")),
                        }
                    }
                    other => self.ledger.unexpected(format!("refresh: {other:?}")),
                }
            } else {
                let verify = self
                    .target
                    .http
                    .post(format!("{}/api/v1/sessions/verify", self.target.url))
                    .bearer_auth(&self.target.tenant.api_key)
                    .json(&json!({ "accessToken": access }));
                match self.target.answer(verify).await {
                    Some((200, _)) => self.ledger.expected("verify"),
                    other => self.ledger.unexpected(format!("verify: {other:?}")),
                }
            }
        }
    }

    /// Calls to the connector account, whose upstream access token runs out every few seconds.
    pub(super) async fn connector_calls(self, every: Duration) {
        let mut ticker = ticker(every);
        while self.tick(&mut ticker).await {
            match call(&self.target).await {
                Some((200, body)) if succeeded(&body) => self.ledger.expected("connector call"),
                other => self.ledger.unexpected(format!("connector call: {other:?}")),
            }
        }
    }

    /// An operator's reads over the admin API, one path per tick in turn.
    pub(super) async fn admin_reads(self, every: Duration) {
        let org = &self.target.tenant.org;
        let paths = [
            "/admin/v1/organizations".to_owned(),
            format!("/admin/v1/organizations/{org}/audit"),
            format!("/admin/v1/organizations/{org}/connector-accounts"),
            "/admin/v1/keys".to_owned(),
        ];
        let mut ticker = ticker(every);
        let mut n = 0usize;
        while self.tick(&mut ticker).await {
            let path = &paths[n % paths.len()];
            n += 1;
            let read = self.target.http.get(format!("{}{path}", self.target.url)).bearer_auth(ADMIN_TOKEN);
            match self.target.answer(read).await {
                Some((200, _)) => self.ledger.expected("admin read"),
                other => self.ledger.unexpected(format!("GET {path}: {other:?}")),
            }
        }
    }

    /// One address asking for the login page faster than the page limit allows: the excess is refused
    /// with 429 (intended).
    pub(super) async fn page_flood(self, every: Duration) {
        let mut ticker = ticker(every);
        while self.tick(&mut ticker).await {
            match self.target.answer(self.authorize("203.0.113.66")).await {
                Some((303, _)) => self.ledger.expected("login page"),
                Some((429, body)) if json(&body)["errorCode"] == "tooManyRequests" => {
                    self.ledger.intended("login page")
                }
                other => self.ledger.unexpected(format!("flooded login page: {other:?}")),
            }
        }
    }

    /// One address sending email steps without end: past the captcha allowance each one is asked to prove
    /// its work (intended).
    pub(super) async fn email_flood(self, every: Duration) {
        let browser = "203.0.113.77";
        let mut ticker = ticker(every);
        let mut n = 0u32;
        while self.tick(&mut ticker).await {
            n += 1;
            let Some(started) = self.target.send(self.authorize(browser)).await else {
                self.ledger.unexpected("email flood: authorize unanswered".to_owned());
                continue;
            };
            let headers = started.headers();
            let flow = headers.get("location").and_then(|v| v.to_str().ok()).and_then(|l| l.split('?').next());
            let cookie = headers.get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|c| c.split(';').next());
            let (Some(flow), Some(cookie)) = (flow, cookie) else {
                self.ledger.unexpected(format!("email flood: authorize answered {}", started.status()));
                continue;
            };
            let step = self
                .target
                .http
                .post(format!("{}{flow}/email", self.target.url))
                .header("cookie", cookie)
                .header("x-forwarded-for", browser)
                .form(&[("email", format!("flood-{n}@example.com"))]);
            match self.target.answer(step).await {
                Some((303, _)) => self.ledger.expected("email step"),
                Some((400, body)) if body.contains("checked your browser") => self.ledger.intended("email step"),
                other => self.ledger.unexpected(format!("flooding email step: {other:?}")),
            }
        }
    }
}
