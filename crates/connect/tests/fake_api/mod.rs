//! A fake third-party API: a real HTTP server on 127.0.0.1, scripted per scenario, counting calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the API answers a stale token or session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// 200 `{"error": "invalid_grant"}`.
    InvalidGrant200,
    /// 403.
    Forbidden,
    /// 200 `{"error_code": "You are not logged on."}`.
    NotLoggedOn200,
}

/// The token endpoint's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// Issues tokens; refresh tokens rotate and an old one is rejected with invalid_grant.
    Rotate,
    /// 500 every time.
    Fail,
    /// 400 invalid_grant every time.
    Reject,
    /// Issues tokens the API never accepts.
    Useless,
    /// 429 with `Retry-After: 1` once, then `Rotate`.
    BusyOnce,
}

#[derive(Debug)]
pub struct Scenario {
    pub stale: Stale,
    pub token: TokenMode,
    pub login_fails: bool,
    /// Answer this many data requests with 429 first.
    pub rate_limited: usize,
    /// Answer this many data requests with 503 first.
    pub unavailable: usize,
    pub retry_after: &'static str,
    pub access_token: String,
    pub refresh_token: String,
    pub session: String,
    pub issued: usize,
    pub last_refresh_form: Vec<(String, String)>,
    /// How long `/data` takes to refuse an access token that is not the current one.
    pub refusal_delay: std::time::Duration,
}

#[derive(Debug)]
pub struct Fake {
    pub scenario: Mutex<Scenario>,
    pub token_calls: AtomicUsize,
    pub login_calls: AtomicUsize,
    pub data_calls: AtomicUsize,
    pub upload_calls: AtomicUsize,
    pub pages_requested: Mutex<Vec<u64>>,
    /// The first request for this page revokes the access token (answers as stale).
    pub revoke_on_page: Mutex<Option<u64>>,
    /// When each `/data` request arrived.
    pub data_arrivals: Mutex<Vec<std::time::Instant>>,
    /// The query string of each `/cursor` request.
    pub cursor_queries: Mutex<Vec<String>>,
    pub url: String,
}

impl Fake {
    pub async fn start(stale: Stale, token: TokenMode) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = Arc::new(Self {
            scenario: Mutex::new(Scenario {
                stale,
                token,
                login_fails: false,
                rate_limited: 0,
                unavailable: 0,
                retry_after: "1",
                access_token: "at-valid".to_owned(),
                refresh_token: "rt-0".to_owned(),
                session: "sess-valid".to_owned(),
                issued: 0,
                last_refresh_form: Vec::new(),
                refusal_delay: std::time::Duration::ZERO,
            }),
            token_calls: AtomicUsize::new(0),
            login_calls: AtomicUsize::new(0),
            data_calls: AtomicUsize::new(0),
            upload_calls: AtomicUsize::new(0),
            pages_requested: Mutex::new(Vec::new()),
            revoke_on_page: Mutex::new(None),
            data_arrivals: Mutex::new(Vec::new()),
            cursor_queries: Mutex::new(Vec::new()),
            url,
        });
        let app = Router::new()
            .route("/oauth/token", post(token_endpoint))
            .route("/data", get(data))
            .route("/login", post(login))
            .route("/session-data", get(session_data))
            .route("/echo", get(echo).post(echo))
            .route("/slow", get(slow))
            .route("/pages", get(pages))
            .route("/cursor", get(cursor))
            .route("/upload", post(upload))
            .route("/invalid-email", post(invalid_email))
            .route("/moved", get(moved))
            .with_state(Arc::clone(&fake));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        fake
    }

    pub fn set(&self, f: impl FnOnce(&mut Scenario)) {
        f(&mut self.scenario.lock().expect("lock"));
    }

    pub fn tokens(&self) -> usize {
        self.token_calls.load(Ordering::SeqCst)
    }

    pub fn logins(&self) -> usize {
        self.login_calls.load(Ordering::SeqCst)
    }
}

async fn token_endpoint(State(fake): State<Arc<Fake>>, Form(form): Form<Vec<(String, String)>>) -> Response {
    fake.token_calls.fetch_add(1, Ordering::SeqCst);
    // Long enough that concurrent callers really overlap.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut s = fake.scenario.lock().expect("lock");
    s.last_refresh_form.clone_from(&form);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    match s.token {
        TokenMode::Fail => return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        TokenMode::Reject => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
        }
        TokenMode::BusyOnce => {
            s.token = TokenMode::Rotate;
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "busy").into_response();
        }
        TokenMode::Rotate | TokenMode::Useless => {}
    }
    if field("grant_type") == "refresh_token" && field("refresh_token") != s.refresh_token {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    s.issued += 1;
    let n = s.issued;
    let access = format!("at-{n}");
    if s.token == TokenMode::Rotate {
        s.access_token.clone_from(&access);
    }
    s.refresh_token = format!("rt-{n}");
    axum::Json(
        json!({"access_token": access, "refresh_token": s.refresh_token, "expires_in": 3600, "token_type": "Bearer"}),
    )
    .into_response()
}

fn stale_answer(stale: Stale) -> Response {
    match stale {
        Stale::InvalidGrant200 => axum::Json(json!({"error": "invalid_grant"})).into_response(),
        Stale::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        Stale::NotLoggedOn200 => axum::Json(json!({"error_code": "You are not logged on."})).into_response(),
    }
}

