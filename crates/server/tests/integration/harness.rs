//! A real server in process: temp data directory, SQLite or a fresh PostgreSQL database, port 0.

use std::sync::Arc;

use portcullis_server::app::{App, OpenOptions};
use portcullis_server::config::{Config, StoreBackend};
use portcullis_store_conformance::TestPostgres;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) struct TestServer {
    pub(crate) url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) app: Arc<App>,
    pub(crate) admin_token: String,
    pub(crate) dir: TempDir,
    pub(crate) postgres: Option<TestPostgres>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A configuration for a test: data in `dir`, port 0, the chosen backend.
pub(crate) fn test_config(dir: &TempDir, postgres: Option<&TestPostgres>) -> Config {
    let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
    config.server.listen = "127.0.0.1:0".to_owned();
    if let Some(database) = postgres {
        config.store.backend = StoreBackend::Postgres;
        config.store.postgres_url = database.url.as_str().into();
    }
    config
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(Backend::Sqlite, |_| {}).await
    }

    pub(crate) async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestPostgres::create().await),
        };
        let mut config = test_config(&dir, postgres.as_ref());
        adjust(&mut config);
        Self::start_in(dir, postgres, config).await
    }

    pub(crate) async fn start_in(dir: TempDir, postgres: Option<TestPostgres>, config: Config) -> Self {
        Self::start_in_with_clock(dir, postgres, config, Arc::new(portcullis_core::clock::SystemClock)).await
    }

    /// A server whose time is `clock` (a `ManualClock` moves expiry without sleeping).
    pub(crate) async fn start_with_clock(
        adjust: impl FnOnce(&mut Config),
        clock: Arc<dyn portcullis_core::clock::Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir, None);
        adjust(&mut config);
        Self::start_in_with_clock(dir, None, config, clock).await
    }

    pub(crate) async fn start_in_with_clock(
        dir: TempDir,
        postgres: Option<TestPostgres>,
        mut config: Config,
        clock: Arc<dyn portcullis_core::clock::Clock>,
    ) -> Self {
        let listener = portcullis_server::bind(&mut config).await.expect("bind");
        let url = config.public_url();
        let app =
            Arc::new(App::open_with_clock(config, OpenOptions { migrate: true }, clock).await.expect("app opens"));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&app);
        let task = tokio::spawn(async move {
            portcullis_server::serve(served, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let admin_token = match app.admin_token_file() {
            Some(path) => std::fs::read_to_string(path).expect("admin token file").trim().to_owned(),
            None => app.config().admin.token.expose().to_owned(),
        };
        Self {
            url,
            client: reqwest::Client::new(),
            app,
            admin_token,
            dir,
            postgres,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&self.admin_token)
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        read_json(self.request(Method::GET, path).send().await.expect("request")).await
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(mut self) -> (TempDir, Option<TestPostgres>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.postgres.take())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn read_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

/// Asserts the catalog error shape: exactly `errorCode`, `message`, `requestId`, the id matching the
/// `x-request-id` header, and the expected code and status.
pub(crate) async fn assert_catalog_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error responses are JSON"
    );
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id header");
    let (actual_status, body) = read_json(response).await;
    assert_eq!((actual_status, body["errorCode"].as_str()), (status, Some(code)), "body: {body}");
    let mut keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["errorCode", "message", "requestId"], "body: {body}");
    assert_eq!(body["requestId"].as_str(), Some(header_id.as_str()));
    assert!(!body["message"].as_str().unwrap_or_default().is_empty());
    body
}
