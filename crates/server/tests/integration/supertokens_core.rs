//! The SuperTokens core face (CDI 5.4) over real HTTP, as SuperTokens' backend SDKs call it: apps are
//! organizations under `/supertokens/appid-<id>`, each with its own keys; one app never accepts another's
//! tokens. The SDKs themselves run against it in `e2e/supertokens-core`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_core::clock::{ManualClock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, TestServer, read_json};

struct App {
    id: String,
    key: String,
}

impl App {
    async fn create(server: &TestServer, name: &str) -> Self {
        let org = server.app.create_organization(name).await.expect("organization");
        let key = server.app.create_api_key(&org.id).await.expect("key").secret;
        Self { id: org.id, key }
    }

    fn path(&self, api: &str) -> String {
        format!("/supertokens/appid-{}{api}", self.id)
    }
}

/// A CDI call with the app's key, as the SDKs send it.
async fn cdi(server: &TestServer, app: &App, method: Method, api: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server.request(method, &app.path(api)).header("api-key", &app.key).header("cdi-version", "5.4");
    if let Some(body) = body {
        request = request.json(&body);
    }
    read_json(request.send().await.expect("request")).await
}

/// A call whose answer is text (protocol failures): status and body.
async fn cdi_text(
    server: &TestServer,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = server.request(method, path);
    if let Some(key) = key {
        request = request.header("api-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    if status != 200 {
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/plain"), "a CDI failure is text, got {content_type}");
    }
    (status, response.text().await.expect("body"))
}

fn new_session(user: &str) -> Value {
    json!({
        "userId": user,
        "userDataInJWT": { "iss": "http://localhost:3001/auth", "role": "admin" },
        "userDataInDatabase": { "cart": 2 },
        "useDynamicSigningKey": true,
        "enableAntiCsrf": false,
    })
}

fn token_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Verifies an access token the way SuperTokens' SDKs do: RS256 with a key of the app's public JWKS,
/// fetched with no headers.
async fn verifies_with_jwks(server: &TestServer, app: &App, token: &str) -> bool {
    let jwks: JwkSet = server
        .client
        .get(format!("{}{}", server.url, app.path("/.well-known/jwks.json")))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    jwks.keys.iter().any(|jwk| {
        DecodingKey::from_jwk(jwk).is_ok_and(|key| jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok())
    })
}

async fn create(server: &TestServer, app: &App, user: &str) -> Value {
    let (status, body) = cdi(server, app, Method::POST, "/public/recipe/session", Some(new_session(user))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("OK")), "{body}");
    body
}

async fn refresh(server: &TestServer, app: &App, refresh_token: &Value) -> Value {
    let body = json!({ "refreshToken": refresh_token, "enableAntiCsrf": false, "useDynamicSigningKey": true });
    cdi(server, app, Method::POST, "/recipe/session/refresh", Some(body)).await.1
}

async fn verify(server: &TestServer, app: &App, access_token: &Value, check_database: bool) -> Value {
    let body = json!({
        "accessToken": access_token, "doAntiCsrfCheck": true, "enableAntiCsrf": false, "checkDatabase": check_database,
    });
    cdi(server, app, Method::POST, "/recipe/session/verify", Some(body)).await.1
}

