//! The login client: what `CentralAuthClass` does for a Node app, for an axum app. It sends the user to
//! Portcullis's hosted login, checks the callback (`state`, PKCE), exchanges the code, reads the user from
//! the ID token (decrypted locally with the client secret), and ends in a Portcullis session.
//!
//! It follows the CentralAuth seed's error pattern: a failed callback redirects back to the login route
//! with `?error_message=…`, which the hosted page shows.

use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::session::{EMAIL_VERIFIED, claim_entry};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Portcullis;

const STATE_COOKIE: &str = "pc_login_state";
const VERIFIER_COOKIE: &str = "pc_login_verifier";
const RETURN_COOKIE: &str = "pc_login_return";

/// A failed login step: the catalog code and the message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LoginError {
    /// Catalog code (`stateInvalid`, `tokenInvalid`, …).
    pub code: String,
    /// Message for people.
    pub message: String,
}

/// How the app reaches Portcullis's hosted login.
#[derive(Debug, Clone)]
pub struct LoginClient {
    base_url: String,
    client_id: String,
    client_secret: String,
    callback_url: String,
    http: reqwest::Client,
}

/// The user the ID token names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginUser {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Whether the email is verified.
    #[serde(default)]
    pub verified: bool,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source does not fail in practice; a zeroed value would only fail the state check.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

fn cookie(name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let cookie = cookie::Cookie::build((name.to_owned(), value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&cookie.encoded().to_string()).ok()
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse_encoded(v.to_owned()).flatten())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

impl LoginClient {
    /// A client for the organization `client_id` with its secret; `callback_url` must be whitelisted.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str, callback_url: &str) -> Result<Self, LoginError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| LoginError { code: "genericError".to_owned(), message: e.to_string() })?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            callback_url: callback_url.to_owned(),
            http,
        })
    }

    /// Redirects to the hosted login, remembering `state`, the PKCE verifier and where to return in
    /// short-lived cookies. `error_message` is shown on the login page.
    #[must_use]
    pub fn login(&self, error_message: Option<&str>, return_to: &str) -> Response {
        let state = random_token();
        let verifier = random_token();
        let challenge = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()),
        );
        let mut query = vec![
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.callback_url.clone()),
            ("response_type", "code".to_owned()),
            ("state", state.clone()),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".to_owned()),
        ];
        if let Some(message) = error_message {
            query.push(("error_description", message.to_owned()));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let mut response = redirect(&format!("{}/login?{query}", self.base_url));
        for (name, value) in
            [(STATE_COOKIE, state.as_str()), (VERIFIER_COOKIE, verifier.as_str()), (RETURN_COOKIE, return_to)]
        {
            if let Some(value) = cookie(name, value, 3600) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// Checks the callback and exchanges its code; returns the user.
    ///
    /// # Errors
    /// A [`LoginError`] with the code from the callback (`?error=`) or from Portcullis.
    pub async fn callback(&self, headers: &HeaderMap, query: &CallbackQuery) -> Result<LoginUser, LoginError> {
        let fail = |code: &str, message: &str| LoginError { code: code.to_owned(), message: message.to_owned() };
        if let Some(code) = &query.error {
            return Err(fail(code, query.error_description.as_deref().unwrap_or("The login failed.")));
        }
        let code = query.code.as_deref().ok_or_else(|| fail("missingFields", "The callback carries no code."))?;
        let expected = read_cookie(headers, STATE_COOKIE);
        if expected.is_none() || expected.as_deref() != query.state.as_deref() {
            return Err(fail(
                "stateInvalid",
                "The login response does not belong to this browser. Please log in again.",
            ));
        }
        let verifier = read_cookie(headers, VERIFIER_COOKIE)
            .ok_or_else(|| fail("codeChallengeInvalid", "The login verifier is missing."))?;
        let response = self
            .http
            .post(format!("{}/api/v1/verify", self.base_url))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.callback_url),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .map_err(|e| fail("genericError", &format!("Portcullis is unreachable: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| fail("genericError", &e.to_string()))?;
        if !status.is_success() {
            return Err(fail(
                body["errorCode"].as_str().unwrap_or("genericError"),
                body["message"].as_str().unwrap_or("The login could not be completed."),
            ));
        }
        let id_token = body["id_token"].as_str().ok_or_else(|| fail("tokenInvalid", "No ID token in the answer."))?;
        let plain = portcullis_core::login::jwe::decrypt(self.client_secret.as_bytes(), id_token)
            .map_err(|_| fail("tokenInvalid", "The ID token does not decrypt with the client secret."))?;
        let claims: Value =
            serde_json::from_slice(&plain).map_err(|_| fail("tokenInvalid", "The ID token is not JSON."))?;
        serde_json::from_value(claims["user"].clone()).map_err(|_| fail("tokenInvalid", "The ID token names no user."))
    }

    /// The routes `/api/auth/login`, `/api/auth/callback` and `/api/auth/user`: a successful callback
    /// creates a Portcullis session and returns to where the login started; a failed one goes back to
    /// the login route with the message (the seed's pattern).
    pub fn routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
        Portcullis: FromRef<S>,
        LoginClient: FromRef<S>,
    {
        Router::new()
            .route("/api/auth/login", get(login_route))
            .route("/api/auth/callback", get(callback_route))
            .route("/api/auth/user", get(user_route))
    }
}

/// The callback's query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// Authorization code.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// Error code, on failure.
    pub error: Option<String>,
    /// Error message, on failure.
    pub error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    error_message: Option<String>,
    return_to: Option<String>,
}

async fn login_route(State(client): State<LoginClient>, Query(query): Query<LoginQuery>) -> Response {
    // Only paths on this app: never an open redirect.
    let return_to = query.return_to.filter(|r| r.starts_with('/') && !r.starts_with("//") && !r.contains('\\'));
    client.login(query.error_message.as_deref(), return_to.as_deref().unwrap_or("/"))
}

async fn callback_route(
    State(client): State<LoginClient>,
    State(portcullis): State<Portcullis>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let user = match client.callback(&headers, &query).await {
        Ok(user) => user,
        Err(error) => {
            let message: String = url_encode(&error.message);
            return redirect(&format!("/api/auth/login?error_message={message}"));
        }
    };
    let mut claims = Map::new();
    claims.insert(EMAIL_VERIFIED.to_owned(), claim_entry(json!(user.verified), SystemClock.now()));
    claims.insert("email".to_owned(), json!(user.email));
    // Browsers follow the redirect with cookies: the session goes out as cookies.
    let mut cookie_mode = headers.clone();
    cookie_mode.insert("st-auth-mode", HeaderValue::from_static("cookie"));
    let session_headers = match portcullis.create_session(&cookie_mode, &user.id, claims).await {
        Ok(headers) => headers,
        Err(e) => return (StatusCode::BAD_GATEWAY, Json(json!({ "message": e.to_string() }))).into_response(),
    };
    let return_to = read_cookie(&headers, RETURN_COOKIE).unwrap_or_else(|| "/".to_owned());
    let mut response = redirect(&return_to);
    for (name, value) in &session_headers {
        response.headers_mut().append(name, value.clone());
    }
    for name in [STATE_COOKIE, VERIFIER_COOKIE, RETURN_COOKIE] {
        if let Some(value) = cookie(name, "", 0) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn user_route(session: crate::Session) -> Json<Value> {
    Json(json!({ "userId": session.user_id(), "email": session.payload().get("email") }))
}

fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).map(|s| s.trim_start_matches('=').to_owned()).unwrap_or_default()
}
