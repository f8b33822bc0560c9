//! Connector security inside the runtime: what `console.log` writes, and the recovery probe after a cooldown.

// Shared with the golden tests, which use all of it.
#[allow(dead_code, unreachable_pub)]
mod fake_api;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fake_api::{Fake, Stale, TokenMode};
use portcullis_connect::script::Limits;
use portcullis_connect::{AccountInput, CallRequest, Connector, ConnectorRuntime, OAuthValue, RuntimeConfig};
use portcullis_core::ErrorCode;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::organization::Organization;

const KEY: &str = "k-secret-123456";

/// Everything the process logs, for the tests that read the log.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).init();
        captured
    })
}

async fn runtime(yaml: String, config: RuntimeConfig) -> (ConnectorRuntime, String, tempfile::TempDir) {
    let (store, dir) = fake_api::sqlite_store().await;
    let org = Organization::new("acme", SystemClock.now()).expect("org");
    store.insert_organization(&org).await.expect("org");
    let master = Arc::new(MasterKey::generate().expect("key").0);
    let connector = Connector::parse(Path::new("test.yaml"), &yaml).expect("definition");
    let connectors = [(connector.name.clone(), connector)].into_iter().collect();
    let config = RuntimeConfig { egress_allow: vec!["127.0.0.1/32".parse().expect("net")], ..config };
    let runtime = ConnectorRuntime::new(connectors, store, master, Arc::new(SystemClock), config).expect("runtime");
    (runtime, org.id, dir)
}

fn fast() -> RuntimeConfig {
    RuntimeConfig {
        limits: Limits { timeout: Duration::from_millis(500), memory_bytes: 16 * 1024 * 1024 },
        ..RuntimeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_log_lines_are_escaped_capped_and_redacted() {
    let log = log();
    let fake = Fake::start(Stale::Forbidden, TokenMode::Rotate).await;
    let yaml = format!(
        "name: echo\nbase_url: {}\nauth:\n  type: api_key\n  header: X-Api-Key\nproperties:\n  - {{ name: Secret, sensitive: true }}\nmethods:\n  echo:\n    path: /echo\n    script: |\n      function after_action() {{\n        console.log('marker-1\\nERROR forged line', method_auth_value, method_request_mergefields.Extra);\n        console.log('marker-2', 'y'.repeat(100000));\n        return true;\n      }}\n",
        fake.url
    );
    let (runtime, org, _dir) = runtime(yaml, fast()).await;
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("echo".to_owned()),
        auth_value: Some(KEY.to_owned()),
        properties: [("Secret".to_owned(), "prop-secret-987".to_owned())].into_iter().collect(),
    };
    runtime.create_account(&org, input).await.expect("account");
    let request = CallRequest {
        method: "echo".to_owned(),
        mergefields: [("Extra".to_owned(), serde_json::json!("prop-secret-987"))].into_iter().collect(),
        ..CallRequest::default()
    };
    runtime.call(&org, "echo", "a1", &request).await.expect("call");
    let text = String::from_utf8_lossy(&log.0.lock().expect("lock")).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("marker-")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(!text.lines().any(|l| l.starts_with("ERROR forged line")), "a newline forged a log line: {text}");
    assert!(lines[0].contains("marker-1\\nERROR forged line"), "{}", lines[0]);
    assert!(!text.contains(KEY) && !text.contains("prop-secret-987"), "a secret reached the log: {}", lines[0]);
    assert!(lines[1].len() < 4096, "the line is capped: {} bytes", lines[1].len());
}

fn oauth_yaml(base: &str) -> String {
    format!(
        "name: acme\nbase_url: {base}\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: {base}/authorize\n  token_url: {base}/oauth/token\n  client_id: cid\n  client_secret: csecret\nscript: |\n  function after_error() {{\n    if (method_error != null && method_error.error != null && method_error.statusCode.toString() === '403') {{\n      throw new AuthRefreshException();\n    }}\n    return true;\n  }}\nmethods:\n  list:\n    path: /data\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_cooldown_one_call_probes_and_the_first_failure_says_when_to_retry() {
    let fake = Fake::start(Stale::Forbidden, TokenMode::Useless).await;
    let config = RuntimeConfig { reauth_cooldown: Duration::from_millis(600), ..fast() };
    let (runtime, org, _dir) = runtime(oauth_yaml(&fake.url), config).await;
    let value = OAuthValue {
        access_token: "at-stale".to_owned(),
        refresh_token: Some("rt-0".to_owned()),
        expires: None,
        refresh_expires: None,
    };
    let input = AccountInput {
        id: Some("a1".to_owned()),
        connector: Some("acme".to_owned()),
        auth_value: Some(serde_json::to_string(&value).expect("json")),
        ..AccountInput::default()
    };
    runtime.create_account(&org, input).await.expect("account");
    let request = CallRequest { method: "list".to_owned(), ..CallRequest::default() };
    let first = runtime.call(&org, "acme", "a1", &request).await.expect_err("still 403");
    assert_eq!(first.code(), ErrorCode::NeedsReauthentication);
    assert!(first.retry_after_secs().is_some(), "the call that starts the cooldown says when to retry");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = fake.data_calls.load(std::sync::atomic::Ordering::SeqCst);
    let runtime = Arc::new(runtime);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (runtime, org, request) = (Arc::clone(&runtime), org.clone(), request.clone());
            tokio::spawn(async move { runtime.call(&org, "acme", "a1", &request).await })
        })
        .collect();
    for call in calls {
        let err = call.await.expect("task").expect_err("still rejected");
        assert_eq!(err.code(), ErrorCode::NeedsReauthentication);
        assert!(err.retry_after_secs().is_some(), "{}", err.message());
    }
    let probes = fake.data_calls.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(probes, 2, "one probe: the request and its retry after one refresh");
}
