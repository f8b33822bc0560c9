//! Soak: one `portcullis serve` on SQLite with the default rate limits, under a steady mix of traffic for
//! `--minutes` (logins by email code, session refreshes and verifications, revocations, connector calls
//! whose upstream token keeps running out, admin reads, and two abusive addresses that meet the page limit
//! and the captcha allowance). Every `--sample-secs` it reads the server's memory, open files, database size
//! and request latency. It fails on any answer other than the expected and the intended ones and, after the
//! warm-up, on growth past the bounds below.

mod chart;
mod sample;
mod traffic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use self::sample::Sample;
use self::traffic::{Ledger, Traffic};
use crate::server::{Launch, Server};
use crate::setup;
use crate::upstream::Upstream;
use crate::workload::{Meter, Target};

/// After the warm-up, RSS may grow by at most this fraction of its value when the warm-up ended.
const RSS_GROWTH: f64 = 0.25;
/// After the warm-up, open files may grow by at most this many.
const OPEN_FILES_GROWTH: u64 = 16;
/// After the warm-up, the database may grow by at most this many bytes per completed login (each adds a
/// user, a login session, a grant, a mail in the development outbox and audit rows; sessions, refreshes
/// and revocations of the session clients add rows too).
const DB_BYTES_PER_LOGIN: f64 = 24.0 * 1024.0;
/// Growth is judged only on runs at least this long: shorter ones say nothing about a trend.
const JUDGED_RUN_MINUTES: f64 = 10.0;

#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The server binary to run.
    #[arg(long, default_value = "target/release/portcullis")]
    portcullis: PathBuf,
    /// How long the traffic runs.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Minutes of warm-up before growth counts (caches fill, the database's pages are allocated).
    #[arg(long, default_value_t = 5.0)]
    warm_up_minutes: f64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Write the chart (SVG) here.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Write every reading (CSV) here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let dir = tempfile::Builder::new().prefix("portcullis-soak-").tempdir().map_err(|e| e.to_string())?;
    let outcome = soak(options, dir.path()).await;
    if let Err(failure) = outcome {
        let kept = dir.keep();
        return Err(format!("{failure}\n(server log in {})", kept.display()));
    }
    Ok(())
}

