//! Connector security over HTTP, as an API key holder would attack it: credentials never reach another origin
//! (step scripts, `http_request`, paging links, merge fields and redirects), the egress policy, the per-call
//! script budget, the script pool, and failures that are catalog errors without a panic.
//!
//! The fake API and the attacker listen on 127.0.0.2, which the tests allow-list; Portcullis itself listens on
//! 127.0.0.1, which is not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_server::config::Config;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, TestServer, assert_catalog_error, read_json};

const API_KEY: &str = "sk-live-0123456789abcdef";
const PARTNER_SECRET: &str = "partner-secret-4242";

/// Every request a listener received, as text: method, URI, headers and body.
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    fn leaked(&self) -> Vec<String> {
        self.all().into_iter().filter(|r| r.contains(API_KEY) || r.contains(PARTNER_SECRET)).collect()
    }
}

async fn record(seen: &Seen, request: Request) -> String {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut text = format!("{} {}\n", parts.method, parts.uri);
    for (k, v) in &parts.headers {
        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or_default()));
    }
    text.push_str(&String::from_utf8_lossy(&body));
    seen.0.lock().expect("lock").push(text.clone());
    text
}

async fn attacker_handler(State(seen): State<Arc<Seen>>, request: Request) -> Response {
    record(&seen, request).await;
    axum::Json(json!({"items": ["stolen"]})).into_response()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("bind 127.0.0.2");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

/// A listener that records everything it receives and answers 200.
async fn attacker() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new().fallback(attacker_handler).with_state(Arc::clone(&seen));
    (serve(app).await, seen)
}

#[derive(Debug, Default)]
struct Api {
    seen: Seen,
    data_calls: AtomicUsize,
}

async fn api_data(State(api): State<Arc<Api>>, request: Request) -> Response {
    api.data_calls.fetch_add(1, Ordering::SeqCst);
    let text = record(&api.seen, request).await;
    if !text.contains(&format!("authorization: Bearer {API_KEY}")) {
        return (StatusCode::UNAUTHORIZED, "no key").into_response();
    }
    axum::Json(json!({"items": [1, 2]})).into_response()
}

async fn api_redirect(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    (StatusCode::FOUND, [("location", q.get("to").cloned().unwrap_or_default())]).into_response()
}

async fn api_pages(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    axum::Json(json!({"items": [1], "next": q.get("next").cloned().unwrap_or_default()})).into_response()
}

async fn api_fallback(State(api): State<Arc<Api>>, request: Request) -> Response {
    record(&api.seen, request).await;
    (StatusCode::NOT_FOUND, "no such path").into_response()
}

async fn api() -> (String, Arc<Api>) {
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/data", get(api_data))
        .route("/redirect", get(api_redirect))
        .route("/pages", get(api_pages))
        .fallback(api_fallback)
        .with_state(Arc::clone(&api));
    (serve(app).await, api)
}

fn definition(base: &str) -> String {
    format!(
        r#"name: sec
base_url: {base}
auth: {{ type: api_key, header: Authorization, prefix: "Bearer " }}
properties:
  - {{ name: Region, required: true }}
partner_properties:
  - {{ name: PartnerToken, value: {PARTNER_SECRET}, sensitive: true }}
methods:
  data:
    path: /data
    headers: {{ X-Partner: "{{{{PartnerToken}}}}" }}
  fetch:
    path: /data
    script: |
      function after_action() {{
        method_response = http_request({{ url: method_request_mergefields.Target }}).content;
        return true;
      }}
  fetch_quietly:
    path: /data
    script: |
      function after_action() {{
        try {{ http_request({{ url: method_request_mergefields.Target }}); }} catch (e) {{ method_response = 'ignored'; }}
        return true;
      }}
  region:
    path: /regions/{{{{Region}}}}/items/{{{{Id}}}}
  redirect:
    path: /redirect
    query: {{ to: "{{{{To}}}}" }}
  pages:
    path: /pages
    query: {{ next: "{{{{Next}}}}" }}
    paging: {{ type: next_url, page_size: 1, max_pages: 3, items_path: items, next_path: next }}
  spin:
    path: /data
    script: |
      function burn() {{ var until = Date.now() + 400; while (Date.now() < until) {{}} }}
      burn();
      function before_action() {{ burn(); return true; }}
      function after_action() {{ burn(); return true; }}
      function after_action_paging() {{ burn(); return true; }}
  forever:
    path: /data
    script: |
      function before_action() {{ while (true) {{ cycle_storage_increment('ticks'); }} }}
  ticks:
    path: /data
    script: |
      function after_action() {{ method_response = cycle_storage_get('ticks'); return true; }}
  fill:
    path: /data
    script: |
      function before_action() {{ var a = []; while (true) {{ a.push('x'.repeat(4096) + a.length); }} }}
"#
    )
}

