//! Connectors: the call API (`/api/v1/connectors/...`, organization API key), account management in the
//! admin API, and the OAuth 2 install callback.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_connect::{AccountInput, AccountView, CallRequest, CallResult, Caller};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::http::{AdminAuth, ApiError, ApiJson, OrgAuth};

/// Portcullis's own OAuth 2 redirect URI for connector installs.
const CALLBACK_PATH: &str = "/connectors/oauth2/callback";

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/connectors/{connector}/accounts/{account}/calls", post(call))
        .route("/admin/v1/connectors", get(list_connectors))
        .route("/admin/v1/organizations/{org}/connector-accounts", post(create_account).get(list_accounts))
        .route(
            "/admin/v1/organizations/{org}/connector-accounts/{account}",
            get(show_account).patch(update_account).delete(delete_account),
        )
        .route("/admin/v1/organizations/{org}/connector-accounts/{account}/authorize", post(authorize))
        .route("/admin/v1/organizations/{org}/connector-accounts/{account}/calls", post(admin_call))
        .route("/admin/v1/organizations/{org}/connector-accounts/{account}/test", post(test_auth))
        .route(CALLBACK_PATH, get(callback))
}

async fn call(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path((connector, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<CallRequest>,
) -> Result<Json<CallResult>, ApiError> {
    Ok(Json(app.connectors().call_as(&org, &connector, &account, &body, Caller::ApiKey).await?))
}

async fn admin_call(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<CallRequest>,
) -> Result<Json<CallResult>, ApiError> {
    let connector = app.connectors().account(&org, &account).await?.connector;
    Ok(Json(app.connectors().call_as(&org, &connector, &account, &body, Caller::Admin).await?))
}

async fn test_auth(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<CallResult>, ApiError> {
    Ok(Json(app.connectors().test_auth(&org, &account).await?))
}

async fn list_connectors(_: AdminAuth, State(app): State<Arc<App>>) -> Json<Value> {
    let connectors: Vec<Value> = app
        .connectors()
        .connectors()
        .map(|c| {
            json!({
                "name": c.name,
                "description": c.description,
                "methods": c.methods.keys().collect::<Vec<_>>(),
                "properties": c.properties.iter().map(|p| json!({"name": p.name, "sensitive": p.sensitive, "required": p.required})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "connectors": connectors }))
}

async fn create_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<AccountInput>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    app.organization(&org).await?;
    Ok((StatusCode::CREATED, Json(app.connectors().create_account(&org, body).await?)))
}

async fn list_accounts(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "accounts": app.connectors().accounts(&org).await? })))
}

async fn show_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(app.connectors().account(&org, &account).await?))
}

async fn update_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
    ApiJson(body): ApiJson<AccountInput>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(app.connectors().update_account(&org, &account, body).await?))
}

async fn delete_account(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.connectors().delete_account(&org, &account).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn redirect_uri(app: &App) -> String {
    format!("{}{CALLBACK_PATH}", app.config().public_url().trim_end_matches('/'))
}

async fn authorize(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let url = app.connectors().authorize_url(&org, &account, &redirect_uri(&app)).await?;
    Ok(Json(json!({ "authorizeUrl": url })))
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
