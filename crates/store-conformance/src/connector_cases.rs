//! Connector account and refresh-lease cases.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::organization::Organization;
use portcullis_core::store::{AccountState, ConnectorAccountRecord, Store, StoreError};

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

async fn organization(store: &Arc<dyn Store>) -> String {
    let org = Organization::new("connectors", at(0)).expect("organization");
    store.insert_organization(&org).await.expect("insert organization");
    org.id
}

fn account(org: &str, id: &str) -> ConnectorAccountRecord {
    ConnectorAccountRecord {
        id: id.to_owned(),
        organization_id: org.to_owned(),
        connector: "acme".to_owned(),
        sealed_credentials: vec![0, 1, 2, 255, 254],
        version: 1,
        state: AccountState::Ok,
        cooldown_until: None,
        last_failure: None,
        created_at: at(0),
        updated_at: at(0),
        rate_strikes: 0,
        rate_blocked_until: None,
    }
}

/// Accounts round-trip byte for byte, are scoped to their organization, and ids are unique per organization.
pub async fn connector_accounts_round_trip(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let other = organization(store).await;
    let mut a = account(&org, "a1");
    a.state = AccountState::NeedsReauth;
    a.cooldown_until = Some(at(30_000));
    a.last_failure = Some("invalid_grant".to_owned());
    store.insert_connector_account(&a).await.expect("insert");
    store.insert_connector_account(&account(&org, "a0")).await.expect("insert");
    store.insert_connector_account(&account(&other, "a1")).await.expect("same id in another organization");
    assert_eq!(store.connector_account(&org, "a1").await.expect("get"), Some(a.clone()));
    assert_eq!(store.connector_account(&org, "missing").await.expect("get"), None);
    let ids: Vec<String> = store.connector_accounts(&org).await.expect("list").into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["a0", "a1"]);
    let err = store.insert_connector_account(&a).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.delete_connector_account(&org, "a1").await.expect("delete"));
    assert!(!store.delete_connector_account(&org, "a1").await.expect("delete again"));
    assert!(store.connector_account(&other, "a1").await.expect("get").is_some(), "the other organization's is kept");
}

