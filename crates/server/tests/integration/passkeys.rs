//! Passkeys over HTTP with 1Password's software authenticator (`passkey-client`) as the browser: a login
//! moves to the organization's auth domain, registration after an email code, discoverable and
//! username-first logins, every `passkeyData*` error, another organization's passkey, a cloned
//! authenticator, management, and the same answer for known and unknown emails.

use std::time::Duration;

use passkey_authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::Passkey;
use passkey_types::ctap2::{Aaguid, Ctap2Error};
use passkey_types::webauthn::{
    CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
};
use portcullis_core::login::model::{AttemptType, LinkMethod};
use portcullis_core::organization::OrganizationSettings;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::harness::{Backend, TestServer, read_json};
use crate::login::{Flow, VERIFIER, begun, code_in, location, mailed_links, manual_clock};

/// The software authenticator's person: present, and verified when asked.
struct Person;

#[async_trait::async_trait]
impl UserValidationMethod for Person {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence: true, verification })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

/// A one-credential authenticator (it also answers discoverable requests); cloning its store clones the
/// credential, counter included.
type SoftAuthenticator = Client<Option<Passkey>, Person, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

fn authenticator(store: Option<Passkey>) -> SoftAuthenticator {
    let mut authenticator = Authenticator::new(Aaguid::from(*b"portcullis-test!"), store, Person, RustCryptoBackend);
    authenticator.set_make_credentials_with_signature_counter(true);
    Client::new(authenticator).allows_insecure_localhost(true)
}

/// `navigator.credentials.create()` on the options JSON, answered as `toJSON()`.
async fn create(device: &mut SoftAuthenticator, origin: &str, options: &Value) -> String {
    let public_key: PublicKeyCredentialCreationOptions = serde_json::from_value(options.clone()).expect("options");
    let origin = Url::parse(origin).expect("origin");
    let credential =
        device.register(origin, CredentialCreationOptions { public_key }, DefaultClientData).await.expect("create");
    serde_json::to_string(&credential).expect("json")
}

/// `navigator.credentials.get()` on the options JSON, answered as `toJSON()`.
async fn get(device: &mut SoftAuthenticator, origin: &str, options: &Value) -> String {
    let public_key: PublicKeyCredentialRequestOptions = serde_json::from_value(options.clone()).expect("options");
    let origin = Url::parse(origin).expect("origin");
    let credential =
        device.authenticate(origin, CredentialRequestOptions { public_key }, DefaultClientData).await.expect("get");
    serde_json::to_string(&credential).expect("json")
}

/// The browser on the organization's auth domain, holding one flow's cookie.
struct Browser {
    origin: String,
    flow_path: String,
    binding: String,
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin, self.flow_path)
    }

    async fn post_form(&self, flow: &Flow, path: &str, form: &[(&str, &str)]) -> Response {
        let request = flow.client.post(self.url(path)).header("cookie", &self.binding);
        request.form(form).send().await.expect("post")
    }

    async fn post_json(&self, flow: &Flow, path: &str, body: &Value) -> (u16, Value) {
        let request = flow.client.post(self.url(path)).header("cookie", &self.binding);
        read_json(request.json(body).send().await.expect("post")).await
    }

    async fn page(&self, flow: &Flow, path: &str) -> (StatusCode, String) {
        let response = flow.client.get(self.url(path)).header("cookie", &self.binding).send().await.expect("get");
        (response.status(), response.text().await.expect("html"))
    }

    /// Login options: discoverable without an email, username first with one.
    async fn login_options(&self, flow: &Flow, email: Option<&str>) -> Value {
        let (status, options) = self.post_json(flow, "/passkey/options", &json!({ "email": email })).await;
        assert_eq!(status, 200, "{options}");
        options
    }

    /// Logs in with the device; the response of the answer's post.
    async fn passkey_login(&self, flow: &Flow, device: &mut SoftAuthenticator, email: Option<&str>) -> Response {
        let options = self.login_options(flow, email).await;
        let answer = get(device, &self.origin, &options).await;
        self.post_form(flow, "/passkey", &[("response", &answer)]).await
    }

    /// Verifies the email with the mailed code: the browser lands on the passkey page.
    async fn verify_email(&self, flow: &Flow, email: &str) {
        let sent = self.post_form(flow, "/email", &[("email", email)]).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        let (_, outbox) = flow.server.get_json("/dev/outbox").await;
        let code = code_in(outbox["messages"][0]["body"].as_str().expect("message"));
        let accepted = self.post_form(flow, "/code", &[("code", &code)]).await;
        assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&accepted), format!("{}/passkeys", self.flow_path), "the passkey step comes first");
    }

    /// Adds a passkey from the passkey page.
    async fn register(&self, flow: &Flow, device: &mut SoftAuthenticator, name: &str) -> Response {
        let (status, options) = self.post_json(flow, "/passkeys/options", &json!({})).await;
        assert_eq!(status, 200, "{options}");
        let answer = create(device, &self.origin, &options).await;
        self.post_form(flow, "/passkeys", &[("response", &answer), ("name", name)]).await
    }
}

