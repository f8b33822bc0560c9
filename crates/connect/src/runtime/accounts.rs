//! Accounts: install, update, list and delete them (sensitive values masked), the Post Install Test Auth
//! Method, and the OAuth 2 authorization-code install.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_core::store::{AccountState, ConnectorAccountRecord};
use portcullis_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{CallRequest, CallResult, ConnectorRuntime, Loaded, Recovery, TokenFailure, err, fill, script_error};
use crate::account::Credentials;
use crate::definition::{Auth, Grant};
use crate::script::{Budget, Event, Outcome};

/// An account as the admin API shows it: sensitive properties and the auth value masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Id.
    pub id: String,
    /// Connector name.
    pub connector: String,
    /// Properties, sensitive ones as `"********"`.
    pub properties: BTreeMap<String, String>,
    /// Whether an auth value is stored.
    pub authenticated: bool,
    /// `ok` or `needs_reauth`.
    pub state: &'static str,
    /// Credential version.
    pub version: i64,
    /// Why the last refresh failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// A new account or new credentials.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountInput {
    /// Id (new accounts); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Connector name (new accounts).
    #[serde(default)]
    pub connector: Option<String>,
    /// Properties to set (merged over the stored ones on update).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The auth value in Cyclr's format; replaces the stored one.
    #[serde(default)]
    pub auth_value: Option<String>,
}

const OAUTH_STATE_CONTEXT: &[u8] = b"portcullis connector oauth2 state";
const OAUTH_STATE_TTL_MILLIS: i64 = 10 * 60 * 1000;

impl ConnectorRuntime {
    fn view(&self, record: &ConnectorAccountRecord) -> Result<AccountView, Error> {
        let credentials = Credentials::open(&self.master, &record.id, &record.sealed_credentials)?;
        let connector = self.connectors.get(&record.connector);
        let properties = credentials
            .properties
            .iter()
            .map(|(k, v)| {
                let masked = connector.is_none_or(|c| c.is_sensitive(k));
                (k.clone(), if masked { crate::credentials::MASK.to_owned() } else { v.clone() })
            })
            .collect();
        Ok(AccountView {
            id: record.id.clone(),
            connector: record.connector.clone(),
            properties,
            authenticated: credentials.auth_value.is_some(),
            state: record.state.as_str(),
            version: record.version,
            last_failure: record.last_failure.clone(),
        })
    }

