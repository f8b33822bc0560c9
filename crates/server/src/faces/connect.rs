//! Connectors: the call API (`/api/v1/connectors/...`, organization API key), account management in the
//! admin API, and the OAuth 2 install callback.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_connect::{AccountInput, AccountView, CallRequest, CallResult, Caller};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::CONNECTORS;
use crate::app::App;
use crate::http::{AdminAuth, ApiError, ApiJson, OrgAuth};

/// Portcullis's own OAuth 2 redirect URI for connector installs.
const CALLBACK_PATH: &str = "/connectors/oauth2/callback";

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(call))
        .routes(routes!(list_connectors))
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(show_account, update_account, delete_account))
        .routes(routes!(authorize))
        .routes(routes!(admin_call))
        .routes(routes!(test_auth))
}

/// The install callback: a page for the browser that came back from the provider.
pub(crate) fn pages() -> Router<Arc<App>> {
    Router::new().route(CALLBACK_PATH, get(callback))
}

/// Calls a connector method with one of the organization's accounts.
#[utoipa::path(post, path = "/api/v1/connectors/{connector}/accounts/{account}/calls", tag = CONNECTORS,
    security(("organizationApiKey" = [])),
    params(("connector" = String, Path, description = "Connector name"),
        ("account" = String, Path, description = "Account id")),
    request_body = CallRequest, responses((status = 200, body = CallResult)))]
async fn call(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path((connector, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<CallRequest>,
) -> Result<Json<CallResult>, ApiError> {
    Ok(Json(app.connectors().call_as(&org, &connector, &account, &body, Caller::ApiKey).await?))
}

/// Calls a connector method with an account (admin; step scripts as the operator allows).
#[utoipa::path(post, path = "/admin/v1/organizations/{org}/connector-accounts/{account}/calls", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    request_body = CallRequest, responses((status = 200, body = CallResult)))]
async fn admin_call(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<CallRequest>,
) -> Result<Json<CallResult>, ApiError> {
    let connector = app.connectors().account(&org, &account).await?.connector;
    Ok(Json(app.connectors().call_as(&org, &connector, &account, &body, Caller::Admin).await?))
}

/// Runs the connector's auth test (Cyclr's "test connection") for an account.
#[utoipa::path(post, path = "/admin/v1/organizations/{org}/connector-accounts/{account}/test", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    responses((status = 200, body = CallResult)))]
async fn test_auth(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<CallResult>, ApiError> {
    Ok(Json(app.connectors().test_auth(&org, &account).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ConnectorProperty {
    name: String,
    /// Stored sealed and shown masked.
    sensitive: bool,
    required: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ConnectorSummary {
    name: String,
    description: String,
    /// Method ids.
    methods: Vec<String>,
    properties: Vec<ConnectorProperty>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Connectors {
    connectors: Vec<ConnectorSummary>,
}

/// Lists the loaded connectors.
#[utoipa::path(get, path = "/admin/v1/connectors", tag = CONNECTORS, security(("adminToken" = [])),
    responses((status = 200, body = Connectors)))]
async fn list_connectors(_: AdminAuth, State(app): State<Arc<App>>) -> Json<Connectors> {
    let connectors = app
        .connectors()
        .connectors()
        .map(|c| ConnectorSummary {
            name: c.name.clone(),
            description: c.description.clone(),
            methods: c.methods.keys().cloned().collect(),
            properties: c
                .properties
                .iter()
                .map(|p| ConnectorProperty { name: p.name.clone(), sensitive: p.sensitive, required: p.required })
                .collect(),
        })
        .collect();
    Json(Connectors { connectors })
}

/// Creates a connector account for an organization.
#[utoipa::path(post, path = "/admin/v1/organizations/{org}/connector-accounts", tag = CONNECTORS,
    security(("adminToken" = [])), params(("org" = String, Path, description = "Organization id")),
    request_body = AccountInput, responses((status = 201, body = AccountView)))]
async fn create_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<AccountInput>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    app.organization(&org).await?;
    Ok((StatusCode::CREATED, Json(app.connectors().create_account(&org, body).await?)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accounts {
    accounts: Vec<AccountView>,
}

/// Lists an organization's connector accounts (secrets masked).
#[utoipa::path(get, path = "/admin/v1/organizations/{org}/connector-accounts", tag = CONNECTORS,
    security(("adminToken" = [])), params(("org" = String, Path, description = "Organization id")),
    responses((status = 200, body = Accounts)))]
async fn list_accounts(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
) -> Result<Json<Accounts>, ApiError> {
    Ok(Json(Accounts { accounts: app.connectors().accounts(&org).await? }))
}

/// Shows a connector account (secrets masked).
#[utoipa::path(get, path = "/admin/v1/organizations/{org}/connector-accounts/{account}", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountView)))]
async fn show_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(app.connectors().account(&org, &account).await?))
}

/// Updates an account: properties are merged, a new auth value replaces the stored one.
#[utoipa::path(patch, path = "/admin/v1/organizations/{org}/connector-accounts/{account}", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    request_body = AccountInput, responses((status = 200, body = AccountView)))]
async fn update_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<AccountInput>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(app.connectors().update_account(&org, &account, body).await?))
}

/// Deletes a connector account and its credentials.
#[utoipa::path(delete, path = "/admin/v1/organizations/{org}/connector-accounts/{account}", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.connectors().delete_account(&org, &account).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn redirect_uri(app: &App) -> String {
    format!("{}{CALLBACK_PATH}", app.config().public_url().trim_end_matches('/'))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Authorization {
    /// Where to send the person who connects the account (the provider's consent page).
    authorize_url: String,
}

/// Starts an OAuth 2 install: the provider URL to open; its callback stores the tokens.
#[utoipa::path(post, path = "/admin/v1/organizations/{org}/connector-accounts/{account}/authorize",
    tag = CONNECTORS, security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    responses((status = 200, body = Authorization)))]
async fn authorize(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<Authorization>, ApiError> {
    let url = app.connectors().authorize_url(&org, &account, &redirect_uri(&app)).await?;
    Ok(Json(Authorization { authorize_url: url }))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(State(app): State<Arc<App>>, Query(query): Query<CallbackQuery>) -> Response {
    let (Some(code), Some(state)) = (query.code, query.state) else {
        let reason = query.error.unwrap_or_else(|| "missing code or state".to_owned());
        tracing::warn!(reason, "connector authorization was not completed");
        return (StatusCode::BAD_REQUEST, Html("<p>The connection was not completed.</p>".to_owned())).into_response();
    };
    match app.connectors().complete_authorization(&state, &code, &redirect_uri(&app)).await {
        Ok((_, account)) => {
            tracing::info!(account, "connector account authorized");
            Html("<p>Connected. You can close this window.</p>".to_owned()).into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}
