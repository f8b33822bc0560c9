//! The standard OAuth 2.1 / OpenID Connect face: discovery, `/oauth2/token`, `/oauth2/userinfo`.
//! (`/oauth2/authorize` shares the hosted pages with `/login`.) Strict parsing: urlencoded bodies only,
//! `grant_type` required, exact redirect URIs, 43–128 character verifiers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::login::TokenRequest;
use portcullis_core::{Error, ErrorCode};
use serde_json::json;

use super::centralauth::{basic_credentials, bearer_challenge, token_error};
use crate::app::App;
use crate::http::RequestId;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/oauth2/token", axum::routing::post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
}

async fn discovery(State(app): State<Arc<App>>) -> Response {
    let mut response = Json(app.oauth().discovery()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

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
            let mut body = json!({
                "access_token": tokens.access_token,
                "token_type": "Bearer",
                "expires_in": tokens.expires_in,
                "refresh_token": tokens.refresh_token,
            });
            if let Some(id_token) = tokens.id_token {
                body["id_token"] = json!(id_token);
            }
            if let Some(scope) = tokens.scope {
                body["scope"] = json!(scope);
            }
            let mut response = Json(body).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => token_error(error, &request_id, &issuer),
    }
}

async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.oauth().userinfo(crate::http::bearer_token(&headers)).await {
        Ok(user) => Json(user).into_response(),
        Err(error) => bearer_challenge(error),
    }
}
