//! The admin API (`/admin/v1`), authenticated with the admin token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portcullis_core::abuse::{AuditEvent, AuditFilter};
use portcullis_core::clock::Timestamp;
use portcullis_core::keys::KeyStatus;
use portcullis_core::organization::{ApiKeyRecord, Organization, OrganizationSettings};
use portcullis_core::passkey::Passkey;
use portcullis_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::ADMIN;
use crate::app::App;
use crate::http::{AdminAuth, ApiError, ApiJson};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(show_organization))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
        .routes(routes!(replace_login, merge_login))
        .routes(routes!(new_secret))
        .routes(routes!(activate_secret))
        .routes(routes!(audit_events))
        .routes(routes!(list_passkeys))
        .routes(routes!(revoke_passkey))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_keys))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    /// Display name (trimmed, 1–200 characters).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
}

/// Creates an organization (an OAuth client).
#[utoipa::path(post, path = "/admin/v1/organizations", tag = ADMIN, security(("adminToken" = [])),
    request_body = NewOrganization, responses((status = 201, body = Organization)))]
async fn create_organization(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<NewOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.create_organization(&body.name).await?)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Organizations {
    organizations: Vec<Organization>,
}

/// Lists the organizations.
#[utoipa::path(get, path = "/admin/v1/organizations", tag = ADMIN, security(("adminToken" = [])),
    responses((status = 200, body = Organizations)))]
async fn list_organizations(_: AdminAuth, State(app): State<Arc<App>>) -> Result<Json<Organizations>, ApiError> {
    Ok(Json(Organizations { organizations: app.organizations().await? }))
}

/// Shows an organization.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    responses((status = 200, body = Organization)))]
async fn show_organization(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(app.organization(&id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewApiKeyAnswer {
    /// The secret (`pcak_…`): send it as `Authorization: Bearer`. Shown once; only its hash is stored.
    key: String,
    /// The stored record (no secret).
    api_key: ApiKeyRecord,
}

/// Makes an organization API key.
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/api-keys", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    responses((status = 201, body = NewApiKeyAnswer)))]
async fn create_api_key(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NewApiKeyAnswer>), ApiError> {
    let key = app.create_api_key(&id).await?;
    Ok((StatusCode::CREATED, Json(NewApiKeyAnswer { key: key.secret, api_key: key.record })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiKeys {
    /// Oldest first, revoked ones included (with `revoked`); never a secret or its hash.
    api_keys: Vec<ApiKeyRecord>,
}

/// Lists an organization's API keys.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/api-keys", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    responses((status = 200, body = ApiKeys)))]
async fn list_api_keys(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeys>, ApiError> {
    Ok(Json(ApiKeys { api_keys: app.api_keys(&id).await? }))
}

/// Revokes an organization API key: requests with it are refused from now on.
#[utoipa::path(delete, path = "/admin/v1/organizations/{id}/api-keys/{key}", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), ("key" = String, Path, description = "API key id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_api_key(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.revoke_api_key(&id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The whole login configuration: what is left out takes its default (an empty whitelist, default
/// settings).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginConfiguration {
    /// Allowed callback origins: `https://app.example.com`, `https://*.example.com`, or a bare domain
    /// (`example.com` = `https://example.com`).
    #[serde(default)]
    whitelist: Vec<String>,
    #[serde(default)]
    settings: OrganizationSettings,
}

/// Replaces an organization's login configuration (whitelist and settings).
#[utoipa::path(put, path = "/admin/v1/organizations/{id}/login", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    request_body = LoginConfiguration, responses((status = 200, body = Organization)))]
async fn replace_login(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LoginConfiguration>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(app.login().configure(&id, Some(body.whitelist), Some(body.settings)).await?))
}

/// Changes to the login configuration: only what is present changes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginChanges {
    /// Replaces the whole whitelist.
    whitelist: Option<Vec<String>>,
    /// Settings to change, by name (those of `OrganizationSettings`); `null` clears an optional one.
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
}

/// Changes part of an organization's login configuration (a JSON merge of `settings`).
#[utoipa::path(patch, path = "/admin/v1/organizations/{id}/login", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    request_body = LoginChanges, responses((status = 200, body = Organization)))]
async fn merge_login(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LoginChanges>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(app.login().merge_configuration(&id, body.whitelist, &body.settings).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NewSecret {
    /// The client secret, shown once.
    secret: String,
    /// `true`: staged beside the active one until activated; `false`: active now (the first one).
    staged: bool,
}

/// Makes a client secret: active if there is none, otherwise staged.
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/secret", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id")),
    responses((status = 201, body = NewSecret)))]
async fn new_secret(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NewSecret>), ApiError> {
    let (secret, staged) = app.login().new_secret(&id).await?;
    Ok((StatusCode::CREATED, Json(NewSecret { secret, staged })))
}

/// Makes the staged client secret the active one; the old one stops working.
#[utoipa::path(post, path = "/admin/v1/organizations/{id}/secret/activate", tag = ADMIN,
    security(("adminToken" = [])), params(("id" = String, Path, description = "Organization id")),
    responses((status = 204, description = "Activated")))]
