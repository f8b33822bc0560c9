//! The session face: SuperTokens' frontend endpoints, `<base>/session/refresh` and `<base>/signout`,
//! for deployments where Portcullis itself is the frontend SDK's `apiDomain`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use portcullis_core::session::{AccessTokenError, Audience, RefreshFailure, access_token_error};
use portcullis_core::{Error, ErrorCode};
use portcullis_session_wire::{
    CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, IssuedTokens, RequestTokens, TokenResponse, TokenTransfer, body,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::App;
use crate::config::{AntiCsrf, Config};
use crate::http::{ApiError, ErrorReport};

pub(crate) fn routes(config: &Config) -> Router<Arc<App>> {
    let base = &config.session.api_base_path;
    let router = Router::new()
        .route(&format!("{base}/session/refresh"), post(refresh))
        .route(&format!("{base}/signout"), post(sign_out));
    match cors(config) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for the configured page origins: exact origins with credentials, the SDK's headers allowed and
/// exposed, preflights cached for 10 minutes.
pub(crate) fn cors(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        config.session.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let names = |list: &[&str]| list.iter().filter_map(|h| h.parse().ok()).collect::<Vec<header::HeaderName>>();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers(names(CORS_ALLOW_HEADERS))
            .expose_headers(names(CORS_EXPOSE_HEADERS))
            .max_age(Duration::from_secs(600)),
    )
}

/// A response in the SuperTokens wire shape; the error (if any) is attached for the log and metrics.
fn wire(status: StatusCode, body: &'static str, mut headers: HeaderMap, error: Option<Error>) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = (status, headers, body).into_response();
    if let Some(error) = error {
        response.extensions_mut().insert(ErrorReport(Arc::new(error)));
    }
    response
}

fn cleared(app: &App, status: StatusCode, body: &'static str, error: Error) -> Response {
    let mut headers = HeaderMap::new();
    TokenResponse::new(app.cookies()).clear(&mut headers);
    wire(status, body, headers, Some(error))
}

fn csrf_blocked(app: &App, tokens: &RequestTokens, mode: TokenTransfer) -> bool {
    mode == TokenTransfer::Cookie && app.config().session.anti_csrf == AntiCsrf::ViaCustomHeader && !tokens.has_rid
}

async fn refresh(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let tokens = RequestTokens::from_headers(&headers);
    let (candidates, mode) = tokens.refresh_candidates();
    let unauthorised = |internal: &str| {
        cleared(
            &app,
            StatusCode::UNAUTHORIZED,
            body::UNAUTHORISED,
            Error::new(ErrorCode::Unauthorised).with_internal(internal),
        )
    };
    // Token-less refreshes are normal on fresh pages: answer at once, without touching the store.
    if candidates.is_empty() {
        return unauthorised("refresh without a refresh token");
    }
    if csrf_blocked(&app, &tokens, mode) {
        return unauthorised("cookie-mode refresh without the rid header");
    }
    let duplicates = candidates.len() > 1;
    let chosen = if duplicates {
        match app.sessions().usable_candidate(&candidates).await {
            Ok(Some(token)) => token,
            Ok(None) => {
                let mut response = unauthorised("duplicate session cookies, none usable");
                TokenResponse::new(app.cookies()).clear_older_domains(response.headers_mut());
                return response;
            }
            Err(e) => return ApiError(e).into_response(),
        }
    } else {
        candidates[0]
    };
    match app.sessions().refresh(chosen, None).await {
        Ok(issued) => {
            let mut out = HeaderMap::new();
            let wire_tokens = TokenResponse::new(app.cookies());
            if duplicates {
                wire_tokens.clear_older_domains(&mut out);
            }
            if tokens.legacy_id_refresh {
                wire_tokens.clear_legacy(&mut out);
            }
            let other = if mode == TokenTransfer::Cookie { TokenTransfer::Header } else { TokenTransfer::Cookie };
            let refresh_expiry = issued.session.expires_at.unix_millis();
            let handed = IssuedTokens {
                access_token: &issued.access_token,
                refresh_token: issued.refresh_token.as_deref().map(|t| (t, refresh_expiry)),
                front_token: &issued.front_token,
            };
            wire_tokens.attach(&mut out, mode, &handed, tokens.carries(other));
            wire(StatusCode::OK, body::EMPTY, out, None)
        }
        Err(RefreshFailure::TheftDetected { handle, user_id, kind }) => {
            tracing::warn!(session = %handle, user = %user_id, ?kind, "refresh token reuse: session revoked");
            cleared(
                &app,
                StatusCode::UNAUTHORIZED,
                body::TOKEN_THEFT_DETECTED,
                RefreshFailure::TheftDetected { handle, user_id, kind }.into(),
            )
        }
        Err(failure @ RefreshFailure::Unauthorised(_)) => {
            cleared(&app, StatusCode::UNAUTHORIZED, body::UNAUTHORISED, failure.into())
        }
        Err(RefreshFailure::Failed(e)) => ApiError(e).into_response(),
    }
}

async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let tokens = RequestTokens::from_headers(&headers);
    let Some((token, mode)) = tokens.access_token() else {
        let error = if tokens.has_duplicate_cookies() { ErrorCode::TryRefreshToken } else { ErrorCode::Unauthorised };
        let body = if tokens.has_duplicate_cookies() { body::TRY_REFRESH_TOKEN } else { body::UNAUTHORISED };
        return wire(StatusCode::UNAUTHORIZED, body, HeaderMap::new(), Some(Error::new(error)));
    };
    if csrf_blocked(&app, &tokens, mode) {
        let error = Error::new(ErrorCode::TryRefreshToken).with_internal("cookie-mode sign-out without the rid header");
        return wire(StatusCode::UNAUTHORIZED, body::TRY_REFRESH_TOKEN, HeaderMap::new(), Some(error));
    }
    match app.sessions().verify(token, Audience::AnyOrganization) {
        Ok(claims) => match app.sessions().revoke_own(&claims).await {
            Ok(_) => {
                let mut out = HeaderMap::new();
                TokenResponse::new(app.cookies()).clear(&mut out);
                wire(StatusCode::OK, body::SIGN_OUT_OK, out, None)
            }
            Err(e) => ApiError(e).into_response(),
        },
        Err(e @ (AccessTokenError::Malformed | AccessTokenError::OtherOrganization)) => {
            wire(StatusCode::UNAUTHORIZED, body::UNAUTHORISED, HeaderMap::new(), Some(access_token_error(e)))
        }
        Err(e @ AccessTokenError::TryRefresh(_)) => {
            wire(StatusCode::UNAUTHORIZED, body::TRY_REFRESH_TOKEN, HeaderMap::new(), Some(access_token_error(e)))
        }
    }
}
