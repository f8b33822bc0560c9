//! Per-IP rate limits on the login faces. The counting rule lives in core ([`RateLimiter`]); this layer
//! names the bucket and renders the refusal: a page for browsers, the JSON body for APIs, both with
//! `Retry-After`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::abuse::RateLimit;

use super::client_ip::client_ip;
use super::{ApiError, RequestId};
use crate::app::App;

/// One per-IP limit on a group of routes.
#[derive(Debug, Clone)]
pub(crate) struct IpLimit {
    app: Arc<App>,
    bucket: &'static str,
    limit: RateLimit,
}

impl IpLimit {
    /// The hosted pages and mail links.
    pub(crate) fn pages(app: &Arc<App>) -> Self {
        let max = app.config().login.page_requests_per_ip_per_minute;
        Self { app: Arc::clone(app), bucket: "login-pages", limit: RateLimit::per_minute(max) }
    }

    /// The token, userinfo, logout and direct-authentication endpoints.
    pub(crate) fn api(app: &Arc<App>) -> Self {
        let max = app.config().login.api_requests_per_ip_per_minute;
        Self { app: Arc::clone(app), bucket: "login-api", limit: RateLimit::per_minute(max) }
    }
}

pub(crate) async fn limit_per_ip(State(limit): State<IpLimit>, request: Request, next: Next) -> Response {
    let ip = client_ip(&request, &limit.app.config().server.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let bucket = format!("{}:{ip}", limit.bucket);
    match limit.app.rate_limiter().hit(&bucket, limit.limit).await {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let wants_page = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"));
            if !wants_page {
                return ApiError(error).into_response();
            }
            let request_id =
                request.extensions().get::<RequestId>().cloned().unwrap_or_else(|| RequestId(String::new()));
            let retry_after = error.retry_after_secs();
            let mut response = crate::faces::login_pages::error_page(error, &request_id);
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}
