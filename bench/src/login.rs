//! The hosted login flow in process on SQLite: complete email-code logins (authorization request, code
//! mailed, code entered, callback, token exchange with PKCE) per second, and the token exchange alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::login::model::{FlowFace, User};
use portcullis_core::login::{AuthorizeRequest, EmailStep, LoginOutcome, LoginService, StartedFlow, TokenRequest};
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::report::{Figure, Report};

pub(crate) const CALLBACK: &str = "https://app.example.com/api/auth/callback";
pub(crate) const VERIFIER: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

/// Starts a compat-face flow with the bench's callback and PKCE challenge.
pub(crate) async fn start_flow(login: &LoginService, org: &str, challenge: &str) -> StartedFlow {
    let request = AuthorizeRequest {
        client_id: Some(org.to_owned()),
        redirect_uri: Some(CALLBACK.to_owned()),
        response_type: Some("code".to_owned()),
        state: Some("bench-state".to_owned()),
        code_challenge: Some(challenge.to_owned()),
        code_challenge_method: Some("S256".to_owned()),
        ..AuthorizeRequest::default()
    };
    login.start(&request, FlowFace::Compat).await.map_err(|e| format!("{e:?}")).expect("start")
}

/// Exchanges an authorization code as `/api/v1/verify` does (client secret, PKCE verifier).
pub(crate) async fn exchange(login: &LoginService, org: &str, secret: &str, code: String) {
    login
        .exchange_compat(&TokenRequest {
            code: Some(code),
            redirect_uri: Some(CALLBACK.to_owned()),
            code_verifier: Some(VERIFIER.to_owned()),
            client_id: Some(org.to_owned()),
            client_secret: Some(secret.to_owned()),
            ..TokenRequest::default()
        })
        .await
        .expect("tokens");
}

/// The S256 challenge of a PKCE verifier.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

/// The code in a login mail (6 to 10 digits, `login.code_digits`).
pub(crate) fn code_in(body: &str) -> String {
    body.split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| (6..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("code in the message")
        .to_owned()
}

pub(crate) async fn run(report: &mut Report, window: Duration, runs: usize, prefill_users: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions { path: dir.path().join("login.db"), readers: 2, synchronous: Synchronous::Normal };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).expect("open"));
    store.migrate().await.expect("migrate");
    let master = Arc::new(MasterKey::generate().expect("master key").0);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let login = LoginService::new(Arc::clone(&store), clock, master, "https://auth.example.com".to_owned());
    let mut org = Organization::new("bench", SystemClock.now()).expect("organization");
    org.set_whitelist(vec!["https://app.example.com".to_owned()]).expect("whitelist");
    store.insert_organization(&org).await.expect("organization");
    let (secret, _) = login.new_secret(&org.id).await.expect("secret");
    let now = SystemClock.now();
    for i in 0..prefill_users {
        let user = User {
            id: format!("prefilled-{i}"),
            organization_id: org.id.clone(),
            email: format!("prefilled{i}@example.com"),
            verified: true,
            blocked: false,
            created: now,
            updated: now,
            last_login: Some(now),
        };
        store.user_by_email(&org.id, &user.email, Some(&user)).await.expect("prefill");
    }
    let challenge = pkce_challenge(VERIFIER);

    let (mut logins, mut exchanges) = (Vec::new(), Vec::new());
    let mut user = 0u64;
    for _ in 0..runs {
        let (mut count, mut exchange_time) = (0u64, Duration::ZERO);
        let start = Instant::now();
        while start.elapsed() < window {
            let started = start_flow(&login, &org.id, &challenge).await;
            user += 1;
            let message = login
                .send_code(
                    &started.flow.id,
                    Some(&started.binding),
                    &format!("user{user}@example.com"),
                    &EmailStep::default(),
                )
                .await
                .expect("send");
            let code = code_in(&message.message.body);
            // The benchmark's organization has passkeys off: a code goes straight to the callback.
            let LoginOutcome::Redirect(callback) =
                login.enter_code(&started.flow.id, Some(&started.binding), &code).await.expect("code accepted")
            else {
                panic!("passkeys are off: no passkey step");
            };
            let authorization_code = callback
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .expect("authorization code");
            let exchange_start = Instant::now();
            exchange(&login, &org.id, &secret, authorization_code).await;
            exchange_time += exchange_start.elapsed();
            count += 1;
        }
        logins.push(count as f64 / start.elapsed().as_secs_f64());
        exchanges.push(count as f64 / exchange_time.as_secs_f64());
    }
    report.figure(Figure {
        id: "login-inprocess",
        name: "complete email-code login on SQLite, 1 client",
        what: "authorize + mail code + enter code + callback + token exchange (new user each time)",
        runs: logins,
    });
    report.figure(Figure {
        id: "exchange-inprocess",
        name: "token exchange on SQLite, 1 client",
        what: "POST /api/v1/verify work: client auth, code redemption, PKCE, JWE access + ID tokens",
        runs: exchanges,
    });
}
