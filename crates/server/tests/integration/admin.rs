//! The admin API: organizations and keys, and its authentication.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Backend, TestServer, assert_catalog_error, read_json};

async fn organizations_lifecycle(backend: Backend) {
    let server = TestServer::start_with(backend, |_| {}).await;
    let response = server.admin(Method::POST, "/admin/v1/organizations").json(&json!({ "name": " Acme " })).send();
    let (status, created) = read_json(response.await.expect("request")).await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "Acme");
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, shown) =
        read_json(server.admin(Method::GET, &format!("/admin/v1/organizations/{id}")).send().await.expect("request"))
            .await;
    assert_eq!((status, &shown), (200, &created));

    let (status, list) =
        read_json(server.admin(Method::GET, "/admin/v1/organizations").send().await.expect("request")).await;
    assert_eq!(status, 200);
    assert_eq!(list["organizations"], json!([created]));

    let response = server.admin(Method::GET, "/admin/v1/organizations/unknown-id").send().await.expect("request");
    assert_catalog_error(response, 404, "entityMissing").await;
}

#[tokio::test]
async fn organizations_on_sqlite() {
    organizations_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn organizations_on_postgres() {
    organizations_lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn admin_api_requires_the_admin_token() {
    let server = TestServer::start().await;
    let response = server.request(Method::GET, "/admin/v1/organizations").send().await.expect("request");
    assert_eq!(
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"portcullis\"")
    );
    assert_catalog_error(response, 401, "tokenMissing").await;

    let response =
        server.request(Method::GET, "/admin/v1/organizations").bearer_auth("wrong").send().await.expect("request");
    assert_catalog_error(response, 401, "noPermission").await;

    // Refused before the body is read: nothing is created.
    let response = server
        .request(Method::POST, "/admin/v1/organizations")
        .bearer_auth(format!("{}x", server.admin_token))
        .json(&json!({ "name": "Sneaky" }))
        .send()
        .await
        .expect("request");
    assert_catalog_error(response, 401, "noPermission").await;
    assert!(server.app.organizations().await.expect("list").is_empty());
}

#[tokio::test]
async fn rotating_keys_publishes_a_pending_key() {
    let server = TestServer::start().await;
    let (status, key) =
        read_json(server.admin(Method::POST, "/admin/v1/keys/rotate").send().await.expect("request")).await;
    assert_eq!(status, 201);
    assert_eq!(key["state"], "pending");
    let (_, keys) = read_json(server.admin(Method::GET, "/admin/v1/keys").send().await.expect("request")).await;
    // The session keys (EdDSA); the RSA ID-token family, made in the background at start-up, is apart.
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["algorithm"] == "EdDSA")
        .filter_map(|k| k["state"].as_str())
        .collect();
    assert_eq!(states, ["signing", "pending"]);
    let (_, jwks) = server.get_json("/.well-known/jwks.json").await;
    let okp: Vec<&serde_json::Value> =
        jwks["keys"].as_array().expect("keys").iter().filter(|k| k["kty"] == "OKP").collect();
    assert_eq!(okp.len(), 2, "a pending key is published before it signs");
    assert_eq!(okp[1]["kid"], key["kid"]);
}
