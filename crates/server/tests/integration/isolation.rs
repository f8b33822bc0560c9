//! Organizations are isolated from each other: a session minted through one organization's API key is
//! refused by every other organization's verifiers (the SDK and the server-to-server API), and one
//! organization's key cannot reach another's sessions by handle, user or refresh token.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use portcullis_core::session::{ClaimValidator, ROLES, claim_entry};
use portcullis_sdk::{Portcullis, SdkError, Session, require_session};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use crate::harness::{Backend, TestServer, read_json};

struct Tenants {
    server: TestServer,
    a_key: String,
    b_id: String,
    b_key: String,
}

impl Tenants {
    async fn start(backend: Backend) -> Self {
        let server = TestServer::start_with(backend, |_| {}).await;
        let a = server.app.create_organization("Tenant A").await.expect("organization A");
        let b = server.app.create_organization("Tenant B").await.expect("organization B");
        let a_key = server.app.create_api_key(&a.id).await.expect("key A").secret;
        let b_key = server.app.create_api_key(&b.id).await.expect("key B").secret;
        Self { server, a_key, b_id: b.id, b_key }
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.server.request(method, path).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read_json(request.send().await.expect("request")).await
    }
}

fn admin_claims() -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert(
        ROLES.to_owned(),
        claim_entry(json!(["admin"]), portcullis_core::clock::Timestamp::from_unix_millis(1)),
    );
    claims
}

fn protected(portcullis: &Portcullis) -> Router {
    let admin = portcullis.guard(vec![ClaimValidator::HasRole("admin".to_owned())]);
    Router::new()
        .route("/admin", get(|s: Session| async move { s.user_id().to_owned() }))
        .route_layer(from_fn_with_state(admin, require_session))
        .with_state(portcullis.clone())
}