/// An organization with passkeys on its own auth domain (`localhost`: browsers and the software
/// authenticator accept it over http).
async fn passkey_flow(flow: Flow) -> Flow {
    set_auth_domain(&flow, &flow.org, "localhost").await;
    flow
}

async fn set_auth_domain(flow: &Flow, org: &str, domain: &str) {
    let settings = OrganizationSettings {
        passkey_connection_enabled: true,
        email_connection_enabled: true,
        auth_domain: Some(domain.to_owned()),
        ..OrganizationSettings::default()
    };
    flow.server.app.login().configure(org, None, Some(settings)).await.expect("settings");
}

/// Starts a login for `org` on the server's address: it moves to the auth domain, where the flow begins.
async fn begin(flow: &Flow, org: &str) -> Browser {
    begin_with(flow, org, &[]).await
}

async fn begin_with(flow: &Flow, org: &str, extra: &[(&str, &str)]) -> Browser {
    let mut query = flow.standard_query();
    query.retain(|(k, _)| k != "client_id");
    query.push(("client_id".to_owned(), org.to_owned()));
    query.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let started = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
    assert_eq!(started.status(), StatusCode::FOUND, "a login moves to the organization's auth domain");
    let moved = location(&started);
    let origin = flow.server.url.replace("127.0.0.1", "localhost");
    assert!(moved.starts_with(&format!("{origin}/login?")), "{moved}");
    let begun_there = flow.client.get(&moved).send().await.expect("login on the auth domain");
    assert_eq!(begun_there.status(), StatusCode::SEE_OTHER);
    let (flow_path, binding) = begun(&begun_there);
    Browser { origin, flow_path, binding }
}

/// The callback's code after a finished login.
fn callback_code(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let callback = Url::parse(&location(response)).expect("callback");
    callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code")
}

/// The email a callback code logs in, through the token exchange and userinfo.
async fn email_of(flow: &Flow, code: &str) -> String {
    let (status, tokens) = flow.verify(code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, user) =
        flow.userinfo(tokens["access_token"].as_str().expect("access token"), "https://app.example.com").await;
    assert_eq!(status, 200, "{user}");
    user["email"].as_str().expect("email").to_owned()
}

async fn audit(flow: &Flow, org: &str, kind: &str) -> Vec<Value> {
    let path = format!("/admin/v1/organizations/{org}/audit?kind={kind}");
    let (_, body) = read_json(flow.server.admin(Method::GET, &path).send().await.expect("audit")).await;
    body["events"].as_array().expect("events").clone()
}

async fn admin_passkeys(flow: &Flow, email: &str) -> Vec<Value> {
    let path = format!("/admin/v1/organizations/{}/passkeys?email={email}", flow.org);
    let (status, body) = read_json(flow.server.admin(Method::GET, &path).send().await.expect("list")).await;
    assert_eq!(status, 200, "{body}");
    body["passkeys"].as_array().expect("passkeys").clone()
}

