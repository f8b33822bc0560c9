//! The cases. Each takes a migrated store and panics with a clear message when the backend misbehaves.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::Timestamp;
use portcullis_core::keys::{KeyPolicy, KeyRing, MasterKey, SigningAlgorithm};
use portcullis_core::organization::Organization;
use portcullis_core::store::{KeyOwner, SigningKeyRecord, Store, StoreError};

const WRITERS: usize = 64;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

fn organization(name: &str, millis: i64) -> Organization {
    Organization::new(name, at(millis)).expect("valid organization")
}

fn policy() -> KeyPolicy {
    KeyPolicy {
        algorithm: SigningAlgorithm::EdDSA,
        rotation_interval: Duration::from_secs(3600),
        publish_lead: Duration::from_secs(60),
        retain_after_retirement: Duration::from_secs(600),
    }
}

fn master() -> MasterKey {
    MasterKey::generate().expect("master key").0
}

/// Runs the migrations from four tasks at once, as instances starting together would.
pub async fn migrate(store: &Arc<dyn Store>) {
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.expect("task").expect("migration");
    }
}

/// Migrating again changes nothing and the store answers.
pub async fn migrations_are_idempotent_and_concurrent_safe(store: &Arc<dyn Store>) {
    store.insert_organization(&organization("kept", 0)).await.expect("insert");
    store.migrate().await.expect("second migration");
    store.ping().await.expect("ping");
    assert_eq!(store.organizations().await.expect("list").len(), 1, "migration lost data");
}

/// What is written is read back, oldest first.
pub async fn organizations_round_trip(store: &Arc<dyn Store>) {
    let later = organization("Later Ltd", 5);
    let first = organization("First & Co — ünïcode", 1);
    store.insert_organization(&later).await.expect("insert");
    store.insert_organization(&first).await.expect("insert");
    assert_eq!(store.organization(&first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(store.organizations().await.expect("list"), vec![first, later]);
}

/// An unknown id is `None`, not an error.
pub async fn unknown_organization_is_none(store: &Arc<dyn Store>) {
    assert_eq!(store.organization("no-such-id").await.expect("get"), None);
    assert_eq!(store.organization("' OR 1=1 --").await.expect("get"), None);
}

/// A second insert with the same id is a conflict and leaves the first intact.
pub async fn duplicate_organization_id_conflicts_and_keeps_the_first(store: &Arc<dyn Store>) {
    let original = organization("Original", 0);
    store.insert_organization(&original).await.expect("insert");
    let impostor = Organization { name: "Impostor".to_owned(), ..original.clone() };
    let err = store.insert_organization(&impostor).await.expect_err("duplicate id accepted");
    assert!(matches!(err, StoreError::Conflict(_)), "expected a conflict, got {err:?}");
    assert_eq!(store.organization(&original.id).await.expect("get"), Some(original));
}

/// Many concurrent writers: every write lands.
pub async fn concurrent_writers_all_land(store: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let org = organization(&format!("org {i}"), i64::try_from(i).unwrap_or(0));
                store.insert_organization(&org).await.map(|()| org.id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").expect("concurrent insert"));
    }
    let stored: Vec<String> = store.organizations().await.expect("list").into_iter().map(|o| o.id).collect();
    assert_eq!(stored.len(), WRITERS);
    for id in ids {
        assert!(stored.contains(&id), "{id} was lost");
    }
}

/// How many of the racing writes succeeded; every loser must have lost with a conflict.
async fn winners(tasks: Vec<tokio::task::JoinHandle<Result<(), StoreError>>>) -> usize {
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("expected a conflict, got {other:?}"),
        }
    }
    won
}

/// Concurrent inserts of one id: exactly one wins, the others conflict.
pub async fn concurrent_inserts_of_one_id_have_one_winner(store: &Arc<dyn Store>) {
    let base = organization("contended", 0);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(store);
            let org = Organization { name: format!("contender {i}"), ..base.clone() };
            tokio::spawn(async move { store.insert_organization(&org).await })
        })
        .collect();
    let won = winners(tasks).await;
    assert_eq!(won, 1);
    assert_eq!(store.organizations().await.expect("list").len(), 1);
}

