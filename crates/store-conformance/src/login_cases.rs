//! Hosted-login cases: organization config and secrets, users, attempts, codes, login sessions, outbox.

use std::sync::Arc;

use portcullis_core::clock::Timestamp;
use portcullis_core::login::model::{
    AttemptKind, AuthorizationCode, FlowFace, LinkMethod, LoginAttempt, LoginFlow, LoginSession, OutboxMessage,
    RecentAttempts, Redemption, Undo, User,
};
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + millis)
}

async fn organization(store: &Arc<dyn Store>) -> Organization {
    let org = Organization::new("login", at(0)).expect("organization");
    store.insert_organization(&org).await.expect("insert organization");
    org
}

fn user(org: &str, id: &str) -> User {
    User {
        id: id.to_owned(),
        organization_id: org.to_owned(),
        email: String::new(),
        verified: false,
        blocked: false,
        created: at(1),
        updated: at(1),
        last_login: None,
    }
}

fn flow(org: &str, id: &str) -> LoginFlow {
    LoginFlow {
        id: id.to_owned(),
        organization_id: org.to_owned(),
        redirect_uri: "https://app.example.com/cb?return_to=%2F".to_owned(),
        state: "s".to_owned(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        face: FlowFace::Compat,
        affirm: false,
        scope: Some("openid offline_access".to_owned()),
        nonce: None,
        embed: true,
        translations: serde_json::Map::from_iter([("codeLabel".to_owned(), serde_json::json!("Code"))]),
        binding_hash: "b".to_owned(),
        created_at: at(0),
        expires_at: at(900_000),
    }
}

/// Whitelist and settings survive a round trip; secrets are staged, then activated once.
pub async fn organization_config_and_secrets(store: &Arc<dyn Store>) {
    let mut org = organization(store).await;
    org.set_whitelist(vec!["https://app.example.com".to_owned(), "https://*.corp.example".to_owned()])
        .expect("whitelist");
    org.settings.allow_localhost = true;
    org.settings.max_session_time = 3600;
    assert!(store.update_organization(&org).await.expect("update"));
    assert_eq!(store.organization(&org.id).await.expect("get"), Some(org.clone()));
    assert!(
        !store.update_organization(&Organization { id: "missing".to_owned(), ..org.clone() }).await.expect("update")
    );

    assert_eq!(store.client_secrets(&org.id).await.expect("secrets"), (None, None));
    store.set_client_secret(&org.id, b"first", false).await.expect("set");
    store.set_client_secret(&org.id, b"second", true).await.expect("stage");
    assert_eq!(
        store.client_secrets(&org.id).await.expect("secrets"),
        (Some(b"first".to_vec()), Some(b"second".to_vec()))
    );
    assert!(store.activate_client_secret(&org.id).await.expect("activate"));
    assert!(!store.activate_client_secret(&org.id).await.expect("activate"), "nothing staged any more");
    assert_eq!(store.client_secrets(&org.id).await.expect("secrets"), (Some(b"second".to_vec()), None));
}

/// Concurrent first logins of one email create one user; another organization has its own.
pub async fn users_are_unique_per_email_under_concurrency(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, org) = (Arc::clone(store), org.id.clone());
            tokio::spawn(async move {
                let candidate = user(&org, &format!("00000000-0000-4000-8000-{i:012}"));
                store.user_by_email(&org, "ada@example.com", Some(&candidate)).await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("task").expect("user").expect("created").id);
    }
    assert_eq!(ids.len(), 1, "one user per email");
    assert_eq!(store.user_by_email(&org.id, "nobody@example.com", None).await.expect("get"), None);
    let other = Organization::new("other", at(0)).expect("organization");
    store.insert_organization(&other).await.expect("insert");
    let theirs =
        store.user_by_email(&other.id, "ada@example.com", Some(&user(&other.id, "u-other"))).await.expect("user");
    assert_eq!(theirs.map(|u| u.id), Some("u-other".to_owned()));
    let id = ids.into_iter().next().expect("id");
    store.record_login(&id, at(50)).await.expect("login");
    let stored = store.user(&id).await.expect("get").expect("user");
    assert!(stored.verified);
    assert_eq!(stored.last_login, Some(at(50)));
    let logged_in = User { verified: true, last_login: Some(at(60)), ..user(&org.id, "u-first") };
    let created = store.user_by_email(&org.id, "grace@example.com", Some(&logged_in)).await.expect("user");
    assert_eq!(created.as_ref(), Some(&User { email: "grace@example.com".to_owned(), ..logged_in }), "as given");
}