/// Credential writes are compare-and-swap on `version`: of many concurrent writers from one version,
/// exactly one lands, and a stale version writes nothing; each writer's event is in the outbox only if
/// its write landed.
pub async fn connector_credential_swaps_have_one_winner(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    store.insert_connector_account(&account(&org, "acct")).await.expect("insert");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = Arc::clone(store);
        let mut next = account(&org, "acct");
        next.version = 2;
        next.sealed_credentials = vec![i; 8];
        next.updated_at = at(1_000);
        next.state = AccountState::NeedsReauth;
        tasks.push(tokio::spawn(async move {
            let event = Event::for_account_write(&account(&next.organization_id, "acct"), &next);
            (i, store.swap_connector_account(&next, 1, event.as_ref()).await.expect("swap"))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, won) = task.await.expect("task");
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = store.connector_account(&org, "acct").await.expect("get").expect("exists");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.sealed_credentials, vec![winners[0]; 8]);
    let mut stale = account(&org, "acct");
    stale.version = 2;
    let invented = Event::for_account_write(&stored, &stale);
    assert!(invented.is_some());
    assert!(
        !store.swap_connector_account(&stale, 1, invented.as_ref()).await.expect("stale swap"),
        "stale version writes nothing"
    );
    assert_eq!(store.connector_account(&org, "acct").await.expect("get").expect("exists"), stored);
    let events = store.undispatched_events(100).await.expect("outbox");
    assert_eq!(events.len(), 1, "one event per landed write, none for lost ones: {events:?}");
    assert_eq!(events[0].1.event_type, "connector.account.needsReauth");
}

/// 429 strikes count atomically and survive credential writes; a block keeps the later time; a clear forgets
/// both; only the named organization's account is touched.
pub async fn connector_rate_strikes_and_blocks_are_shared(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let other = organization(store).await;
    store.insert_connector_account(&account(&org, "a1")).await.expect("insert");
    store.insert_connector_account(&account(&other, "a1")).await.expect("insert");
    let strikes: Vec<_> = (0..8)
        .map(|_| {
            let (store, org) = (Arc::clone(store), org.clone());
            tokio::spawn(async move { store.strike_connector_rate(&org, "a1").await })
        })
        .collect();
    let mut counts = Vec::new();
    for strike in strikes {
        counts.push(strike.await.expect("task").expect("strike"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=8).collect::<Vec<u32>>(), "every strike counts once");
    assert_eq!(store.strike_connector_rate(&org, "missing").await.expect("no account"), 0);
    store.block_connector_rate(&org, "a1", at(60_000)).await.expect("block");
    store.block_connector_rate(&org, "a1", at(5_000)).await.expect("an earlier block");
    let stored = store.connector_account(&org, "a1").await.expect("get").expect("account");
    assert_eq!((stored.rate_strikes, stored.rate_blocked_until), (8, Some(at(60_000))));
    let written = ConnectorAccountRecord { version: 2, sealed_credentials: vec![9], ..account(&org, "a1") };
    assert!(store.swap_connector_account(&written, 1, None).await.expect("swap"));
    let stored = store.connector_account(&org, "a1").await.expect("get").expect("account");
    assert_eq!(
        (stored.rate_strikes, stored.rate_blocked_until),
        (8, Some(at(60_000))),
        "a credential write keeps them"
    );
    let untouched = store.connector_account(&other, "a1").await.expect("get").expect("account");
    assert_eq!((untouched.rate_strikes, untouched.rate_blocked_until), (0, None));
    store.clear_connector_rate(&org, "a1").await.expect("clear");
    let stored = store.connector_account(&org, "a1").await.expect("get").expect("account");
    assert_eq!((stored.rate_strikes, stored.rate_blocked_until), (0, None));
}

/// Send slots queue one interval apart per account and scope, whoever reserves them, and restart at `now`
/// once the queue has drained; deleting the account deletes its slots.
pub async fn connector_send_slots_queue_across_callers(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    store.insert_connector_account(&account(&org, "a1")).await.expect("insert");
    let step = Duration::from_millis(100);
    let reservations: Vec<_> = (0..5)
        .map(|_| {
            let (store, org) = (Arc::clone(store), org.clone());
            tokio::spawn(async move { store.reserve_connector_send_slot(&org, "a1", "", at(0), step).await })
        })
        .collect();
    let mut waits = Vec::new();
    for reservation in reservations {
        waits.push(reservation.await.expect("task").expect("slot"));
    }
    waits.sort_unstable();
    assert_eq!(waits, (0..5).map(|i| step * i).collect::<Vec<_>>(), "one slot each, one interval apart");
    let method = store.reserve_connector_send_slot(&org, "a1", "list", at(0), step).await.expect("slot");
    assert_eq!(method, Duration::ZERO, "another scope has its own queue");
    let later = store.reserve_connector_send_slot(&org, "a1", "", at(250), step).await.expect("slot");
    assert_eq!(later, Duration::from_millis(250), "queued behind the five before it");
    let drained = store.reserve_connector_send_slot(&org, "a1", "", at(10_000), step).await.expect("slot");
    assert_eq!(drained, Duration::ZERO);
    let fine = store.reserve_connector_send_slot(&org, "a1", "x", at(0), Duration::from_micros(300)).await;
    let next = store.reserve_connector_send_slot(&org, "a1", "x", at(0), Duration::from_micros(300)).await;
    assert_eq!((fine.expect("slot"), next.expect("slot")), (Duration::ZERO, Duration::from_micros(300)));
    assert!(store.delete_connector_account(&org, "a1").await.expect("delete"));
    store.insert_connector_account(&account(&org, "a1")).await.expect("insert again");
    let fresh = store.reserve_connector_send_slot(&org, "a1", "", at(0), step).await.expect("slot");
    assert_eq!(fresh, Duration::ZERO, "the deleted account's queue went with it");
}

/// A lease has one holder until it expires or is released; only the holder releases it.
pub async fn connector_leases_are_exclusive_until_expiry(store: &Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            store.try_connector_lease("org/acct", &format!("h{i}"), at(0), at(30_000)).await.expect("lease")
        }));
    }
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.expect("task"));
    }
    assert_eq!(taken, 1, "exactly one concurrent taker");
    assert!(!store.try_connector_lease("org/acct", "late", at(29_999), at(60_000)).await.expect("lease"));
    assert!(store.try_connector_lease("other", "late", at(29_999), at(60_000)).await.expect("another key"));
    assert!(store.try_connector_lease("org/acct", "late", at(30_000), at(60_000)).await.expect("expired lease"));
    store.release_connector_lease("org/acct", "not-the-holder").await.expect("release");
    assert!(!store.try_connector_lease("org/acct", "third", at(30_001), at(90_000)).await.expect("still held"));
    store.release_connector_lease("org/acct", "late").await.expect("release");
    assert!(store.try_connector_lease("org/acct", "third", at(30_001), at(90_000)).await.expect("released"));
}

