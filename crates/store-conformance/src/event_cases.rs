//! Event endpoint, outbox and delivery cases.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::events::{AttemptResult, Delivery, DeliveryState, EventEndpoint};
use portcullis_core::organization::Organization;
use portcullis_core::store::{AccountState, ConnectorAccountRecord, Store};

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

async fn organization(store: &Arc<dyn Store>) -> String {
    let org = Organization::new("events", at(0)).expect("organization");
    store.insert_organization(&org).await.expect("insert organization");
    org.id
}

fn endpoint(org: &str, id: &str, types: &[&str]) -> EventEndpoint {
    EventEndpoint {
        id: id.to_owned(),
        organization_id: org.to_owned(),
        url: format!("https://receiver.example/{id}"),
        description: "ünïcode".to_owned(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        enabled: true,
        sealed_secrets: vec![0, 1, 2, 255],
        created_at: at(i64::from(id.as_bytes()[id.len() - 1])),
        updated_at: at(0),
    }
}

fn delivery(event_id: &str, seq: i64, endpoint: &EventEndpoint, id: &str) -> Delivery {
    Delivery {
        id: id.to_owned(),
        event_id: event_id.to_owned(),
        event_seq: seq,
        event_type: "connector.account.needsReauth".to_owned(),
        endpoint_id: endpoint.id.clone(),
        organization_id: endpoint.organization_id.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: at(0),
        last_attempt_at: None,
        last_status: None,
        last_error: None,
        created_at: at(0),
        delivered_at: None,
    }
}

/// Endpoints round-trip, are listed per organization or all together, change and go with their
/// deliveries.
pub async fn event_endpoints_round_trip(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let other = organization(store).await;
    let a = endpoint(&org, "ep1", &["keys.rotated", "session.theftDetected"]);
    let b = endpoint(&other, "ep2", &[]);
    store.insert_event_endpoint(&a).await.expect("insert");
    store.insert_event_endpoint(&b).await.expect("insert");
    assert_eq!(store.event_endpoint(&org, "ep1").await.expect("get"), Some(a.clone()));
    assert_eq!(store.event_endpoint(&other, "ep1").await.expect("get"), None, "scoped to its organization");
    let ids = |list: Vec<EventEndpoint>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(store.event_endpoints(Some(&org)).await.expect("list")), ["ep1"]);
    assert_eq!(ids(store.event_endpoints(None).await.expect("list")), ["ep1", "ep2"]);
    let mut changed = a.clone();
    changed.enabled = false;
    changed.event_types.clear();
    changed.sealed_secrets = vec![9; 40];
    changed.updated_at = at(99);
    assert!(store.update_event_endpoint(&changed).await.expect("update"));
    assert_eq!(store.event_endpoint(&org, "ep1").await.expect("get"), Some(changed));
    let mut foreign = b.clone();
    foreign.organization_id.clone_from(&org);
    assert!(!store.update_event_endpoint(&foreign).await.expect("update"), "another organization's id");
    let event = portcullis_core::events::Event::for_account_write(
        &account(&org, AccountState::Ok),
        &account(&org, AccountState::NeedsReauth),
    )
    .expect("event");
    store.append_event(&event).await.expect("append");
    assert!(store.dispatch_event(&event.id, &[delivery(&event.id, 1, &a, "d1")]).await.expect("dispatch"));
    assert!(!store.delete_event_endpoint(&other, "ep1").await.expect("delete"), "another organization's id");
    assert!(store.delete_event_endpoint(&org, "ep1").await.expect("delete"));
    assert_eq!(store.delivery(&org, "d1").await.expect("get"), None, "its deliveries went with it");
    assert!(!store.delete_event_endpoint(&org, "ep1").await.expect("delete"));
}

fn account(org: &str, state: AccountState) -> ConnectorAccountRecord {
    ConnectorAccountRecord {
        id: "acct".to_owned(),
        organization_id: org.to_owned(),
        connector: "acme".to_owned(),
        sealed_credentials: Vec::new(),
        version: 1,
        state,
        cooldown_until: None,
        last_failure: Some("invalid_grant".to_owned()),
        created_at: at(0),
        updated_at: at(0),
        rate_strikes: 0,
        rate_blocked_until: None,
    }
}

