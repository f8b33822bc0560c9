//! The Rust SDK against a real server: an app router called in process, Portcullis over loopback HTTP.

use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use portcullis_core::session::{ClaimValidator, ROLES, claim_entry};
use portcullis_sdk::{
    ErrorContext, ErrorHandlers, Portcullis, PortcullisBuilder, ResponseDraft, Session, require_session,
};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use crate::harness::{Backend, TestServer, test_config};

struct Fixture {
    server: TestServer,
    key: String,
}

impl Fixture {
    async fn start(adjust: impl FnOnce(&mut portcullis_server::config::Config)) -> Self {
        let server = TestServer::start_with(Backend::Sqlite, adjust).await;
        let org = server.app.create_organization("sdk").await.expect("organization");
        let key = server.app.create_api_key(&org.id).await.expect("key").secret;
        Self { server, key }
    }

    fn builder(&self) -> PortcullisBuilder {
        Portcullis::builder(&self.server.url, &self.key)
    }
}

fn app(portcullis: &Portcullis) -> Router {
    let admin = portcullis.guard(vec![ClaimValidator::HasRole("admin".to_owned())]);
    Router::new()
        .route("/me", get(|s: Session| async move { s.user_id().to_owned() }))
        .route("/admin", get(|| async { "admin" }).route_layer(from_fn_with_state(admin, require_session)))
        .merge(portcullis.session_routes())
        .with_state(portcullis.clone())
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, value)
}

fn roles(list: &[&str]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert(ROLES.to_owned(), claim_entry(json!(list), portcullis_core::clock::Timestamp::from_unix_millis(1)));
    claims
}

#[tokio::test]
async fn default_handlers_answer_like_supertokens() {
    let fixture = Fixture::start(|_| {}).await;
    let portcullis = fixture.builder().build().await.expect("sdk");
    let app = app(&portcullis);
    let issued = portcullis.client().create_session("u1", roles(&["user"])).await.expect("session");
    let bearer = format!("Bearer {}", issued.access_token);

    let (status, _, body) = call(&app, "GET", "/me", &[("authorization", bearer.clone())]).await;
    assert_eq!((status, body), (StatusCode::OK, json!("u1")));
    let (status, headers, body) = call(&app, "GET", "/me", &[]).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({ "message": "unauthorised" })));
    assert!(headers.get("front-token").is_none(), "no token, nothing to clear");
    let expired = format!("Bearer {}.{}.x", issued.access_token.split('.').next().unwrap_or_default(), "e30");
    let (status, _, body) = call(&app, "GET", "/me", &[("authorization", expired)]).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({ "message": "try refresh token" })));
    let (status, _, body) = call(&app, "GET", "/admin", &[("authorization", bearer)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({ "message": "invalid claim", "claimValidationErrors": [{ "id": "st-role", "reason": { "message": "wrong value", "expectedToInclude": "admin", "actualValue": ["user"] } }] })
    );
}

struct Custom;

#[async_trait]
impl ErrorHandlers for Custom {
    async fn on_unauthorised(&self, context: &ErrorContext) -> ResponseDraft {
        ResponseDraft::json(StatusCode::UNAUTHORIZED, json!({ "message": "please log in", "path": context.path }))
    }

    async fn on_token_theft_detected(&self, session_handle: &str, user_id: &str, _: &ErrorContext) -> ResponseDraft {
        let mut draft =
            ResponseDraft::json(StatusCode::UNAUTHORIZED, json!({ "alert": user_id, "session": session_handle }));
        // A handler cannot drop the clearing: this header is overwritten by the sealed one.
        draft.headers.insert("front-token", "keep-me".parse().expect("header"));
        draft
    }
}

