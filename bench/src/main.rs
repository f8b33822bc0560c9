//! `portcullis-bench`: each Portcullis path measured beside the raw operation it is built on, or beside
//! the peer users would pick instead, in one run, reported as rates and ratios (median of several runs).
//! Run with `--release`; `scripts/bench.sh` runs everything and writes `docs/benchmarks.md`.
#![allow(clippy::print_stdout, reason = "the report is this binary's output")]

mod charts;
mod connectors;
mod console_pages;
mod load;
mod login;
mod passkey;
mod prefill;
mod refresh;
mod report;
mod startup;
mod summary;
mod token_cache;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use portcullis_store_sqlite::Synchronous;

use crate::report::Report;

/// Side-by-side benchmarks. Without a subcommand, runs the in-process pairs.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    in_process: InProcess,
}

#[derive(Debug, clap::Args)]
struct InProcess {
    /// Which pairs to run.
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Pair::Verify, Pair::RefreshSqlite, Pair::RefreshPostgres])]
    pairs: Vec<Pair>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Append every run as a sample line here, for `report`.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Rows in each store before the refresh pairs measure, so lookups walk a realistic B-tree.
    #[arg(long, default_value_t = 20_000)]
    prefill: usize,
    /// Users in the organization before the login pairs measure (the scale check uses 100,000).
    #[arg(long, default_value_t = 0)]
    prefill_users: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive one side of an HTTP pair with concurrent clients and append the result as a sample.
    Load(load::LoadArgs),
    /// Time the raw rotation transaction alone (the baseline of refresh over HTTP) and append a sample.
    RawRotation(RawRotation),
    /// Time a server's start-up and read its idle memory, and append both as samples.
    Startup(startup::StartupArgs),
    /// Turn a samples file into the JSON results, the markdown table and the charts.
    Report(summary::ReportArgs),
    /// Fill a data directory's store with sessions and users before a server starts on it.
    Prefill(prefill::PrefillArgs),
    /// Time the admin console's pages over a store with 10,000 users and 100,000 audit rows.
    ConsolePages(console_pages::ConsolePagesArgs),
    /// Feed the SDK's verified-token cache distinct tokens and print RSS and the cache's weight as it goes.
    TokenCacheMemory(token_cache::TokenCacheArgs),
}

#[derive(Debug, clap::Args)]
struct RawRotation {
    #[arg(value_enum)]
    backend: Backend,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long)]
    samples: PathBuf,
    #[arg(long)]
    pair: String,
    #[arg(long)]
    run: usize,
    /// Rows in the table before measuring.
    #[arg(long, default_value_t = 20_000)]
    prefill: usize,
    /// SQLite's `synchronous`: `NORMAL` as the server's default, or `FULL` (a sync per commit).
    #[arg(long, value_enum, default_value = "normal")]
    synchronous: SqliteSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SqliteSync {
    Normal,
    Full,
}

impl From<SqliteSync> for Synchronous {
    fn from(sync: SqliteSync) -> Self {
        match sync {
            SqliteSync::Normal => Self::Normal,
            SqliteSync::Full => Self::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pair {
    /// In-process access-token verification vs raw Ed25519 signature verification.
    Verify,
    /// Session refresh on SQLite vs a raw rusqlite rotation transaction.
    RefreshSqlite,
    /// Session refresh on PostgreSQL vs a raw tokio-postgres rotation transaction.
    RefreshPostgres,
    /// Connector calls through the runtime (with and without a hook) vs a direct HTTP call.
    Connectors,
    /// Complete email-code logins, token exchanges and passkey logins per second (figures, no raw
    /// counterpart).
    Login,
}

async fn in_process(args: InProcess) -> Result<(), String> {
    let window = Duration::from_secs_f64(args.seconds);
    let mut report = Report::default();
    for pair in &args.pairs {
        match pair {
            Pair::Verify => verify::run(&mut report, window, args.runs),
            Pair::RefreshSqlite => refresh::sqlite(&mut report, window, args.runs, args.prefill).await,
            Pair::RefreshPostgres => refresh::postgres(&mut report, window, args.runs, args.prefill).await,
            Pair::Connectors => connectors::run(&mut report, window, args.runs).await,
            Pair::Login => {
                login::run(&mut report, window, args.runs, args.prefill_users).await;
                passkey::run(&mut report, window, args.runs).await;
            }
        }
    }
    print!("{}", report.markdown());
    if let Some(path) = args.json {
        std::fs::write(&path, report.json()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = args.samples {
        report::append_samples(&path, &report.samples())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn raw_rotation(args: RawRotation) -> Result<(), String> {
    let window = Duration::from_secs_f64(args.seconds);
    let rate = match args.backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("raw.db");
            let synchronous = args.synchronous.into();
            tokio::task::block_in_place(|| refresh::raw_sqlite_rate(&path, window, args.prefill, synchronous))
        }
        Backend::Postgres => {
            let db = portcullis_store_conformance::TestPostgres::create().await;
            refresh::raw_postgres_rate(&db.url, window, args.prefill).await
        }
    };
    eprintln!("{} baseline: {rate:.0}/s", args.pair);
    report::append_samples(&args.samples, &[report::sample(&args.pair, "baseline", args.run, rate, "ops/s")])
        .map_err(|e| e.to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => in_process(cli.in_process).await,
        Some(Command::Load(args)) => load::run(args).await,
        Some(Command::RawRotation(args)) => raw_rotation(args).await,
        Some(Command::Startup(args)) => startup::run(args).await,
        Some(Command::Report(args)) => summary::run(&args),
        Some(Command::TokenCacheMemory(args)) => token_cache::run(&args),
        Some(Command::ConsolePages(args)) => console_pages::run(&args).await,
        Some(Command::Prefill(args)) => prefill::run(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    /// Client secrets are base64url, so one in 32 starts with `-`; the driver must take it as a value.
    #[test]
    fn a_client_secret_or_api_key_that_starts_with_a_hyphen_is_a_value() {
        let cli = Cli::try_parse_from([
            "portcullis-bench",
            "load",
            "portcullis-login",
            "--url",
            "http://127.0.0.1:1",
            "--client-secret",
            "-FqX3b",
            "--api-key",
            "-k9",
            "--samples",
            "s.jsonl",
            "--pair",
            "login-http",
            "--side",
            "portcullis",
            "--run",
            "1",
        ])
        .expect("a hyphen-led secret parses");
        let Some(Command::Load(args)) = cli.command else { panic!("not the load command") };
        assert_eq!((args.client_secret.as_str(), args.api_key.as_str()), ("-FqX3b", "-k9"));
    }
}
