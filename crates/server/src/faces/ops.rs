//! Operations: `/health`, `/errors`, `/.well-known/jwks.json`, `/metrics`, `/openapi.json`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::error::Catalog;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::OPERATIONS;
use crate::app::App;
use crate::http::ApiError;

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(errors))
        .routes(routes!(jwks))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// The server is up and its store answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok` (a failing store answers 503 with a catalog error instead).
    status: &'static str,
    /// `sqlite` or `postgres`.
    store: &'static str,
    /// The server's version.
    version: &'static str,
}

/// Health: the store answers.
#[utoipa::path(get, path = "/health", tag = OPERATIONS, responses((status = 200, body = Health)))]
async fn health(State(app): State<Arc<App>>) -> Result<Json<Health>, ApiError> {
    app.health().await?;
    Ok(Json(Health { status: "ok", store: app.store_backend(), version: env!("CARGO_PKG_VERSION") }))
}

/// The error catalog: every code, its status and remedy.
#[utoipa::path(get, path = "/errors", tag = OPERATIONS, responses((status = 200, body = Catalog)))]
async fn errors() -> Response {
    let mut response = Json(portcullis_core::error::catalog()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// The public signing keys (RFC 7517 JWK Set) of access and ID tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = OPERATIONS,
    responses((status = 200, description = "`{\"keys\": [JWK…]}`", body = serde_json::Value)))]
async fn jwks(State(app): State<Arc<App>>) -> Response {
    // Verifiers may cache for half the publish lead: a new key is always seen before it signs.
    let max_age = (app.config().keys.publish_lead_secs / 2).max(1);
    let mut response = Json(app.jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}, must-revalidate")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = OPERATIONS,
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
        content_type = "text/plain")))]
async fn metrics() -> Response {
    let mut response = crate::metrics::render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// This description (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = OPERATIONS,
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value)))]
async fn openapi() -> Response {
    static DESCRIPTION: OnceLock<String> = OnceLock::new();
    let text = DESCRIPTION.get_or_init(crate::api_description::api_description_json);
    let mut response = ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}
