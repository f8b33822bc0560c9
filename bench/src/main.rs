//! `portcullis-bench`: each Portcullis path measured beside the raw operation it is built on, in one run,
//! reported as rates and ratios (median of several runs). Run with `--release`; see `bench/README.md`.
#![allow(clippy::print_stdout, reason = "the report is this binary's output")]

mod connectors;
mod login;
mod refresh;
mod report;
mod verify;

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::report::Report;

/// Side-by-side benchmarks of the session layer.
#[derive(Debug, Parser)]
struct Args {
    /// Which pairs to run.
    #[arg(long, value_enum, default_values_t = [Pair::Verify, Pair::RefreshSqlite, Pair::RefreshPostgres])]
    pairs: Vec<Pair>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
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
    /// Complete email-code logins and token exchanges per second (figures, no raw counterpart).
    Login,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let window = Duration::from_secs_f64(args.seconds);
    let mut report = Report::default();
    for pair in &args.pairs {
        match pair {
            Pair::Verify => verify::run(&mut report, window, args.runs),
            Pair::RefreshSqlite => refresh::sqlite(&mut report, window, args.runs).await,
            Pair::RefreshPostgres => refresh::postgres(&mut report, window, args.runs).await,
            Pair::Connectors => connectors::run(&mut report, window, args.runs).await,
            Pair::Login => login::run(&mut report, window, args.runs).await,
        }
    }
    print!("{}", report.markdown());
    if let Some(path) = args.json
        && let Err(e) = std::fs::write(&path, report.json())
    {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
