//! Rendering console pages: templates into responses, and errors into a page that names the catalog
//! code and links to its entry.

use std::sync::Arc;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use portcullis_core::{Error, ErrorCode};

use portcullis_core::console::Operator;

use super::ConsoleSession;
use crate::http::{ErrorReport, RequestId};

/// A rendered page, or the error page when the template fails.
pub(super) fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::http::ApiError(Error::new(ErrorCode::GenericError).with_internal(format!("template: {e}")))
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    message: &'a str,
    code: &'a str,
    status: u16,
    request_id: &'a str,
}

/// The page of a failure: its message, its catalog code (linked to the console's catalog) and the
/// request id; the internal detail goes to the log only.
pub(crate) fn error_page(error: Error, request_id: &RequestId) -> Response {
    let status = StatusCode::from_u16(error.status())
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let template = ErrorPage {
        message: error.message(),
        code: error.code().as_str(),
        status: status.as_u16(),
        request_id: &request_id.0,
    };
    let mut response = page(&template);
    *response.status_mut() = status;
    response.extensions_mut().insert(ErrorReport(Arc::new(error)));
    response
}

#[derive(Template)]
#[template(path = "console/signed_out.html")]
struct SignedOut;

/// The page after signing out.
pub(super) fn signed_out() -> Response {
    page(&SignedOut)
}

/// What every signed-in page shows in its frame.
pub(super) struct Frame<'a> {
    pub(super) operator: &'a Operator,
    pub(super) form_token: &'a str,
    /// The navigation entry of this page.
    pub(super) current: &'static str,
}

impl<'a> Frame<'a> {
    pub(super) fn new(session: &'a ConsoleSession, current: &'static str) -> Self {
        Self { operator: &session.operator, form_token: &session.form_token, current }
    }

    pub(super) fn is_admin(&self) -> bool {
        self.operator.require_admin().is_ok()
    }
}

pub(super) fn respond(result: Result<Response, Error>, request_id: &RequestId) -> Response {
    result.unwrap_or_else(|error| error_page(error, request_id))
}
