//! The CentralAuth-compatible login flow over HTTP, as CentralAuth's npm library drives it: `/login`,
//! the hosted page (email code read from the dev outbox), the callback, `/api/v1/verify` (multipart, no
//! `grant_type`, a UUID verifier), local decryption of the tokens with the secret, and userinfo.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use url::Url;

use portcullis_core::login::model::{AttemptType, LinkMethod};
use portcullis_core::organization::OrganizationSettings;

use crate::harness::{Backend, TestServer, read_json};

pub(crate) const CALLBACK: &str = "https://app.example.com/api/auth/callback";
pub(crate) const VERIFIER: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

pub(crate) struct Flow {
    pub(crate) server: TestServer,
    pub(crate) client: reqwest::Client,
    pub(crate) org: String,
    pub(crate) secret: String,
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

pub(crate) fn location(response: &Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned()
}

/// The flow's page path and its binding cookie, as the browser holds them after `/login`.
pub(crate) fn begun(started: &Response) -> (String, String) {
    let page = location(started);
    let cookie = started.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("binding cookie");
    let binding = cookie.split(';').next().expect("cookie").to_owned();
    (page.split('?').next().expect("path").to_owned(), binding)
}

/// The code in a mail body (6 to 10 digits).
pub(crate) fn code_in(body: &str) -> String {
    body.split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| (6..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a login code")
        .to_owned()
}

/// Default settings with the standard query's callback registered for the strict face.
pub(crate) fn registered_settings() -> portcullis_core::organization::OrganizationSettings {
    portcullis_core::organization::OrganizationSettings {
        redirect_uris: vec![CALLBACK.to_owned(), format!("{CALLBACK}?return_to=%2Fhome")],
        ..Default::default()
    }
}

impl Flow {
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::on(TestServer::start_with(backend, |c| c.login.dev_outbox = true).await).await
    }

    pub(crate) async fn with_clock(clock: &portcullis_core::clock::ManualClock) -> Self {
        Self::on(TestServer::start_with_clock(|c| c.login.dev_outbox = true, std::sync::Arc::new(clock.clone())).await)
            .await
    }

    pub(crate) async fn on(server: TestServer) -> Self {
        let org = server.app.create_organization("Acme").await.expect("organization").id;
        server
            .app
            .login()
            .configure(&org, Some(vec!["https://app.example.com".to_owned()]), Some(registered_settings()))
            .await
            .expect("whitelist");
        let (secret, staged) = server.app.login().new_secret(&org).await.expect("secret");
        assert!(!staged);
        assert_eq!(secret.len(), 64);
        let client = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
        Self { server, client, org, secret }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    pub(crate) async fn authorize(&self, query: &[(&str, &str)]) -> Response {
        self.client.get(self.url("/login")).query(query).send().await.expect("request")
    }

    pub(crate) fn standard_query(&self) -> Vec<(String, String)> {
        vec![
            ("client_id".to_owned(), self.org.clone()),
            ("redirect_uri".to_owned(), format!("{CALLBACK}?return_to=%2Fhome")),
            ("response_type".to_owned(), "code".to_owned()),
            ("state".to_owned(), "0b6f1a4e-8c1e-4f0e-9d3a-2d5c7e9f1a2b".to_owned()),
            ("code_challenge".to_owned(), challenge(VERIFIER)),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
        ]
    }

    /// Starts a flow with the standard query and submits `email`: the flow's path, its binding cookie and the
    /// email step's response.
    pub(crate) async fn submit_email(&self, email: &str) -> (String, String, Response) {
        let started = self.client.get(self.url("/login")).query(&self.standard_query()).send().await.expect("login");
        let (flow_path, binding) = begun(&started);
        let sent = self.post_email(&flow_path, &binding, email).await;
        (flow_path, binding, sent)
    }

    /// The hosted page's email step, from the browser holding `binding`.
    pub(crate) async fn post_email(&self, flow_path: &str, binding: &str, email: &str) -> Response {
        let step = self.client.post(self.url(&format!("{flow_path}/email"))).header("cookie", binding);
        step.form(&[("email", email)]).send().await.expect("email")
    }

    /// The hosted page's code step, from the browser holding `binding`.
    pub(crate) async fn post_code(&self, flow_path: &str, binding: &str, code: &str) -> Response {
        let step = self.client.post(self.url(&format!("{flow_path}/code"))).header("cookie", binding);
        step.form(&[("code", code)]).send().await.expect("code")
    }

    /// The code in the first message of the dev outbox.
    pub(crate) async fn outbox_code(&self) -> String {
        let (_, outbox) = self.server.get_json("/dev/outbox").await;
        code_in(outbox["messages"][0]["body"].as_str().expect("message"))
    }

    /// Logs in by email code; returns the callback URL with `code`.
    pub(crate) async fn log_in(&self, email: &str) -> Url {
        let query = self.standard_query();
        let started = self.client.get(self.url("/login")).query(&query).send().await.expect("login");
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let page = location(&started);
        let cookie =
            started.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("binding cookie").to_owned();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains(&format!("Path={}", page.split('?').next().unwrap_or_default()))
        );
        let binding = cookie.split(';').next().expect("cookie").to_owned();

        let shown = self.client.get(self.url(&page)).header("cookie", &binding).send().await.expect("page");
        assert_eq!(shown.status(), StatusCode::OK);
        assert_eq!(shown.headers().get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));
        assert_eq!(shown.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        assert!(shown.text().await.expect("html").contains("Log in to Acme"));

        let flow_path = page.split('?').next().expect("path").to_owned();
        let sent = self.post_email(&flow_path, &binding, email).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER, "{:?}", sent.text().await);

        let code = self.outbox_code().await;

        let wrong: String = code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
        let refused = self.post_code(&flow_path, &binding, &wrong).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let page = refused.text().await.expect("html");
        assert!(page.contains("4 tries left"), "{page}");
        assert!(page.contains(&format!("code to {}.", email.to_lowercase())), "the page still names the email: {page}");

        let accepted = self.post_code(&flow_path, &binding, &code).await;
        assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
        Url::parse(&location(&accepted)).expect("callback")
    }

    pub(crate) async fn verify(&self, code: &str, verifier: &str) -> (u16, Value) {
        // Exactly the npm library's request: Basic auth, multipart, no grant_type, the bare callback.
        let form = reqwest::multipart::Form::new()
            .text("code", code.to_owned())
            .text("redirect_uri", CALLBACK.to_owned())
            .text("code_verifier", verifier.to_owned());
        let response = self
            .client
            .post(self.url("/api/v1/verify"))
            .basic_auth(&self.org, Some(&self.secret))
            .multipart(form)
            .send()
            .await
            .expect("verify");
        assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        read_json(response).await
    }

    pub(crate) async fn userinfo(&self, token: &str, domain: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/userinfo?domain={domain}")))
            .basic_auth(&self.org, Some(&self.secret))
            .header("content-type", "text/plain")
            .header("auth-ip", "203.0.113.7, 10.0.0.1")
            .header("user-agent", "Mozilla/5.0 test")
            .body(token.to_owned())
            .send()
            .await
            .expect("userinfo");
        read_json(response).await
    }
}

