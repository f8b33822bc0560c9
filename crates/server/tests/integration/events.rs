//! Outbound events end to end: the admin API, the delivery worker, and a receiver on loopback that checks
//! every signature with the `standardwebhooks` crate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Backend, TestServer, assert_catalog_error, read_json};

/// What the receiver got: the event and which of its known secrets verified it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) body: Value,
    pub(crate) verified_by: Vec<usize>,
}

#[derive(Default)]
pub(crate) struct Receiver {
    secrets: Mutex<Vec<String>>,
    received: Mutex<Vec<Received>>,
    down: Mutex<bool>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    if *receiver.down.lock().expect("lock") {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let verified_by: Vec<usize> = receiver
        .secrets
        .lock()
        .expect("ok")
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            standardwebhooks::Webhook::new(secret).is_ok_and(|hook| hook.verify(body.as_bytes(), &headers).is_ok())
        })
        .map(|(i, _)| i)
        .collect();
    if verified_by.is_empty() {
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers["webhook-id"].to_str().expect("ok").to_owned();
    let body = serde_json::from_str(&body).expect("ok");
    receiver.received.lock().expect("lock").push(Received { id, body, verified_by });
    StatusCode::NO_CONTENT
}

pub(crate) async fn start_receiver() -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("ok");
    let url = format!("http://{}/hook", listener.local_addr().expect("ok"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("ok") });
    (url, receiver)
}

pub(crate) async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(found) = probe().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

pub(crate) fn received_of(receiver: &Receiver, event_type: &str) -> Vec<Received> {
    receiver.received.lock().expect("lock").iter().filter(|r| r.body["type"] == event_type).cloned().collect()
}

/// Lets a test server send events to a receiver on loopback, promptly.
pub(crate) fn hear_events(c: &mut portcullis_server::config::Config) {
    c.events.poll_interval_ms = 50;
    if !c.connectors.egress_allow.iter().any(|a| a.starts_with("127.0.0.1")) {
        c.connectors.egress_allow.push("127.0.0.1".to_owned());
    }
}

/// A receiver with an endpoint of `org` pointing at it (every event type), its secret known to it.
pub(crate) async fn subscribe(server: &TestServer, org: &str) -> Arc<Receiver> {
    let (url, receiver) = start_receiver().await;
    let response = server
        .admin(Method::POST, &format!("/admin/v1/organizations/{org}/event-endpoints"))
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("endpoint");
    let (status, created) = read_json(response).await;
    assert_eq!(status, 201, "{created}");
    receiver.secrets.lock().expect("lock").push(created["secret"].as_str().expect("a string").to_owned());
    receiver
}

/// Waits for the event of `event_type` a cause raised and checks it was the only one: events written by
/// one cause are dispatched in the same pass, so by the time one arrives every other is in the log.
pub(crate) async fn the_one_event(server: &TestServer, org: &str, receiver: &Receiver, event_type: &str) -> Value {
    let event = eventually(event_type, async || received_of(receiver, event_type).pop()).await;
    let path = format!("/admin/v1/organizations/{org}/event-deliveries");
    let (_, log) = read_json(server.admin(Method::GET, &path).send().await.expect("log")).await;
    let of_type =
        log["deliveries"].as_array().expect("an array").iter().filter(|d| d["eventType"] == event_type).count();
    assert_eq!(of_type, 1, "one event per cause: {log}");
    event.body
}

struct Setup {
    server: TestServer,
    org: String,
    key: String,
}

async fn setup(backend: Backend) -> Setup {
    setup_polling(backend, 50).await
}

/// A server whose delivery worker looks for events every `poll_interval_ms` (and once at start).
async fn setup_polling(backend: Backend, poll_interval_ms: u64) -> Setup {
    let server = TestServer::start_with(backend, |c| {
        c.events.poll_interval_ms = poll_interval_ms;
        c.events.retry_initial_secs = 1;
        c.events.retry_max_secs = 1;
        c.events.max_attempts = 3;
        c.events.secret_overlap_secs = 60;
        c.session.refresh_grace_secs = 0;
        c.connectors.egress_allow = vec!["127.0.0.1".to_owned()];
    })
    .await;
    let org = server.app.create_organization("events").await.expect("organization").id;
    let key = server.app.create_api_key(&org).await.expect("API key").secret;
    Setup { server, org, key }
}