struct Env {
    server: TestServer,
    api: Arc<Api>,
    key: String,
    org: String,
}

impl Env {
    async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        let (base, api) = api().await;
        let defs = tempfile::tempdir().expect("dir");
        std::fs::write(defs.path().join("sec.yaml"), definition(&base)).expect("write");
        let dir = defs.path().to_owned();
        let server = TestServer::start_with(Backend::Sqlite, move |c| {
            c.connectors.dir = dir;
            c.connectors.script_timeout_secs = 5;
            // The fake API and the attacker; Portcullis's own 127.0.0.1 stays refused.
            c.connectors.egress_allow = vec!["127.0.0.2/32".to_owned()];
            adjust(c);
        })
        .await;
        drop(defs);
        let org = server.app.create_organization("Acme").await.expect("org").id;
        let key = server.app.create_api_key(&org).await.expect("key").secret;
        let accounts = format!("/admin/v1/organizations/{org}/connector-accounts");
        let body = json!({"id": "a1", "connector": "sec", "properties": {"Region": "eu"}, "authValue": API_KEY});
        let response = server.admin(Method::POST, &accounts).json(&body).send().await.expect("install");
        assert_eq!(response.status().as_u16(), 201);
        Self { server, api, key, org }
    }

    async fn call(&self, body: Value) -> reqwest::Response {
        self.server
            .request(Method::POST, "/api/v1/connectors/sec/accounts/a1/calls")
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("call")
    }

    async fn admin_call(&self, body: Value) -> reqwest::Response {
        let path = format!("/admin/v1/organizations/{}/connector-accounts/a1/calls", self.org);
        self.server.admin(Method::POST, &path).json(&body).send().await.expect("call")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_scripts_never_see_credentials() {
    let env = Env::start(|_| {}).await;
    let leak = "function after_action() { method_response = { key: typeof method_auth_value === 'undefined' ? null : method_auth_value, headers: method_request_headers, all: JSON.stringify(globalThis) }; return true; }";
    // An API key may not send a step script at all.
    let refused = env.call(json!({"method": "data", "script": leak})).await;
    assert_catalog_error(refused, 403, "callerScriptForbidden").await;
    // The admin may, but the script sees neither the key nor the partner secret, and the request still works.
    let response = env.admin_call(json!({"method": "data", "script": leak})).await;
    let (status, body) = read_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["key"], "********", "{body}");
    let text = body.to_string();
    assert!(!text.contains(API_KEY) && !text.contains(PARTNER_SECRET), "a step script saw a credential: {text}");
    assert_eq!(env.api.data_calls.load(Ordering::SeqCst), 1, "the request itself carried the credentials");
}

