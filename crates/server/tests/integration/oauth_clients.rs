//! OAuth clients as RFC 9700 and OAuth 2.1 require: a confidential client's codes and refresh tokens are
//! useless without its secret, the strict face matches redirect URIs exactly, and errors carry the codes
//! the RFCs name.

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::harness::{Backend, read_json};
use crate::login::{CALLBACK, Flow, begun, location};

const STRICT_VERIFIER: &str = "strict-verifier-strict-verifier-strict-verifier";

fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

fn strict_query(flow: &Flow) -> Vec<(String, String)> {
    vec![
        ("client_id".to_owned(), flow.org.clone()),
        ("redirect_uri".to_owned(), CALLBACK.to_owned()),
        ("response_type".to_owned(), "code".to_owned()),
        ("state".to_owned(), "s-1".to_owned()),
        ("scope".to_owned(), "openid offline_access".to_owned()),
        ("code_challenge".to_owned(), challenge(STRICT_VERIFIER)),
        ("code_challenge_method".to_owned(), "S256".to_owned()),
    ]
}

async fn authorize(flow: &Flow, query: &[(String, String)]) -> reqwest::Response {
    flow.client.get(flow.url("/oauth2/authorize")).query(query).send().await.expect("authorize")
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A login through the strict face: the authorization code.
async fn strict_code(flow: &Flow, email: &str) -> String {
    let started = authorize(flow, &strict_query(flow)).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let (flow_path, binding) = begun(&started);
    flow.post_email(&flow_path, &binding, email).await;
    let (_, outbox) = flow.server.get_json("/dev/outbox").await;
    let messages = outbox["messages"].as_array().expect("messages");
    let body = messages.iter().rev().find(|m| m["to"] == email).expect("mail")["body"].as_str().expect("body");
    let done = flow.post_code(&flow_path, &binding, &crate::login::code_in(body)).await;
    param(&location(&done), "code").expect("code")
}

/// The strict face's code exchange with `client_id` last, so `[..4]` leaves it out.
fn exchange_form<'a>(flow: &'a Flow, code: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", STRICT_VERIFIER),
        ("client_id", flow.org.as_str()),
    ]
}

async fn token(flow: &Flow, form: &[(&str, &str)], secret: Option<&str>) -> (u16, Value) {
    let mut request = flow.client.post(flow.url("/oauth2/token")).form(form);
    if let Some(secret) = secret {
        request = request.basic_auth(&flow.org, Some(secret));
    }
    read_json(request.send().await.expect("token")).await
}

