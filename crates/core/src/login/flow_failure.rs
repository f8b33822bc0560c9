//! Failures that end a login flow. "When anything goes wrong during the authentication flow, the callback
//! URL is called with `error` and `error_description`": an expired, missing or voided attempt (undone from
//! the mail, too many wrong codes, a wrong challenge number, a link used elsewhere) and an expired flow
//! send the browser back to the application's validated callback, so the application hears of it and its
//! client library's error path runs. Failures the person can fix on the page stay there: a wrong code
//! with tries left, a captcha to solve, a throttled or mistyped email step, a failed passkey.
//!
//! A flow this browser did not start (unknown id, another browser's binding) has no callback the browser
//! may be sent to: the page shows the error instead.

use url::Url;

use super::attempt::ATTEMPT_LIFETIME;
use super::callback::{self, ErrorFormat};
use super::model::AttemptKind;
use super::service::{LoginService, is_bound_to};
use crate::{Error, ErrorCode};

impl LoginService {
    /// Where the browser goes after `error` failed a step of `flow_id`: the flow's callback with the error
    /// when the failure ends the flow, or `None` when the page shows it (a recoverable failure, or a flow
    /// this browser cannot be sent on from). Store failures here leave the page to show `error`.
    pub async fn callback_for_failure(&self, flow_id: &str, binding: Option<&str>, error: &Error) -> Option<Url> {
        if !matches!(
            error.code(),
            ErrorCode::LoginAttemptMissing | ErrorCode::LoginAttemptExpired | ErrorCode::LoginAttemptInvalid
        ) {
            return None;
        }
        let flow = match self.store.flow(flow_id).await {
            Ok(Some(flow)) if is_bound_to(&flow, binding) => flow,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read the login flow to send its failure to the callback");
                return None;
            }
        };
        if error.code() == ErrorCode::LoginAttemptInvalid && self.code_attempt_open(flow_id).await {
            return None;
        }
        let callback = Url::parse(&flow.redirect_uri).ok()?;
        Some(callback::error(&callback, error, Some(&flow.state), self.issuer(), ErrorFormat::for_face(flow.face)))
    }

    /// Whether the flow's latest attempt is a code attempt that still takes codes (a wrong code with tries
    /// left), so the page can ask again.
    async fn code_attempt_open(&self, flow_id: &str) -> bool {
        match self.store.latest_attempt(flow_id).await {
            Ok(Some(attempt)) => {
                attempt.kind == AttemptKind::Code
                    && attempt.closed_at.is_none()
                    && attempt.undone_at.is_none()
                    && attempt.created_at.plus(ATTEMPT_LIFETIME) > self.clock.now()
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read the login attempt; the page shows the failure");
                true
            }
        }
    }
}
