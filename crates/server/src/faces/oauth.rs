//! The standard OAuth 2.1 / OpenID Connect face: discovery, `/oauth2/token`, `/oauth2/userinfo`.
//! (`/oauth2/authorize` shares the hosted pages with `/login`.) Strict parsing: urlencoded bodies only,
//! `grant_type` required, exact redirect URIs, 43–128 character verifiers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::login::TokenRequest;
use portcullis_core::{Error, ErrorCode};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::centralauth::{basic_credentials, bearer_challenge, token_error};
use crate::api_description::OAUTH;
use crate::app::App;
use crate::http::{OAuthErrorBody, RequestId};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(discovery))
        .routes(routes!(authorization_server_metadata))
        .routes(routes!(token))
        .routes(routes!(userinfo, userinfo_post))
}

/// OpenID Connect Discovery 1.0.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = OAUTH,
    responses((status = 200, description = "The provider metadata", body = serde_json::Value)))]
async fn discovery(State(app): State<Arc<App>>) -> Response {
    metadata(&app)
}

/// OAuth 2.0 Authorization Server Metadata (RFC 8414): the same document.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = OAUTH,
    responses((status = 200, description = "The server metadata", body = serde_json::Value)))]
async fn authorization_server_metadata(State(app): State<Arc<App>>) -> Response {
    metadata(&app)
}

fn metadata(app: &App) -> Response {
    let mut response = Json(app.oauth().discovery()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// A token request's form fields (RFC 6749 §4.1.3, §6); unknown fields are ignored.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form that the handler reads field by field")]
struct TokenForm {
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    /// PKCE verifier, 43–128 characters.
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    /// With `client_secret_post` or a public client.
    client_id: Option<String>,
    /// With `client_secret_post`.
    client_secret: Option<String>,
}

/// A token answer (RFC 6749 §5.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TokenAnswer {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds.
    expires_in: u64,
    refresh_token: String,
    /// With the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// The token endpoint: code exchange (PKCE) and refresh-token rotation.
#[utoipa::path(post, path = "/oauth2/token", tag = OAUTH, security((), ("clientCredentials" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenAnswer), (status = 400, body = OAuthErrorBody),
        (status = 401, body = OAuthErrorBody)))]
async fn token(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let issuer = app.login().issuer().to_owned();
    let urlencoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !urlencoded {
        let error = Error::new(ErrorCode::MissingFields)
            .with_message("The token request must be application/x-www-form-urlencoded (RFC 6749 §4.1.3).");
        return token_error(error, &request_id, &issuer);
    }
    let fields: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(fields) => fields,
        Err(e) => {
            let error =
                Error::new(ErrorCode::EntityInvalid).with_message("The body is not valid form data.").with_internal(e);
            return token_error(error, &request_id, &issuer);
        }
    };
    let field = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    let (client_id, client_secret) = match basic_credentials(&headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field("client_id"), field("client_secret")),
    };
    let request = TokenRequest {
        grant_type: field("grant_type"),
        code: field("code"),
        redirect_uri: field("redirect_uri"),
        code_verifier: field("code_verifier"),
        refresh_token: field("refresh_token"),
        client_id,
        client_secret,
        repeated_parameter: crate::http::repeated_parameter(&body),
    };
    match app.oauth().token(&request).await {
        Ok(tokens) => {
            let body = TokenAnswer {
                access_token: tokens.access_token,
                token_type: "Bearer",
                expires_in: tokens.expires_in,
                refresh_token: tokens.refresh_token,
                id_token: tokens.id_token,
                scope: tokens.scope,
            };
            let mut response = Json(body).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => token_error(error, &request_id, &issuer),
    }
}

/// The signed-in user's claims (`sub`, `email`, `email_verified`, `updated_at`).
#[utoipa::path(get, path = "/oauth2/userinfo", tag = OAUTH, security(("accessToken" = [])),
    responses((status = 200, description = "OIDC standard claims", body = serde_json::Value)))]
async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.oauth().userinfo(crate::http::bearer_token(&headers)).await {
        Ok(user) => Json(user).into_response(),
        Err(error) => bearer_challenge(error),
    }
}

/// The same as `GET` (OIDC Core §5.3.1 allows both).
#[utoipa::path(post, path = "/oauth2/userinfo", tag = OAUTH, security(("accessToken" = [])),
    responses((status = 200, description = "OIDC standard claims", body = serde_json::Value)))]
async fn userinfo_post(state: State<Arc<App>>, headers: HeaderMap) -> Response {
    userinfo(state, headers).await
}