impl Setup {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.server.admin(method, &format!("/admin/v1/organizations/{}{path}", self.org));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        if response.status() == 204 {
            return (204, Value::Null);
        }
        read_json(response).await
    }

    /// Makes a session of `user` and replays its first refresh token after a rotation: a theft.
    async fn theft(&self, user: &str) {
        let call =
            |path: &str, body: Value| self.server.request(Method::POST, path).bearer_auth(&self.key).json(&body).send();
        let (_, created) = read_json(call("/api/v1/sessions", json!({ "userId": user })).await.expect("ok")).await;
        let token = created["refreshToken"].clone();
        let (status, _) =
            read_json(call("/api/v1/sessions/refresh", json!({ "refreshToken": token })).await.expect("ok")).await;
        assert_eq!(status, 200);
        let (status, theft) =
            read_json(call("/api/v1/sessions/refresh", json!({ "refreshToken": token })).await.expect("ok")).await;
        assert_eq!((status, theft["errorCode"].as_str()), (401, Some("tokenTheftDetected")));
    }
}

async fn delivers_signed_events_in_order_with_retries_and_replays(backend: Backend) {
    let s = setup(backend).await;
    let (url, receiver) = start_receiver().await;

    let (status, created) = s
        .admin(Method::POST, "/event-endpoints", Some(json!({ "url": url, "eventTypes": ["session.theftDetected"] })))
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("a string").to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint = created["endpoint"]["id"].as_str().expect("a string").to_owned();
    assert!(created["endpoint"].get("secret").is_none() && created["endpoint"].get("sealedSecrets").is_none());
    receiver.secrets.lock().expect("lock").push(secret);

    // One theft, one event, signed, naming its catalog code.
    s.theft("alice").await;
    let first = eventually("the theft event", async || received_of(&receiver, "session.theftDetected").pop()).await;
    assert_eq!(first.body["data"]["code"], "tokenTheftDetected");
    assert_eq!(first.body["data"]["userId"], "alice");
    assert_eq!(first.body["data"]["organizationId"], s.org.as_str());
    assert!(first.id.starts_with("msg_"));

    // The receiver is down: both thefts wait, then arrive in order once it is back.
    *receiver.down.lock().expect("lock") = true;
    s.theft("bob").await;
    s.theft("carol").await;
    eventually("a failed attempt in the log", async || {
        let (_, log) = s.admin(Method::GET, "/event-deliveries?state=pending", None).await;
        log["deliveries"].as_array().expect("an array").iter().any(|d| d["lastStatus"] == 503).then_some(())
    })
    .await;
    *receiver.down.lock().expect("lock") = false;
    let all = eventually("both held-back events", async || {
        let all = received_of(&receiver, "session.theftDetected");
        (all.len() == 3).then_some(all)
    })
    .await;
    let users: Vec<&str> = all.iter().map(|r| r.body["data"]["userId"].as_str().expect("a string")).collect();
    assert_eq!(users, ["alice", "bob", "carol"], "in the order of their causes");

    // A rotation: both secrets sign during the overlap, so receivers of either verify.
    let (status, rotated) = s.admin(Method::POST, &format!("/event-endpoints/{endpoint}/rotate-secret"), None).await;
    assert_eq!(status, 200, "{rotated}");
    receiver.secrets.lock().expect("lock").push(rotated["secret"].as_str().expect("a string").to_owned());
    s.theft("dave").await;
    let last = eventually("the event after rotation", async || {
        received_of(&receiver, "session.theftDetected").into_iter().find(|r| r.body["data"]["userId"] == "dave")
    })
    .await;
    assert_eq!(last.verified_by, [0, 1], "old and new secrets both verify");

    // An endpoint that never answers: attempts run out, the delivery is dead, a replay sends it again.
    let (status, dead_end) = s
        .admin(
            Method::POST,
            "/event-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hook", "eventTypes": ["keys.rotated"] })),
        )
        .await;
    assert_eq!(status, 201, "{dead_end}");
    let dead_end_id = dead_end["endpoint"]["id"].as_str().expect("a string").to_owned();
    s.server.app.rotate_keys().await.expect("rotation");
    let dead = eventually("a dead delivery", async || {
        let (_, log) =
            s.admin(Method::GET, &format!("/event-deliveries?state=dead&endpoint={dead_end_id}"), None).await;
        log["deliveries"].as_array().expect("an array").first().cloned()
    })
    .await;
    assert_eq!((dead["attempts"].as_u64(), dead["eventType"].as_str()), (Some(3), Some("keys.rotated")));
    assert!(received_of(&receiver, "keys.rotated").is_empty(), "the first endpoint does not hear keys.rotated");
    let (status, _) =
        s.admin(Method::PATCH, &format!("/event-endpoints/{dead_end_id}"), Some(json!({ "url": url }))).await;
    assert_eq!(status, 200);
    receiver.secrets.lock().expect("lock").push(dead_end["secret"].as_str().expect("a string").to_owned());
    let (status, replay) = s
        .admin(Method::POST, &format!("/event-deliveries/{}/replay", dead["id"].as_str().expect("a string")), None)
        .await;
    assert_eq!((status, replay["state"].as_str()), (201, Some("pending")), "{replay}");
    let rotation = eventually("the replayed rotation", async || received_of(&receiver, "keys.rotated").pop()).await;
    assert_eq!(rotation.id, dead["eventId"].as_str().expect("a string"), "the same webhook-id");
    assert!(rotation.body["data"].get("code").is_none(), "a rotation is no failure");

    let (_, log) = s.admin(Method::GET, &format!("/event-deliveries?endpoint={endpoint}"), None).await;
    let delivered = log["deliveries"].as_array().expect("an array");
    assert_eq!(delivered.len(), 4);
    assert!(delivered.iter().all(|d| d["state"] == "delivered"), "{log}");
}

