//! The OpenAPI description: checked in as `docs/openapi.json`, served at `/openapi.json`, and true to the
//! routes (every described operation answers; the contract test checks the answers' shapes).

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Backend, TestServer};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

/// Like dropshot's API snapshots: a change to the API shows up as a diff of `docs/openapi.json`.
/// `PORTCULLIS_BLESS=1` rewrites the file after a deliberate change.
#[test]
fn the_checked_in_description_is_current() {
    let generated = portcullis_server::api_description_json();
    if std::env::var_os("PORTCULLIS_BLESS").is_some() {
        std::fs::write(CHECKED_IN, &generated).expect("write docs/openapi.json");
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date: run `PORTCULLIS_BLESS=1 cargo test -p portcullis-server --test \
         integration api_description` and review the diff"
    );
}

#[tokio::test]
async fn the_server_serves_the_description() {
    let server = TestServer::start_with(Backend::Sqlite, |_| {}).await;
    let response = server.request(Method::GET, "/openapi.json").send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let served: Value = response.json().await.expect("json");
    let generated: Value = serde_json::from_str(&portcullis_server::api_description_json()).expect("json");
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
}

/// Every described operation is routed: none answers "no such route" or "method not allowed".
#[tokio::test]
async fn every_described_operation_is_routed() {
    let server = TestServer::start_with(Backend::Sqlite, |_| {}).await;
    let description: Value = serde_json::from_str(&portcullis_server::api_description_json()).expect("json");
    let paths = description["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace('{', "x").replace('}', "");
        for method in item.as_object().expect("path item").keys() {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let response = server.request(method.clone(), &concrete).send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted =
                status == 405 || body["message"].as_str().is_some_and(|m| m.starts_with("There is no route"));
            assert!(!unrouted, "{method} {path} is described but not routed: {status} {body}");
        }
    }
    assert!(operations >= 40, "only {operations} operations described");
}

/// Every operation documents its catalog error answers and every schema it references exists.
#[test]
fn every_operation_documents_errors_and_every_reference_resolves() {
    let description: Value = serde_json::from_str(&portcullis_server::api_description_json()).expect("json");
    for (path, item) in description["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.contains_key("4XX") && responses.contains_key("5XX"), "{method} {path}");
        }
    }
    let text = description.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference.split('"').next().expect("name");
        let pointer = name.trim_start_matches('#');
        assert!(description.pointer(pointer).is_some(), "{name} does not resolve");
    }
}
