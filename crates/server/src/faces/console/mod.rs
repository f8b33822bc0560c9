//! The admin console (`/console/`): server-rendered pages for operators, signed in through the hosted
//! login of the operator organization like any application's users. The console is an OAuth client of
//! this server (authorization code with PKCE); its session is the resulting login session, so rotation,
//! theft detection and revocation apply. Rules are core's (`portcullis_core::console`) and the admin API's
//! services; this face renders them.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_core::console::{CALLBACK_PATH, ORGANIZATION_ID, Operator};
use portcullis_core::login::pkce::s256_challenge;
use portcullis_core::login::{StandardTokens, TokenRequest, random_token};
use portcullis_core::{Error, ErrorCode};
use serde::Deserialize;

use crate::app::App;
use crate::http::{IpLimit, RequestId, cookie_value, limit_per_ip};

mod audit;
mod charts;
mod connectors;
mod organizations;
mod pages;
mod render;
mod users;

pub(crate) use render::error_page;

/// The access token of the console session.
const ACCESS_COOKIE: &str = "pc_console";
/// The refresh token of the console session.
const REFRESH_COOKIE: &str = "pc_console_refresh";
/// The state and PKCE verifier of a sign-in under way.
const SIGN_IN_COOKIE: &str = "pc_console_sign_in";
/// How long a sign-in may take, in seconds.
const SIGN_IN_SECONDS: i64 = 600;

/// Every console response: never cached, never framed, no script at all, forms only to the console.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes(app: &Arc<App>) -> Router<Arc<App>> {
    let signed_in = Router::new()
        .route("/console/", get(pages::overview))
        .route("/console/organizations", get(organizations::list).post(organizations::create))
        .route("/console/organizations/{id}", get(organizations::show))
        .route("/console/organizations/{id}/settings", post(organizations::configure))
        .route("/console/organizations/{id}/secret", post(organizations::new_secret))
        .route("/console/organizations/{id}/secret/activate", post(organizations::activate_secret))
        .route("/console/organizations/{id}/api-keys", post(organizations::new_api_key))
        .route("/console/organizations/{id}/api-keys/{key}/revoke", post(organizations::revoke_api_key))
        .route("/console/organizations/{id}/connectors", get(connectors::show).post(connectors::install))
        .route("/console/organizations/{id}/connectors/call", post(connectors::call))
        .route("/console/organizations/{id}/connectors/{account}/{action}", post(connectors::act))
        .route("/console/organizations/{id}/users", get(users::search))
        .route("/console/organizations/{id}/users/{user}", get(users::show))
        .route("/console/organizations/{id}/users/{user}/{kind}/end-all", post(users::act_on_all))
        .route("/console/organizations/{id}/users/{user}/{kind}/{target}/{verb}", post(users::act_on_one))
        .route("/console/operators", get(pages::operators).post(pages::put_operator))
        .route("/console/audit", get(audit::show))
        .route("/console/audit.csv", get(audit::export))
        .route("/console/sign-out", post(sign_out))
        .route_layer(from_fn_with_state(Arc::clone(app), authenticate));
    // Signing in shares the hosted login's per-IP budget; signed-in pages do not (an operator browses
    // quickly, and each page already needs a live session).
    let signing_in = Router::new()
        .route("/console/sign-in", get(sign_in))
        .route(CALLBACK_PATH, get(callback))
        .route_layer(from_fn_with_state(IpLimit::pages(app), limit_per_ip));
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .merge(signing_in)
        .route("/console/errors", get(pages::errors))
        .route("/console/assets/console.css", get(stylesheet))
        .merge(signed_in)
        .layer(map_response(console_headers))
}

async fn console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn stylesheet() -> Response {
    let mut response = include_str!("../../../assets/console.css").into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    response
}

/// The signed-in operator of a request, put there by [`authenticate`].
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSession {
    pub(crate) operator: Operator,
    pub(crate) login_session_id: String,
    /// The token this session's forms carry.
    pub(crate) form_token: String,
}

impl ConsoleSession {
    /// Admits an action: the form carries this session's token and the operator is an admin.
    fn admit(&self, app: &App, form_token: Option<&str>) -> Result<(), Error> {
        app.console().form_tokens().check(&self.login_session_id, form_token)?;
        self.operator.require_admin()
    }
}

