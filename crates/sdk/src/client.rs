//! The server-to-server API client: the SDK's only network path to Portcullis.

use std::time::Duration;

use portcullis_session_wire::{CookieSettings, SameSite};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// What `GET /api/v1/organization` says.
#[derive(Debug, Clone)]
pub struct OrganizationInfo {
    /// The organization's id.
    pub id: String,
    /// The server's session cookie settings (absent from servers that predate them); `refresh_path` is
    /// left empty for the caller to set.
    pub cookies: Option<CookieSettings>,
    /// Whether the server requires the `rid` header on cookie-mode requests that change state.
    pub anti_csrf: Option<bool>,
}

/// What went wrong talking to Portcullis.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Portcullis could not be reached or answered garbage.
    #[error("Portcullis is unreachable: {0}")]
    Unreachable(String),
    /// Portcullis refused the call with a catalog error.
    #[error("{code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Catalog code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Tokens Portcullis issued.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedSession {
    /// Access token.
    pub access_token: String,
    /// Access-token expiry, Unix ms.
    pub access_token_expiry: i64,
    /// Refresh token, when one was minted.
    pub refresh_token: Option<String>,
    /// Refresh-token expiry, Unix ms.
    pub refresh_token_expiry: Option<i64>,
    /// `front-token` value.
    pub front_token: String,
    /// The session.
    pub session: SessionInfo,
}

/// A session as Portcullis lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Handle.
    pub handle: String,
    /// User.
    pub user_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Custom claims.
    #[serde(default)]
    pub payload: Map<String, Value>,
}

/// Why a refresh failed.
#[derive(Debug)]
pub enum RefreshError {
    /// No usable session.
    Unauthorised,
    /// A rotated-out token was reused; Portcullis revoked the session.
    TheftDetected {
        /// The revoked session.
        session_handle: String,
        /// Its user.
        user_id: String,
    },
    /// Anything else (unreachable, misconfigured key).
    Failed(ClientError),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
    session_handle: Option<String>,
    user_id: Option<String>,
}

/// A client of the server-to-server API, authenticated with an organization API key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl Client {
    /// A client for the Portcullis at `base_url`.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), api_key: api_key.to_owned() })
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value), ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let status = response.status();
        let value = response.json::<Value>().await.map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok((status, value))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let (status, value) = self.call(method, path, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        let error: ErrorBody = serde_json::from_value(value).unwrap_or(ErrorBody {
            error_code: None,
            message: None,
            session_handle: None,
            user_id: None,
        });
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: error.error_code.unwrap_or_else(|| "genericError".to_owned()),
            message: error.message.unwrap_or_default(),
        })
    }

    /// Creates a session.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn create_session(
        &self,
        user_id: &str,
        claims: Map<String, Value>,
    ) -> Result<IssuedSession, ClientError> {
        let body = json!({ "userId": user_id, "accessTokenPayload": claims });
        decode(self.ok(Method::POST, "/api/v1/sessions", Some(body)).await?)
    }

    /// Rotates a refresh token; several candidates (duplicate cookies) are resolved by the server.
    ///
    /// # Errors
    /// A [`RefreshError`].
    pub async fn refresh(&self, candidates: &[&str]) -> Result<IssuedSession, RefreshError> {
        let body = match candidates {
            [single] => json!({ "refreshToken": single }),
            several => json!({ "refreshTokens": several }),
        };
        let (status, value) =
            self.call(Method::POST, "/api/v1/sessions/refresh", Some(body)).await.map_err(RefreshError::Failed)?;
        if status.is_success() {
            return decode(value).map_err(RefreshError::Failed);
        }
        let error: ErrorBody =
            serde_json::from_value(value).map_err(|e| RefreshError::Failed(ClientError::Unreachable(e.to_string())))?;
        match (status, error.error_code.as_deref()) {
            (StatusCode::UNAUTHORIZED, Some("tokenTheftDetected")) => Err(RefreshError::TheftDetected {
                session_handle: error.session_handle.unwrap_or_default(),
                user_id: error.user_id.unwrap_or_default(),
            }),
            (StatusCode::UNAUTHORIZED, Some("unauthorised")) => Err(RefreshError::Unauthorised),
            (status, code) => Err(RefreshError::Failed(ClientError::Refused {
                status: status.as_u16(),
                code: code.unwrap_or("genericError").to_owned(),
                message: error.message.unwrap_or_default(),
            })),
        }
    }

    /// Revokes one session.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn revoke_session(&self, handle: &str) -> Result<bool, ClientError> {
        let value = self.ok(Method::DELETE, &format!("/api/v1/sessions/{handle}"), None).await?;
        Ok(value["revoked"].as_bool().unwrap_or(false))
    }

    /// Revokes every session of a user; returns how many.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64, ClientError> {
        let value = self.ok(Method::DELETE, &format!("/api/v1/users/{user_id}/sessions"), None).await?;
        Ok(value["revoked"].as_u64().unwrap_or(0))
    }

    /// Merges claims into a session (a `null` removes one).
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn merge_claims(&self, handle: &str, claims: Map<String, Value>) -> Result<(), ClientError> {
        self.ok(Method::PATCH, &format!("/api/v1/sessions/{handle}/claims"), Some(json!({ "claims": claims }))).await?;
        Ok(())
    }

    /// Re-mints an access token with the session's current claims.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn regenerate(&self, access_token: &str) -> Result<IssuedSession, ClientError> {
        decode(
            self.ok(Method::POST, "/api/v1/sessions/regenerate", Some(json!({ "accessToken": access_token }))).await?,
        )
    }

    /// Sessions revoked since a time (Unix ms): `(handle, revoked at)`.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn revoked_since(&self, since_millis: i64) -> Result<Vec<(String, i64)>, ClientError> {
        let value = self.ok(Method::GET, &format!("/api/v1/sessions/revoked?since={since_millis}"), None).await?;
        Ok(value["revoked"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| Some((i["handle"].as_str()?.to_owned(), i["revokedAt"].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The organization this client's API key belongs to, with the server's session cookie settings.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn organization(&self) -> Result<OrganizationInfo, ClientError> {
        let value = self.ok(Method::GET, "/api/v1/organization", None).await?;
        let id = value["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Unreachable("unexpected answer: no organization id".to_owned()))?;
        let session = &value["session"];
        let cookies = SameSite::from_name(session["cookieSameSite"].as_str().unwrap_or_default()).map(|same_site| {
            let domain = |d: &str| (!d.is_empty()).then(|| d.to_owned());
            CookieSettings {
                domain: session["cookieDomain"].as_str().and_then(domain),
                older_domains: session["olderCookieDomains"]
                    .as_array()
                    .map(|domains| domains.iter().filter_map(Value::as_str).map(domain).collect())
                    .unwrap_or_default(),
                secure: session["cookieSecure"].as_bool().unwrap_or(false),
                same_site,
                refresh_path: String::new(),
            }
        });
        Ok(OrganizationInfo { id, cookies, anti_csrf: session["antiCsrf"].as_bool() })
    }

    /// The JWKS document.
    ///
    /// # Errors
    /// A [`ClientError`].
    pub async fn jwks(&self) -> Result<Value, ClientError> {
        let response = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base_url))
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        response.json().await.map_err(|e| ClientError::Unreachable(e.to_string()))
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Unreachable(format!("unexpected answer: {e}")))
}