#[tokio::test]
async fn overridden_handlers_keep_the_protocol_clearing() {
    let fixture = Fixture::start(|c| c.session.refresh_grace_secs = 0).await;
    let portcullis = fixture.builder().error_handlers(Custom).build().await.expect("sdk");
    let app = app(&portcullis);
    let (status, _, body) = call(&app, "GET", "/me", &[]).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({ "message": "please log in", "path": "/me" })));

    let issued = portcullis.client().create_session("u2", Map::new()).await.expect("session");
    let stolen = issued.refresh_token.clone().expect("refresh token");
    let cookie = format!("sRefreshToken={stolen}");
    let (status, headers, _) =
        call(&app, "POST", "/auth/session/refresh", &[("rid", "session".to_owned()), ("cookie", cookie.clone())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get_all("set-cookie").iter().count() >= 2);

    let (status, headers, body) =
        call(&app, "POST", "/auth/session/refresh", &[("rid", "session".to_owned()), ("cookie", cookie)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "alert": "u2", "session": issued.session.handle }));
    assert_eq!(headers.get("front-token").and_then(|v| v.to_str().ok()), Some("remove"), "sealed clearing wins");
    let cleared: Vec<&str> = headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(
        cleared.iter().any(|c| c.starts_with("sAccessToken=;"))
            && cleared.iter().any(|c| c.starts_with("sRefreshToken=;")),
        "{cleared:?}"
    );
}

#[tokio::test]
async fn a_new_signing_key_is_fetched_once_with_a_cooldown() {
    let fixture = Fixture::start(|c| c.keys.publish_lead_secs = 1).await;
    let portcullis = fixture.builder().build().await.expect("sdk");
    let app = app(&portcullis);
    let before = portcullis.jwks_fetches();
    fixture.server.app.rotate_keys().await.expect("rotate");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let issued = portcullis.client().create_session("u3", Map::new()).await.expect("session");
    let (status, _, _) =
        call(&app, "GET", "/me", &[("authorization", format!("Bearer {}", issued.access_token))]).await;
    assert_eq!(status, StatusCode::OK, "a token signed by the new key verifies after one JWKS fetch");
    assert_eq!(portcullis.jwks_fetches() - before, 1);

    // Tokens naming unknown keys cannot make the SDK hammer the server: one fetch per cooldown.
    let parts: Vec<&str> = issued.access_token.split('.').collect();
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"EdDSA","kid":"d-404","typ":"JWT"}"#,
    );
    let forged = format!("Bearer {header}.{}.{}", parts[1], parts[2]);
    for _ in 0..20 {
        let (status, _, _) = call(&app, "GET", "/me", &[("authorization", forged.clone())]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(portcullis.jwks_fetches() - before <= 2, "unknown kids must not trigger a fetch each");
}

#[tokio::test]
async fn revoked_sessions_stop_within_the_poll_interval() {
    let fixture = Fixture::start(|_| {}).await;
    let portcullis = fixture
        .builder()
        .revocation_check(Duration::from_millis(100), Duration::from_secs(3600))
        .build()
        .await
        .expect("sdk");
    let app = app(&portcullis);
    let issued = portcullis.client().create_session("u4", Map::new()).await.expect("session");
    let bearer = format!("Bearer {}", issued.access_token);
    assert_eq!(call(&app, "GET", "/me", &[("authorization", bearer.clone())]).await.0, StatusCode::OK);
    assert!(portcullis.client().revoke_session(&issued.session.handle).await.expect("revoke"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, headers, body) = call(&app, "GET", "/me", &[("authorization", bearer)]).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({ "message": "unauthorised" })));
    assert_eq!(
        headers.get("front-token").and_then(|v| v.to_str().ok()),
        Some("remove"),
        "a revoked session is cleared"
    );
}

