//! The catalog endpoint, the generated docs, and bad input answered in the catalog shape.

use portcullis_core::ErrorCode;
use reqwest::Method;

use crate::harness::{TestServer, assert_catalog_error};

#[tokio::test]
async fn errors_endpoint_serves_the_whole_catalog() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/errors").await;
    assert_eq!(status, 200);
    let codes: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["code"].as_str()).collect();
    let expected: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, expected);
    let theft =
        body["errors"].as_array().and_then(|a| a.iter().find(|e| e["code"] == "tokenTheftDetected")).expect("entry");
    assert_eq!(theft["status"], 401);
    assert_eq!(theft["family"], "session");
    assert!(theft["explanation"].as_str().unwrap_or_default().contains("Remedy"));
}

#[test]
fn docs_errors_md_is_generated_from_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    let expected = portcullis_core::error::render_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).expect("write docs/errors.md");
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/errors.md is out of date: run `cargo run -p portcullis -- errors --format markdown > docs/errors.md` \
         (or UPDATE_DOCS=1 cargo test)"
    );
}

#[tokio::test]
async fn unknown_route_is_entity_missing() {
    let server = TestServer::start().await;
    let response = server.request(Method::GET, "/no/such/route").send().await.expect("request");
    let body = assert_catalog_error(response, 404, "entityMissing").await;
    assert_eq!(body["message"], "There is no route GET /no/such/route.");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let server = TestServer::start().await;
    let response = server.request(Method::DELETE, "/health").send().await.expect("request");
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    assert_catalog_error(response, 405, "genericError").await;
}

async fn post_organization(
    server: &TestServer,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = server.admin(Method::POST, "/admin/v1/organizations").body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn malformed_json_is_entity_invalid() {
    let server = TestServer::start().await;
    let response = post_organization(&server, Some("application/json"), r#"{"name": "#).await;
    let body = assert_catalog_error(response, 400, "entityInvalid").await;
    assert!(body["message"].as_str().unwrap_or_default().starts_with("The request body is not valid JSON"));
}

#[tokio::test]
async fn missing_field_is_named() {
    let server = TestServer::start().await;
    let response = post_organization(&server, Some("application/json"), "{}").await;
    let body = assert_catalog_error(response, 400, "missingFields").await;
    assert_eq!(body["message"], "The field `name` is required.");
}

#[tokio::test]
async fn wrong_field_type_and_unknown_fields_are_entity_invalid() {
    let server = TestServer::start().await;
    for payload in [r#"{"name": 42}"#, r#"{"name": "a", "admin": true}"#, "[]"] {
        let response = post_organization(&server, Some("application/json"), payload).await;
        assert_catalog_error(response, 400, "entityInvalid").await;
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let server = TestServer::start().await;
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let response = post_organization(&server, content_type, r#"{"name":"a"}"#).await;
        assert_catalog_error(response, 415, "entityInvalid").await;
    }
}

#[tokio::test]
async fn oversize_body_is_413_and_writes_nothing() {
    let server = TestServer::start().await;
    let name = "x".repeat(70 * 1024);
    let response = post_organization(&server, Some("application/json"), format!(r#"{{"name":"{name}"}}"#)).await;
    assert_catalog_error(response, 413, "entityInvalid").await;
    assert!(server.app.organizations().await.expect("list").is_empty());
}

#[tokio::test]
async fn invalid_value_writes_nothing() {
    let server = TestServer::start().await;
    let long = "y".repeat(201);
    let response = post_organization(&server, Some("application/json"), format!(r#"{{"name":"{long}"}}"#)).await;
    assert_catalog_error(response, 400, "entityInvalid").await;
    let response = post_organization(&server, Some("application/json"), r#"{"name":"   "}"#).await;
    assert_catalog_error(response, 400, "missingFields").await;
    assert!(server.app.organizations().await.expect("list").is_empty());
}

#[tokio::test]
async fn every_response_carries_a_fresh_request_id() {
    let server = TestServer::start().await;
    let first = server.request(Method::GET, "/health").header("x-request-id", "forged").send().await.expect("request");
    let second = server.request(Method::GET, "/health").send().await.expect("request");
    let id = |r: &reqwest::Response| r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (a, b) = (id(&first).expect("id"), id(&second).expect("id"));
    assert_ne!(a, "forged", "a client-chosen request id must not be trusted");
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
}
