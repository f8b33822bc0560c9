//! The server-to-server session API (`/api/v1/sessions`, `/api/v1/users/{id}/sessions`), authenticated
//! with an organization API key, so a backend in any language (and the Rust SDK) can use sessions.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::clock::Timestamp;
use portcullis_core::session::{
    AccessTokenClaims, Audience, RefreshFailure, SessionRecord, SessionTokens, access_token_error,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_description::SESSIONS;
use crate::app::App;
use crate::http::{ApiError, ApiJson, ErrorBody, ErrorReport, OrgAuth, RequestId};

pub(crate) fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(refresh))
        .routes(routes!(verify))
        .routes(routes!(regenerate))
        .routes(routes!(revoked))
        .routes(routes!(revoke))
        .routes(routes!(merge_claims))
        .routes(routes!(list, revoke_user))
        .routes(routes!(organization))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct OrganizationIdentity {
    id: String,
    name: String,
    session: SessionCookiePolicy,
}

/// The server's `[session]` cookie settings, which the Rust SDK applies to the endpoints it mounts unless
/// the app sets its own.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionCookiePolicy {
    /// `Domain` of session cookies; absent: host-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie_domain: Option<String>,
    /// Domains of earlier deployments whose duplicate cookies are cleared; `""` stands for host-only.
    older_cookie_domains: Vec<String>,
    /// `lax`, `strict` or `none`.
    cookie_same_site: String,
    /// Whether session cookies are `Secure`.
    cookie_secure: bool,
    /// Whether cookie-mode requests that change state must carry the `rid` header.
    anti_csrf: bool,
}

/// The organization the API key belongs to, and the server's session cookie settings: the SDK reads them
/// at start, accepts only the organization's tokens and sets cookies as the server does.
#[utoipa::path(get, path = "/api/v1/organization", tag = SESSIONS, security(("organizationApiKey" = [])),
    responses((status = 200, body = OrganizationIdentity)))]
async fn organization(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
) -> Result<Json<OrganizationIdentity>, ApiError> {
    let organization = app.organization(&org).await?;
    let cookies = app.cookies();
    let session = SessionCookiePolicy {
        cookie_domain: cookies.domain.clone(),
        older_cookie_domains: cookies.older_domains.iter().map(|d| d.clone().unwrap_or_default()).collect(),
        cookie_same_site: cookies.same_site.as_str().to_owned(),
        cookie_secure: cookies.secure,
        anti_csrf: app.config().session.anti_csrf == crate::config::AntiCsrf::ViaCustomHeader,
    };
    Ok(Json(OrganizationIdentity { id: organization.id, name: organization.name, session }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSession {
    #[schema(min_length = 1, max_length = 256)]
    user_id: String,
    /// Tenant (`tId`); `public` when absent.
    tenant_id: Option<String>,
    /// Custom claims of the access token.
    #[serde(default)]
    #[schema(value_type = Object)]
    access_token_payload: Map<String, Value>,
}

/// A session's tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Tokens {
    session: SessionRecord,
    access_token: String,
    /// Unix milliseconds.
    access_token_expiry: i64,
    /// `null` when only the access token was re-minted.
    refresh_token: Option<String>,
    /// Unix milliseconds; `null` with `refreshToken`.
    refresh_token_expiry: Option<i64>,
    /// The `front-token` header value for the frontend SDK.
    front_token: String,
}

impl From<SessionTokens> for Tokens {
    fn from(tokens: SessionTokens) -> Self {
        Self {
            access_token_expiry: tokens.claims.exp.saturating_mul(1000),
            refresh_token_expiry: tokens.refresh_token.as_ref().map(|_| tokens.session.expires_at.unix_millis()),
            session: tokens.session,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            front_token: tokens.front_token,
        }
    }
}

/// Creates a session for a user.
#[utoipa::path(post, path = "/api/v1/sessions", tag = SESSIONS, security(("organizationApiKey" = [])),
    request_body = NewSession, responses((status = 201, body = Tokens)))]
