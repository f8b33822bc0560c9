//! Per-IP rate limits on the login faces: counted in the store, so two instances on one PostgreSQL
//! share them; refused with `tooManyRequests` and `Retry-After` (a page for browsers, JSON for APIs);
//! `X-Forwarded-For` believed only from a trusted proxy.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{ManualClock, Timestamp};
use portcullis_server::config::Config;
use portcullis_store_conformance::TestPostgres;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::harness::{Backend, TestServer, read_json, test_config};
use crate::login::{Flow, begun, level_of, location, page_challenge, solve};

/// A minute boundary, so every hit of a test falls in one window until the clock is moved.
const START: i64 = 1_800_000_000_000;

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

#[tokio::test]
async fn two_instances_on_one_postgres_share_the_per_ip_limits() {
    let database = TestPostgres::create().await;
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let mut servers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir, Some(&database));
        config.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
        config.login.api_requests_per_ip_per_minute = 4;
        config.login.page_requests_per_ip_per_minute = 3;
        servers.push(TestServer::start_in_with_clock(dir, None, config, Arc::new(clock.clone())).await);
    }
    let verify =
        |server: &TestServer| server.client.post(format!("{}/api/v1/verify", server.url)).form(&[("code", "x")]).send();
    for i in 0..4 {
        let answered = verify(&servers[i % 2]).await.expect("verify");
        assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS, "hit {i} is within the limit");
    }
    let refused = verify(&servers[0]).await.expect("verify");
    assert_eq!(retry_after(&refused), 60);
    let (status, body) = read_json(refused).await;
    assert_eq!((status, body["errorCode"].as_str()), (429, Some("tooManyRequests")), "{body}");

    let page = |server: &TestServer| {
        server.client.get(format!("{}/login?client_id=unknown", server.url)).header("accept", "text/html").send()
    };
    for i in 0..3 {
        assert_eq!(page(&servers[i % 2]).await.expect("page").status(), StatusCode::BAD_REQUEST, "hit {i}");
    }
    let refused = page(&servers[1]).await.expect("page");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&refused), 60);
    let html = refused.text().await.expect("html");
    assert!(html.contains("<html") && html.contains("tooManyRequests"), "browsers get a page: {html}");

    clock.advance(Duration::from_secs(45));
    assert_eq!(retry_after(&verify(&servers[1]).await.expect("verify")), 15, "Retry-After counts down");
    clock.advance(Duration::from_secs(15));
    assert_ne!(verify(&servers[1]).await.expect("verify").status(), StatusCode::TOO_MANY_REQUESTS, "a new window");
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn forwarded_addresses_count_apart_only_behind_a_trusted_proxy() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let server = TestServer::start_with_clock(
        |c| {
            c.login.api_requests_per_ip_per_minute = 2;
            c.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
        },
        Arc::new(clock.clone()),
    )
    .await;
    let discovery = |forwarded: &'static str| {
        server
            .client
            .get(format!("{}/.well-known/openid-configuration", server.url))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(discovery("203.0.113.7").await.expect("get").status(), StatusCode::OK);
    }
    assert_eq!(discovery("203.0.113.7").await.expect("get").status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(discovery("198.51.100.1").await.expect("get").status(), StatusCode::OK, "another client");
    assert_eq!(
        discovery("198.51.100.1, 203.0.113.7").await.expect("get").status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a forged entry to the left of the proxy's does not help"
    );
    server.stop().await;

    let untrusted = TestServer::start_with_clock(|c| c.login.api_requests_per_ip_per_minute = 2, Arc::new(clock)).await;
    for forwarded in ["192.0.2.1", "192.0.2.2"] {
        let response = untrusted
            .client
            .get(format!("{}/.well-known/openid-configuration", untrusted.url))
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = untrusted
        .client
        .get(format!("{}/.well-known/openid-configuration", untrusted.url))
        .header("x-forwarded-for", "192.0.2.3")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "without a trusted proxy the peer is the client");
}

// Email codes: their length, the cap on failed entries per account, and a per-email delay that a third
// party cannot turn against the owner.

