//! Connectors over HTTP: admin account management, the OAuth 2 install through Portcullis's callback, the
//! call API with an organization API key, recovery, script limits, and definition errors at startup.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_server::app::{App, OpenOptions};
use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

use crate::harness::{Backend, TestServer, assert_catalog_error, read_json, test_config};

#[derive(Debug, Default)]
struct Provider {
    current: Mutex<String>,
    /// Refuse every data request, fresh tokens too (the account's grant was revoked upstream).
    refuse_all: std::sync::atomic::AtomicBool,
    token_calls: AtomicUsize,
    forms: Mutex<Vec<Vec<(String, String)>>>,
}

async fn token(State(p): State<Arc<Provider>>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let n = p.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    p.forms.lock().await.push(form);
    let access = format!("at-{n}");
    *p.current.lock().await = access.clone();
    axum::Json(json!({"access_token": access, "refresh_token": format!("rt-{n}"), "expires_in": 3600})).into_response()
}

async fn data(State(p): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if p.refuse_all.load(Ordering::SeqCst) || auth != format!("Bearer {}", p.current.lock().await) {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    axum::Json(json!({"items": [1, 2]})).into_response()
}

async fn provider() -> (String, Arc<Provider>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let p = Arc::new(Provider::default());
    let app = Router::new().route("/oauth/token", post(token)).route("/data", get(data)).with_state(Arc::clone(&p));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, p)
}

fn definition(base: &str) -> String {
    format!(
        "name: acme\nbase_url: {base}\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: {base}/authorize\n  token_url: {base}/oauth/token\n  client_id: cid\n  client_secret: '{{{{ClientSecret}}}}'\n  pkce: true\nproperties:\n  - name: ClientSecret\n    sensitive: true\n    required: true\nscript: |\n  function after_error() {{\n      if (method_error != null && method_error.error != null && method_error.statusCode.toString() === '403') {{\n          throw new AuthRefreshException();\n      }}\n      return true;\n  }}\nmethods:\n  list:\n    path: /data\n  hook:\n    webhook:\n      signature: {{ scheme: shopify, secret_property: ClientSecret }}\n"
    )
}

async fn server(backend: Backend, base: &str) -> TestServer {
    server_with(backend, base, |_| {}).await
}

async fn server_with(
    backend: Backend,
    base: &str,
    adjust: impl FnOnce(&mut portcullis_server::config::Config) + Send + 'static,
) -> TestServer {
    let defs = tempfile::tempdir().expect("dir");
    std::fs::write(defs.path().join("acme.yaml"), definition(base)).expect("write");
    let dir = defs.path().to_owned();
    let server = TestServer::start_with(backend, move |c| {
        adjust(c);
        c.connectors.dir = dir;
        c.connectors.script_timeout_secs = 1;
        // The fake provider listens on loopback, which the egress policy refuses unless allow-listed.
        c.connectors.egress_allow = vec!["127.0.0.1/32".to_owned()];
    })
    .await;
    // The definitions are loaded at startup; the directory may go now.
    drop(defs);
    server
}