async fn create(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<(StatusCode, Json<Tokens>), ApiError> {
    let tokens =
        app.sessions().create(&org, &body.user_id, body.tenant_id.as_deref(), body.access_token_payload).await?;
    Ok((StatusCode::CREATED, Json(tokens.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
    /// Several candidates (duplicate cookies from two domains): the usable one is rotated, stale ones
    /// are ignored rather than treated as theft.
    refresh_tokens: Option<Vec<String>>,
}

/// Rotates a refresh token. A rotated-out token answers 401 `tokenTheftDetected` with the revoked
/// session's `sessionHandle` and `userId`.
#[utoipa::path(post, path = "/api/v1/sessions/refresh", tag = SESSIONS, security(("organizationApiKey" = [])),
    request_body = RefreshBody,
    responses((status = 200, body = Tokens), (status = 401, body = ErrorBody,
        description = "`unauthorised`, or `tokenTheftDetected` with `sessionHandle` and `userId`")))]
async fn refresh(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Response {
    let candidates: Vec<&str> =
        body.refresh_token.iter().chain(body.refresh_tokens.iter().flatten()).map(String::as_str).collect();
    let chosen = match candidates.as_slice() {
        [] => {
            let error = portcullis_core::Error::new(portcullis_core::ErrorCode::MissingFields)
                .with_message("The field `refreshToken` is required.");
            return ApiError(error).into_response();
        }
        [single] => *single,
        // Duplicate cookies: rotate the usable one; stale ones are ignored, never taken for theft.
        several => match app.sessions().usable_candidate(several).await {
            Ok(Some(token)) => token,
            Ok(None) => "",
            Err(e) => return ApiError(e).into_response(),
        },
    };
    match app.sessions().refresh(chosen, Some(&org)).await {
        Ok(tokens) => Json(Tokens::from(tokens)).into_response(),
        Err(RefreshFailure::Failed(e)) => ApiError(e).into_response(),
        Err(failure) => {
            // Theft carries the session and user, so the caller's handler can act on them.
            let (handle, user) = match &failure {
                RefreshFailure::TheftDetected { handle, user_id, kind } => {
                    tracing::warn!(session = %handle, user = %user_id, ?kind, "refresh token reuse: session revoked");
                    (Some(handle.clone()), Some(user_id.clone()))
                }
                _ => (None, None),
            };
            let error = portcullis_core::Error::from(failure);
            let body = ErrorBody { session_handle: handle, user_id: user, ..ErrorBody::new(&error, &request_id.0) };
            let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            response.extensions_mut().insert(ErrorReport(Arc::new(error)));
            response
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccessTokenBody {
    access_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Verified {
    claims: AccessTokenClaims,
    /// Whether the session is still live in the store (not revoked, not expired).
    session_live: bool,
}

/// Verifies an access token of this organization.
#[utoipa::path(post, path = "/api/v1/sessions/verify", tag = SESSIONS, security(("organizationApiKey" = [])),
    request_body = AccessTokenBody, responses((status = 200, body = Verified)))]
async fn verify(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<AccessTokenBody>,
) -> Result<Json<Verified>, ApiError> {
    let claims = app.sessions().verify(&body.access_token, Audience::Organization(&org)).map_err(access_token_error)?;
    let session_live = app.sessions().regenerate(&org, &body.access_token).await.is_ok();
    Ok(Json(Verified { claims, session_live }))
}

/// Re-mints the access token with the session's current claims (no refresh token).
#[utoipa::path(post, path = "/api/v1/sessions/regenerate", tag = SESSIONS, security(("organizationApiKey" = [])),
    request_body = AccessTokenBody, responses((status = 200, body = Tokens)))]
async fn regenerate(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<AccessTokenBody>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(app.sessions().regenerate(&org, &body.access_token).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Since {
    /// Unix milliseconds; 0 when absent.
    since: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RevokedSession {
    handle: String,
    /// Unix milliseconds.
    revoked_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RevokedSessions {
    revoked: Vec<RevokedSession>,
}

/// Sessions revoked since a time: verifiers that cache tokens poll it.
#[utoipa::path(get, path = "/api/v1/sessions/revoked", tag = SESSIONS, security(("organizationApiKey" = [])),
    params(Since), responses((status = 200, body = RevokedSessions)))]
async fn revoked(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Query(since): Query<Since>,
) -> Result<Json<RevokedSessions>, ApiError> {
    let since = Timestamp::from_unix_millis(since.since.unwrap_or(0));
    let revoked = app.sessions().revoked_since(&org, since).await?;
    let revoked =
        revoked.into_iter().map(|(handle, at)| RevokedSession { handle, revoked_at: at.unix_millis() }).collect();
    Ok(Json(RevokedSessions { revoked }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Revoked {
    /// Whether a live session was revoked.
    revoked: bool,
}

/// Revokes a session.
#[utoipa::path(delete, path = "/api/v1/sessions/{handle}", tag = SESSIONS, security(("organizationApiKey" = [])),
    params(("handle" = String, Path, description = "Session handle")), responses((status = 200, body = Revoked)))]
async fn revoke(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(handle): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    Ok(Json(Revoked { revoked: app.sessions().revoke(&org, &handle).await? }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ClaimsBody {
    /// Claims to set; `null` removes one.
    #[schema(value_type = Object)]
    claims: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UpdatedSession {
    session: SessionRecord,
}

/// Merges claims into a session's access-token payload (seen at the next refresh or regenerate).
#[utoipa::path(patch, path = "/api/v1/sessions/{handle}/claims", tag = SESSIONS, security(("organizationApiKey" = [])),
    params(("handle" = String, Path, description = "Session handle")), request_body = ClaimsBody,
    responses((status = 200, body = UpdatedSession)))]
async fn merge_claims(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(handle): Path<String>,
    ApiJson(body): ApiJson<ClaimsBody>,
) -> Result<Json<UpdatedSession>, ApiError> {
    Ok(Json(UpdatedSession { session: app.sessions().merge_claims(&org, &handle, body.claims).await? }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Sessions {
    sessions: Vec<SessionRecord>,
}

/// Lists a user's active sessions.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/sessions", tag = SESSIONS, security(("organizationApiKey" = [])),
    params(("user_id" = String, Path, description = "User id")), responses((status = 200, body = Sessions)))]
async fn list(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
) -> Result<Json<Sessions>, ApiError> {
    Ok(Json(Sessions { sessions: app.sessions().active_sessions(&org, &user_id).await? }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RevokedCount {
    /// How many sessions were revoked.
    revoked: u64,
}

/// Revokes every session of a user.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/sessions", tag = SESSIONS, security(("organizationApiKey" = [])),
    params(("user_id" = String, Path, description = "User id")), responses((status = 200, body = RevokedCount)))]
async fn revoke_user(
    OrgAuth(org): OrgAuth,
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
) -> Result<Json<RevokedCount>, ApiError> {
    Ok(Json(RevokedCount { revoked: app.sessions().revoke_user(&org, &user_id).await? }))
}
