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

/// `PATCH …/login` changes only what it carries; `PUT` replaces the whole configuration.
async fn login_configuration_patch_and_put(backend: Backend) {
    let server = TestServer::start_with(backend, |_| {}).await;
    let id = server.app.create_organization("Acme").await.expect("organization").id;
    let path = format!("/admin/v1/organizations/{id}/login");
    let full = json!({
        "whitelist": ["https://app.example.com"],
        "settings": { "allowLocalhost": true, "maxSessionTime": 3600, "clientType": "public" },
    });
    let (status, put) = read_json(server.admin(Method::PUT, &path).json(&full).send().await.expect("put")).await;
    assert_eq!(status, 200, "{put}");

    let patch = json!({ "settings": { "maxSessionTime": 60 } });
    let (status, patched) =
        read_json(server.admin(Method::PATCH, &path).json(&patch).send().await.expect("patch")).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["settings"]["maxSessionTime"], 60);
    assert_eq!(patched["settings"]["allowLocalhost"], true, "a setting the patch left out is kept");
    assert_eq!(patched["settings"]["clientType"], "public");
    assert_eq!(patched["whitelist"], json!(["https://app.example.com"]));

    let (status, patched) = read_json(
        server.admin(Method::PATCH, &path).json(&json!({ "whitelist": ["example.org"] })).send().await.expect("patch"),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["whitelist"], json!(["https://example.org"]));
    assert_eq!(patched["settings"]["maxSessionTime"], 60);

    // A bad patch changes nothing.
    for bad in [
        json!({ "settings": { "maxSessionTime": "soon" } }),
        json!({ "settings": { "noSuchSetting": 1 } }),
        json!({ "settings": { "authDomain": "https://x" } }),
        json!({ "settings": { "allowLocalhost": false }, "whitelist": ["not a url at all"] }),
    ] {
        let response = server.admin(Method::PATCH, &path).json(&bad).send().await.expect("patch");
        assert_catalog_error(response, 400, "entityInvalid").await;
    }
    let (_, shown) =
        read_json(server.admin(Method::GET, &format!("/admin/v1/organizations/{id}")).send().await.expect("get")).await;
    assert_eq!(shown, patched, "refused patches left the organization as it was");

    let (status, replaced) =
        read_json(server.admin(Method::PUT, &path).json(&json!({ "settings": {} })).send().await.expect("put")).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["whitelist"], json!([]), "PUT replaces: a left-out whitelist is empty");
    assert_eq!(replaced["settings"]["allowLocalhost"], false, "PUT replaces: left-out settings are the defaults");
}

#[tokio::test]
async fn login_configuration_patch_and_put_on_sqlite() {
    login_configuration_patch_and_put(Backend::Sqlite).await;
}

#[tokio::test]
async fn login_configuration_patch_and_put_on_postgres() {
    login_configuration_patch_and_put(Backend::Postgres).await;
}

/// API keys over the admin API: made (shown once), listed without secrets, revoked once, refused at once.
async fn api_keys_are_listed_and_revoked(backend: Backend) {
    let server = TestServer::start_with(backend, |_| {}).await;
    let org = server.app.create_organization("Acme").await.expect("org").id;
    let other = server.app.create_organization("Other").await.expect("org").id;
    let keys = format!("/admin/v1/organizations/{org}/api-keys");
    let (status, made) = read_json(server.admin(Method::POST, &keys).send().await.expect("create")).await;
    assert_eq!(status, 201, "{made}");
    let (secret, id) = (made["key"].as_str().expect("key"), made["apiKey"]["id"].as_str().expect("id"));
    let whoami = || server.request(Method::GET, "/api/v1/organization").bearer_auth(secret).send();
    assert_eq!(whoami().await.expect("request").status().as_u16(), 200);

    let (status, listed) = read_json(server.admin(Method::GET, &keys).send().await.expect("list")).await;
    assert_eq!((status, listed["apiKeys"][0]["id"].as_str()), (200, Some(id)), "{listed}");
    assert!(!listed.to_string().contains(secret) && listed["apiKeys"][0].get("secretHash").is_none());
    assert!(listed["apiKeys"][0]["revoked"].is_null());
    // The key itself cannot list or revoke keys: the admin API needs the admin token.
    let as_key = server.request(Method::GET, &keys).bearer_auth(secret).send().await.expect("list");
    assert_catalog_error(as_key, 401, "noPermission").await;
    let as_key = server.request(Method::DELETE, &format!("{keys}/{id}")).bearer_auth(secret).send().await;
    assert_catalog_error(as_key.expect("delete"), 401, "noPermission").await;

    let elsewhere = server.admin(Method::DELETE, &format!("/admin/v1/organizations/{other}/api-keys/{id}")).send();
    assert_catalog_error(elsewhere.await.expect("delete"), 404, "entityMissing").await;
    assert_eq!(whoami().await.expect("request").status().as_u16(), 200, "another organization cannot revoke it");
    let revoked = server.admin(Method::DELETE, &format!("{keys}/{id}")).send().await.expect("delete");
    assert_eq!(revoked.status().as_u16(), 204);
    assert_catalog_error(whoami().await.expect("request"), 401, "noPermission").await;
    let again = server.admin(Method::DELETE, &format!("{keys}/{id}")).send().await.expect("delete");
    assert_catalog_error(again, 404, "entityMissing").await;
    let (_, listed) = read_json(server.admin(Method::GET, &keys).send().await.expect("list")).await;
    assert!(listed["apiKeys"][0]["revoked"].is_string(), "{listed}");
    server.stop().await;
}

#[tokio::test]
async fn api_keys_on_sqlite() {
    api_keys_are_listed_and_revoked(Backend::Sqlite).await;
}

#[tokio::test]
async fn api_keys_on_postgres() {
    api_keys_are_listed_and_revoked(Backend::Postgres).await;
}
