//! Sessions over HTTP: the server-to-server API, the SuperTokens frontend endpoints, bad tokens, duplicate
//! cookies, CORS and concurrency.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::harness::{Backend, TestServer, assert_catalog_error, read_json};

struct Api {
    server: TestServer,
    key: String,
}

impl Api {
    async fn start(backend: Backend, adjust: impl FnOnce(&mut portcullis_server::config::Config)) -> Self {
        let server = TestServer::start_with(backend, adjust).await;
        let org = server.app.create_organization("sessions").await.expect("organization");
        let key = server.app.create_api_key(&org.id).await.expect("API key").secret;
        Self { server, key }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.server.request(method, path).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read_json(request.send().await.expect("request")).await
    }

    async fn create(&self, user: &str) -> Value {
        let (status, body) = self.call(Method::POST, "/api/v1/sessions", Some(json!({ "userId": user }))).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.call(Method::POST, "/api/v1/sessions/refresh", Some(json!({ "refreshToken": token }))).await
    }
}

fn token(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_owned()
}

async fn lifecycle(backend: Backend) {
    let api = Api::start(backend, |_| {}).await;
    let created = api.create("alice").await;
    assert_eq!(created["session"]["userId"], "alice");
    let access = token(&created, "accessToken");
    let (status, verified) =
        api.call(Method::POST, "/api/v1/sessions/verify", Some(json!({ "accessToken": access }))).await;
    assert_eq!(status, 200);
    assert_eq!(verified["claims"]["sub"], "alice");
    assert_eq!(verified["claims"]["parentRefreshTokenHash1"], Value::Null);
    assert_eq!(verified["sessionLive"], true);

    // The front token is the SDK's: padded base64 of {uid, ate, up}.
    let front = base64::engine::general_purpose::STANDARD.decode(token(&created, "frontToken")).expect("base64");
    let front: Value = serde_json::from_slice(&front).expect("JSON");
    assert_eq!(front["uid"], "alice");
    assert_eq!(front["ate"], created["accessTokenExpiry"]);
    assert_eq!(front["up"]["sessionHandle"], created["session"]["handle"]);

    let first = token(&created, "refreshToken");
    let (status, rotated) = api.refresh(&first).await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(token(&rotated, "refreshToken"), first);
    // Re-sent within the grace window (a retried POST, another tab): a sibling, not theft.
    let (status, again) = api.refresh(&first).await;
    assert_eq!(status, 200, "{again}");

    let (_, listed) = api.call(Method::GET, "/api/v1/users/alice/sessions", None).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    let (status, revoked) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{}", created["session"]["handle"].as_str().unwrap_or_default()),
            None,
        )
        .await;
    assert_eq!((status, &revoked), (200, &json!({ "revoked": true })));
    let (status, refused) = api.refresh(&token(&rotated, "refreshToken")).await;
    assert_eq!((status, refused["errorCode"].as_str()), (401, Some("unauthorised")));
    let (_, listed) = api.call(Method::GET, "/api/v1/users/alice/sessions", None).await;
    assert_eq!(listed["sessions"], json!([]));
    let (_, feed) = api.call(Method::GET, "/api/v1/sessions/revoked?since=0", None).await;
    assert_eq!(feed["revoked"][0]["handle"], created["session"]["handle"]);
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    lifecycle(Backend::Postgres).await;
}

async fn reuse_is_theft(backend: Backend) {
    let api = Api::start(backend, |c| c.session.refresh_grace_secs = 0).await;
    let created = api.create("bob").await;
    let stolen = token(&created, "refreshToken");
    let (_, rotated) = api.refresh(&stolen).await;
    let (status, theft) = api.refresh(&stolen).await;
    assert_eq!(status, 401);
    assert_eq!(theft["errorCode"], "tokenTheftDetected");
    assert_eq!(theft["sessionHandle"], created["session"]["handle"]);
    assert_eq!(theft["userId"], "bob");
    // The whole family is revoked: the legitimate holder is logged out too.
    let (status, victim) = api.refresh(&token(&rotated, "refreshToken")).await;
    assert_eq!((status, victim["errorCode"].as_str()), (401, Some("unauthorised")));
}

#[tokio::test]
async fn reuse_is_theft_on_sqlite() {
    reuse_is_theft(Backend::Sqlite).await;
}

#[tokio::test]
async fn reuse_is_theft_on_postgres() {
    reuse_is_theft(Backend::Postgres).await;
}