fn key_record(kid: &str, signs_from: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        algorithm: SigningAlgorithm::RS256,
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        sealed_private_key: vec![0, 1, 2, 255, 0, 128],
        created_at: at(signs_from - 60_000),
        signs_from: at(signs_from),
    }
}

/// Keys are read back exactly, ordered by when they sign.
pub async fn signing_keys_round_trip_byte_for_byte(store: &Arc<dyn Store>) {
    let first = key_record("d-1", 0);
    let second = key_record("d-2", 100);
    store.insert_signing_key(KeyOwner::Server, &first, None).await.expect("first key");
    store.insert_signing_key(KeyOwner::Server, &second, Some("d-1")).await.expect("second key");
    assert_eq!(store.signing_keys(KeyOwner::Server).await.expect("keys"), vec![first, second]);
}

/// A rotation whose precondition is stale conflicts and writes nothing.
pub async fn key_insert_with_a_stale_precondition_writes_nothing(store: &Arc<dyn Store>) {
    store.insert_signing_key(KeyOwner::Server, &key_record("d-1", 0), None).await.expect("first key");
    for stale in [None, Some("d-0")] {
        let err = store
            .insert_signing_key(KeyOwner::Server, &key_record("d-2", 1), stale)
            .await
            .expect_err("stale precondition");
        assert!(matches!(err, StoreError::Conflict(_)), "expected a conflict, got {err:?}");
    }
    let err = store
        .insert_signing_key(KeyOwner::Server, &key_record("d-1", 5), Some("d-1"))
        .await
        .expect_err("duplicate kid");
    assert!(matches!(err, StoreError::Conflict(_)), "expected a conflict, got {err:?}");
    let kids: Vec<String> =
        store.signing_keys(KeyOwner::Server).await.expect("keys").into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["d-1"], "a failed rotation left a partial write");
    assert!(store.undispatched_events(10).await.expect("outbox").is_empty(), "no event without a rotation");
    store
        .insert_signing_key(KeyOwner::Server, &key_record("d-2", 1), Some("d-1"))
        .await
        .expect("rotation after failures");
    let outbox = store.undispatched_events(10).await.expect("outbox");
    assert_eq!(outbox.iter().map(|(_, e)| e.event_type.as_str()).collect::<Vec<_>>(), ["keys.rotated"]);
}

/// A key is a rotation only when its family (its algorithm) had a key already: the first RS256 ID-token
/// key of a ring that signs sessions with EdDSA raises no `keys.rotated` event.
pub async fn a_family_s_first_key_is_no_rotation(store: &Arc<dyn Store>) {
    let org = organization("families", 1);
    store.insert_organization(&org).await.expect("organization");
    let of = |kid: &str, algorithm| SigningKeyRecord { algorithm, ..key_record(kid, 0) };
    for owner in [KeyOwner::Server, KeyOwner::Organization(&org.id)] {
        store.insert_signing_key(owner, &of("d-1", SigningAlgorithm::EdDSA), None).await.expect("first key");
        store.insert_signing_key(owner, &of("d-2", SigningAlgorithm::RS256), Some("d-1")).await.expect("family");
    }
    assert!(store.undispatched_events(10).await.expect("outbox").is_empty(), "a family's first key is no rotation");
    store.insert_signing_key(KeyOwner::Server, &of("d-3", SigningAlgorithm::RS256), Some("d-2")).await.expect("rs");
    let owner = KeyOwner::Organization(&org.id);
    store.insert_signing_key(owner, &of("d-3", SigningAlgorithm::EdDSA), Some("d-2")).await.expect("ed");
    let outbox = store.undispatched_events(10).await.expect("outbox");
    let rotated: Vec<_> = outbox.iter().map(|(_, e)| (e.event_type.as_str(), e.organization_id.as_deref())).collect();
    assert_eq!(rotated, [("keys.rotated", None), ("keys.rotated", Some(org.id.as_str()))]);
}

