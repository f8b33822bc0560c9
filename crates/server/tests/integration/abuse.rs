//! Per-IP rate limits on the login faces: counted in the store, so two instances on one PostgreSQL
//! share them; refused with `tooManyRequests` and `Retry-After` (a page for browsers, JSON for APIs);
//! `X-Forwarded-For` believed only from a trusted proxy.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{ManualClock, Timestamp};
use portcullis_store_conformance::TestPostgres;
use reqwest::StatusCode;

use crate::harness::{TestServer, read_json, test_config};

/// A minute boundary, so every hit of a test falls in one window until the clock is moved.
const START: i64 = 1_800_000_000_000;

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

#[tokio::test]
async fn two_instances_on_one_postgres_share_the_per_ip_limits() {
    let database = TestPostgres::create().await;
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let mut servers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir, Some(&database));
        config.master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
        config.login.api_requests_per_ip_per_minute = 4;
        config.login.page_requests_per_ip_per_minute = 3;
        servers.push(TestServer::start_in_with_clock(dir, None, config, Arc::new(clock.clone())).await);
    }
    let verify =
        |server: &TestServer| server.client.post(format!("{}/api/v1/verify", server.url)).form(&[("code", "x")]).send();
    for i in 0..4 {
        let answered = verify(&servers[i % 2]).await.expect("verify");
        assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS, "hit {i} is within the limit");
    }
    let refused = verify(&servers[0]).await.expect("verify");
    assert_eq!(retry_after(&refused), 60);
    let (status, body) = read_json(refused).await;
    assert_eq!((status, body["errorCode"].as_str()), (429, Some("tooManyRequests")), "{body}");

    let page = |server: &TestServer| {
        server.client.get(format!("{}/login?client_id=unknown", server.url)).header("accept", "text/html").send()
    };
    for i in 0..3 {
        assert_eq!(page(&servers[i % 2]).await.expect("page").status(), StatusCode::BAD_REQUEST, "hit {i}");
    }
    let refused = page(&servers[1]).await.expect("page");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&refused), 60);
    let html = refused.text().await.expect("html");
    assert!(html.contains("<html") && html.contains("tooManyRequests"), "browsers get a page: {html}");

    clock.advance(Duration::from_secs(45));
    assert_eq!(retry_after(&verify(&servers[1]).await.expect("verify")), 15, "Retry-After counts down");
    clock.advance(Duration::from_secs(15));
    assert_ne!(verify(&servers[1]).await.expect("verify").status(), StatusCode::TOO_MANY_REQUESTS, "a new window");
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn forwarded_addresses_count_apart_only_behind_a_trusted_proxy() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(START));
    let server = TestServer::start_with_clock(
        |c| {
            c.login.api_requests_per_ip_per_minute = 2;
            c.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
        },
        Arc::new(clock.clone()),
    )
    .await;
    let discovery = |forwarded: &'static str| {
        server
            .client
            .get(format!("{}/.well-known/openid-configuration", server.url))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(discovery("203.0.113.7").await.expect("get").status(), StatusCode::OK);
    }
    assert_eq!(discovery("203.0.113.7").await.expect("get").status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(discovery("198.51.100.1").await.expect("get").status(), StatusCode::OK, "another client");
    assert_eq!(
        discovery("198.51.100.1, 203.0.113.7").await.expect("get").status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a forged entry to the left of the proxy's does not help"
    );
    server.stop().await;

    let untrusted = TestServer::start_with_clock(|c| c.login.api_requests_per_ip_per_minute = 2, Arc::new(clock)).await;
    for forwarded in ["192.0.2.1", "192.0.2.2"] {
        let response = untrusted
            .client
            .get(format!("{}/.well-known/openid-configuration", untrusted.url))
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = untrusted
        .client
        .get(format!("{}/.well-known/openid-configuration", untrusted.url))
        .header("x-forwarded-for", "192.0.2.3")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "without a trusted proxy the peer is the client");
}
