//! Verifying requests: the [`Session`] extractor and the [`require_session`] middleware with per-route
//! claim validators.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::session::{
    AccessTokenClaims, AccessTokenError, Audience, ClaimValidationError, ClaimValidator, TryRefreshReason,
    validate_claims,
};
use portcullis_session_wire::{RequestTokens, TokenResponse, TokenTransfer};
use serde_json::{Map, Value};

use crate::Portcullis;
use crate::handlers::{ErrorContext, ResponseDraft};

/// A verified session.
#[derive(Debug, Clone)]
pub struct Session {
    claims: Arc<AccessTokenClaims>,
    transfer: TokenTransfer,
}

impl Session {
    /// The user id (`sub`).
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.claims.sub
    }

    /// The session handle.
    #[must_use]
    pub fn handle(&self) -> &str {
        &self.claims.session_handle
    }

    /// All claims.
    #[must_use]
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }

    /// The custom claims.
    #[must_use]
    pub fn payload(&self) -> &Map<String, Value> {
        &self.claims.custom
    }

    /// Whether the token came in a cookie or a header.
    #[must_use]
    pub const fn transfer(&self) -> TokenTransfer {
        self.transfer
    }
}

/// Why a request has no usable session.
#[derive(Debug, Clone)]
pub enum SessionRejection {
    /// No session (`clear`: it existed and is gone, so tokens are cleared).
    Unauthorised {
        /// Clear the tokens.
        clear: bool,
        /// For the log.
        reason: String,
    },
    /// Refresh and retry (`clear_older`: expire duplicate cookies of older domains too).
    TryRefresh {
        /// Expire the older domains' cookies.
        clear_older: bool,
        /// For the log.
        reason: String,
    },
    /// Claims fail the route's validators.
    InvalidClaim(Vec<ClaimValidationError>),
}

/// A [`Portcullis`] with the claim validators of one group of routes.
#[derive(Debug, Clone)]
pub struct Guard {
    portcullis: Portcullis,
    validators: Arc<Vec<ClaimValidator>>,
}

impl Guard {
    pub(crate) fn new(portcullis: Portcullis, validators: Vec<ClaimValidator>) -> Self {
        Self { portcullis, validators: Arc::new(validators) }
    }
}

impl FromRef<Guard> for Portcullis {
    fn from_ref(guard: &Guard) -> Self {
        guard.portcullis.clone()
    }
}

/// Middleware: verifies the session and the guard's validators, puts the [`Session`] in the request's
/// extensions, or answers through the error handlers.
/// Use with `route_layer(from_fn_with_state(portcullis.guard(validators), require_session))`.
pub async fn require_session(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let context = context(request.method(), request.uri().path());
    match guard.portcullis.verify_request(request.method(), request.headers(), &guard.validators).await {
        Ok(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Err(rejection) => guard.portcullis.reject(rejection, &context).await,
    }
}

fn context(method: &Method, path: &str) -> ErrorContext {
    ErrorContext { method: method.clone(), path: path.to_owned(), reason: String::new() }
}

impl<S> FromRequestParts<S> for Session
where
    S: Send + Sync,
    Portcullis: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(session) = parts.extensions.get::<Self>() {
            return Ok(session.clone());
        }
        let portcullis = Portcullis::from_ref(state);
        let context = context(&parts.method, parts.uri.path());
        match portcullis.verify_request(&parts.method, &parts.headers, &[]).await {
            Ok(session) => Ok(session),
            Err(rejection) => Err(portcullis.reject(rejection, &context).await),
        }
    }
}

