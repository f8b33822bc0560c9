//! The call pipeline and auth recovery (`docs/connectors.md` has the rules).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_core::clock::{Clock, Timestamp};
use portcullis_core::keys::MasterKey;
use portcullis_core::store::{AccountState, ConnectorAccountRecord, Store};
use portcullis_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::account::Credentials;
use crate::builtins::Storage;
use crate::credentials::{self, Attach, Sandbox};
use crate::definition::{Auth, Connector, Grant, Method, merge_fields};
use crate::egress::{self, EgressPolicy};
use crate::pool::ScriptPool;
use crate::script::{self, Budget, Event, Host, Limits, Outcome};

mod accounts;
mod attempt;
mod paging;
mod rate_limits;
mod recovery;
mod request_headers;
mod templates;
mod webhooks;

pub use accounts::{AccountInput, AccountView, basic_auth_value};
use paging::Pages;
use rate_limits::retry_after;
use recovery::TokenFailure;
use templates::{as_text, fill, fill_with};
pub use webhooks::{InboundWebhook, WebhookReply};

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Script limits.
    pub limits: Limits,
    /// Timeout of one upstream request.
    pub http_timeout: Duration,
    /// A 429 whose wait is at most this long is waited out inside the call, once.
    pub max_inline_rate_limit_wait: Duration,
    /// How long a refresh lease is held at most.
    pub lease_ttl: Duration,
    /// How long to wait for another instance's lease before refreshing anyway (the CAS still guards).
    pub lease_wait: Duration,
    /// Fail-fast period after the retried request failed authentication again.
    pub reauth_cooldown: Duration,
    /// Upper bound of the proactive-refresh margin.
    pub refresh_margin: Duration,
    /// Reserved networks outbound requests may reach anyway (public addresses always may).
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Scripts that run at once; 0: half the CPUs, at least 1.
    pub max_concurrent_scripts: usize,
    /// How long a script waits for a free slot before the call answers `scriptsBusy`.
    pub script_queue_wait: Duration,
    /// Whether organization API keys may send a step script.
    pub api_key_step_scripts: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            http_timeout: Duration::from_secs(30),
            max_inline_rate_limit_wait: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(10),
            reauth_cooldown: Duration::from_secs(30),
            refresh_margin: Duration::from_secs(900),
            egress_allow: Vec::new(),
            max_concurrent_scripts: 0,
            script_queue_wait: Duration::from_secs(1),
            api_key_step_scripts: false,
        }
    }
}

/// Who makes a call: what it may send is decided here, not in the faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The operator: the admin API, the command line.
    Admin,
    /// An organization API key.
    ApiKey,
}

/// One call of a method.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallRequest {
    /// Method id.
    pub method: String,
    /// Merge-field values (`{{Name}}`); account and partner properties of the same name win.
    #[serde(default)]
    pub mergefields: Map<String, Value>,
    /// Extra query parameters.
    #[serde(default)]
    pub query: Map<String, Value>,
    /// Extra headers.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// Body; replaces the method's body template.
    #[serde(default)]
    pub body: Option<Value>,
    /// Step-level script (runs after the connector and method levels, without seeing credentials).
    #[serde(default)]
    pub script: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallResult {
    /// `success`, `warning` (an `after_error` set `isWarning`) or `aborted` (`before_action` returned false).
    pub outcome: &'static str,
    /// Upstream status (0: no request was sent).
    pub status: u16,
    /// `method_response` after the hooks.
    pub data: Value,
    /// `action_condition`'s exit, when a level defines it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<bool>,
    /// How many auth recoveries this call ran.
    pub recoveries: u32,
    /// What the call did besides the request, in order: renewals before sending, recoveries after an
    /// `AuthRefreshException` / `AuthSessionException`, retries and rate-limit waits. Absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

impl CallResult {
    /// The result of an outbound-paged call: one `data` entry per request; `aborted` when every request
    /// was, `warning` when any request was not a plain success; the last request's status and condition.
    fn of_pages(results: Vec<Self>) -> Self {
        let outcome = if results.iter().all(|r| r.outcome == "aborted") {
            "aborted"
        } else if results.iter().any(|r| r.outcome != "success") {
            "warning"
        } else {
            "success"
        };
        let last = results.last();
        Self {
            outcome,
            status: last.map_or(0, |r| r.status),
            condition: last.and_then(|r| r.condition),
            recoveries: results.iter().map(|r| r.recoveries).sum(),
            steps: results.iter().flat_map(|r| r.steps.iter().cloned()).collect(),
            data: Value::Array(results.into_iter().map(|r| r.data).collect()),
        }
    }
}

/// The step a renewal before sending adds to a call's result; `own`: this call renewed the credentials.
fn step_before_sending(kind: Recovery, own: bool) -> &'static str {
    match (kind, own) {
        (Recovery::Refresh, true) => "The access token was about to expire: refreshed it before sending.",
        (Recovery::Refresh, false) => "The access token was about to expire: another call had just refreshed it.",
        (Recovery::Session, true) => "The session had expired: logged in again before sending.",
        (Recovery::Session, false) => "The session had expired: another call had just logged in again.",
    }
}

