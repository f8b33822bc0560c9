//! The admin console over HTTP: operators sign in through the operator organization's hosted login
//! (email code from the dev outbox), the console session is an OAuth login session with rotation and
//! theft detection, every form needs the session's form token, and viewers cannot act.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::abuse::{AuditFilter, AuditKind};
use portcullis_core::console::{ORGANIZATION_ID, OperatorRole};
use reqwest::redirect::Policy;
use reqwest::{Method, Response, StatusCode};

use crate::harness::{TestServer, read_json};
use crate::login::{code_in, location, manual_clock};

/// A browser as far as the console needs one: it keeps cookies by name and follows nothing itself.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn new(server: &TestServer) -> Self {
        let client = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
        Self { client, base: server.url.clone(), cookies: BTreeMap::new() }
    }

    fn keep(&mut self, response: &Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("cookie");
            let pair = text.split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn get(&mut self, path_or_url: &str) -> Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let response = self.client.get(url).header("cookie", self.cookie_header()).send().await.expect("request");
        self.keep(&response);
        response
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("request");
        self.keep(&response);
        response
    }

    /// Signs in through the hosted login by email code; returns the callback's response.
    pub(crate) async fn sign_in(&mut self, server: &TestServer, email: &str) -> Response {
        let started = self.get("/console/sign-in").await;
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let authorize = location(&started);
        assert!(authorize.starts_with("/oauth2/authorize?"), "{authorize}");
        let flow = self.get(&authorize).await;
        assert_eq!(flow.status(), StatusCode::SEE_OTHER, "{:?}", flow.text().await);
        let flow_path = location(&flow).split('?').next().expect("path").to_owned();
        let sent = self.post(&format!("{flow_path}/email"), &[("email", email)]).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        let (_, outbox) = server.get_json("/dev/outbox").await;
        // The manual clock gives every mail one time: pick this operator's by its recipient.
        let messages = outbox["messages"].as_array().expect("messages");
        let mail = messages.iter().find(|m| m["to"] == email).expect("a login mail");
        let body = mail["body"].as_str().expect("a body");
        let mut step = self.post(&format!("{flow_path}/code"), &[("code", &code_in(body))]).await;
        assert_eq!(step.status(), StatusCode::SEE_OTHER);
        if location(&step).ends_with("/passkeys") {
            step = self.post(&format!("{flow_path}/continue"), &[]).await;
        }
        let callback = location(&step);
        assert!(callback.contains("/console/callback?"), "{callback}");
        self.get(&callback).await
    }

    /// The form token on a console page.
    pub(crate) async fn form_token(&mut self, path: &str) -> String {
        let page = self.get(path).await.text().await.expect("html");
        let marker = "name=\"form_token\" value=\"";
        let start = page.find(marker).expect("a form token on the page") + marker.len();
        page[start..].split('"').next().expect("token").to_owned()
    }
}

async fn console_server(clock: &portcullis_core::clock::ManualClock) -> TestServer {
    TestServer::start_with_clock(|c| c.login.dev_outbox = true, Arc::new(clock.clone())).await
}