async fn confidential_clients_must_authenticate(backend: Backend) {
    let flow = Flow::start(backend).await;
    let secret = flow.secret.clone();

    // Strict face, authorization_code: a stolen code without the secret is invalid_client (and not spent).
    let code = strict_code(&flow, "conf@example.com").await;
    let exchange = exchange_form(&flow, &code);
    let (status, body) = token(&flow, &exchange, None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let (status, tokens) = token(&flow, &exchange[..4], Some(&secret)).await;
    assert_eq!(status, 200, "{tokens}");

    // Strict face, refresh_token: likewise.
    let refresh = tokens["refresh_token"].as_str().expect("refresh token").to_owned();
    let grant =
        [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", flow.org.as_str())];
    let (status, body) = token(&flow, &grant, None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let (status, body) = token(&flow, &grant[..2], Some(&secret)).await;
    assert_eq!(status, 200, "the refresh token was not spent by the refused request: {body}");

    // CentralAuth face: a code exchange without the client's authentication is refused.
    let callback = flow.log_in("compat@example.com").await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let form = || {
        reqwest::multipart::Form::new()
            .text("code", code.clone())
            .text("redirect_uri", CALLBACK.to_owned())
            .text("code_verifier", crate::login::VERIFIER.to_owned())
    };
    let response = flow.client.post(flow.url("/api/v1/verify")).multipart(form()).send().await.expect("verify");
    let (status, body) = read_json(response).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["error"].as_str()),
        (401, Some("noPermission"), Some("invalid_client"))
    );
    // The code was single-use whatever the answer: nobody gets tokens for it now.
    let (status, body) = flow.verify(&code, crate::login::VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let callback = flow.log_in("compat2@example.com").await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let (status, body) = flow.verify(&code, crate::login::VERIFIER).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn confidential_clients_must_authenticate_sqlite() {
    confidential_clients_must_authenticate(Backend::Sqlite).await;
}

#[tokio::test]
async fn confidential_clients_must_authenticate_postgres() {
    confidential_clients_must_authenticate(Backend::Postgres).await;
}

/// A client configured as public needs no secret, and PKCE becomes mandatory for it.
#[tokio::test]
async fn public_clients_use_pkce_without_a_secret() {
    let flow = Flow::start(Backend::Sqlite).await;
    let settings = portcullis_core::organization::OrganizationSettings {
        client_type: portcullis_core::organization::ClientType::Public,
        require_pkce: false,
        ..crate::login::registered_settings()
    };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("public client");
    let mut without_pkce = strict_query(&flow);
    without_pkce.retain(|(k, _)| !k.starts_with("code_challenge"));
    let response = authorize(&flow, &without_pkce).await;
    assert_eq!(param(&location(&response), "error_code").as_deref(), Some("codeChallengeMissing"));

    let code = strict_code(&flow, "public@example.com").await;
    let exchange = exchange_form(&flow, &code);
    let (status, tokens) = token(&flow, &exchange, None).await;
    assert_eq!(status, 200, "{tokens}");
}

/// The strict face accepts only registered redirect URIs, compared as strings, and refuses the rest
/// before any redirect; the CentralAuth face keeps its whitelisted-origin model.
#[tokio::test]
async fn the_strict_face_matches_redirect_uris_exactly() {
    let flow = Flow::start(Backend::Sqlite).await;
    for uri in [
        "https://app.example.com/logout?next=https://evil.example/collect",
        "https://app.example.com/api/auth/callback/",
        "https://app.example.com/other",
    ] {
        let mut query = strict_query(&flow);
        query.retain(|(k, _)| k != "redirect_uri");
        query.push(("redirect_uri".to_owned(), uri.to_owned()));
        let response = authorize(&flow, &query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(response.headers().get("location").is_none(), "{uri} is not redirected to");
    }
    // Same origin, another path: CentralAuth's model admits it on its own face.
    let mut query = flow.standard_query();
    query.retain(|(k, _)| k != "redirect_uri");
    query.push(("redirect_uri".to_owned(), "https://app.example.com/other".to_owned()));
    let response = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// RFC 7636 §4.4.1, RFC 6749 §4.1.2.1 and §3.1–3.2: the error codes the RFCs name.
#[tokio::test]
async fn authorization_errors_use_the_rfc_codes() {
    let flow = Flow::start(Backend::Sqlite).await;
    let with = |name: &str, value: &str| {
        let mut query = strict_query(&flow);
        query.retain(|(k, _)| k != name);
        query.push((name.to_owned(), value.to_owned()));
        query
    };
    let response = authorize(&flow, &with("code_challenge_method", "plain")).await;
    assert_eq!(param(&location(&response), "error").as_deref(), Some("invalid_request"));
    let response = authorize(&flow, &with("response_type", "token")).await;
    assert_eq!(param(&location(&response), "error").as_deref(), Some("unsupported_response_type"));

    // Repeated parameters: a repeated state is redirected as invalid_request; a repeated redirect URI
    // leaves no callback to trust.
    let mut repeated = strict_query(&flow);
    repeated.push(("scope".to_owned(), "email".to_owned()));
    let response = authorize(&flow, &repeated).await;
    assert_eq!(param(&location(&response), "error").as_deref(), Some("invalid_request"));
    let mut repeated = strict_query(&flow);
    repeated.push(("redirect_uri".to_owned(), CALLBACK.to_owned()));
    let response = authorize(&flow, &repeated).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());

    let form = [("grant_type", "authorization_code"), ("grant_type", "refresh_token"), ("refresh_token", "x")];
    let (status, body) = token(&flow, &form, Some(&flow.secret)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = token(&flow, &[("grant_type", "password")], Some(&flow.secret)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")), "{body}");
}

async fn refresh(flow: &Flow, refresh_token: &str) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", flow.org.as_str())];
    token(flow, &form, None).await
}

async fn userinfo(flow: &Flow, access_token: &str) -> (u16, Value) {
    let response = flow.client.get(flow.url("/oauth2/userinfo")).bearer_auth(access_token).send().await;
    read_json(response.expect("userinfo")).await
}

/// A refresh token replayed after rotation (RFC 9700 §4.14.2) ends the whole grant: the rotated refresh
/// token and the access token already issued stop working at once, not only at their expiry.
#[tokio::test]
async fn a_replayed_refresh_token_ends_the_grant_and_its_access_tokens() {
    let clock = crate::login::manual_clock();
    let flow = Flow::with_clock(&clock).await;
    let settings = portcullis_core::organization::OrganizationSettings {
        client_type: portcullis_core::organization::ClientType::Public,
        ..crate::login::registered_settings()
    };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("public client");
    let code = strict_code(&flow, "replay@example.com").await;
    let (status, first) = token(&flow, &exchange_form(&flow, &code), None).await;
    assert_eq!(status, 200, "{first}");
    let old_refresh = first["refresh_token"].as_str().expect("refresh token");
    let (status, second) = refresh(&flow, old_refresh).await;
    assert_eq!(status, 200, "{second}");
    let access = second["access_token"].as_str().expect("access token");
    assert_eq!(userinfo(&flow, access).await.0, 200);

    clock.advance(std::time::Duration::from_secs(60));
    let (status, replayed) = refresh(&flow, old_refresh).await;
    assert_eq!((status, replayed["error"].as_str()), (400, Some("invalid_grant")), "{replayed}");
    let (status, body) = userinfo(&flow, access).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionInactive")), "{body}");
    let rotated = second["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&flow, rotated).await.0, 400);
}
