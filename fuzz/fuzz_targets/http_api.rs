//! The whole HTTP surface in-process: any method, path, query, credential, content type and body sent to
//! the router (every JSON API, the CentralAuth and OAuth forms, the hosted login forms, the SuperTokens
//! core face) is answered with a
//! catalog error or a success, never a 500: the router's panic guard turns a panic into a 500, so a 500
//! here is a panic or an unmapped failure.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use portcullis_server::app::{App, OpenOptions};
use portcullis_server::config::Config;
use tower::ServiceExt as _;

const ADMIN_TOKEN: &str = "fuzz-admin-token-fuzz-admin-token-0123456789";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    org: String,
    api_key: String,
    basic: String,
    handle: String,
    flow: String,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
    config.admin.token = ADMIN_TOKEN.into();
    config.login.dev_outbox = true;
    config.login.api_requests_per_ip_per_minute = 1_000_000_000;
    config.login.page_requests_per_ip_per_minute = 1_000_000_000;
    let (app, org, api_key, basic, handle) = runtime.block_on(async {
        let app = Arc::new(App::open(config, OpenOptions { migrate: true }).await.expect("app"));
        let org = app.create_organization("Fuzz").await.expect("org").id;
        app.login().configure(&org, Some(vec!["https://app.example.com".to_owned()]), None).await.expect("whitelist");
        let api_key = app.create_api_key(&org).await.expect("key").secret;
        let (secret, _) = app.login().new_secret(&org).await.expect("secret");
        let session = app.sessions().create(&org, "fuzz-user", None, serde_json::Map::new()).await.expect("session");
        let basic = STANDARD.encode(format!("{org}:{secret}"));
        (app, org, api_key, basic, session.session.handle)
    });
    let router = portcullis_server::http::router(app);
    let start = format!(
        "/login?client_id={org}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&response_type=code&state=s\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    );
    let started = runtime.block_on(router.clone().oneshot(request(Method::GET, &start, None, None, Vec::new())));
    let flow = started
        .ok()
        .and_then(|r| r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .and_then(|l| l.split('?').next().map(str::to_owned))
        .unwrap_or_else(|| "/login/flow/none".to_owned());
    Fixture { runtime, router, org, api_key, basic, handle, flow, _dir: dir }
});

const ROUTES: &[&str] = &[
    "/health",
    "/errors",
    "/openapi.json",
    "/.well-known/jwks.json",
    "/.well-known/openid-configuration",
    "/admin/v1/organizations",
    "/admin/v1/organizations/{org}",
    "/admin/v1/organizations/{org}/api-keys",
    "/admin/v1/organizations/{org}/login",
    "/admin/v1/organizations/{org}/secret",
    "/admin/v1/organizations/{org}/audit",
    "/admin/v1/organizations/{org}/passkeys",
    "/admin/v1/organizations/{org}/passkeys/x",
    "/admin/v1/organizations/{org}/connector-accounts",
    "/admin/v1/organizations/{org}/connector-accounts/a",
    "/admin/v1/organizations/{org}/connector-accounts/a/calls",
    "/admin/v1/keys",
    "/api/v1/organization",
    "/api/v1/sessions",
    "/api/v1/sessions/refresh",
    "/api/v1/sessions/verify",
    "/api/v1/sessions/regenerate",
    "/api/v1/sessions/revoked",
    "/api/v1/sessions/{handle}",
    "/api/v1/sessions/{handle}/claims",
    "/api/v1/users/fuzz-user/sessions",
    "/api/v1/connectors/c/accounts/a/calls",
    "/api/v1/verify",
    "/api/v1/userinfo",
    "/api/v1/logout",
    "/api/v1/authenticate_direct",
    "/oauth2/token",
    "/oauth2/userinfo",
    "/oauth2/authorize",
    "/login",
    "{flow}",
    "{flow}/email",
    "{flow}/code",
    "{flow}/wait",
    "{flow}/passkey/options",
    "{flow}/passkey",
    "{flow}/passkeys",
    "{flow}/passkeys/options",
    "{flow}/continue",
    "/login/link/a/b",
    "/login/undo/a/b",
    "/auth/session/refresh",
    "/auth/signout",
    "/connectors/oauth2/callback",
    "/supertokens/appid-{org}/apiversion",
    "/supertokens/appid-{org}/.well-known/jwks.json",
    "/supertokens/appid-{org}/hello",
    "/supertokens/appid-{org}/public/recipe/session",
    "/supertokens/appid-{org}/recipe/session",
    "/supertokens/appid-{org}/recipe/session/verify",
    "/supertokens/appid-{org}/recipe/session/refresh",
    "/supertokens/appid-{org}/tenant-1/recipe/session/remove",
    "/supertokens/appid-{org}/recipe/session/regenerate",
    "/supertokens/appid-{org}/recipe/session/data",
    "/supertokens/appid-{org}/recipe/jwt/data",
    "/supertokens/appid-{org}/public/recipe/session/user",
    "/supertokens/appid-{org}/user/id",
    "/supertokens/appid-{org}/public/recipe/multitenancy/tenant/v2",
    "/supertokens/appid-{org}/recipe/role",
    "/supertokens/appid-{org}/recipe/roles",
    "/supertokens/appid-{org}/recipe/role/permissions",
    "/supertokens/appid-{org}/recipe/role/permissions/remove",
    "/supertokens/appid-{org}/public/recipe/user/role",
    "/supertokens/appid-{org}/public/recipe/role/users",
    "/supertokens/appid-{org}/recipe/user/metadata",
    "/supertokens/appid-{org}/RECIPE/SESSION/",
    "/supertokens/appid-/recipe/session",
    "/supertokens/recipe/session",
];

const METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=X"),
    Some("text/plain"),
];

#[derive(Debug, Arbitrary)]
struct Call {
    route: u8,
    method: u8,
    credential: u8,
    content_type: u8,
    query: String,
    body: Vec<u8>,
}

fn request(
    method: Method,
    uri: &str,
    auth: Option<String>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        builder = builder.header("authorization", auth);
    }
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| Request::new(Body::empty()))
}

fuzz_target!(|call: Call| {
    let fixture = &*FIXTURE;
    let route = ROUTES[usize::from(call.route) % ROUTES.len()]
        .replace("{org}", &fixture.org)
        .replace("{handle}", &fixture.handle)
        .replace("{flow}", &fixture.flow);
    let uri = if call.query.is_empty() { route } else { format!("{route}?{}", call.query) };
    if uri.parse::<http::Uri>().is_err() {
        return;
    }
    let auth = match call.credential % 4 {
        0 => None,
        1 => Some(format!("Bearer {ADMIN_TOKEN}")),
        2 => Some(format!("Bearer {}", fixture.api_key)),
        _ => Some(format!("Basic {}", fixture.basic)),
    };
    let method = METHODS[usize::from(call.method) % METHODS.len()].clone();
    let content_type = CONTENT_TYPES[usize::from(call.content_type) % CONTENT_TYPES.len()];
    let request = request(method.clone(), &uri, auth, content_type, call.body);
    let response = fixture.runtime.block_on(fixture.router.clone().oneshot(request)).expect("infallible");
    assert_ne!(response.status().as_u16(), 500, "{method} {uri} answered 500");
});