async fn get_admin(app: &Router, access_token: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .uri("/admin")
        .header("authorization", format!("Bearer {access_token}"))
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

fn field(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_owned()
}

async fn another_organizations_session_is_refused(backend: Backend) {
    let tenants = Tenants::start(backend).await;
    let (status, forged) = tenants
        .call(
            &tenants.a_key,
            Method::POST,
            "/api/v1/sessions",
            Some(json!({ "userId": "b-admin", "accessTokenPayload": admin_claims() })),
        )
        .await;
    assert_eq!(status, 201, "{forged}");
    let access = field(&forged, "accessToken");
    let refresh = field(&forged, "refreshToken");
    let handle = forged["session"]["handle"].as_str().expect("handle").to_owned();

    // B's SDK-protected app refuses A's token, whatever claims it carries.
    let b_sdk = Portcullis::builder(&tenants.server.url, &tenants.b_key).build().await.expect("B's SDK");
    assert_eq!(b_sdk.organization_id(), tenants.b_id);
    let (status, body) = get_admin(&protected(&b_sdk), &access).await;
    assert_eq!((status, &body), (StatusCode::UNAUTHORIZED, &json!({ "message": "unauthorised" })));
    // A's own app accepts it.
    let a_sdk = Portcullis::builder(&tenants.server.url, &tenants.a_key).build().await.expect("A's SDK");
    assert_eq!(get_admin(&protected(&a_sdk), &access).await, (StatusCode::OK, json!("b-admin")));

    // B's server-to-server calls refuse A's token, handle, user and refresh token.
    let token_body = json!({ "accessToken": access });
    for path in ["/api/v1/sessions/verify", "/api/v1/sessions/regenerate"] {
        let (status, body) = tenants.call(&tenants.b_key, Method::POST, path, Some(token_body.clone())).await;
        assert_eq!((status, body["errorCode"].as_str()), (401, Some("unauthorised")), "{path}: {body}");
    }
    let (status, body) = tenants
        .call(&tenants.b_key, Method::POST, "/api/v1/sessions/refresh", Some(json!({ "refreshToken": refresh })))
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("unauthorised")), "{body}");
    let claims_path = format!("/api/v1/sessions/{handle}/claims");
    let (status, body) =
        tenants.call(&tenants.b_key, Method::PATCH, &claims_path, Some(json!({ "claims": { "x": 1 } }))).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("entityMissing")), "{body}");
    let (status, body) =
        tenants.call(&tenants.b_key, Method::DELETE, &format!("/api/v1/sessions/{handle}"), None).await;
    assert_eq!((status, &body), (200, &json!({ "revoked": false })));
    let (status, body) = tenants.call(&tenants.b_key, Method::GET, "/api/v1/users/b-admin/sessions", None).await;
    assert_eq!((status, &body), (200, &json!({ "sessions": [] })));
    let (status, body) = tenants.call(&tenants.b_key, Method::DELETE, "/api/v1/users/b-admin/sessions", None).await;
    assert_eq!((status, &body), (200, &json!({ "revoked": 0 })));

    // None of that touched A's session: it still verifies and rotates (B's refresh was no theft).
    let (status, body) = tenants.call(&tenants.a_key, Method::POST, "/api/v1/sessions/verify", Some(token_body)).await;
    assert_eq!((status, &body["sessionLive"]), (200, &json!(true)), "{body}");
    assert_eq!(body["claims"]["aud"], json!(forged["session"]["organizationId"]));
    let (status, body) = tenants
        .call(&tenants.a_key, Method::POST, "/api/v1/sessions/refresh", Some(json!({ "refreshToken": refresh })))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn another_organizations_session_is_refused_sqlite() {
    another_organizations_session_is_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn another_organizations_session_is_refused_postgres() {
    another_organizations_session_is_refused(Backend::Postgres).await;
}

/// Tokens minted before they named their organization answer "try refresh", and the refresh re-mints
/// them with the organization: sessions survive the upgrade.
#[tokio::test]
async fn tokens_without_an_organization_are_refreshed_into_one() {
    let tenants = Tenants::start(Backend::Sqlite).await;
    let (_, created) =
        tenants.call(&tenants.b_key, Method::POST, "/api/v1/sessions", Some(json!({ "userId": "u1" }))).await;
    let mut claims = tenants
        .server
        .app
        .sessions()
        .verify(&field(&created, "accessToken"), portcullis_core::session::Audience::Organization(&tenants.b_id))
        .expect("verifies");
    claims.aud = None;
    let legacy = tenants.server.app.keys().signer().expect("signer").sign_jwt(&claims).expect("sign");

    let b_sdk = Portcullis::builder(&tenants.server.url, &tenants.b_key).build().await.expect("B's SDK");
    let (status, body) = get_admin(&protected(&b_sdk), &legacy).await;
    assert_eq!((status, &body), (StatusCode::UNAUTHORIZED, &json!({ "message": "try refresh token" })));
    let (status, body) = tenants
        .call(&tenants.b_key, Method::POST, "/api/v1/sessions/verify", Some(json!({ "accessToken": legacy })))
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("tryRefreshToken")), "{body}");

    let (status, refreshed) = tenants
        .call(
            &tenants.b_key,
            Method::POST,
            "/api/v1/sessions/refresh",
            Some(json!({ "refreshToken": field(&created, "refreshToken") })),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = tenants
        .call(
            &tenants.b_key,
            Method::POST,
            "/api/v1/sessions/verify",
            Some(json!({ "accessToken": field(&refreshed, "accessToken") })),
        )
        .await;
    assert_eq!((status, &body["claims"]["aud"]), (200, &json!(tenants.b_id)), "{body}");
}

/// An app pinned to its organization does not start with another organization's key.
#[tokio::test]
async fn the_sdk_refuses_a_key_of_another_organization() {
    let tenants = Tenants::start(Backend::Sqlite).await;
    let error = Portcullis::builder(&tenants.server.url, &tenants.a_key)
        .organization(&tenants.b_id)
        .build()
        .await
        .expect_err("A's key is not B's");
    assert!(matches!(&error, SdkError::WrongOrganization { expected, .. } if *expected == tenants.b_id), "{error}");
    Portcullis::builder(&tenants.server.url, &tenants.b_key)
        .organization(&tenants.b_id)
        .build()
        .await
        .expect("B's key");
}