#[tokio::test]
async fn the_session_tier_answers_as_the_core_does_on_sqlite() {
    session_tier(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_session_tier_answers_as_the_core_does_on_postgres() {
    session_tier(Backend::Postgres).await;
}

async fn session_tier(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.session.refresh_grace_secs = 0).await;
    let app = App::create(&server, "Shop").await;
    let (status, versions) =
        read_json(server.request(Method::GET, &app.path("/apiversion")).send().await.expect("get")).await;
    assert_eq!((status, versions), (200, json!({ "versions": ["5.4"] })));

    let created = create(&server, &app, "u-42").await;
    assert_eq!(
        created["session"],
        json!({
            "handle": created["session"]["handle"], "userId": "u-42", "recipeUserId": "u-42", "tenantId": "public",
            "userDataInJWT": { "iss": "http://localhost:3001/auth", "role": "admin" },
        })
    );
    assert!(created.get("antiCsrfToken").is_none(), "absent fields are omitted: {created}");
    let access = created["accessToken"]["token"].as_str().expect("access token");
    let header = token_part(access, 0);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str(), header["version"].as_str()),
        (Some("RS256"), Some("JWT"), Some("5"))
    );
    assert!(header["kid"].as_str().is_some_and(|kid| kid.starts_with("d-")), "{header}");
    let claims = token_part(access, 1);
    assert_eq!(claims["iss"], "http://localhost:3001/auth");
    assert_eq!(
        (claims["sub"].as_str(), claims["rsub"].as_str(), claims["tId"].as_str()),
        (Some("u-42"), Some("u-42"), Some("public"))
    );
    assert!(claims.get("aud").is_none() && claims["parentRefreshTokenHash1"].is_null(), "{claims}");
    assert_eq!(created["accessToken"]["expiry"], claims["exp"].as_i64().expect("exp") * 1000);
    assert!(verifies_with_jwks(&server, &app, access).await, "the app's JWKS verifies its tokens");

    let verified = verify(&server, &app, &created["accessToken"]["token"], false).await;
    assert_eq!(verified["status"], "OK");
    assert!(verified.get("accessToken").is_none(), "nothing to re-mint: {verified}");
    assert_eq!(verified["session"], created["session"]);

    let handle = created["session"]["handle"].clone();
    let (_, put) = cdi(&server, &app, Method::PUT, "/recipe/jwt/data",
        Some(json!({ "sessionHandle": handle, "userDataInJWT": { "iss": "http://localhost:3001/auth", "role": "owner" } }))).await;
    assert_eq!(put, json!({ "status": "OK" }));
    let stale = verify(&server, &app, &created["accessToken"]["token"], true).await;
    assert_eq!(stale["status"], "OK", "{stale}");
    assert_eq!(token_part(stale["accessToken"]["token"].as_str().expect("re-minted"), 1)["role"], "owner");

    let (_, put) = cdi(
        &server,
        &app,
        Method::PUT,
        "/recipe/session/data",
        Some(json!({ "sessionHandle": handle, "userDataInDatabase": { "cart": 3 } })),
    )
    .await;
    assert_eq!(put, json!({ "status": "OK" }));
    let (_, info) = cdi(
        &server,
        &app,
        Method::GET,
        &format!("/recipe/session?sessionHandle={}", handle.as_str().unwrap_or_default()),
        None,
    )
    .await;
    assert_eq!(
        (info["status"].as_str(), &info["userDataInDatabase"], &info["userDataInJWT"]["role"]),
        (Some("OK"), &json!({ "cart": 3 }), &json!("owner"))
    );
    assert_eq!(info["recipeUserId"], "u-42");

    let rotated = refresh(&server, &app, &created["refreshToken"]["token"]).await;
    assert_eq!(rotated["status"], "OK", "{rotated}");
    assert_ne!(rotated["refreshToken"]["token"], created["refreshToken"]["token"]);
    assert_eq!(rotated["session"]["userDataInJWT"]["role"], "owner");
    let replayed = refresh(&server, &app, &created["refreshToken"]["token"]).await;
    assert_eq!(
        replayed,
        json!({ "status": "TOKEN_THEFT_DETECTED", "session": { "handle": handle, "userId": "u-42", "recipeUserId": "u-42" } })
    );
    let after = verify(&server, &app, &rotated["accessToken"]["token"], true).await;
    assert_eq!(
        after,
        json!({ "status": "UNAUTHORISED", "message": "Either the session has ended or has been blacklisted" })
    );
    let refused = refresh(&server, &app, &json!("not-a-refresh-token")).await;
    assert_eq!(refused["status"], "UNAUTHORISED");
    assert!(refused["message"].is_string(), "python reads the message: {refused}");
}

#[tokio::test]
async fn a_rotated_token_reused_inside_the_grace_window_is_a_sibling_and_after_it_theft() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000)));
    let server = TestServer::start_with_clock(|_| {}, clock.clone()).await;
    let app = App::create(&server, "Shop").await;
    let created = create(&server, &app, "u-1").await;
    assert_eq!(refresh(&server, &app, &created["refreshToken"]["token"]).await["status"], "OK");
    assert_eq!(refresh(&server, &app, &created["refreshToken"]["token"]).await["status"], "OK", "a parallel tab");
    clock.advance(Duration::from_secs(31));
    assert_eq!(refresh(&server, &app, &created["refreshToken"]["token"]).await["status"], "TOKEN_THEFT_DETECTED");
}

