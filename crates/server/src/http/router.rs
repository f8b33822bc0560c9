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
use utoipa_axum::router::OpenApiRouter;

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
    // The described routes come from their OpenAPI routers, so nothing is served undescribed by mistake.
    let routes = |api: OpenApiRouter<Arc<App>>| api.split_for_parts().0;
    let per_ip_api = from_fn_with_state(IpLimit::api(&app), limit_per_ip);
    let mut router = Router::new()
        .merge(routes(faces::ops::api()))
        .merge(routes(faces::admin::api()))
        .merge(routes(faces::admin_events::api()))
        .merge(faces::session::routes(app.config()))
        .merge(routes(faces::session_api::api()))
        .merge(faces::supertokens_core::routes())
        .merge(routes(faces::connect::api()))
        .merge(routes(faces::connector_webhooks::api()))
        .merge(faces::connect::pages())
        .merge(faces::console::routes(&app))
        .merge(faces::login_pages::routes().route_layer(from_fn_with_state(IpLimit::pages(&app), limit_per_ip)))
        .merge(routes(faces::oauth::api()).route_layer(per_ip_api.clone()))
        .merge(routes(faces::centralauth::api()).route_layer(per_ip_api.clone()));
    if app.config().login.dev_outbox {
        router = router.merge(faces::centralauth::dev_routes().route_layer(per_ip_api));
    }
    router
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