async fn register_then_log_in_both_ways(backend: Backend) {
    let flow = passkey_flow(Flow::start(backend).await).await;
    let mut device = authenticator(None);

    let browser = begin(&flow, &flow.org).await;
    let (_, page) = browser.page(&flow, "").await;
    assert!(page.contains("data-options=") && page.contains("username webauthn"), "autofill is offered: {page}");
    let framed = begin_with(&flow, &flow.org, &[("embed", "1")]).await;
    let (_, page) = framed.page(&flow, "").await;
    assert!(!page.contains("passkey-login"), "a framed page offers no passkey (its answer would be cross-origin)");
    let (status, body) = framed.post_json(&flow, "/passkey/options", &json!({})).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("connectionMissing")), "nor options");
    browser.verify_email(&flow, "ada@example.com").await;
    let (status, page) = browser.page(&flow, "/passkeys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You have no passkeys yet"), "{page}");
    let added = browser.register(&flow, &mut device, "Laptop").await;
    assert_eq!(location(&added), format!("{}/passkeys?done=added", browser.flow_path));
    let (_, page) = browser.page(&flow, "/passkeys?done=added").await;
    assert!(page.contains("Passkey added") && page.contains("value=\"Laptop\""), "{page}");
    let continued = browser.post_form(&flow, "/continue", &[]).await;
    assert_eq!(email_of(&flow, &callback_code(&continued)).await, "ada@example.com");
    let again = browser.post_form(&flow, "/continue", &[]).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "the browser goes on once");

    let stored = admin_passkeys(&flow, "ada@example.com").await;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0]["name"].as_str(), stored[0]["rpId"].as_str()), (Some("Laptop"), Some("localhost")));
    assert_eq!(stored[0]["aaguid"].as_str(), Some(hex_of(b"portcullis-test!").as_str()));
    assert_eq!((stored[0]["backupEligible"].as_bool(), stored[0]["backedUp"].as_bool()), (Some(true), Some(true)));
    let credential_id = stored[0]["credentialId"].as_str().expect("id").to_owned();
    assert!(!stored[0].to_string().contains("staticState"), "key material stays inside");
    assert_eq!(audit(&flow, &flow.org, "passkey.added").await.len(), 1);

    // Discoverable: no email typed.
    let browser = begin(&flow, &flow.org).await;
    let answered = browser.passkey_login(&flow, &mut device, None).await;
    assert_eq!(email_of(&flow, &callback_code(&answered)).await, "ada@example.com");

    // Username first: the options name the account's credential.
    let browser = begin(&flow, &flow.org).await;
    let options = browser.login_options(&flow, Some("Ada@Example.com")).await;
    assert_eq!(options["allowCredentials"][0]["id"].as_str(), Some(credential_id.as_str()));
    assert_eq!(options["rpId"].as_str(), Some("localhost"));
    assert_eq!(options["userVerification"].as_str(), Some("required"));
    let answer = get(&mut device, &browser.origin, &options).await;
    let answered = browser.post_form(&flow, "/passkey", &[("response", &answer)]).await;
    assert_eq!(email_of(&flow, &callback_code(&answered)).await, "ada@example.com");

    let stored = admin_passkeys(&flow, "ada@example.com").await;
    assert_eq!(stored[0]["signCount"].as_u64(), Some(2), "registration counted 0, each login one more");
    assert!(stored[0]["lastUsedAt"].is_string());
    let logins = audit(&flow, &flow.org, "login.succeeded").await;
    assert_eq!(logins.iter().filter(|e| e["detail"]["method"] == "passkey").count(), 2);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn passkeys_on_sqlite() {
    register_then_log_in_both_ways(Backend::Sqlite).await;
}

#[tokio::test]
async fn passkeys_on_postgres() {
    register_then_log_in_both_ways(Backend::Postgres).await;
}

/// A flow whose user has a passkey on `device`, and a fresh browser on the login page.
async fn registered(flow: &Flow, device: &mut SoftAuthenticator, email: &str) -> Browser {
    let browser = begin(flow, &flow.org).await;
    browser.verify_email(flow, email).await;
    assert_eq!(browser.register(flow, device, "Phone").await.status(), StatusCode::SEE_OTHER);
    callback_code(&browser.post_form(flow, "/continue", &[]).await);
    begin(flow, &flow.org).await
}