async fn tenant_count(server: &TestServer) -> usize {
    let organizations = server.app.organizations().await.expect("organizations");
    organizations.iter().filter(|o| o.id != ORGANIZATION_ID).count()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn an_admin_signs_in_by_email_code_and_acts_with_the_form_token_only() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("Admin@Example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);

    let anonymous = browser.get("/console/").await;
    assert_eq!((anonymous.status(), location(&anonymous).as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));

    let signed_in = browser.sign_in(&server, "admin@example.com").await;
    assert_eq!((signed_in.status(), location(&signed_in).as_str()), (StatusCode::SEE_OTHER, "/console/"));
    let cookies: Vec<&str> = signed_in.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    for name in ["pc_console=", "pc_console_refresh="] {
        let cookie = cookies.iter().find(|c| c.starts_with(name)).expect("a session cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/console"));
    }

    let overview = browser.get("/console/").await;
    assert_eq!(overview.status(), StatusCode::OK);
    assert_eq!(header(&overview, "cache-control"), "no-store");
    assert!(header(&overview, "content-security-policy").contains("default-src 'none'"));
    assert!(!header(&overview, "content-security-policy").contains("script-src"));
    let html = overview.text().await.expect("html");
    assert!(html.contains("admin@example.com") && html.contains("Signing keys"), "{html}");

    // A post without the form token, or with a made-up one, changes nothing.
    for form in [vec![("name", "Forged")], vec![("name", "Forged"), ("form_token", "not-the-token")]] {
        let refused = browser.post("/console/organizations", &form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let page = refused.text().await.expect("html");
        assert!(page.contains("/console/errors#noPermission"), "{page}");
    }
    assert_eq!(tenant_count(&server).await, 0);

    // The overview's last hour counts this process's logins and errors (each test shares the process,
    // so at least ours).
    let overview = browser.get("/console/").await.text().await.expect("html");
    let peak_logins = overview
        .split("Logins per minute: ")
        .nth(1)
        .and_then(|rest| rest.split(" peak ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the logins chart's summary");
    assert!(peak_logins >= 1, "the sign-in is a login: {overview}");
    assert!(overview.contains("<a href=\"/console/errors#noPermission\"><code>noPermission</code></a>"));

    let token = browser.form_token("/console/organizations").await;
    let created = browser.post("/console/organizations", &[("name", "Acme"), ("form_token", &token)]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let page = location(&created);
    let organization = server.app.organizations().await.expect("list").into_iter().find(|o| o.name == "Acme");
    let organization = organization.expect("created");
    assert_eq!(page, format!("/console/organizations/{}", organization.id));
    assert!(browser.get(&page).await.text().await.expect("html").contains("enableUserCreation"));

    let audit = server
        .app
        .audit_events(ORGANIZATION_ID, &AuditFilter::kind(AuditKind::ConsoleAction), 10)
        .await
        .expect("audit");
    let action = audit.iter().find(|e| e.detail["action"] == "organization.create").expect("the action is audited");
    assert_eq!(
        (action.subject.as_deref(), action.detail["target"].as_str()),
        (Some("admin@example.com"), Some(organization.id.as_str()))
    );

    // The console's own organization is not a tenant: not listed, and it can have no API key.
    let listed = browser.get("/console/organizations").await.text().await.expect("html");
    assert!(!listed.contains(ORGANIZATION_ID));
    let key = server.admin(Method::POST, &format!("/admin/v1/organizations/{ORGANIZATION_ID}/api-keys")).send().await;
    let (status, body) = read_json(key.expect("request")).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("entityInvalid")), "{body}");

    let token = browser.form_token("/console/").await;
    let out = browser.post("/console/sign-out", &[("form_token", &token)]).await;
    assert_eq!(out.status(), StatusCode::OK);
    assert!(browser.cookies.is_empty() || !browser.cookies.contains_key("pc_console"));
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_act_and_a_token_of_another_session_is_refused() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("admin");
    server.app.console().put_operator("viewer@example.com", OperatorRole::Viewer).await.expect("viewer");
    let mut admin = Browser::new(&server);
    admin.sign_in(&server, "admin@example.com").await;
    let admin_token = admin.form_token("/console/organizations").await;

    let mut viewer = Browser::new(&server);
    viewer.sign_in(&server, "viewer@example.com").await;
    let page = viewer.get("/console/organizations").await.text().await.expect("html");
    assert!(page.contains("viewer@example.com") && !page.contains("New organization"), "{page}");
    let viewer_token = viewer.form_token("/console/").await;
    assert_ne!(viewer_token, admin_token);

    let refused = viewer.post("/console/organizations", &[("name", "Nope"), ("form_token", &viewer_token)]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("html").contains("admin role"));
    // The admin's token does not work from the viewer's session, nor the viewer's from the admin's.
    let borrowed = viewer.post("/console/organizations", &[("name", "Nope"), ("form_token", &admin_token)]).await;
    assert_eq!(borrowed.status(), StatusCode::FORBIDDEN);
    let borrowed = admin.post("/console/organizations", &[("name", "Nope"), ("form_token", &viewer_token)]).await;
    assert_eq!(borrowed.status(), StatusCode::FORBIDDEN);
    assert_eq!(tenant_count(&server).await, 0);

    // Taking the role away ends the viewer's console at their next request.
    assert!(server.app.console().remove_operator("viewer@example.com").await.expect("remove"));
    let gone = viewer.get("/console/").await;
    assert_eq!((gone.status(), location(&gone).as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));
    server.stop().await;
}

#[tokio::test]
async fn a_person_without_a_console_role_is_refused_at_the_callback() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("former@example.com", OperatorRole::Admin).await.expect("operator");
    assert!(server.app.console().remove_operator("former@example.com").await.expect("remove"));
    let mut browser = Browser::new(&server);
    let refused = browser.sign_in(&server, "former@example.com").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("pc_console"));
    assert!(refused.text().await.expect("html").contains("not a console operator"));

    // A callback that this browser did not start is refused on its state.
    let mut stranger = Browser::new(&server);
    let forged = stranger.get("/console/callback?code=abc&state=xyz").await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await.expect("html").contains("stateInvalid"));
    server.stop().await;
}

