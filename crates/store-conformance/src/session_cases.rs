//! Session and API-key cases.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::organization::{ApiKeyRecord, Organization};
use portcullis_core::session::{
    MAX_SIBLINGS, RefreshOutcome, RefreshRequest, SessionRecord, TheftKind, UnauthorisedReason, hash1, hash2_of_hash1,
};
use portcullis_core::store::{Store, StoreError};
use serde_json::{Map, json};

const GRACE_MILLIS: i64 = 30_000;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

fn h2(token: &str) -> String {
    hash2_of_hash1(&hash1(token))
}

async fn organization(store: &Arc<dyn Store>) -> String {
    let org = Organization::new("sessions", at(0)).expect("organization");
    store.insert_organization(&org).await.expect("insert organization");
    org.id
}

fn session(org: &str, handle: &str, user: &str) -> SessionRecord {
    let mut payload = Map::new();
    payload.insert("st-role".to_owned(), json!({"v": ["admin", "ünïcode"], "t": 1}));
    SessionRecord {
        handle: handle.to_owned(),
        organization_id: org.to_owned(),
        user_id: user.to_owned(),
        tenant_id: "public".to_owned(),
        payload,
        current_hashes: vec![h2("t0")],
        previous_hash: None,
        rotated_at: None,
        created_at: at(0),
        expires_at: at(1_000_000),
        revoked_at: None,
        data: Map::from_iter([("cart".to_owned(), json!({"items": [1, 2], "note": "ünïcode"}))]),
    }
}

fn request(presented: &str, new: &str, now: i64) -> RefreshRequest {
    RefreshRequest {
        organization_id: None,
        presented_hash2: h2(presented),
        presented_parent_hash1: None,
        new_hash2: h2(new),
        now: at(now),
        grace_millis: GRACE_MILLIS,
        new_expires_at: at(now + 1_000_000),
    }
}