/// Instances rotating at once add exactly one key.
pub async fn concurrent_rotations_add_exactly_one_key(store: &Arc<dyn Store>) {
    store.insert_signing_key(KeyOwner::Server, &key_record("d-1", 0), None).await.expect("first key");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store.insert_signing_key(KeyOwner::Server, &key_record(&format!("d-1{i:02}"), 10), Some("d-1")).await
            })
        })
        .collect();
    let won = winners(tasks).await;
    assert_eq!(won, 1, "concurrent rotations must add exactly one key");
    assert_eq!(store.signing_keys(KeyOwner::Server).await.expect("keys").len(), 2);
}

/// Each organization's ring is its own: the same `kid` in the server's ring and in two organizations' rings
/// are three keys, each ring lists only its own, and concurrent first keys of one ring add exactly one.
pub async fn organization_key_rings_are_separate(store: &Arc<dyn Store>) {
    let (a, b) = (organization("a", 1), organization("b", 2));
    for org in [&a, &b] {
        store.insert_organization(org).await.expect("organization");
    }
    let (a, b) = (a.id.as_str(), b.id.as_str());
    store.insert_signing_key(KeyOwner::Server, &key_record("d-1", 0), None).await.expect("server key");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, a) = (Arc::clone(store), a.to_owned());
            tokio::spawn(async move {
                store.insert_signing_key(KeyOwner::Organization(&a), &key_record(&format!("d-{i}"), 0), None).await
            })
        })
        .collect();
    assert_eq!(winners(tasks).await, 1, "concurrent first keys of one ring must add exactly one");
    let a_first = store.signing_keys(KeyOwner::Organization(a)).await.expect("keys")[0].kid.clone();
    store.insert_signing_key(KeyOwner::Organization(b), &key_record("d-1", 0), None).await.expect("same kid");
    let err = store
        .insert_signing_key(KeyOwner::Organization(b), &key_record("d-2", 1), Some("d-0-stale"))
        .await
        .expect_err("stale precondition");
    assert!(matches!(err, StoreError::Conflict(_)), "expected a conflict, got {err:?}");
    store
        .insert_signing_key(KeyOwner::Organization(a), &key_record("d-9", 5), Some(&a_first))
        .await
        .expect("rotation of one organization's ring");
    let kids = |keys: Vec<SigningKeyRecord>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(kids(store.signing_keys(KeyOwner::Server).await.expect("keys")), ["d-1"]);
    assert_eq!(kids(store.signing_keys(KeyOwner::Organization(a)).await.expect("keys")), [a_first, "d-9".to_owned()]);
    assert_eq!(kids(store.signing_keys(KeyOwner::Organization(b)).await.expect("keys")), ["d-1"]);
    assert!(store.signing_keys(KeyOwner::Organization("no-such-organization")).await.expect("keys").is_empty());
}

/// The key ring written through the store opens again and signs.
pub async fn stored_key_ring_opens_and_signs(store: &Arc<dyn Store>) {
    let master = master();
    let policy = policy();
    let first = KeyRing::default().next_key(at(0), &policy, &master).expect("first key");
    store.insert_signing_key(KeyOwner::Server, &first, None).await.expect("insert");
    let ring = KeyRing::open(store.signing_keys(KeyOwner::Server).await.expect("keys"), &master).expect("ring");
    let second = ring.next_key(at(1), &policy, &master).expect("second key");
    store.insert_signing_key(KeyOwner::Server, &second, ring.newest_kid()).await.expect("rotate");
    let ring = KeyRing::open(store.signing_keys(KeyOwner::Server).await.expect("keys"), &master).expect("ring");
    let signer = ring.signer(at(2), policy.algorithm).expect("a signing key");
    assert_eq!(signer.kid(), first.kid, "a new key must not sign before its publish lead");
    assert!(signer.sign_jwt(&serde_json::json!({ "sub": "x" })).is_ok());
    assert_eq!(ring.jwks(at(2), &policy)["keys"].as_array().map(Vec::len), Some(2));
}
