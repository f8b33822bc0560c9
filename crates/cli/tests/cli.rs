//! The `portcullis` binary as a user runs it.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn portcullis(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(args)
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("PORTCULLIS_CONFIG")
        .env("RUST_LOG", "warn");
    command
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    portcullis(data_dir, args).output().expect("portcullis runs")
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

#[test]
fn errors_markdown_is_the_generated_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(dir.path(), &["errors", "--format", "markdown"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), portcullis_core::error::render_markdown());
}

#[test]
fn invalid_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = portcullis(dir.path(), &["org", "list"])
        .env("PORTCULLIS_STORE__SQLITE_READERS", "many")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).to_ascii_lowercase();
    assert!(stderr.contains("sqlite_readers"), "{stderr}");

    let output = run(dir.path(), &["--config", "/nonexistent.toml", "org", "list"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn organizations_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let created = json(&run(dir.path(), &["org", "create", "Acme Inc", "--json"]));
    assert_eq!(created["name"], "Acme Inc");
    let id = created["id"].as_str().expect("id");
    assert_eq!(json(&run(dir.path(), &["org", "show", id, "--json"])), created);
    assert_eq!(json(&run(dir.path(), &["org", "list", "--json"])), Value::Array(vec![created.clone()]));

    let missing = run(dir.path(), &["org", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("entityMissing"));

    let empty_name = run(dir.path(), &["org", "create", "  "]);
    assert!(String::from_utf8_lossy(&empty_name.stderr).contains("missingFields"));

    let configured = json(&run(
        dir.path(),
        &["org", "configure", id, "--login-attempt-type", "link", "--login-method", "userPick", "--json"],
    ));
    assert_eq!(configured["settings"]["defaultLoginAttemptType"], "link");
    assert_eq!(configured["settings"]["defaultLoginMethod"], "userPick");
    let localhost = run(dir.path(), &["org", "configure", id, "--allow-localhost", "true"]);
    let shown = String::from_utf8_lossy(&localhost.stdout);
    assert!(shown.contains("whitelist: (empty) + localhost callbacks"), "{shown}");
    let refused = run(dir.path(), &["org", "configure", id, "--login-attempt-type", "carrier-pigeon"]);
    assert_eq!(refused.status.code(), Some(2), "clap refuses an unknown type");

    let rotated = json(&run(dir.path(), &["keys", "rotate", "--json"]));
    assert_eq!(rotated["state"], "pending");
    let keys = json(&run(dir.path(), &["keys", "list", "--json"]));
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    let table = String::from_utf8_lossy(&run(dir.path(), &["keys", "list"]).stdout).into_owned();
    assert!(table.contains("signing") && table.contains("pending"), "{table}");
}

/// `--data-dir` wins over `PORTCULLIS_DATA_DIR`: the commands open the store it names.
#[test]
fn data_dir_flag_names_the_store() {
    let (env_dir, flag_dir) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let flag = flag_dir.path().to_str().expect("UTF-8 path");
    let created = json(&run(env_dir.path(), &["org", "create", "Acme", "--json", "--data-dir", flag]));
    assert!(flag_dir.path().join("portcullis.db").exists());
    assert_eq!(json(&run(env_dir.path(), &["org", "list", "--json"])), Value::Array(vec![]));
    assert_eq!(json(&run(env_dir.path(), &["--data-dir", flag, "org", "list", "--json"])), Value::Array(vec![created]));
}

/// Starts `portcullis serve` with `args` and returns it with the URL its banner announces.
fn serve(data_dir: &Path, args: &[&str]) -> (std::process::Child, String) {
    let mut command_line = vec!["serve"];
    command_line.extend_from_slice(args);
    let mut child = portcullis(data_dir, &command_line)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first_line).expect("banner");
    let url = first_line.split_whitespace().find(|w| w.starts_with("http://")).expect("URL in banner").to_owned();
    (child, url)
}

/// `--listen` on a wildcard address with port 0: the banner names loopback and the port actually bound,
/// and so does every URL the server derives (the issuer here).
#[tokio::test]
async fn serve_listen_flag_reports_the_bound_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, url) = serve(dir.path(), &["--listen", "0.0.0.0:0"]);
    let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("port in the URL");
    assert!(url.starts_with("http://127.0.0.1:") && port != 0, "{url}");
    let discovery: Value = reqwest::get(format!("{url}/.well-known/openid-configuration"))
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(discovery["issuer"], url.as_str());
    child.kill().expect("kill");
    let _ = child.wait();
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, url) = serve(dir.path(), &["--port", "0"]);

    let health: Value = reqwest::get(format!("{url}/health")).await.expect("request").json().await.expect("JSON");
    assert_eq!(health["status"], "ok");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "exit status {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stderr).contains("shutting down"));
}
