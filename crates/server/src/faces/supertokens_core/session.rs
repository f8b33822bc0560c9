//! The session tier of the CDI: create, verify, refresh, remove, info, regenerate, data, handles and the
//! app's JWKS. Portcullis rotates refresh tokens at refresh and always mints `parentRefreshTokenHash1:
//! null`, so the SDKs verify locally and call `verify` only with `checkDatabase`.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use portcullis_core::session::{
    AccessTokenClaims, AccessTokenError, Audience, RefreshFailure, SUPERTOKENS_PROTECTED_CLAIMS, SessionRecord,
    SessionTokens,
};
use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use super::request::{Call, Target};
use super::{Refusal, failure, ok, protocol};
use crate::app::App;

/// Most handles one `remove` call may name.
const MAX_HANDLES_PER_REMOVE: usize = 1000;

const SESSION_DOES_NOT_EXIST: &str = "Session does not exist.";

/// The app's public keys, with no API key (the SDKs fetch it bare).
pub(super) async fn jwks(app: &App, target: &Target) -> Result<Response, Refusal> {
    app.organization(&target.app_id).await.map_err(|e| {
        if e.code() == ErrorCode::EntityMissing {
            protocol(
                Error::new(ErrorCode::EntityInvalid).with_internal("JWKS of an unknown app"),
                "AppId or tenantId not found => the app id is not an organization",
            )
        } else {
            failure(e)
        }
    })?;
    let sessions = app.supertokens_apps().sessions(&target.app_id).await.map_err(failure)?;
    // Verifiers may cache for half the publish lead: a new key is always seen before it signs.
    let max_age = (app.config().keys.publish_lead_secs / 2).max(1);
    let mut response = ok(sessions.keys().jwks());
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}, must-revalidate")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}

/// `POST [/<tenant>]/recipe/session`.
pub(super) async fn create(call: Call) -> Result<Response, Refusal> {
    let user_id = call.string("userId")?;
    let payload = call.optional_object("userDataInJWT")?.unwrap_or_default();
    let data = call.optional_object("userDataInDatabase")?.unwrap_or_default();
    supported_options(&call)?;
    let tokens = call
        .sessions
        .create_with_data(&call.target.app_id, user_id, Some(call.tenant()), payload, data)
        .await
        .map_err(failure)?;
    Ok(ok(json!({
        "status": "OK",
        "session": session(&tokens.session, &tokens.session.payload),
        "accessToken": access_token(&tokens),
        "refreshToken": refresh_token(&tokens),
    })))
}

/// `POST /recipe/session/verify`.
pub(super) async fn verify(call: Call) -> Result<Response, Refusal> {
    let token = call.string("accessToken")?;
    let check_database = call.bool_or("checkDatabase", false)?;
    let claims = match call.sessions.verify(token, Audience::OwnKeys) {
        Ok(claims) => claims,
        Err(refused) => {
            let message = match refused {
                AccessTokenError::TryRefresh(reason) => format!("Access token refused: {reason:?}"),
                AccessTokenError::Malformed | AccessTokenError::OtherOrganization => "Invalid access token".to_owned(),
            };
            return Ok(ok(json!({ "status": "TRY_REFRESH_TOKEN", "message": message })));
        }
    };
    let in_token = user_data_in_jwt(&claims);
    if !check_database {
        return Ok(ok(json!({ "status": "OK", "session": claims_session(&claims, &in_token) })));
    }
    let live = match call.sessions.live_session(&call.target.app_id, &claims.session_handle).await {
        Ok(live) => live,
        Err(e) if e.code() == ErrorCode::Unauthorised => {
            return Ok(unauthorised("Either the session has ended or has been blacklisted"));
        }
        Err(e) => return Err(failure(e)),
    };
    // Claims changed since the token was minted (`PUT /recipe/jwt/data`): hand out a token that has them.
    if live.payload == in_token {
        return Ok(ok(json!({ "status": "OK", "session": session(&live, &live.payload) })));
    }
    let tokens = call.sessions.remint(live, &claims).map_err(failure)?;
    Ok(ok(json!({
        "status": "OK",
        "session": session(&tokens.session, &tokens.session.payload),
        "accessToken": access_token(&tokens),
    })))
}

