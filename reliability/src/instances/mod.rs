//! Several instances on one PostgreSQL: three `portcullis serve` processes share a database, and the
//! clients spread their requests over them. Each check states what must hold across instances.

mod abuse;
mod connector;
mod keys;
mod postgres_restart;
mod sessions;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use crate::server::{Launch, Server};
use crate::setup::{self, Tenant};
use crate::upstream::Upstream;
use crate::workload::Target;

/// Instances in the cluster.
const INSTANCES: usize = 3;
/// `keys.publish_lead_secs`: short, so the rotation check runs in seconds.
const PUBLISH_LEAD_SECS: u64 = 4;
/// `login.page_requests_per_ip_per_minute` and `login.captcha_ip_allowance` counted across instances.
const PAGE_LIMIT: u32 = 30;
const CAPTCHA_ALLOWANCE: u32 = 2;

#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The server binary to run.
    #[arg(long, default_value = "target/release/portcullis")]
    portcullis: PathBuf,
    /// Leave out the PostgreSQL restart (it restarts the machine's PostgreSQL cluster).
    #[arg(long)]
    no_postgres_restart: bool,
}

/// The running instances and what the checks share.
#[derive(Debug)]
pub(crate) struct Cluster {
    servers: Vec<Server>,
    http: reqwest::Client,
    tenant: Tenant,
    upstream: Upstream,
}

impl Cluster {
    fn target(&self, instance: usize) -> Target {
        Target {
            http: self.http.clone(),
            url: self.servers[instance % INSTANCES].url.clone(),
            tenant: self.tenant.clone(),
            meter: None,
        }
    }

    fn url(&self, instance: usize) -> &str {
        &self.servers[instance % INSTANCES].url
    }
}

/// Runs every check; an error lists the failed ones.
pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let dir = tempfile::Builder::new().prefix("portcullis-instances-").tempdir().map_err(|e| e.to_string())?;
    let outcome = checks(options, dir.path()).await;
    if let Err(failure) = outcome {
        let kept = dir.keep();
        return Err(format!("{failure}\n(server logs in {})", kept.display()));
    }
    Ok(())
}

async fn checks(options: &Options, dir: &std::path::Path) -> Result<(), String> {
    let binary = crate::server::binary(&options.portcullis)?;
    let upstream = Upstream::start(Duration::from_secs(3600)).await?;
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).map_err(|e| e.to_string())?;
    std::fs::write(connectors.join("upstream.yaml"), setup::connector_definition(&upstream))
        .map_err(|e| e.to_string())?;
    let database = portcullis_store_conformance::TestPostgres::create().await;
    // One master key for all: each instance must open what another sealed.
    let mut master = [0u8; 32];
    aws_lc_rs::rand::fill(&mut master).map_err(|_| "no random source")?;
    let master = base64::engine::general_purpose::STANDARD.encode(master);

    let mut servers = Vec::new();
    for instance in 0..INSTANCES {
        let home = dir.join(format!("instance-{instance}"));
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let mut launch = Launch::new(binary.clone(), home);
        launch.set("PORTCULLIS_MASTER_KEY", master.clone());
        launch.set("PORTCULLIS_STORE__BACKEND", "postgres");
        launch.set("PORTCULLIS_STORE__POSTGRES_URL", database.url.clone());
        launch.set("PORTCULLIS_CONNECTORS__DIR", connectors.display().to_string());
        launch.set("PORTCULLIS_CONNECTORS__EGRESS_ALLOW", r#"["127.0.0.1"]"#);
        launch.set("PORTCULLIS_KEYS__PUBLISH_LEAD_SECS", PUBLISH_LEAD_SECS.to_string());
        launch.set("PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE", PAGE_LIMIT.to_string());
        launch.set("PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE", CAPTCHA_ALLOWANCE.to_string());
        // The checks speak for several client addresses through X-Forwarded-For.
        launch.set("PORTCULLIS_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1"]"#);
        servers.push(Server::start(&launch, instance).await?);
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let tenant = setup::tenant(&http, &servers[0].url).await?;
    let cluster = Cluster { servers, http, tenant, upstream };

    let mut failures = Vec::new();
    let mut record = |name: &str, outcome: Result<String, String>| match outcome {
        Ok(figure) => println!("instances: {name}: ok. {figure}"),
        Err(failure) => {
            println!("instances: {name}: FAILED. {failure}");
            failures.push(format!("{name}: {failure}"));
        }
    };
    record("concurrent refreshes", sessions::concurrent_refreshes(&cluster).await);
    record("revocation", sessions::revocation_reaches_the_sdk(&cluster).await);
    record("key rotation", keys::published_everywhere_before_signing(&cluster, PUBLISH_LEAD_SECS).await);
    record("rate limit", abuse::rate_limit_is_shared(&cluster, PAGE_LIMIT).await);
    record("captcha escalation", abuse::captcha_allowance_is_shared(&cluster, CAPTCHA_ALLOWANCE).await);
    record("connector single flight", connector::one_refresh_for_concurrent_calls(&cluster).await);
    if !options.no_postgres_restart {
        record("PostgreSQL restart", postgres_restart::requests_fail_cleanly_and_recover(&cluster).await);
    }
    for server in cluster.servers {
        server.kill().await?;
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}