#[tokio::test]
async fn the_console_session_rotates_and_a_replayed_refresh_token_ends_it() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let first_refresh = browser.cookies.get("pc_console_refresh").cloned().expect("refresh cookie");

    clock.advance(Duration::from_secs(3601));
    let rotated = browser.get("/console/").await;
    assert_eq!(rotated.status(), StatusCode::OK, "an expired access token is refreshed");
    let second_refresh = browser.cookies.get("pc_console_refresh").cloned().expect("refresh cookie");
    assert_ne!(first_refresh, second_refresh, "the refresh token rotated");

    // A thief replays the first refresh token after the grace window: theft detection ends the whole
    // session, and the operator's still-fresh access token stops at once.
    clock.advance(Duration::from_secs(60));
    let mut thief = Browser::new(&server);
    thief.cookies.insert("pc_console_refresh".to_owned(), first_refresh);
    let stolen = thief.get("/console/").await;
    assert_eq!((stolen.status(), location(&stolen).as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));
    let ended = browser.get("/console/").await;
    assert_eq!((ended.status(), location(&ended).as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));
    server.stop().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_behind_the_cookies() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let kept = browser.cookies.clone();
    let token = browser.form_token("/console/").await;
    let without_token = browser.post("/console/sign-out", &[]).await;
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(browser.post("/console/sign-out", &[("form_token", &token)]).await.status(), StatusCode::OK);

    // Cookies copied before signing out no longer open the console, now or after a refresh.
    let mut copy = Browser::new(&server);
    copy.cookies = kept;
    let closed = copy.get("/console/").await;
    assert_eq!((closed.status(), location(&closed).as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));
    server.stop().await;
}

/// The text of the `<code class="secret">` a page shows once.
fn shown_secret(html: &str) -> String {
    let marker = "<code class=\"secret\">";
    let start = html.find(marker).expect("a secret shown on the page") + marker.len();
    html[start..].split('<').next().expect("secret").to_owned()
}

