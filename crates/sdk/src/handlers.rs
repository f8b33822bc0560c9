//! The five error handlers of SuperTokens' session recipe, overridable one by one.
//!
//! Each handler returns a [`ResponseDraft`] (status, body, extra headers). The session headers the
//! protocol requires (expired cookies, `front-token: remove`, new tokens) are applied after the handler
//! and cannot be dropped by it, so a custom response still logs the browser out when it must.

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use portcullis_core::session::ClaimValidationError;
use serde_json::{Value, json};

/// What the handler may change.
#[derive(Debug, Clone)]
pub struct ResponseDraft {
    /// Status. The frontend SDK keys on 401 (refresh or log out) and 403 (claims): change with care.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
    /// Extra headers (session headers are added after and win).
    pub headers: HeaderMap,
}

impl ResponseDraft {
    /// A JSON draft.
    #[must_use]
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self { status, body, headers: HeaderMap::new() }
    }
}

/// What the handlers learn about the request.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    /// Request method.
    pub method: axum::http::Method,
    /// Request path.
    pub path: String,
    /// Why, for logs.
    pub reason: String,
}

/// The five outcomes. Override the ones you need; the defaults produce exactly the SuperTokens statuses
/// and bodies.
#[async_trait]
pub trait ErrorHandlers: Send + Sync + 'static {
    /// No session, or it is gone (revoked, expired, cannot refresh). Default: 401 `{"message":"unauthorised"}`.
    async fn on_unauthorised(&self, context: &ErrorContext) -> ResponseDraft {
        let _ = context;
        ResponseDraft::json(StatusCode::UNAUTHORIZED, json!({ "message": "unauthorised" }))
    }

    /// The access token expired or cannot be verified now. Default: 401 `{"message":"try refresh token"}`.
    /// Never clears tokens.
    async fn on_try_refresh_token(&self, context: &ErrorContext) -> ResponseDraft {
        let _ = context;
        ResponseDraft::json(StatusCode::UNAUTHORIZED, json!({ "message": "try refresh token" }))
    }

    /// A rotated-out refresh token was reused; Portcullis already revoked the session in the same write.
    /// Default: 401 `{"message":"token theft detected"}`.
    async fn on_token_theft_detected(
        &self,
        session_handle: &str,
        user_id: &str,
        context: &ErrorContext,
    ) -> ResponseDraft {
        let _ = (session_handle, user_id, context);
        ResponseDraft::json(StatusCode::UNAUTHORIZED, json!({ "message": "token theft detected" }))
    }

    /// A claim validator failed. Default: 403 `{"message":"invalid claim","claimValidationErrors":[…]}`.
    async fn on_invalid_claim(&self, errors: &[ClaimValidationError], context: &ErrorContext) -> ResponseDraft {
        let _ = context;
        ResponseDraft::json(
            StatusCode::FORBIDDEN,
            json!({ "message": "invalid claim", "claimValidationErrors": errors }),
        )
    }

    /// Duplicate session cookies were resolved: the older domains' cookies are expired and the session
    /// refreshed in the same response. Default: 200 `{}`.
    async fn on_clear_duplicate_session_cookies(&self, context: &ErrorContext) -> ResponseDraft {
        let _ = context;
        ResponseDraft::json(StatusCode::OK, json!({}))
    }
}

/// SuperTokens' defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultErrorHandlers;

impl ErrorHandlers for DefaultErrorHandlers {}