/// An operator who lets API keys send step scripts (`connectors.api_key_step_scripts`) gets the same
/// sandbox: the script runs, and sees the key only as a mask.
#[tokio::test]
async fn api_key_step_scripts_when_allowed_are_sandboxed() {
    let env = Env::start(|c| c.connectors.api_key_step_scripts = true).await;
    let peek = "function after_action() { method_response = { key: method_auth_value }; return true; }";
    let (status, body) = read_json(env.call(json!({"method": "data", "script": peek})).await).await;
    assert_eq!((status, &body["data"]["key"]), (200, &json!("********")), "{body}");
    assert!(!body.to_string().contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_request_sends_credentials_only_to_the_api_origin() {
    let env = Env::start(|_| {}).await;
    let (attacker, seen) = attacker().await;
    // Same host as the API, another port: another origin.
    let (status, body) =
        read_json(env.call(json!({"method": "fetch", "mergefields": {"Target": format!("{attacker}/steal")}})).await)
            .await;
    assert_eq!((status, &body["data"]), (200, &json!({"items": ["stolen"]})), "{body}");
    assert_eq!(seen.all().len(), 1);
    assert!(seen.leaked().is_empty(), "credentials reached another origin: {:?}", seen.leaked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_links_to_another_origin_carry_no_credentials() {
    let env = Env::start(|_| {}).await;
    let (attacker, seen) = attacker().await;
    let response = env.call(json!({"method": "pages", "mergefields": {"Next": format!("{attacker}/steal")}})).await;
    let (status, body) = read_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(!seen.all().is_empty(), "the link was followed");
    assert!(seen.leaked().is_empty(), "credentials reached another origin: {:?}", seen.leaked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_fields_cannot_leave_the_path_and_redirects_drop_credentials() {
    let env = Env::start(|_| {}).await;
    let (attacker, seen) = attacker().await;
    // A caller's merge field does not override an account property.
    let region = env
        .call(json!({"method": "region", "mergefields": {"Region": format!("../redirect?to={attacker}/x"), "Id": "7"}}))
        .await;
    assert_catalog_error(region, 502, "upstreamError").await;
    assert!(env.api.seen.all().iter().any(|r| r.starts_with("GET /regions/eu/items/7")), "{:?}", env.api.seen.all());
    // A merge field is one path segment: '/', '?' and '#' are encoded, '..' is refused.
    let encoded =
        env.call(json!({"method": "region", "mergefields": {"Id": format!("../../redirect?to={attacker}/x#")}})).await;
    assert_catalog_error(encoded, 502, "upstreamError").await;
    assert!(
        env.api.seen.all().iter().any(|r| r.starts_with("GET /regions/eu/items/..%2F..%2Fredirect%3Fto=")),
        "{:?}",
        env.api.seen.all()
    );
    let traversal = env.call(json!({"method": "region", "mergefields": {"Id": ".."}})).await;
    assert_catalog_error(traversal, 400, "entityInvalid").await;
    // The API redirects elsewhere: the redirect is followed without the key.
    let (status, body) =
        read_json(env.call(json!({"method": "redirect", "mergefields": {"To": format!("{attacker}/x")}})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen.all().len(), 1, "the redirect was followed");
    assert!(seen.leaked().is_empty(), "credentials followed a redirect: {:?}", seen.leaked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn egress_policy_refuses_loopback_private_and_link_local_destinations() {
    let env = Env::start(|_| {}).await;
    let own = env.server.url.trim_start_matches("http://").to_owned();
    let port = own.rsplit(':').next().expect("port").to_owned();
    for target in [
        format!("http://{own}/metrics"),
        format!("http://localhost:{port}/metrics"),
        format!("http://[::1]:{port}/metrics"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.1.2.3/".to_owned(),
        "http://192.168.0.1/".to_owned(),
        "http://[::ffff:127.0.0.1]:9/".to_owned(),
    ] {
        let response = env.call(json!({"method": "fetch", "mergefields": {"Target": target}})).await;
        let body = assert_catalog_error(response, 403, "egressRefused").await;
        assert!(!body["message"].as_str().unwrap_or_default().contains("portcullis_"), "{body}");
    }
    // A script that swallows the exception does not turn the refusal into a success.
    let quiet =
        env.call(json!({"method": "fetch_quietly", "mergefields": {"Target": format!("http://{own}/metrics")}})).await;
    assert_catalog_error(quiet, 403, "egressRefused").await;
    // Every redirect hop is checked too.
    let hop = env.call(json!({"method": "redirect", "mergefields": {"To": format!("http://{own}/metrics")}})).await;
    assert_catalog_error(hop, 403, "egressRefused").await;
    let metrics = env.server.request(Method::GET, "/metrics").send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("portcullis_connector_egress_refused_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_script_budget_covers_every_phase_of_a_call() {
    let env = Env::start(|c| c.connectors.script_timeout_secs = 1).await;
    // Each phase stays under 1 s, together they take about 2 s.
    let started = Instant::now();
    let response = env.call(json!({"method": "spin"})).await;
    let elapsed = started.elapsed();
    assert_catalog_error(response, 504, "scriptTimeout").await;
    assert!(elapsed < Duration::from_millis(1750), "the call ran {elapsed:?} with a 1 s budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_script_stops_when_its_request_is_gone() {
    let env = Env::start(|c| {
        c.server.request_timeout_secs = 1;
        c.connectors.script_timeout_secs = 30;
    })
    .await;
    let response = env.call(json!({"method": "forever"})).await;
    assert_eq!(response.status().as_u16(), 503);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticks = || async {
        let (status, body) = read_json(env.call(json!({"method": "ticks"})).await).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_f64().expect("ticks")
    };
    let first = ticks().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = ticks().await;
    assert!(first > 0.0);
    assert_eq!(first, second, "the script kept running after its request was answered");
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_memory_filling_scripts_stay_within_the_pool_bound() {
    const LIMIT: usize = 8 * 1024 * 1024;
    const POOL: usize = 2;
    let env = Arc::new(
        Env::start(|c| {
            c.connectors.script_memory_limit_bytes = LIMIT;
            c.connectors.max_concurrent_scripts = POOL;
            c.connectors.script_queue_wait_ms = 200;
        })
        .await,
    );
    let baseline = rss_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                peak.fetch_max(rss_bytes(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let env = Arc::clone(&env);
            tokio::spawn(async move {
                let response = env.call(json!({"method": "fill"})).await;
                let retry_after = response.headers().contains_key("retry-after");
                let (status, body) = read_json(response).await;
                (status, body["errorCode"].as_str().unwrap_or_default().to_owned(), retry_after)
            })
        })
        .collect();
    let mut busy = 0;
    for call in calls {
        let (status, code, retry_after) = call.await.expect("call");
        match (status, code.as_str()) {
            (502, "scriptMemoryExceeded") => {}
            (503, "scriptsBusy") => {
                assert!(retry_after, "scriptsBusy carries Retry-After");
                busy += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.await.expect("sampler");
    let grown = peak.load(Ordering::SeqCst).saturating_sub(baseline);
    // docs/connectors.md: at most max_concurrent_scripts × (script_memory_limit_bytes + 4 MiB); plus slack
    // for the 64 requests themselves and other tests in this process.
    let bound = (POOL * (LIMIT + 4 * 1024 * 1024) + 48 * 1024 * 1024) as u64;
    assert!(grown < bound, "RSS grew by {} MiB (bound {} MiB)", grown >> 20, bound >> 20);
    assert!(busy < 64, "some scripts ran");
}

/// Panics raised from the script engine or the connector runtime, in any thread of this process.
fn engine_panics() -> &'static AtomicUsize {
    static PANICS: OnceLock<AtomicUsize> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_owned()).unwrap_or_default();
            if file.contains("rquickjs") || file.contains("crates/connect") {
                engine_panics().fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
        AtomicUsize::new(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn top_level_script_failures_are_catalog_errors_without_a_panic() {
    let panics = engine_panics();
    let before = panics.load(Ordering::SeqCst);
    let env = Env::start(|c| c.connectors.script_memory_limit_bytes = 8 * 1024 * 1024).await;
    let syntax = env.admin_call(json!({"method": "data", "script": "function after_action( {"})).await;
    assert_catalog_error(syntax, 502, "scriptError").await;
    // Top-level code runs when the script defines a handler for the event.
    let handler = "function after_action() { return true; }";
    let thrown =
        env.admin_call(json!({"method": "data", "script": format!("throw new Error('top level');\n{handler}")})).await;
    let body = assert_catalog_error(thrown, 502, "scriptError").await;
    assert!(body["message"].as_str().unwrap_or_default().contains("top level"), "{body}");
    let bomb = format!("var a = []; while (true) {{ a.push('x'.repeat(4096) + a.length); }}\n{handler}");
    let bomb = env.admin_call(json!({"method": "data", "script": bomb})).await;
    assert_catalog_error(bomb, 502, "scriptMemoryExceeded").await;
    let (status, _) = read_json(env.call(json!({"method": "data"})).await).await;
    assert_eq!(status, 200, "the server keeps serving");
    assert_eq!(panics.load(Ordering::SeqCst), before, "a script failure panicked");
}

/// Scripts run on their own bounded pool, never on the server's async workers: with every slot spinning and
/// more callers queued, the server keeps answering, and callers past the queue wait get `scriptsBusy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_scripts_leave_the_server_answering() {
    let env = Arc::new(
        Env::start(|c| {
            c.connectors.max_concurrent_scripts = 1;
            c.connectors.script_queue_wait_ms = 100;
            c.connectors.script_timeout_secs = 2;
        })
        .await,
    );
    let spinning: Vec<_> = (0..8)
        .map(|_| {
            let env = Arc::clone(&env);
            tokio::spawn(async move {
                let response = env.call(json!({"method": "forever"})).await;
                let retry_after = response.headers().contains_key("retry-after");
                let (status, body) = read_json(response).await;
                let code = body["errorCode"].as_str().unwrap_or_default().to_owned();
                (status, code, retry_after, body["message"].as_str().unwrap_or_default().to_owned())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let (status, body) = env.server.get_json("/health").await;
        assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    }
    let mut outcomes = Vec::new();
    for call in spinning {
        outcomes.push(call.await.expect("call"));
    }
    assert!(outcomes.iter().any(|(_, code, _, _)| code == "scriptTimeout"), "{outcomes:?}");
    let busy: Vec<_> = outcomes.iter().filter(|(_, code, _, _)| code == "scriptsBusy").collect();
    assert!(!busy.is_empty(), "{outcomes:?}");
    assert!(busy.iter().all(|(status, _, retry_after, _)| *status == 503 && *retry_after), "{outcomes:?}");
}

/// Another organization's API key reaches none of this organization's connector accounts, even under the
/// same account id: each call uses the caller's own account and credentials.
#[tokio::test]
async fn another_organizations_key_reaches_only_its_own_accounts() {
    const B_KEY: &str = "sk-live-organization-b-0000";
    let env = Env::start(|_| {}).await;
    let b = env.server.app.create_organization("Globex").await.expect("org").id;
    let b_api_key = env.server.app.create_api_key(&b).await.expect("key").secret;
    let call = |account: &str| {
        env.server
            .request(Method::POST, &format!("/api/v1/connectors/sec/accounts/{account}/calls"))
            .bearer_auth(&b_api_key)
            .json(&json!({"method": "data"}))
            .send()
    };
    assert_catalog_error(call("a1").await.expect("call"), 404, "entityMissing").await;

    let accounts = format!("/admin/v1/organizations/{b}/connector-accounts");
    let body = json!({"id": "a1", "connector": "sec", "properties": {"Region": "us"}, "authValue": B_KEY});
    let installed = env.server.admin(Method::POST, &accounts).json(&body).send().await.expect("install");
    assert_eq!(installed.status().as_u16(), 201);
    let before = env.api.seen.all().len();
    call("a1").await.expect("call");
    let sent = env.api.seen.all().split_off(before);
    assert!(!sent.is_empty(), "B's own account reached the API");
    assert!(sent.iter().all(|r| r.contains(&format!("Bearer {B_KEY}")) && !r.contains(API_KEY)), "{sent:?}");
}