#[tokio::test]
async fn an_admin_changes_settings_and_makes_credentials_that_are_shown_once() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let organization = server.app.create_organization("Acme").await.expect("organization");
    let path = format!("/console/organizations/{}", organization.id);
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let token = browser.form_token(&path).await;

    // A bad value is refused with its catalog code, and nothing is changed (not even the whitelist).
    let settings = format!("{path}/settings");
    let bad = [("form_token", token.as_str()), ("whitelist", "https://app.example.com"), ("maxSessionTime", "soon")];
    let refused = browser.post(&settings, &bad).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("html").contains("/console/errors#entityInvalid"));
    let unknown = [("form_token", token.as_str()), ("noSuchSetting", "1")];
    assert_eq!(browser.post(&settings, &unknown).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.app.organization(&organization.id).await.expect("org"), organization);

    let good = [
        ("form_token", token.as_str()),
        ("whitelist", "https://app.example.com\r\n\r\nhttps://*.example.org"),
        ("enableUserCreation", "false"),
        ("passkeyConnectionEnabled", "true"),
        ("defaultLoginAttemptType", "challenge"),
        ("maxSessionTime", "86400"),
        ("redirectUris", "https://app.example.com/callback"),
        ("authDomain", ""),
        ("clientType", "public"),
    ];
    let saved = browser.post(&settings, &good).await;
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(saved.text().await.expect("html").contains("Saved."));
    let changed = server.app.organization(&organization.id).await.expect("org");
    assert_eq!(changed.whitelist, ["https://app.example.com", "https://*.example.org"]);
    let s = &changed.settings;
    assert!(!s.enable_user_creation && s.passkey_connection_enabled && s.auth_domain.is_none());
    assert_eq!(
        (s.max_session_time, s.redirect_uris.as_slice()),
        (86_400, ["https://app.example.com/callback".to_owned()].as_slice())
    );
    assert_eq!(s.client_type, portcullis_core::organization::ClientType::Public);
    assert_eq!(serde_json::to_value(s.default_login_attempt_type).expect("json"), "challenge");

    // A client secret and an API key, each shown once, each working, each audited.
    let secret_page = browser.post(&format!("{path}/secret"), &[("form_token", &token)]).await;
    assert_eq!(secret_page.status(), StatusCode::OK);
    let secret = shown_secret(&secret_page.text().await.expect("html"));
    assert_eq!(secret.len(), 64);
    // The token endpoint judges the client before the code: the right secret reaches `invalid_grant`.
    for (presented, expected) in [(secret.as_str(), 400), ("0".repeat(64).as_str(), 401)] {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "none"),
            ("redirect_uri", "https://app.example.com/callback"),
        ];
        let response =
            server.request(Method::POST, "/oauth2/token").basic_auth(&organization.id, Some(presented)).form(&form);
        assert_eq!(response.send().await.expect("token").status().as_u16(), expected);
    }
    let key_page = browser.post(&format!("{path}/api-keys"), &[("form_token", &token)]).await;
    let key = shown_secret(&key_page.text().await.expect("html"));
    assert_eq!(server.app.authenticate_api_key(&key).await.expect("the shown key works"), organization.id);
    let again = browser.get(&path).await.text().await.expect("html");
    assert!(!again.contains(&secret) && !again.contains(&key), "a secret is never shown twice");

    // Revoked from its row: the next request with it is refused, and the row says so.
    let records = server.app.api_keys(&organization.id).await.expect("keys");
    let revoke = format!("{path}/api-keys/{}/revoke", records[0].id);
    let revoked = browser.post(&revoke, &[("form_token", &token)]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(revoked.text().await.expect("html").contains("revoked 20"));
    let refused = server.app.authenticate_api_key(&key).await.expect_err("a revoked key is refused");
    assert_eq!(refused.status(), 401);
    assert_eq!(browser.post(&revoke, &[("form_token", &token)]).await.status(), StatusCode::NOT_FOUND, "revoked once");

    let audit = server
        .app
        .audit_events(ORGANIZATION_ID, &AuditFilter::kind(AuditKind::ConsoleAction), 20)
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.iter().filter_map(|e| e.detail["action"].as_str()).collect();
    for action in [
        "organization.configure",
        "organization.secret.create",
        "organization.apiKey.create",
        "organization.apiKey.revoke",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    assert!(audit.iter().all(|e| e.subject.as_deref() == Some("admin@example.com")));
    server.stop().await;
}

#[tokio::test]
async fn the_audit_log_filters_and_exports_csv_that_a_spreadsheet_will_not_run() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("viewer@example.com", OperatorRole::Viewer).await.expect("operator");
    server.app.console().record_action("=HYPERLINK(\"https://evil.example\")", "organization.create", "x").await;
    clock.advance(Duration::from_secs(60));
    server.app.console().record_action("admin token", "operator.put", "viewer@example.com").await;
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "viewer@example.com").await;

    let page = browser.get("/console/audit").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("operator.put") && html.contains("console.signIn"), "{html}");

    let only = browser.get("/console/audit?kind=console.action&subject=admin+token").await.text().await.expect("html");
    assert!(only.contains("operator.put") && !only.contains("HYPERLINK") && !only.contains("console.signIn"));
    let bad = browser.get("/console/audit?since=last+week").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let csv = browser.get("/console/audit.csv?subject=%3DHYPERLINK(%22https%3A%2F%2Fevil.example%22)").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(header(&csv, "content-type").starts_with("text/csv"));
    assert!(header(&csv, "content-disposition").contains("audit-portcullis-console.csv"));
    let text = csv.text().await.expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,created,organization,kind,subject,detail");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].contains("\"'=HYPERLINK(\"\"https://evil.example\"\")\""), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn an_admin_finds_a_user_and_ends_their_sessions_one_or_all() {
    let clock = manual_clock();
    let flow = crate::login::Flow::with_clock(&clock).await;
    flow.log_in("person@example.com").await;
    // Later, so the newest mail in the outbox is this login's.
    clock.advance(Duration::from_secs(1));
    flow.log_in("other@example.com").await;
    let org = flow.org.clone();
    let app = std::sync::Arc::clone(&flow.server.app);
    let user = app.login().find_user(&org, "Person@Example.com").await.expect("search").expect("the user");
    let stranger = app.login().find_user(&org, "stranger@example.com").await.expect("search");
    assert!(stranger.is_none());
    for _ in 0..2 {
        app.sessions().create(&org, &user.id, None, serde_json::Map::new()).await.expect("session");
    }
    app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&flow.server);
    browser.sign_in(&flow.server, "admin@example.com").await;

    let users = format!("/console/organizations/{org}/users");
    let found = browser.get(&format!("{users}?q=person%40example.com")).await;
    let user_page = format!("{users}/{}", user.id);
    assert_eq!((found.status(), location(&found)), (StatusCode::SEE_OTHER, user_page.clone()));
    let by_id = browser.get(&format!("{users}?q={}", user.id)).await;
    assert_eq!(location(&by_id), user_page);
    let nobody = browser.get(&format!("{users}?q=nobody%40example.com")).await.text().await.expect("html");
    assert!(nobody.contains("No user of Acme"));
    let html = browser.get(&user_page).await.text().await.expect("html");
    assert!(html.contains("person@example.com"), "{html}");

    let other = app.login().find_user(&org, "other@example.com").await.expect("search").expect("the other user");
    let others = app.login().user_login_sessions(&org, &other.id).await.expect("sessions");
    let live = app.login().user_login_sessions(&org, &user.id).await.expect("sessions");
    assert_eq!((live.len(), others.len()), (1, 1));
    let token = browser.form_token(&user_page).await;
    // Another user's session through this user's page: missing, and nothing changes.
    let not_theirs = format!("{user_page}/login-sessions/{}/end", others[0].id);
    assert_eq!(browser.post(&not_theirs, &[("form_token", &token)]).await.status(), StatusCode::NOT_FOUND);
    let end_one = format!("{user_page}/login-sessions/{}/end", live[0].id);
    let ended = browser.post(&end_one, &[("form_token", &token)]).await;
    assert_eq!(ended.status(), StatusCode::OK);
    assert!(ended.text().await.expect("html").contains("The login session is ended."));
    assert!(app.login().user_login_sessions(&org, &user.id).await.expect("sessions").is_empty());
    assert_eq!(
        browser.post(&end_one, &[("form_token", &token)]).await.status(),
        StatusCode::NOT_FOUND,
        "ended already"
    );
    assert_eq!(app.login().user_login_sessions(&org, &other.id).await.expect("sessions").len(), 1);
    let other_page = format!("{users}/{}", other.id);
    let all = browser.post(&format!("{other_page}/login-sessions/end-all"), &[("form_token", &token)]).await;
    assert_eq!(all.status(), StatusCode::OK);
    assert!(app.login().user_login_sessions(&org, &other.id).await.expect("sessions").is_empty());

    let sessions = app.sessions().active_sessions(&org, &user.id).await.expect("sessions");
    assert_eq!(sessions.len(), 2);
    let revoke_one = format!("{user_page}/sessions/{}/revoke", sessions[0].handle);
    assert_eq!(browser.post(&revoke_one, &[("form_token", &token)]).await.status(), StatusCode::OK);
    assert_eq!(app.sessions().active_sessions(&org, &user.id).await.expect("sessions").len(), 1);
    assert_eq!(browser.post(&revoke_one, &[]).await.status(), StatusCode::FORBIDDEN, "no form token");
    let revoke_all = browser.post(&format!("{user_page}/sessions/end-all"), &[("form_token", &token)]).await;
    assert_eq!(revoke_all.status(), StatusCode::OK);
    assert!(app.sessions().active_sessions(&org, &user.id).await.expect("sessions").is_empty());
    assert_eq!(
        browser.post(&format!("{user_page}/passkeys/x/explode"), &[("form_token", &token)]).await.status(),
        StatusCode::NOT_FOUND
    );

    // The console's user pages are scoped: this user is not a user of the operator organization.
    let elsewhere = browser.get(&format!("/console/organizations/{ORGANIZATION_ID}/users/{}", user.id)).await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);

    let audit =
        app.audit_events(ORGANIZATION_ID, &AuditFilter::kind(AuditKind::ConsoleAction), 50).await.expect("audit");
    let actions: Vec<&str> = audit.iter().filter_map(|e| e.detail["action"].as_str()).collect();
    for action in ["user.loginSession.end", "user.loginSessions.end", "user.session.revoke", "user.sessions.revoke"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    flow.server.stop().await;
}

