//! The server-to-server credential: `Authorization: Bearer <organization API key>`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portcullis_core::{Error, ErrorCode};

use super::ApiError;
use crate::app::App;

/// The organization whose API key authenticated the request.
#[derive(Debug, Clone)]
pub struct OrgAuth(pub String);

impl FromRequestParts<Arc<App>> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let secret = super::bearer_token(&parts.headers).ok_or_else(|| {
            Error::new(ErrorCode::TokenMissing)
                .with_message("This API needs `Authorization: Bearer <organization API key>`.")
        })?;
        Ok(Self(app.authenticate_api_key(secret).await?))
    }
}
