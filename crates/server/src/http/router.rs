use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use portcullis_core::{Error, ErrorCode};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use super::request_context::{request_context, tag_route};
use super::{ApiError, IpLimit, limit_per_ip};
use crate::app::App;
use crate::faces;

/// Longest piece of a path echoed back in an error message.
const MAX_ECHOED_PATH: usize = 200;

/// The whole HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let limits = &app.config().server;
    let body_limit = limits.request_body_limit_bytes;
    let timeout = Duration::from_secs(limits.request_timeout_secs);
    Router::new()
        .merge(faces::ops::routes())
        .merge(faces::admin::routes())
        .merge(faces::session::routes(app.config()))
        .merge(faces::session_api::routes())
        .merge(faces::connect::routes())
        .merge(faces::login_pages::routes().route_layer(from_fn_with_state(IpLimit::pages(&app), limit_per_ip)))
        .merge(faces::oauth::routes().route_layer(from_fn_with_state(IpLimit::api(&app), limit_per_ip)))
        .merge(
            faces::centralauth::routes(app.config().login.dev_outbox)
                .route_layer(from_fn_with_state(IpLimit::api(&app), limit_per_ip)),
        )
        .route_layer(from_fn(tag_route))
        .fallback(unknown_route)
        .with_state(app)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(request_context))
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(MAX_ECHOED_PATH).collect();
    ApiError(Error::new(ErrorCode::EntityMissing).with_message(format!("There is no route {method} {path}.")))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a handler panicked");
    ApiError(Error::new(ErrorCode::GenericError).with_internal(format!("panic: {detail}"))).into_response()
}