async fn parallel_refreshes(backend: Backend) {
    let api = std::sync::Arc::new(Api::start(backend, |_| {}).await);
    let created = api.create("carol").await;
    let refresh = token(&created, "refreshToken");
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (api, refresh) = (std::sync::Arc::clone(&api), refresh.clone());
            tokio::spawn(async move { api.refresh(&refresh).await.0 })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), 200, "a parallel refresh looked like theft");
    }
}

#[tokio::test]
async fn parallel_refreshes_on_sqlite() {
    parallel_refreshes(Backend::Sqlite).await;
}

#[tokio::test]
async fn parallel_refreshes_on_postgres() {
    parallel_refreshes(Backend::Postgres).await;
}

#[tokio::test]
async fn claims_merge_and_regenerate() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let created = api.create("dave").await;
    let handle = created["session"]["handle"].as_str().expect("handle").to_owned();
    let path = format!("/api/v1/sessions/{handle}/claims");
    let (status, _) =
        api.call(Method::PATCH, &path, Some(json!({ "claims": { "st-role": { "v": ["admin"], "t": 1 } } }))).await;
    assert_eq!(status, 200);
    let (status, fresh) = api
        .call(Method::POST, "/api/v1/sessions/regenerate", Some(json!({ "accessToken": created["accessToken"] })))
        .await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["refreshToken"], Value::Null, "regenerating keeps the refresh token");
    let payload = fresh["accessToken"].as_str().and_then(|t| t.split('.').nth(1)).expect("payload");
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    assert_eq!(payload["st-role"]["v"], json!(["admin"]));
    assert_eq!(payload["exp"].as_i64(), created["accessTokenExpiry"].as_i64().map(|ms| ms / 1000), "same expiry");

    let (status, body) = api.call(Method::PATCH, &path, Some(json!({ "claims": { "sub": "mallory" } }))).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("entityInvalid")));
    let (status, body) = api.call(Method::PATCH, &path, Some(json!({ "claims": { "big": "x".repeat(4000) } }))).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("entityInvalid")));
}

#[tokio::test]
async fn api_key_is_required_and_scopes_the_organization() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let created = api.create("erin").await;
    let response = api
        .server
        .request(Method::POST, "/api/v1/sessions")
        .json(&json!({ "userId": "x" }))
        .send()
        .await
        .expect("request");
    assert_catalog_error(response, 401, "tokenMissing").await;
    let response = api
        .server
        .request(Method::POST, "/api/v1/sessions")
        .bearer_auth("pcak_wrong")
        .json(&json!({ "userId": "x" }))
        .send()
        .await
        .expect("request");
    assert_catalog_error(response, 401, "noPermission").await;

    let other_org = api.server.app.create_organization("other").await.expect("organization");
    let other = api.server.app.create_api_key(&other_org.id).await.expect("key").secret;
    let handle = created["session"]["handle"].as_str().expect("handle");
    let (_, body) = read_json(
        api.server
            .request(Method::DELETE, &format!("/api/v1/sessions/{handle}"))
            .bearer_auth(&other)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(body["revoked"], false, "another organization cannot revoke the session");
    let refreshed = api
        .server
        .request(Method::POST, "/api/v1/sessions/refresh")
        .bearer_auth(&other)
        .json(&json!({ "refreshToken": created["refreshToken"] }))
        .send()
        .await
        .expect("request");
    assert_eq!(refreshed.status(), 401);
    let (status, _) = api.refresh(&token(&created, "refreshToken")).await;
    assert_eq!(status, 200, "the foreign attempt did not disturb the session");

    let (status, body) = api.call(Method::POST, "/api/v1/sessions", Some(json!({ "userId": "" }))).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("missingFields")));
}

// The SuperTokens frontend endpoints on Portcullis itself.

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn set_cookies(response: &Response) -> Vec<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

async fn assert_cleared(response: Response, status: u16, message: &str) {
    assert_eq!(header(&response, "front-token"), Some("remove"));
    let cookies = set_cookies(&response);
    assert!(cookies.iter().any(|c| c.starts_with("sAccessToken=;") && c.contains("1970")), "{cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("sRefreshToken=;") && c.contains("Path=/auth/session/refresh")),
        "{cookies:?}"
    );
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({ "message": message }));
}