async fn activate_secret(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.login().activate_secret(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Keys {
    keys: Vec<KeyStatus>,
}

/// Lists the signing keys and their states.
#[utoipa::path(get, path = "/admin/v1/keys", tag = ADMIN, security(("adminToken" = [])),
    responses((status = 200, body = Keys)))]
async fn list_keys(_: AdminAuth, State(app): State<Arc<App>>) -> Json<Keys> {
    Json(Keys { keys: app.key_statuses() })
}

/// Adds a signing key: published now, signing after the publish lead.
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = ADMIN, security(("adminToken" = [])),
    responses((status = 201, body = KeyStatus)))]
async fn rotate_keys(_: AdminAuth, State(app): State<Arc<App>>) -> Result<(StatusCode, Json<KeyStatus>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.rotate_keys().await?)))
}

/// Most audit events one request returns.
const MAX_AUDIT_EVENTS: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only events of this kind (`login.failed`, …).
    kind: Option<String>,
    /// Only events about this subject (an email or a user id, as recorded).
    subject: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    until: Option<String>,
    /// Most events (1–1000, default 100).
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AuditEvents {
    /// Newest first.
    events: Vec<AuditEvent>,
}

/// Lists an organization's security events, newest first.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/audit", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), AuditQuery),
    responses((status = 200, body = AuditEvents)))]
async fn audit_events(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditEvents>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_EVENTS);
    let filter = AuditFilter {
        kind: query.kind,
        subject: query.subject,
        since: time_parameter("since", query.since.as_deref())?,
        until: time_parameter("until", query.until.as_deref())?,
    };
    Ok(Json(AuditEvents { events: app.audit_events(&id, &filter, limit).await? }))
}

/// An optional RFC 3339 query parameter.
pub(crate) fn time_parameter(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, Error> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    Timestamp::parse_rfc3339(text).map(Some).ok_or_else(|| {
        Error::new(ErrorCode::EntityInvalid)
            .with_message(format!("`{name}` must be an RFC 3339 time such as 2026-12-06T10:00:00Z."))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PasskeyQuery {
    /// The user's email.
    #[param(format = "email", max_length = 254)]
    email: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Passkeys {
    passkeys: Vec<Passkey>,
}

/// Lists a user's passkeys.
#[utoipa::path(get, path = "/admin/v1/organizations/{id}/passkeys", tag = ADMIN, security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"), PasskeyQuery),
    responses((status = 200, body = Passkeys)))]
async fn list_passkeys(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<PasskeyQuery>,
) -> Result<Json<Passkeys>, ApiError> {
    Ok(Json(Passkeys { passkeys: app.login().passkeys_of(&id, &query.email).await? }))
}

/// Revokes a passkey (a lost device).
#[utoipa::path(delete, path = "/admin/v1/organizations/{id}/passkeys/{credential}", tag = ADMIN,
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "Organization id"),
        ("credential" = String, Path, description = "Credential id (base64url)")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_passkey(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((id, credential)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.login().revoke_passkey(&id, &credential).await?;
    Ok(StatusCode::NO_CONTENT)
}