/// The step a recovery after a refusal adds; `own`: this call renewed the credentials.
fn step_after_refusal(kind: Recovery, own: bool) -> String {
    let (exception, renewal) = match kind {
        Recovery::Refresh => ("AuthRefreshException", "refreshed the token"),
        Recovery::Session => ("AuthSessionException", "logged in again"),
    };
    let renewal = if own { renewal.to_owned() } else { format!("another call had just {renewal}") };
    format!("The API refused the credentials ({exception}): {renewal}, and sent the request again.")
}

/// What one call keeps across pages and its auth retry.
#[derive(Debug)]
struct Transaction {
    action_data: Value,
    mergefields: Map<String, Value>,
    pages: Pages,
    /// Status and reason of a multipart request that was sent on this page: it must not be sent again.
    unreplayable: Option<(u16, String)>,
}

/// Which recovery a script asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    Refresh,
    Session,
}

enum Attempt {
    Done(CallResult),
    Recover(Recovery),
    /// A `retry` rule matched this response.
    Retry {
        status: u16,
        reason: String,
    },
    RateLimited(Option<u64>),
}

struct Loaded {
    record: ConnectorAccountRecord,
    credentials: Credentials,
}

const MAX_RECOVERIES: u32 = 3;

/// The connector runtime: definitions, accounts, calls.
#[derive(Debug)]
pub struct ConnectorRuntime {
    connectors: BTreeMap<String, Arc<Connector>>,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
    pool: ScriptPool,
    config: RuntimeConfig,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    holder: String,
}

fn err(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code).with_message(message.into())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn script_error(event: Event, outcome: Outcome) -> Error {
    match outcome {
        Outcome::Timeout => Error::new(ErrorCode::ScriptTimeout).with_internal(event.name()),
        Outcome::OutOfMemory => Error::new(ErrorCode::ScriptMemoryExceeded).with_internal(event.name()),
        Outcome::Failed { message } => err(ErrorCode::ScriptError, format!("{}: {message}", event.name())),
        other => err(ErrorCode::ScriptError, format!("{}: unexpected outcome {other:?}", event.name())),
    }
}

/// Credentials that must never appear in a script's error message.
fn secrets(connector: &Connector, credentials: &Credentials) -> Vec<String> {
    let mut secrets: Vec<String> = credentials.auth_value.iter().cloned().collect();
    if let Some(oauth) = credentials.oauth() {
        secrets.push(oauth.access_token);
        secrets.extend(oauth.refresh_token);
    }
    secrets.extend(credentials.properties.iter().filter(|(k, _)| connector.is_sensitive(k)).map(|(_, v)| v.clone()));
    secrets.extend(connector.partner_properties.iter().filter(|p| p.sensitive).map(|p| p.value.clone()));
    // The session value the lookup method stores is a credential too.
    if let Some(lookup) = &connector.lookup {
        secrets.extend(credentials.properties.get(&lookup.output_property).cloned());
    }
    secrets.retain(|s| s.len() >= 4);
    secrets
}

/// The origin of a connector URL (`base_url`, `token_url`), for the credential rule.
fn origin_of(url: &str) -> Vec<url::Origin> {
    url::Url::parse(url).map(|u| vec![u.origin()]).unwrap_or_default()
}