async fn install_and_call(backend: Backend) {
    let (base, provider) = provider().await;
    let server = server(backend, &base).await;
    let org = server.app.create_organization("Acme").await.expect("org");
    let key = server.app.create_api_key(&org.id).await.expect("key").secret;
    let accounts = format!("/admin/v1/organizations/{}/connector-accounts", org.id);

    let response = server
        .admin(Method::POST, &accounts)
        .json(&json!({"id": "crm", "connector": "acme", "properties": {"ClientSecret": "s3cret"}}))
        .send()
        .await
        .expect("create");
    let (status, body) = read_json(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["properties"]["ClientSecret"], "********", "sensitive properties are masked");
    assert_eq!(body["authenticated"], false);

    // The install: authorize URL with PKCE, then the provider redirects to Portcullis's callback.
    let (status, body) =
        read_json(server.admin(Method::POST, &format!("{accounts}/crm/authorize")).send().await.expect("authorize"))
            .await;
    assert_eq!(status, 200, "{body}");
    let url = url::Url::parse(body["authorizeUrl"].as_str().expect("url")).expect("parse");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], format!("{}/connectors/oauth2/callback", server.url));
    let callback = server
        .request(Method::GET, "/connectors/oauth2/callback")
        .query(&[("code", "the-code"), ("state", query["state"].as_str())])
        .send()
        .await
        .expect("callback");
    assert_eq!(callback.status().as_u16(), 200);
    let form = provider.forms.lock().await[0].clone();
    assert!(form.contains(&("grant_type".to_owned(), "authorization_code".to_owned())));
    assert!(form.contains(&("client_secret".to_owned(), "s3cret".to_owned())), "merge field from the property");
    assert!(form.iter().any(|(k, v)| k == "code_verifier" && v.len() >= 43));
    let forged = server
        .request(Method::GET, "/connectors/oauth2/callback")
        .query(&[("code", "x"), ("state", "forged")])
        .send()
        .await
        .expect("forged");
    assert_catalog_error(forged, 400, "entityInvalid").await;

    let calls = "/api/v1/connectors/acme/accounts/crm/calls";
    let call = |body: serde_json::Value| server.request(Method::POST, calls).bearer_auth(&key).json(&body).send();
    let (status, body) = read_json(call(json!({"method": "list"})).await.expect("call")).await;
    assert_eq!((status, &body["data"], &body["recoveries"]), (200, &json!({"items": [1, 2]}), &json!(0)), "{body}");

    // The provider revokes the token: the seed's after_error throws AuthRefreshException, one refresh, retry.
    *provider.current.lock().await = "revoked".to_owned();
    let (status, body) = read_json(call(json!({"method": "list"})).await.expect("call")).await;
    assert_eq!((status, &body["recoveries"]), (200, &json!(1)), "{body}");
    assert_eq!(provider.token_calls.load(Ordering::SeqCst), 2);

    let no_key = server.request(Method::POST, calls).json(&json!({"method": "list"})).send().await.expect("call");
    assert_eq!(no_key.status().as_u16(), 401);
    let unknown = server
        .request(Method::POST, "/api/v1/connectors/nope/accounts/crm/calls")
        .bearer_auth(&key)
        .json(&json!({"method": "list"}))
        .send()
        .await
        .expect("call");
    assert_catalog_error(unknown, 404, "entityMissing").await;
    let hostile = json!({"method": "list", "script": "function before_action() { while (true) {} }"});
    assert_catalog_error(call(hostile.clone()).await.expect("call"), 403, "callerScriptForbidden").await;
    let admin_call = server.admin(Method::POST, &format!("{accounts}/crm/calls")).json(&hostile).send();
    assert_catalog_error(admin_call.await.expect("call"), 504, "scriptTimeout").await;
    let (status, _) = read_json(call(json!({"method": "list"})).await.expect("call")).await;
    assert_eq!(status, 200, "the server keeps serving");

    // Headers HTTP cannot carry are the caller's mistake (400), or the script's (422): never "unreachable".
    for headers in
        [json!({"": "x"}), json!({"bad name": "x"}), json!({"X-Ok": "line\nbreak"}), json!({"X-Ok": "\u{7}"})]
    {
        let response = call(json!({"method": "list", "headers": headers})).await.expect("call");
        assert_catalog_error(response, 400, "entityInvalid").await;
    }
    let bad_token = json!({"authValue": "{\"AccessToken\": \"at\\nInjected: 1\"}"});
    let patched = server.admin(Method::PATCH, &format!("{accounts}/crm")).json(&bad_token).send();
    assert_catalog_error(patched.await.expect("patch"), 400, "entityInvalid").await;
    let scripted = json!({"method": "list", "script": "function before_action() { method_request_headers['bad name'] = 'x'; return true; }"});
    let admin_call = server.admin(Method::POST, &format!("{accounts}/crm/calls")).json(&scripted).send();
    assert_catalog_error(admin_call.await.expect("call"), 422, "connectorInvalid").await;

    let test = server.admin(Method::POST, &format!("{accounts}/crm/test")).send().await.expect("test");
    assert_catalog_error(test, 422, "connectorInvalid").await;
    let (status, body) = read_json(server.admin(Method::GET, &accounts).send().await.expect("list")).await;
    assert_eq!((status, body["accounts"][0]["authenticated"].as_bool()), (200, Some(true)));
    let deleted = server.admin(Method::DELETE, &format!("{accounts}/crm")).send().await.expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    server.stop().await;
}