#[tokio::test]
async fn frontend_refresh_in_cookie_and_header_mode() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let created = api.create("frank").await;
    let refresh_token = token(&created, "refreshToken");

    let token_less = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .send()
        .await
        .expect("request");
    assert_cleared(token_less, 401, "unauthorised").await;

    let no_rid = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("cookie", format!("sRefreshToken={refresh_token}"))
        .send()
        .await
        .expect("request");
    assert_cleared(no_rid, 401, "unauthorised").await;

    let cookie = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .header("fdi-version", "3.1,4.0")
        .header("cookie", format!("sRefreshToken={refresh_token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(cookie.status(), 200);
    assert!(header(&cookie, "front-token").is_some_and(|v| v != "remove"));
    assert!(header(&cookie, "access-control-expose-headers").is_some_and(|v| v.contains("front-token")));
    let cookies = set_cookies(&cookie);
    assert!(
        cookies.iter().any(|c| c.starts_with("sAccessToken=ey") && c.contains("HttpOnly") && c.contains("Path=/;")),
        "{cookies:?}"
    );
    let next = cookies.iter().find(|c| c.starts_with("sRefreshToken=v1.")).expect("refresh cookie").clone();
    assert_eq!(cookie.text().await.expect("body"), "{}");

    let next = next.trim_start_matches("sRefreshToken=").split(';').next().expect("value").to_owned();
    let header_mode = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .bearer_auth(&next)
        .send()
        .await
        .expect("request");
    assert_eq!(header_mode.status(), 200);
    assert!(header(&header_mode, "st-access-token").is_some_and(|t| t.split('.').count() == 3));
    let newest = header(&header_mode, "st-refresh-token").expect("refresh header").to_owned();
    assert!(set_cookies(&header_mode).is_empty(), "header mode sets no cookies unless the request carried some");

    // Sign-out with the header-mode access token revokes the session and clears everything.
    let access = header(&header_mode, "st-access-token").expect("access").to_owned();
    let signed_out = api
        .server
        .request(Method::POST, "/auth/signout")
        .header("rid", "session")
        .bearer_auth(&access)
        .send()
        .await
        .expect("request");
    assert_eq!(header(&signed_out, "front-token"), Some("remove"));
    assert_eq!(signed_out.json::<Value>().await.expect("json"), json!({ "status": "OK" }));
    let after =
        api.server.request(Method::POST, "/auth/session/refresh").bearer_auth(&newest).send().await.expect("request");
    assert_cleared(after, 401, "unauthorised").await;
}

#[tokio::test]
async fn frontend_refresh_reports_theft_and_clears() {
    let api = Api::start(Backend::Sqlite, |c| c.session.refresh_grace_secs = 0).await;
    let created = api.create("grace").await;
    let stolen = token(&created, "refreshToken");
    api.refresh(&stolen).await;
    let replay = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .header("cookie", format!("sRefreshToken={stolen}"))
        .send()
        .await
        .expect("request");
    assert_cleared(replay, 401, "token theft detected").await;
}

#[tokio::test]
async fn duplicate_cookies_are_resolved_in_one_response_without_theft() {
    let api = Api::start(Backend::Sqlite, |c| {
        c.session.refresh_grace_secs = 0;
        c.session.older_cookie_domains = vec![".old.example".to_owned()];
    })
    .await;
    let created = api.create("heidi").await;
    let stale = token(&created, "refreshToken");
    let (_, rotated) = api.refresh(&stale).await;
    let current = token(&rotated, "refreshToken");

    let resolved = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .header(
            "cookie",
            format!("sRefreshToken={stale}; sRefreshToken={current}; sAccessToken=a.b.c; sAccessToken=d.e.f"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resolved.status(), 200);
    let cookies = set_cookies(&resolved);
    assert_eq!(
        cookies.iter().filter(|c| c.contains("Domain=old.example") && c.contains("1970")).count(),
        2,
        "{cookies:?}"
    );
    assert!(cookies.iter().any(|c| c.starts_with("sRefreshToken=v1.")), "{cookies:?}");
    assert!(header(&resolved, "front-token").is_some_and(|v| v != "remove"));
    let fresh = cookies
        .iter()
        .find_map(|c| c.strip_prefix("sRefreshToken=v1."))
        .and_then(|c| c.split(';').next())
        .map(|rest| format!("v1.{rest}"))
        .expect("new refresh cookie");

    // Two stale candidates: unauthorised and cleared, but no theft and no revocation.
    let unusable = api
        .server
        .request(Method::POST, "/auth/session/refresh")
        .header("rid", "session")
        .header("cookie", format!("sRefreshToken={stale}; sRefreshToken={current}"))
        .send()
        .await
        .expect("request");
    assert_cleared(unusable, 401, "unauthorised").await;
    let (_, newest) = api.refresh(&fresh).await;
    assert!(newest["refreshToken"].is_string(), "the session survived: {newest}");
}

#[tokio::test]
async fn cors_allows_only_configured_origins_with_the_sdk_headers() {
    let api =
        Api::start(Backend::Sqlite, |c| c.session.cors_allowed_origins = vec!["https://app.example".to_owned()]).await;
    let preflight = |origin: &'static str| {
        api.server
            .request(Method::OPTIONS, "/auth/session/refresh")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "rid,fdi-version,st-auth-mode,authorization")
            .send()
    };
    let allowed = preflight("https://app.example").await.expect("request");
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&allowed, "access-control-max-age"), Some("600"));
    let allowed_headers = header(&allowed, "access-control-allow-headers").unwrap_or_default().to_owned();
    for h in ["rid", "fdi-version", "st-auth-mode", "authorization", "anti-csrf", "content-type"] {
        assert!(allowed_headers.contains(h), "{h} missing from {allowed_headers}");
    }
    let refused = preflight("https://evil.example").await.expect("request");
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
}