impl Portcullis {
    /// Verifies the request's access token locally and applies `validators`.
    ///
    /// # Errors
    /// The [`SessionRejection`] the protocol prescribes.
    pub async fn verify_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        validators: &[ClaimValidator],
    ) -> Result<Session, SessionRejection> {
        let inner = &self.inner;
        let tokens = RequestTokens::from_headers(headers);
        let try_refresh =
            |clear_older: bool, reason: &str| SessionRejection::TryRefresh { clear_older, reason: reason.to_owned() };
        if tokens.legacy_id_refresh {
            return Err(try_refresh(false, "legacy sIdRefreshToken cookie"));
        }
        if tokens.bearer.is_none() && tokens.access_cookies.len() > 1 {
            return Err(try_refresh(true, "duplicate sAccessToken cookies"));
        }
        let Some((token, transfer)) = tokens.access_token() else {
            return Err(SessionRejection::Unauthorised { clear: false, reason: "no access token".to_owned() });
        };
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if transfer == TokenTransfer::Cookie && inner.anti_csrf && !safe && !tokens.has_rid {
            return Err(try_refresh(false, "cookie-mode request without the rid header"));
        }
        let audience = Audience::Organization(&inner.organization_id);
        let verify = || inner.verified.verify(token, &inner.jwks, SystemClock.now(), inner.issuer.as_deref(), audience);
        let verified = match verify() {
            Err(AccessTokenError::TryRefresh(TryRefreshReason::UnknownKey))
                if inner.jwks.refetch_for_unknown_key(&inner.client).await =>
            {
                verify()
            }
            other => other,
        };
        let claims = match verified {
            Ok(claims) => claims,
            Err(AccessTokenError::Malformed) => {
                return Err(SessionRejection::Unauthorised {
                    clear: false,
                    reason: "access token is not a JWT".to_owned(),
                });
            }
            Err(AccessTokenError::OtherOrganization) => {
                return Err(SessionRejection::Unauthorised {
                    clear: false,
                    reason: "access token of another organization".to_owned(),
                });
            }
            Err(AccessTokenError::TryRefresh(reason)) => {
                return Err(try_refresh(false, &format!("{reason:?}")));
            }
        };
        if inner.deny_list.as_ref().is_some_and(|d| d.contains(&claims.session_handle)) {
            return Err(SessionRejection::Unauthorised { clear: true, reason: "session revoked".to_owned() });
        }
        let errors = validate_claims(validators, &claims.payload());
        if !errors.is_empty() {
            return Err(SessionRejection::InvalidClaim(errors));
        }
        Ok(Session { claims, transfer })
    }

    /// Answers a rejection through the error handlers, then applies the session headers the protocol
    /// requires.
    pub async fn reject(&self, rejection: SessionRejection, context: &ErrorContext) -> Response {
        let handlers = &self.inner.handlers;
        let wire = TokenResponse::new(&self.inner.cookies);
        let mut sealed = HeaderMap::new();
        let draft = match rejection {
            SessionRejection::Unauthorised { clear, reason } => {
                if clear {
                    wire.clear(&mut sealed);
                }
                handlers.on_unauthorised(&ErrorContext { reason, ..context.clone() }).await
            }
            SessionRejection::TryRefresh { clear_older, reason } => {
                if clear_older {
                    wire.clear_older_domains(&mut sealed);
                }
                handlers.on_try_refresh_token(&ErrorContext { reason, ..context.clone() }).await
            }
            SessionRejection::InvalidClaim(errors) => handlers.on_invalid_claim(&errors, context).await,
        };
        finish(draft, sealed)
    }
}

/// Builds the response: the handler's draft, then the sealed session headers on top.
pub(crate) fn finish(draft: ResponseDraft, sealed: HeaderMap) -> Response {
    let mut response = (draft.status, axum::Json(draft.body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in &draft.headers {
        headers.append(name, value.clone());
    }
    let mut last = None;
    for (name, value) in sealed {
        // `HeaderMap` into_iter yields the name once for several values.
        let name = name.or_else(|| last.clone());
        if let Some(name) = name {
            if name == header::SET_COOKIE {
                headers.append(name.clone(), value);
            } else {
                headers.insert(name.clone(), value);
            }
            last = Some(name);
        }
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
