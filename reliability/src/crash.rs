//! Crash safety: load the server with session refreshes, logins and connector calls, SIGKILL it at a
//! random moment, check the store while it is down, restart it, and check every client's promise (see the
//! workload modules). Repeated `--kills` times per backend; the seed makes the kill moments repeatable.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::task::JoinHandle;

use crate::server::{Launch, Server};
use crate::setup;
use crate::store_check::StoreUnderTest;
use crate::upstream::Upstream;
use crate::workload::Target;
use crate::workload::connector::ConnectorClient;
use crate::workload::login::LoginClient;
use crate::workload::refresh::RefreshClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The server binary to run.
    #[arg(long, default_value = "target/release/portcullis")]
    portcullis: PathBuf,
    /// Backends to run (repeatable); both when none is given.
    #[arg(long = "backend", value_enum)]
    backends: Vec<Backend>,
    /// Kills per backend.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Seed of the kill moments; printed, so a failing run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Clients each rotating one session's refresh token.
    #[arg(long, default_value_t = 8)]
    refresh_clients: usize,
    /// Clients each logging in new users by email code.
    #[arg(long, default_value_t = 2)]
    login_clients: usize,
    /// Clients calling the connector account.
    #[arg(long, default_value_t = 2)]
    connector_clients: usize,
    /// Shortest load before a kill, in milliseconds.
    #[arg(long, default_value_t = 100)]
    min_load_ms: u64,
    /// Longest load before a kill, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    max_load_ms: u64,
    /// More server configuration, `PORTCULLIS_…=value` (repeatable; applied last). With
    /// `PORTCULLIS_SESSION__REFRESH_GRACE_SECS=0` a refresh cut after its commit leaves the client a token the
    /// server counts as stolen, and the run fails: the harness notices a broken promise.
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if key.starts_with("PORTCULLIS_") => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected PORTCULLIS_…=value".to_owned()),
    }
}

/// What one backend's run did.
#[derive(Debug, Default)]
struct Tally {
    refreshes: u64,
    refreshes_cut: u64,
    logins: u64,
    logins_cut: u64,
    calls: u64,
    calls_cut: u64,
    rotations: u64,
    replays: u64,
    restarts: Vec<Duration>,
    /// The first connector call after each restart (it may wait for the killed process's refresh lease).
    first_calls: Vec<Duration>,
}

/// Runs every backend; an error lists the broken promises.
pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let seed = options.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    println!("crash: seed {seed} (repeat with --seed {seed})");
    let backends =
        if options.backends.is_empty() { vec![Backend::Sqlite, Backend::Postgres] } else { options.backends.clone() };
    let mut failures = Vec::new();
    for backend in backends {
        match run_backend(options, backend, seed).await {
            Ok(tally) => report(backend, options.kills, &tally),
            Err(failure) => failures.push(format!("{backend:?}: {failure}")),
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}

/// Median and maximum, in milliseconds.
fn spread(samples: &[Duration]) -> (u128, u128) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |i: usize| sorted.get(i).copied().unwrap_or_default().as_millis();
    (at(sorted.len() / 2), at(sorted.len().saturating_sub(1)))
}

fn report(backend: Backend, kills: usize, tally: &Tally) {
    let (restart_median, restart_max) = spread(&tally.restarts);
    let (call_median, call_max) = spread(&tally.first_calls);
    println!(
        "crash: {backend:?}: {kills} kills, every promise kept, the store checked after every kill.\n  \
         refreshes: {} answered, {} cut by a kill\n  logins: {} completed, {} cut\n  connector calls: {} \
         answered, {} cut; {} upstream rotations, {} answered again after a kill lost the answer\n  restart to \
         serving: median {restart_median} ms, max {restart_max} ms; first connector call after it: median \
         {call_median} ms, max {call_max} ms",
        tally.refreshes,
        tally.refreshes_cut,
        tally.logins,
        tally.logins_cut,
        tally.calls,
        tally.calls_cut,
        tally.rotations,
        tally.replays,
    );
}

async fn collect<C>(tasks: Vec<JoinHandle<(C, Vec<String>)>>, into: &mut Vec<C>, violations: &mut Vec<String>) {
    for task in tasks {
        match task.await {
            Ok((client, found)) => {
                into.push(client);
                violations.extend(found);
            }
            Err(e) => violations.push(format!("a client task failed: {e}")),
        }
    }
}

async fn run_backend(options: &Options, backend: Backend, seed: u64) -> Result<Tally, String> {
    let dir = tempfile::Builder::new().prefix("portcullis-crash-").tempdir().map_err(|e| e.to_string())?;
    let outcome = cycles(options, backend, seed, dir.path()).await;
    if outcome.is_err() {
        // The server logs stay for the post-mortem.
        let kept = dir.keep();
        return outcome.map_err(|e| format!("{e}\n(server logs in {})", kept.display()));
    }
    outcome
}

