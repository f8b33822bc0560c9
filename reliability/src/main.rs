//! Reliability harnesses that run `portcullis serve` as a real process (docs/reliability.md).
//!
//! `portcullis-reliability crash`: SIGKILL under load, on SQLite and PostgreSQL.
//! `portcullis-reliability instances`: three instances on one PostgreSQL, and a PostgreSQL restart.
//! `portcullis-reliability soak`: steady mixed traffic on SQLite, the server's resources sampled.

#![allow(clippy::print_stdout, reason = "the run's report is this binary's output")]

mod crash;
mod instances;
mod server;
mod setup;
mod soak;
mod store_check;
mod upstream;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Reliability harnesses that run `portcullis serve` as a real process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kill the server with SIGKILL under load, restart it, and check what every client was told.
    Crash(crash::Options),
    /// Three instances on one PostgreSQL: what must hold across them, and a PostgreSQL restart under load.
    Instances(instances::Options),
    /// Steady mixed traffic on SQLite with the rate limits on; memory, files, database and latency sampled.
    Soak(soak::Options),
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Crash(options) => crash::run(&options).await,
        Command::Instances(options) => instances::run(&options).await,
        Command::Soak(options) => soak::run(&options).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("FAILED\n{failure}");
            ExitCode::FAILURE
        }
    }
}