async fn compat_login_end_to_end(backend: Backend) {
    let flow = Flow::start(backend).await;
    let callback = flow.log_in("Ada@Example.com").await;
    let params: std::collections::HashMap<String, String> =
        callback.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(callback.origin().ascii_serialization(), "https://app.example.com");
    assert_eq!(params.get("return_to").map(String::as_str), Some("/home"), "return_to is kept");
    assert_eq!(params.get("state").map(String::as_str), Some("0b6f1a4e-8c1e-4f0e-9d3a-2d5c7e9f1a2b"));
    assert_eq!(params.get("iss"), Some(&flow.server.url));
    let code = params.get("code").expect("code").clone();

    let (status, tokens) = flow.verify(&code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens.get("expires_in").is_none(), "no absolute limit, no expires_in");
    let access = tokens["access_token"].as_str().expect("access token");
    let id_token = tokens["id_token"].as_str().expect("id token");
    // The npm library decrypts locally with the secret (jose.jwtDecrypt, dir + A256CBC-HS512).
    let plain =
        portcullis_core::login::jwe::decrypt(flow.secret.as_bytes(), id_token).expect("decrypts with the secret");
    let claims: Value = serde_json::from_slice(&plain).expect("claims");
    assert_eq!(claims["user"]["email"], "ada@example.com");
    assert!(claims["sessionId"].is_string());

    let (status, user) = flow.userinfo(access, "https://app.example.com").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["verified"], true);
    assert_eq!(user["organizationId"], flow.org.as_str());

    let (status, body) = flow.userinfo(access, "https://evil.example").await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("domainInvalid")));

    // A replayed code is refused and ends the session it granted (RFC 6749 §4.1.2).
    let (status, body) = flow.verify(&code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str(), body["errorCode"].as_str()),
        (400, Some("invalid_grant"), Some("tokenInvalid"))
    );
    let (status, body) = flow.userinfo(access, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionInactive")));
}

#[tokio::test]
async fn compat_login_on_sqlite() {
    compat_login_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn compat_login_on_postgres() {
    compat_login_end_to_end(Backend::Postgres).await;
}

#[tokio::test]
async fn untrusted_clients_and_callbacks_get_a_page_never_a_redirect() {
    let flow = Flow::start(Backend::Sqlite).await;
    let mut query = flow.standard_query();
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("client_id", None, "organizationIdMissing"),
        ("client_id", Some("unknown-organization"), "organizationIdMissing"),
        ("redirect_uri", None, "callbackUrlMissing"),
        ("redirect_uri", Some("https://evil.example/cb"), "callbackUrlInvalid"),
        ("redirect_uri", Some("https://app.example.com/cb?return_to=%2F%2Fevil.example"), "callbackUrlInvalid"),
    ];
    for (key, value, expected) in cases {
        let mut q: Vec<(String, String)> = query.iter().filter(|(k, _)| k != key).cloned().collect();
        if let Some(value) = value {
            q.push((key.to_owned(), value.to_owned()));
        }
        let response = flow.client.get(flow.url("/login")).query(&q).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key}={value:?}");
        assert!(response.headers().get("location").is_none(), "never a redirect for {expected}");
        let html = response.text().await.expect("html");
        assert!(html.contains(expected), "{expected} missing from the page");
    }
    // After the client and the callback are trusted, errors go back to the callback with `error`.
    query.retain(|(k, _)| k != "state");
    let response = flow.client.get(flow.url("/login")).query(&query).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = Url::parse(&location(&response)).expect("url");
    let pairs: Vec<(String, String)> = target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert!(pairs.contains(&("error".to_owned(), "stateMissing".to_owned())), "{pairs:?}");
    assert!(pairs.iter().any(|(k, _)| k == "error_description") && pairs.iter().any(|(k, _)| k == "iss"));

    let mut plain = flow.standard_query();
    plain.retain(|(k, _)| k != "code_challenge_method");
    let response = flow.client.get(flow.url("/login")).query(&plain).send().await.expect("request");
    assert!(location(&response).contains("error=codeChallengeInvalid"), "an absent method means plain, refused");
}

#[tokio::test]
async fn token_endpoint_errors() {
    let flow = Flow::start(Backend::Sqlite).await;
    let callback = flow.log_in("eve@example.com").await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let (status, body) = flow.verify(&code, "wrong-verifier-0000000000000000000000").await;
    assert_eq!(
        (status, body["error"].as_str(), body["errorCode"].as_str()),
        (400, Some("invalid_grant"), Some("codeChallengeInvalid"))
    );
    // The failed attempt spent the code: a second try is a replay.
    let (status, body) = flow.verify(&code, VERIFIER).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("tokenInvalid")));

    let response = flow
        .client
        .post(flow.url("/api/v1/verify"))
        .basic_auth(&flow.org, Some("not-the-secret"))
        .form(&[("code", "x"), ("redirect_uri", CALLBACK)])
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("tokenInvalid")), "unknown code first");
    let response = flow
        .client
        .post(flow.url("/api/v1/verify"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .form(&[("redirect_uri", CALLBACK)])
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["error"].as_str()),
        (400, Some("missingFields"), Some("invalid_request"))
    );
    let response = flow
        .client
        .post(flow.url("/api/v1/verify"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .form(&[("grant_type", "password"), ("code", "x"), ("redirect_uri", CALLBACK)])
        .send()
        .await
        .expect("request");
    let (_, body) = read_json(response).await;
    assert_eq!(body["error"], "unsupported_grant_type");
    let response = flow
        .client
        .post(flow.url("/api/v1/verify"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;
    assert_eq!((status, body["errorCode"].as_str()), (415, Some("entityInvalid")));
}

#[tokio::test]
async fn page_steps_refuse_other_browsers_and_throttle_codes() {
    let flow = Flow::start(Backend::Sqlite).await;
    let started =
        flow.authorize(&flow.standard_query().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>()).await;
    let page = location(&started);
    let stolen = flow.client.get(flow.url(&page)).send().await.expect("page");
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert!(stolen.text().await.expect("html").contains("loginAttemptMissing"), "another browser cannot use the flow");

    let (flow_path, binding) = begun(&started);
    let email = |address: &'static str| flow.post_email(&flow_path, &binding, address);
    assert_eq!(email("bob@example.com").await.status(), StatusCode::SEE_OTHER);
    let second = email("bob@example.com").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=30).contains(&retry), "{retry}");
    let invalid = email("not-an-email").await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert!(invalid.text().await.expect("html").contains("valid email"));
}

/// The `oauth2` crate, as CentralAuth's Rust desktop demo uses it: a public client (client id only),
/// PKCE S256 with a 43-character verifier, a loopback callback, an urlencoded token request with
/// `grant_type`. Its HTTP goes through reqwest 0.13 over loopback.
#[tokio::test]
async fn the_oauth2_crate_logs_in_as_a_public_loopback_client() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, CsrfToken, HttpRequest, HttpResponse, PkceCodeChallenge, RedirectUrl,
        TokenResponse, TokenUrl,
    };

    let flow = Flow::start(Backend::Sqlite).await;
    let settings = portcullis_core::organization::OrganizationSettings {
        allow_localhost: true,
        client_type: portcullis_core::organization::ClientType::Public,
        ..Default::default()
    };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("allow localhost");
    let client = BasicClient::new(ClientId::new(flow.org.clone()))
        .set_auth_uri(AuthUrl::new(flow.url("/login")).expect("auth url"))
        .set_token_uri(TokenUrl::new(flow.url("/api/v1/verify")).expect("token url"))
        .set_redirect_uri(RedirectUrl::new("http://localhost:12120".to_owned()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge).url();

    // The browser part: the hosted pages.
    let started = flow.client.get(authorize_url.as_str()).send().await.expect("login");
    assert_eq!(started.status(), StatusCode::SEE_OTHER, "{:?}", started.text().await);
    let (flow_path, binding) = begun(&started);
    flow.post_email(&flow_path, &binding, "desk@example.com").await;
    let done = flow.post_code(&flow_path, &binding, &flow.outbox_code().await).await;
    let callback = Url::parse(&location(&done)).expect("callback");
    assert_eq!(callback.host_str(), Some("localhost"));
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some(csrf.secret().as_str()));

    // The token exchange, by the oauth2 crate itself.
    let http = |request: HttpRequest| async move {
        let client = reqwest::Client::builder().redirect(Policy::none()).build()?;
        let (parts, body) = request.into_parts();
        let response =
            client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
        let mut builder = oauth2::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let bytes = response.bytes().await?;
        Ok::<HttpResponse, reqwest::Error>(builder.body(bytes.to_vec()).expect("response"))
    };
    let token = client
        .exchange_code(AuthorizationCode::new(param("code").expect("code")))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the oauth2 crate accepts the token response");
    assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    let plain =
        portcullis_core::login::jwe::decrypt(flow.secret.as_bytes(), token.access_token().secret()).expect("JWE");
    assert!(serde_json::from_slice::<Value>(&plain).expect("claims")["sessionId"].is_string());
}

