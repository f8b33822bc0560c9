//! The admin API (`/admin/v1`), authenticated with the admin token.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::keys::KeyStatus;
use portcullis_core::organization::Organization;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::http::{AdminAuth, ApiError, ApiJson};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/admin/v1/organizations", post(create_organization).get(list_organizations))
        .route("/admin/v1/organizations/{id}", get(show_organization))
        .route("/admin/v1/organizations/{id}/api-keys", post(create_api_key))
        .route("/admin/v1/organizations/{id}/login", axum::routing::put(configure_login))
        .route("/admin/v1/organizations/{id}/secret", post(new_secret))
        .route("/admin/v1/organizations/{id}/secret/activate", post(activate_secret))
        .route("/admin/v1/organizations/{id}/audit", get(audit_events))
        .route("/admin/v1/organizations/{id}/passkeys", get(list_passkeys))
        .route("/admin/v1/organizations/{id}/passkeys/{credential}", axum::routing::delete(revoke_passkey))
        .route("/admin/v1/keys", get(list_keys))
        .route("/admin/v1/keys/rotate", post(rotate_keys))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    name: String,
}

async fn create_organization(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<NewOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.create_organization(&body.name).await?)))
}

async fn list_organizations(_: AdminAuth, State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "organizations": app.organizations().await? })))
}

async fn show_organization(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(app.organization(&id).await?))
}

async fn create_api_key(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = app.create_api_key(&id).await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key.secret, "apiKey": key.record }))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginConfiguration {
    whitelist: Option<Vec<String>>,
    settings: Option<portcullis_core::organization::OrganizationSettings>,
}

async fn configure_login(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LoginConfiguration>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(app.login().configure(&id, body.whitelist, body.settings).await?))
}

async fn new_secret(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (secret, staged) = app.login().new_secret(&id).await?;
    Ok((StatusCode::CREATED, Json(json!({ "secret": secret, "staged": staged }))))
}

async fn activate_secret(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.login().activate_secret(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(_: AdminAuth, State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "keys": app.key_statuses() }))
}

async fn rotate_keys(_: AdminAuth, State(app): State<Arc<App>>) -> Result<(StatusCode, Json<KeyStatus>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.rotate_keys().await?)))
}

/// Most audit events one request returns.
const MAX_AUDIT_EVENTS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

async fn audit_events(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_EVENTS);
    Ok(Json(json!({ "events": app.audit_events(&id, query.kind.as_deref(), limit).await? })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasskeyQuery {
    email: String,
}

async fn list_passkeys(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<PasskeyQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "passkeys": app.login().passkeys_of(&id, &query.email).await? })))
}

async fn revoke_passkey(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, credential)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.login().revoke_passkey(&id, &credential).await?;
    Ok(StatusCode::NO_CONTENT)
}