/// Wrong entries count atomically; an attempt closes exactly once.
pub async fn attempts_count_and_close_once(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    store.insert_flow(&flow(&org.id, "f1")).await.expect("flow");
    assert_eq!(store.flow("f1").await.expect("flow"), Some(flow(&org.id, "f1")));
    for (i, created, network) in [(1, 10, "203.0.113.0/24"), (2, 20, "203.0.113.0/24"), (3, 25, "198.51.100.0/24")] {
        let attempt = LoginAttempt {
            id: format!("a{i}"),
            flow_id: "f1".to_owned(),
            organization_id: org.id.clone(),
            email: "ada@example.com".to_owned(),
            code_digest: format!("d{i}"),
            created_at: at(created),
            wrong_entries: 0,
            closed_at: None,
            kind: AttemptKind::Code,
            challenge: None,
            approved_at: None,
            session_id: None,
            undone_at: None,
            handed_over_at: None,
            network: network.to_owned(),
        };
        store.insert_attempt(&attempt).await.expect("attempt");
    }
    assert_eq!(store.latest_attempt("f1").await.expect("latest").map(|a| a.id), Some("a3".to_owned()));
    assert_eq!(store.attempt("a1").await.expect("attempt").map(|a| a.code_digest), Some("d1".to_owned()));
    assert_eq!(store.attempt("a3").await.expect("attempt").map(|a| a.network), Some("198.51.100.0/24".to_owned()));
    assert_eq!(store.attempt("missing").await.expect("attempt"), None);
    let since = |email: &'static str, network: &'static str, from: i64| {
        let store = Arc::clone(store);
        let org = org.id.clone();
        async move { store.attempts_since(&org, email, network, at(from)).await.expect("since") }
    };
    let recent = |total, from_network, last: Option<i64>| RecentAttempts {
        total,
        from_network,
        last_from_network: last.map(at),
    };
    assert_eq!(
        since("ada@example.com", "203.0.113.0/24", 15).await,
        recent(2, 1, Some(20)),
        "one network's, all counted"
    );
    assert_eq!(since("ada@example.com", "203.0.113.0/24", 0).await, recent(3, 2, Some(20)));
    assert_eq!(since("ada@example.com", "198.51.100.0/24", 0).await, recent(3, 1, Some(25)));
    assert_eq!(since("ada@example.com", "192.0.2.0/24", 0).await, recent(3, 0, None), "a network with none");
    assert_eq!(since("eve@example.com", "203.0.113.0/24", 0).await, recent(0, 0, None));

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.record_wrong_entry("a2").await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("wrong entry");
    }
    assert_eq!(store.attempt("a2").await.expect("attempt").map(|a| a.wrong_entries), Some(10));

    let closes: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.close_attempt("a2", at(30)).await })
        })
        .collect();
    let mut closed = 0;
    for close in closes {
        closed += usize::from(close.await.expect("task").expect("close"));
    }
    assert_eq!(closed, 1, "an attempt closes exactly once");
}

