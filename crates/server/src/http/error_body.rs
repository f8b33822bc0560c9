//! The bodies of error answers: the request middleware, the session API and the OAuth faces write
//! them, and the API description documents them.

use portcullis_core::ErrorCode;
use serde::Serialize;

/// A catalog error: every API's failure answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    /// The catalog code.
    pub(crate) error_code: ErrorCode,
    /// What happened, for people.
    pub(crate) message: String,
    /// Finds the request in the server's log.
    pub(crate) request_id: String,
    /// With `tokenTheftDetected` from the session API: the revoked session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) session_handle: Option<String>,
    /// With `tokenTheftDetected` from the session API: its user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
}

/// A token-endpoint error: RFC 6749 §5.2's fields beside the catalog's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OAuthErrorBody {
    /// The RFC 6749 error (`invalid_grant`, `invalid_client`, …).
    pub(crate) error: String,
    /// The message, restricted to RFC 6749's character set.
    #[serde(rename = "error_description")]
    pub(crate) error_description: String,
    /// The catalog code.
    pub(crate) error_code: ErrorCode,
    /// What happened, for people.
    pub(crate) message: String,
    /// Finds the request in the server's log.
    pub(crate) request_id: String,
}

impl ErrorBody {
    /// The body of `error` for the request `request_id`.
    pub(crate) fn new(error: &portcullis_core::Error, request_id: &str) -> Self {
        Self {
            error_code: error.code(),
            message: error.message().to_owned(),
            request_id: request_id.to_owned(),
            session_handle: None,
            user_id: None,
        }
    }
}