async fn error_page(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

/// Every `passkeyData*` error: a replayed answer (its ceremony is gone), an unknown challenge, an answer
/// after 5 minutes, an answer from another origin, and one that is not an answer at all. None logs in.
#[tokio::test]
async fn passkey_data_errors() {
    let clock = manual_clock();
    let flow = passkey_flow(Flow::with_clock(&clock).await).await;
    let mut device = authenticator(None);
    let browser = registered(&flow, &mut device, "grace@example.com").await;

    let options = browser.login_options(&flow, None).await;
    let answer = get(&mut device, &browser.origin, &options).await;
    callback_code(&browser.post_form(&flow, "/passkey", &[("response", &answer)]).await);
    let (status, page) = error_page(browser.post_form(&flow, "/passkey", &[("response", &answer)]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown or was used already"), "a replay finds no ceremony: {page}");

    let made_up = json!({ "challenge": "AAAAAAAAAAAAAAAAAAAAAA", "rpId": "localhost", "allowCredentials": [],
        "userVerification": "required" });
    let never_asked = get(&mut device, &browser.origin, &made_up).await;
    let (status, page) = error_page(browser.post_form(&flow, "/passkey", &[("response", &never_asked)]).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown or was used already"), "{page}");

    let options = browser.login_options(&flow, None).await;
    let answer = get(&mut device, &browser.origin, &options).await;
    clock.advance(Duration::from_secs(301));
    let (status, page) = error_page(browser.post_form(&flow, "/passkey", &[("response", &answer)]).await).await;
    assert_eq!(status, 410, "passkeyDataExpired: {page}");
    assert!(page.contains("expired"), "{page}");

    let browser = begin(&flow, &flow.org).await;
    let options = browser.login_options(&flow, None).await;
    let foreign = get(&mut device, "http://localhost:1", &options).await;
    let (status, page) = error_page(browser.post_form(&flow, "/passkey", &[("response", &foreign)]).await).await;
    assert_eq!(status, 400, "passkeyDataInvalid: {page}");
    assert!(page.contains("could not be verified"), "another origin: {page}");

    let (status, page) = error_page(browser.post_form(&flow, "/passkey", &[("response", "{\"id\":1}")]).await).await;
    assert_eq!(status, 400);
    assert!(page.contains("could not be verified"), "{page}");
    assert_eq!(audit(&flow, &flow.org, "login.succeeded").await.len(), 2, "the registration's and the first login");
}

/// Two organizations on one auth domain (one relying-party id): a passkey of one presented to the other is
/// refused with a page that says so, and audited; the other organization's username-first options never
/// name it.
#[tokio::test]
async fn another_organizations_passkey_is_refused() {
    let flow = passkey_flow(Flow::start(Backend::Sqlite).await).await;
    let other = flow.server.app.create_organization("Globex").await.expect("organization").id;
    flow.server
        .app
        .login()
        .configure(&other, Some(vec!["https://app.example.com".to_owned()]), None)
        .await
        .expect("whitelist");
    set_auth_domain(&flow, &other, "localhost").await;
    let mut device = authenticator(None);
    registered(&flow, &mut device, "ada@example.com").await;
    let mine = admin_passkeys(&flow, "ada@example.com").await[0]["credentialId"].as_str().expect("id").to_owned();

    let theirs = begin(&flow, &other).await;
    let (status, page) = error_page(theirs.passkey_login(&flow, &mut device, None).await).await;
    assert_eq!(status, 403, "passkeyWrongOrganization: {page}");
    assert!(page.contains("This passkey is for another organization"), "{page}");
    assert!(page.contains("made for another organization&#39;s login, not for Globex"), "{page}");
    assert!(page.contains(&format!("href=\"{}\"", theirs.flow_path)), "a way back to the email step: {page}");
    assert_eq!(audit(&flow, &other, "passkey.wrongOrganization").await.len(), 1);

    let options = theirs.login_options(&flow, Some("ada@example.com")).await;
    assert_ne!(options["allowCredentials"][0]["id"].as_str(), Some(mine.as_str()));
}

/// A cloned authenticator: after the original logged in, the copy presents an old counter. The login is
/// refused, audited and pushed to the organization's event endpoint; the original still works.
#[tokio::test]
async fn a_cloned_authenticator_is_refused() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.login.dev_outbox = true;
        crate::events::hear_events(c);
    })
    .await;
    let flow = passkey_flow(Flow::on(server).await).await;
    let receiver = crate::events::subscribe(&flow.server, &flow.org).await;
    let mut device = authenticator(None);
    let browser = registered(&flow, &mut device, "ada@example.com").await;
    let mut copy = authenticator(device.authenticator().store().clone());
    callback_code(&browser.passkey_login(&flow, &mut device, None).await);

    let browser = begin(&flow, &flow.org).await;
    let (status, page) = error_page(browser.passkey_login(&flow, &mut copy, None).await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("it may have been copied"), "{page}");
    let events = audit(&flow, &flow.org, "passkey.counterRegressed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["storedCount"].as_u64(), Some(1), "the copy signed with 1 again");
    let event = crate::events::the_one_event(&flow.server, &flow.org, &receiver, "passkey.counterRegressed").await;
    assert_eq!(
        (event["data"]["storedCount"].as_u64(), event["data"]["code"].as_str()),
        (Some(1), Some("passkeyDataInvalid"))
    );
    assert_eq!(event["data"]["userId"], events[0]["subject"]);

    let browser = begin(&flow, &flow.org).await;
    callback_code(&browser.passkey_login(&flow, &mut device, None).await);
}

/// Rename and remove (audited) on the passkey page; another user's passkey cannot be touched; the page and
/// registration need a verified email; an operator can revoke a passkey.
#[tokio::test]
async fn passkeys_are_managed_by_their_owner() {
    let flow = passkey_flow(Flow::start(Backend::Sqlite).await).await;
    let mut device = authenticator(None);
    let browser = begin(&flow, &flow.org).await;
    let (status, page) = browser.page(&flow, "/passkeys").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the passkey page needs a verified email: {page}");
    let (status, body) = browser.post_json(&flow, "/passkeys/options", &json!({})).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("loginAttemptMissing")));

    browser.verify_email(&flow, "ada@example.com").await;
    browser.register(&flow, &mut device, "Laptop").await;
    let mut second = authenticator(None);
    browser.register(&flow, &mut second, "").await;
    let listed = admin_passkeys(&flow, "ada@example.com").await;
    let names: Vec<_> = listed.iter().map(|p| p["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["Laptop", "Passkey 2"], "an empty name gets a default");
    let first = listed[0]["credentialId"].as_str().expect("id").to_owned();
    let renamed =
        browser.post_form(&flow, "/passkeys/rename", &[("credential", &first), ("name", " Work laptop ")]).await;
    assert_eq!(location(&renamed), format!("{}/passkeys?done=renamed", browser.flow_path));
    let removed = browser.post_form(&flow, "/passkeys/remove", &[("credential", &first)]).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    let (status, page) =
        error_page(browser.post_form(&flow, "/passkeys/remove", &[("credential", &first)]).await).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("You have no such passkey"), "{page}");
    assert_eq!(audit(&flow, &flow.org, "passkey.removed").await.len(), 1);
    let listed = admin_passkeys(&flow, "ada@example.com").await;
    assert_eq!(listed.len(), 1);
    let remaining = listed[0]["credentialId"].as_str().expect("id").to_owned();

    let eve = begin(&flow, &flow.org).await;
    eve.verify_email(&flow, "eve@example.com").await;
    let (status, _) = error_page(eve.post_form(&flow, "/passkeys/remove", &[("credential", &remaining)]).await).await;
    assert_eq!(status, 404, "not Eve's");
    let (status, _) =
        error_page(eve.post_form(&flow, "/passkeys/rename", &[("credential", &remaining), ("name", "Mine")]).await)
            .await;
    assert_eq!(status, 404, "not Eve's");

    let revoke = format!("/admin/v1/organizations/{}/passkeys/{remaining}", flow.org);
    let response = flow.server.admin(Method::DELETE, &revoke).send().await.expect("revoke");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = read_json(flow.server.admin(Method::DELETE, &revoke).send().await.expect("revoke")).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("entityMissing")));
    assert!(admin_passkeys(&flow, "ada@example.com").await.is_empty());
    let browser = begin(&flow, &flow.org).await;
    let (status, page) = error_page(browser.passkey_login(&flow, &mut second, None).await).await;
    assert_eq!(status, 400, "a revoked passkey no longer logs in: {page}");
}