/// Mailed attempts keep their kind and number; a click approves once; a session is handed over once (or
/// with its attach); undo wins over a later login (its session cannot be attached) and returns the
/// session of an earlier one; undoing twice does nothing.
pub async fn attempts_approve_once_and_undo_wins(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    store.insert_flow(&flow(&org.id, "f1")).await.expect("flow");
    let attempt = |id: &str, kind| LoginAttempt {
        id: id.to_owned(),
        flow_id: "f1".to_owned(),
        organization_id: org.id.clone(),
        email: "ada@example.com".to_owned(),
        code_digest: "d".to_owned(),
        created_at: at(10),
        wrong_entries: 0,
        closed_at: None,
        kind,
        challenge: (kind == AttemptKind::Challenge).then_some(42),
        approved_at: None,
        session_id: None,
        undone_at: None,
        handed_over_at: None,
        network: String::new(),
    };
    let challenge = attempt("c1", AttemptKind::Challenge);
    store.insert_attempt(&challenge).await.expect("insert");
    assert_eq!(store.attempt("c1").await.expect("get"), Some(challenge));
    let picked = attempt("p1", AttemptKind::Link(LinkMethod::UserPick));
    store.insert_attempt(&picked).await.expect("insert");
    assert_eq!(store.attempt("p1").await.expect("get").map(|a| a.kind), Some(AttemptKind::Link(LinkMethod::UserPick)));

    let approvals: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.approve_attempt("c1", at(20)).await })
        })
        .collect();
    let mut approved = 0;
    for approval in approvals {
        approved += usize::from(approval.await.expect("task").expect("approve"));
    }
    assert_eq!(approved, 1, "a click approves exactly once");
    assert_eq!(store.attempt("c1").await.expect("get").and_then(|a| a.approved_at), Some(at(20)));
    assert!(store.close_attempt("c1", at(21)).await.expect("close"));
    assert!(!store.approve_attempt("c1", at(22)).await.expect("approve"), "a closed attempt is not approved");

    assert!(store.attach_attempt_session("c1", "ls-1", None).await.expect("attach"));
    let hand_overs: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.hand_over_attempt("c1", at(25)).await })
        })
        .collect();
    let mut handed = 0;
    for hand_over in hand_overs {
        handed += usize::from(hand_over.await.expect("task").expect("hand over"));
    }
    assert_eq!(handed, 1, "the browser goes on to the application once");
    assert_eq!(store.attempt("c1").await.expect("get").and_then(|a| a.handed_over_at), Some(at(25)));
    assert!(!store.hand_over_attempt("p1", at(25)).await.expect("hand over"), "no session to hand over");
    assert_eq!(
        store.undo_attempt("c1", at(30)).await.expect("undo"),
        Undo::Undone { session_id: Some("ls-1".to_owned()) }
    );
    assert_eq!(store.undo_attempt("c1", at(31)).await.expect("undo"), Undo::AlreadyUndone);
    let undone = store.attempt("c1").await.expect("get").expect("attempt");
    assert_eq!((undone.undone_at, undone.closed_at), (Some(at(30)), Some(at(21))), "undo keeps the close time");

    assert_eq!(store.undo_attempt("p1", at(40)).await.expect("undo"), Undo::Undone { session_id: None });
    assert!(
        !store.attach_attempt_session("p1", "ls-2", None).await.expect("attach"),
        "an undone attempt takes no session"
    );
    assert!(!store.close_attempt("p1", at(41)).await.expect("close"), "undo closed it");
    assert_eq!(store.undo_attempt("missing", at(40)).await.expect("undo"), Undo::AlreadyUndone);

    store.insert_attempt(&attempt("h1", AttemptKind::Code)).await.expect("insert");
    assert!(store.attach_attempt_session("h1", "ls-3", Some(at(50))).await.expect("attach"));
    let handed = store.attempt("h1").await.expect("get").expect("attempt");
    assert_eq!((handed.session_id.as_deref(), handed.handed_over_at), (Some("ls-3"), Some(at(50))), "one write");
    assert!(!store.hand_over_attempt("h1", at(51)).await.expect("hand over"), "handed over with the session");
}

