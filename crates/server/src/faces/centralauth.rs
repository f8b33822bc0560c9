//! The CentralAuth-compatible API: `POST /api/v1/verify` (token), `POST /api/v1/userinfo`,
//! `POST /api/v1/logout`, and the dev outbox. Parsing is lenient where CentralAuth's client libraries
//! need it (multipart bodies, no `grant_type`, raw token bodies); the rules are the core's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::login::{DirectOutcome, TokenRequest, UserinfoRequest};
use portcullis_core::{Error, ErrorCode};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::CENTRALAUTH;
use crate::app::App;
use crate::http::{ApiError, ErrorReport, OAuthErrorBody, RequestId};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(userinfo))
        .routes(routes!(logout))
        .routes(routes!(authenticate_direct))
}

/// The development outbox (`login.dev_outbox`): the last mails, for local testing.
pub(crate) fn dev_routes() -> Router<Arc<App>> {
    Router::new().route("/dev/outbox", get(outbox))
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 requires.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}

/// Reads an urlencoded or multipart body into fields.
async fn form_fields(request: Request) -> Result<HashMap<String, String>, Error> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::new(ErrorCode::EntityInvalid)
            .with_message("The request body could not be read.")
            .with_internal(e.to_string())
    };
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| unreadable(&e))?;
        let mut fields = HashMap::new();
        while let Some(field) = multipart.next_field().await.map_err(|e| unreadable(&e))? {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.text().await.map_err(|e| unreadable(&e))?;
            fields.insert(name, value);
        }
        Ok(fields)
    } else if content_type.starts_with("application/x-www-form-urlencoded") || content_type.is_empty() {
        let bytes = Bytes::from_request(request, &()).await.map_err(|e| unreadable(&e))?;
        serde_urlencoded::from_bytes(&bytes).map_err(|e| unreadable(&e))
    } else {
        Err(Error::new(ErrorCode::EntityInvalid)
            .with_status(415)
            .with_message("The body must be application/x-www-form-urlencoded or multipart/form-data."))
    }
}

/// Token endpoint errors carry the RFC 6749 fields beside the catalog's (a superset every client reads).
pub(crate) fn token_error(error: Error, request_id: &RequestId, issuer: &str) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    // At the token endpoint a bad verifier or redirect URI is a bad grant, a refused client is
    // `invalid_client` (RFC 6749 §5.2); the core names anything more specific.
    let oauth = match error.code() {
        ErrorCode::TokenInvalid | ErrorCode::CodeChallengeInvalid | ErrorCode::CallbackUrlInvalid => "invalid_grant",
        ErrorCode::NoPermission | ErrorCode::OrganizationIdMissing => "invalid_client",
        _ => error.oauth_error(),
    };
    let body = OAuthErrorBody {
        error: oauth.to_owned(),
        error_description: portcullis_core::login::callback::safe_description(error.message()),
        error_code: error.code(),
        message: error.message().to_owned(),
        request_id: request_id.0.clone(),
    };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{issuer}\""))
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    response.extensions_mut().insert(ErrorReport(Arc::new(error)));
    response
}

/// The code exchange's form fields (CentralAuth's libraries send them urlencoded or as multipart).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form that the handler reads field by field")]
struct VerifyForm {
    code: String,
    redirect_uri: String,
    /// PKCE verifier (required unless the organization turned PKCE off).
    code_verifier: Option<String>,
    /// Optional; `authorization_code`.
    grant_type: Option<String>,
    /// Without `Authorization: Basic`.
    client_id: Option<String>,
    /// Without `Authorization: Basic`.
    client_secret: Option<String>,
}

/// CentralAuth's token answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct VerifyAnswer {
    /// JWE `{sessionId}`: present it to `/api/v1/userinfo`.
    access_token: String,
    /// JWE `{sessionId, user}`.
    id_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the session's absolute limit, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    /// The same as a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<portcullis_core::clock::Timestamp>,
}

/// Exchanges an authorization code (CentralAuth's `/api/v1/verify`).
#[utoipa::path(post, path = "/api/v1/verify", tag = CENTRALAUTH, security((), ("clientCredentials" = [])),
    request_body(content(
        (VerifyForm = "application/x-www-form-urlencoded"),
        (VerifyForm = "multipart/form-data"))),
    responses((status = 200, body = VerifyAnswer), (status = 400, body = OAuthErrorBody),
        (status = 401, body = OAuthErrorBody)))]
