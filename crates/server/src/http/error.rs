//! How a core [`Error`] becomes an HTTP response. The handler's response carries the error in its
//! extensions; [`super::request_context`] logs the internal detail and writes the catalog body with the
//! request id, so every error goes out the same way.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{Error, ErrorCode};

/// The server's error: a core [`Error`] that renders itself.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

/// The error behind a response, for logging and rendering by the request middleware.
#[derive(Debug, Clone)]
pub(crate) struct ErrorReport(pub(crate) Arc<Error>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let Some(seconds) = self.0.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED && self.0.code() == ErrorCode::TokenMissing {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portcullis\""));
        }
        response.extensions_mut().insert(ErrorReport(Arc::new(self.0)));
        response
    }
}

/// The error for a bare framework response that carries no body (405 from the router, 503 from the
/// timeout layer, …), so that nothing leaves the server outside the catalog.
pub(crate) fn error_for_bare_status(status: StatusCode, method: &str) -> Error {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => Error::new(ErrorCode::GenericError)
            .with_status(405)
            .with_message(format!("The method {method} is not allowed on this route.")),
        StatusCode::NOT_FOUND => Error::new(ErrorCode::EntityMissing),
        StatusCode::PAYLOAD_TOO_LARGE => {
            Error::new(ErrorCode::EntityInvalid).with_status(413).with_message("The request body is too large.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::new(ErrorCode::EntityInvalid).with_status(415),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => Error::new(ErrorCode::GenericError)
            .with_status(503)
            .with_message("The request took too long. Please try again.")
            .with_retry_after(1)
            .with_internal(format!("framework answered {status}")),
        status if status.is_client_error() => {
            Error::new(ErrorCode::EntityInvalid).with_internal(format!("framework answered {status}"))
        }
        status => Error::new(ErrorCode::GenericError).with_internal(format!("framework answered {status}")),
    }
}
