//! Auth recovery: single-flight refresh or re-login under a database lease, token requests and their
//! failures, session renewal (`docs/connectors.md`, "Recovery").

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use portcullis_core::store::{AccountState, ConnectorAccountRecord};
use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use crate::account::{Credentials, OAuthValue, iso};
use crate::builtins::body_value;
use crate::credentials::Attach;
use crate::definition::{Auth, Connector, Grant};
use crate::egress::{self, Body, Outbound, SendError};
use crate::script::{Budget, Event, Outcome};

use super::{
    Attempt, CallRequest, ConnectorRuntime, Loaded, Pages, Recovery, Transaction, as_text, egress_refused, err, fill,
    retry_after, script_error,
};

const TRANSIENT_REFRESH_ATTEMPTS: u32 = 3;
const MAX_TOKEN_RETRY_WAIT: Duration = Duration::from_secs(10);

impl ConnectorRuntime {
    /// Single-flight recovery (in-process lock, database lease, re-read, then refresh or re-login) under the
    /// call's script budget; `probe`: this call is the one probe after a
    /// re-authorization cooldown, which may refresh although the account still needs re-authentication.
    /// `true` when this call renewed the credentials, `false` when another renewal had already landed.
    pub(super) async fn recover(
        &self,
        connector: &Connector,
        org: &str,
        used: &ConnectorAccountRecord,
        kind: Recovery,
        budget: &Arc<Budget>,
        probe: bool,
    ) -> Result<bool, Error> {
        let key = format!("connector:{org}/{}", used.id);
        let flight = self.flight(&key);
        let in_process = flight.lock().await;
        let leased = self.take_lease(&key).await;
        let result = self.recover_locked(connector, org, used, kind, budget, probe).await;
        if leased && let Err(e) = self.store.release_connector_lease(&key, &self.holder).await {
            tracing::warn!(error = %e, "could not release a connector refresh lease; it expires on its own");
        }
        drop(in_process);
        drop(flight);
        // Forget the entry once nobody waits on it, so the map does not grow with every account ever refreshed.
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(&key).is_some_and(|f| Arc::strong_count(f) == 1) {
            flights.remove(&key);
        }
        result
    }