/// A login server with the dev outbox, `127.0.0.1` as a trusted proxy (so `X-Forwarded-For` sets the
/// client network of each step), a manual clock, and the given backend.
async fn guarded_flow(backend: Backend, clock: &ManualClock, adjust: impl FnOnce(&mut Config)) -> Flow {
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestPostgres::create().await),
    };
    let mut config = test_config(&dir, postgres.as_ref());
    config.login.dev_outbox = true;
    config.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
    adjust(&mut config);
    Flow::on(TestServer::start_in_with_clock(dir, postgres, config, Arc::new(clock.clone())).await).await
}

/// A browser on the network of `ip`: starts a flow, sends the email step (with a captcha solution when
/// given), enters codes.
struct Browser<'a> {
    flow: &'a Flow,
    ip: &'static str,
    path: String,
    binding: String,
}

impl<'a> Browser<'a> {
    async fn start(flow: &'a Flow, ip: &'static str) -> Self {
        let started = flow
            .client
            .get(flow.url("/login"))
            .query(&flow.standard_query())
            .header("x-forwarded-for", ip)
            .send()
            .await
            .expect("login");
        let (path, binding) = begun(&started);
        Self { flow, ip, path, binding }
    }

    async fn email(&self, email: &str, captcha: Option<String>) -> Response {
        let mut form = vec![("email", email.to_owned())];
        form.extend(captcha.map(|c| ("captcha", c)));
        self.flow
            .client
            .post(self.flow.url(&format!("{}/email", self.path)))
            .header("cookie", &self.binding)
            .header("x-forwarded-for", self.ip)
            .form(&form)
            .send()
            .await
            .expect("email step")
    }

    /// The email step as the page's script does it: sent once, and when the answer asks for a captcha,
    /// solved and sent again. The final answer and whether a captcha was needed.
    async fn email_solving(&self, email: &str) -> (Response, bool) {
        let first = self.email(email, None).await;
        if first.status() != StatusCode::BAD_REQUEST {
            return (first, false);
        }
        let html = first.text().await.expect("html");
        assert!(html.contains("checked your browser"), "only a captcha (captchaInvalid) is asked for: {html}");
        let challenge = page_challenge(&html).expect("the page carries a challenge");
        (self.email(email, Some(solve(&challenge))).await, true)
    }

    async fn code(&self, code: &str) -> Response {
        self.flow.post_code(&self.path, &self.binding, code).await
    }
}

/// Whether a code step voided the attempt: the flow ended and the browser went to the application's
/// callback with `loginAttemptInvalid` ("Too many wrong codes. Please request a new code.").
fn voided(response: &Response) -> bool {
    response.status() == StatusCode::SEE_OTHER
        && crate::login::location(response).contains("error=loginAttemptInvalid")
        && crate::login::location(response).contains("new+code")
}

async fn outbox_len(flow: &Flow) -> usize {
    let (_, outbox) = flow.server.get_json("/dev/outbox").await;
    outbox["messages"].as_array().map_or(0, Vec::len)
}

fn wrong_code(right: &str) -> String {
    let first = if right.starts_with('0') { '1' } else { '0' };
    std::iter::repeat_n(first, right.len()).collect()
}

async fn audit_kinds(flow: &Flow, kind: &str) -> Vec<Value> {
    let path = format!("/admin/v1/organizations/{}/audit?kind={kind}", flow.org);
    let (status, body) = read_json(flow.server.admin(reqwest::Method::GET, &path).send().await.expect("audit")).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().cloned().unwrap_or_default()
}

const OWNER_NET: &str = "203.0.113.9";
const ATTACKER_NET: &str = "198.51.100.7";