#[tokio::test]
async fn one_app_never_accepts_another_apps_tokens_keys_or_sessions() {
    let server = TestServer::start().await;
    let (a, b) = (App::create(&server, "A").await, App::create(&server, "B").await);
    let created = create(&server, &a, "alice").await;
    let access = created["accessToken"]["token"].as_str().expect("token");
    let handle = created["session"]["handle"].as_str().expect("handle");

    assert!(!verifies_with_jwks(&server, &b, access).await, "B's JWKS must not verify A's token");
    assert_eq!(verify(&server, &b, &created["accessToken"]["token"], false).await["status"], "TRY_REFRESH_TOKEN");
    assert_eq!(refresh(&server, &b, &created["refreshToken"]["token"]).await["status"], "UNAUTHORISED");
    let (_, info) = cdi(&server, &b, Method::GET, &format!("/recipe/session?sessionHandle={handle}"), None).await;
    assert_eq!(info, json!({ "status": "UNAUTHORISED", "message": "Session does not exist." }));
    let (_, removed) =
        cdi(&server, &b, Method::POST, "/recipe/session/remove", Some(json!({ "sessionHandles": [handle] }))).await;
    assert_eq!(removed, json!({ "status": "OK", "sessionHandlesRevoked": [] }));
    let (_, listed) = cdi(&server, &b, Method::GET, "/recipe/session/user?userId=alice", None).await;
    assert_eq!(listed["sessionHandles"], json!([]));
    let (_, regenerated) = cdi(
        &server,
        &b,
        Method::POST,
        "/recipe/session/regenerate",
        Some(json!({ "accessToken": access, "userDataInJWT": { "role": "x" } })),
    )
    .await;
    assert_eq!(regenerated["status"], "UNAUTHORISED");
    let (_, put) = cdi(
        &server,
        &b,
        Method::PUT,
        "/recipe/session/data",
        Some(json!({ "sessionHandle": handle, "userDataInDatabase": {} })),
    )
    .await;
    assert_eq!(put["status"], "UNAUTHORISED");

    // A's key on B's path, and no key at all.
    let (status, text) =
        cdi_text(&server, Some(&a.key), Method::GET, &b.path("/recipe/session/user?userId=alice"), None).await;
    assert_eq!((status, text.as_str()), (401, "Invalid API key"));
    let (status, _) = cdi_text(&server, None, Method::GET, &a.path("/recipe/session/user?userId=alice"), None).await;
    assert_eq!(status, 401);

    // Portcullis's own faces refuse the app's tokens, and the app refuses theirs.
    let (status, _) = read_json(
        server
            .request(Method::POST, "/api/v1/sessions/verify")
            .bearer_auth(&a.key)
            .json(&json!({ "accessToken": access }))
            .send()
            .await
            .expect("verify"),
    )
    .await;
    assert_eq!(status, 401, "the server-to-server API must not accept a SuperTokens app's token");
    let (status, native) = read_json(
        server
            .request(Method::POST, "/api/v1/sessions")
            .bearer_auth(&a.key)
            .json(&json!({ "userId": "alice" }))
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(verify(&server, &a, &native["accessToken"], false).await["status"], "TRY_REFRESH_TOKEN");
    assert_eq!(refresh(&server, &a, &native["refreshToken"]).await["status"], "UNAUTHORISED");
    let (status, _) = read_json(
        server
            .request(Method::POST, "/api/v1/sessions/refresh")
            .bearer_auth(&a.key)
            .json(&json!({ "refreshToken": created["refreshToken"]["token"] }))
            .send()
            .await
            .expect("refresh"),
    )
    .await;
    assert_eq!(status, 401, "an app's refresh token must not rotate at the server-to-server API");

    // A's session is untouched by all of that.
    assert_eq!(verify(&server, &a, &created["accessToken"]["token"], true).await["status"], "OK");
}

#[tokio::test]
async fn tenants_and_removal_follow_the_core_rules() {
    let server = TestServer::start().await;
    let app = App::create(&server, "Shop").await;
    let (_, t1) = cdi(&server, &app, Method::POST, "/tenant-1/recipe/session", Some(new_session("bob"))).await;
    assert_eq!(t1["session"]["tenantId"], "tenant-1");
    assert_eq!(token_part(t1["accessToken"]["token"].as_str().expect("token"), 1)["tId"], "tenant-1");
    let public = create(&server, &app, "bob").await;

    let (_, in_t1) =
        cdi(&server, &app, Method::GET, "/tenant-1/recipe/session/user?userId=bob&fetchAcrossAllTenants=false", None)
            .await;
    assert_eq!(in_t1["sessionHandles"], json!([t1["session"]["handle"]]));
    let (_, all) = cdi(
        &server,
        &app,
        Method::GET,
        "/recipe/session/user?userId=bob&fetchAcrossAllTenants=true&fetchSessionsForAllLinkedAccounts=",
        None,
    )
    .await;
    assert_eq!(all["sessionHandles"].as_array().map(Vec::len), Some(2), "{all}");

    let (status, _) = cdi_text(
        &server,
        Some(&app.key),
        Method::POST,
        &app.path("/tenant-1/recipe/session/remove"),
        Some(json!({ "userId": "bob", "revokeAcrossAllTenants": true })),
    )
    .await;
    assert_eq!(status, 403, "across all tenants only from the public tenant");
    let (_, removed) = cdi(
        &server,
        &app,
        Method::POST,
        "/tenant-1/recipe/session/remove",
        Some(json!({ "userId": "bob", "revokeAcrossAllTenants": false, "revokeSessionsForLinkedAccounts": true })),
    )
    .await;
    assert_eq!(removed, json!({ "status": "OK", "sessionHandlesRevoked": [t1["session"]["handle"]] }));
    assert_eq!(
        verify(&server, &app, &public["accessToken"]["token"], true).await["status"],
        "OK",
        "the public tenant's session stays"
    );
    let (status, _) = cdi_text(
        &server,
        Some(&app.key),
        Method::POST,
        &app.path("/recipe/session/remove"),
        Some(json!({ "userId": "bob", "sessionHandles": [] })),
    )
    .await;
    assert_eq!(status, 400, "exactly one of userId and sessionHandles");

    let (_, tenant) = cdi(&server, &app, Method::GET, "/public/recipe/multitenancy/tenant/v2", None).await;
    assert_eq!(
        tenant,
        json!({ "status": "OK", "tenantId": "public", "thirdParty": { "providers": [] }, "coreConfig": {} })
    );
    let (_, user) = cdi(&server, &app, Method::GET, "/user/id?userId=bob", None).await;
    assert_eq!(user, json!({ "status": "UNKNOWN_USER_ID_ERROR" }));
}

#[tokio::test]
async fn protocol_failures_are_text_with_the_status_the_sdks_expect() {
    let server = TestServer::start().await;
    let app = App::create(&server, "Shop").await;
    let key = Some(app.key.as_str());
    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (Method::GET, app.path("/recipe/nothing"), None, 404, "Not found"),
        (Method::GET, app.path("/hello/recipe/session"), None, 404, "Not found"),
        (
            Method::POST,
            app.path("/tenant-1/recipe/session/verify"),
            Some(json!({ "accessToken": "x" })),
            403,
            "Only public tenantId can call this app specific API",
        ),
        (Method::PATCH, app.path("/recipe/session"), None, 405, "Method not supported"),
        (
            Method::POST,
            app.path("/public/recipe/session"),
            Some(json!({ "userDataInJWT": {} })),
            400,
            "Field name 'userId' is invalid in JSON input",
        ),
        (Method::POST, app.path("/public/recipe/session"), Some(json!([1])), 400, "Invalid Json Input"),
        (Method::GET, app.path("/recipe/session"), None, 400, "Field name 'sessionHandle' is missing in GET request"),
        (
            Method::POST,
            "/supertokens/public/recipe/session".to_owned(),
            Some(new_session("u")),
            400,
            "AppId or tenantId not found => connectionURI must end with /appid-<organization id>",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let (got_status, got_text) = cdi_text(&server, key, method.clone(), &path, body).await;
        assert_eq!((got_status, got_text.as_str()), (status, text), "{method} {path}");
    }
    let mut protected = new_session("u");
    protected["userDataInJWT"]["sub"] = json!("someone-else");
    let (status, text) =
        cdi_text(&server, key, Method::POST, &app.path("/public/recipe/session"), Some(protected)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("sub"), "the message names the protected claim: {text}");
    let mut static_key = new_session("u");
    static_key["useDynamicSigningKey"] = json!(false);
    let (status, text) =
        cdi_text(&server, key, Method::POST, &app.path("/public/recipe/session"), Some(static_key)).await;
    assert_eq!(status, 400);
    assert!(text.contains("useDynamicAccessTokenSigningKey"), "{text}");
    let (status, text) = cdi_text(&server, None, Method::GET, &app.path("/hello"), None).await;
    assert_eq!((status, text.as_str()), (200, "Hello"));
    let (status, _) = cdi_text(
        &server,
        None,
        Method::GET,
        "/supertokens/appid-00000000-0000-0000-0000-000000000000/.well-known/jwks.json",
        None,
    )
    .await;
    assert_eq!(status, 400, "an unknown app has no JWKS");
}

#[tokio::test]
async fn roles_and_metadata_answer_as_the_user_roles_and_metadata_recipes_expect() {
    let server = TestServer::start().await;
    let (app, other) = (App::create(&server, "Shop").await, App::create(&server, "Other").await);
    let call = |app: &App, method: Method, api: &str, body: Option<Value>| {
        let (app, api) = (App { id: app.id.clone(), key: app.key.clone() }, api.to_owned());
        let server = &server;
        async move { cdi(server, &app, method, &api, body).await.1 }
    };

    let created =
        call(&app, Method::PUT, "/recipe/role", Some(json!({ "role": "admin", "permissions": ["read", "write"] })))
            .await;
    assert_eq!(created, json!({ "status": "OK", "createdNewRole": true }));
    let again = call(&app, Method::PUT, "/recipe/role", Some(json!({ "role": "admin", "permissions": [] }))).await;
    assert_eq!(again, json!({ "status": "OK", "createdNewRole": false }));
    assert_eq!(call(&app, Method::GET, "/recipe/roles", None).await, json!({ "status": "OK", "roles": ["admin"] }));
    assert_eq!(
        call(&app, Method::GET, "/recipe/role/permissions?role=admin", None).await,
        json!({ "status": "OK", "permissions": ["read", "write"] })
    );
    assert_eq!(
        call(&app, Method::GET, "/recipe/permission/roles?permission=write", None).await,
        json!({ "status": "OK", "roles": ["admin"] })
    );
    assert_eq!(
        call(&app, Method::PUT, "/public/recipe/user/role", Some(json!({ "userId": "u1", "role": "admin" }))).await,
        json!({ "status": "OK", "didUserAlreadyHaveRole": false })
    );
    assert_eq!(
        call(&app, Method::PUT, "/public/recipe/user/role", Some(json!({ "userId": "u1", "role": "ghost" }))).await,
        json!({ "status": "UNKNOWN_ROLE_ERROR" })
    );
    assert_eq!(
        call(&app, Method::GET, "/public/recipe/user/roles?userId=u1", None).await,
        json!({ "status": "OK", "roles": ["admin"] })
    );
    assert_eq!(
        call(&app, Method::GET, "/public/recipe/role/users?role=admin", None).await,
        json!({ "status": "OK", "users": ["u1"] })
    );
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/recipe/role/permissions/remove",
            Some(json!({ "role": "admin", "permissions": ["write"] }))
        )
        .await,
        json!({ "status": "OK" })
    );
    assert_eq!(
        call(&app, Method::GET, "/recipe/role/permissions?role=ghost", None).await,
        json!({ "status": "UNKNOWN_ROLE_ERROR" })
    );

    // Another app sees none of it and cannot change it.
    assert_eq!(call(&other, Method::GET, "/recipe/roles", None).await, json!({ "status": "OK", "roles": [] }));
    assert_eq!(
        call(&other, Method::GET, "/public/recipe/user/roles?userId=u1", None).await,
        json!({ "status": "OK", "roles": [] })
    );
    assert_eq!(
        call(&other, Method::POST, "/recipe/role/remove", Some(json!({ "role": "admin" }))).await,
        json!({ "status": "OK", "didRoleExist": false })
    );

    let metadata = call(
        &app,
        Method::PUT,
        "/recipe/user/metadata",
        Some(json!({ "userId": "u1", "metadataUpdate": { "theme": "dark", "plan": { "tier": 1 } } })),
    )
    .await;
    assert_eq!(metadata, json!({ "status": "OK", "metadata": { "theme": "dark", "plan": { "tier": 1 } } }));
    let metadata = call(
        &app,
        Method::PUT,
        "/recipe/user/metadata",
        Some(json!({ "userId": "u1", "metadataUpdate": { "theme": null } })),
    )
    .await;
    assert_eq!(metadata, json!({ "status": "OK", "metadata": { "plan": { "tier": 1 } } }));
    assert_eq!(
        call(&other, Method::GET, "/recipe/user/metadata?userId=u1", None).await,
        json!({ "status": "OK", "metadata": {} })
    );
    assert_eq!(
        call(&app, Method::POST, "/recipe/user/metadata/remove", Some(json!({ "userId": "u1" }))).await,
        json!({ "status": "OK" })
    );
    assert_eq!(
        call(&app, Method::GET, "/recipe/user/metadata?userId=u1", None).await,
        json!({ "status": "OK", "metadata": {} })
    );

    assert_eq!(
        call(&app, Method::POST, "/recipe/role/remove", Some(json!({ "role": "admin" }))).await,
        json!({ "status": "OK", "didRoleExist": true })
    );
    assert_eq!(
        call(&app, Method::GET, "/public/recipe/user/roles?userId=u1", None).await,
        json!({ "status": "OK", "roles": [] })
    );
    let (status, _) =
        cdi_text(&server, Some(&app.key), Method::PUT, &app.path("/recipe/role"), Some(json!({ "role": "" }))).await;
    assert_eq!(status, 400, "an empty role name is refused");
}