    async fn take_lease(&self, key: &str) -> bool {
        let give_up = self.clock.now().plus(self.config.lease_wait);
        loop {
            let now = self.clock.now();
            match self.store.try_connector_lease(key, &self.holder, now, now.plus(self.config.lease_ttl)).await {
                Ok(true) => return true,
                Ok(false) if now < give_up => tokio::time::sleep(Duration::from_millis(25)).await,
                Ok(false) => {
                    tracing::warn!(key, "refresh lease still held elsewhere; refreshing anyway (guarded by CAS)");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "refresh lease unavailable; refreshing anyway (guarded by CAS)");
                    return false;
                }
            }
        }
    }

    /// The work of [`recover`](Self::recover) once it holds the lock and lease (apart, so they are released
    /// on every return).
    async fn recover_locked(
        &self,
        connector: &Connector,
        org: &str,
        used: &ConnectorAccountRecord,
        kind: Recovery,
        budget: &Arc<Budget>,
        probe: bool,
    ) -> Result<bool, Error> {
        let current = self.load(org, &used.id, &connector.name).await?;
        if current.record.version != used.version {
            tracing::debug!(account = %used.id, "credentials already renewed by another call");
            return Ok(false);
        }
        if current.record.state == AccountState::NeedsReauth
            && current.record.cooldown_until.is_none_or(|until| until > self.clock.now() && !probe)
        {
            return Err(err(ErrorCode::NeedsReauthentication, "Failed to authenticate the connector."));
        }
        match kind {
            Recovery::Refresh => self.refresh(connector, &current, budget).await?,
            Recovery::Session => self.renew_session(connector, org, &current, budget).await?,
        }
        Ok(true)
    }

    async fn reject(&self, loaded: &Loaded, why: String) -> Error {
        tracing::warn!(account = %loaded.record.id, reason = %why, "connector credentials rejected; account needs re-authentication");
        if let Err(e) =
            self.write(&loaded.record, &loaded.credentials, AccountState::NeedsReauth, None, Some(why)).await
        {
            tracing::warn!(error = %e, "could not mark the account as needing re-authentication");
        }
        err(
            ErrorCode::NeedsReauthentication,
            "The connector account must be re-authenticated: its credentials were rejected.",
        )
    }

    async fn refresh(&self, connector: &Connector, loaded: &Loaded, budget: &Arc<Budget>) -> Result<(), Error> {
        let Auth::Oauth2(oauth) = &connector.auth else {
            return Err(err(ErrorCode::ConnectorInvalid, "AuthRefreshException needs an OAuth 2 connector."));
        };
        let fields = Self::fields(connector, &loaded.credentials, &Map::new());
        let old = loaded.credentials.oauth().unwrap_or_default();
        let mut form = Map::new();
        let refresh_token = old.refresh_token.clone().filter(|t| !t.is_empty());
        match (oauth.grant, refresh_token) {
            (Grant::ClientCredentials, _) => {
                form.insert("grant_type".to_owned(), json!("client_credentials"));
            }
            (_, Some(token)) => {
                form.insert("grant_type".to_owned(), json!("refresh_token"));
                form.insert("refresh_token".to_owned(), json!(token));
            }
            (Grant::Password, None) => {
                form.insert("grant_type".to_owned(), json!("password"));
                form.insert("username".to_owned(), fields.get("Username").cloned().unwrap_or(Value::Null));
                form.insert("password".to_owned(), fields.get("Password").cloned().unwrap_or(Value::Null));
            }
            (Grant::AuthorizationCode, None) => {
                return Err(self.reject(loaded, "no refresh token is stored".to_owned()).await);
            }
        }
        if !oauth.scopes.is_empty() && oauth.grant != Grant::AuthorizationCode {
            form.insert("scope".to_owned(), json!(oauth.scopes.join(" ")));
        }
        form.insert("client_id".to_owned(), json!(fill(&oauth.client_id, &fields)));
        form.insert("client_secret".to_owned(), json!(fill(&oauth.client_secret, &fields)));
        let response = self.token_request(connector, &loaded.credentials, form, true, budget).await;
        match response {
            Ok(token) => {
                let value = self.token_value(&token, Some(&old));
                let mut credentials = loaded.credentials.clone();
                credentials.auth_value = Some(
                    serde_json::to_string(&value).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?,
                );
                // Persisted before use: a rotated refresh token never lives only in memory.
                if !self.write(&loaded.record, &credentials, AccountState::Ok, None, None).await? {
                    tracing::info!(account = %loaded.record.id, "another instance stored newer credentials first");
                }
                Ok(())
            }
            Err(TokenFailure::Rejected(why)) => Err(self.reject(loaded, why).await),
            Err(TokenFailure::Transient(why)) => Err(Error::new(ErrorCode::AuthRefreshRequired).with_internal(why)),
            Err(TokenFailure::Script(e)) => Err(e),
        }
    }

    pub(super) fn token_value(&self, token: &Value, old: Option<&OAuthValue>) -> OAuthValue {
        let now = self.clock.now().unix_millis();
        let seconds = |name: &str| token.get(name).and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
        OAuthValue {
            access_token: token.get("access_token").map(as_text).unwrap_or_default(),
            refresh_token: token
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| old.and_then(|o| o.refresh_token.clone())),
            expires: seconds("expires_in").and_then(|s| iso(now + s * 1000)),
            refresh_expires: seconds("refresh_expires_in")
                .and_then(|s| iso(now + s * 1000))
                .or_else(|| old.and_then(|o| o.refresh_expires.clone())),
        }
    }

    pub(super) async fn token_request(
        &self,
        connector: &Connector,
        credentials: &Credentials,
        form: Map<String, Value>,
        refresh: bool,
        budget: &Arc<Budget>,
    ) -> Result<Value, TokenFailure> {
        let Auth::Oauth2(oauth) = &connector.auth else {
            return Err(TokenFailure::Script(err(ErrorCode::ConnectorInvalid, "The connector does not use OAuth 2.")));
        };
        let url = Self::connector_url(connector, credentials, &oauth.token_url).map_err(TokenFailure::Script)?;
        let base_url =
            Self::connector_url(connector, credentials, &connector.base_url).map_err(TokenFailure::Script)?;
        let (before, after) = if refresh {
            (Event::BeforeOauth2Refresh, Event::AfterOauth2Refresh)
        } else {
            (Event::BeforeOauth2Token, Event::AfterOauth2Token)
        };
        let levels: Vec<String> = connector.script.iter().cloned().collect();
        let mut globals = Map::new();
        globals.insert("method_request".to_owned(), Value::Object(form));
        globals.insert("method_request_headers".to_owned(), Value::Object(Map::new()));
        globals.insert("method_endpoint".to_owned(), json!(url));
        let host = self.oauth_host(&base_url, budget);
        let run = self.hooks(before, &levels, globals, &host).await.map_err(TokenFailure::Script)?;
        if run.outcome != Outcome::Continue {
            return Err(TokenFailure::Script(script_error(before, run.outcome)));
        }
        let mut globals = run.globals;
        let form: Vec<(String, String)> = match globals.get("method_request") {
            Some(Value::Object(m)) => {
                m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), as_text(v))).collect()
            }
            _ => Vec::new(),
        };
        let token_url = url::Url::parse(&url)
            .map_err(|e| TokenFailure::Script(err(ErrorCode::ConnectorInvalid, format!("token_url: {e}"))))?;
        let mut last = String::new();
        let mut wait = None;
        for attempt in 0..TRANSIENT_REFRESH_ATTEMPTS {
            if attempt > 0 {
                // The token endpoint's Retry-After, capped so the whole refresh stays within the lease.
                let backoff = Duration::from_millis(200 << attempt);
                tokio::time::sleep(
                    wait.take().map_or(backoff, |secs| Duration::from_secs(secs).min(MAX_TOKEN_RETRY_WAIT)),
                )
                .await;
            }
            let mut headers = vec![("Accept".to_owned(), "application/json".to_owned())];
            if let Some(Value::Object(h)) = globals.get("method_request_headers") {
                headers.extend(h.iter().map(|(k, v)| (k.clone(), as_text(v))));
            }
            let outbound = Outbound {
                method: reqwest::Method::POST,
                url: token_url.clone(),
                headers,
                body: Body::Bytes(
                    serde_urlencoded::to_string(&form).unwrap_or_default().into_bytes(),
                    Some("application/x-www-form-urlencoded"),
                ),
                timeout: None,
            };
            // The form carries the client secret and the refresh token: no redirect to another origin gets it.
            let attach = Attach::none(
                vec![token_url.origin()],
                form.iter().map(|(_, v)| v.clone()).filter(|v| v.len() >= 4).collect(),
            );
            let response = match egress::send(&self.client, &self.egress, &attach, outbound).await {
                Ok(r) => r,
                Err(SendError::Refused(refused)) => return Err(TokenFailure::Script(egress_refused(&refused))),
                Err(e) => {
                    last = format!("token endpoint unreachable: {e}");
                    continue;
                }
            };
            let status = response.status().as_u16();
            wait = retry_after(response.headers(), self.clock.now());
            let text = response.text().await.unwrap_or_default();
            let body = body_value(&text);
            let error = body.get("error").and_then(Value::as_str).unwrap_or_default().to_owned();
            if status == 429 || status >= 500 {
                last = format!("token endpoint answered {status}");
                continue;
            }
            if !(200..300).contains(&status) || !error.is_empty() || body.get("access_token").is_none() {
                return Err(TokenFailure::Rejected(
                    format!("token endpoint answered {status} {error}").trim().to_owned(),
                ));
            }
            globals.insert("method_response".to_owned(), body);
            let run = self.hooks(after, &levels, globals, &host).await.map_err(TokenFailure::Script)?;
            if run.outcome != Outcome::Continue {
                return Err(TokenFailure::Script(script_error(after, run.outcome)));
            }
            return Ok(run.globals.get("method_response").cloned().unwrap_or(Value::Null));
        }
        Err(TokenFailure::Transient(last))
    }

    async fn renew_session(
        &self,
        connector: &Connector,
        org: &str,
        loaded: &Loaded,
        budget: &Arc<Budget>,
    ) -> Result<(), Error> {
        let Some(lookup) = &connector.lookup else {
            return Err(err(ErrorCode::ConnectorInvalid, "AuthSessionException needs a lookup method."));
        };
        let method = connector.methods.get(&lookup.method).ok_or_else(|| {
            err(ErrorCode::ConnectorInvalid, format!("The lookup method {:?} does not exist.", lookup.method))
        })?;
        let request = CallRequest { method: lookup.method.clone(), ..CallRequest::default() };
        let mut tx = Transaction {
            action_data: Value::Object(Map::new()),
            mergefields: Map::new(),
            pages: Pages::default(),
            unreplayable: None,
        };
        let answer = self.attempt(connector, method, &request, loaded, &mut tx, budget).await;
        let data = match answer {
            Ok(Attempt::Done(result)) if result.outcome == "success" => result.data,
            Ok(Attempt::Recover(_)) => {
                return Err(self.reject(loaded, "the lookup method asked for a new session itself".to_owned()).await);
            }
            Ok(Attempt::RateLimited(_)) => {
                return Err(Error::new(ErrorCode::AuthSessionRequired).with_internal("lookup rate limited"));
            }
            // A retry rule matched the lookup's answer: transient, like a 5xx; the next call logs in again.
            Ok(Attempt::Retry { status, .. }) => {
                return Err(Error::new(ErrorCode::AuthSessionRequired)
                    .with_internal(format!("lookup answered {status}, matched by a retry rule")));
            }
            Ok(Attempt::Done(_)) => {
                return Err(self.reject(loaded, "the lookup method did not succeed".to_owned()).await);
            }
            Err(e) if e.code() == ErrorCode::UpstreamError && e.message().contains(" 5") => {
                return Err(Error::new(ErrorCode::AuthSessionRequired).with_internal(e.message().to_owned()));
            }
            Err(e) if e.code() == ErrorCode::UpstreamError => {
                return Err(self.reject(loaded, format!("lookup method failed: {}", e.message())).await);
            }
            Err(e) => return Err(e),
        };
        let value = lookup.response_path.split('.').try_fold(&data, |v, part| v.get(part)).map(as_text);
        let Some(value) = value.filter(|v| !v.is_empty() && v != "null") else {
            return Err(self.reject(loaded, format!("the lookup response has no {}", lookup.response_path)).await);
        };
        let mut credentials = loaded.credentials.clone();
        credentials.properties.insert(lookup.output_property.clone(), value);
        if !self.write(&loaded.record, &credentials, AccountState::Ok, None, None).await? {
            tracing::info!(org, account = %loaded.record.id, "another instance renewed the session first");
        }
        Ok(())
    }
}

pub(super) enum TokenFailure {
    Rejected(String),
    Transient(String),
    Script(Error),
}
