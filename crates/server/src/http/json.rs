//! The JSON body extractor of every endpoint: axum's `Json`, with its rejections turned into catalog
//! errors (never a bare framework rejection).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use portcullis_core::{Error, ErrorCode};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError(json_error(&rejection))),
        }
    }
}

/// Longest serde message echoed to the client.
const MAX_DETAIL_CHARS: usize = 200;

fn json_error(rejection: &JsonRejection) -> Error {
    let detail: String = rejection.body_text().chars().take(MAX_DETAIL_CHARS).collect();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::new(ErrorCode::EntityInvalid)
            .with_status(415)
            .with_message("The request body must be JSON, sent with `Content-Type: application/json`."),
        JsonRejection::JsonDataError(_) if detail.contains("missing field") => {
            let field = detail.split('`').nth(1).unwrap_or("a required field");
            Error::new(ErrorCode::MissingFields).with_message(format!("The field `{field}` is required."))
        }
        JsonRejection::JsonDataError(_) => Error::new(ErrorCode::EntityInvalid)
            .with_message(format!("The request body has an invalid value: {}", strip_prefix(&detail))),
        JsonRejection::JsonSyntaxError(_) => Error::new(ErrorCode::EntityInvalid)
            .with_message(format!("The request body is not valid JSON: {}", strip_prefix(&detail))),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::new(ErrorCode::EntityInvalid).with_status(413).with_message("The request body is too large.")
        }
        _ => Error::new(ErrorCode::EntityInvalid)
            .with_message("The request body could not be read.")
            .with_internal(detail),
    }
}

/// axum prefixes serde's text with its own sentence; the client needs only serde's part.
fn strip_prefix(detail: &str) -> &str {
    detail.split_once(": ").map_or(detail, |(_, rest)| rest)
}
