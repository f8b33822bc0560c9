//! The hosted login pages: `GET /login` validates the request and starts a flow bound to the browser by
//! a cookie; the email and code steps live under `/login/flow/{id}`. Errors that make a redirect unsafe
//! (unknown client, untrusted callback) render an error page; fixable errors stay on the page.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use portcullis_core::login::model::{FlowFace, LoginFlow};
use portcullis_core::login::texts::PageTexts;
use portcullis_core::login::{AuthorizeFailure, AuthorizeRequest, LoginOutcome};
use portcullis_core::organization::Organization;
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use crate::app::App;
use crate::http::{ErrorReport, RequestId};

/// Cookie binding a flow to the browser that started it; its path is the flow's, so flows in several tabs
/// keep their own.
const BINDING_COOKIE: &str = "pc_login";
/// Longest banner text shown from the query.
const MAX_NOTICE_CHARS: usize = 200;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/login", get(start_compat))
        .route("/oauth2/authorize", get(start_standard))
        .route("/login/flow/{id}", get(show))
        .route("/login/flow/{id}/email", post(email))
        .route("/login/flow/{id}/code", post(code))
        .route("/login/link/{attempt}/{token}", get(show_link).post(use_link))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    texts: PageTexts,
    flow_id: &'a str,
    notice: Option<String>,
    code_step: bool,
    email: &'a str,
}

impl<'a> LoginPage<'a> {
    fn new(
        flow: &'a LoginFlow,
        organization: &Organization,
        notice: Option<String>,
        code_step: bool,
        email: &'a str,
    ) -> Self {
        let texts = PageTexts::resolve(&flow.translations, &organization.name, email);
        Self { texts, flow_id: &flow.id, notice, code_step, email }
    }
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage<'a> {
    organization: &'a str,
    email: &'a str,
    attempt_id: &'a str,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
    code: &'a str,
    request_id: &'a str,
}

/// Headers every hosted page carries: no caching, no framing, no referrer leaks.
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// An embedded flow (`embed=1`) may be framed by the organization's whitelisted origins, and no others.
fn allow_framing(response: &mut Response, organization: &Organization) {
    let ancestors = organization.whitelist.join(" ");
    let headers = response.headers_mut();
    headers.remove(header::X_FRAME_OPTIONS);
    let policy = format!("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors {ancestors}; base-uri 'none'");
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

fn render(status: StatusCode, body: Result<String, askama::Error>, error: Option<Error>) -> Response {
    let mut response = match body {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            let error = Error::new(ErrorCode::GenericError).with_internal(format!("template: {e}"));
            return crate::http::ApiError(error).into_response();
        }
    };
    page_headers(response.headers_mut());
    if let Some(error) = error {
        response.extensions_mut().insert(ErrorReport(Arc::new(error)));
    }
    response
}

fn error_page(error: Error, request_id: &RequestId) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let page = ErrorPage { message: error.message(), code: error.code().as_str(), request_id: &request_id.0 };
    render(if status.is_redirection() { StatusCode::BAD_REQUEST } else { status }, page.render(), Some(error))
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    page_headers(response.headers_mut());
    response
}

fn binding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()).flatten())
        .find(|c| c.name() == BINDING_COOKIE)
        .map(|c| c.value().to_owned())
}

async fn start_compat(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    start(&app, &request_id, &params, FlowFace::Compat).await
}

async fn start_standard(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    start(&app, &request_id, &params, FlowFace::Standard).await
}