/// `POST /recipe/session/refresh`.
pub(super) async fn refresh(call: Call) -> Result<Response, Refusal> {
    let token = call.string("refreshToken")?;
    supported_options(&call)?;
    match call.sessions.refresh(token, Some(&call.target.app_id)).await {
        Ok(tokens) => Ok(ok(json!({
            "status": "OK",
            "session": session(&tokens.session, &tokens.session.payload),
            "accessToken": access_token(&tokens),
            "refreshToken": refresh_token(&tokens),
        }))),
        Err(RefreshFailure::Unauthorised(_)) => Ok(unauthorised("Session missing in db or has expired")),
        Err(RefreshFailure::TheftDetected { handle, user_id, .. }) => Ok(ok(json!({
            "status": "TOKEN_THEFT_DETECTED",
            "session": { "handle": handle, "userId": user_id, "recipeUserId": user_id },
        }))),
        Err(RefreshFailure::Failed(e)) => Err(failure(e)),
    }
}

/// `POST [/<tenant>]/recipe/session/remove`: by handles, or every session of a user.
pub(super) async fn remove(call: Call) -> Result<Response, Refusal> {
    let user_id = call.optional_string("userId")?;
    let handles = call.optional_strings("sessionHandles")?;
    let user_flags = call.has("revokeAcrossAllTenants") || call.has("revokeSessionsForLinkedAccounts");
    let across_tenants = call.bool_or("revokeAcrossAllTenants", true)?;
    call.bool_or("revokeSessionsForLinkedAccounts", true)?;
    let org = call.target.app_id.as_str();
    let revoked = match (user_id, handles) {
        (Some(user_id), None) => {
            if across_tenants && call.tenant() != "public" {
                return Err(protocol(
                    Error::new(ErrorCode::NoPermission).with_internal("revokeAcrossAllTenants on a named tenant"),
                    "revokeAcrossAllTenants can only be set to true if the tenantId is public",
                ));
            }
            let tenant = (!across_tenants).then(|| call.tenant());
            let found = call.sessions.active_sessions_in(org, user_id, tenant).await.map_err(failure)?;
            let handles: Vec<&str> = found.iter().map(|s| s.handle.as_str()).collect();
            call.sessions.revoke_each(org, &handles).await.map_err(failure)?
        }
        (None, Some(handles)) if handles.len() <= MAX_HANDLES_PER_REMOVE && !user_flags => {
            call.sessions.revoke_each(org, &handles).await.map_err(failure)?
        }
        _ => {
            let message = format!(
                "Invalid JSON input: give exactly one of userId and sessionHandles (at most {MAX_HANDLES_PER_REMOVE} \
                 handles, and the revoke flags only with userId)"
            );
            return Err(protocol(Error::new(ErrorCode::EntityInvalid).with_message(message.clone()), &message));
        }
    };
    Ok(ok(json!({ "status": "OK", "sessionHandlesRevoked": revoked })))
}

/// `GET /recipe/session?sessionHandle=`.
pub(super) async fn info(call: Call) -> Result<Response, Refusal> {
    let handle = call.required_query("sessionHandle")?;
    let live = match call.sessions.live_session(&call.target.app_id, handle).await {
        Ok(live) => live,
        Err(e) if e.code() == ErrorCode::Unauthorised => return Ok(unauthorised(SESSION_DOES_NOT_EXIST)),
        Err(e) => return Err(failure(e)),
    };
    Ok(ok(json!({
        "status": "OK",
        "sessionHandle": live.handle,
        "userId": live.user_id,
        "recipeUserId": live.user_id,
        "userDataInDatabase": live.data,
        "userDataInJWT": live.payload,
        "expiry": live.expires_at.unix_millis(),
        "timeCreated": live.created_at.unix_millis(),
        "tenantId": live.tenant_id,
    })))
}

/// `POST /recipe/session/regenerate`: new claims, same expiry.
pub(super) async fn regenerate(call: Call) -> Result<Response, Refusal> {
    let token = call.string("accessToken")?;
    let payload = call.optional_object("userDataInJWT")?;
    match call.sessions.regenerate_with_payload(&call.target.app_id, token, payload).await {
        Ok((live, tokens)) => {
            let mut reply = json!({ "status": "OK", "session": session(&live, &live.payload) });
            if let Some(tokens) = tokens {
                reply["accessToken"] = access_token(&tokens);
            }
            Ok(ok(reply))
        }
        Err(e) if matches!(e.code(), ErrorCode::Unauthorised | ErrorCode::TryRefreshToken) => {
            Ok(unauthorised(SESSION_DOES_NOT_EXIST))
        }
        Err(e) => Err(failure(e)),
    }
}

