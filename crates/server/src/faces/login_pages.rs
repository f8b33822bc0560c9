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
use axum::{Form, Json, Router};
use portcullis_core::login::model::{AttemptKind, LinkMethod};
use portcullis_core::login::model::{FlowFace, LoginFlow};
use portcullis_core::login::texts::PageTexts;
use portcullis_core::login::{
    AuthorizeFailure, AuthorizeRequest, EmailStep, LinkChoice, LinkOutcome, LoginOutcome, WaitOutcome, offers_passkeys,
};
use portcullis_core::organization::Organization;
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use crate::app::App;
use crate::http::{ApiJson, ClientIp, ErrorReport, RequestId};

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
        .route("/login/flow/{id}/wait", get(wait))
        .route("/login/flow/{id}/passkey/options", post(passkey_login_options))
        .route("/login/flow/{id}/passkey", post(passkey_login))
        .route("/login/flow/{id}/passkeys", get(show_passkeys).post(add_passkey))
        .route("/login/flow/{id}/passkeys/options", post(passkey_registration_options))
        .route("/login/flow/{id}/passkeys/rename", post(rename_passkey))
        .route("/login/flow/{id}/passkeys/remove", post(remove_passkey))
        .route("/login/flow/{id}/continue", post(continue_to_application))
        .route("/login/assets/captcha.js", get(captcha_script))
        .route("/login/assets/passkey.js", get(passkey_script))
        .route("/login/link/{attempt}/{token}", get(show_link).post(use_link))
        .route("/login/undo/{attempt}/{token}", get(show_undo).post(undo))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    texts: PageTexts,
    flow_id: &'a str,
    notice: Option<String>,
    code_step: bool,
    email: &'a str,
    /// The captcha challenge (JSON) the page's script solves before the email is sent.
    captcha: Option<String>,
    /// Send the form once solved: the person already pressed the button.
    autosubmit: bool,
    /// Discoverable passkey login options (JSON), when the organization has passkeys on.
    passkey_options: Option<String>,
    /// Digits of the mailed codes: the code field asks for exactly these.
    code_digits: u8,
}

impl<'a> LoginPage<'a> {
    fn new(
        flow: &'a LoginFlow,
        organization: &Organization,
        notice: Option<String>,
        code_step: bool,
        email: &'a str,
        code_digits: u8,
    ) -> Self {
        let texts = PageTexts::resolve(&flow.translations, &organization.name, email);
        Self {
            texts,
            flow_id: &flow.id,
            notice,
            code_step,
            email,
            captcha: None,
            autosubmit: false,
            passkey_options: None,
            code_digits,
        }
    }
}

/// The proof-of-work solver of the email step, served from the server's own origin (`script-src 'self'`).
async fn captcha_script() -> Response {
    script(include_str!("../../assets/captcha.js"))
}

/// The passkey script of the email step and the passkey page.
async fn passkey_script() -> Response {
    script(include_str!("../../assets/passkey.js"))
}

fn script(source: &'static str) -> Response {
    let mut response = source.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The email step's discoverable passkey options, when the page offers passkeys; a failure only logs (the
/// email step still works).
async fn email_passkey_options(
    app: &App,
    flow: &LoginFlow,
    organization: &Organization,
    binding: Option<&str>,
) -> Option<String> {
    if !offers_passkeys(flow, organization) {
        return None;
    }
    match app.login().passkey_login_options(&flow.id, binding, None).await {
        Ok(options) => Some(options.to_string()),
        Err(error) => {
            tracing::warn!(error = ?error, "no passkey options for the login page");
            None
        }
    }
}

/// The email step's captcha challenge now, if any; a failure to make one only logs (the check at
/// submission still applies).
async fn email_captcha(app: &App, flow: &LoginFlow, email: Option<&str>, ip: &ClientIp) -> Option<String> {
    let ip = ip.0.map(|ip| ip.to_string());
    match app.login().email_step_captcha(&flow.id, &flow.organization_id, email, ip.as_deref()).await {
        Ok(challenge) => challenge,
        Err(error) => {
            tracing::warn!(error = ?error, "no captcha challenge for the login page");
            None
        }
    }
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage<'a> {
    organization: &'a str,
    question: String,
    action: &'a str,
    button: &'a str,
}

#[derive(Template)]
#[template(path = "wait.html")]
struct WaitPage<'a> {
    texts: PageTexts,
    flow_id: &'a str,
    challenge: Option<u8>,
    refresh_seconds: u32,
}