    /// Installs a connector for an organization.
    ///
    /// # Errors
    /// Unknown connector, missing required properties, id taken.
    pub async fn create_account(&self, org: &str, input: AccountInput) -> Result<AccountView, Error> {
        let name = input.connector.ok_or_else(|| err(ErrorCode::MissingFields, "connector is required."))?;
        let connector = self.connector(&name)?;
        let missing: Vec<&str> = connector
            .properties
            .iter()
            .filter(|p| p.required && !input.properties.contains_key(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(err(ErrorCode::MissingFields, format!("Missing account properties: {}.", missing.join(", "))));
        }
        let id = input.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let credentials = Credentials { properties: input.properties, auth_value: input.auth_value };
        super::request_headers::check_auth_value(&connector, &credentials)?;
        let now = self.clock.now();
        let record = ConnectorAccountRecord {
            sealed_credentials: credentials.seal(&self.master, &id)?,
            id,
            organization_id: org.to_owned(),
            connector: name,
            version: 1,
            state: AccountState::Ok,
            cooldown_until: None,
            last_failure: None,
            created_at: now,
            updated_at: now,
            rate_strikes: 0,
            rate_blocked_until: None,
        };
        self.store.insert_connector_account(&record).await?;
        // The Post Install Property Value Lookup Method runs right after install when its value is missing.
        if let Some(lookup) = &connector.lookup
            && !credentials.properties.contains_key(&lookup.output_property)
        {
            let budget = Arc::new(Budget::new(self.config.limits.timeout));
            self.recover(&connector, org, &record, Recovery::Session, &budget, false).await?;
            return self.account(org, &record.id).await;
        }
        self.view(&record)
    }

    /// Replaces the auth value and merges properties; clears a needs-reauth state.
    ///
    /// # Errors
    /// Unknown account; a concurrent write (retry).
    pub async fn update_account(&self, org: &str, id: &str, input: AccountInput) -> Result<AccountView, Error> {
        let record = self.account_record(org, id).await?;
        let mut credentials = Credentials::open(&self.master, id, &record.sealed_credentials)?;
        credentials.properties.extend(input.properties);
        if input.auth_value.is_some() {
            credentials.auth_value = input.auth_value;
        }
        let connector = self.connector(&record.connector)?;
        super::request_headers::check_auth_value(&connector, &credentials)?;
        if !self.write(&record, &credentials, AccountState::Ok, None, None).await? {
            return Err(Error::from(portcullis_core::store::StoreError::Conflict(
                "account changed concurrently".to_owned(),
            )));
        }
        self.view(&self.account_record(org, id).await?)
    }

    pub(super) async fn account_record(&self, org: &str, id: &str) -> Result<ConnectorAccountRecord, Error> {
        self.store
            .connector_account(org, id)
            .await?
            .ok_or_else(|| err(ErrorCode::EntityMissing, format!("There is no connector account {id:?}.")))
    }

    /// One account, masked.
    ///
    /// # Errors
    /// Unknown account.
    pub async fn account(&self, org: &str, id: &str) -> Result<AccountView, Error> {
        self.view(&self.account_record(org, id).await?)
    }

    /// The organization's accounts, masked.
    ///
    /// # Errors
    /// A store failure.
    pub async fn accounts(&self, org: &str) -> Result<Vec<AccountView>, Error> {
        self.store.connector_accounts(org).await?.iter().map(|r| self.view(r)).collect()
    }

    /// Runs the connector's Post Install Test Auth Method for an account.
    ///
    /// # Errors
    /// No test method defined (`connectorInvalid`), or the call's own errors.
    pub async fn test_auth(&self, org: &str, id: &str) -> Result<CallResult, Error> {
        let record = self.account_record(org, id).await?;
        let connector = self.connector(&record.connector)?;
        let method = connector
            .test_auth_method
            .clone()
            .ok_or_else(|| err(ErrorCode::ConnectorInvalid, "The connector defines no test_auth_method."))?;
        self.call(org, &record.connector, id, &CallRequest { method, ..CallRequest::default() }).await
    }

    /// Removes an account.
    ///
    /// # Errors
    /// Unknown account.
    pub async fn delete_account(&self, org: &str, id: &str) -> Result<(), Error> {
        if self.store.delete_connector_account(org, id).await? {
            Ok(())
        } else {
            Err(err(ErrorCode::EntityMissing, format!("There is no connector account {id:?}.")))
        }
    }

    /// Starts the OAuth 2 authorization-code install: the URL to send the user to. `state` is sealed and
    /// carries the PKCE verifier, so any instance can finish the flow.
    ///
    /// # Errors
    /// Not an authorization-code connector; unknown account.
    pub async fn authorize_url(&self, org: &str, id: &str, redirect_uri: &str) -> Result<String, Error> {
        let record = self.account_record(org, id).await?;
        let connector = self.connector(&record.connector)?;
        let Auth::Oauth2(oauth) = &connector.auth else {
            return Err(err(ErrorCode::EntityInvalid, "The connector does not use OAuth 2."));
        };
        let Some(authorize) = oauth.authorize_url.as_deref().filter(|_| oauth.grant == Grant::AuthorizationCode) else {
            return Err(err(ErrorCode::EntityInvalid, "The connector does not use the authorization-code grant."));
        };
        let credentials = Credentials::open(&self.master, id, &record.sealed_credentials)?;
        let fields = Self::fields(&connector, &credentials, &Map::new());
        let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
            + &URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        let state = json!({ "org": org, "account": id, "verifier": verifier, "exp": self.clock.now().unix_millis() + OAUTH_STATE_TTL_MILLIS });
        let sealed = self
            .master
            .seal(OAUTH_STATE_CONTEXT, state.to_string().as_bytes())
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        let authorize = Self::connector_url(&connector, &credentials, authorize)?;
        let mut url = url::Url::parse(&authorize).map_err(|e| err(ErrorCode::ConnectorInvalid, e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &fill(&oauth.client_id, &fields))
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &URL_SAFE_NO_PAD.encode(sealed));
            if !oauth.scopes.is_empty() {
                q.append_pair("scope", &oauth.scopes.join(" "));
            }
            if oauth.pkce {
                let challenge = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                q.append_pair("code_challenge", &URL_SAFE_NO_PAD.encode(challenge.as_ref()))
                    .append_pair("code_challenge_method", "S256");
            }
        }
        let levels: Vec<String> = connector.script.iter().cloned().collect();
        let mut globals = Map::new();
        globals.insert("method_endpoint".to_owned(), Value::String(url.into()));
        let budget = Arc::new(Budget::new(self.config.limits.timeout));
        let base_url = Self::connector_url(&connector, &credentials, &connector.base_url)?;
        let run =
            self.hooks(Event::BeforeOauth2Authorise, &levels, globals, &self.oauth_host(&base_url, &budget)).await?;
        if run.outcome != Outcome::Continue {
            return Err(script_error(Event::BeforeOauth2Authorise, run.outcome));
        }
        run.globals
            .get("method_endpoint")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| err(ErrorCode::ScriptError, "before_oauth2_authorise left method_endpoint empty."))
    }

    /// Finishes the install at Portcullis's callback: exchanges the code and stores the tokens.
    /// Returns `(organization, account)`.
    ///
    /// # Errors
    /// A bad or expired state; the provider rejected the code.
    pub async fn complete_authorization(
        &self,
        state: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<(String, String), Error> {
        let bad = || err(ErrorCode::EntityInvalid, "The authorization state is invalid or expired.");
        let sealed = URL_SAFE_NO_PAD.decode(state).map_err(|_| bad())?;
        let plain = self.master.open(OAUTH_STATE_CONTEXT, &sealed).map_err(|_| bad())?;
        let state: Value = serde_json::from_slice(&plain).map_err(|_| bad())?;
        if state.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp < self.clock.now().unix_millis()) {
            return Err(bad());
        }
        let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(bad);
        let (org, id, verifier) = (text("org")?, text("account")?, text("verifier")?);
        let record = self.account_record(&org, &id).await?;
        let connector = self.connector(&record.connector)?;
        let Auth::Oauth2(oauth) = &connector.auth else { return Err(bad()) };
        let loaded = Loaded { credentials: Credentials::open(&self.master, &id, &record.sealed_credentials)?, record };
        let fields = Self::fields(&connector, &loaded.credentials, &Map::new());
        let mut form = Map::new();
        form.insert("grant_type".to_owned(), json!("authorization_code"));
        form.insert("code".to_owned(), json!(code));
        form.insert("redirect_uri".to_owned(), json!(redirect_uri));
        form.insert("client_id".to_owned(), json!(fill(&oauth.client_id, &fields)));
        form.insert("client_secret".to_owned(), json!(fill(&oauth.client_secret, &fields)));
        if oauth.pkce {
            form.insert("code_verifier".to_owned(), json!(verifier));
        }
        let budget = Arc::new(Budget::new(self.config.limits.timeout));
        let token = match self.token_request(&connector, &loaded.credentials, form, false, &budget).await {
            Ok(t) => t,
            Err(TokenFailure::Script(e)) => return Err(e),
            Err(TokenFailure::Rejected(why) | TokenFailure::Transient(why)) => {
                return Err(err(ErrorCode::UpstreamError, "The provider did not issue a token.").with_internal(why));
            }
        };
        let mut credentials = loaded.credentials.clone();
        credentials.auth_value = Some(
            serde_json::to_string(&self.token_value(&token, None))
                .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?,
        );
        if !self.write(&loaded.record, &credentials, AccountState::Ok, None, None).await? {
            return Err(Error::from(portcullis_core::store::StoreError::Conflict(
                "account changed concurrently".to_owned(),
            )));
        }
        Ok((org, id))
    }
}

/// `Basic` auth value for a username and password.
#[must_use]
pub fn basic_auth_value(username: &str, password: &str) -> String {
    STANDARD.encode(format!("{username}:{password}"))
}
