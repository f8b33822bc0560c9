//! Inbound connector webhooks: the URL a provider POSTs to for an account's webhook method, and the admin
//! listing of those URLs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_connect::InboundWebhook;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::CONNECTORS;
use crate::app::App;
use crate::http::{AdminAuth, ApiError};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(receive)).routes(routes!(list_webhooks))
}

/// Receives a provider's webhook for a connector account's webhook method. The last path segment is the
/// URL's secret (from the admin listing); the method's signature scheme, if any, is checked; `before_webhook`
/// may answer by itself; what `after_webhook` accepts is sent to the organization's event endpoints as
/// `connector.webhook.received`.
#[utoipa::path(post, path = "/connectors/webhooks/{org}/{account}/{method}/{token}", tag = CONNECTORS,
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id"),
        ("method" = String, Path, description = "Webhook method id"),
        ("token" = String, Path, description = "The URL's secret")),
    request_body(content = Value, description = "Whatever the provider sends", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"accepted\": true, \"eventId\"}`, `{\"accepted\": false}` when `after_webhook` ignored it, or `before_webhook`'s own answer"),
        (status = 401, description = "webhookSignatureInvalid"),
        (status = 404, description = "entityMissing: no such webhook")))]
async fn receive(
    State(app): State<Arc<App>>,
    Path((org, account, method, token)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let public = app.config().public_url();
    let path = format!("/connectors/webhooks/{org}/{account}/{method}/{token}");
    let url = match &query {
        Some(q) => format!("{}{path}?{q}", public.trim_end_matches('/')),
        None => format!("{}{path}", public.trim_end_matches('/')),
    };
    let query: Map<String, Value> = serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let inbound = InboundWebhook { url, headers, query, body: body.to_vec() };
    let reply = app.connectors().receive_webhook(&org, &account, &method, &token, inbound).await?;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut response = match reply.body {
        Value::String(text) => (status, text).into_response(),
        other => (status, Json(other)).into_response(),
    };
    for (name, value) in &reply.headers {
        let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AccountWebhook {
    /// The webhook method.
    method: String,
    /// The URL to give the provider (it holds a secret: treat it as one).
    url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AccountWebhooks {
    webhooks: Vec<AccountWebhook>,
}

/// The webhook URLs of a connector account, one per webhook method of its connector.
#[utoipa::path(get, path = "/admin/v1/organizations/{org}/connector-accounts/{account}/webhooks", tag = CONNECTORS,
    security(("adminToken" = [])),
    params(("org" = String, Path, description = "Organization id"),
        ("account" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountWebhooks)))]
async fn list_webhooks(
    _: AdminAuth,
    State(app): State<Arc<App>>,
    Path((org, account)): Path<(String, String)>,
) -> Result<Json<AccountWebhooks>, ApiError> {
    let public = app.config().public_url();
    let runtime = app.connectors();
    let webhooks = runtime
        .webhook_methods(&org, &account)
        .await?
        .into_iter()
        .map(|method| AccountWebhook {
            url: format!("{}{}", public.trim_end_matches('/'), runtime.webhook_path(&org, &account, &method)),
            method,
        })
        .collect();
    Ok(Json(AccountWebhooks { webhooks }))
}
