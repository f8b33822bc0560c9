//! `/health`, `/.well-known/jwks.json` and `/metrics` on both backends.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, TestServer, assert_catalog_error};

async fn health_reports_the_store(backend: Backend, name: &str) {
    let server = TestServer::start_with(backend, |_| {}).await;
    let (status, body) = server.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], name);
}

#[tokio::test]
async fn health_on_sqlite() {
    health_reports_the_store(Backend::Sqlite, "sqlite").await;
}

#[tokio::test]
async fn health_on_postgres() {
    health_reports_the_store(Backend::Postgres, "postgres").await;
}

#[tokio::test]
async fn health_is_503_without_internal_detail_when_the_store_is_gone() {
    let server = TestServer::start_with(Backend::Postgres, |c| c.store.postgres_connect_timeout_secs = 1).await;
    let database = server.postgres.as_ref().expect("database");
    let admin =
        tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", tokio_postgres::NoTls).await;
    let (client, connection) = admin.expect("admin connection");
    tokio::spawn(connection);
    let name = database.url.rsplit("dbname=").next().expect("name").to_owned();
    client.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.expect("drop");

    let response = server.request(Method::GET, "/health").send().await.expect("request");
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body = assert_catalog_error(response, 503, "genericError").await;
    let text = body.to_string();
    assert!(!text.contains(&name) && !text.contains("postgres"), "internal detail leaked: {text}");
}

async fn jwks_verifies_tokens_the_server_signs(backend: Backend) {
    let server = TestServer::start_with(backend, |_| {}).await;
    let response = server.request(Method::GET, "/.well-known/jwks.json").send().await.expect("request");
    assert_eq!(
        response.headers().get("cache-control").and_then(|v| v.to_str().ok()),
        Some("max-age=30, must-revalidate")
    );
    let jwks: JwkSet = response.json().await.expect("JWKS");
    assert!(!jwks.keys.is_empty());

    let ring = server.app.keys().ring();
    let signer = ring
        .signer(portcullis_core::clock::Timestamp::from_unix_millis(i64::MAX), server.app.keys().policy().algorithm)
        .expect("signer");
    let token = signer.sign_jwt(&json!({ "sub": "user-1", "exp": 4_102_444_800_u64 })).expect("sign");
    let kid = decode_header(&token).expect("header").kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    let claims = decode::<Value>(&token, &key, &validation).expect("verifies").claims;
    assert_eq!(claims["sub"], "user-1");
}

#[tokio::test]
async fn jwks_on_sqlite() {
    jwks_verifies_tokens_the_server_signs(Backend::Sqlite).await;
}

#[tokio::test]
async fn jwks_on_postgres() {
    jwks_verifies_tokens_the_server_signs(Backend::Postgres).await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_errors_by_code() {
    let server = TestServer::start().await;
    server.request(Method::GET, "/health").send().await.expect("request");
    server.request(Method::GET, "/definitely-missing").send().await.expect("request");
    let response = server.request(Method::GET, "/metrics").send().await.expect("request");
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = response.text().await.expect("text");
    assert!(text.contains(r#"portcullis_http_requests_total{method="GET",route="/health",status="200"}"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(text.contains(r#"portcullis_errors_total{code="entityMissing"}"#), "{text}");
    assert!(text.contains("portcullis_http_request_duration_seconds_bucket"), "{text}");
}
