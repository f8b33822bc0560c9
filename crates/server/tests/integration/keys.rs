//! The key ring across restarts, master keys, algorithms, and rotation over time and across instances.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{ManualClock, Timestamp};
use portcullis_core::keys::{KeyState, SigningAlgorithm};
use portcullis_server::StartupError;
use portcullis_server::app::{App, OpenOptions};
use portcullis_store_conformance::TestPostgres;

use crate::harness::{TestServer, test_config};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn generated_secrets_are_private_and_keys_survive_a_restart() {
    let server = TestServer::start().await;
    // The RS256 family's first key is made in the background after start-up: compare once it is there.
    let mut before = server.get_json("/.well-known/jwks.json").await.1;
    for _ in 0..600 {
        if before["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k["alg"] == "RS256")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = server.get_json("/.well-known/jwks.json").await.1;
    }
    let algorithms: Vec<_> = before["keys"].as_array().expect("keys").iter().map(|k| k["alg"].clone()).collect();
    assert_eq!(algorithms, ["EdDSA", "RS256"], "both families publish a key");
    let data = server.app.config().data_dir.clone();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("admin.token")), 0o600);
    let config = server.app.config().clone();
    let (dir, _) = server.stop().await;

    let restarted = TestServer::start_in(dir, None, config).await;
    let (_, after) = restarted.get_json("/.well-known/jwks.json").await;
    assert_eq!(before, after, "the same key ring must be served after a restart");
}

#[tokio::test]
async fn a_different_master_key_cannot_open_the_ring() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = test_config(&dir, None);
    drop(App::open(config.clone(), OpenOptions { migrate: true }).await.expect("first start"));
    std::fs::write(config.data_dir.join("master.key"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("write");
    let err = App::open(config, OpenOptions { migrate: true }).await.expect_err("wrong master key accepted");
    assert!(matches!(err, StartupError::Keys(_)), "{err:?}");
    assert!(err.to_string().contains("wrong master key"), "{err}");
}

#[tokio::test]
async fn a_configured_master_key_is_used_and_never_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir, None);
    config.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
    App::open(config.clone(), OpenOptions { migrate: true }).await.expect("start");
    assert!(!config.data_dir.join("master.key").exists());

    config.master_key = "short".into();
    let err = App::open(config, OpenOptions { migrate: true }).await.expect_err("bad master key accepted");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("master_key"), "{err}");
}

#[tokio::test]
async fn rs256_keys_are_published_as_rsa_jwks() {
    let server =
        TestServer::start_with(crate::harness::Backend::Sqlite, |c| c.keys.algorithm = SigningAlgorithm::RS256).await;
    let (_, jwks) = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn keys_rotate_when_due_and_retire_after_the_overlap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = test_config(&dir, None);
    let policy = config.key_policy();
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let app =
        App::open_with_clock(config, OpenOptions { migrate: true }, Arc::new(clock.clone())).await.expect("start");
    let first = app.key_statuses()[0].kid.clone();

    app.keys().maintain().await.expect("maintain");
    assert_eq!(app.key_statuses().len(), 1, "no rotation before the interval");

    clock.advance(policy.rotation_interval);
    app.keys().maintain().await.expect("maintain");
    let states: Vec<KeyState> = app.key_statuses().iter().map(|k| k.state).collect();
    assert_eq!(states, [KeyState::Signing, KeyState::Pending]);

    clock.advance(policy.publish_lead);
    let states: Vec<KeyState> = app.key_statuses().iter().map(|k| k.state).collect();
    assert_eq!(states, [KeyState::Verifying, KeyState::Signing]);

    clock.advance(policy.retain_after_retirement);
    let jwks = app.jwks();
    let kids: Vec<&str> = jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids.len(), 1);
    assert_ne!(kids[0], first, "the retired key is no longer published");
}

#[tokio::test]
async fn instances_sharing_postgres_rotate_once() {
    let database = TestPostgres::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir, Some(&database));
    config.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let mut instances = Vec::new();
    for _ in 0..4 {
        let app = App::open_with_clock(config.clone(), OpenOptions { migrate: true }, Arc::new(clock.clone()));
        instances.push(Arc::new(app.await.expect("instance starts")));
    }
    assert_eq!(instances[3].key_statuses().len(), 1, "instances starting together share the first key");

    clock.advance(config.key_policy().rotation_interval + Duration::from_secs(1));
    let runs: Vec<_> = instances
        .iter()
        .map(|app| {
            let app = Arc::clone(app);
            tokio::spawn(async move { app.keys().maintain().await })
        })
        .collect();
    for run in runs {
        run.await.expect("task").expect("maintenance");
    }
    for app in &instances {
        app.keys().reload().await.expect("reload");
        assert_eq!(app.key_statuses().len(), 2, "exactly one rotation across instances");
    }
    assert_eq!(instances[0].jwks(), instances[3].jwks());
}