/// Connector storage: JSON values per organization and scope, append and increment semantics, deletes and
/// the caps; a failed operation writes nothing.
pub async fn connector_storage_round_trip_and_caps(store: &Arc<dyn Store>) {
    use portcullis_core::store::{STORAGE_MAX_KEYS, STORAGE_MAX_VALUE_BYTES, StorageOp};
    let org = organization(store).await;
    let other = organization(store).await;
    let set = |v: &str| StorageOp::Set(v.to_owned());
    assert_eq!(
        store.connector_storage_apply(&org, "acme", "a", &set(r#"{"x":1}"#), at(0)).await.expect("set"),
        r#"{"x":1}"#
    );
    store.connector_storage_apply(&org, "acme", "b", &set("2"), at(0)).await.expect("set");
    store.connector_storage_apply(&org, "other-connector", "a", &set("true"), at(0)).await.expect("set");
    store.connector_storage_apply(&other, "acme", "a", &set("null"), at(0)).await.expect("set");
    assert_eq!(store.connector_storage_get(&org, "acme", "a").await.expect("get").as_deref(), Some(r#"{"x":1}"#));
    assert_eq!(store.connector_storage_get(&org, "acme", "missing").await.expect("get"), None);
    let entries = store.connector_storage_entries(&org, "acme").await.expect("entries");
    assert_eq!(entries, [("a".to_owned(), r#"{"x":1}"#.to_owned()), ("b".to_owned(), "2".to_owned())]);

    let append = |v: &str| StorageOp::Append(v.to_owned());
    assert_eq!(store.connector_storage_apply(&org, "acme", "list", &append("1"), at(1)).await.expect("append"), "[1]");
    assert_eq!(
        store.connector_storage_apply(&org, "acme", "list", &append(r#""x""#), at(1)).await.expect("append"),
        r#"[1,"x"]"#
    );
    assert_eq!(store.connector_storage_apply(&org, "acme", "b", &append("3"), at(1)).await.expect("append"), "[2,3]");
    assert_eq!(
        store.connector_storage_apply(&org, "acme", "n", &StorageOp::Increment(5.0), at(1)).await.expect("inc"),
        "5"
    );
    assert_eq!(
        store.connector_storage_apply(&org, "acme", "n", &StorageOp::Increment(-1.5), at(1)).await.expect("dec"),
        "3.5"
    );
    let err = store
        .connector_storage_apply(&org, "acme", "a", &StorageOp::Increment(1.0), at(1))
        .await
        .expect_err("not a number");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.connector_storage_get(&org, "acme", "a").await.expect("get").as_deref(),
        Some(r#"{"x":1}"#),
        "unchanged"
    );
    let big = format!("\"{}\"", "x".repeat(STORAGE_MAX_VALUE_BYTES));
    let err = store.connector_storage_apply(&org, "acme", "big", &set(&big), at(1)).await.expect_err("too large");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.connector_storage_get(&org, "acme", "big").await.expect("get"), None);

    assert_eq!(store.connector_storage_delete(&org, "acme", Some("b")).await.expect("delete"), 1);
    assert_eq!(store.connector_storage_delete(&org, "acme", Some("b")).await.expect("delete again"), 0);
    assert_eq!(store.connector_storage_delete(&org, "acme", None).await.expect("delete all"), 3);
    assert!(store.connector_storage_entries(&org, "acme").await.expect("entries").is_empty());
    assert_eq!(store.connector_storage_get(&org, "other-connector", "a").await.expect("get").as_deref(), Some("true"));
    assert_eq!(store.connector_storage_get(&other, "acme", "a").await.expect("get").as_deref(), Some("null"));

    for i in 0..STORAGE_MAX_KEYS {
        store.connector_storage_apply(&org, "full", &format!("k{i}"), &set("0"), at(2)).await.expect("within the cap");
    }
    let err = store.connector_storage_apply(&org, "full", "one-more", &set("0"), at(2)).await.expect_err("key cap");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    store.connector_storage_apply(&org, "full", "k0", &set("1"), at(2)).await.expect("existing keys stay writable");
}

/// Increments are atomic: 32 concurrent `increment(1)` on one new key leave 32.
pub async fn connector_storage_increments_all_count(store: &Arc<dyn Store>) {
    use portcullis_core::store::StorageOp;
    let org = organization(store).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, org) = (Arc::clone(store), org.clone());
            tokio::spawn(async move {
                store.connector_storage_apply(&org, "acme", "counter", &StorageOp::Increment(1.0), at(0)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("increment"));
    }
    assert_eq!(store.connector_storage_get(&org, "acme", "counter").await.expect("get").as_deref(), Some("32"));
    results.sort_by_key(|r| r.parse::<u32>().unwrap_or(0));
    let expected: Vec<String> = (1..=32).map(|n: u32| n.to_string()).collect();
    assert_eq!(results, expected, "each increment saw its own value");
}
