//! The demo app: a page, a sign-in, a protected API, a claim-protected API and sign-out, all through the
//! Portcullis SDK. Environment:
//!
//! - `PORTCULLIS_URL` (default `http://127.0.0.1:7420`) and `DEMO_API_KEY` (an organization API key:
//!   `portcullis org api-key create <org>`);
//! - `DEMO_LISTEN` (default `127.0.0.1:3000`);
//! - `DEMO_DEV_MODE=1` enables `/dev/*`: a sign-in for any user id (there is no login page yet), and the
//!   controls the browser tests use;
//! - `DEMO_REVOCATION_POLL_MS` (default 1000): how often revoked sessions are fetched;
//! - `DEMO_CLIENT_ID` and `DEMO_CLIENT_SECRET` (the organization id and its client secret) turn on the
//!   hosted login: `/api/auth/login` → Portcullis's login page → `/api/auth/callback` → a session.
#![allow(clippy::print_stdout, reason = "the first line tells the caller where the app listens")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::session::{ClaimValidator, ROLES, claim_entry};
use portcullis_sdk::{LoginClient, Portcullis, Session, require_session};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Clone)]
struct Demo {
    portcullis: Portcullis,
    stats: Arc<Stats>,
}

/// What the login routes need.
#[derive(Clone)]
struct LoginState {
    portcullis: Portcullis,
    client: LoginClient,
}

impl axum::extract::FromRef<LoginState> for Portcullis {
    fn from_ref(state: &LoginState) -> Self {
        state.portcullis.clone()
    }
}

impl axum::extract::FromRef<LoginState> for LoginClient {
    fn from_ref(state: &LoginState) -> Self {
        state.client.clone()
    }
}

#[derive(Default)]
struct Stats {
    refresh_attempts: AtomicU64,
    refresh_successes: AtomicU64,
    drop_next_refresh: AtomicBool,
}

impl axum::extract::FromRef<Demo> for Portcullis {
    fn from_ref(demo: &Demo) -> Self {
        demo.portcullis.clone()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-app: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let server = std::env::var("PORTCULLIS_URL").unwrap_or_else(|_| "http://127.0.0.1:7420".to_owned());
    let api_key =
        std::env::var("DEMO_API_KEY").map_err(|_| "DEMO_API_KEY is required (portcullis org api-key create <org>)")?;
    let listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let dev_mode = std::env::var("DEMO_DEV_MODE").is_ok_and(|v| v == "1");
    let poll = std::env::var("DEMO_REVOCATION_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);

    let portcullis = Portcullis::builder(&server, &api_key)
        .revocation_check(Duration::from_millis(poll), Duration::from_secs(3600))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let demo = Demo { portcullis: portcullis.clone(), stats: Arc::default() };

    let admin_only = portcullis.guard(vec![ClaimValidator::HasRole("admin".to_owned())]);
    let mut app = Router::new()
        .route("/", get(page))
        .route("/api/me", get(me))
        .route("/api/admin", get(admin).route_layer(from_fn_with_state(admin_only, require_session)))
        .merge(portcullis.session_routes::<Demo>().route_layer(from_fn_with_state(demo.clone(), count_refreshes)));
    if dev_mode {
        app = app
            .route("/dev/sign-in", post(sign_in))
            .route("/dev/revoke", post(revoke))
            .route("/dev/stats", get(stats))
            .route("/dev/fault/drop-next-refresh", post(arm_fault));
    }
    let listener =
        tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if let (Ok(client_id), Ok(secret)) = (std::env::var("DEMO_CLIENT_ID"), std::env::var("DEMO_CLIENT_SECRET")) {
        let callback = format!("http://{address}/api/auth/callback");
        let client = LoginClient::new(&server, &client_id, &secret, &callback).map_err(|e| e.to_string())?;
        let state = LoginState { portcullis: portcullis.clone(), client: client.clone() };
        app = app.merge(client.routes::<LoginState>().with_state(state));
    }
    println!("demo-app listening on http://{address}");
    axum::serve(listener, app.with_state(demo)).await.map_err(|e| e.to_string())
}

async fn page() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portcullis demo</title></head>\
         <body><h1>Portcullis demo</h1><p><a href=\"/api/auth/login\">Log in</a></p>\
         <p>Sessions through the Portcullis SDK. APIs: <code>GET /api/me</code>, \
         <code>GET /api/admin</code> (needs the admin role), <code>POST /auth/session/refresh</code>, \
         <code>POST /auth/signout</code>.</p></body></html>",
    )
}

async fn me(session: Session) -> Json<Value> {
    Json(json!({ "userId": session.user_id(), "sessionHandle": session.handle() }))
}

async fn admin(session: Session) -> Json<Value> {
    Json(json!({ "message": "hello admin", "userId": session.user_id() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Dev only: creates a session for any user id (the hosted login flow replaces this).
async fn sign_in(State(demo): State<Demo>, headers: HeaderMap, Json(body): Json<SignIn>) -> Response {
    let mut claims = Map::new();
    claims.insert(ROLES.to_owned(), claim_entry(json!(body.roles), SystemClock.now()));
    match demo.portcullis.create_session(&headers, &body.user_id, claims).await {
        Ok(session_headers) => {
            (session_headers, Json(json!({ "status": "OK", "userId": body.user_id }))).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "message": e.to_string() }))).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revoke {
    user_id: String,
}

async fn revoke(State(demo): State<Demo>, Json(body): Json<Revoke>) -> Response {
    match demo.portcullis.client().revoke_user_sessions(&body.user_id).await {
        Ok(n) => Json(json!({ "revoked": n })).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "message": e.to_string() }))).into_response(),
    }
}

async fn stats(State(demo): State<Demo>) -> Json<Value> {
    Json(json!({
        "refreshAttempts": demo.stats.refresh_attempts.load(Ordering::SeqCst),
        "refreshSuccesses": demo.stats.refresh_successes.load(Ordering::SeqCst),
    }))
}

async fn arm_fault(State(demo): State<Demo>) -> StatusCode {
    demo.stats.drop_next_refresh.store(true, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

/// Counts refreshes, and (dev fault switch) drops the connection of one committed refresh before any
/// response byte, as a lost response would.
async fn count_refreshes(State(demo): State<Demo>, request: Request, next: Next) -> Response {
    let is_refresh = request.uri().path().ends_with("/session/refresh");
    if is_refresh {
        demo.stats.refresh_attempts.fetch_add(1, Ordering::SeqCst);
    }
    let response = next.run(request).await;
    if is_refresh && response.status() == StatusCode::OK {
        demo.stats.refresh_successes.fetch_add(1, Ordering::SeqCst);
        if demo.stats.drop_next_refresh.swap(false, Ordering::SeqCst) {
            // The refresh is committed at Portcullis; abandoning the connection task now sends nothing.
            std::panic::resume_unwind(Box::new("dev fault: dropping the connection of a committed refresh"));
        }
    }
    response
}
