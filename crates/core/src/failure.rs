//! The one error type every layer returns: a catalog code, a client-safe message and internal detail
//! that only ever reaches the log.

use std::borrow::Cow;
use std::fmt;

use crate::error::ErrorCode;

/// A failure, as core reports it and faces render it.
///
/// `message` is shown to the client (default: the catalog's message); `internal` is logged next to the
/// request id and never sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: Cow<'static, str>,
    internal: Option<String>,
    status: u16,
    retry_after_secs: Option<u64>,
    oauth_error: Option<&'static str>,
}

impl Error {
    /// A failure with the catalog's default message and status.
    #[must_use]
    pub const fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.message()),
            internal: None,
            status: code.status(),
            retry_after_secs: None,
            oauth_error: None,
        }
    }

    /// Replaces the client message. Never put secrets or internal detail here.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds detail for the log only.
    #[must_use]
    pub fn with_internal(mut self, internal: impl fmt::Display) -> Self {
        self.internal = Some(internal.to_string());
        self
    }

    /// Uses one of the code's documented other statuses. A status the catalog does not document for
    /// this code is ignored, so the wire contract cannot drift from the catalog.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        debug_assert!(self.code.allows_status(status), "{status} is not documented for {}", self.code);
        if self.code.allows_status(status) {
            self.status = status;
        }
        self
    }

    /// Asks the client to wait (`Retry-After`).
    #[must_use]
    pub const fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    /// The catalog code.
    /// Names the OAuth error (RFC 6749 §4.1.2.1, §5.2) where the RFCs ask for a more specific one than the
    /// code's usual one: `unsupported_grant_type`, `unsupported_response_type`, `invalid_request` for a
    /// PKCE method other than S256 (RFC 7636 §4.4.1).
    #[must_use]
    pub const fn with_oauth_error(mut self, oauth_error: &'static str) -> Self {
        self.oauth_error = Some(oauth_error);
        self
    }

    /// The OAuth error the standard face sends: the override, else the code's.
    #[must_use]
    pub fn oauth_error(&self) -> &'static str {
        self.oauth_error.or(self.code.spec().oauth_error).unwrap_or("server_error")
    }

    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The client-safe message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Detail for the log.
    #[must_use]
    pub fn internal(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// The HTTP status to send.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// Seconds the client should wait before retrying.
    #[must_use]
    pub const fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

// Debug shows the internal detail (it is for logs); Display shows only what a client may see.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("status", &self.status)
            .field("message", &self.message)
            .field("internal", &self.internal)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_catalog() {
        let err = Error::new(ErrorCode::EntityMissing);
        assert_eq!(err.status(), 404);
        assert_eq!(err.message(), ErrorCode::EntityMissing.message());
        assert_eq!(err.internal(), None);
    }

    #[test]
    fn display_never_shows_internal_detail() {
        let err = Error::new(ErrorCode::GenericError).with_internal("password=hunter2");
        assert!(!err.to_string().contains("hunter2"));
        assert!(format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn documented_other_status_is_used() {
        assert_eq!(Error::new(ErrorCode::EntityInvalid).with_status(415).status(), 415);
    }
}