#[tokio::test]
async fn signing_in_shares_the_login_pages_ip_budget_and_signed_in_pages_do_not() {
    let clock = manual_clock();
    let server = TestServer::start_with_clock(
        |c| {
            c.login.dev_outbox = true;
            c.login.page_requests_per_ip_per_minute = 8;
        },
        Arc::new(clock.clone()),
    )
    .await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    for _ in 0..20 {
        assert_eq!(browser.get("/console/").await.status(), StatusCode::OK);
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(Browser::new(&server).get("/console/sign-in").await.status().as_u16());
    }
    assert!(statuses.contains(&429), "sign-ins are limited per IP: {statuses:?}");
    server.stop().await;
}

async fn set_role(browser: &mut Browser, token: &str, email: &str, role: &str) -> Response {
    browser.post("/console/operators", &[("form_token", token), ("email", email), ("role", role)]).await
}

#[tokio::test]
async fn an_admin_manages_operators_but_never_removes_or_demotes_themselves() {
    let clock = manual_clock();
    let server = console_server(&clock).await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let token = browser.form_token("/console/operators").await;

    let added = set_role(&mut browser, &token, "new@example.com", "viewer").await;
    assert_eq!(added.status(), StatusCode::OK);
    assert!(added.text().await.expect("html").contains("new@example.com is a console viewer."));
    let roles =
        |list: Vec<portcullis_core::console::Operator>| list.into_iter().map(|o| (o.email, o.role)).collect::<Vec<_>>();
    assert_eq!(
        roles(server.app.console().operators().await.expect("list")),
        [("admin@example.com".to_owned(), OperatorRole::Admin), ("new@example.com".to_owned(), OperatorRole::Viewer)]
    );
    for role in ["viewer", "none"] {
        let refused = set_role(&mut browser, &token, "ADMIN@example.com", role).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "an admin cannot make themselves {role}");
    }
    assert_eq!(set_role(&mut browser, &token, "new@example.com", "owner").await.status(), StatusCode::BAD_REQUEST);
    let removed = set_role(&mut browser, &token, "new@example.com", "none").await;
    assert!(removed.text().await.expect("html").contains("new@example.com is no longer an operator."));
    assert_eq!(server.app.console().operators().await.expect("list").len(), 1);
    assert_eq!(set_role(&mut browser, &token, "new@example.com", "none").await.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

/// The console on PostgreSQL: sign-in, an action, the user page and the audit filters over the shared store.
#[tokio::test]
async fn the_console_works_on_postgres() {
    let server = TestServer::start_with(crate::harness::Backend::Postgres, |c| c.login.dev_outbox = true).await;
    let operator = server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let token = browser.form_token("/console/organizations").await;
    let created = browser.post("/console/organizations", &[("name", "Acme"), ("form_token", &token)]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let own = browser.get(&format!("/console/organizations/{ORGANIZATION_ID}/users/{}", operator.user_id)).await;
    let html = own.text().await.expect("html");
    assert!(html.contains("admin@example.com") && html.contains("End every login session"), "{html}");
    let audit = browser.get("/console/audit?kind=console.action&subject=admin%40example.com").await;
    let html = audit.text().await.expect("html");
    assert!(html.contains("organization.create") && html.contains("console.signIn"), "{html}");
    server.stop().await;
}

/// A store outage is shown as one (a 5xx page) and signs nobody out: the session cookies are kept.
#[tokio::test]
async fn a_store_outage_keeps_the_operator_signed_in() {
    let server = TestServer::start_with(crate::harness::Backend::Postgres, |c| {
        c.login.dev_outbox = true;
        c.store.postgres_connect_timeout_secs = 1;
    })
    .await;
    server.app.console().put_operator("admin@example.com", OperatorRole::Admin).await.expect("operator");
    let mut browser = Browser::new(&server);
    browser.sign_in(&server, "admin@example.com").await;
    let database = server.postgres.as_ref().expect("database");
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", tokio_postgres::NoTls)
            .await
            .expect("admin connection");
    tokio::spawn(connection);
    let name = database.url.rsplit("dbname=").next().expect("name").to_owned();
    client.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.expect("drop");

    let page = browser.get("/console/").await;
    assert!(page.status().is_server_error(), "{}", page.status());
    assert!(page.headers().get_all("set-cookie").iter().next().is_none(), "the session cookies are kept");
    assert!(page.text().await.expect("html").contains("/console/errors#genericError"));
}