/// `GET /dev/outbox?to=` lists only the messages to that address, so a test (or the benchmark) reads its
/// own code among many.
#[tokio::test]
async fn the_dev_outbox_filters_by_recipient() {
    let flow = Flow::start(Backend::Sqlite).await;
    flow.log_in("ada@example.com").await;
    flow.log_in("grace@example.com").await;
    let (_, all) = flow.server.get_json("/dev/outbox").await;
    assert_eq!(all["messages"].as_array().map(Vec::len), Some(2), "{all}");
    let (_, ada) = flow.server.get_json("/dev/outbox?to=ada%40example.com").await;
    let to: Vec<_> = ada["messages"].as_array().expect("messages").iter().map(|m| m["to"].clone()).collect();
    assert_eq!(to, ["ada@example.com"], "{ada}");
}

/// Login codes delivered over real SMTP: `aiosmtpd` (PyPI) listens on a loopback port and prints each
/// message it receives; the code is read from there. Without the dev outbox, no code is stored in
/// plaintext and `/dev/outbox` does not exist.
#[tokio::test]
async fn login_codes_arrive_over_real_smtp() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
    let mut smtp = Command::new("python3")
        .args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m aiosmtpd (install with `pip install aiosmtpd==1.4.6`; scripts/test.sh does)");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = smtp.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start on port {port}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let flow = Flow::on(
        TestServer::start_with(Backend::Sqlite, |c| {
            c.smtp.host = "127.0.0.1".to_owned();
            c.smtp.port = port;
            c.smtp.security = portcullis_server::config::SmtpSecurity::None;
            c.smtp.from = "Acme Login <login@acme.example>".to_owned();
        })
        .await,
    )
    .await;
    let (flow_path, binding, sent) = flow.submit_email("smtp@example.com").await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);

    let mut received = Vec::new();
    let code = loop {
        let line = lines.recv_timeout(std::time::Duration::from_secs(10)).expect("a message reached the SMTP server");
        received.push(line.clone());
        if line.starts_with("Your login code") {
            break code_in(&line);
        }
    };
    let transcript = received.join("\n");
    assert!(transcript.contains("From: \"Acme Login\" <login@acme.example>"), "{transcript}");
    assert!(transcript.contains("To: smtp@example.com"), "{transcript}");
    assert!(transcript.contains("Subject: Your login code for Acme"), "{transcript}");

    let done = flow.post_code(&flow_path, &binding, &code).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(location(&done).starts_with(&format!("{CALLBACK}?")));
    assert!(Url::parse(&location(&done)).expect("callback").query_pairs().any(|(k, _)| k == "code"));
    let outbox = flow.client.get(flow.url("/dev/outbox")).send().await.expect("outbox");
    assert_eq!(outbox.status(), StatusCode::NOT_FOUND, "the dev outbox is off by default");
    let _ = smtp.kill();
    let _ = smtp.wait();
}

