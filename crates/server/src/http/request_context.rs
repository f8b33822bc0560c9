//! The outermost middleware: gives each request an id, a log span and metrics, and renders every error
//! response in the catalog shape with that id. Internal detail goes to the log only.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ErrorReport, error_for_bare_status};
use super::{ApiError, ErrorBody};

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template that served the request, copied into the response by [`tag_route`].
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// Runs inside routing (as a route layer) where the matched path is known.
pub(crate) async fn tag_route(request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|p| RouteTemplate(p.as_str().to_owned()));
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

pub(crate) async fn request_context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Always ours: a client-chosen id could forge or collide with log lines.
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let span = tracing::info_span!("request", id = %request_id, method = %method, path = %request.uri().path());

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    // A framework rejection (405 from the router, 503 from the timeout, a plain-text extractor rejection)
    // is replaced by the catalog error for its status.
    if status.as_u16() >= 400 && response.extensions().get::<ErrorReport>().is_none() {
        let (parts, _) = response.into_parts();
        let mut rebuilt = ApiError(error_for_bare_status(status, method.as_str())).into_response();
        for (name, value) in &parts.headers {
            if name == header::ALLOW {
                rebuilt.headers_mut().insert(name, value.clone());
            }
        }
        response = rebuilt;
    }

    let error_code = if let Some(ErrorReport(error)) = response.extensions().get::<ErrorReport>().cloned() {
        span.in_scope(|| {
            if error.status() >= 500 {
                tracing::error!(code = %error.code(), internal = error.internal(), "request failed");
            } else {
                tracing::info!(code = %error.code(), internal = error.internal(), "request refused");
            }
        });
        if !response.headers().contains_key(header::CONTENT_TYPE) {
            let body = Json(ErrorBody::new(&error, &request_id));
            let (parts, _) = response.into_parts();
            response = Response::from_parts(parts, body.into_response().into_body());
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Some(error.code())
    } else {
        None
    };

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = response.extensions().get::<RouteTemplate>().map_or_else(|| "unmatched".to_owned(), |t| t.0.clone());
    crate::metrics::record_request(&method, &route, response.status().as_u16(), error_code, started.elapsed());
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request finished"
        );
    });
    response
}
