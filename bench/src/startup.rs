//! Start-up time and idle memory of a server: from spawning it to its first good answer at `path`, then
//! (optionally) its resident set one second later. The server binds port 0 and announces its URL on stdout, as
//! `portcullis serve` and the peers do. Polling happens in process, so the figure carries no shell
//! overhead.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::{append_samples, sample};

#[derive(Debug, clap::Args)]
pub(crate) struct StartupArgs {
    /// The pair the start-up time is a sample of.
    #[arg(long)]
    pair: String,
    /// Also read the resident set one second after start-up, as a sample of this pair.
    #[arg(long)]
    rss_pair: Option<String>,
    /// Which side of the pairs this server is.
    #[arg(long)]
    side: String,
    #[arg(long)]
    run: usize,
    /// The path that answers 2xx once the server is ready.
    #[arg(long)]
    path: String,
    #[arg(long)]
    samples: PathBuf,
    /// The server's command line.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn resident_megabytes(pid: u32) -> Result<f64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS")?;
    Ok(kib * 1024.0 / 1e6)
}

pub(crate) async fn run(args: StartupArgs) -> Result<(), String> {
    let (program, rest) = args.command.split_first().ok_or("no command")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
    let began = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (found, announced) = tokio::sync::oneshot::channel();
    // Reads the announcement, then keeps draining stdout so the server never blocks on it.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(start) = line.find("http://")
                && let Some(found) = found.take()
            {
                let url: String =
                    line[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c)).collect();
                let _ = found.send(url);
            }
        }
    });
    let outcome = async {
        let url = tokio::time::timeout(Duration::from_secs(30), announced)
            .await
            .map_err(|_| "no URL announced within 30 s".to_owned())?
            .map_err(|_| "the server exited before announcing its URL".to_owned())?;
        let ready = format!("{}{}", url.trim_end_matches('/'), args.path);
        let deadline = began + Duration::from_secs(30);
        loop {
            if http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{ready} did not answer within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let startup_ms = began.elapsed().as_secs_f64() * 1e3;
        let mut samples = vec![sample(&args.pair, &args.side, args.run, startup_ms, "ms")];
        if let Some(pair) = &args.rss_pair {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut memory = sample(pair, &args.side, args.run, resident_megabytes(child.id())?, "MB");
            memory["kind"] = json!("VmRSS");
            samples.push(memory);
        }
        Ok(samples)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let samples = outcome?;
    let figures: Vec<String> = samples
        .iter()
        .map(|s| {
            let (pair, unit) = (s["pair"].as_str().unwrap_or_default(), s["unit"].as_str().unwrap_or_default());
            format!("{pair} {:.1} {unit}", s["value"].as_f64().unwrap_or_default())
        })
        .collect();
    eprintln!("  {}: {}", args.side, figures.join(", "));
    append_samples(&args.samples, &samples).map_err(|e| e.to_string())
}
