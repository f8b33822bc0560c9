//! The SuperTokens frontend endpoints mounted in the app's router: `<base>/session/refresh` and
//! `<base>/signout`, backed by the server-to-server API.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use portcullis_session_wire::{RequestTokens, TokenResponse, TokenTransfer};
use serde_json::json;

use crate::Portcullis;
use crate::client::RefreshError;
use crate::guard::{SessionRejection, finish};
use crate::handlers::{ErrorContext, ResponseDraft};

impl Portcullis {
    /// The two endpoints, for `Router::merge`.
    pub fn session_routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
        Portcullis: FromRef<S>,
    {
        let base = &self.inner.api_base_path;
        Router::new()
            .route(&format!("{base}/session/refresh"), post(refresh_endpoint))
            .route(&format!("{base}/signout"), post(sign_out_endpoint))
    }

    /// Refreshes from the request's refresh token(s) and answers in the SuperTokens wire format.
    pub async fn refresh(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        let inner = &self.inner;
        let context = ErrorContext { method: method.clone(), path: uri.path().to_owned(), reason: String::new() };
        let wire = TokenResponse::new(&inner.cookies);
        let tokens = RequestTokens::from_headers(headers);
        let (candidates, mode) = tokens.refresh_candidates();
        let unauthorised = |reason: &str| SessionRejection::Unauthorised { clear: true, reason: reason.to_owned() };
        if candidates.is_empty() {
            // Fresh pages probe without tokens: answer at once, without a call to Portcullis.
            return self.reject(unauthorised("refresh without a refresh token"), &context).await;
        }
        if mode == TokenTransfer::Cookie && inner.anti_csrf && !tokens.has_rid {
            return self.reject(unauthorised("cookie-mode refresh without the rid header"), &context).await;
        }
        let duplicates = candidates.len() > 1;
        if tokens.has_duplicate_cookies() && inner.cookies.older_domains.is_empty() {
            // Without an older domain to clear, a refresh would leave both cookies and the browser would
            // refresh again and again; SuperTokens answers 500 here for the same reason.
            tracing::error!("duplicate session cookies and no older cookie domain to clear them from");
            let draft = ResponseDraft::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "errorCode": "genericError",
                    "message": "The request contains session cookies of two domains: the cookie domain changed. \
                                List the earlier domain in session.older_cookie_domains (or in the SDK's cookie \
                                settings) so that its cookies are cleared.",
                }),
            );
            return finish(draft, HeaderMap::new());
        }
        match inner.client.refresh(&candidates).await {
            Ok(issued) => {
                let mut sealed = HeaderMap::new();
                let draft = if duplicates {
                    wire.clear_older_domains(&mut sealed);
                    inner.handlers.on_clear_duplicate_session_cookies(&context).await
                } else {
                    ResponseDraft::json(StatusCode::OK, json!({}))
                };
                if tokens.legacy_id_refresh {
                    wire.clear_legacy(&mut sealed);
                }
                let other = if mode == TokenTransfer::Cookie { TokenTransfer::Header } else { TokenTransfer::Cookie };
                self.attach(&mut sealed, mode, &issued, tokens.carries(other));
                finish(draft, sealed)
            }
            Err(RefreshError::Unauthorised) => {
                let mut response = self.reject(unauthorised("Portcullis refused the refresh"), &context).await;
                if duplicates {
                    wire.clear_older_domains(response.headers_mut());
                }
                response
            }
            Err(RefreshError::TheftDetected { session_handle, user_id }) => {
                tracing::warn!(session = %session_handle, user = %user_id, "refresh token reuse: session revoked");
                if let Some(deny_list) = &inner.deny_list {
                    deny_list.insert(
                        &session_handle,
                        portcullis_core::clock::Clock::now(&portcullis_core::clock::SystemClock).unix_millis(),
                    );
                }
                let mut sealed = HeaderMap::new();
                wire.clear(&mut sealed);
                let draft = inner.handlers.on_token_theft_detected(&session_handle, &user_id, &context).await;
                finish(draft, sealed)
            }
            Err(RefreshError::Failed(e)) => {
                // Not a session outcome: the frontend SDK passes other statuses to the caller without
                // logging the user out.
                tracing::error!(error = %e, "refresh could not reach Portcullis");
                let draft = ResponseDraft::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "errorCode": "genericError", "message": "The session service is unavailable. Please try again." }),
                );
                finish(draft, HeaderMap::new())
            }
        }
    }

    /// Signs out: revokes the session and clears the tokens.
    pub async fn sign_out(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        let context = ErrorContext { method: method.clone(), path: uri.path().to_owned(), reason: String::new() };
        match self.verify_request(method, headers, &[]).await {
            Ok(session) => {
                if let Err(e) = self.inner.client.revoke_session(session.handle()).await {
                    tracing::error!(error = %e, "sign-out could not revoke the session");
                    let draft = ResponseDraft::json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({ "errorCode": "genericError", "message": "The session service is unavailable. Please try again." }),
                    );
                    return finish(draft, HeaderMap::new());
                }
                if let Some(deny_list) = &self.inner.deny_list {
                    deny_list.insert(
                        session.handle(),
                        portcullis_core::clock::Clock::now(&portcullis_core::clock::SystemClock).unix_millis(),
                    );
                }
                let mut sealed = HeaderMap::new();
                TokenResponse::new(&self.inner.cookies).clear(&mut sealed);
                finish(ResponseDraft::json(StatusCode::OK, json!({ "status": "OK" })), sealed)
            }
            Err(rejection) => self.reject(rejection, &context).await,
        }
    }
}

async fn refresh_endpoint(
    State(portcullis): State<Portcullis>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    portcullis.refresh(&method, &uri, &headers).await
}

async fn sign_out_endpoint(
    State(portcullis): State<Portcullis>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    portcullis.sign_out(&method, &uri, &headers).await
}