async fn cycles(options: &Options, backend: Backend, seed: u64, dir: &std::path::Path) -> Result<Tally, String> {
    // Access tokens of 50 ms keep the account refreshing several times a second.
    let upstream = Upstream::start(Duration::from_millis(50)).await?;
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).map_err(|e| e.to_string())?;
    std::fs::write(connectors.join("upstream.yaml"), setup::connector_definition(&upstream))
        .map_err(|e| e.to_string())?;
    // The server runs in `dir`, so a relative binary path is resolved here.
    let binary = crate::server::binary(&options.portcullis)?;
    let mut launch = Launch::new(binary, dir.to_path_buf());
    launch.set("PORTCULLIS_CONNECTORS__DIR", connectors.display().to_string());
    launch.set("PORTCULLIS_CONNECTORS__EGRESS_ALLOW", r#"["127.0.0.1"]"#);
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(portcullis_store_conformance::TestPostgres::create().await),
    };
    let store = match &database {
        None => StoreUnderTest::Sqlite(dir.join("data").join("portcullis.db")),
        Some(database) => {
            launch.set("PORTCULLIS_STORE__BACKEND", "postgres");
            launch.set("PORTCULLIS_STORE__POSTGRES_URL", database.url.clone());
            StoreUnderTest::Postgres(database.url.clone())
        }
    };
    for (key, value) in &options.server_env {
        launch.set(key, value.clone());
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut server = Server::start(&launch, 0).await?;
    let tenant = setup::tenant(&http, &server.url).await?;
    let mut target = Target { http, url: server.url.clone(), tenant, meter: None };
    let mut refreshers = Vec::new();
    for i in 0..options.refresh_clients {
        refreshers.push(RefreshClient::create(&target, &format!("user-{i}")).await?);
    }
    let mut logins: Vec<LoginClient> = (0..options.login_clients).map(LoginClient::new).collect();
    let mut callers: Vec<ConnectorClient> =
        (0..options.connector_clients).map(|_| ConnectorClient::default()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut violations = Vec::new();

    for kill in 1..=options.kills {
        let load = Duration::from_millis(rng.random_range(options.min_load_ms..=options.max_load_ms));
        let refresh_tasks: Vec<_> = refreshers.drain(..).map(|c| tokio::spawn(c.load(target.clone()))).collect();
        let login_tasks: Vec<_> = logins.drain(..).map(|c| tokio::spawn(c.load(target.clone()))).collect();
        let call_tasks: Vec<_> = callers.drain(..).map(|c| tokio::spawn(c.load(target.clone()))).collect();
        tokio::time::sleep(load).await;
        server.kill().await?;
        collect(refresh_tasks, &mut refreshers, &mut violations).await;
        collect(login_tasks, &mut logins, &mut violations).await;
        collect(call_tasks, &mut callers, &mut violations).await;
        store.check().await.map_err(|e| format!("after kill {kill}, the store: {e}"))?;

        let restarting = Instant::now();
        server = Server::start(&launch, kill).await?;
        tally.restarts.push(restarting.elapsed());
        target.url.clone_from(&server.url);
        for client in &mut refreshers {
            if let Err(e) = client.check(&target).await {
                violations.push(format!("kill {kill}: {e}"));
            }
        }
        for client in &mut logins {
            if let Err(e) = client.check(&target).await {
                violations.push(format!("kill {kill}: {e}"));
            }
        }
        let calling = Instant::now();
        if let Err(e) = ConnectorClient::check(&target).await {
            violations.push(format!("kill {kill}: {e}"));
        }
        tally.first_calls.push(calling.elapsed());
        violations.extend(upstream.observed().violations.into_iter().map(|v| format!("kill {kill}: upstream: {v}")));
        if !violations.is_empty() {
            break;
        }
    }
    server.kill().await?;
    store.check().await.map_err(|e| format!("after the last kill, the store: {e}"))?;
    if !violations.is_empty() {
        return Err(violations.join("\n"));
    }
    tally.refreshes = refreshers.iter().map(|c| c.answered).sum();
    tally.refreshes_cut = refreshers.iter().map(|c| c.cut).sum();
    tally.logins = logins.iter().map(|c| c.total).sum();
    tally.logins_cut = logins.iter().map(|c| c.cut).sum();
    tally.calls = callers.iter().map(|c| c.calls).sum();
    tally.calls_cut = callers.iter().map(|c| c.cut).sum();
    let observed = upstream.observed();
    tally.rotations = observed.refreshes;
    tally.replays = observed.replays;
    Ok(tally)
}