async fn data(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    fake.data_calls.fetch_add(1, Ordering::SeqCst);
    fake.data_arrivals.lock().expect("lock").push(std::time::Instant::now());
    let (answer, refusal) = data_answer(&fake, &headers);
    if let Some((stale, delay)) = refusal {
        tokio::time::sleep(delay).await;
        return stale_answer(stale);
    }
    answer
}

/// The answer to `/data`, or the token refusal to send after a delay.
fn data_answer(fake: &Fake, headers: &HeaderMap) -> (Response, Option<(Stale, std::time::Duration)>) {
    let mut s = fake.scenario.lock().expect("lock");
    if s.rate_limited > 0 {
        s.rate_limited -= 1;
        let limited = (StatusCode::TOO_MANY_REQUESTS, [("retry-after", s.retry_after)], "slow down");
        return (limited.into_response(), None);
    }
    if s.unavailable > 0 {
        s.unavailable -= 1;
        return ((StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "busy"}))).into_response(), None);
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {}", s.access_token) {
        return (StatusCode::OK.into_response(), Some((s.stale, s.refusal_delay)));
    }
    (axum::Json(json!({"items": [1, 2, 3]})).into_response(), None)
}

async fn login(State(fake): State<Arc<Fake>>, axum::Json(body): axum::Json<Value>) -> Response {
    fake.login_calls.fetch_add(1, Ordering::SeqCst);
    let mut s = fake.scenario.lock().expect("lock");
    if s.login_fails || body.get("password").and_then(Value::as_str) != Some("hunter2") {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    s.issued += 1;
    s.session = format!("sess-{}", s.issued);
    axum::Json(json!({"session": {"id": s.session}})).into_response()
}

async fn session_data(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    fake.data_calls.fetch_add(1, Ordering::SeqCst);
    fake.data_arrivals.lock().expect("lock").push(std::time::Instant::now());
    let s = fake.scenario.lock().expect("lock");
    if headers.get("x-session").and_then(|v| v.to_str().ok()) != Some(s.session.as_str()) {
        return stale_answer(s.stale);
    }
    axum::Json(json!({"contacts": ["ada"]})).into_response()
}

/// Bearer-protected; answers the request's content type and raw body.
async fn upload(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    fake.upload_calls.fetch_add(1, Ordering::SeqCst);
    let s = fake.scenario.lock().expect("lock");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {}", s.access_token) {
        return stale_answer(s.stale);
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    axum::Json(json!({"content_type": content_type, "body": body})).into_response()
}

async fn echo(headers: HeaderMap, uri: axum::http::Uri, body: String) -> Response {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or_default().to_owned())))
        .collect();
    axum::Json(json!({"headers": headers, "query": uri.query(), "body": body})).into_response()
}

async fn moved(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    axum::Json(json!({"moved": true, "query": uri.query(), "key": key})).into_response()
}

/// A 400 whose status line carries the API's own reason phrase, as some APIs answer.
async fn invalid_email() -> Response {
    let mut response = (StatusCode::BAD_REQUEST, "{}").into_response();
    response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Email Address not valid"));
    response
}

async fn slow() -> Response {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    "late".into_response()
}

/// Cursor paging with two tokens (GoCardless-style `after` plus a `filter` cursor): two pages.
async fn cursor(
    State(fake): State<Arc<Fake>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    uri: axum::http::Uri,
) -> Response {
    fake.cursor_queries.lock().expect("lock").push(uri.query().unwrap_or_default().to_owned());
    let (after, filter) = (q.get("after").map_or("", String::as_str), q.get("filter").map_or("", String::as_str));
    match (after, filter) {
        ("", "") => {
            axum::Json(json!({"items": [1, 2], "meta": {"cursors": {"after": "c2", "filter": "f-7"}}})).into_response()
        }
        ("c2", "f-7") => axum::Json(json!({"items": [3], "meta": {"cursors": {"after": null}}})).into_response(),
        _ => (StatusCode::BAD_REQUEST, "unknown cursor").into_response(),
    }
}

/// Five pages of two items (the last has one), bearer-protected.
async fn pages(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let page: u64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    fake.pages_requested.lock().expect("lock").push(page);
    let mut s = fake.scenario.lock().expect("lock");
    let mut revoke = fake.revoke_on_page.lock().expect("lock");
    if *revoke == Some(page) {
        *revoke = None;
        s.access_token = "revoked".to_owned();
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {}", s.access_token) {
        return stale_answer(s.stale);
    }
    let items: Vec<u64> = if page < 5 { vec![page * 10, page * 10 + 1] } else { vec![50] };
    axum::Json(json!({"items": items, "page": page})).into_response()
}

/// A migrated SQLite store in a temp directory (kept alive by the returned guard).
pub(crate) async fn sqlite_store() -> (Arc<dyn portcullis_core::store::Store>, tempfile::TempDir) {
    use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&SqliteOptions {
        path: dir.path().join("p.db"),
        readers: 2,
        synchronous: Synchronous::Normal,
    })
    .expect("sqlite");
    let store: Arc<dyn portcullis_core::store::Store> = Arc::new(store);
    store.migrate().await.expect("migrate");
    (store, dir)
}
