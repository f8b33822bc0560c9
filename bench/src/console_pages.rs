//! How long the admin console's pages take with a store of realistic size: 10,000 users in one
//! organization and 100,000 audit rows (the scale), on the embedded SQLite. The store is filled
//! first, then `portcullis serve` runs on it as a real process; an operator signs in through the hosted
//! login (email code from the dev outbox) and each page is fetched over loopback, one at a time. The
//! times include the loopback round trip, so they bound the server-side render from above.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::abuse::AuditEvent;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::console::{Console, OperatorRole};
use portcullis_core::keys::MasterKey;
use portcullis_core::login::model::User;
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use reqwest::redirect::Policy;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub(crate) struct ConsolePagesArgs {
    /// The `portcullis` binary to serve with.
    #[arg(long, default_value = "target/release/portcullis")]
    portcullis: PathBuf,
    /// Users in the organization.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Audit rows in the organization.
    #[arg(long, default_value_t = 100_000)]
    audit_rows: usize,
    /// Fetches of each page; the median and the 99th percentile are reported.
    #[arg(long, default_value_t = 200)]
    fetches: usize,
}

/// Fills the store: one organization with its users and audit rows, and the operator.
async fn fill(path: PathBuf, users: usize, audit_rows: usize) -> Result<(String, String), String> {
    let options = SqliteOptions { path, readers: 1, synchronous: Synchronous::Normal };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).map_err(|e| e.to_string())?);
    store.migrate().await.map_err(|e| e.to_string())?;
    let now = SystemClock.now();
    let org = Organization::new("Scale", now).map_err(|e| e.message().to_owned())?;
    store.insert_organization(&org).await.map_err(|e| e.to_string())?;
    let mut last_user = String::new();
    for i in 0..users {
        let user = User {
            id: format!("user-{i:06}"),
            organization_id: org.id.clone(),
            email: format!("user{i}@example.com"),
            verified: true,
            blocked: false,
            created: now,
            updated: now,
            last_login: Some(now),
        };
        store.user_by_email(&org.id, &user.email, Some(&user)).await.map_err(|e| e.to_string())?;
        last_user = user.id;
    }
    let kinds = ["login.succeeded", "login.failed", "passkey.added"];
    for i in 0..audit_rows {
        let event = AuditEvent {
            id: format!("{i:012}-audit"),
            organization_id: org.id.clone(),
            kind: kinds[i % kinds.len()].to_owned(),
            subject: Some(format!("user{}@example.com", i % users.max(1))),
            detail: json!({ "attempt": i }),
            created: portcullis_core::clock::Timestamp::from_unix_millis(
                now.unix_millis() - i64::try_from(i).unwrap_or(0),
            ),
        };
        store.record_audit_event(&event).await.map_err(|e| e.to_string())?;
    }
    let (master, _) = MasterKey::generate().map_err(|e| e.to_string())?;
    let console = Console::new(Arc::clone(&store), Arc::new(SystemClock), &master, "http://127.0.0.1".to_owned());
    console.put_operator("bench@example.com", OperatorRole::Admin).await.map_err(|e| e.message().to_owned())?;
    Ok((org.id, last_user))
}

/// A browser enough for the console: cookies by name, no redirects followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let Some((name, value)) =
                value.to_str().ok().and_then(|t| t.split(';').next()).and_then(|p| p.split_once('='))
            else {
                continue;
            };
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let response = request.header("cookie", cookie).send().await.map_err(|e| e.to_string())?;
        self.keep(&response);
        Ok(response)
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    async fn get(&mut self, path: &str) -> Result<reqwest::Response, String> {
        let request = self.http.get(self.url(path));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<reqwest::Response, String> {
        let request = self.http.post(self.url(path)).form(form);
        self.send(request).await
    }
}

fn location(response: &reqwest::Response) -> Result<String, String> {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no redirect from {} ({})", response.url(), response.status()))
}

async fn sign_in(browser: &mut Browser) -> Result<(), String> {
    let started = browser.get("/console/sign-in").await?;
    let flow = browser.get(&location(&started)?).await?;
    let flow_path = location(&flow)?.split('?').next().unwrap_or_default().to_owned();
    browser.post(&format!("{flow_path}/email"), &[("email", "bench@example.com")]).await?;
    let outbox: serde_json::Value = browser.get("/dev/outbox").await?.json().await.map_err(|e| e.to_string())?;
    let body = outbox["messages"][0]["body"].as_str().unwrap_or_default();
    let code: String = body
        .split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| (6..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("no code in the mail")?
        .to_owned();
    let mut step = browser.post(&format!("{flow_path}/code"), &[("code", &code)]).await?;
    if location(&step)?.ends_with("/passkeys") {
        step = browser.post(&format!("{flow_path}/continue"), &[]).await?;
    }
    let signed_in = browser.get(&location(&step)?).await?;
    if location(&signed_in)? != "/console/" {
        return Err("the sign-in did not reach the console".to_owned());
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

pub(crate) async fn run(args: &ConsolePagesArgs) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let filling = Instant::now();
    let (org, user) = fill(dir.path().join("portcullis.db"), args.users, args.audit_rows).await?;
    eprintln!(
        "filled {} users and {} audit rows in {:.1} s",
        args.users,
        args.audit_rows,
        filling.elapsed().as_secs_f64()
    );
    let mut child = Command::new(&args.portcullis)
        .arg("serve")
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .env("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_LOGIN__DEV_OUTBOX", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.portcullis.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let start = line.find("http://")?;
            Some(
                line[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                    .collect::<String>(),
            )
        })
        .ok_or("the server announced no URL")?;
    let http = reqwest::Client::builder().redirect(Policy::none()).build().map_err(|e| e.to_string())?;
    let mut browser = Browser { http, base: url.trim_end_matches('/').to_owned(), cookies: BTreeMap::new() };
    let measured = async {
        sign_in(&mut browser).await?;
        let pages = [
            ("overview", "/console/".to_owned()),
            ("organizations", "/console/organizations".to_owned()),
            ("organization (settings, 50 latest audit rows)", format!("/console/organizations/{org}")),
            ("user search by email", format!("/console/organizations/{org}/users?q=user9999%40example.com")),
            ("user (sessions, passkeys, audit by subject)", format!("/console/organizations/{org}/users/{user}")),
            ("audit log (the 200 newest)", format!("/console/audit?organization={org}")),
            (
                "audit log filtered by subject",
                format!("/console/audit?organization={org}&subject=user42%40example.com"),
            ),
            (
                "audit CSV export of one subject",
                format!("/console/audit.csv?organization={org}&subject=user42%40example.com"),
            ),
        ];
        println!("| console page ({} users, {} audit rows) | median ms | p99 ms |", args.users, args.audit_rows);
        println!("| --- | --- | --- |");
        for (name, path) in &pages {
            let mut times = Vec::with_capacity(args.fetches);
            for _ in 0..args.fetches {
                let began = Instant::now();
                let response = browser.get(path).await?;
                let status = response.status();
                response.bytes().await.map_err(|e| e.to_string())?;
                times.push(began.elapsed().as_secs_f64() * 1e3);
                if !(status.is_success() || status.is_redirection()) {
                    return Err(format!("{path} answered {status}"));
                }
            }
            times.sort_by(f64::total_cmp);
            println!("| {name} | {:.2} | {:.2} |", percentile(&times, 0.5), percentile(&times, 0.99));
        }
        Ok::<_, String>(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(600), measured).await.map_err(|_| "timed out".to_owned());
    let _ = child.kill();
    let _ = child.wait();
    outcome?
}