/// Sets a console cookie; an empty value removes it. `lifetime_secs`: a `Max-Age`, or none for a cookie that
/// ends with the browser.
fn set_cookie(
    response: &mut Response,
    app: &App,
    (name, path): (&'static str, &'static str),
    value: String,
    lifetime_secs: Option<i64>,
) {
    // Lax, not Strict: the hosted login may live on another site (an organization's auth domain), and
    // the redirect back from it must carry the cookies. Cross-site posts still get none, and every form
    // needs the session's form token anyway.
    let mut built = cookie::Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(app.config().cookies_secure())
        .same_site(cookie::SameSite::Lax)
        .build();
    if let Some(seconds) = lifetime_secs {
        built.set_max_age(cookie::time::Duration::seconds(seconds));
    }
    if built.value().is_empty() {
        built.make_removal();
    }
    if let Ok(value) = HeaderValue::from_str(&built.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn set_session_cookies(response: &mut Response, app: &App, tokens: Option<&StandardTokens>) {
    let (access, refresh) = tokens.map_or_else(Default::default, |t| (t.access_token.clone(), t.refresh_token.clone()));
    set_cookie(response, app, (ACCESS_COOKIE, "/console"), access, None);
    set_cookie(response, app, (REFRESH_COOKIE, "/console"), refresh, None);
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Starts a sign-in: the hosted login of the operator organization, with a fresh state and PKCE pair
/// kept in a short-lived cookie scoped to the callback.
async fn sign_in(State(app): State<Arc<App>>, request_id: axum::Extension<RequestId>) -> Response {
    let started = async {
        app.console().ensure_organization().await?;
        let (state, verifier) = (random_token()?, random_token()?);
        let challenge = s256_challenge(&verifier);
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", ORGANIZATION_ID),
            ("redirect_uri", &callback_uri(&app)),
            ("scope", "openid email"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e.to_string()))?;
        Ok::<_, Error>((format!("/oauth2/authorize?{query}"), format!("{state}.{verifier}")))
    };
    match started.await {
        Ok((location, pending)) => {
            let mut response = see_other(&location);
            set_cookie(&mut response, &app, (SIGN_IN_COOKIE, CALLBACK_PATH), pending, Some(SIGN_IN_SECONDS));
            response
        }
        Err(error) => error_page(error, &request_id),
    }
}

fn callback_uri(app: &App) -> String {
    format!("{}{CALLBACK_PATH}", app.config().public_url())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The end of a sign-in: checks the state, redeems the code with the PKCE verifier, and admits only
/// operators.
async fn callback(
    State(app): State<Arc<App>>,
    request_id: axum::Extension<RequestId>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let finished = async {
        if let Some(error) = &query.error {
            let described = query.error_description.as_deref().unwrap_or(error.as_str());
            return Err(Error::new(ErrorCode::NoPermission).with_message(format!(
                "The sign-in did not finish: {}",
                described.chars().take(200).collect::<String>()
            )));
        }
        let pending = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
        let (state, verifier) = pending.split_once('.').unwrap_or_default();
        let presented = query.state.as_deref().unwrap_or_default();
        if state.is_empty()
            || aws_lc_rs::constant_time::verify_slices_are_equal(state.as_bytes(), presented.as_bytes()).is_err()
        {
            return Err(Error::new(ErrorCode::StateInvalid)
                .with_status(400)
                .with_message("This sign-in was not started in this browser, or it took too long; sign in again."));
        }
        let tokens = app
            .oauth()
            .token(&TokenRequest {
                grant_type: Some("authorization_code".to_owned()),
                code: query.code.clone(),
                redirect_uri: Some(callback_uri(&app)),
                code_verifier: Some(verifier.to_owned()),
                client_id: Some(ORGANIZATION_ID.to_owned()),
                ..TokenRequest::default()
            })
            .await?;
        let session = session_of(&app, &tokens.access_token).await?;
        app.console().record_action(&session.operator.email, "console.signIn", &session.login_session_id).await;
        Ok::<_, Error>(tokens)
    };
    match finished.await {
        Ok(tokens) => {
            let mut response = see_other("/console/");
            set_session_cookies(&mut response, &app, Some(&tokens));
            set_cookie(&mut response, &app, (SIGN_IN_COOKIE, CALLBACK_PATH), String::new(), None);
            response
        }
        Err(error) => {
            let mut response = error_page(error, &request_id);
            set_cookie(&mut response, &app, (SIGN_IN_COOKIE, CALLBACK_PATH), String::new(), None);
            response
        }
    }
}

/// The operator behind an access token of the operator organization; a person without a console role
/// is refused and their login session ended.
async fn session_of(app: &App, access_token: &str) -> Result<ConsoleSession, Error> {
    let (session, user) = app.oauth().access(Some(access_token)).await?;
    if session.organization_id != ORGANIZATION_ID {
        return Err(Error::new(ErrorCode::TokenInvalid).with_internal("a token of another organization"));
    }
    let Some(operator) = app.console().operator(&user.id).await? else {
        app.console().sign_out(&session.id).await?;
        return Err(Error::new(ErrorCode::NoPermission)
            .with_message("This account is not a console operator. Ask an admin to add you.")
            .with_internal(format!("user {} has no console role", user.id)));
    };
    let form_token = app.console().form_tokens().token(&session.id);
    Ok(ConsoleSession { operator, login_session_id: session.id, form_token })
}

/// Admits a request with a live console session, refreshing (and so rotating) its tokens when the access
/// token has expired. Without one, a page goes to the sign-in and anything else is refused.
async fn authenticate(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let access = cookie_value(headers, ACCESS_COOKIE);
    let refresh = cookie_value(headers, REFRESH_COOKIE);
    let mut rotated = None;
    let mut found = session_of(&app, access.as_deref().unwrap_or_default()).await;
    let expired = found.as_ref().is_err_and(|e| matches!(e.code(), ErrorCode::TokenInvalid | ErrorCode::TokenMissing));
    if let (true, Some(refresh_token)) = (expired, refresh.filter(|r| !r.is_empty())) {
        let refreshed = app
            .oauth()
            .token(&TokenRequest {
                grant_type: Some("refresh_token".to_owned()),
                refresh_token: Some(refresh_token),
                client_id: Some(ORGANIZATION_ID.to_owned()),
                ..TokenRequest::default()
            })
            .await;
        found = match refreshed {
            Ok(tokens) => {
                let session = session_of(&app, &tokens.access_token).await;
                rotated = Some(tokens);
                session
            }
            Err(error) => Err(error),
        };
    }
    match found {
        Ok(session) => {
            request.extensions_mut().insert(session);
            let mut response = next.run(request).await;
            if let Some(tokens) = &rotated {
                set_session_cookies(&mut response, &app, Some(tokens));
            }
            response
        }
        // The store or the signer failed: say so and keep the cookies, so an outage signs nobody out.
        Err(error) if error.status() >= 500 => {
            let request_id =
                request.extensions().get::<RequestId>().cloned().unwrap_or_else(|| RequestId(String::new()));
            error_page(error, &request_id)
        }
        Err(error) => {
            tracing::debug!(code = error.code().as_str(), "console request without a live session");
            let mut response = if request.method() == axum::http::Method::GET {
                see_other("/console/sign-in")
            } else {
                let request_id =
                    request.extensions().get::<RequestId>().cloned().unwrap_or_else(|| RequestId(String::new()));
                error_page(
                    Error::new(ErrorCode::TokenMissing).with_message("Sign in to the console first."),
                    &request_id,
                )
            };
            set_session_cookies(&mut response, &app, None);
            response
        }
    }
}

#[derive(Debug, Deserialize)]
struct SignOutForm {
    form_token: Option<String>,
}

async fn sign_out(
    State(app): State<Arc<App>>,
    axum::Extension(session): axum::Extension<ConsoleSession>,
    request_id: axum::Extension<RequestId>,
    axum::Form(form): axum::Form<SignOutForm>,
) -> Response {
    let ended = async {
        app.console().form_tokens().check(&session.login_session_id, form.form_token.as_deref())?;
        app.console().sign_out(&session.login_session_id).await?;
        app.console().record_action(&session.operator.email, "console.signOut", &session.login_session_id).await;
        Ok::<_, Error>(())
    };
    match ended.await {
        Ok(()) => {
            let mut response = render::signed_out();
            set_session_cookies(&mut response, &app, None);
            response
        }
        Err(error) => error_page(error, &request_id),
    }
}
