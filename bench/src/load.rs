//! A closed-loop HTTP load driver for flows of several requests (logins, token chains), which a
//! single-request generator such as wrk cannot replay. The same driver runs both sides of a pair, so the
//! client's own cost is the same for both. Every answer is checked; one wrong answer fails the run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, ValueEnum};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// Callback of the benchmark organization; it is only parsed, never visited.
const CALLBACK: &str = "https://app.example.com/callback";
/// A 43-character PKCE verifier, the strict face's minimum.
const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopq";
/// The peers' client secret and origin (see `bench/peers/*.mjs`).
const PEER_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
const PEER_ORIGIN: &str = "http://127.0.0.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Portcullis strict face: authorize, page, email, code from the dev outbox, callback, token exchange.
    PortcullisLogin,
    /// better-auth email OTP: send the code, read it, sign in (user created, session cookie set).
    BetterAuthLogin,
    /// Portcullis `POST /auth/session/refresh` in header mode, each client rotating its own chain.
    PortcullisRefresh,
    /// An app's own `POST /auth/session/refresh` in header mode (the Rust SDK's demo app, or a SuperTokens
    /// backend whose core is Portcullis), each client signed in once through `--sign-in-path`.
    AppRefresh,
    /// Portcullis `POST /oauth2/token` with `grant_type=refresh_token`, each client rotating its own chain.
    PortcullisToken,
    /// oidc-provider `POST /token` with `grant_type=client_credentials` (JWT access token, nothing stored).
    OidcProviderToken,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// What to drive.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Base URL of the server under load (loopback).
    #[arg(long)]
    url: String,
    /// Concurrent clients, each running its flow in a loop.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Measured seconds (after each client's setup).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Portcullis organization (client id) for the login and token scenarios.
    #[arg(long, default_value = "")]
    client_id: String,
    /// Its client secret (base64url, so it may start with `-`).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub(crate) client_secret: String,
    /// Organization API key, to create the sessions the refresh scenario rotates.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub(crate) api_key: String,
    /// The app's sign-in route for `app-refresh`: `POST {"userId"}`, answering header-mode tokens.
    #[arg(long, default_value = "/dev/sign-in")]
    sign_in_path: String,
    /// Append the result here as a sample of `--pair`, `--side`, `--run`.
    #[arg(long)]
    samples: std::path::PathBuf,
    #[arg(long)]
    pair: String,
    #[arg(long)]
    side: String,
    #[arg(long)]
    run: usize,
}

type Failure = String;

fn fail(what: &str, status: StatusCode, body: &str) -> Failure {
    format!("{what}: HTTP {status}: {}", body.chars().take(300).collect::<String>())
}

async fn expect_status(response: Response, status: StatusCode, what: &str) -> Result<Response, Failure> {
    if response.status() == status {
        Ok(response)
    } else {
        let got = response.status();
        Err(fail(what, got, &response.text().await.unwrap_or_default()))
    }
}

fn header(response: &Response, name: &str) -> Result<String, Failure> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} header"))
}

async fn json_of(response: Response, what: &str) -> Result<Value, Failure> {
    response.json().await.map_err(|e| format!("{what}: {e}"))
}

