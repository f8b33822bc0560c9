//! Passkey cases: credential ids unique across organizations, counters by compare-and-swap, ceremonies
//! taken once.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::login::model::User;
use portcullis_core::organization::Organization;
use portcullis_core::passkey::{CeremonyKind, Passkey, PasskeyCeremony, PasskeyUse};
use portcullis_core::store::{Store, StoreError};

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

async fn user(store: &Arc<dyn Store>, org_name: &str, id: &str) -> User {
    let org = Organization::new(org_name, at(0)).expect("organization");
    store.insert_organization(&org).await.expect("insert organization");
    let user = User {
        id: id.to_owned(),
        organization_id: org.id.clone(),
        email: "ada@example.com".to_owned(),
        verified: true,
        blocked: false,
        created: at(1),
        updated: at(1),
        last_login: None,
    };
    store.user_by_email(&org.id, &user.email, Some(&user)).await.expect("user").expect("created")
}

fn passkey(user: &User, credential_id: &str, created: i64) -> Passkey {
    Passkey {
        credential_id: credential_id.to_owned(),
        organization_id: user.organization_id.clone(),
        user_id: user.id.clone(),
        name: format!("Passkey {credential_id}"),
        rp_id: "login.example.com".to_owned(),
        static_state: vec![0, 1, 2, 255],
        dynamic_state: vec![9, 8, 7],
        sign_count: 0,
        backup_eligible: true,
        backed_up: false,
        aaguid: Some("ea9b8d664d011d213ce4b6b48cb575d4".to_owned()),
        transports: "internal,hybrid".to_owned(),
        created_at: at(created),
        last_used_at: None,
    }
}

/// Passkeys round-trip byte for byte; a credential id registered in one organization conflicts in
/// another; rename and delete touch only the owner's passkey.
pub async fn passkeys_are_unique_and_owned(store: &Arc<dyn Store>) {
    let ada = user(store, "passkeys a", "u-ada").await;
    let eve = user(store, "passkeys b", "u-eve").await;
    let first = passkey(&ada, "cred-1", 10);
    store.insert_passkey(&first).await.expect("insert");
    store.insert_passkey(&passkey(&ada, "cred-2", 20)).await.expect("insert");
    assert_eq!(store.passkey("cred-1").await.expect("get"), Some(first.clone()), "stored as given");
    assert_eq!(store.passkey("cred-9").await.expect("get"), None);
    assert!(
        matches!(store.insert_passkey(&passkey(&eve, "cred-1", 30)).await, Err(StoreError::Conflict(_))),
        "a credential id belongs to one account in every organization"
    );
    assert_eq!(store.passkey("cred-1").await.expect("get").map(|p| p.user_id), Some(ada.id.clone()), "kept");
    let listed = store.user_passkeys(&ada.id).await.expect("list");
    assert_eq!(listed.iter().map(|p| p.credential_id.as_str()).collect::<Vec<_>>(), ["cred-1", "cred-2"]);
    assert!(store.user_passkeys(&eve.id).await.expect("list").is_empty());

    assert!(!store.rename_passkey(&eve.id, "cred-1", "Mine now").await.expect("rename"), "not the owner");
    assert!(store.rename_passkey(&ada.id, "cred-1", "Laptop").await.expect("rename"));
    assert_eq!(store.passkey("cred-1").await.expect("get").map(|p| p.name), Some("Laptop".to_owned()));
    assert!(!store.delete_passkey(&eve.id, "cred-2").await.expect("delete"), "not the owner");
    assert!(store.delete_passkey(&ada.id, "cred-2").await.expect("delete"));
    assert!(!store.delete_passkey(&ada.id, "cred-2").await.expect("delete"), "gone");
    assert_eq!(store.user_passkeys(&ada.id).await.expect("list").len(), 1);
}

/// Of 8 logins racing with one counter value, one records its use; a stale counter records nothing.
pub async fn passkey_counters_advance_by_compare_and_swap(store: &Arc<dyn Store>) {
    let ada = user(store, "passkey counters", "u-ada").await;
    store.insert_passkey(&passkey(&ada, "cred-c", 10)).await.expect("insert");
    let uses: Vec<_> = (1..=8)
        .map(|n| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let used = PasskeyUse {
                    credential_id: "cred-c".to_owned(),
                    previous_sign_count: 0,
                    sign_count: n,
                    backed_up: true,
                    dynamic_state: vec![u8::try_from(n).expect("small")],
                    used_at: at(100),
                };
                store.record_passkey_use(&used).await
            })
        })
        .collect();
    let mut recorded = 0;
    for used in uses {
        recorded += usize::from(used.await.expect("task").expect("record"));
    }
    assert_eq!(recorded, 1, "one login wins the counter value");
    let stored = store.passkey("cred-c").await.expect("get").expect("passkey");
    assert!(stored.sign_count >= 1 && stored.backed_up);
    assert_eq!(stored.dynamic_state, vec![u8::try_from(stored.sign_count).expect("small")]);
    assert_eq!(stored.last_used_at, Some(at(100)));
    let stale = PasskeyUse {
        credential_id: "cred-c".to_owned(),
        previous_sign_count: 0,
        sign_count: 50,
        backed_up: false,
        dynamic_state: vec![50],
        used_at: at(200),
    };
    assert!(!store.record_passkey_use(&stale).await.expect("record"), "stale counter");
    assert_eq!(store.passkey("cred-c").await.expect("get").map(|p| p.sign_count), Some(stored.sign_count));
}

/// A ceremony is taken once, even by racing requests, and round-trips; pruning removes expired ones.
pub async fn passkey_ceremonies_are_taken_once(store: &Arc<dyn Store>) {
    let ceremony = |id: &str, expires: i64| PasskeyCeremony {
        id: id.to_owned(),
        kind: CeremonyKind::Authentication,
        flow_id: "f1".to_owned(),
        organization_id: "org".to_owned(),
        user_id: Some("u1".to_owned()),
        rp_id: "login.example.com".to_owned(),
        state: vec![1, 2, 3, 0, 200],
        expires_at: at(expires),
    };
    store.insert_passkey_ceremony(&ceremony("pc-1", 300_000)).await.expect("insert");
    store.insert_passkey_ceremony(&ceremony("pc-old", 100)).await.expect("insert");
    let takes: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.take_passkey_ceremony("pc-1").await })
        })
        .collect();
    let mut taken = Vec::new();
    for take in takes {
        taken.extend(take.await.expect("task").expect("take"));
    }
    assert_eq!(taken, vec![ceremony("pc-1", 300_000)], "taken once, as stored");
    assert_eq!(store.prune_passkey_ceremonies(at(1_000)).await.expect("prune"), 1);
    assert_eq!(store.take_passkey_ceremony("pc-old").await.expect("take"), None, "pruned");
    let discoverable = PasskeyCeremony { kind: CeremonyKind::Discoverable, user_id: None, ..ceremony("pc-2", 9) };
    store.insert_passkey_ceremony(&discoverable).await.expect("insert");
    assert_eq!(store.take_passkey_ceremony("pc-2").await.expect("take"), Some(discoverable));
}