/// Without SMTP and without the dev outbox, the page says email is not configured instead of pretending.
#[tokio::test]
async fn without_delivery_the_page_says_so() {
    let flow = Flow::on(TestServer::start().await).await;
    let (_, _, sent) = flow.submit_email("nobody@example.com").await;
    assert_eq!(sent.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(sent.text().await.expect("html").contains("Email delivery is not configured"));
}

/// The strict face keeps the rules the compat face relaxes, and the two faces' codes and tokens do not mix.
#[tokio::test]
async fn strict_face_rules() {
    let flow = Flow::start(Backend::Sqlite).await;
    let (status, discovery) = flow.server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], flow.server.url.as_str());
    assert_eq!(discovery["authorization_response_iss_parameter_supported"], true);
    assert_eq!(discovery["code_challenge_methods_supported"], serde_json::json!(["S256"]));

    let token = |form: Vec<(&'static str, String)>| {
        flow.client.post(flow.url("/oauth2/token")).basic_auth(&flow.org, Some(&flow.secret)).form(&form).send()
    };
    let (status, body) = read_json(token(vec![("code", "x".to_owned())]).await.expect("request")).await;
    assert_eq!(
        (status, body["error"].as_str(), body["errorCode"].as_str()),
        (400, Some("invalid_request"), Some("missingFields")),
        "grant_type is required"
    );
    let response = flow
        .client
        .post(flow.url("/oauth2/token"))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "urlencoded only");

    // A code from the compat face is not valid at the strict token endpoint.
    let callback = flow.log_in("strict@example.com").await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", format!("{CALLBACK}?return_to=%2Fhome")),
        ("code_verifier", "x".repeat(43)),
    ];
    let (status, body) = read_json(token(form).await.expect("request")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Strict authorization: response_type is required, and errors use format B (RFC error + error_code).
    let mut query = flow.standard_query();
    query.retain(|(k, _)| k != "response_type");
    let response = flow.client.get(flow.url("/oauth2/authorize")).query(&query).send().await.expect("request");
    let target = Url::parse(&location(&response)).expect("url");
    let pairs: Vec<(String, String)> = target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert!(pairs.contains(&("error".to_owned(), "invalid_request".to_owned())), "{pairs:?}");
    assert!(pairs.contains(&("error_code".to_owned(), "entityInvalid".to_owned())), "{pairs:?}");

    // Userinfo takes only OAuth access tokens: a session token signed by the same key is refused.
    let org = flow.server.app.create_organization("sessions").await.expect("organization");
    let session = flow.server.app.sessions().create(&org.id, "u", None, serde_json::Map::new()).await.expect("session");
    let response =
        flow.client.get(flow.url("/oauth2/userinfo")).bearer_auth(&session.access_token).send().await.expect("request");
    assert_eq!(
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"portcullis\", error=\"invalid_token\"")
    );
    let (status, body) = read_json(response).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("tokenInvalid")));
    let response = flow.client.get(flow.url("/oauth2/userinfo")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

pub(crate) fn manual_clock() -> portcullis_core::clock::ManualClock {
    use portcullis_core::clock::Clock as _;
    portcullis_core::clock::ManualClock::new(portcullis_core::clock::SystemClock.now())
}

async fn tokens_for(flow: &Flow, email: &str) -> Value {
    let callback = flow.log_in(email).await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let (status, tokens) = flow.verify(&code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// `sessionExpired` (absolute and idle limits), with `expires_in` on the tokens.
#[tokio::test]
async fn session_limits_expire_sessions() {
    let clock = manual_clock();
    let flow = Flow::with_clock(&clock).await;
    let settings = portcullis_core::organization::OrganizationSettings {
        max_session_time: 600,
        max_inactivity_time: 120,
        ..Default::default()
    };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("settings");
    let tokens = tokens_for(&flow, "limits@example.com").await;
    assert_eq!(tokens["expires_in"], 600);
    assert!(tokens["expires_at"].is_string());
    let access = tokens["access_token"].as_str().expect("token").to_owned();

    clock.advance(std::time::Duration::from_secs(100));
    assert_eq!(flow.userinfo(&access, "https://app.example.com").await.0, 200, "activity resets the idle limit");
    clock.advance(std::time::Duration::from_secs(121));
    let (status, body) = flow.userinfo(&access, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionExpired")), "idle limit");

    let tokens = tokens_for(&flow, "limits2@example.com").await;
    let access = tokens["access_token"].as_str().expect("token").to_owned();
    for _ in 0..6 {
        clock.advance(std::time::Duration::from_secs(100));
        let _ = flow.userinfo(&access, "https://app.example.com").await;
    }
    let (status, body) = flow.userinfo(&access, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionExpired")), "absolute limit despite activity");
}

/// `sessionNotVerified`: the session was bound to one whitelisted origin by the code exchange, not another.
#[tokio::test]
async fn a_session_is_verified_per_domain() {
    let flow = Flow::start(Backend::Sqlite).await;
    flow.server
        .app
        .login()
        .configure(
            &flow.org,
            Some(vec!["https://app.example.com".to_owned(), "https://other.example.com".to_owned()]),
            None,
        )
        .await
        .expect("whitelist");
    let tokens = tokens_for(&flow, "domains@example.com").await;
    let access = tokens["access_token"].as_str().expect("token");
    assert_eq!(flow.userinfo(access, "https://app.example.com").await.0, 200);
    let (status, body) = flow.userinfo(access, "https://other.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionNotVerified")));
    let (status, body) = flow.userinfo(access, "not a domain").await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("domainInvalid")));
}

/// `sessionInvalid`: with hijack protection, a userinfo from another network ends the session.
#[tokio::test]
async fn hijack_protection_ends_the_session() {
    let flow = Flow::start(Backend::Sqlite).await;
    let settings =
        portcullis_core::organization::OrganizationSettings { hijack_protection: true, ..Default::default() };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("settings");
    let tokens = tokens_for(&flow, "hijack@example.com").await;
    let access = tokens["access_token"].as_str().expect("token");
    assert_eq!(flow.userinfo(access, "https://app.example.com").await.0, 200, "first use records the bindings");
    let moved = flow
        .client
        .post(flow.url("/api/v1/userinfo?domain=https://app.example.com"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .header("auth-ip", "198.51.100.20")
        .header("user-agent", "Mozilla/5.0 test")
        .body(access.to_owned())
        .send()
        .await
        .expect("userinfo");
    let (status, body) = read_json(moved).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionInvalid")));
    let (status, body) = flow.userinfo(access, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionInactive")), "the session was ended");
}

/// RFC 9700 (OAuth 2.0 Security Best Current Practice), the MUSTs that apply to an authorization server,
/// one assertion block per section.
#[tokio::test]
async fn rfc_9700_authorization_server_musts() {
    let flow = Flow::start(Backend::Sqlite).await;

    // §4.11 No open redirectors: errors about the client or the callback never redirect; `return_to`
    // cannot point elsewhere.
    let mut evil = flow.standard_query();
    evil.retain(|(k, _)| k != "redirect_uri");
    evil.push(("redirect_uri".to_owned(), "https://evil.example/cb".to_owned()));
    let response = flow.client.get(flow.url("/login")).query(&evil).send().await.expect("request");
    assert!(response.headers().get("location").is_none());
    let mut escape = flow.standard_query();
    escape.retain(|(k, _)| k != "redirect_uri");
    escape.push(("redirect_uri".to_owned(), format!("{CALLBACK}?return_to=https%3A%2F%2Fevil.example%2F")));
    let response = flow.client.get(flow.url("/login")).query(&escape).send().await.expect("request");
    assert!(response.headers().get("location").is_none(), "return_to to another origin is refused");

    // §2.1.2 No implicit grant: only response_type=code.
    let mut implicit = flow.standard_query();
    implicit.retain(|(k, _)| k != "response_type");
    implicit.push(("response_type".to_owned(), "token".to_owned()));
    let response = flow.client.get(flow.url("/oauth2/authorize")).query(&implicit).send().await.expect("request");
    assert!(location(&response).contains("error=unsupported_response_type"), "no tokens in the front channel");

    // §2.1.1 PKCE: required and S256 only (plain refused) — and §4.8 no downgrade (tested in core).
    let mut plain = flow.standard_query();
    plain.retain(|(k, _)| k != "code_challenge_method");
    plain.push(("code_challenge_method".to_owned(), "plain".to_owned()));
    let response = flow.client.get(flow.url("/login")).query(&plain).send().await.expect("request");
    assert!(location(&response).contains("error=codeChallengeInvalid"));
    let mut none = flow.standard_query();
    none.retain(|(k, _)| !k.starts_with("code_challenge"));
    let response = flow.client.get(flow.url("/login")).query(&none).send().await.expect("request");
    assert!(location(&response).contains("error=codeChallengeMissing"));

    // §4.7 CSRF and §4.4 mix-up (RFC 9207): `state` echoed exactly, `iss` on every authorization response.
    let callback = flow.log_in("sec@example.com").await;
    let pairs: std::collections::HashMap<String, String> =
        callback.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(pairs.get("state").map(String::as_str), Some("0b6f1a4e-8c1e-4f0e-9d3a-2d5c7e9f1a2b"));
    assert_eq!(pairs.get("iss"), Some(&flow.server.url));

    // RFC 6749 §4.1.2 / §10.5: single-use codes; a replay revokes what the code issued (asserted in
    // compat_login_end_to_end), and codes are bound to their client.
    let other = flow.server.app.create_organization("Other").await.expect("organization").id;
    let (other_secret, _) = flow.server.app.login().new_secret(&other).await.expect("secret");
    let form = reqwest::multipart::Form::new()
        .text("code", pairs.get("code").cloned().expect("code"))
        .text("redirect_uri", CALLBACK.to_owned())
        .text("code_verifier", VERIFIER.to_owned());
    let stolen = flow
        .client
        .post(flow.url("/api/v1/verify"))
        .basic_auth(&other, Some(&other_secret))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(stolen).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "another client cannot redeem the code");

    // RFC 6749 §5.1: token responses are not cached.
    let response = flow
        .client
        .post(flow.url("/oauth2/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));

    // §4.16 Clickjacking: the hosted pages cannot be framed.
    let started = flow.client.get(flow.url("/login")).query(&flow.standard_query()).send().await.expect("login");
    let binding = started
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_owned();
    let page = flow.client.get(flow.url(&location(&started))).header("cookie", binding).send().await.expect("page");
    assert_eq!(page.headers().get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));
    assert!(
        page.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("frame-ancestors 'none'"))
    );

    // §2.3 / RFC 6750 §2.3: access tokens are not accepted in query strings.
    let response = flow.client.get(flow.url("/oauth2/userinfo?access_token=anything")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// `POST /api/v1/authenticate_direct`: a mailed link whose GET (as a mail scanner would do) logs nobody in;
/// the click does. Its code has no PKCE challenge: the token exchange ignores the verifier (the npm library
/// posts "undefined") and requires the client secret.
#[tokio::test]
async fn direct_authentication_by_mailed_link() {
    let flow = Flow::start(Backend::Sqlite).await;
    let direct = |body: serde_json::Value, secret: &str| {
        flow.client.post(flow.url("/api/v1/authenticate_direct")).basic_auth(&flow.org, Some(secret)).json(&body).send()
    };
    let body = serde_json::json!({ "email": "link@example.com", "redirect_uri": CALLBACK, "state": "direct-state", "translations": {} });
    let (status, started) = read_json(direct(body.clone(), &flow.secret).await.expect("request")).await;
    assert_eq!(status, 200, "{started}");
    assert!(started["loginAttemptId"].is_string());
    let (status, throttled) = read_json(direct(body.clone(), &flow.secret).await.expect("request")).await;
    assert_eq!(status, 200);
    assert!(throttled["allowedDate"].is_string() && throttled.get("loginAttemptId").is_none(), "{throttled}");
    let (status, refused) = read_json(direct(body, "wrong").await.expect("request")).await;
    assert_eq!((status, refused["errorCode"].as_str()), (401, Some("noPermission")));
    let (status, refused) = read_json(
        direct(
            serde_json::json!({ "email": "x@example.com", "redirect_uri": "https://evil.example/cb", "state": "s" }),
            &flow.secret,
        )
        .await
        .expect("request"),
    )
    .await;
    assert_eq!((status, refused["errorCode"].as_str()), (400, Some("callbackUrlInvalid")));

    let (_, outbox) = flow.server.get_json("/dev/outbox").await;
    let mail = outbox["messages"][0]["body"].as_str().expect("message");
    let link = mail.split_whitespace().find(|w| w.starts_with("http")).expect("link").to_owned();
    let path = link.trim_start_matches(flow.server.url.as_str()).to_owned();

    for _ in 0..2 {
        let opened = flow.client.get(flow.url(&path)).send().await.expect("open");
        assert_eq!(opened.status(), StatusCode::OK, "opening the link does not use it");
        assert!(opened.text().await.expect("html").contains("Log me in"));
    }
    let forged = format!("{path}x");
    assert_eq!(flow.client.get(flow.url(&forged)).send().await.expect("open").status(), StatusCode::BAD_REQUEST);

    let clicked = flow.client.post(flow.url(&path)).send().await.expect("click");
    assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
    let callback = Url::parse(&location(&clicked)).expect("callback");
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some("direct-state"));
    assert_eq!(
        flow.client.post(flow.url(&path)).send().await.expect("again").status(),
        StatusCode::BAD_REQUEST,
        "single use"
    );

    let (status, tokens) = flow.verify(&param("code").expect("code"), "undefined").await;
    assert_eq!(status, 200, "{tokens}");
    let plain =
        portcullis_core::login::jwe::decrypt(flow.secret.as_bytes(), tokens["id_token"].as_str().expect("id token"))
            .expect("JWE");
    assert_eq!(serde_json::from_slice::<Value>(&plain).expect("claims")["user"]["email"], "link@example.com");
}

/// `embed=1` lets only the whitelisted origins frame the pages; `translations` replaces the page texts,
/// escaped like any text.
#[tokio::test]
async fn embedded_and_translated_pages() {
    use base64::engine::general_purpose::STANDARD;
    let flow = Flow::start(Backend::Sqlite).await;
    let translations =
        STANDARD.encode(r#"{"loginTitle":"Inloggen bij {organization}","sendCodeButton":"<script>alert(1)</script>"}"#);
    let mut query = flow.standard_query();
    query.push(("embed".to_owned(), "1".to_owned()));
    query.push(("translations".to_owned(), translations));
    let started = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
    let (flow_path, binding) = begun(&started);
    let page = flow.client.get(flow.url(&flow_path)).header("cookie", &binding).send().await.expect("page");
    assert!(page.headers().get("x-frame-options").is_none());
    let policy = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).expect("csp").to_owned();
    assert!(policy.contains("frame-ancestors https://app.example.com;"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(html.contains("<h1>Inloggen bij Acme</h1>"), "{html}");
    assert!(html.contains("alert(1)") && !html.contains("<script>"), "texts are escaped: {html}");
}

/// Trap 12: CentralAuth's PHP library sends no PKCE (plus `approval_prompt=auto` and an empty `scope`) and
/// authenticates with the secret in the body. An organization that turns `requirePkce` off can use it; the
/// code then needs the secret, and a verifier sent anyway is a downgrade and refused.
#[tokio::test]
async fn php_library_without_pkce_when_the_organization_allows_it() {
    let flow = Flow::start(Backend::Sqlite).await;
    let mut query: Vec<(String, String)> =
        flow.standard_query().into_iter().filter(|(k, _)| !k.starts_with("code_challenge")).collect();
    query.push(("approval_prompt".to_owned(), "auto".to_owned()));
    query.push(("scope".to_owned(), String::new()));
    let refused = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
    assert!(location(&refused).contains("error=codeChallengeMissing"), "PKCE is required by default");

    let settings = portcullis_core::organization::OrganizationSettings { require_pkce: false, ..Default::default() };
    flow.server.app.login().configure(&flow.org, None, Some(settings)).await.expect("settings");
    let php_code = |email: &'static str| {
        let query = query.clone();
        let flow = &flow;
        async move {
            let started = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
            let (flow_path, binding) = begun(&started);
            flow.post_email(&flow_path, &binding, email).await;
            let done = flow.post_code(&flow_path, &binding, &flow.outbox_code().await).await;
            let callback = Url::parse(&location(&done)).expect("callback");
            callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code")
        }
    };
    let exchange = |code: String, extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", format!("{CALLBACK}?return_to=%2Fhome")),
            ("client_id", flow.org.clone()),
            ("client_secret", flow.secret.clone()),
        ];
        form.extend(extra);
        flow.client.post(flow.url("/api/v1/verify")).form(&form).send()
    };
    let (status, tokens) = read_json(exchange(php_code("php@example.com").await, vec![]).await.expect("request")).await;
    assert_eq!((status, tokens["token_type"].as_str()), (200, Some("Bearer")), "{tokens}");
    let (status, body) = read_json(
        exchange(php_code("php2@example.com").await, vec![("code_verifier", VERIFIER.to_owned())])
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("codeChallengeInvalid")),
        "a verifier without a challenge is a downgrade"
    );
}

/// The links of the newest mail in the dev outbox, as paths on the server.
pub(crate) async fn mailed_links(flow: &Flow) -> Vec<String> {
    let (_, outbox) = flow.server.get_json("/dev/outbox").await;
    let mail = outbox["messages"][0]["body"].as_str().expect("message").to_owned();
    mail.split_whitespace()
        .filter(|w| w.starts_with("http"))
        .map(|w| w.trim_start_matches(flow.server.url.as_str()).to_owned())
        .collect()
}

impl Flow {
    pub(crate) async fn use_attempts(&self, kind: AttemptType, method: LinkMethod) {
        let settings = OrganizationSettings {
            default_login_attempt_type: kind,
            default_login_method: method,
            ..Default::default()
        };
        self.server.app.login().configure(&self.org, None, Some(settings)).await.expect("settings");
    }

    pub(crate) async fn get(&self, path: &str, binding: Option<&str>) -> Response {
        let request = self.client.get(self.url(path));
        let request = if let Some(binding) = binding { request.header("cookie", binding) } else { request };
        request.send().await.expect("get")
    }

    pub(crate) async fn post(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.expect("post")
    }

    /// Exchanges the code of a callback and returns the compat access token.
    async fn tokens_from(&self, callback: &str) -> String {
        let callback = Url::parse(callback).expect("callback");
        let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
        let (status, tokens) = self.verify(&code, VERIFIER).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().expect("access token").to_owned()
    }
}

/// `challenge`: the page shows one number and the mail three; opening the right one changes nothing, its
/// click approves the waiting browser, which then logs in once. Undo from the mail ends that session.
async fn challenge_approves_the_starting_browser(backend: Backend) {
    let flow = Flow::start(backend).await;
    flow.use_attempts(AttemptType::Challenge, LinkMethod::Local).await;
    let (flow_path, binding, sent) = flow.submit_email("ada@example.com").await;
    assert_eq!((sent.status(), location(&sent)), (StatusCode::SEE_OTHER, format!("{flow_path}/wait")));
    let wait_path = format!("{flow_path}/wait");
    let waiting = flow.get(&wait_path, Some(&binding)).await;
    assert_eq!(waiting.status(), StatusCode::OK);
    let html = waiting.text().await.expect("html");
    assert!(html.contains(r#"<meta http-equiv="refresh" content="2">"#), "{html}");
    let number: String = html
        .split(r#"class="challenge""#)
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .map(|text| text.chars().take_while(char::is_ascii_digit).collect())
        .expect("the number on the page");
    assert_eq!(number.len(), 2, "{html}");
    assert!(flow.get(&wait_path, None).await.status().is_client_error(), "another browser cannot wait for it");

    let links = mailed_links(&flow).await;
    let picks: Vec<&String> = links.iter().filter(|l| l.contains("?pick=")).collect();
    assert_eq!(picks.len(), 3, "{links:?}");
    let right = picks.iter().find(|l| l.ends_with(&format!("?pick={number}"))).expect("the right number is mailed");
    let undo = links.iter().find(|l| l.starts_with("/login/undo/")).expect("an undo link").clone();

    let opened = flow.get(right, None).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(opened.text().await.expect("html").contains(&format!("show the number {number}")));
    assert_eq!(flow.get(&wait_path, Some(&binding)).await.status(), StatusCode::OK, "opening approves nothing");

    let approved = flow.post(right).await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert!(approved.text().await.expect("html").contains("Login approved"));
    assert_eq!(flow.post(right).await.status(), StatusCode::BAD_REQUEST, "a click approves once");

    let done = flow.get(&wait_path, Some(&binding)).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let access = flow.tokens_from(&location(&done)).await;
    let again = flow.get(&wait_path, Some(&binding)).await;
    assert!(location(&again).contains("error=loginAttemptInvalid"), "the approval logs in once");
    let (status, user) = flow.userinfo(&access, "https://app.example.com").await;
    assert_eq!((status, user["email"].as_str()), (200, Some("ada@example.com")));

    let undo_page = flow.get(&undo, None).await;
    assert_eq!(undo_page.status(), StatusCode::OK, "opening the undo link undoes nothing");
    let (status, _) = flow.userinfo(&access, "https://app.example.com").await;
    assert_eq!(status, 200);
    let undone = flow.post(&undo).await;
    assert_eq!(undone.status(), StatusCode::OK);
    assert!(undone.text().await.expect("html").contains("Login undone"));
    let (status, body) = flow.userinfo(&access, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionInactive")), "undo ends the session");
    assert_eq!(flow.post(&undo).await.status(), StatusCode::OK, "undoing twice is harmless");
}

#[tokio::test]
async fn challenge_attempt_on_sqlite() {
    challenge_approves_the_starting_browser(Backend::Sqlite).await;
}

#[tokio::test]
async fn challenge_attempt_on_postgres() {
    challenge_approves_the_starting_browser(Backend::Postgres).await;
}

/// A wrong number cancels the attempt: neither the right number nor the waiting browser can use it after.
#[tokio::test]
async fn a_wrong_challenge_number_cancels_the_attempt() {
    let flow = Flow::start(Backend::Sqlite).await;
    flow.use_attempts(AttemptType::Challenge, LinkMethod::Local).await;
    let (flow_path, binding, _) = flow.submit_email("eve@example.com").await;
    let html = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await.text().await.expect("html");
    let links = mailed_links(&flow).await;
    let (right, wrong): (Vec<&String>, Vec<&String>) = links
        .iter()
        .filter(|l| l.contains("?pick="))
        .partition(|l| l.rsplit('=').next().is_some_and(|n| html.contains(&format!(">{n}</p>"))));
    assert_eq!((right.len(), wrong.len()), (1, 2), "{links:?}");
    let refused = flow.post(wrong[0]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("html");
    assert!(page.contains("loginAttemptInvalid") && page.contains("cancelled"), "{page}");
    assert_eq!(flow.post(right[0]).await.status(), StatusCode::BAD_REQUEST, "the attempt is void");
    let waiting = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    assert_eq!(waiting.status(), StatusCode::SEE_OTHER, "the waiting browser goes to the callback");
    assert!(location(&waiting).contains("cancelled"), "{}", location(&waiting));
}

/// `link` with `remote` approves the starting browser; with `userPick` the mail carries both links, and
/// logging in on the mail's device leaves the waiting browser with a clear message. An undo before any
/// click voids the attempt.
#[tokio::test]
async fn remote_and_user_pick_links() {
    let flow = Flow::start(Backend::Sqlite).await;
    flow.use_attempts(AttemptType::Link, LinkMethod::Remote).await;
    let (flow_path, binding, _) = flow.submit_email("remote@example.com").await;
    let links = mailed_links(&flow).await;
    assert_eq!(links.len(), 2, "a link and an undo link: {links:?}");
    let opened = flow.get(&links[0], None).await.text().await.expect("html");
    assert!(opened.contains("Approve the login"), "{opened}");
    assert_eq!(flow.post(&links[0]).await.status(), StatusCode::OK);
    let done = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    flow.tokens_from(&location(&done)).await;

    flow.use_attempts(AttemptType::Link, LinkMethod::UserPick).await;
    let (flow_path, binding, _) = flow.submit_email("pick@example.com").await;
    let links = mailed_links(&flow).await;
    let here = links.iter().find(|l| l.ends_with("?device=this")).expect("this-device link");
    assert!(links.iter().any(|l| l.ends_with("?device=other")), "{links:?}");
    let logged_in = flow.post(here).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER, "this device logs in directly");
    flow.tokens_from(&location(&logged_in)).await;
    let waiting = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    assert_eq!(waiting.status(), StatusCode::SEE_OTHER, "the waiting browser goes to the callback");
    assert!(location(&waiting).contains("used+on+another+device"), "{}", location(&waiting));

    let (flow_path, binding, _) = flow.submit_email("undo@example.com").await;
    let links = mailed_links(&flow).await;
    let undo = links.iter().find(|l| l.starts_with("/login/undo/")).expect("undo link");
    assert_eq!(flow.post(undo).await.status(), StatusCode::OK);
    let other = links.iter().find(|l| l.ends_with("?device=other")).expect("other-device link");
    assert_eq!(flow.post(other).await.status(), StatusCode::BAD_REQUEST, "an undone attempt approves nothing");
    let waiting = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    assert!(location(&waiting).contains("undone"), "{}", location(&waiting));
}

/// `connectionMissing`: an organization that turned email login off (with passkeys on) refuses the email
/// step and direct authentication; with nothing else enabled, email stays on.
#[tokio::test]
async fn connection_missing_when_email_login_is_off() {
    let flow = Flow::start(Backend::Sqlite).await;
    let off = OrganizationSettings {
        email_connection_enabled: false,
        passkey_connection_enabled: true,
        ..Default::default()
    };
    flow.server.app.login().configure(&flow.org, None, Some(off)).await.expect("settings");
    let (_, _, refused) = flow.submit_email("ada@example.com").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("html").contains("not enabled"));
    let direct = flow
        .client
        .post(flow.url("/api/v1/authenticate_direct"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .json(&serde_json::json!({ "email": "ada@example.com", "redirect_uri": CALLBACK, "state": "s" }))
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(direct).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("connectionMissing")), "{body}");

    let nothing = OrganizationSettings { email_connection_enabled: false, ..Default::default() };
    flow.server.app.login().configure(&flow.org, None, Some(nothing)).await.expect("settings");
    let (_, _, sent) = flow.submit_email("ada@example.com").await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "email stays on when nothing else is enabled");
}

/// OIDC Discovery §3 requires RS256 ID tokens: by default the strict face signs them with an RSA key
/// family of their own, published in the same JWKS, while access tokens keep the EdDSA session keys.
#[tokio::test]
async fn strict_face_id_tokens_are_rs256_and_verify_with_the_jwks() {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    let flow = Flow::start(Backend::Sqlite).await;
    let (_, discovery) = flow.server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));

    let verifier = "k".repeat(43);
    let mut query = flow.standard_query();
    query.retain(|(k, _)| k != "code_challenge" && k != "redirect_uri");
    query.push(("code_challenge".to_owned(), challenge(&verifier)));
    query.push(("redirect_uri".to_owned(), CALLBACK.to_owned()));
    query.push(("scope".to_owned(), "openid email".to_owned()));
    query.push(("nonce".to_owned(), "n-0S6_WzA2Mj".to_owned()));
    let started = flow.client.get(flow.url("/oauth2/authorize")).query(&query).send().await.expect("authorize");
    let (flow_path, binding) = begun(&started);
    flow.post_email(&flow_path, &binding, "oidc@example.com").await;
    let done = flow.post_code(&flow_path, &binding, &flow.outbox_code().await).await;
    let callback = Url::parse(&location(&done)).expect("callback");
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ];
    let response = flow
        .client
        .post(flow.url("/oauth2/token"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .form(&form)
        .send()
        .await
        .expect("token");
    let (status, tokens) = read_json(response).await;
    assert_eq!(status, 200, "{tokens}");

    let jwks: JwkSet =
        flow.client.get(flow.url("/.well-known/jwks.json")).send().await.expect("jwks").json().await.expect("JSON");
    assert_eq!(jwks.keys.len(), 2, "the session key and the ID-token key are published together");
    let verify = |token: &str, alg: jsonwebtoken::Algorithm| {
        let header = decode_header(token).expect("header");
        assert_eq!(header.alg, alg);
        let jwk = jwks.find(&header.kid.expect("kid")).expect("published");
        let mut validation = Validation::new(alg);
        validation.set_audience(&[flow.org.as_str()]);
        validation.set_issuer(&[flow.server.url.as_str()]);
        decode::<Value>(token, &DecodingKey::from_jwk(jwk).expect("key"), &validation).expect("verifies").claims
    };
    let id_claims = verify(tokens["id_token"].as_str().expect("id token"), jsonwebtoken::Algorithm::RS256);
    assert_eq!(
        (id_claims["email"].as_str(), id_claims["nonce"].as_str()),
        (Some("oidc@example.com"), Some("n-0S6_WzA2Mj"))
    );
    verify(tokens["access_token"].as_str().expect("access token"), jsonwebtoken::Algorithm::EdDSA);
}

/// The remaining codes of the seed's table, each provoked over HTTP: `tokenMissing` and `sessionMissing`
/// at userinfo, `stateInvalid` at `/login` (not echoed) and at direct authentication.
#[tokio::test]
async fn token_and_state_codes_over_http() {
    let flow = Flow::start(Backend::Sqlite).await;
    let (status, body) = flow.userinfo("", "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("tokenMissing")));
    let forged = portcullis_core::login::jwe::encrypt(flow.secret.as_bytes(), br#"{"sessionId":"no-such-session"}"#)
        .expect("JWE");
    let (status, body) = flow.userinfo(&forged, "https://app.example.com").await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("sessionMissing")), "{body}");

    let mut query = flow.standard_query();
    query.retain(|(k, _)| k != "state");
    query.push(("state".to_owned(), "s".repeat(1025)));
    let response = flow.client.get(flow.url("/login")).query(&query).send().await.expect("login");
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = Url::parse(&location(&response)).expect("callback");
    let pairs: Vec<(String, String)> = target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert!(pairs.contains(&("error".to_owned(), "stateInvalid".to_owned())), "{pairs:?}");
    assert!(!pairs.iter().any(|(k, _)| k == "state"), "an invalid state is not echoed");

    let direct = flow
        .client
        .post(flow.url("/api/v1/authenticate_direct"))
        .basic_auth(&flow.org, Some(&flow.secret))
        .json(&serde_json::json!({ "email": "ada@example.com", "redirect_uri": CALLBACK, "state": "bad\u{7}state" }))
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(direct).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("stateInvalid")), "{body}");
}

/// Security events reach the audit log, queryable per organization through the admin API: a wrong code,
/// a login, an undo, and token theft on the session layer.
#[tokio::test]
async fn security_events_are_audited_and_queryable() {
    let clock = portcullis_core::clock::ManualClock::new(portcullis_core::clock::Timestamp::from_unix_millis(
        1_800_000_000_000,
    ));
    let flow = Flow::with_clock(&clock).await;
    flow.log_in("audited@example.com").await;

    let session =
        flow.server.app.sessions().create(&flow.org, "user-7", None, serde_json::Map::new()).await.expect("session");
    let first = session.refresh_token.clone().expect("refresh token");
    flow.server.app.sessions().refresh(&first, None).await.map_err(|_| "refresh").expect("rotates");
    clock.advance(std::time::Duration::from_secs(31));
    assert!(flow.server.app.sessions().refresh(&first, None).await.is_err(), "reuse after the grace window");

    let audit = |query: &str| {
        flow.server.admin(reqwest::Method::GET, &format!("/admin/v1/organizations/{}/audit{query}", flow.org)).send()
    };
    let (status, body) = read_json(audit("").await.expect("audit")).await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> =
        body["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["session.theftDetected", "login.succeeded", "login.failed"], "newest first");
    let events = body["events"].as_array().expect("events");
    assert_eq!(events[0]["subject"], "user-7");
    assert_eq!(events[1]["subject"], "audited@example.com");
    assert_eq!(events[2]["detail"]["wrongEntries"], 1);
    let text = body.to_string();
    assert!(!text.contains(&flow.secret) && !text.contains("refreshToken"), "no secrets in the audit log");

    let (status, body) = read_json(audit("?kind=login.failed&limit=5").await.expect("audit")).await;
    assert_eq!((status, body["events"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, body) = read_json(audit("?kind=bogus").await.expect("audit")).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("entityInvalid")));

    // By subject and by time: the theft came 31 s after the login.
    let kinds_of = |body: &Value| -> Vec<String> {
        body["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect()
    };
    let (_, body) = read_json(audit("?subject=user-7").await.expect("audit")).await;
    assert_eq!(kinds_of(&body), ["session.theftDetected"]);
    let theft = body["events"][0]["created"].as_str().expect("time").to_owned();
    let (_, body) = read_json(audit(&format!("?until={theft}")).await.expect("audit")).await;
    assert_eq!(kinds_of(&body), ["login.succeeded", "login.failed"], "until is exclusive");
    let (_, body) = read_json(audit(&format!("?since={theft}&subject=user-7")).await.expect("audit")).await;
    assert_eq!(kinds_of(&body), ["session.theftDetected"], "since is inclusive");
    let (status, body) = read_json(audit("?since=yesterday").await.expect("audit")).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("entityInvalid")));
    let response =
        flow.server.admin(reqwest::Method::GET, "/admin/v1/organizations/nope/audit").send().await.expect("audit");
    assert_eq!(read_json(response).await.0, 404);
}

/// No account enumeration: the email step answers a known and an unknown email the same way (only
/// the echoed address differs), and neither creates anything before the code is entered.
#[tokio::test]
async fn known_and_unknown_emails_get_the_same_answer() {
    let clock = portcullis_core::clock::ManualClock::new(portcullis_core::clock::Timestamp::from_unix_millis(
        1_800_000_000_000,
    ));
    let flow = Flow::with_clock(&clock).await;
    flow.log_in("known@example.com").await;
    // An hour later: past the per-email delay and the captcha escalation that the login above started
    // (both count attempts, known emails and unknown ones alike).
    clock.advance(std::time::Duration::from_secs(3601));
    let answer = |email: &'static str| {
        let flow = &flow;
        async move {
            let (flow_path, binding, sent) = flow.submit_email(email).await;
            let status = sent.status();
            let target = location(&sent).replace(&flow_path, "<flow>");
            let page =
                flow.client.get(flow.url(&location(&sent))).header("cookie", binding).send().await.expect("page");
            let html = page.text().await.expect("html").replace(&flow_path, "<flow>");
            (status, target.replace(&email.replace('@', "%40"), "<email>"), html.replace(email, "<email>"))
        }
    };
    let known = answer("known@example.com").await;
    let unknown = answer("stranger@example.com").await;
    assert_eq!(known, unknown);
    assert_eq!(known.0, StatusCode::SEE_OTHER);
}