/// Each event is fanned out once even when dispatchers race; an endpoint gets its deliveries one at a
/// time in outbox order, a failing one holding back the later ones until it is delivered or dead; attempts
/// are compare-and-swap; a replay is due again; the log filters by endpoint and state.
pub async fn deliveries_keep_endpoint_order_and_dispatch_once(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let (a, b) = (endpoint(&org, "ep1", &[]), endpoint(&org, "ep2", &[]));
    store.insert_event_endpoint(&a).await.expect("insert");
    store.insert_event_endpoint(&b).await.expect("insert");
    for _ in 0..3 {
        let event = portcullis_core::events::Event::for_account_write(
            &account(&org, AccountState::Ok),
            &account(&org, AccountState::NeedsReauth),
        )
        .expect("event");
        store.append_event(&event).await.expect("append");
    }
    let outbox = store.undispatched_events(10).await.expect("outbox");
    assert_eq!(outbox.len(), 3);
    assert!(outbox.windows(2).all(|w| w[0].0 < w[1].0), "in outbox order");
    let mut racers = Vec::new();
    for round in 0..4 {
        let store = Arc::clone(store);
        let (seq, event) = outbox[0].clone();
        let (a, b) = (a.clone(), b.clone());
        racers.push(tokio::spawn(async move {
            let rows = [
                delivery(&event.id, seq, &a, &format!("r{round}a")),
                delivery(&event.id, seq, &b, &format!("r{round}b")),
            ];
            store.dispatch_event(&event.id, &rows).await.expect("dispatch")
        }));
    }
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.expect("task"));
    }
    assert_eq!(won, 1, "an event is fanned out once");
    for (i, (seq, event)) in outbox.iter().enumerate().skip(1) {
        let rows = [delivery(&event.id, *seq, &a, &format!("a{i}")), delivery(&event.id, *seq, &b, &format!("b{i}"))];
        assert!(store.dispatch_event(&event.id, &rows).await.expect("dispatch"));
    }
    assert!(store.undispatched_events(10).await.expect("outbox").is_empty());
    let due = store.due_deliveries(at(0), 10).await.expect("due");
    assert_eq!(due.len(), 2, "one head per endpoint: {due:?}");
    assert!(due.iter().all(|d| d.delivery.event_id == outbox[0].1.id));
    assert!(
        due.iter().any(|d| d.url == a.url && d.sealed_secrets == a.sealed_secrets && d.payload == outbox[0].1.payload)
    );
    let policy = portcullis_core::events::RetryPolicy {
        initial: std::time::Duration::from_secs(5),
        max: std::time::Duration::from_secs(60),
        max_attempts: 2,
    };
    let head_a = due.iter().find(|d| d.delivery.endpoint_id == "ep1").expect("ep1 head").delivery.clone();
    let failed =
        head_a.attempted(&AttemptResult::Failed { status: Some(500), error: "500".into() }, at(1), &policy, 0.0);
    assert!(store.record_delivery_attempt(&failed, 0).await.expect("attempt"));
    assert!(!store.record_delivery_attempt(&failed, 0).await.expect("attempt"), "a stale attempt count writes nothing");
    let due = store.due_deliveries(at(2), 10).await.expect("due");
    assert_eq!(
        due.iter().map(|d| d.delivery.endpoint_id.as_str()).collect::<Vec<_>>(),
        ["ep2"],
        "ep1's head waits, and holds back the rest"
    );
    let dead =
        failed.attempted(&AttemptResult::Failed { status: None, error: "timeout".into() }, at(6_000), &policy, 0.0);
    assert_eq!(dead.state, DeliveryState::Dead);
    assert!(store.record_delivery_attempt(&dead, 1).await.expect("attempt"));
    let due = store.due_deliveries(at(6_000), 10).await.expect("due");
    let next_a = due.iter().find(|d| d.delivery.endpoint_id == "ep1").expect("ep1 moves on");
    assert_eq!(next_a.delivery.event_id, outbox[1].1.id);
    let delivered = next_a.delivery.attempted(&AttemptResult::Acknowledged(204), at(6_001), &policy, 0.0);
    assert!(store.record_delivery_attempt(&delivered, 0).await.expect("attempt"));
    assert_eq!(store.delivery(&org, &delivered.id).await.expect("get"), Some(delivered.clone()));
    let dead_log = store.deliveries(&org, Some("ep1"), Some(DeliveryState::Dead), 10).await.expect("log");
    assert_eq!(dead_log, vec![dead.clone()]);
    assert_eq!(store.deliveries(&org, None, None, 100).await.expect("log").len(), 6);
    assert_eq!(store.deliveries(&org, Some("ep2"), None, 100).await.expect("log").len(), 3);
    let mut replay = delivery(&dead.event_id, dead.event_seq, &a, "replay");
    replay.next_attempt_at = at(7_000);
    store.insert_delivery(&replay).await.expect("replay");
    let due = store.due_deliveries(at(7_000), 10).await.expect("due");
    let head_a = due.iter().find(|d| d.delivery.endpoint_id == "ep1").expect("ep1 head");
    assert_eq!(head_a.delivery.id, "replay", "a replay takes its event's place in the order");
}