/// Sessions are read back exactly, and listed per user.
pub async fn sessions_round_trip(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let first = session(&org, "00000000-0000-4000-8000-000000000001", "alice");
    let second = session(&org, "00000000-0000-4000-8000-000000000002", "alice");
    store.insert_session(&first).await.expect("insert");
    store.insert_session(&second).await.expect("insert");
    store.insert_session(&session(&org, "00000000-0000-4000-8000-000000000003", "bob")).await.expect("insert");
    assert_eq!(store.session(&first.handle).await.expect("get"), Some(first.clone()));
    assert_eq!(store.user_sessions(&org, "alice").await.expect("list"), vec![first.clone(), second]);
    assert_eq!(store.session("no-such-handle").await.expect("get"), None);
    let err = store.insert_session(&first).await.expect_err("duplicate handle");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let orphan = session("no-such-organization", "00000000-0000-4000-8000-000000000009", "eve");
    let err = store.insert_session(&orphan).await.expect_err("session of an unknown organization");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

/// Concurrent refreshes with one token inside the grace window: one rotation, the rest siblings, none
/// is theft.
pub async fn concurrent_refreshes_rotate_once_and_never_look_like_theft(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let s = session(&org, "00000000-0000-4000-8000-000000000010", "alice");
    store.insert_session(&s).await.expect("insert");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(store);
            let handle = s.handle.clone();
            tokio::spawn(async move { store.refresh_session(&handle, &request("t0", &format!("n{i}"), 10)).await })
        })
        .collect();
    let (mut rotated, mut grace) = (0, 0);
    for task in tasks {
        match task.await.expect("task").expect("refresh") {
            Some(RefreshOutcome::Rotated(_)) => rotated += 1,
            Some(RefreshOutcome::RotatedInGrace(_)) => grace += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((rotated, grace), (1, 15));
    let stored = store.session(&s.handle).await.expect("get").expect("session");
    assert_eq!(stored.current_hashes.len(), MAX_SIBLINGS);
    assert_eq!(stored.previous_hash, Some(h2("t0")));
    assert_eq!(stored.revoked_at, None);
}

/// Reuse after the grace window is theft: the session is revoked in the same write, and stays revoked.
pub async fn reuse_after_grace_revokes_the_family(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let s = session(&org, "00000000-0000-4000-8000-000000000020", "alice");
    store.insert_session(&s).await.expect("insert");
    let first = store.refresh_session(&s.handle, &request("t0", "t1", 10)).await.expect("refresh");
    assert!(matches!(first, Some(RefreshOutcome::Rotated(_))));
    assert!(store.undispatched_events(10).await.expect("outbox").is_empty(), "a rotation raises no event");
    let replay = store.refresh_session(&s.handle, &request("t0", "tx", 10 + GRACE_MILLIS + 1)).await.expect("refresh");
    assert!(matches!(replay, Some(RefreshOutcome::TheftDetected { kind: TheftKind::RecentPrev, .. })), "{replay:?}");
    let events = store.undispatched_events(10).await.expect("outbox");
    assert_eq!(events.len(), 1, "the revocation wrote its event: {events:?}");
    assert_eq!(
        (events[0].1.event_type.as_str(), events[0].1.organization_id.as_deref()),
        ("session.theftDetected", Some(org.as_str()))
    );
    let stored = store.session(&s.handle).await.expect("get").expect("session");
    assert_eq!(stored.revoked_at, Some(at(10 + GRACE_MILLIS + 1)));
    let victim = store.refresh_session(&s.handle, &request("t1", "t2", 40_000)).await.expect("refresh");
    assert_eq!(victim, Some(RefreshOutcome::Unauthorised(UnauthorisedReason::Revoked)));
    assert_eq!(store.undispatched_events(10).await.expect("outbox").len(), 1, "a refused refresh raises none");
    assert_eq!(
        store.refresh_session("00000000-0000-4000-8000-00000000ffff", &request("t0", "t1", 1)).await.expect("refresh"),
        None
    );
}

/// Another organization's refresh neither succeeds nor changes the row.
pub async fn foreign_organization_refresh_changes_nothing(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let s = session(&org, "00000000-0000-4000-8000-000000000030", "alice");
    store.insert_session(&s).await.expect("insert");
    let mut foreign = request("t0", "t1", 10);
    foreign.organization_id = Some("another".to_owned());
    let outcome = store.refresh_session(&s.handle, &foreign).await.expect("refresh");
    assert_eq!(outcome, Some(RefreshOutcome::Unauthorised(UnauthorisedReason::Missing)));
    assert_eq!(store.session(&s.handle).await.expect("get"), Some(s));
}

/// Revocation one by one and per user, the revocation feed, and claim updates.
pub async fn revocation_feed_and_payload_updates(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    for (i, user) in ["alice", "alice", "bob"].iter().enumerate() {
        store
            .insert_session(&session(&org, &format!("00000000-0000-4000-8000-00000000004{i}"), user))
            .await
            .expect("insert");
    }
    assert!(store.revoke_session(&org, "00000000-0000-4000-8000-000000000042", at(5)).await.expect("revoke"));
    assert!(
        !store.revoke_session(&org, "00000000-0000-4000-8000-000000000042", at(6)).await.expect("revoke"),
        "revoking twice"
    );
    assert!(!store.revoke_session("another", "00000000-0000-4000-8000-000000000040", at(6)).await.expect("revoke"));
    assert_eq!(store.revoke_user_sessions(&org, "alice", at(7)).await.expect("revoke"), 2);
    assert_eq!(store.revoke_user_sessions(&org, "alice", at(8)).await.expect("revoke"), 0);
    let feed = store.revoked_since(&org, at(6)).await.expect("feed");
    let handles: Vec<&str> = feed.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(handles, ["00000000-0000-4000-8000-000000000040", "00000000-0000-4000-8000-000000000041"]);
    assert!(store.revoked_since("another", at(0)).await.expect("feed").is_empty());

    let mut payload = Map::new();
    payload.insert("plan".to_owned(), json!({"v": "pro", "t": 9}));
    assert!(
        store.update_session_payload(&org, "00000000-0000-4000-8000-000000000040", &payload).await.expect("update")
    );
    assert!(
        !store
            .update_session_payload("another", "00000000-0000-4000-8000-000000000040", &Map::new())
            .await
            .expect("update")
    );
    let stored = store.session("00000000-0000-4000-8000-000000000040").await.expect("get").expect("session");
    assert_eq!(stored.payload, payload);

    let data = Map::from_iter([("seen".to_owned(), json!(3))]);
    assert!(store.update_session_data(&org, "00000000-0000-4000-8000-000000000040", &data).await.expect("update"));
    assert!(
        !store
            .update_session_data("another", "00000000-0000-4000-8000-000000000040", &Map::new())
            .await
            .expect("update"),
        "another organization's session data must not change"
    );
    let stored = store.session("00000000-0000-4000-8000-000000000040").await.expect("get").expect("session");
    assert_eq!((stored.payload, stored.data), (payload, data), "data and payload are separate");
}

/// API keys are found by the hash of their secret only.
pub async fn api_keys_round_trip(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let key = ApiKeyRecord::generate(&org, at(0)).expect("key");
    store.insert_api_key(&key.record).await.expect("insert");
    assert_eq!(store.api_key_by_hash(&ApiKeyRecord::hash(&key.secret)).await.expect("get"), Some(key.record.clone()));
    assert_eq!(store.api_key_by_hash(&key.secret).await.expect("get"), None, "the secret itself is not stored");
    let err = store.insert_api_key(&key.record).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let second = ApiKeyRecord::generate(&org, at(10)).expect("key");
    store.insert_api_key(&second.record).await.expect("insert");
    let other_org = organization(store).await;
    let foreign = ApiKeyRecord::generate(&other_org, at(5)).expect("key");
    store.insert_api_key(&foreign.record).await.expect("insert");
    let ids = |keys: Vec<ApiKeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(store.api_keys(&org).await.expect("list")), [key.record.id.clone(), second.record.id.clone()]);
    assert!(
        !store.revoke_api_key(&org, &foreign.record.id, at(20)).await.expect("revoke"),
        "another organization's key"
    );
    assert!(store.revoke_api_key(&org, &key.record.id, at(20)).await.expect("revoke"));
    assert!(!store.revoke_api_key(&org, &key.record.id, at(30)).await.expect("revoke"), "revoked once");
    let listed = store.api_keys(&org).await.expect("list");
    assert_eq!((listed[0].revoked, listed[1].revoked), (Some(at(20)), None));
    let by_hash = store.api_key_by_hash(&ApiKeyRecord::hash(&key.secret)).await.expect("get").expect("kept");
    assert_eq!(by_hash.revoked, Some(at(20)), "a revoked key is kept, marked");
    assert_eq!(store.api_keys(&other_org).await.expect("list")[0].revoked, None);
}