/// A page with a message and, optionally, one button and a link back.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
    action: Option<&'a str>,
    button: &'a str,
    hint: Option<&'a str>,
    back: Option<(&'a str, &'a str)>,
}

/// One passkey as the passkey page lists it.
#[derive(Debug)]
struct PasskeyRow {
    credential_id: String,
    name: String,
    created: String,
    last_used: Option<String>,
    synced: bool,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage<'a> {
    flow_id: &'a str,
    organization: &'a str,
    email: &'a str,
    passkeys: Vec<PasskeyRow>,
    notice: Option<String>,
    info: Option<&'a str>,
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
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// An embedded flow (`embed=1`) may be framed by the organization's whitelisted origins, and no others.
fn allow_framing(response: &mut Response, organization: &Organization) {
    let ancestors = organization.whitelist.join(" ");
    let headers = response.headers_mut();
    headers.remove(header::X_FRAME_OPTIONS);
    let policy = format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors {ancestors}; base-uri 'none'"
    );
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

pub(crate) fn error_page(error: Error, request_id: &RequestId) -> Response {
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

/// Where a finished login step sends the browser.
fn outcome_response(outcome: LoginOutcome) -> Response {
    match outcome {
        LoginOutcome::Redirect(url) => see_other(url.as_str()),
        LoginOutcome::PasskeyStep { flow_id } => see_other(&format!("/login/flow/{flow_id}/passkeys")),
    }
}

fn binding(headers: &HeaderMap) -> Option<String> {
    crate::http::cookie_value(headers, BINDING_COOKIE)
}

async fn start_compat(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Query(params): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    start(&app, &request_id, &params, &uri, &headers, FlowFace::Compat).await
}

async fn start_standard(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Query(params): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    start(&app, &request_id, &params, &uri, &headers, FlowFace::Standard).await
}

/// Both faces' authorization endpoint; the face decides leniency and the callback error format.
async fn start(
    app: &App,
    request_id: &RequestId,
    params: &HashMap<String, String>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    face: FlowFace,
) -> Response {
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
        host: headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned),
        repeated_parameter: crate::http::repeated_parameter(uri.query().unwrap_or_default().as_bytes()),
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
        Err(AuthorizeFailure::AuthDomain(origin)) => {
            let path = uri.path_and_query().map_or("/login", axum::http::uri::PathAndQuery::as_str);
            let mut response = see_other(&format!("{origin}{path}"));
            *response.status_mut() = StatusCode::FOUND;
            response
        }
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
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let bound = binding(&headers);
    match app.login().flow(&id, bound.as_deref()).await {
        Ok((flow, organization)) => {
            let notice = query.notice.map(|n| n.chars().take(MAX_NOTICE_CHARS).collect());
            let email = query.email.as_deref().unwrap_or_default();
            let code_step = query.step.as_deref() == Some("code");
            let digits = app.login().code_digits();
            let mut page = LoginPage::new(&flow, &organization, notice, code_step, email, digits);
            if !code_step {
                page.captcha = email_captcha(&app, &flow, query.email.as_deref(), &ip).await;
                page.passkey_options = email_passkey_options(&app, &flow, &organization, bound.as_deref()).await;
            }
            let mut response = render(StatusCode::OK, page.render(), None);
            if flow.embed {
                allow_framing(&mut response, &organization);
            }
            response
        }
        Err(error) => flow_failure(&app, &id, bound.as_deref(), error, &request_id).await,
    }
}

/// A failure that ends the flow goes to the application's callback (core decides which); any other
/// shows the error page.
async fn flow_failure(app: &App, id: &str, binding: Option<&str>, error: Error, request_id: &RequestId) -> Response {
    match app.login().callback_for_failure(id, binding, &error).await {
        Some(callback) => to_callback(&callback, error),
        None => error_page(error, request_id),
    }
}

/// The flow ended with `error`: the browser goes to the application's callback, which carries it.
fn to_callback(callback: &url::Url, error: Error) -> Response {
    let mut response = see_other(callback.as_str());
    response.extensions_mut().insert(ErrorReport(Arc::new(error)));
    response
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    email: String,
    captcha: Option<String>,
}

async fn email(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    let login = app.login();
    let bound = binding(&headers);
    let step = EmailStep { ip: ip.0.map(|ip| ip.to_string()), captcha: form.captcha.clone() };
    let sent = match login.send_code(&id, bound.as_deref(), &form.email, &step).await {
        Ok(sent) => app.deliver(&sent.message).await.map(|()| sent),
        Err(error) => Err(error),
    };
    match sent {
        Ok(sent) if sent.kind == AttemptKind::Code => {
            let to: String = url::form_urlencoded::byte_serialize(sent.message.to.as_bytes()).collect();
            see_other(&format!("/login/flow/{id}?step=code&email={to}"))
        }
        Ok(_) => see_other(&format!("/login/flow/{id}/wait")),
        Err(error) => retry_page(&app, &id, bound.as_deref(), error, Step::Email(&ip), &form.email, &request_id).await,
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
        Ok(outcome) => outcome_response(outcome),
        Err(error) => {
            let email = app.login().pending_email(&id).await.ok().flatten().unwrap_or_default();
            retry_page(&app, &id, bound.as_deref(), error, Step::Code, &email, &request_id).await
        }
    }
}

/// Which step a page shows again after an error.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    /// The email step, with the client address for its captcha.
    Email(&'a ClientIp),
    /// The code step.
    Code,
}

/// A fixable error stays on the page, with the message; one that ends the flow goes to the application's
/// callback; a flow this browser cannot continue shows the error page.
async fn retry_page(
    app: &App,
    id: &str,
    binding: Option<&str>,
    error: Error,
    step: Step<'_>,
    email: &str,
    request_id: &RequestId,
) -> Response {
    if let Some(callback) = app.login().callback_for_failure(id, binding, &error).await {
        return to_callback(&callback, error);
    }
    let Ok((flow, organization)) = app.login().flow(id, binding).await else {
        return error_page(error, request_id);
    };
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let code_step = matches!(step, Step::Code) && error.code() != ErrorCode::LoginAttemptExpired;
    let notice = Some(error.message().to_owned());
    let mut page = LoginPage::new(&flow, &organization, notice, code_step, email, app.login().code_digits());
    if let Step::Email(ip) = step {
        page.captcha = email_captcha(app, &flow, Some(email), ip).await;
        page.passkey_options = email_passkey_options(app, &flow, &organization, binding).await;
        // The person pressed the button already: once the check is solved, the form goes again.
        page.autosubmit = error.code() == ErrorCode::CaptchaInvalid;
    }
    let mut response = render(status, page.render(), Some(error.clone()));
    if flow.embed {
        allow_framing(&mut response, &organization);
    }
    if let Some(seconds) = error.retry_after_secs() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Seconds between the waiting page's reloads.
const WAIT_REFRESH_SECONDS: u32 = 2;

/// The starting browser waits for the mail click; it logs in once a click approved it.
async fn wait(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let bound = binding(&headers);
    match app.login().wait(&id, bound.as_deref()).await {
        Ok(WaitOutcome::Done(outcome)) => outcome_response(outcome),
        Ok(WaitOutcome::Pending { email, challenge, flow, organization, .. }) => {
            let page = WaitPage {
                texts: PageTexts::resolve(&flow.translations, &organization.name, &email),
                flow_id: &flow.id,
                challenge,
                refresh_seconds: WAIT_REFRESH_SECONDS,
            };
            let mut response = render(StatusCode::OK, page.render(), None);
            if flow.embed {
                allow_framing(&mut response, &organization);
            }
            response
        }
        Err(error) => {
            let email = app.login().pending_email(&id).await.ok().flatten().unwrap_or_default();
            retry_page(&app, &id, bound.as_deref(), error, Step::Email(&ip), &email, &request_id).await
        }
    }
}

/// The choice a mailed link carries in its query.
#[derive(Debug, Deserialize)]
struct LinkQuery {
    pick: Option<u8>,
    device: Option<String>,
}

impl LinkQuery {
    fn choice(&self) -> LinkChoice {
        match (self.pick, self.device.as_deref()) {
            (Some(number), _) => LinkChoice::Pick(number),
            (None, Some("this")) => LinkChoice::ThisDevice,
            (None, Some("other")) => LinkChoice::OtherDevice,
            _ => LinkChoice::Default,
        }
    }

    fn suffix(&self) -> String {
        match self.choice() {
            LinkChoice::Pick(number) => format!("?pick={number}"),
            LinkChoice::ThisDevice => "?device=this".to_owned(),
            LinkChoice::OtherDevice => "?device=other".to_owned(),
            LinkChoice::Default => String::new(),
        }
    }
}

/// A mailed link opened: a page with a button, never a login (mail scanners open links too).
async fn show_link(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
    Query(query): Query<LinkQuery>,
) -> Response {
    match app.login().link(&attempt, &token).await {
        Ok((attempt, organization)) => {
            let email = &attempt.email;
            let (question, button) = match (attempt.kind, query.choice()) {
                (AttemptKind::Challenge, LinkChoice::Pick(number)) => (
                    format!("Does the login page show the number {number}? Only continue if it does."),
                    "Yes, approve the login",
                ),
                (AttemptKind::Link(LinkMethod::Remote), _) | (_, LinkChoice::OtherDevice) => {
                    (format!("Approve the login as {email} on the device where you started it?"), "Approve the login")
                }
                _ => (format!("Continue as {email} on this device?"), "Log me in"),
            };
            let action = format!("/login/link/{}/{token}{}", attempt.id, query.suffix());
            let page = LinkPage { organization: &organization.name, question, action: &action, button };
            render(StatusCode::OK, page.render(), None)
        }
        Err(error) => error_page(error, &request_id),
    }
}

/// The person pressed the button: this device is logged in, or the starting browser is approved.
async fn use_link(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
    Query(query): Query<LinkQuery>,
) -> Response {
    match app.login().confirm_link(&attempt, &token, query.choice()).await {
        Ok(LinkOutcome::LoggedIn(outcome)) => outcome_response(outcome),
        Ok(LinkOutcome::Approved { organization, email }) => {
            let text = format!(
                "The login to {organization} as {email} is approved. Go back to the device where you started: it continues by itself."
            );
            let undo = format!("/login/undo/{attempt}/{token}");
            let page = MessagePage {
                title: "Login approved",
                text: &text,
                action: Some(&undo),
                button: "This was not me: undo",
                hint: Some("Undo ends the login on the other device."),
                back: None,
            };
            render(StatusCode::OK, page.render(), None)
        }
        Err(error) => error_page(error, &request_id),
    }
}

/// An undo link opened: a page with a button (mail scanners must not undo logins either).
async fn show_undo(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
) -> Response {
    match app.login().undo_target(&attempt, &token).await {
        Ok((attempt, organization)) => {
            let text =
                format!("Undo the login to {} as {}? Its session ends at once.", organization.name, attempt.email);
            let action = format!("/login/undo/{}/{token}", attempt.id);
            let page = MessagePage {
                title: "Undo this login",
                text: &text,
                action: Some(&action),
                button: "Undo the login",
                hint: None,
                back: None,
            };
            render(StatusCode::OK, page.render(), None)
        }
        Err(error) => error_page(error, &request_id),
    }
}

async fn undo(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path((attempt, token)): Path<(String, String)>,
) -> Response {
    match app.login().undo(&attempt, &token).await {
        Ok(()) => {
            let page = MessagePage {
                title: "Login undone",
                text: "The login was undone: it can no longer be used, and its session has ended.",
                action: None,
                button: "",
                hint: Some("If you did not start it, someone knows your email address; nothing else is needed."),
                back: None,
            };
            render(StatusCode::OK, page.render(), None)
        }
        Err(error) => error_page(error, &request_id),
    }
}

#[derive(Debug, Deserialize)]
struct PasskeyOptionsRequest {
    email: Option<String>,
}

/// Username-first passkey login options (the email typed before pressing the passkey button).
async fn passkey_login_options(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PasskeyOptionsRequest>,
) -> Response {
    json_answer(app.login().passkey_login_options(&id, binding(&headers).as_deref(), request.email.as_deref()).await)
}

fn json_answer(result: Result<serde_json::Value, Error>) -> Response {
    match result {
        Ok(options) => {
            let mut response = Json(options).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => crate::http::ApiError(error).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct PasskeyAnswer {
    response: String,
    name: Option<String>,
}

/// The browser's passkey login answer: logged in, or the email step again with the reason. A passkey of
/// another organization gets a page of its own that says so.
async fn passkey_login(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<PasskeyAnswer>,
) -> Response {
    let bound = binding(&headers);
    match app.login().passkey_login(&id, bound.as_deref(), &form.response).await {
        Ok(outcome) => outcome_response(outcome),
        Err(error) if error.code() == ErrorCode::PasskeyWrongOrganization => {
            let back = format!("/login/flow/{id}");
            let page = MessagePage {
                title: "This passkey is for another organization",
                text: error.message(),
                action: None,
                button: "",
                hint: Some(
                    "Passkeys belong to the organization they were made for, and are never used for another one.",
                ),
                back: Some((&back, "Log in by email instead")),
            };
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::FORBIDDEN);
            render(status, page.render(), Some(error))
        }
        Err(error) => retry_page(&app, &id, bound.as_deref(), error, Step::Email(&ip), "", &request_id).await,
    }
}

/// The passkey page: after a verified email, add, rename or remove passkeys, then go on.
async fn show_passkeys(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let info = match query.get("done").map(String::as_str) {
        Some("added") => Some("Passkey added. Next time, log in with it."),
        Some("renamed") => Some("Passkey renamed."),
        Some("removed") => Some("Passkey removed."),
        _ => None,
    };
    passkeys_page(&app, &id, binding(&headers).as_deref(), None, info, &request_id).await
}

async fn passkeys_page(
    app: &App,
    id: &str,
    binding: Option<&str>,
    error: Option<Error>,
    info: Option<&str>,
    request_id: &RequestId,
) -> Response {
    let page = match app.login().passkey_page(id, binding).await {
        Ok(page) => page,
        Err(e) => return error_page(error.unwrap_or(e), request_id),
    };
    let day = |t: portcullis_core::clock::Timestamp| t.to_rfc3339().chars().take(10).collect::<String>();
    let passkeys = page
        .passkeys
        .iter()
        .map(|p| PasskeyRow {
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            created: day(p.created_at),
            last_used: p.last_used_at.map(day),
            synced: p.backed_up,
        })
        .collect();
    let view = PasskeysPage {
        flow_id: id,
        organization: &page.organization.name,
        email: &page.email,
        passkeys,
        notice: error.as_ref().map(|e| e.message().to_owned()),
        info,
    };
    let status =
        error.as_ref().map_or(StatusCode::OK, |e| StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST));
    render(status, view.render(), error)
}

async fn passkey_registration_options(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    json_answer(app.login().passkey_registration_options(&id, binding(&headers).as_deref()).await)
}

async fn add_passkey(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PasskeyAnswer>,
) -> Response {
    let bound = binding(&headers);
    let added = app.login().register_passkey(&id, bound.as_deref(), &form.response, form.name.as_deref()).await;
    changed(&app, &id, bound.as_deref(), added.map(|_| ()), "added", &request_id).await
}

/// After a change on the passkey page: the page again, with what was done or why it was not.
async fn changed(
    app: &App,
    id: &str,
    binding: Option<&str>,
    result: Result<(), Error>,
    done: &str,
    request_id: &RequestId,
) -> Response {
    match result {
        Ok(()) => see_other(&format!("/login/flow/{id}/passkeys?done={done}")),
        Err(error) => passkeys_page(app, id, binding, Some(error), None, request_id).await,
    }
}

#[derive(Debug, Deserialize)]
struct PasskeyChange {
    credential: String,
    name: Option<String>,
}

async fn rename_passkey(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PasskeyChange>,
) -> Response {
    let bound = binding(&headers);
    let name = form.name.unwrap_or_default();
    let renamed = app.login().rename_passkey(&id, bound.as_deref(), &form.credential, &name).await;
    changed(&app, &id, bound.as_deref(), renamed, "renamed", &request_id).await
}

async fn remove_passkey(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PasskeyChange>,
) -> Response {
    let bound = binding(&headers);
    let removed = app.login().remove_passkey(&id, bound.as_deref(), &form.credential).await;
    changed(&app, &id, bound.as_deref(), removed, "removed", &request_id).await
}

/// Leaves the passkey page for the application.
async fn continue_to_application(
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match app.login().continue_after_passkeys(&id, binding(&headers).as_deref()).await {
        Ok(outcome) => outcome_response(outcome),
        Err(error) => error_page(error, &request_id),
    }
}