/// `PUT /recipe/session/data`: replaces the server-side data.
pub(super) async fn put_data(call: Call) -> Result<Response, Refusal> {
    let handle = call.string("sessionHandle")?;
    let data = call.object("userDataInDatabase")?;
    answer(call.sessions.replace_data(&call.target.app_id, handle, data).await)
}

/// `PUT /recipe/jwt/data`: replaces the claims; tokens minted from now on carry them.
pub(super) async fn put_jwt_data(call: Call) -> Result<Response, Refusal> {
    let handle = call.string("sessionHandle")?;
    let payload = call.object("userDataInJWT")?;
    answer(call.sessions.replace_payload(&call.target.app_id, handle, payload).await.map(|_| ()))
}

/// `GET [/<tenant>]/recipe/session/user?userId=`: handles of the user's live sessions.
pub(super) async fn handles(call: Call) -> Result<Response, Refusal> {
    let user_id = call.required_query("userId")?;
    let across_tenants = call.query_bool("fetchAcrossAllTenants", true)?;
    call.query_bool("fetchSessionsForAllLinkedAccounts", true)?;
    let tenant = (!across_tenants).then(|| call.tenant());
    let handles: Vec<String> = call
        .sessions
        .active_sessions_in(&call.target.app_id, user_id, tenant)
        .await
        .map_err(failure)?
        .into_iter()
        .map(|s| s.handle)
        .collect();
    Ok(ok(json!({ "status": "OK", "sessionHandles": handles })))
}

/// Refuses what Portcullis does not serve yet, in words the app's log shows, instead of tokens the SDK
/// would then refuse in a loop.
fn supported_options(call: &Call) -> Result<(), Refusal> {
    let refuse =
        |message: &str| protocol(Error::new(ErrorCode::EntityInvalid).with_message(message.to_owned()), message);
    if !call.bool_or("useDynamicSigningKey", true)? {
        return Err(refuse(
            "Portcullis signs SuperTokens access tokens with dynamic keys only: leave \
             useDynamicAccessTokenSigningKey at its default (true)",
        ));
    }
    if call.bool_or("enableAntiCsrf", false)? {
        return Err(refuse(
            "Portcullis does not support antiCsrf VIA_TOKEN: use VIA_CUSTOM_HEADER (the default with sameSite \
             none) or NONE",
        ));
    }
    Ok(())
}

fn answer(result: Result<(), Error>) -> Result<Response, Refusal> {
    match result {
        Ok(()) => Ok(ok(json!({ "status": "OK" }))),
        Err(e) if e.code() == ErrorCode::Unauthorised => Ok(unauthorised(SESSION_DOES_NOT_EXIST)),
        Err(e) => Err(failure(e)),
    }
}

fn unauthorised(message: &str) -> Response {
    ok(json!({ "status": "UNAUTHORISED", "message": message }))
}

/// The token's claims as the SDK sees its payload: everything but the names core owns.
fn user_data_in_jwt(claims: &AccessTokenClaims) -> Map<String, Value> {
    let mut payload = claims.payload();
    payload.retain(|name, _| !SUPERTOKENS_PROTECTED_CLAIMS.contains(&name.as_str()));
    payload
}

fn session(record: &SessionRecord, user_data_in_jwt: &Map<String, Value>) -> Value {
    json!({
        "handle": record.handle,
        "userId": record.user_id,
        "recipeUserId": record.user_id,
        "userDataInJWT": user_data_in_jwt,
        "tenantId": record.tenant_id,
    })
}

fn claims_session(claims: &AccessTokenClaims, user_data_in_jwt: &Map<String, Value>) -> Value {
    json!({
        "handle": claims.session_handle,
        "userId": claims.sub,
        "recipeUserId": claims.rsub,
        "userDataInJWT": user_data_in_jwt,
        "tenantId": claims.tenant_id,
    })
}

fn access_token(tokens: &SessionTokens) -> Value {
    json!({
        "token": tokens.access_token,
        "expiry": tokens.claims.exp.saturating_mul(1000),
        "createdTime": tokens.claims.iat.saturating_mul(1000),
    })
}

fn refresh_token(tokens: &SessionTokens) -> Value {
    json!({
        "token": tokens.refresh_token,
        "expiry": tokens.session.expires_at.unix_millis(),
        "createdTime": tokens.claims.iat.saturating_mul(1000),
    })
}
