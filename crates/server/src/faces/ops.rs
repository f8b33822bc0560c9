//! Operations: `/health`, `/errors`, `/.well-known/jwks.json`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::http::ApiError;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(health))
        .route("/errors", get(errors))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
}

async fn health(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    app.health().await?;
    Ok(Json(json!({ "status": "ok", "store": app.store_backend(), "version": env!("CARGO_PKG_VERSION") })))
}

async fn errors() -> Response {
    let mut response = Json(portcullis_core::error::catalog()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

async fn jwks(State(app): State<Arc<App>>) -> Response {
    // Verifiers may cache for half the publish lead: a new key is always seen before it signs.
    let max_age = (app.config().keys.publish_lead_secs / 2).max(1);
    let mut response = Json(app.jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}, must-revalidate")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

async fn metrics() -> Response {
    let mut response = crate::metrics::render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
