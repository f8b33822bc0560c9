//! `portcullis serve` as a child process: started on a free port, killed with SIGKILL, started again on the
//! same data directory or database.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The admin token every harness server is configured with.
pub(crate) const ADMIN_TOKEN: &str = "reliability-admin-token-0123456789abcdef";

/// The server binary at `path`, made absolute, or how to build it.
pub(crate) fn binary(path: &std::path::Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path)
        .map_err(|e| format!("{}: {e} (build it: cargo build --release -p portcullis)", path.display()))
}

/// How to start the server: the binary, its working directory and its configuration as environment.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) env: Vec<(String, String)>,
}

impl Launch {
    /// Development outbox on, the login rate limits and captcha escalation off (every client shares one
    /// address), warnings only in the log.
    pub(crate) fn new(binary: PathBuf, dir: PathBuf) -> Self {
        let env = [
            ("PORTCULLIS_DATA_DIR", dir.join("data").display().to_string()),
            ("PORTCULLIS_ADMIN__TOKEN", ADMIN_TOKEN.to_owned()),
            ("PORTCULLIS_LOG__LEVEL", "warn".to_owned()),
            ("PORTCULLIS_LOGIN__DEV_OUTBOX", "true".to_owned()),
            ("PORTCULLIS_LOGIN__PAGE_REQUESTS_PER_IP_PER_MINUTE", "0".to_owned()),
            ("PORTCULLIS_LOGIN__API_REQUESTS_PER_IP_PER_MINUTE", "0".to_owned()),
            ("PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE", "0".to_owned()),
        ];
        Self { binary, dir, env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
    }

    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        self.env.push((key.to_owned(), value.into()));
    }

    /// Drops `key`, so the server's default applies.
    pub(crate) fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }
}

/// A running server.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Server {
    /// Starts the server and waits for its banner (at most a minute); `run` numbers its log file.
    pub(crate) async fn start(launch: &Launch, run: usize) -> Result<Self, String> {
        let log = std::fs::File::create(launch.dir.join(format!("server-{run}.log"))).map_err(|e| e.to_string())?;
        let mut child = Command::new(&launch.binary)
            .args(["serve", "--port", "0"])
            .current_dir(&launch.dir)
            .env_remove("PORTCULLIS_CONFIG")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {}: {e}", launch.binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let banner = async {
            while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                if let Some(rest) = line.split(" is serving on ").nth(1) {
                    return Ok(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
            Err(format!("the server exited before serving; see {}/server-{run}.log", launch.dir.display()))
        };
        let url = tokio::time::timeout(Duration::from_secs(60), banner)
            .await
            .map_err(|_| "no banner within 60 s".to_owned())??;
        // The rest of stdout is drained so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, url })
    }

    /// The process id, for reading its use of memory and files from `/proc`.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub(crate) async fn kill(mut self) -> Result<(), String> {
        self.child.start_kill().map_err(|e| format!("kill: {e}"))?;
        self.child.wait().await.map_err(|e| format!("wait: {e}"))?;
        Ok(())
    }
}
