//! PostgreSQL restarted under load: while it is down every request fails with a catalog error (503
//! `genericError` with `Retry-After`) within the connect timeout, nothing panics or hangs, and every
//! instance serves again by itself once it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Cluster, INSTANCES};
use crate::workload::json;
use crate::workload::refresh::{RefreshClient, refresh};

/// How long a request may take while the database is down: `store.postgres_connect_timeout_secs` (5 s)
/// and a margin.
const LONGEST: Duration = Duration::from_secs(8);
const DOWN_FOR: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Sample {
    at: Instant,
    took: Duration,
    answer: Option<(u16, String)>,
}

fn cluster_version() -> Result<String, String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("/etc/postgresql: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| "no PostgreSQL cluster in /etc/postgresql".to_owned())
}

async fn pg_ctl(version: &str, action: &str) -> Result<(), String> {
    let mut command = tokio::process::Command::new("pg_ctlcluster");
    command.args(["--skip-systemctl-redirect", version, "main", action]);
    if action == "stop" {
        command.args(["-m", "fast"]);
    }
    let status = command.status().await.map_err(|e| format!("pg_ctlcluster {action}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("pg_ctlcluster {action}: {status}")) }
}

pub(super) async fn requests_fail_cleanly_and_recover(cluster: &Cluster) -> Result<String, String> {
    let version = cluster_version()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for instance in 0..INSTANCES {
        let target = cluster.target(instance);
        let mut client = RefreshClient::create(&target, &format!("pg-user-{instance}")).await?;
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answer = refresh(&target, &client.token).await;
                if let Some((200, body)) = &answer
                    && let Some(token) = json(body)["refreshToken"].as_str()
                {
                    client.token = token.to_owned();
                }
                samples.push(Sample { at, took: at.elapsed(), answer });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg_ctl(&version, "stop").await?;
    let down = Instant::now();
    tokio::time::sleep(DOWN_FOR).await;
    let started = pg_ctl(&version, "start").await;
    let up = Instant::now();
    // Every instance gets 15 s to serve again by itself.
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    started?;

    let mut problems = Vec::new();
    let (mut refused, mut longest) = (0, Duration::ZERO);
    let mut recovered = Vec::new();
    for (instance, worker) in workers.into_iter().enumerate() {
        let samples = worker.await.map_err(|e| e.to_string())?;
        for sample in &samples {
            longest = longest.max(sample.took);
            match &sample.answer {
                Some((200, _)) => {}
                Some((503, body)) if json(body)["errorCode"] == "genericError" => refused += 1,
                other => problems.push(format!("instance {instance}: {other:?}")),
            }
            if sample.took > LONGEST {
                problems.push(format!("instance {instance}: a request took {} ms", sample.took.as_millis()));
            }
        }
        let first_ok = samples.iter().find(|s| s.at >= up && matches!(s.answer, Some((200, _))));
        match first_ok {
            Some(sample) => recovered.push((sample.at + sample.took - up).as_millis().to_string()),
            None => problems.push(format!("instance {instance} did not serve again within 15 s")),
        }
        let refused_while_down =
            samples.iter().any(|s| s.at >= down && s.at < up && !matches!(s.answer, Some((200, _))));
        if !refused_while_down {
            problems
                .push(format!("instance {instance} answered 200 all through the outage: the database was not down"));
        }
    }
    if !problems.is_empty() {
        problems.truncate(10);
        return Err(problems.join("; "));
    }
    Ok(format!(
        "PostgreSQL stopped for {} s under refresh load on {INSTANCES} instances: {refused} requests answered 503 \
         genericError, no other failure, slowest request {} ms; serving again [{}] ms after PostgreSQL started",
        DOWN_FOR.as_secs(),
        longest.as_millis(),
        recovered.join(", ")
    ))
}
