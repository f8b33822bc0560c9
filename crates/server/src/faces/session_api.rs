//! The server-to-server session API (`/api/v1/sessions`, `/api/v1/users/{id}/sessions`), authenticated
//! with an organization API key, so a backend in any language (and the Rust SDK) can use sessions.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use portcullis_core::clock::Timestamp;
use portcullis_core::session::{Audience, RefreshFailure, SessionTokens, access_token_error};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::http::{ApiError, ApiJson, ErrorReport, OrgAuth, RequestId};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/sessions", post(create))
        .route("/api/v1/sessions/refresh", post(refresh))
        .route("/api/v1/sessions/verify", post(verify))
        .route("/api/v1/sessions/regenerate", post(regenerate))
        .route("/api/v1/sessions/revoked", get(revoked))
        .route("/api/v1/sessions/{handle}", delete(revoke))
        .route("/api/v1/sessions/{handle}/claims", patch(merge_claims))
        .route("/api/v1/users/{user_id}/sessions", get(list).delete(revoke_user))
        .route("/api/v1/organization", get(organization))
}

/// The organization the API key belongs to: the SDK reads it at start and accepts only its tokens.
async fn organization(OrgAuth(org): OrgAuth, State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let organization = app.organization(&org).await?;
    Ok(Json(json!({ "id": organization.id, "name": organization.name })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSession {
    user_id: String,
    tenant_id: Option<String>,
    #[serde(default)]
    access_token_payload: Map<String, Value>,
}

fn tokens_body(tokens: &SessionTokens) -> Value {
    json!({
        "session": tokens.session,
        "accessToken": tokens.access_token,
        "accessTokenExpiry": tokens.claims.exp.saturating_mul(1000),
        "refreshToken": tokens.refresh_token,
        "refreshTokenExpiry": tokens.refresh_token.as_ref().map(|_| tokens.session.expires_at.unix_millis()),
        "frontToken": tokens.front_token,
    })
}

async fn create(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tokens =
        app.sessions().create(&org, &body.user_id, body.tenant_id.as_deref(), body.access_token_payload).await?;
    Ok((StatusCode::CREATED, Json(tokens_body(&tokens))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
    /// Several candidates (duplicate cookies from two domains): the usable one is rotated, stale ones
    /// are ignored rather than treated as theft.
    refresh_tokens: Option<Vec<String>>,
}

async fn refresh(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Response {
    let candidates: Vec<&str> =
        body.refresh_token.iter().chain(body.refresh_tokens.iter().flatten()).map(String::as_str).collect();
    let chosen = match candidates.as_slice() {
        [] => {
            let error = portcullis_core::Error::new(portcullis_core::ErrorCode::MissingFields)
                .with_message("The field `refreshToken` is required.");
            return ApiError(error).into_response();
        }
        [single] => *single,
        // Duplicate cookies: rotate the usable one; stale ones are ignored, never taken for theft.
        several => match app.sessions().usable_candidate(several).await {
            Ok(Some(token)) => token,
            Ok(None) => "",
            Err(e) => return ApiError(e).into_response(),
        },
    };
    match app.sessions().refresh(chosen, Some(&org)).await {
        Ok(tokens) => Json(tokens_body(&tokens)).into_response(),
        Err(RefreshFailure::Failed(e)) => ApiError(e).into_response(),
        Err(failure) => {
            // Theft carries the session and user, so the caller's handler can act on them.
            let (handle, user) = match &failure {
                RefreshFailure::TheftDetected { handle, user_id, kind } => {
                    tracing::warn!(session = %handle, user = %user_id, ?kind, "refresh token reuse: session revoked");
                    (Some(handle.clone()), Some(user_id.clone()))
                }
                _ => (None, None),
            };
            let error = portcullis_core::Error::from(failure);
            let mut body = json!({ "errorCode": error.code(), "message": error.message(), "requestId": request_id.0 });
            if let (Some(handle), Some(user)) = (handle, user) {
                body["sessionHandle"] = json!(handle);
                body["userId"] = json!(user);
            }
            let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            response.extensions_mut().insert(ErrorReport(Arc::new(error)));
            response
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccessTokenBody {
    access_token: String,
}

async fn verify(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<AccessTokenBody>,
) -> Result<Json<Value>, ApiError> {
    let claims = app.sessions().verify(&body.access_token, Audience::Organization(&org)).map_err(access_token_error)?;
    let live = app.sessions().regenerate(&org, &body.access_token).await.is_ok();
    Ok(Json(json!({ "claims": claims, "sessionLive": live })))
}

async fn regenerate(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<AccessTokenBody>,
) -> Result<Json<Value>, ApiError> {
    let tokens = app.sessions().regenerate(&org, &body.access_token).await?;
    Ok(Json(tokens_body(&tokens)))
}

#[derive(Debug, Deserialize)]
struct Since {
    since: Option<i64>,
}

async fn revoked(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Query(since): Query<Since>,
) -> Result<Json<Value>, ApiError> {
    let since = Timestamp::from_unix_millis(since.since.unwrap_or(0));
    let revoked = app.sessions().revoked_since(&org, since).await?;
    let items: Vec<Value> =
        revoked.iter().map(|(handle, at)| json!({ "handle": handle, "revokedAt": at.unix_millis() })).collect();
    Ok(Json(json!({ "revoked": items })))
}

async fn revoke(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(handle): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "revoked": app.sessions().revoke(&org, &handle).await? })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsBody {
    claims: Map<String, Value>,
}

async fn merge_claims(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(handle): Path<String>,
    ApiJson(body): ApiJson<ClaimsBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "session": app.sessions().merge_claims(&org, &handle, body.claims).await? })))
}

async fn list(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "sessions": app.sessions().active_sessions(&org, &user_id).await? })))
}

async fn revoke_user(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "revoked": app.sessions().revoke_user(&org, &user_id).await? })))
}