/// A code is spent once, even under concurrent redemptions; the rest see a replay.
pub async fn codes_are_single_use_under_concurrency(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let session = LoginSession {
        id: "ls1".to_owned(),
        organization_id: org.id.clone(),
        user_id: "u1".to_owned(),
        created_at: at(0),
        last_active_at: at(0),
        ended_at: None,
        verified_domains: Vec::new(),
        ip: None,
        user_agent: None,
        device_id: None,
        scope: Some("openid email".to_owned()),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
    };
    store.insert_login_session(&session).await.expect("session");
    let code = AuthorizationCode {
        code_hash: "h1".to_owned(),
        organization_id: org.id.clone(),
        session_id: "ls1".to_owned(),
        redirect_uri: "https://app.example.com/cb".to_owned(),
        code_challenge: None,
        face: FlowFace::Standard,
        created_at: at(0),
        expires_at: at(60_000),
        used_at: None,
    };
    store.insert_code(&code).await.expect("code");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.redeem_code("h1", at(5)).await })
        })
        .collect();
    let (mut redeemed, mut replayed) = (0, 0);
    for task in tasks {
        match task.await.expect("task").expect("redeem") {
            Redemption::Redeemed(c) => {
                redeemed += 1;
                assert_eq!((c.used_at, c.face), (Some(at(5)), FlowFace::Standard));
            }
            Redemption::Replayed(_) => replayed += 1,
            Redemption::Unknown => panic!("the code vanished"),
        }
    }
    assert_eq!((redeemed, replayed), (1, 7));
    assert_eq!(store.redeem_code("nope", at(5)).await.expect("redeem"), Redemption::Unknown);

    let mut updated = session.clone();
    updated.verified_domains.push("https://app.example.com".to_owned());
    updated.last_active_at = at(9);
    store.update_login_session(&updated).await.expect("update");
    assert_eq!(store.login_session("ls1").await.expect("get"), Some(updated));
    assert!(store.end_login_session("ls1", at(10)).await.expect("end"));
    assert!(!store.end_login_session("ls1", at(11)).await.expect("end"), "ends once");
    assert_eq!(store.login_session("ls1").await.expect("get").and_then(|s| s.ended_at), Some(at(10)));
}

/// The outbox lists the newest first, all of them or those to one recipient.
pub async fn outbox_lists_newest_first(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    for i in 0..4 {
        let message = OutboxMessage {
            id: format!("m{i}"),
            organization_id: org.id.clone(),
            to: if i == 1 { "grace@example.com" } else { "ada@example.com" }.to_owned(),
            subject: format!("Your code {i}"),
            body: "12345".to_owned(),
            created: at(i),
        };
        store.push_outbox(&message).await.expect("push");
    }
    let ids = |messages: Vec<OutboxMessage>| messages.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(store.outbox(None, 2).await.expect("outbox")), ["m3", "m2"]);
    assert_eq!(ids(store.outbox(Some("ada@example.com"), 10).await.expect("outbox")), ["m3", "m2", "m0"]);
    assert_eq!(ids(store.outbox(Some("grace@example.com"), 10).await.expect("outbox")), ["m1"]);
    assert!(store.outbox(Some("nobody@example.com"), 10).await.expect("outbox").is_empty());
}

/// A user's live login sessions, newest first: ended ones and other users' are left out.
pub async fn live_login_sessions_of_a_user(store: &Arc<dyn Store>) {
    let org = organization(store).await;
    let session = |id: &str, user: &str, millis: i64| LoginSession {
        id: id.to_owned(),
        organization_id: org.id.clone(),
        user_id: user.to_owned(),
        created_at: at(millis),
        last_active_at: at(millis),
        ended_at: None,
        verified_domains: Vec::new(),
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("Mozilla/5.0".to_owned()),
        device_id: None,
        scope: None,
        nonce: None,
    };
    for (id, user, millis) in [("a1", "ua", 10), ("a2", "ua", 30), ("a3", "ua", 20), ("b1", "ub", 40)] {
        store.insert_login_session(&session(id, user, millis)).await.expect("session");
    }
    assert!(store.end_login_session("a3", at(50)).await.expect("end"));
    let live = store.live_login_sessions("ua", 10).await.expect("list");
    assert_eq!(live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a2", "a1"]);
    assert_eq!(live[1], session("a1", "ua", 10), "stored as given");
    assert_eq!(store.live_login_sessions("ub", 10).await.expect("list").len(), 1);
    assert!(store.live_login_sessions("nobody", 10).await.expect("list").is_empty());
    assert_eq!(store.live_login_sessions("ua", 1).await.expect("list").len(), 1, "at most the limit");
}