/// Stops the call's scripts when the call ends, also when its HTTP request is dropped mid-way.
struct CancelOnDrop(Arc<Budget>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn egress_refused(refused: &egress::Refused) -> Error {
    err(ErrorCode::EgressRefused, "The connector request's destination is not allowed.")
        .with_internal(refused.to_string())
}

/// A hook outcome its caller does not handle itself: the two auth exceptions ask for re-authentication and a
/// retry, anything else is a script error with the account's secrets redacted.
fn recover_or_fail(event: Event, outcome: Outcome, secrets: &[String]) -> Result<Attempt, Error> {
    match outcome {
        Outcome::RefreshAuth => Ok(Attempt::Recover(Recovery::Refresh)),
        Outcome::RefreshSession => Ok(Attempt::Recover(Recovery::Session)),
        other => Err(redacted_script_error(event, other, secrets)),
    }
}

fn redacted_script_error(event: Event, outcome: Outcome, secrets: &[String]) -> Error {
    match outcome {
        Outcome::Failed { message } => {
            script_error(event, Outcome::Failed { message: credentials::redact(&message, secrets) })
        }
        other => script_error(event, other),
    }
}

impl ConnectorRuntime {
    /// A runtime over these definitions.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        connectors: BTreeMap<String, Connector>,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        config: RuntimeConfig,
    ) -> Result<Self, Error> {
        let egress = Arc::new(EgressPolicy::new(config.egress_allow.clone()));
        let client =
            egress.client(config.http_timeout).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        let pool = ScriptPool::new(config.max_concurrent_scripts, config.script_queue_wait)
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        Ok(Self {
            connectors: connectors.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            store,
            master,
            clock,
            client,
            egress,
            pool,
            config,
            flights: Mutex::new(HashMap::new()),
            holder: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// The loaded definitions.
    pub fn connectors(&self) -> impl Iterator<Item = &Connector> {
        self.connectors.values().map(AsRef::as_ref)
    }

    /// One definition.
    ///
    /// # Errors
    /// `entityMissing` for an unknown name.
    pub fn connector(&self, name: &str) -> Result<Arc<Connector>, Error> {
        self.connectors
            .get(name)
            .cloned()
            .ok_or_else(|| err(ErrorCode::EntityMissing, format!("There is no connector {name:?}.")))
    }

    async fn load(&self, org: &str, account: &str, connector: &str) -> Result<Loaded, Error> {
        let record = self
            .store
            .connector_account(org, account)
            .await?
            .filter(|r| r.connector == connector)
            .ok_or_else(|| {
                err(ErrorCode::EntityMissing, format!("There is no account {account:?} of connector {connector:?}."))
            })?;
        let credentials = Credentials::open(&self.master, &record.id, &record.sealed_credentials)?;
        Ok(Loaded { record, credentials })
    }

    async fn write(
        &self,
        record: &ConnectorAccountRecord,
        credentials: &Credentials,
        state: AccountState,
        cooldown: Option<Timestamp>,
        failure: Option<String>,
    ) -> Result<bool, Error> {
        let next = ConnectorAccountRecord {
            sealed_credentials: credentials.seal(&self.master, &record.id)?,
            version: record.version + 1,
            state,
            cooldown_until: cooldown,
            last_failure: failure,
            updated_at: self.clock.now(),
            ..record.clone()
        };
        let event = portcullis_core::events::Event::for_account_write(record, &next);
        Ok(self.store.swap_connector_account(&next, record.version, event.as_ref()).await?)
    }

    /// Calls a method of an account's connector as the operator: hooks, auth, recovery, rate limits.
    ///
    /// # Errors
    /// A catalog error for every failure.
    pub async fn call(
        &self,
        org: &str,
        connector_name: &str,
        account: &str,
        request: &CallRequest,
    ) -> Result<CallResult, Error> {
        self.call_as(org, connector_name, account, request, Caller::Admin).await
    }

    /// Calls a method of an account's connector for `caller`. All script work of the call shares one budget
    /// (`Limits::timeout`), and the call's scripts stop when the returned future is dropped.
    ///
    /// # Errors
    /// A catalog error for every failure; `callerScriptForbidden` for an API key's step script.
    pub async fn call_as(
        &self,
        org: &str,
        connector_name: &str,
        account: &str,
        request: &CallRequest,
        caller: Caller,
    ) -> Result<CallResult, Error> {
        if request.script.is_some() && caller == Caller::ApiKey && !self.config.api_key_step_scripts {
            return Err(Error::new(ErrorCode::CallerScriptForbidden));
        }
        if let Some(problem) = request_headers::invalid_header(&request.headers) {
            return Err(err(ErrorCode::EntityInvalid, format!("headers: {problem}.")));
        }
        let budget = Arc::new(Budget::new(self.config.limits.timeout));
        let _cancel = CancelOnDrop(Arc::clone(&budget));
        let connector = self.connector(connector_name)?;
        let method = connector.methods.get(&request.method).ok_or_else(|| {
            err(ErrorCode::EntityMissing, format!("Connector {connector_name:?} has no method {:?}.", request.method))
        })?;
        let Some(outbound) = &method.outbound_paging else {
            return self.call_method(&connector, method, org, account, request, &budget).await;
        };
        let bodies = match &request.body {
            Some(body) => paging::outbound_bodies(body, outbound)?.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let total = bodies.len();
        let mut results = Vec::with_capacity(total);
        for (sent, body) in bodies.into_iter().enumerate() {
            let part = CallRequest { body, ..request.clone() };
            let result = self.call_method(&connector, method, org, account, &part, &budget).await.map_err(|e| {
                if sent == 0 {
                    return e;
                }
                let message =
                    format!("{} (request {} of {total}; the {sent} before it were sent)", e.message(), sent + 1);
                e.with_message(message)
            })?;
            results.push(result);
        }
        Ok(CallResult::of_pages(results))
    }

    /// One call of a method (one request, or one per inbound page), with recovery and rate limits.
    async fn call_method(
        &self,
        connector: &Arc<Connector>,
        method: &Method,
        org: &str,
        account: &str,
        request: &CallRequest,
        budget: &Arc<Budget>,
    ) -> Result<CallResult, Error> {
        let connector_name = connector.name.as_str();
        let key = format!("{org}/{account}");
        let mut tx = Transaction {
            action_data: Value::Object(Map::new()),
            mergefields: request.mergefields.clone(),
            pages: Pages::default(),
            unreplayable: None,
        };
        let mut recoveries = 0;
        let mut steps = Vec::new();
        let mut retried_after_own_renewal = false;
        let mut waited_for_rate_limit = false;
        let mut retried_by_rule = false;
        loop {
            let mut loaded = self.load(org, account, connector_name).await?;
            self.rate_gate(&loaded.record)?;
            let probing = self.reauth_gate(&loaded.record).await?;
            if probing {
                loaded = self.load(org, account, connector_name).await?;
            }
            let proactive = if self.needs_proactive_refresh(connector, &loaded) {
                Some(Recovery::Refresh)
            } else if self.session_expired(connector, &loaded) {
                Some(Recovery::Session)
            } else {
                None
            };
            if let Some(kind) = proactive {
                let own = self.recover(connector, org, &loaded.record, kind, budget, probing).await?;
                steps.push(step_before_sending(kind, own).to_owned());
                loaded = self.load(org, account, connector_name).await?;
            }
            match self.attempt(connector, method, request, &loaded, &mut tx, budget).await? {
                Attempt::Done(mut result) => {
                    if loaded.record.rate_strikes > 0 || loaded.record.rate_blocked_until.is_some() {
                        self.store.clear_connector_rate(org, account).await?;
                    }
                    if probing {
                        let fresh = self.load(org, account, connector_name).await?;
                        self.write(&fresh.record, &fresh.credentials, AccountState::Ok, None, None).await?;
                    }
                    result.recoveries = recoveries;
                    result.steps = steps;
                    return Ok(result);
                }
                Attempt::Recover(kind) if tx.unreplayable.is_some() => {
                    // Renew the credentials for the next call, but never send a multipart body twice (F11).
                    self.recover(connector, org, &loaded.record, kind, budget, probing).await?;
                    return Err(Self::not_replayed(tx.unreplayable.take()));
                }
                Attempt::Retry { .. } if tx.unreplayable.is_some() => {
                    return Err(Self::not_replayed(tx.unreplayable.take()));
                }
                Attempt::RateLimited(after) if tx.unreplayable.is_some() => {
                    let wait = self.rate_strike(org, account, after, true).await?;
                    return Err(Error::new(ErrorCode::UpstreamRateLimited).with_retry_after(wait));
                }
                Attempt::Recover(kind) => {
                    if retried_after_own_renewal || recoveries >= MAX_RECOVERIES {
                        let fresh = self.load(org, account, connector_name).await?;
                        let until = self.clock.now().plus(self.config.reauth_cooldown);
                        let why = "the request failed authentication again after a refresh".to_owned();
                        self.write(
                            &fresh.record,
                            &fresh.credentials,
                            AccountState::NeedsReauth,
                            Some(until),
                            Some(why),
                        )
                        .await?;
                        tracing::warn!(account = %key, "connector account needs re-authentication");
                        return Err(err(ErrorCode::NeedsReauthentication, "Failed to authenticate the connector.")
                            .with_retry_after(self.config.reauth_cooldown.as_secs().max(1)));
                    }
                    recoveries += 1;
                    // Only a refusal after this call's own renewal condemns the credentials; a renewal that
                    // landed elsewhere meanwhile is tried, and if refused too, renewed here (MAX_RECOVERIES
                    // bounds the rounds).
                    retried_after_own_renewal =
                        self.recover(connector, org, &loaded.record, kind, budget, probing).await?;
                    steps.push(step_after_refusal(kind, retried_after_own_renewal));
                }
                Attempt::Retry { status, reason } => {
                    if retried_by_rule {
                        return Err(err(
                            ErrorCode::UpstreamError,
                            format!("The third-party API answered {status} {reason} again after a retry."),
                        ));
                    }
                    tracing::info!(connector = %connector_name, status, "a retry rule matched; sending the request again");
                    steps.push(format!("A retry rule matched {status} {reason}: sent the request again."));
                    retried_by_rule = true;
                }
                Attempt::RateLimited(after) => {
                    let wait = self.rate_strike(org, account, after, waited_for_rate_limit).await?;
                    if waited_for_rate_limit || wait > self.config.max_inline_rate_limit_wait.as_secs() {
                        return Err(Error::new(ErrorCode::UpstreamRateLimited).with_retry_after(wait));
                    }
                    waited_for_rate_limit = true;
                    steps.push(format!("Rate limited by the API: waited {wait} s and sent the request again."));
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
            }
        }
    }

    fn not_replayed(sent: Option<(u16, String)>) -> Error {
        let (status, reason) = sent.unwrap_or_default();
        err(
            ErrorCode::UpstreamError,
            format!("The third-party API answered {status} {reason}; a multipart request is not sent twice."),
        )
    }

    /// Fails fast while an account needs re-authentication; `Ok(true)` when this call is the one probe after a
    /// cooldown. The probe claims its turn by moving the cooldown on with a compare-and-swap, so concurrent
    /// calls (on any instance) keep failing fast instead of probing too.
    async fn reauth_gate(&self, record: &ConnectorAccountRecord) -> Result<bool, Error> {
        if record.state == AccountState::Ok {
            return Ok(false);
        }
        let cooling = |until: Timestamp| {
            let secs = (until.unix_millis() - self.clock.now().unix_millis() + 999) / 1000;
            err(ErrorCode::NeedsReauthentication, "Failed to authenticate the connector.")
                .with_retry_after(u64::try_from(secs).unwrap_or(1).max(1))
        };
        match record.cooldown_until {
            Some(until) if until <= self.clock.now() => {
                let credentials = Credentials::open(&self.master, &record.id, &record.sealed_credentials)?;
                let next = self.clock.now().plus(self.config.reauth_cooldown);
                let claimed = self
                    .write(record, &credentials, AccountState::NeedsReauth, Some(next), record.last_failure.clone())
                    .await?;
                if claimed { Ok(true) } else { Err(cooling(next)) }
            }
            Some(until) => Err(cooling(until)),
            None => Err(err(
                ErrorCode::NeedsReauthentication,
                "The connector account must be re-authenticated: its credentials were rejected.",
            )),
        }
    }

    fn needs_proactive_refresh(&self, connector: &Connector, loaded: &Loaded) -> bool {
        let Auth::Oauth2(oauth) = &connector.auth else { return false };
        let value = loaded.credentials.oauth().filter(|v| !v.access_token.is_empty());
        // Grants that need no user get their first token before the first call.
        let Some(value) = value else { return oauth.grant != Grant::AuthorizationCode };
        let Some(expires) = value.expires_millis() else { return false };
        let now = self.clock.now().unix_millis();
        let lifetime = (expires - loaded.record.updated_at.unix_millis()).max(0);
        let margin = oauth.token_expiration_buffer_secs.map_or_else(
            || millis(self.config.refresh_margin).min(lifetime / 2),
            |s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        expires - now < margin
    }

    /// A session older than the lookup's `session_ttl_secs` is renewed before sending. Its age is the time
    /// since the credentials were last written, which every lookup does.
    fn session_expired(&self, connector: &Connector, loaded: &Loaded) -> bool {
        let Some(ttl) = connector.lookup.as_ref().and_then(|l| l.session_ttl_secs) else { return false };
        let age = self.clock.now().unix_millis() - loaded.record.updated_at.unix_millis();
        age >= i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn auth_header(connector: &Connector, credentials: &Credentials) -> Option<(String, String)> {
        match &connector.auth {
            Auth::ApiKey { header, prefix } => {
                credentials.auth_value.as_ref().map(|key| (header.clone(), format!("{prefix}{key}")))
            }
            Auth::Basic => credentials.auth_value.as_ref().map(|v| ("Authorization".to_owned(), format!("Basic {v}"))),
            Auth::Oauth2(_) => credentials
                .oauth()
                .filter(|v| !v.access_token.is_empty())
                .map(|v| ("Authorization".to_owned(), format!("Bearer {}", v.access_token))),
            Auth::Session | Auth::None => None,
        }
    }

    /// A connector URL (`base_url`, `token_url`, `authorize_url`) for an account: its `{{Name}}` merge fields
    /// come from the account's and the partner properties only, never from a caller or a script, because
    /// these URLs decide where the account's credentials are sent; each value is checked by
    /// [`credentials::url_part`].
    fn connector_url(connector: &Connector, credentials: &Credentials, template: &str) -> Result<String, Error> {
        let fields = Self::fields(connector, credentials, &Map::new());
        if let Some((_, missing)) = merge_fields(template).find(|(_, name)| !fields.contains_key(*name)) {
            return Err(err(
                ErrorCode::ConnectorInvalid,
                format!("The account has no property {missing}, which the connector's URL needs."),
            ));
        }
        fill_with(template, &fields, credentials::url_part).map_err(|message| err(ErrorCode::ConnectorInvalid, message))
    }

    /// Merge-field values: the call's (and its scripts'), under the partner properties, under the account's
    /// properties, so a caller cannot replace a value the account was installed with.
    fn fields(connector: &Connector, credentials: &Credentials, extra: &Map<String, Value>) -> Map<String, Value> {
        let mut fields = extra.clone();
        fields.extend(connector.partner_properties.iter().map(|p| (p.name.clone(), Value::String(p.value.clone()))));
        fields.extend(credentials.properties.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))));
        fields
    }

    /// Runs `event` on the script pool (inline when no level defines it).
    async fn hooks(
        &self,
        event: Event,
        levels: &[String],
        globals: Map<String, Value>,
        host: &Host,
    ) -> Result<script::Run, Error> {
        if !levels.iter().any(|src| src.contains(event.name())) {
            return Ok(script::run(event, &[], globals, self.config.limits, host));
        }
        let budget = host.budget.clone();
        let host = host.clone();
        let limits = self.config.limits;
        let levels = levels.to_vec();
        let run = self
            .pool
            .run(move || {
                let refs: Vec<&str> = levels.iter().map(String::as_str).collect();
                script::run(event, &refs, globals, limits, &host)
            })
            .await?;
        match budget.and_then(|b| b.refused()) {
            Some(why) => Err(err(
                ErrorCode::EgressRefused,
                "A connector script tried to reach a destination that is not allowed.",
            )
            .with_internal(format!("{}: {why}", event.name()))),
            None => Ok(run),
        }
    }

    fn host(&self, attach: Attach, storage: Option<Storage>, budget: &Arc<Budget>, sandbox: Sandbox) -> Host {
        Host {
            client: self.client.clone(),
            handle: tokio::runtime::Handle::current(),
            attach: Arc::new(attach),
            egress: Arc::clone(&self.egress),
            storage,
            budget: Some(Arc::clone(budget)),
            sandbox,
        }
    }

    /// The host of a connector-level OAuth hook: no credentials to attach, no storage.
    fn oauth_host(&self, base_url: &str, budget: &Arc<Budget>) -> Host {
        self.host(Attach::none(origin_of(base_url), Vec::new()), None, budget, Sandbox::default())
    }

    /// Storage scopes of an account's scripts: `cyclr_storage_*` is shared by every account of the connector
    /// in the organization, `cycle_storage_*` belongs to this account (there are no cycles to scope it by).
    fn storage(&self, record: &ConnectorAccountRecord) -> Storage {
        Storage {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            organization: record.organization_id.clone(),
            connector_scope: record.connector.clone(),
            cycle_scope: format!("{}/{}", record.connector, record.id),
        }
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(flights.entry(key.to_owned()).or_default())
    }
}