/// Both faces' authorization endpoint; the face decides leniency and the callback error format.
async fn start(app: &App, request_id: &RequestId, params: &HashMap<String, String>, face: FlowFace) -> Response {
    let get = |k: &str| params.get(k).cloned();
    let request = AuthorizeRequest {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        response_type: get("response_type"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        affirm: params.get("affirm").is_some_and(|v| v == "1"),
        scope: get("scope"),
        nonce: get("nonce"),
        embed: params.get("embed").is_some_and(|v| v == "1"),
        translations: get("translations"),
    };
    match app.login().start(&request, face).await {
        Ok(started) => {
            // The banner (`error_message`, or `error_description` as npm sends it) and the email prefill
            // travel to the page; both are shown escaped.
            let mut query = Vec::new();
            if let Some(notice) = get("error_message").or_else(|| get("error_description")) {
                query.push(("notice", notice.chars().take(MAX_NOTICE_CHARS).collect::<String>()));
            }
            if let Some(email) = get("email") {
                query.push(("email", email.chars().take(254).collect()));
            }
            let suffix = match serde_urlencoded::to_string(&query) {
                Ok(encoded) if !encoded.is_empty() => format!("?{encoded}"),
                _ => String::new(),
            };
            let mut response = see_other(&format!("/login/flow/{}{suffix}", started.flow.id));
            // Inside a frame the page is a third party: its cookie must be SameSite=None (which needs Secure).
            let secure = app.config().cookies_secure();
            let same_site = if started.flow.embed && secure { cookie::SameSite::None } else { cookie::SameSite::Lax };
            let cookie = cookie::Cookie::build((BINDING_COOKIE, started.binding))
                .path(format!("/login/flow/{}", started.flow.id))
                .http_only(true)
                .secure(secure)
                .same_site(same_site)
                .build();
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(AuthorizeFailure::Page(error)) => error_page(error, request_id),
        Err(AuthorizeFailure::Redirect(url, error)) => {
            let mut response = see_other(url.as_str());
            *response.status_mut() = StatusCode::FOUND;
            response.extensions_mut().insert(ErrorReport(Arc::new(error)));
            response
        }
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    notice: Option<String>,
    email: Option<String>,
    step: Option<String>,
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
    headers: HeaderMap,
) -> Response {
    match app.login().flow(&id, binding(&headers).as_deref()).await {
        Ok((flow, organization)) => {
            let notice = query.notice.map(|n| n.chars().take(MAX_NOTICE_CHARS).collect());
            let email = query.email.as_deref().unwrap_or_default();
            let page = LoginPage::new(&flow, &organization, notice, query.step.as_deref() == Some("code"), email);
            let mut response = render(StatusCode::OK, page.render(), None);
            if flow.embed {
                allow_framing(&mut response, &organization);
            }
            response
        }
        Err(error) => error_page(error, &request_id),
    }
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    email: String,
}

async fn email(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    let login = app.login();
    let bound = binding(&headers);
    let sent = match login.send_code(&id, bound.as_deref(), &form.email).await {
        Ok(message) => app.deliver(&message).await.map(|()| message),
        Err(error) => Err(error),
    };
    match sent {
        Ok(message) => {
            let to: String = url::form_urlencoded::byte_serialize(message.to.as_bytes()).collect();
            see_other(&format!("/login/flow/{id}?step=code&email={to}"))
        }
        Err(error) => retry_page(&app, &id, bound.as_deref(), error, false, &form.email, &request_id).await,
    }
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    code: String,
}

async fn code(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let bound = binding(&headers);
    match app.login().enter_code(&id, bound.as_deref(), &form.code).await {
        Ok(LoginOutcome::Redirect(url)) => see_other(url.as_str()),
        Err(error) => {
            let email = app.login().pending_email(&id).await.ok().flatten().unwrap_or_default();
            retry_page(&app, &id, bound.as_deref(), error, true, &email, &request_id).await
        }
    }
}

/// A fixable error stays on the page, with the message; a broken flow shows the error page.
async fn retry_page(
    app: &App,
    id: &str,
    binding: Option<&str>,
    error: Error,
    code_step: bool,
    email: &str,
    request_id: &RequestId,
) -> Response {
    let Ok((flow, organization)) = app.login().flow(id, binding).await else {
        return error_page(error, request_id);
    };
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let code_step = code_step && error.code() != ErrorCode::LoginAttemptExpired;
    let page = LoginPage::new(&flow, &organization, Some(error.message().to_owned()), code_step, email);
    let mut response = render(status, page.render(), Some(error.clone()));
    if flow.embed {
        allow_framing(&mut response, &organization);
    }
    if let Some(seconds) = error.retry_after_secs() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A mailed link opened: a page with a button, never a login (mail scanners open links too).
async fn show_link(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
) -> Response {
    match app.login().link(&attempt, &token).await {
        Ok((attempt, organization)) => {
            let page = LinkPage {
                organization: &organization.name,
                email: &attempt.email,
                attempt_id: &attempt.id,
                token: &token,
            };
            render(StatusCode::OK, page.render(), None)
        }
        Err(error) => error_page(error, &request_id),
    }
}

/// The person pressed the button: this device is logged in.
async fn use_link(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
) -> Response {
    match app.login().confirm_link(&attempt, &token).await {
        Ok(LoginOutcome::Redirect(url)) => see_other(url.as_str()),
        Err(error) => error_page(error, &request_id),
    }
}