/// Every kind of bad access token gets the protocol's outcome, never a 500: "try refresh token" for a
/// JWT that cannot be used, "unauthorised" for something that is no JWT at all.
#[tokio::test]
async fn bad_access_tokens_map_to_the_protocol_outcome() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let created = api.create("ivan").await;
    let valid = token(&created, "accessToken");
    let parts: Vec<&str> = valid.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signer = api.server.app.keys().signer().expect("signer");
    let resign = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().expect("object") {
            c[k] = v.clone();
        }
        signer.sign_jwt(&c).expect("sign")
    };
    let public_key = URL_SAFE_NO_PAD.decode(api.server.app.jwks()["keys"][0]["x"].as_str().expect("x")).expect("b64");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header { kid: Some(kid.clone()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public_key),
    )
    .expect("hs256");
    let mut tampered = claims.clone();
    tampered["sub"] = json!("mallory");

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not a token".to_owned(), "unauthorised"),
        ("truncated", format!("{}.{}", parts[0], parts[1]), "unauthorised"),
        ("oversized", "a.".repeat(5000) + "b", "unauthorised"),
        (
            "alg none",
            format!("{}.{}.", encode(&json!({"alg": "none", "typ": "JWT", "kid": kid})), parts[1]),
            "tryRefreshToken",
        ),
        ("HS256 keyed with the public key", hs256, "tryRefreshToken"),
        ("tampered payload", format!("{}.{}.{}", parts[0], encode(&tampered), parts[2]), "tryRefreshToken"),
        (
            "unknown kid",
            format!("{}.{}.{}", encode(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "d-1"})), parts[1], parts[2]),
            "tryRefreshToken",
        ),
        ("wrong issuer", resign(json!({"iss": "https://evil.example/auth"})), "tryRefreshToken"),
        ("expired", resign(json!({"exp": 1_000_000_000})), "tryRefreshToken"),
        ("not a session token", resign(json!({"stt": 1})), "tryRefreshToken"),
        ("bad base64", format!("{}.!!!.{}", parts[0], parts[2]), "tryRefreshToken"),
    ];
    for (name, bad, expected) in &cases {
        let (status, body) =
            api.call(Method::POST, "/api/v1/sessions/verify", Some(json!({ "accessToken": bad }))).await;
        assert_eq!((status, body["errorCode"].as_str()), (401, Some(*expected)), "{name}: {body}");
        // The frontend face answers the same outcome in the SuperTokens shape.
        let cookie =
            if bad.len() > 4000 { format!("sAccessToken={}", "a".repeat(9000)) } else { format!("sAccessToken={bad}") };
        let response = api
            .server
            .request(Method::POST, "/auth/signout")
            .header("rid", "session")
            .header("cookie", cookie)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        let message = if *expected == "unauthorised" { "unauthorised" } else { "try refresh token" };
        assert_eq!((status, body), (401, json!({ "message": message })), "{name} at /auth/signout");
    }
    let (status, _) = api.call(Method::POST, "/api/v1/sessions/verify", Some(json!({ "accessToken": valid }))).await;
    assert_eq!(status, 200, "the untouched token still verifies");
}