/// Username-first options look the same for an unknown email, a known one without passkeys and one with
/// passkeys: one credential, the same fields; an email's decoy is stable. With passkeys off the options
/// are refused.
#[tokio::test]
async fn options_do_not_tell_whether_an_account_exists() {
    let flow = passkey_flow(Flow::start(Backend::Sqlite).await).await;
    let mut device = authenticator(None);
    let browser = registered(&flow, &mut device, "ada@example.com").await;
    let known_without = begin(&flow, &flow.org).await;
    known_without.verify_email(&flow, "bob@example.com").await;

    let shape = |options: &Value| {
        let mut keys: Vec<String> = options.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        let credentials = options["allowCredentials"].as_array().expect("list");
        let id_len = credentials[0]["id"].as_str().expect("id").len();
        (keys, credentials.len(), id_len, credentials[0]["transports"].clone())
    };
    let unknown = browser.login_options(&flow, Some("nobody@example.com")).await;
    let without = browser.login_options(&flow, Some("bob@example.com")).await;
    let with = browser.login_options(&flow, Some("ada@example.com")).await;
    assert_eq!(shape(&unknown).0, shape(&with).0);
    assert_eq!(shape(&unknown), shape(&without));
    assert_eq!(shape(&unknown).1, shape(&with).1);
    let again = browser.login_options(&flow, Some("nobody@example.com")).await;
    assert_eq!(again["allowCredentials"], unknown["allowCredentials"], "a decoy is stable");
    assert_ne!(unknown["challenge"], again["challenge"]);

    flow.server.app.login().configure(&flow.org, None, Some(OrganizationSettings::default())).await.expect("off");
    let (status, body) = browser.post_json(&flow, "/passkey/options", &json!({})).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("connectionMissing")));
}