/// The captcha challenge a page carries in its form, unescaped.
pub(crate) fn page_challenge(html: &str) -> Option<String> {
    let start = html.find("data-challenge=\"")? + "data-challenge=\"".len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&#34;", "\"").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&"))
}

/// What the page's script posts: the challenge and the solution it found.
pub(crate) fn solve(challenge_json: &str) -> String {
    let challenge: altcha::Challenge = serde_json::from_str(challenge_json).expect("challenge");
    let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge))
        .expect("solves")
        .expect("within the time limit");
    serde_json::json!({ "challenge": challenge, "solution": solution }).to_string()
}

pub(crate) fn level_of(challenge_json: &str) -> u64 {
    let challenge: Value = serde_json::from_str(challenge_json).expect("challenge");
    challenge["parameters"]["data"]["level"].as_u64().expect("level")
}

/// Captcha: none at first; an address past its allowance gets a proof of work in the page; a missing,
/// foreign, replayed or expired solution is `captchaInvalid` (the page asks again and sends by itself);
/// an email's own attempts raise the level.
#[tokio::test]
async fn captcha_escalates_and_each_solution_works_once() {
    let clock = portcullis_core::clock::ManualClock::new(portcullis_core::clock::Timestamp::from_unix_millis(
        1_800_000_000_000,
    ));
    let server = TestServer::start_with_clock(
        |c| {
            c.login.dev_outbox = true;
            c.login.captcha_ip_allowance = 1;
        },
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let flow = &Flow::on(server).await;
    let start = || async {
        let started = flow.client.get(flow.url("/login")).query(&flow.standard_query()).send().await.expect("login");
        begun(&started)
    };
    let page = |path: String, binding: String| async move {
        flow.client
            .get(flow.url(&path))
            .header("cookie", binding)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html")
    };
    let post = |path: String, binding: String, email: &'static str, captcha: Option<String>| async move {
        let mut form = vec![("email", email.to_owned())];
        form.extend(captcha.map(|c| ("captcha", c)));
        let step = flow.client.post(flow.url(&format!("{path}/email"))).header("cookie", binding);
        step.form(&form).send().await.expect("email")
    };

    let (first, binding) = start().await;
    assert!(page_challenge(&page(first.clone(), binding.clone()).await).is_none(), "no captcha at first");
    assert_eq!(post(first, binding, "one@example.com", None).await.status(), StatusCode::SEE_OTHER);

    let (second, binding) = start().await;
    let html = page(second.clone(), binding.clone()).await;
    assert!(html.contains("/login/assets/captcha.js"), "the page loads the solver");
    let shown = page_challenge(&html).expect("past the allowance, the page carries a challenge");
    assert_eq!(level_of(&shown), 1);
    let refused = post(second.clone(), binding.clone(), "two@example.com", None).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let html = refused.text().await.expect("html");
    assert!(html.contains("captchaInvalid") || html.contains("checked your browser"), "{html}");
    assert!(html.contains(r#"data-autosubmit="true""#), "the page sends by itself once solved");
    let fresh = page_challenge(&html).expect("a new challenge");
    let solved = solve(&fresh);
    let sent = post(second.clone(), binding.clone(), "two@example.com", Some(solved.clone())).await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER, "{:?}", sent.text().await);
    let replayed = post(second.clone(), binding.clone(), "three@example.com", Some(solved)).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert!(replayed.text().await.expect("html").contains("already used"));

    let (third, other_binding) = start().await;
    let foreign = post(third.clone(), other_binding.clone(), "four@example.com", Some(solve(&shown))).await;
    assert!(foreign.text().await.expect("html").contains("another login"), "bound to its flow");

    let late = solve(&page_challenge(&page(third.clone(), other_binding.clone()).await).expect("challenge"));
    clock.advance(std::time::Duration::from_secs(11 * 60));
    let expired = post(third.clone(), other_binding.clone(), "five@example.com", Some(late)).await;
    assert!(expired.text().await.expect("html").contains("expired"));

    // An email with three attempts this hour needs a medium level whatever the address.
    let (fourth, binding) = start().await;
    let html = page(format!("{fourth}?email=two%40example.com"), binding.clone()).await;
    assert!(level_of(&page_challenge(&html).expect("challenge")) >= 2, "the email's own attempts count");
}
