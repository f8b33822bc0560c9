//! The SuperTokens core face: the Core Driver Interface (CDI 5.4) that SuperTokens' own backend SDKs
//! (`supertokens-node` 24, `supertokens-python` 0.31) speak to their core. An app is a Portcullis
//! organization: `connectionURI = <public url>/supertokens/appid-<organization id>`, `apiKey = <an API key
//! of that organization>`. Sessions follow core's rules (`SessionService`); this face only translates.
//!
//! Wire rules (see `docs/supertokens.md`): business outcomes are 200 with a `status`; protocol failures
//! are `text/plain` with the status the SDKs expect, logged under their catalog code; absent fields are
//! omitted, never `null`.

mod request;
mod session;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use portcullis_core::{Error, ErrorCode};

use crate::app::App;
use crate::http::ApiError;
use request::{Call, Target};

/// Where the face is mounted.
pub(crate) const MOUNT: &str = "/supertokens";

/// The only CDI version the SDKs of this generation accept (they take the largest common version).
const CDI_VERSIONS: &[&str] = &["5.4"];

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new().route(&format!("{MOUNT}/{{*path}}"), any(dispatch))
}

async fn dispatch(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    handle(&app, &method, &uri, &headers, &body).await.unwrap_or_else(|Refusal(response)| *response)
}

async fn handle(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, Refusal> {
    let path = uri.path().strip_prefix(MOUNT).unwrap_or_default();
    let target = Target::parse(method, path)?;
    match (method, target.api) {
        (_, "/hello") => return Ok(text(StatusCode::OK, "Hello")),
        (&Method::GET, "/apiversion") => {
            return Ok(axum::Json(serde_json::json!({ "versions": CDI_VERSIONS })).into_response());
        }
        (&Method::GET, "/.well-known/jwks.json") => return session::jwks(app, &target).await,
        _ => {}
    }
    authenticate(app, headers, &target).await?;
    let call = Call::new(app, target, method, uri, body).await?;
    match (method, call.target.api) {
        (&Method::POST, "/recipe/session") => session::create(call).await,
        (&Method::POST, "/recipe/session/verify") => session::verify(call).await,
        (&Method::POST, "/recipe/session/refresh") => session::refresh(call).await,
        (&Method::POST, "/recipe/session/remove") => session::remove(call).await,
        (&Method::GET, "/recipe/session") => session::info(call).await,
        (&Method::POST, "/recipe/session/regenerate") => session::regenerate(call).await,
        (&Method::PUT, "/recipe/session/data") => session::put_data(call).await,
        (&Method::PUT, "/recipe/jwt/data") => session::put_jwt_data(call).await,
        (&Method::GET, "/recipe/session/user") => session::handles(call).await,
        (&Method::GET, "/user/id") => Ok(ok(serde_json::json!({ "status": "UNKNOWN_USER_ID_ERROR" }))),
        (&Method::GET, "/recipe/multitenancy/tenant/v2") => Ok(ok(serde_json::json!({
            "status": "OK",
            "tenantId": call.tenant(),
            "thirdParty": { "providers": [] },
            "coreConfig": {},
        }))),
        (&Method::PUT, "/recipe/role") => users::put_role(call).await,
        (&Method::POST, "/recipe/role/remove") => users::remove_role(call).await,
        (&Method::GET, "/recipe/roles") => users::roles(call).await,
        (&Method::GET, "/recipe/role/permissions") => users::role_permissions(call).await,
        (&Method::POST, "/recipe/role/permissions/remove") => users::remove_role_permissions(call).await,
        (&Method::GET, "/recipe/permission/roles") => users::permission_roles(call).await,
        (&Method::PUT, "/recipe/user/role") => users::add_user_role(call).await,
        (&Method::POST, "/recipe/user/role/remove") => users::remove_user_role(call).await,
        (&Method::GET, "/recipe/user/roles") => users::user_roles(call).await,
        (&Method::GET, "/recipe/role/users") => users::role_users(call).await,
        (&Method::GET, "/recipe/user/metadata") => users::metadata(call).await,
        (&Method::PUT, "/recipe/user/metadata") => users::update_metadata(call).await,
        (&Method::POST, "/recipe/user/metadata/remove") => users::remove_metadata(call).await,
        (method, api) => Err(failure(
            Error::new(ErrorCode::GenericError).with_internal(format!("the CDI table lists {method} {api} unhandled")),
        )),
    }
}

/// The `api-key` header (or `Authorization: Bearer`) must be an API key of the app's organization.
async fn authenticate(app: &App, headers: &HeaderMap, target: &Target) -> Result<(), Refusal> {
    let refused = |internal: &str| {
        protocol(Error::new(ErrorCode::NoPermission).with_status(401).with_internal(internal), "Invalid API key")
    };
    let secret = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| crate::http::bearer_token(headers))
        .ok_or_else(|| refused("no api-key header"))?;
    let organization = app
        .authenticate_api_key(secret)
        .await
        .map_err(|e| if e.status() >= 500 { failure(e) } else { refused("unknown or revoked API key") })?;
    if organization != target.app_id {
        return Err(refused("the API key belongs to another organization than the app in the path"));
    }
    Ok(())
}

/// A 200 JSON reply.
fn ok(body: serde_json::Value) -> Response {
    axum::Json(body).into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A refused call's response (boxed: it is the error side of every handler's result).
pub(super) struct Refusal(Box<Response>);

/// A protocol failure in SuperTokens' words (`text/plain`), logged with its catalog code.
fn protocol(error: Error, body: &str) -> Refusal {
    let mut response = ApiError(error).into_response();
    *response.body_mut() = axum::body::Body::from(body.to_owned());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Refusal(Box::new(response))
}

/// A failure of core or the store: its catalog status, and its code and client message as the text, so
/// the SDK's error (and the app's log) names it.
fn failure(error: Error) -> Refusal {
    let body = format!("{}: {}", error.code().as_str(), error.message());
    protocol(error, &body)
}