/// A revocation whose time is behind the deny-list's cursor when the SDK first sees it: the instance that
/// wrote it runs 10 s behind the one the SDK polls (the same happens when a revocation commits late). The
/// SDK still refuses the session.
#[tokio::test]
async fn a_revocation_behind_the_poll_cursor_still_reaches_the_sdk() {
    use portcullis_core::clock::{Clock as _, ManualClock, SystemClock};

    let database = portcullis_store_conformance::TestPostgres::create().await;
    let now = SystemClock.now();
    let mut servers = Vec::new();
    // The instance behind starts first: the key ring it creates is already in the past for the other.
    for clock in [ManualClock::new(now), ManualClock::new(now.plus(Duration::from_secs(10)))] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir, Some(&database));
        config.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
        servers.push(TestServer::start_in_with_clock(dir, None, config, std::sync::Arc::new(clock)).await);
    }
    let (behind_url, ahead_url) = (&servers[0].url, &servers[1].url);
    let org = servers[1].app.create_organization("skew").await.expect("organization");
    let key = servers[1].app.create_api_key(&org.id).await.expect("key").secret;
    let poll = Duration::from_millis(100);
    let ahead = Portcullis::builder(ahead_url, &key)
        .revocation_check(poll, Duration::from_secs(3600))
        .build()
        .await
        .expect("sdk");
    let behind = Portcullis::builder(behind_url, &key).build().await.expect("sdk");
    let app = app(&ahead);

    let first = ahead.client().create_session("u-first", Map::new()).await.expect("session");
    let second = ahead.client().create_session("u-second", Map::new()).await.expect("session");
    assert!(ahead.client().revoke_session(&first.session.handle).await.expect("revoke"));
    tokio::time::sleep(poll * 4).await;
    let bearer = format!("Bearer {}", second.access_token);
    assert_eq!(call(&app, "GET", "/me", &[("authorization", bearer.clone())]).await.0, StatusCode::OK);

    assert!(behind.client().revoke_session(&second.session.handle).await.expect("revoke"));
    tokio::time::sleep(poll * 4).await;
    let (status, _, body) = call(&app, "GET", "/me", &[("authorization", bearer)]).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({ "message": "unauthorised" })));
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn sessions_created_through_the_sdk_follow_the_requested_mode() {
    let fixture = Fixture::start(|_| {}).await;
    let portcullis = fixture.builder().build().await.expect("sdk");
    let mut cookie_request = axum::http::HeaderMap::new();
    cookie_request.insert("st-auth-mode", "cookie".parse().expect("header"));
    let headers = portcullis.create_session(&cookie_request, "u5", Map::new()).await.expect("session");
    assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    assert!(headers.get("st-access-token").is_none());
    let headers = portcullis.create_session(&axum::http::HeaderMap::new(), "u5", Map::new()).await.expect("session");
    assert!(headers.get("st-access-token").is_some() && headers.get("st-refresh-token").is_some());
    assert_eq!(headers.get_all("set-cookie").iter().count(), 0);
}

/// Cookie-mode refresh through the SDK's mounted endpoint with two access and two refresh cookies, as a
/// browser sends them after the cookie domain changed.
async fn refresh_with_duplicates(
    app: &Router,
    portcullis: &Portcullis,
    user: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = axum::http::HeaderMap::new();
    request.insert("st-auth-mode", "cookie".parse().expect("header"));
    let issued = portcullis.create_session(&request, user, Map::new()).await.expect("session");
    let refresh = issued
        .get_all("set-cookie")
        .iter()
        .find_map(|c| c.to_str().ok()?.strip_prefix("sRefreshToken=")?.split(';').next().map(str::to_owned))
        .expect("refresh cookie");
    let cookies = format!("sAccessToken=a.b.c; sAccessToken=d.e.f; sRefreshToken={refresh}; sRefreshToken=stale");
    call(app, "POST", "/auth/session/refresh", &[("rid", "session".to_owned()), ("cookie", cookies)]).await
}

#[tokio::test]
async fn the_sdk_clears_duplicate_cookies_of_the_servers_older_cookie_domains() {
    let fixture = Fixture::start(|c| c.session.older_cookie_domains = vec![".old.example".to_owned()]).await;
    let portcullis = fixture.builder().build().await.expect("sdk");
    let (status, headers, _) = refresh_with_duplicates(&app(&portcullis), &portcullis, "dup").await;
    assert_eq!(status, StatusCode::OK);
    let cleared: Vec<&str> = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .filter(|c| c.starts_with("sAccessToken=;") && c.contains("Domain=old.example"))
        .collect();
    assert_eq!(cleared.len(), 1, "the older domain's access cookie must be cleared: {headers:?}");
}

#[tokio::test]
async fn duplicate_cookies_without_an_older_domain_answer_500_instead_of_a_refresh_loop() {
    let fixture = Fixture::start(|_| {}).await;
    let portcullis = fixture.builder().build().await.expect("sdk");
    let (status, headers, body) = refresh_with_duplicates(&app(&portcullis), &portcullis, "loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("older_cookie_domains")), "{body}");
    assert!(headers.get("front-token").is_none(), "no tokens are issued, so the browser cannot loop");
}
