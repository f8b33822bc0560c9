//! Conformance cases for rate-limit counters and the audit log.

use std::sync::Arc;

use portcullis_core::abuse::{AuditEvent, AuditFilter, AuditKind};
use portcullis_core::clock::Timestamp;
use portcullis_core::store::Store;
use serde_json::json;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

/// 32 concurrent hits on one bucket and window count 1..=32, each once; windows and buckets count apart;
/// pruning removes only old windows.
pub async fn rate_limit_hits_count_atomically(store: &Arc<dyn Store>) {
    let hits: Vec<_> = (0..32)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.hit_rate_limit("login-ip:203.0.113.7", at(0)).await })
        })
        .collect();
    let mut counts = Vec::new();
    for hit in hits {
        counts.push(hit.await.expect("task").expect("hit"));
    }
    counts.sort_unstable();
    assert_eq!(store.rate_limit_hits("login-ip:203.0.113.7", at(0)).await.expect("read"), 32);
    assert_eq!(store.rate_limit_hits("login-ip:192.0.2.9", at(0)).await.expect("read"), 0, "never hit");
    assert_eq!(counts, (1..=32).collect::<Vec<u32>>(), "every hit gets its own count");
    assert_eq!(store.hit_rate_limit("login-ip:203.0.113.7", at(60_000)).await.expect("hit"), 1, "a new window");
    assert_eq!(store.hit_rate_limit("login-ip:198.51.100.1", at(0)).await.expect("hit"), 1, "another bucket");
    assert_eq!(store.prune_abuse_records(at(60_000)).await.expect("prune"), 2);
    assert_eq!(store.hit_rate_limit("login-ip:203.0.113.7", at(60_000)).await.expect("hit"), 2, "kept");
    assert_eq!(store.hit_rate_limit("login-ip:203.0.113.7", at(0)).await.expect("hit"), 1, "pruned");
}

/// Audit events come back newest first, per organization, filtered by kind, limited, details intact.
pub async fn audit_events_round_trip(store: &Arc<dyn Store>) {
    let event = |id: &str, org: &str, kind: &str, millis: i64| AuditEvent {
        id: id.to_owned(),
        organization_id: org.to_owned(),
        kind: kind.to_owned(),
        subject: Some("ada@example.com".to_owned()),
        detail: json!({ "attempt": id, "nested": { "void": true } }),
        created: at(millis),
    };
    let events = [
        event("e1", "org-a", "login.failed", 10),
        event("e2", "org-a", "login.succeeded", 20),
        event("e3", "org-b", "login.succeeded", 30),
        event("e4", "org-a", "login.failed", 40),
    ];
    for e in &events {
        store.record_audit_event(e).await.expect("record");
    }
    let all = store.audit_events("org-a", &AuditFilter::default(), 10).await.expect("list");
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e4", "e2", "e1"]);
    assert_eq!(all[0], events[3], "stored as given");
    let failed = store.audit_events("org-a", &AuditFilter::kind(AuditKind::LoginFailed), 10).await.expect("list");
    assert_eq!(failed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e4", "e1"]);
    assert_eq!(store.audit_events("org-a", &AuditFilter::default(), 1).await.expect("list").len(), 1);
    assert!(store.audit_events("org-c", &AuditFilter::default(), 10).await.expect("list").is_empty());
    let about = |subject: &str| AuditFilter { subject: Some(subject.to_owned()), ..AuditFilter::default() };
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    store
        .record_audit_event(&AuditEvent {
            subject: Some("bob@example.com".to_owned()),
            ..event("b1", "org-a", "login.failed", 25)
        })
        .await
        .expect("record");
    assert_eq!(ids(store.audit_events("org-a", &about("bob@example.com"), 10).await.expect("list")), ["b1"]);
    assert_eq!(
        ids(store.audit_events("org-b", &about("bob@example.com"), 10).await.expect("list")),
        Vec::<String>::new()
    );
    let window = AuditFilter { since: Some(at(20)), until: Some(at(40)), ..AuditFilter::default() };
    assert_eq!(
        ids(store.audit_events("org-a", &window, 10).await.expect("list")),
        ["b1", "e2"],
        "since inclusive, until exclusive"
    );
    let all_parts = AuditFilter { kind: Some("login.failed".to_owned()), ..window.clone() };
    assert_eq!(
        ids(store
            .audit_events("org-a", &AuditFilter { subject: Some("ada@example.com".to_owned()), ..all_parts }, 10)
            .await
            .expect("list")),
        Vec::<String>::new()
    );
    assert!(store.undispatched_events(10).await.expect("outbox").is_empty(), "these kinds raise no event");
    store.record_audit_event(&event("e5", "org-a", "login.lockedOut", 50)).await.expect("record");
    let outbox = store.undispatched_events(10).await.expect("outbox");
    assert_eq!(outbox.len(), 1, "the lockout's event is written with its audit row");
    assert_eq!(outbox[0].1.event_type, "login.lockedOut");
}

/// A captcha solution is spent once, even under concurrent submissions; pruning forgets expired ones.
pub async fn captcha_solutions_are_spent_once(store: &Arc<dyn Store>) {
    let spends: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.spend_captcha("sig-1", at(600_000)).await })
        })
        .collect();
    let mut spent = 0;
    for spend in spends {
        spent += usize::from(spend.await.expect("task").expect("spend"));
    }
    assert_eq!(spent, 1, "one submission wins");
    assert!(store.spend_captcha("sig-2", at(10)).await.expect("spend"));
    assert_eq!(store.prune_abuse_records(at(100)).await.expect("prune"), 1, "only the expired one");
    assert!(!store.spend_captcha("sig-1", at(600_000)).await.expect("spend"), "still spent");
    assert!(store.spend_captcha("sig-2", at(10)).await.expect("spend"), "forgotten after expiry");
}

/// Wrong codes count per account (organization and email) atomically, across calls; a reset forgets one
/// account's count and nobody else's.
pub async fn code_failures_count_per_account_and_reset(store: &Arc<dyn Store>) {
    assert_eq!(store.code_failures("org-a", "ada@example.com").await.expect("read"), 0, "none yet");
    let hits: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.record_code_failure("org-a", "ada@example.com", at(i)).await })
        })
        .collect();
    let mut counts = Vec::new();
    for hit in hits {
        counts.push(hit.await.expect("task").expect("failure"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=16).collect::<Vec<u32>>(), "every failure gets its own count");
    assert_eq!(store.code_failures("org-a", "ada@example.com").await.expect("read"), 16);
    assert_eq!(store.record_code_failure("org-b", "ada@example.com", at(20)).await.expect("failure"), 1, "per org");
    assert_eq!(store.record_code_failure("org-a", "eve@example.com", at(20)).await.expect("failure"), 1, "per email");
    store.reset_code_failures("org-a", "ada@example.com").await.expect("reset");
    assert_eq!(store.code_failures("org-a", "ada@example.com").await.expect("read"), 0, "reset");
    assert_eq!(store.code_failures("org-b", "ada@example.com").await.expect("read"), 1, "others kept");
    assert_eq!(store.code_failures("org-a", "eve@example.com").await.expect("read"), 1, "others kept");
    store.reset_code_failures("org-a", "nobody@example.com").await.expect("resetting nothing is harmless");
    assert_eq!(store.record_code_failure("org-a", "ada@example.com", at(30)).await.expect("failure"), 1, "afresh");
    assert_eq!(
        store.prune_abuse_records(at(1_000_000)).await.expect("prune"),
        0,
        "pruning old windows keeps the counts (they last until a login)"
    );
    assert_eq!(store.code_failures("org-a", "ada@example.com").await.expect("read"), 1);
}
