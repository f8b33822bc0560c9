//! The third-party API a connector account talks to: a real HTTP server with an OAuth 2 token endpoint
//! that rotates refresh tokens, and one protected resource.
//!
//! Token `n` is the pair `at-n` / `rt-n`. An access token expires a set lifetime after it was issued
//! (it then answers 401, and the connector's rule refreshes), so with a short lifetime a steady call load
//! keeps the account refreshing several times a second. It never expires before its first use: a real
//! provider's token lives minutes, far longer than the step from the refresh to the retry, and a loaded
//! machine must not turn that step into a refused retry (which rightly ends in `needsReauthentication`). A refresh with the current `rt-n` issues `n + 1`
//! and revokes every older access token. Like most providers, the previous refresh token is still accepted
//! until the new access token has been used (it answers the same current pair again): a client killed
//! between the token answer and storing it loses nothing. Once `at-n` has been used, the rotation is
//! complete and presenting any older refresh token is a violation: the client did not keep the token the
//! upstream rotated to.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;

#[derive(Debug)]
struct Rotation {
    /// The current token index.
    current: u64,
    /// Whether `at-current` has been used (the rotation to `current` is complete).
    current_used: bool,
    issued: Instant,
    lifetime: Duration,
    /// The current access token was ended early.
    expired: bool,
    refreshes: u64,
    /// Refreshes answered with the previous refresh token (a kill fell between the answer and the store).
    replays: u64,
    violations: Vec<String>,
}

/// A handle on the running upstream.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) url: String,
    state: Arc<Mutex<Rotation>>,
}

/// What the upstream saw.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub(crate) refreshes: u64,
    pub(crate) replays: u64,
    pub(crate) violations: Vec<String>,
}

impl Observed {
    /// Every refresh request answered, rotations and replays alike.
    pub(crate) fn token_requests(&self) -> u64 {
        self.refreshes + self.replays
    }
}

impl Upstream {
    /// Starts on a free loopback port; access tokens live `lifetime`.
    pub(crate) async fn start(lifetime: Duration) -> Result<Self, String> {
        let state = Arc::new(Mutex::new(Rotation {
            current: 0,
            current_used: false,
            issued: Instant::now(),
            lifetime,
            expired: false,
            refreshes: 0,
            replays: 0,
            violations: Vec::new(),
        }));
        let app = Router::new().route("/token", post(token)).route("/items", get(items)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("upstream: {e}"))?;
        let address = listener.local_addr().map_err(|e| format!("upstream: {e}"))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url: format!("http://{address}"), state })
    }

    /// The auth value an account is installed with: token 0, no expiry (refreshed on 401 only).
    pub(crate) fn initial_auth_value() -> String {
        json!({ "AccessToken": "at-0", "RefreshToken": "rt-0" }).to_string()
    }

    /// Ends the current access token's life now: calls answer 401 until the next refresh.
    pub(crate) fn expire_access_token(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).expired = true;
    }

    pub(crate) fn observed(&self) -> Observed {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Observed { refreshes: state.refreshes, replays: state.replays, violations: state.violations.clone() }
    }
}

fn index(token: &str, prefix: &str) -> Option<u64> {
    token.strip_prefix(prefix)?.parse().ok()
}

async fn token(State(state): State<Arc<Mutex<Rotation>>>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("grant_type") != Some("refresh_token") {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "unsupported_grant_type" }))).into_response();
    }
    let presented = field("refresh_token").and_then(|t| index(t, "rt-"));
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let current = state.current;
    match presented {
        Some(n) if n == current => {
            state.current += 1;
            state.current_used = false;
            state.issued = Instant::now();
            state.expired = false;
            state.refreshes += 1;
        }
        // The previous token before its successor was used: the client may have lost the answer. The
        // same pair again, with a fresh access-token lifetime.
        Some(n) if n + 1 == current && !state.current_used => {
            state.issued = Instant::now();
            state.expired = false;
            state.replays += 1;
        }
        other => {
            let seen = if state.current_used { "used" } else { "not yet used" };
            state.violations.push(format!(
                "refresh token {other:?} presented while the current is rt-{current} (at-{current} {seen})"
            ));
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant" }))).into_response();
        }
    }
    let n = state.current;
    Json(json!({
        "access_token": format!("at-{n}"),
        "refresh_token": format!("rt-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

async fn items(State(state): State<Arc<Mutex<Rotation>>>, headers: HeaderMap) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| index(t, "at-"));
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let aged_out = state.current_used && state.issued.elapsed() > state.lifetime;
    if presented != Some(state.current) || state.expired || aged_out {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_token" }))).into_response();
    }
    state.current_used = true;
    Json(json!({ "items": [] })).into_response()
}