async fn soak(options: &Options, dir: &Path) -> Result<(), String> {
    let binary = crate::server::binary(&options.portcullis)?;
    let upstream = Upstream::start(Duration::from_secs(5)).await?;
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).map_err(|e| e.to_string())?;
    std::fs::write(connectors.join("upstream.yaml"), setup::connector_definition(&upstream))
        .map_err(|e| e.to_string())?;
    let mut launch = Launch::new(binary, dir.to_path_buf());
    // The login limits at their defaults: the abusive clients are meant to meet them.
    for key in [
        "PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE",
        "PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE",
        "PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE",
    ] {
        launch.unset(key);
    }
    launch.set("PORTCULLIS_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1"]"#);
    launch.set("PORTCULLIS_CONNECTORS__DIR", connectors.display().to_string());
    launch.set("PORTCULLIS_CONNECTORS__EGRESS_ALLOW", r#"["127.0.0.1"]"#);
    let server = Server::start(&launch, 0).await?;
    let pid = server.pid().ok_or("the server has no process id")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let tenant = setup::tenant(&http, &server.url).await?;
    let meter = Arc::new(Meter::default());
    let target = Target { http, url: server.url.clone(), tenant, meter: Some(Arc::clone(&meter)) };

    let started = Instant::now();
    let run = Duration::from_secs_f64(options.minutes * 60.0);
    let ledger = Arc::new(Ledger::default());
    let traffic = Traffic { target, ledger: Arc::clone(&ledger), until: started + run };
    let ms = Duration::from_millis;
    let mut clients = vec![
        tokio::spawn(traffic.clone().logins(1, ms(1000))),
        tokio::spawn(traffic.clone().logins(2, ms(1000))),
        tokio::spawn(traffic.clone().connector_calls(ms(200))),
        tokio::spawn(traffic.clone().admin_reads(ms(1000))),
        tokio::spawn(traffic.clone().page_flood(ms(500))),
        tokio::spawn(traffic.clone().email_flood(ms(20_000))),
    ];
    // Eight users, each verifying every 100 ms, refreshing every 2 s, revoked and back every minute.
    clients.extend((0..8).map(|worker| tokio::spawn(traffic.clone().sessions(worker, ms(100), 20, 600))));

    println!("soak: {} min on SQLite, a reading every {} s", options.minutes, options.sample_secs);
    println!("soak: {}", Sample::csv_header());
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval_at(
        started + Duration::from_secs(options.sample_secs),
        Duration::from_secs(options.sample_secs),
    );
    while Instant::now() < started + run {
        ticker.tick().await;
        let logins = ledger.books().expected.get("login").copied().unwrap_or(0);
        let sample = Sample::read(pid, &dir.join("data"), started.elapsed().as_secs_f64(), logins, meter.take())?;
        println!("soak: {}", sample.csv_row());
        samples.push(sample);
    }
    for client in clients {
        client.await.map_err(|e| format!("a client failed: {e}"))?;
    }
    server.kill().await?;

    if let Some(path) = &options.csv {
        let rows: Vec<String> = samples.iter().map(Sample::csv_row).collect();
        std::fs::write(path, format!("{}\n{}\n", Sample::csv_header(), rows.join("\n")))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let warm_up_secs = options.warm_up_minutes * 60.0;
    if let Some(path) = &options.chart {
        chart::write(path, &samples, warm_up_secs)?;
    }
    verdict(options, &samples, warm_up_secs, &ledger, &upstream)
}

/// Prints what the run did and judges it.
fn verdict(
    options: &Options,
    samples: &[Sample],
    warm_up_secs: f64,
    ledger: &Ledger,
    upstream: &Upstream,
) -> Result<(), String> {
    let books = ledger.books();
    let total = |m: &std::collections::BTreeMap<&str, u64>| m.values().sum::<u64>();
    println!("soak: expected answers {}: {:?}", total(&books.expected), books.expected);
    println!("soak: intended refusals {}: {:?}", total(&books.intended), books.intended);
    println!("soak: upstream token requests {}", upstream.observed().token_requests());
    let mut failures: Vec<String> = books.unexpected_kept.iter().map(|u| format!("unexpected: {u}")).collect();
    if books.unexpected > 0 {
        failures.push(format!("{} unexpected answers (the first {} above)", books.unexpected, failures.len()));
    }
    failures.extend(upstream.observed().violations.into_iter().map(|v| format!("upstream: {v}")));

    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_secs > warm_up_secs).collect();
    let warm = samples.iter().rev().find(|s| s.at_secs <= warm_up_secs);
    if let (Some(warm), Some(last)) = (warm, after.last()) {
        let max_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let max_files = after.iter().map(|s| s.open_files).max().unwrap_or(0);
        let minutes = (last.at_secs - warm.at_secs) / 60.0;
        let logins = last.logins.saturating_sub(warm.logins).max(1);
        let db_per_login = last.db_bytes.saturating_sub(warm.db_bytes) as f64 / logins as f64;
        let mut p99: Vec<f64> = after.iter().map(|s| s.p99_ms).collect();
        p99.sort_by(f64::total_cmp);
        println!(
            "soak: after the warm-up ({:.1} min): RSS {} → max {} KiB ({:+.1} %), open files {} → max {}, \
             database {} → {} bytes ({:.0} bytes per login), p99 per reading median {:.1} ms, max {:.1} ms",
            minutes,
            warm.rss_kib,
            max_rss,
            (max_rss as f64 / warm.rss_kib as f64 - 1.0) * 100.0,
            warm.open_files,
            max_files,
            warm.db_bytes,
            last.db_bytes,
            db_per_login,
            p99[p99.len() / 2],
            p99[p99.len() - 1],
        );
        if options.minutes >= JUDGED_RUN_MINUTES {
            if max_rss as f64 > warm.rss_kib as f64 * (1.0 + RSS_GROWTH) {
                failures.push(format!("RSS grew past {:.0} % after the warm-up", RSS_GROWTH * 100.0));
            }
            if max_files > warm.open_files + OPEN_FILES_GROWTH {
                failures.push(format!("open files grew by more than {OPEN_FILES_GROWTH} after the warm-up"));
            }
            if db_per_login > DB_BYTES_PER_LOGIN {
                failures.push(format!("the database grew by more than {DB_BYTES_PER_LOGIN} bytes per login"));
            }
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}