/// The cooldown is configurable; the account's fall into needing re-authorization, and its recovery when
/// new credentials work, each reach the organization's event endpoint once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reauthorization_cooldown_is_configurable() {
    let (base, provider) = provider().await;
    let server = server_with(Backend::Sqlite, &base, |c| {
        c.connectors.reauth_cooldown_secs = 7;
        crate::events::hear_events(c);
    })
    .await;
    let org = server.app.create_organization("Acme").await.expect("org");
    let receiver = crate::events::subscribe(&server, &org.id).await;
    let key = server.app.create_api_key(&org.id).await.expect("key").secret;
    let accounts = format!("/admin/v1/organizations/{}/connector-accounts", org.id);
    let tokens = json!({"AccessToken": "at-0", "RefreshToken": "rt-0"});
    let body =
        json!({"id": "crm", "connector": "acme", "properties": {"ClientSecret": "s"}, "authValue": tokens.to_string()});
    let (status, body) =
        read_json(server.admin(Method::POST, &accounts).json(&body).send().await.expect("create")).await;
    assert_eq!(status, 201, "{body}");
    provider.refuse_all.store(true, Ordering::SeqCst);
    let calls = "/api/v1/connectors/acme/accounts/crm/calls";
    let call = || server.request(Method::POST, calls).bearer_auth(&key).json(&json!({"method": "list"})).send();
    let refused = call().await.expect("call");
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_catalog_error(refused, 409, "needsReauthentication").await;
    let fast = call().await.expect("call");
    assert_eq!(fast.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"), "failing fast");
    assert_eq!(provider.token_calls.load(Ordering::SeqCst), 1, "no refresh during the cooldown");
    let event = crate::events::the_one_event(&server, &org.id, &receiver, "connector.account.needsReauth").await;
    assert_eq!((event["data"]["accountId"].as_str(), event["data"]["connector"].as_str()), (Some("crm"), Some("acme")));
    assert_eq!(event["data"]["code"], "needsReauthentication");

    provider.refuse_all.store(false, Ordering::SeqCst);
    let fresh = json!({"authValue": json!({"AccessToken": "at-new", "RefreshToken": "rt-new"}).to_string()});
    *provider.current.lock().await = "at-new".to_owned();
    let patched = server.admin(Method::PATCH, &format!("{accounts}/crm")).json(&fresh).send().await.expect("patch");
    assert_eq!(patched.status().as_u16(), 200);
    let (status, body) = read_json(call().await.expect("call")).await;
    assert_eq!(status, 200, "{body}");
    let event = crate::events::the_one_event(&server, &org.id, &receiver, "connector.account.recovered").await;
    assert!(event["data"].get("code").is_none(), "a recovery is no failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connector_install_and_calls_on_sqlite() {
    install_and_call(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connector_install_and_calls_on_postgres() {
    install_and_call(Backend::Postgres).await;
}

#[tokio::test]
async fn a_bad_definition_stops_startup_with_file_and_line() {
    let defs = tempfile::tempdir().expect("dir");
    std::fs::write(
        defs.path().join("bad.yaml"),
        "base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    pathh: /a\n",
    )
    .expect("write");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir, None);
    config.connectors.dir = defs.path().to_owned();
    let err = App::open(config, OpenOptions { migrate: true }).await.expect_err("invalid definitions");
    let text = err.to_string();
    assert!(text.contains("bad.yaml:6:") && text.contains("pathh"), "{text}");
}

/// A provider's signed webhook: the admin listing gives the account's URL, a good signature is accepted and
/// reaches the organization's event endpoint, a bad one is refused with its catalog code, a wrong URL is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_webhooks_are_verified_and_handed_to_the_event_endpoints() {
    use base64::Engine as _;

    let (base, _provider) = provider().await;
    let server = server_with(Backend::Sqlite, &base, crate::events::hear_events).await;
    let org = server.app.create_organization("Acme").await.expect("org");
    let receiver = crate::events::subscribe(&server, &org.id).await;
    let accounts = format!("/admin/v1/organizations/{}/connector-accounts", org.id);
    let body = json!({"id": "crm", "connector": "acme", "properties": {"ClientSecret": "whk-secret"}});
    let (status, _) = read_json(server.admin(Method::POST, &accounts).json(&body).send().await.expect("create")).await;
    assert_eq!(status, 201);
    let (status, listed) =
        read_json(server.admin(Method::GET, &format!("{accounts}/crm/webhooks")).send().await.expect("list")).await;
    assert_eq!(status, 200, "{listed}");
    let url = listed["webhooks"][0]["url"].as_str().expect("url").to_owned();
    assert_eq!(listed["webhooks"][0]["method"], "hook");
    assert!(url.starts_with(&format!("{}/connectors/webhooks/{}/crm/hook/", server.url, org.id)), "{url}");

    let payload = r#"{"order":{"id":7}}"#;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"whk-secret");
    let signature = base64::engine::general_purpose::STANDARD.encode(aws_lc_rs::hmac::sign(&key, payload.as_bytes()));
    let post = |url: String, signature: String| {
        server.client.post(url).header("x-shopify-hmac-sha256", signature).body(payload).send()
    };
    assert_catalog_error(post(url.clone(), "AAAA".to_owned()).await.expect("post"), 401, "webhookSignatureInvalid")
        .await;
    let forged = format!("{}xx", url.trim_end_matches(|c| c != '/'));
    assert_catalog_error(post(forged, signature.clone()).await.expect("post"), 404, "entityMissing").await;
    let (status, accepted) = read_json(post(url, signature).await.expect("post")).await;
    assert_eq!((status, &accepted["accepted"]), (200, &json!(true)), "{accepted}");
    let event = crate::events::the_one_event(&server, &org.id, &receiver, "connector.webhook.received").await;
    assert_eq!(event["data"]["payload"], json!({"order": {"id": 7}}));
    assert_eq!(event["data"]["accountId"], "crm");
}

/// The console's connector page: install, authorize, call (the recovery shown), and the account that
/// needs re-authorization listed first.
#[tokio::test]
async fn the_console_installs_authorizes_and_calls_and_lists_accounts_needing_reauth_first() {
    use portcullis_core::console::OperatorRole;
    let (base, provider) = provider().await;
    let server = server_with(Backend::Sqlite, &base, |c| c.login.dev_outbox = true).await;
    let org = server.app.create_organization("Acme").await.expect("org");
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = crate::console::Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let page = format!("/console/organizations/{}/connectors", org.id);
    let token = browser.form_token(&page).await;

    let install = [
        ("form_token", token.as_str()),
        ("connector", "acme"),
        ("account", "crm"),
        ("properties", "ClientSecret=s3cret"),
    ];
    let installed = browser.post(&page, &install).await.text().await.expect("html");
    assert!(installed.contains("Account crm of acme installed.") && !installed.contains("s3cret"), "{installed}");
    assert!(installed.contains("ClientSecret</code>=********"));

    let authorize =
        browser.post(&format!("{page}/crm/authorize"), &[("form_token", &token)]).await.text().await.expect("html");
    let link = authorize.split("<a href=\"").find(|part| part.starts_with(&base)).expect("the provider's link");
    let link = link.split('"').next().expect("href").replace("&#38;", "&").replace("&amp;", "&");
    let state =
        url::Url::parse(&link).expect("url").query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
    let callback =
        server.request(Method::GET, "/connectors/oauth2/callback").query(&[("code", "c"), ("state", state.as_str())]);
    assert_eq!(callback.send().await.expect("callback").status().as_u16(), 200);

    let call = [("form_token", token.as_str()), ("account", "crm"), ("method", "list"), ("mergefields", "{}")];
    let called = browser.post(&format!("{page}/call"), &call).await.text().await.expect("html");
    assert!(
        called.contains("list on crm: success (upstream status 200).") && called.contains("<strong>0</strong>"),
        "{called}"
    );
    *provider.current.lock().await = "revoked".to_owned();
    let recovered = browser.post(&format!("{page}/call"), &call).await.text().await.expect("html");
    assert!(recovered.contains("<strong>1</strong>"), "the refresh is shown: {recovered}");
    assert!(
        recovered.contains("<li>The API refused the credentials (AuthRefreshException): refreshed the token, and sent the request again.</li>"),
        "and the step: {recovered}"
    );
    let bad = [("form_token", token.as_str()), ("account", "crm"), ("method", "list"), ("mergefields", "[1]")];
    assert_eq!(browser.post(&format!("{page}/call"), &bad).await.status().as_u16(), 400);

    // The grant is revoked upstream: the account needs re-authorization and is listed before the others.
    let other = [
        ("form_token", token.as_str()),
        ("connector", "acme"),
        ("account", "a-first"),
        ("properties", "ClientSecret=x"),
    ];
    browser.post(&page, &other).await;
    provider.refuse_all.store(true, Ordering::SeqCst);
    browser.post(&format!("{page}/call"), &call).await;
    let listed = browser.get(&page).await.text().await.expect("html");
    let (crm, first) =
        (listed.find("<code>crm</code>").expect("crm"), listed.find("<code>a-first</code>").expect("a-first"));
    assert!(crm < first && listed.contains("needs re-authorization"), "{listed}");

    let audit = server
        .app
        .audit_events(portcullis_core::console::ORGANIZATION_ID, &portcullis_core::abuse::AuditFilter::default(), 50)
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.iter().filter_map(|e| e.detail["action"].as_str()).collect();
    for action in ["connector.account.install", "connector.account.authorize", "connector.account.call"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    server.stop().await;
}
