//! The CentralAuth-compatible API: `POST /api/v1/verify` (token), `POST /api/v1/userinfo`,
//! `POST /api/v1/logout`, and the dev outbox. Parsing is lenient where CentralAuth's client libraries
//! need it (multipart bodies, no `grant_type`, raw token bodies); the rules are the core's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::login::{DirectOutcome, TokenRequest, UserinfoRequest};
use portcullis_core::{Error, ErrorCode};
use serde_json::json;

use crate::app::App;
use crate::http::{ApiError, ErrorReport, RequestId};

pub(crate) fn routes(dev_outbox: bool) -> Router<Arc<App>> {
    let router = Router::new()
        .route("/api/v1/verify", post(verify))
        .route("/api/v1/userinfo", post(userinfo))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/authenticate_direct", post(authenticate_direct));
    if dev_outbox { router.route("/dev/outbox", get(outbox)) } else { router }
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
    let body = json!({
        "error": oauth,
        "error_description": portcullis_core::login::callback::safe_description(error.message()),
        "errorCode": error.code(),
        "message": error.message(),
        "requestId": request_id.0,
    });
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
            let mut body = json!({
                "access_token": tokens.access_token,
                "id_token": tokens.id_token,
                "token_type": "Bearer",
            });
            if let (Some(expires_in), Some(expires_at)) = (tokens.expires_in, tokens.expires_at) {
                body["expires_in"] = json!(expires_in);
                body["expires_at"] = json!(expires_at);
            }
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

async fn outbox(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "messages": app.login().outbox(50).await? })))
}

/// Other fields the client libraries send (`translations`) are accepted and ignored: the link page is not
/// translated yet.
#[derive(Debug, serde::Deserialize)]
struct DirectBody {
    email: String,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// `POST /api/v1/authenticate_direct`: mails a login link (type `link`, method `local`).
async fn authenticate_direct(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    crate::http::ApiJson(body): crate::http::ApiJson<DirectBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (client_id, secret) = client_or_error(&headers)?;
    let outcome = app
        .login()
        .authenticate_direct(&client_id, &secret, &body.email, body.redirect_uri.as_deref(), body.state.as_deref())
        .await?;
    match outcome {
        DirectOutcome::Sent { login_attempt_id, message } => {
            app.deliver(&message).await?;
            Ok(Json(json!({ "loginAttemptId": login_attempt_id })))
        }
        DirectOutcome::Throttled { allowed_date } => Ok(Json(json!({ "allowedDate": allowed_date }))),
    }
}