/// Codes carry at least 20 bits: 6 digits by default, and the page's field asks for exactly that.
#[tokio::test]
async fn codes_have_six_digits_by_default() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let flow = guarded_flow(Backend::Sqlite, &clock, |_| {}).await;
    let browser = Browser::start(&flow, OWNER_NET).await;
    let sent = browser.email("ada@example.com", None).await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let code = flow.outbox_code().await;
    assert_eq!(code.len(), 6, "{code}");
    let page = flow.client.get(flow.url(&location(&sent))).header("cookie", &browser.binding).send().await;
    let html = page.expect("code page").text().await.expect("html");
    assert!(html.contains(r#"pattern="[0-9]{6}""#) && html.contains(r#"maxlength="6""#), "{html}");
    assert!(html.contains(r#"autocomplete="one-time-code""#));
    assert_eq!(browser.code(&code).await.status(), StatusCode::SEE_OTHER, "the code logs in");
}

/// `login.code_digits` sets the length of the codes and of the page's field.
#[tokio::test]
async fn codes_have_the_configured_length() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let flow = guarded_flow(Backend::Sqlite, &clock, |c| c.login.code_digits = 9).await;
    let browser = Browser::start(&flow, OWNER_NET).await;
    let sent = browser.email("ada@example.com", None).await;
    let code = flow.outbox_code().await;
    assert_eq!(code.len(), 9, "{code}");
    let page = flow.client.get(flow.url(&location(&sent))).header("cookie", &browser.binding).send().await;
    let html = page.expect("code page").text().await.expect("html");
    assert!(html.contains(r#"pattern="[0-9]{9}""#) && html.contains(r#"maxlength="9""#), "{html}");
    assert_eq!(browser.code(&code).await.status(), StatusCode::SEE_OTHER, "the code logs in");
}

/// `login.max_code_failures` sets the cap: with 3, the third wrong code of a first attempt voids it and
/// locks the account out, which the organization's event endpoint hears once.
#[tokio::test]
async fn a_configured_cap_locks_out_sooner() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let flow = guarded_flow(Backend::Sqlite, &clock, |c| {
        c.login.max_code_failures = 3;
        crate::events::hear_events(c);
    })
    .await;
    let receiver = crate::events::subscribe(&flow.server, &flow.org).await;
    let browser = Browser::start(&flow, ATTACKER_NET).await;
    assert_eq!(browser.email("ada@example.com", None).await.status(), StatusCode::SEE_OTHER);
    let wrong = wrong_code(&flow.outbox_code().await);
    for left in ["4 tries left", "3 tries left"] {
        assert!(browser.code(&wrong).await.text().await.expect("html").contains(left));
    }
    assert!(browser.code(&wrong).await.text().await.expect("html").contains("new code"), "void at the cap");
    let locked = audit_kinds(&flow, "login.lockedOut").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(
        (locked[0]["subject"].as_str(), locked[0]["detail"]["failures"].as_u64()),
        (Some("ada@example.com"), Some(3))
    );
    let event = crate::events::the_one_event(&flow.server, &flow.org, &receiver, "login.lockedOut").await;
    assert_eq!(event["data"]["email"], "ada@example.com");
    assert_eq!(
        (event["data"]["failures"].as_u64(), event["data"]["code"].as_str()),
        (Some(3), Some("loginAttemptInvalid"))
    );
    clock.advance(Duration::from_secs(3601));
    let again = Browser::start(&flow, OWNER_NET).await;
    assert_eq!(again.email("ada@example.com", None).await.status(), StatusCode::BAD_REQUEST, "a captcha first");
}

/// One account's guessing: `cap` wrong codes across attempts (each an hour apart, past every delay and
/// the per-email captcha escalation), then the email step asks for a captcha and sends nothing without
/// it; with it, a code comes, and a wrong entry voids it at once; the right code logs in and lifts the
/// lockout. The statuses seen, for comparing accounts.
async fn guess_until_locked(flow: &Flow, clock: &ManualClock, email: &str, cap: usize) -> Vec<u16> {
    let mut seen = Vec::new();
    let mut failures = 0;
    while failures < cap {
        clock.advance(Duration::from_secs(3601));
        let browser = Browser::start(flow, ATTACKER_NET).await;
        let sent = browser.email(email, None).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER, "below the cap, no captcha: {:?}", sent.text().await);
        seen.push(sent.status().as_u16());
        let wrong = wrong_code(&flow.outbox_code().await);
        for _ in 0..5 {
            if failures == cap {
                break;
            }
            let refused = browser.code(&wrong).await;
            seen.push(refused.status().as_u16());
            failures += 1;
            if voided(&refused) {
                break;
            }
        }
    }
    let locked = audit_kinds(flow, "login.lockedOut").await;
    assert!(
        locked.iter().any(|e| e["subject"] == email && e["detail"]["failures"] == cap),
        "the lockout is audited: {locked:?}"
    );

    clock.advance(Duration::from_secs(3601));
    let browser = Browser::start(flow, ATTACKER_NET).await;
    let mails = outbox_len(flow).await;
    let refused = browser.email(email, None).await;
    seen.push(refused.status().as_u16());
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let html = refused.text().await.expect("html");
    assert!(html.contains("checked your browser"), "captchaInvalid: {html}");
    assert_eq!(outbox_len(flow).await, mails, "no code without a solved captcha");
    let challenge = page_challenge(&html).expect("a challenge");
    assert_eq!(level_of(&challenge), 3, "the highest level");
    let sent = browser.email(email, Some(solve(&challenge))).await;
    seen.push(sent.status().as_u16());
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let code = flow.outbox_code().await;
    let refused = browser.code(&wrong_code(&code)).await;
    seen.push(refused.status().as_u16());
    assert!(voided(&refused), "past the cap, one wrong code voids it");
    assert!(voided(&browser.code(&code).await), "void");

    // The owner, from the owner's network: a captcha, then the right code logs in and lifts the lockout.
    clock.advance(Duration::from_secs(3601));
    let owner = Browser::start(flow, OWNER_NET).await;
    let (sent, solved) = owner.email_solving(email).await;
    assert!(solved, "the lockout holds for every network");
    seen.push(sent.status().as_u16());
    let accepted = owner.code(&flow.outbox_code().await).await;
    seen.push(accepted.status().as_u16());
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert!(location(&accepted).starts_with(super::login::CALLBACK), "logged in");

    clock.advance(Duration::from_secs(3601));
    let again = Browser::start(flow, ATTACKER_NET).await;
    let sent = again.email(email, None).await;
    seen.push(sent.status().as_u16());
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "a login resets the count");
    seen
}

async fn guessing_is_capped_per_account(backend: Backend) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let flow = guarded_flow(backend, &clock, |_| {}).await;
    // A known account (it logged in before) and an unknown email are capped the same way.
    let owner = Browser::start(&flow, OWNER_NET).await;
    assert_eq!(owner.email("known@example.com", None).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(owner.code(&flow.outbox_code().await).await.status(), StatusCode::SEE_OTHER);
    let known = guess_until_locked(&flow, &clock, "known@example.com", 20).await;
    let unknown = guess_until_locked(&flow, &clock, "stranger@example.com", 20).await;
    assert_eq!(known, unknown, "no account enumeration");
}

#[tokio::test]
async fn guessing_is_capped_per_account_on_sqlite() {
    guessing_is_capped_per_account(Backend::Sqlite).await;
}

#[tokio::test]
async fn guessing_is_capped_per_account_on_postgres() {
    guessing_is_capped_per_account(Backend::Postgres).await;
}

/// A third party's email steps for someone else's address, from its own network, never make the owner
/// wait on the owner's network: at most the owner's browser solves a captcha. The third party's own
/// network is still throttled, and so is the owner's after the owner's own step.
async fn third_party_steps_do_not_delay_the_owner(backend: Backend) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let flow = guarded_flow(backend, &clock, |_| {}).await;
    let attacker = Browser::start(&flow, ATTACKER_NET).await;
    assert_eq!(attacker.email("victim@example.com", None).await.status(), StatusCode::SEE_OTHER);
    let throttled = attacker.email("victim@example.com", None).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "the third party's network waits");
    assert!(retry_after(&throttled) >= 1);

    // A second later (the outbox lists the owner's mail first), well inside the third party's delay.
    clock.advance(Duration::from_secs(1));
    let owner = Browser::start(&flow, OWNER_NET).await;
    let (sent, _) = owner.email_solving("victim@example.com").await;
    assert!(sent.headers().get("retry-after").is_none(), "no wait for the owner");
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "{:?}", sent.text().await);
    assert_eq!(owner.code(&flow.outbox_code().await).await.status(), StatusCode::SEE_OTHER, "the owner logs in");

    let again = Browser::start(&flow, OWNER_NET).await;
    assert_eq!(
        again.email("victim@example.com", None).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the owner's own steps still count on the owner's network"
    );
}

#[tokio::test]
async fn third_party_steps_do_not_delay_the_owner_on_sqlite() {
    third_party_steps_do_not_delay_the_owner(Backend::Sqlite).await;
}

#[tokio::test]
async fn third_party_steps_do_not_delay_the_owner_on_postgres() {
    third_party_steps_do_not_delay_the_owner(Backend::Postgres).await;
}