/// What every client shares.
#[derive(Debug)]
struct Target {
    http: Client,
    url: String,
    client_id: String,
    client_secret: String,
    api_key: String,
    sign_in_path: String,
    /// Tells this run's emails apart from earlier runs' on the same server.
    tag: String,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// One complete email-code login on the strict face; returns the token response.
async fn portcullis_login(t: &Target, email: &str) -> Result<Value, Failure> {
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()));
    let query = [
        ("client_id", t.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("state", "bench-state"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let started = t.http.get(t.url("/oauth2/authorize")).query(&query).send().await.map_err(|e| e.to_string())?;
    let started = expect_status(started, StatusCode::SEE_OTHER, "authorize").await?;
    let page = header(&started, "location")?;
    let binding = header(&started, "set-cookie")?.split(';').next().unwrap_or_default().to_owned();
    let flow = page.split('?').next().unwrap_or_default().to_owned();

    let shown = t.http.get(t.url(&page)).header("cookie", &binding).send().await.map_err(|e| e.to_string())?;
    expect_status(shown, StatusCode::OK, "login page").await?.bytes().await.map_err(|e| e.to_string())?;
    let sent = t
        .http
        .post(t.url(&format!("{flow}/email")))
        .header("cookie", &binding)
        .form(&[("email", email)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    expect_status(sent, StatusCode::SEE_OTHER, "email step").await?;

    let outbox = t.http.get(t.url("/dev/outbox")).query(&[("to", email)]).send().await.map_err(|e| e.to_string())?;
    let outbox = json_of(expect_status(outbox, StatusCode::OK, "outbox").await?, "outbox").await?;
    let body = outbox["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["to"] == email))
        .and_then(|m| m["body"].as_str())
        .ok_or_else(|| format!("no message to {email} in the outbox"))?;
    let code = body
        .split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| (6..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("no code in the message")?
        .to_owned();

    let entered = t
        .http
        .post(t.url(&format!("{flow}/code")))
        .header("cookie", &binding)
        .form(&[("code", code.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let entered = expect_status(entered, StatusCode::SEE_OTHER, "code step").await?;
    let callback = url::Url::parse(&header(&entered, "location")?).map_err(|e| e.to_string())?;
    let authorization_code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("no code in the callback {callback}"))?;

    let form = [
        ("grant_type", "authorization_code"),
        ("code", authorization_code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", t.client_id.as_str()),
        ("client_secret", t.client_secret.as_str()),
    ];
    let tokens = t.http.post(t.url("/oauth2/token")).form(&form).send().await.map_err(|e| e.to_string())?;
    let tokens = json_of(expect_status(tokens, StatusCode::OK, "token exchange").await?, "tokens").await?;
    if tokens["access_token"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no access token: {tokens}"));
    }
    Ok(tokens)
}

/// One better-auth email-OTP sign-in: send, read the code, sign in.
async fn better_auth_login(t: &Target, email: &str) -> Result<(), Failure> {
    let sent = t
        .http
        .post(t.url("/api/auth/email-otp/send-verification-otp"))
        .header("origin", PEER_ORIGIN)
        .json(&json!({ "email": email, "type": "sign-in" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    expect_status(sent, StatusCode::OK, "send-verification-otp").await?.bytes().await.map_err(|e| e.to_string())?;
    let read = t.http.get(t.url("/dev/otp")).query(&[("email", email)]).send().await.map_err(|e| e.to_string())?;
    let read = json_of(expect_status(read, StatusCode::OK, "otp").await?, "otp").await?;
    let otp = read["otp"].as_str().ok_or("no otp")?;
    let signed_in = t
        .http
        .post(t.url("/api/auth/sign-in/email-otp"))
        .header("origin", PEER_ORIGIN)
        .json(&json!({ "email": email, "otp": otp }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let signed_in = expect_status(signed_in, StatusCode::OK, "sign-in/email-otp").await?;
    if !header(&signed_in, "set-cookie")?.contains("better-auth.session_token=") {
        return Err("no session cookie".to_owned());
    }
    let body = json_of(signed_in, "sign-in").await?;
    if body["token"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no session: {body}"));
    }
    Ok(())
}

/// A header-mode refresh at `/auth/session/refresh`, Portcullis's or an app's; returns the next token.
async fn header_mode_refresh(t: &Target, token: &str) -> Result<String, Failure> {
    let response = t
        .http
        .post(t.url("/auth/session/refresh"))
        .header("authorization", format!("Bearer {token}"))
        .header("st-auth-mode", "header")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let response = expect_status(response, StatusCode::OK, "refresh").await?;
    let next = header(&response, "st-refresh-token")?;
    header(&response, "st-access-token")?;
    Ok(next)
}

async fn portcullis_token(t: &Target, token: &str) -> Result<String, Failure> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", t.client_id.as_str()),
        ("client_secret", t.client_secret.as_str()),
    ];
    let response = t.http.post(t.url("/oauth2/token")).form(&form).send().await.map_err(|e| e.to_string())?;
    let body = json_of(expect_status(response, StatusCode::OK, "refresh grant").await?, "tokens").await?;
    if body["access_token"].as_str().is_none_or(str::is_empty) {
        return Err(format!("no access token: {body}"));
    }
    body["refresh_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no refresh token: {body}"))
}

async fn oidc_provider_token(t: &Target) -> Result<(), Failure> {
    let form = [("grant_type", "client_credentials"), ("client_id", "bench"), ("client_secret", PEER_SECRET)];
    let response = t.http.post(t.url("/token")).form(&form).send().await.map_err(|e| e.to_string())?;
    let body = json_of(expect_status(response, StatusCode::OK, "client_credentials").await?, "tokens").await?;
    // A JWT, as Portcullis's: three segments.
    if body["access_token"].as_str().is_none_or(|t| t.split('.').count() != 3) {
        return Err(format!("no JWT access token: {body}"));
    }
    Ok(())
}

/// Each client's state before the measured window (its token chain), made outside the window.
async fn setup(t: &Target, scenario: Scenario, client: usize) -> Result<String, Failure> {
    match scenario {
        Scenario::PortcullisRefresh => {
            let response = t
                .http
                .post(t.url("/api/v1/sessions"))
                .bearer_auth(&t.api_key)
                .json(&json!({ "userId": format!("bench-{}-{client}", t.tag) }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body =
                json_of(expect_status(response, StatusCode::CREATED, "create session").await?, "session").await?;
            body["refreshToken"].as_str().map(str::to_owned).ok_or_else(|| format!("no refresh token: {body}"))
        }
        Scenario::AppRefresh => {
            let response = t
                .http
                .post(t.url(&t.sign_in_path))
                .header("st-auth-mode", "header")
                .json(&json!({ "userId": format!("bench-{}-{client}", t.tag) }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            header(&expect_status(response, StatusCode::OK, "sign-in").await?, "st-refresh-token")
        }
        Scenario::PortcullisToken => {
            let tokens = portcullis_login(t, &format!("chain-{}-{client}@example.com", t.tag)).await?;
            tokens["refresh_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no refresh token: {tokens}"))
        }
        Scenario::PortcullisLogin | Scenario::BetterAuthLogin | Scenario::OidcProviderToken => Ok(String::new()),
    }
}

/// One iteration; `state` is the client's chain (the refresh token to present next).
async fn step(t: &Target, scenario: Scenario, client: usize, n: u64, state: String) -> Result<String, Failure> {
    let email = || format!("u-{}-{client}-{n}@example.com", t.tag);
    match scenario {
        Scenario::PortcullisLogin => portcullis_login(t, &email()).await.map(|_| state),
        Scenario::BetterAuthLogin => better_auth_login(t, &email()).await.map(|()| state),
        Scenario::PortcullisRefresh | Scenario::AppRefresh => header_mode_refresh(t, &state).await,
        Scenario::PortcullisToken => portcullis_token(t, &state).await,
        Scenario::OidcProviderToken => oidc_provider_token(t).await.map(|()| state),
    }
}

/// Completed iterations per second and latency percentiles over `clients` concurrent loops.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// Runs `clients` loops of `op` for `window`, each after its own untimed `prepare`.
pub(crate) async fn closed_loop<P, PF, O, OF>(
    clients: usize,
    window: Duration,
    prepare: P,
    op: O,
) -> Result<Measured, Failure>
where
    P: Fn(usize) -> PF,
    PF: Future<Output = Result<String, Failure>>,
    O: Fn(usize, u64, String) -> OF + Send + Sync + 'static,
    OF: Future<Output = Result<String, Failure>> + Send,
{
    let mut states = Vec::with_capacity(clients);
    for client in 0..clients {
        states.push(prepare(client).await?);
    }
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + window;
    let mut tasks = Vec::with_capacity(clients);
    for (client, mut state) in states.into_iter().enumerate() {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                state = op(client, n, state).await?;
                latencies.push(began.elapsed());
                n += 1;
            }
            Ok::<_, Failure>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Measured { rate: latencies.len() as f64 / elapsed, p50_ms: at(0.5), p99_ms: at(0.99) })
}

pub(crate) async fn run(args: LoadArgs) -> Result<(), Failure> {
    let http = Client::builder()
        .redirect(Policy::none())
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let target = Arc::new(Target {
        http,
        url: args.url.trim_end_matches('/').to_owned(),
        client_id: args.client_id,
        client_secret: args.client_secret,
        api_key: args.api_key,
        sign_in_path: args.sign_in_path,
        tag: format!("{}-{}", std::process::id(), args.run),
    });
    let scenario = args.scenario;
    let prepare = {
        let target = Arc::clone(&target);
        move |client| {
            let target = Arc::clone(&target);
            async move { setup(&target, scenario, client).await }
        }
    };
    let op = {
        let target = Arc::clone(&target);
        move |client, n, state| {
            let target = Arc::clone(&target);
            async move { step(&target, scenario, client, n, state).await }
        }
    };
    let measured = closed_loop(args.clients, Duration::from_secs_f64(args.seconds), prepare, op).await?;
    let mut sample = crate::report::sample(&args.pair, &args.side, args.run, measured.rate, "ops/s");
    sample["p50Ms"] = json!(measured.p50_ms);
    sample["p99Ms"] = json!(measured.p99_ms);
    sample["clients"] = json!(args.clients);
    crate::report::append_samples(&args.samples, &[sample]).map_err(|e| e.to_string())?;
    eprintln!(
        "{} {}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        args.pair, args.side, measured.rate, measured.p50_ms, measured.p99_ms
    );
    Ok(())
}