/// `authDomain` must be a host name.
#[tokio::test]
async fn auth_domain_must_be_a_host_name() {
    let server = TestServer::start().await;
    let org = server.app.create_organization("Acme").await.expect("organization").id;
    for bad in ["https://login.acme.com", "login.acme.com:8443", "Login.Acme.com", "10.0.0.1", "-a.acme.com", ""] {
        let settings = OrganizationSettings { auth_domain: Some(bad.to_owned()), ..OrganizationSettings::default() };
        let body = json!({ "settings": settings });
        let path = format!("/admin/v1/organizations/{org}/login");
        let (status, answer) = read_json(server.admin(Method::PUT, &path).json(&body).send().await.expect("put")).await;
        assert_eq!((status, answer["errorCode"].as_str()), (400, Some("entityInvalid")), "{bad}");
    }
}

/// A login approved from the mail (a remote link) also goes through the passkey step, and from there to
/// the application, signed in.
#[tokio::test]
async fn a_mailed_approval_leads_to_the_passkey_step() {
    let flow = passkey_flow(Flow::start(Backend::Sqlite).await).await;
    let settings = OrganizationSettings {
        default_login_attempt_type: AttemptType::Link,
        default_login_method: LinkMethod::Remote,
        passkey_connection_enabled: true,
        auth_domain: Some("localhost".to_owned()),
        ..OrganizationSettings::default()
    };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("settings");
    let browser = begin(&flow, &flow.org).await;
    let sent = browser.post_form(&flow, "/email", &[("email", "ada@example.com")]).await;
    assert_eq!(location(&sent), format!("{}/wait", browser.flow_path));
    let link = mailed_links(&flow).await.into_iter().find(|l| l.starts_with("/login/link/")).expect("a link");
    assert_eq!(flow.post(&link).await.status(), StatusCode::OK, "approved from the mail");
    let request = flow.client.get(browser.url("/wait")).header("cookie", &browser.binding);
    let waited = request.send().await.expect("wait");
    assert_eq!(location(&waited), format!("{}/passkeys", browser.flow_path));
    let continued = browser.post_form(&flow, "/continue", &[]).await;
    assert_eq!(email_of(&flow, &callback_code(&continued)).await, "ada@example.com");
}
