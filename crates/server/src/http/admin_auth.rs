//! The admin API's credential: `Authorization: Bearer <admin token>`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portcullis_core::{Error, ErrorCode};

use super::ApiError;
use crate::app::App;

/// Proof that the request carries the admin token.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl FromRequestParts<Arc<App>> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let presented = super::bearer_token(&parts.headers).ok_or_else(|| {
            Error::new(ErrorCode::TokenMissing)
                .with_message("The admin API needs `Authorization: Bearer <admin token>`.")
        })?;
        if app.admin_token_matches(presented) {
            Ok(Self)
        } else {
            Err(ApiError(
                Error::new(ErrorCode::NoPermission).with_status(401).with_message("The admin token is not valid."),
            ))
        }
    }
}