#[tokio::test]
async fn delivers_signed_events_in_order_with_retries_and_replays_on_sqlite() {
    delivers_signed_events_in_order_with_retries_and_replays(Backend::Sqlite).await;
}

#[tokio::test]
async fn delivers_signed_events_in_order_with_retries_and_replays_on_postgres() {
    delivers_signed_events_in_order_with_retries_and_replays(Backend::Postgres).await;
}

/// An endpoint hears the events raised after it was added, not those still waiting in the outbox from
/// before: what it gets does not depend on when the worker's next pass happens to run.
#[tokio::test]
async fn an_endpoint_hears_only_events_raised_after_it_was_added() {
    // The worker looks at start and then only once a minute: the test dispatches by hand.
    let s = setup_polling(Backend::Sqlite, 60_000).await;
    s.theft("before").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, created) =
        s.admin(Method::POST, "/event-endpoints", Some(json!({ "url": "http://127.0.0.1:9/hook" }))).await;
    assert_eq!(status, 201, "{created}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.theft("after").await;
    assert_eq!(s.server.app.events().dispatch(100).await.expect("dispatch"), 2, "both events leave the outbox");
    let (_, log) = s.admin(Method::GET, "/event-deliveries", None).await;
    let deliveries = log["deliveries"].as_array().expect("an array");
    assert_eq!(deliveries.len(), 1, "only the event raised after the endpoint was added: {log}");
}

#[tokio::test]
async fn endpoint_input_is_checked_and_secrets_never_come_back() {
    let s = setup(Backend::Sqlite).await;
    let refusals = [
        (json!({ "url": "ftp://example.com/hook" }), 400, "entityInvalid"),
        (json!({ "url": "not a url" }), 400, "entityInvalid"),
        (json!({ "url": "https://user:pass@example.com/hook" }), 400, "entityInvalid"),
        (json!({ "url": "https://example.com/hook", "eventTypes": ["session.created"] }), 400, "entityInvalid"),
        (json!({ "url": "https://example.com/hook", "secret": "mine" }), 400, "entityInvalid"),
        (json!({ "url": "http://10.0.0.7/hook" }), 403, "egressRefused"),
        (json!({ "url": "http://169.254.169.254/latest" }), 403, "egressRefused"),
    ];
    for (body, status, code) in refusals {
        let response = s
            .server
            .admin(Method::POST, &format!("/admin/v1/organizations/{}/event-endpoints", s.org))
            .json(&body)
            .send()
            .await
            .expect("ok");
        assert_catalog_error(response, status, code).await;
    }
    let response =
        s.server.admin(Method::GET, "/admin/v1/organizations/nope/event-endpoints").send().await.expect("ok");
    assert_catalog_error(response, 404, "entityMissing").await;
    let response = s
        .server
        .request(Method::GET, &format!("/admin/v1/organizations/{}/event-endpoints", s.org))
        .bearer_auth(&s.key)
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 401, "an organization API key is not the admin token");

    let (status, created) =
        s.admin(Method::POST, "/event-endpoints", Some(json!({ "url": "https://example.com/hook" }))).await;
    assert_eq!(status, 201);
    let secret = created["secret"].as_str().expect("a string").to_owned();
    let id = created["endpoint"]["id"].as_str().expect("a string").to_owned();
    for path in ["/event-endpoints".to_owned(), format!("/event-endpoints/{id}")] {
        let (status, body) = s.admin(Method::GET, &path, None).await;
        assert_eq!(status, 200);
        assert!(!body.to_string().contains(&secret), "a secret came back: {body}");
    }
    let (status, changed) = s
        .admin(Method::PATCH, &format!("/event-endpoints/{id}"), Some(json!({ "enabled": false, "eventTypes": [] })))
        .await;
    assert_eq!((status, changed["enabled"].as_bool()), (200, Some(false)));
    let (status, _) = s.admin(Method::GET, "/event-deliveries?state=lost", None).await;
    assert_eq!(status, 400);
    let (status, _) = s.admin(Method::DELETE, &format!("/event-endpoints/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = s.admin(Method::DELETE, &format!("/event-endpoints/{id}"), None).await;
    assert_eq!(status, 404);
}