async fn verify(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    request: Request,
) -> Response {
    let basic = basic_credentials(request.headers());
    let fields = match form_fields(request).await {
        Ok(fields) => fields,
        Err(error) => return token_error(error, &request_id, app.login().issuer()),
    };
    let field = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    let (client_id, client_secret) = match basic {
        Some((id, secret)) => (Some(id).filter(|i| !i.is_empty()), Some(secret)),
        None => (field("client_id"), field("client_secret")),
    };
    let token_request = TokenRequest {
        grant_type: field("grant_type"),
        code: field("code"),
        redirect_uri: field("redirect_uri"),
        code_verifier: field("code_verifier").filter(|v| v != "undefined"),
        refresh_token: None,
        client_id,
        client_secret,
        // CentralAuth's libraries send multipart bodies; the compat face stays lenient here.
        repeated_parameter: None,
    };
    match app.login().exchange_compat(&token_request).await {
        Ok(tokens) => {
            let (expires_in, expires_at) = match (tokens.expires_in, tokens.expires_at) {
                (Some(expires_in), Some(expires_at)) => (Some(expires_in), Some(expires_at)),
                _ => (None, None),
            };
            let body = VerifyAnswer {
                access_token: tokens.access_token,
                id_token: tokens.id_token,
                token_type: "Bearer",
                expires_in,
                expires_at,
            };
            let mut response = Json(body).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => token_error(error, &request_id, app.login().issuer()),
    }
}

fn client_or_error(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    basic_credentials(headers).ok_or_else(|| {
        ApiError(
            Error::new(ErrorCode::NoPermission)
                .with_status(401)
                .with_message("Client authentication (HTTP Basic with the client id and secret) is required."),
        )
    })
}

/// With a token error, the userinfo answer names the problem in `WWW-Authenticate` (RFC 6750 §3).
pub(crate) fn bearer_challenge(error: Error) -> Response {
    let code = error.code();
    let mut response = ApiError(error).into_response();
    let value = match code {
        ErrorCode::TokenMissing => Some("Bearer realm=\"portcullis\""),
        ErrorCode::TokenInvalid
        | ErrorCode::SessionMissing
        | ErrorCode::SessionInactive
        | ErrorCode::SessionExpired
        | ErrorCode::SessionInvalid
        | ErrorCode::SessionNotVerified => Some("Bearer realm=\"portcullis\", error=\"invalid_token\""),
        _ => None,
    };
    if let Some(value) = value {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    response
}

/// The signed-in user, for a CentralAuth access token sent as the raw body.
#[utoipa::path(post, path = "/api/v1/userinfo", tag = CENTRALAUTH, security(("clientCredentials" = [])),
    params(
        ("domain" = String, Query, description = "The application's origin; must be whitelisted and verified"),
        ("auth-ip" = Option<String>, Header, description = "The person's IP (hijack protection)"),
        ("device-id" = Option<String>, Header, description = "The person's device id (hijack protection)")),
    request_body(content = String, content_type = "text/plain", description = "The access token"),
    responses((status = 200, description = "The user (CentralAuth's user object)", body = serde_json::Value)))]
async fn userinfo(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (client_id, secret) = match client_or_error(&headers) {
        Ok(credentials) => credentials,
        Err(error) => return error.into_response(),
    };
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = UserinfoRequest {
        domain: query.get("domain").cloned(),
        ip: header_text("auth-ip").map(|ip| ip.split(',').next().unwrap_or_default().trim().to_owned()),
        user_agent: header_text("user-agent"),
        device_id: header_text("device-id"),
    };
    let token = String::from_utf8_lossy(&body);
    match app.login().userinfo(&client_id, &secret, &token, &request).await {
        Ok(user) => Json(user).into_response(),
        Err(error) => bearer_challenge(error),
    }
}

/// Ends the session of a CentralAuth access token sent as the raw body.
#[utoipa::path(post, path = "/api/v1/logout", tag = CENTRALAUTH, security(("clientCredentials" = [])),
    request_body(content = String, content_type = "text/plain", description = "The access token"),
    responses((status = 200, description = "Logged out")))]
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let (client_id, secret) = match client_or_error(&headers) {
        Ok(credentials) => credentials,
        Err(error) => return error.into_response(),
    };
    match app.login().logout(&client_id, &secret, &String::from_utf8_lossy(&body)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => bearer_challenge(error),
    }
}

/// The newest 50 messages, or with `?to=` the newest 50 to that address (a test reads its own code).
async fn outbox(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let to = query.get("to").map(String::as_str);
    Ok(Json(serde_json::json!({ "messages": app.login().outbox(to, 50).await? })))
}

/// Other fields the client libraries send (`translations`) are accepted and ignored: the link page is not
/// translated yet.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
struct DirectBody {
    #[schema(format = "email", max_length = 254)]
    email: String,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// Either a link was sent or the email is inside its delay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct DirectAnswer {
    /// The attempt the link belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    login_attempt_id: Option<String>,
    /// Inside the per-email delay: nothing was sent; when the next attempt is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_date: Option<portcullis_core::clock::Timestamp>,
}

/// Mails a login link (type `link`, method `local`) without a browser flow.
#[utoipa::path(post, path = "/api/v1/authenticate_direct", tag = CENTRALAUTH, security(("clientCredentials" = [])),
    request_body = DirectBody, responses((status = 200, body = DirectAnswer)))]
async fn authenticate_direct(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    crate::http::ApiJson(body): crate::http::ApiJson<DirectBody>,
) -> Result<Json<DirectAnswer>, ApiError> {
    let (client_id, secret) = client_or_error(&headers)?;
    let outcome = app
        .login()
        .authenticate_direct(&client_id, &secret, &body.email, body.redirect_uri.as_deref(), body.state.as_deref())
        .await?;
    match outcome {
        DirectOutcome::Sent { login_attempt_id, message } => {
            app.deliver(&message).await?;
            Ok(Json(DirectAnswer { login_attempt_id: Some(login_attempt_id), allowed_date: None }))
        }
        DirectOutcome::Throttled { allowed_date } => {
            Ok(Json(DirectAnswer { login_attempt_id: None, allowed_date: Some(allowed_date) }))
        }
    }
}
