//! Refresh rotation and theft detection: the rules, as one pure function that every store applies to the
//! session row it holds locked (so the decision and its write are one transaction on every backend).
//!
//! 1. Current (`H2(P)` in `current`): rotate. `previous = H2(P)`, `current = [H2(N)]`, `rotated_at = now`,
//!    refresh expiry slides to `now + validity`.
//! 2. Grace (`H2(P) == previous` and `now ≤ rotated_at + grace`): a parallel tab, a retried POST or a lost
//!    response. Mint a sibling: push `H2(N)` onto `current` (at most [`MAX_SIBLINGS`], oldest evicted);
//!    `previous`, `rotated_at` and expiry unchanged.
//! 3. Anything else that authenticated is reuse: the session (the whole token family) is revoked in the
//!    same write and the outcome is theft, classified for the security log.
//!
//! A revoked or expired session answers unauthorised and is not changed.

use serde::Serialize;
use serde_json::{Map, Value};

use super::refresh_token::hash2_of_hash1;
use crate::clock::Timestamp;

/// Most sibling tokens kept valid at once (rule 2).
pub const MAX_SIBLINGS: usize = 4;

/// A session as stored: one per login, the refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// Public handle (UUID).
    pub handle: String,
    /// The organization whose API created it.
    pub organization_id: String,
    /// The user.
    pub user_id: String,
    /// Tenant (`tId`).
    pub tenant_id: String,
    /// Custom access-token claims.
    pub payload: Map<String, Value>,
    /// H2 of every refresh token that may rotate now.
    #[serde(skip)]
    pub current_hashes: Vec<String>,
    /// H2 of the token rotated last.
    #[serde(skip)]
    pub previous_hash: Option<String>,
    /// When it was rotated last.
    pub rotated_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Refresh expiry (sliding).
    pub expires_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Server-side data (SuperTokens' `userDataInDatabase`): never in a token, never in this API's answers.
    #[serde(skip)]
    pub data: Map<String, Value>,
}

impl SessionRecord {
    /// Whether it can still be refreshed at `now`.
    #[must_use]
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What a refresh asks of the locked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    /// Only sessions of this organization may be refreshed (`None`: any).
    pub organization_id: Option<String>,
    /// H2 of the presented token.
    pub presented_hash2: String,
    /// H1 of the presented token's parent.
    pub presented_parent_hash1: Option<String>,
    /// H2 of the token minted to replace it.
    pub new_hash2: String,
    /// Now.
    pub now: Timestamp,
    /// Grace window of the token rotated last.
    pub grace_millis: i64,
    /// New refresh expiry on rotation.
    pub new_expires_at: Timestamp,
}

/// Why a refresh is unauthorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnauthorisedReason {
    /// No such session.
    Missing,
    /// Revoked (sign-out, admin, theft).
    Revoked,
    /// Past its refresh expiry.
    Expired,
}

/// How a reused token relates to the family, for the security log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TheftKind {
    /// The token rotated last, after its grace window.
    RecentPrev,
    /// A sibling minted in a grace window, displaced by a later rotation.
    OrphanedBranch,
    /// An older token.
    StaleLineage,
}

/// The decision, as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Rule 1.
    Rotated(SessionRecord),
    /// Rule 2.
    RotatedInGrace(SessionRecord),
    /// Rule 3: the session is now revoked.
    TheftDetected {
        /// The revoked session.
        session: SessionRecord,
        /// Classification.
        kind: TheftKind,
    },
    /// The session cannot be refreshed.
    Unauthorised(UnauthorisedReason),
}

/// Applies the rules to the locked row. Returns whether the row changed (and must be written) and the
/// outcome.
pub fn apply_refresh(record: &mut SessionRecord, request: &RefreshRequest) -> (bool, RefreshOutcome) {
    if request.organization_id.as_deref().is_some_and(|org| org != record.organization_id) {
        return (false, RefreshOutcome::Unauthorised(UnauthorisedReason::Missing));
    }
    if record.revoked_at.is_some() {
        return (false, RefreshOutcome::Unauthorised(UnauthorisedReason::Revoked));
    }
    if record.expires_at <= request.now {
        return (false, RefreshOutcome::Unauthorised(UnauthorisedReason::Expired));
    }
    if record.current_hashes.contains(&request.presented_hash2) {
        record.previous_hash = Some(request.presented_hash2.clone());
        record.current_hashes = vec![request.new_hash2.clone()];
        record.rotated_at = Some(request.now);
        record.expires_at = request.new_expires_at;
        return (true, RefreshOutcome::Rotated(record.clone()));
    }
    let is_previous = record.previous_hash.as_deref() == Some(request.presented_hash2.as_str());
    // Zero grace is strict rotation, even within the same millisecond.
    let in_grace = request.grace_millis > 0
        && record
            .rotated_at
            .is_some_and(|at| request.now.unix_millis() <= at.unix_millis().saturating_add(request.grace_millis));
    if is_previous && in_grace {
        record.current_hashes.push(request.new_hash2.clone());
        if record.current_hashes.len() > MAX_SIBLINGS {
            record.current_hashes.remove(0);
        }
        return (true, RefreshOutcome::RotatedInGrace(record.clone()));
    }
    let kind = if is_previous {
        TheftKind::RecentPrev
    } else if request
        .presented_parent_hash1
        .as_deref()
        .is_some_and(|parent| record.previous_hash.as_deref() == Some(hash2_of_hash1(parent).as_str()))
    {
        TheftKind::OrphanedBranch
    } else {
        TheftKind::StaleLineage
    };
    record.revoked_at = Some(request.now);
    (true, RefreshOutcome::TheftDetected { session: record.clone(), kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::refresh_token::{hash1, hash2_of_hash1};

    fn h2(token: &str) -> String {
        hash2_of_hash1(&hash1(token))
    }

    fn session() -> SessionRecord {
        SessionRecord {
            handle: "h".to_owned(),
            organization_id: "o".to_owned(),
            user_id: "u".to_owned(),
            tenant_id: "public".to_owned(),
            payload: Map::new(),
            current_hashes: vec![h2("t0")],
            previous_hash: None,
            rotated_at: None,
            created_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(1_000_000),
            revoked_at: None,
            data: Map::new(),
        }
    }

    fn request(presented: &str, parent: Option<&str>, new: &str, now: i64) -> RefreshRequest {
        RefreshRequest {
            organization_id: None,
            presented_hash2: h2(presented),
            presented_parent_hash1: parent.map(hash1),
            new_hash2: h2(new),
            now: Timestamp::from_unix_millis(now),
            grace_millis: 30_000,
            new_expires_at: Timestamp::from_unix_millis(now + 1_000_000),
        }
    }

    #[test]
    fn current_token_rotates_and_slides_expiry() {
        let mut s = session();
        let (changed, outcome) = apply_refresh(&mut s, &request("t0", None, "t1", 10));
        assert!(changed);
        assert!(matches!(outcome, RefreshOutcome::Rotated(_)));
        assert_eq!(s.current_hashes, [h2("t1")]);
        assert_eq!(s.previous_hash, Some(h2("t0")));
        assert_eq!(s.expires_at.unix_millis(), 1_000_010);
    }

    #[test]
    fn previous_token_in_grace_mints_a_sibling_without_sliding() {
        let mut s = session();
        apply_refresh(&mut s, &request("t0", None, "t1", 10));
        let (_, outcome) = apply_refresh(&mut s, &request("t0", None, "t1b", 30_010));
        assert!(matches!(outcome, RefreshOutcome::RotatedInGrace(_)), "{outcome:?}");
        assert_eq!(s.current_hashes, [h2("t1"), h2("t1b")]);
        assert_eq!(s.expires_at.unix_millis(), 1_000_010);
        // Either sibling rotates; the other then becomes stale.
        let (_, outcome) = apply_refresh(&mut s, &request("t1b", Some("t0"), "t2", 30_020));
        assert!(matches!(outcome, RefreshOutcome::Rotated(_)));
        let (_, outcome) = apply_refresh(&mut s, &request("t1", Some("t0"), "t2x", 30_030));
        assert!(matches!(outcome, RefreshOutcome::TheftDetected { kind: TheftKind::StaleLineage, .. }), "{outcome:?}");
    }

    #[test]
    fn siblings_are_bounded() {
        let mut s = session();
        apply_refresh(&mut s, &request("t0", None, "t1", 10));
        for i in 0..10 {
            apply_refresh(&mut s, &request("t0", None, &format!("s{i}"), 20 + i));
        }
        assert_eq!(s.current_hashes.len(), MAX_SIBLINGS);
        assert_eq!(s.current_hashes.last(), Some(&h2("s9")));
    }

    #[test]
    fn previous_token_after_grace_is_theft_and_revokes() {
        let mut s = session();
        apply_refresh(&mut s, &request("t0", None, "t1", 10));
        let (changed, outcome) = apply_refresh(&mut s, &request("t0", None, "tx", 30_011));
        assert!(changed);
        assert!(matches!(outcome, RefreshOutcome::TheftDetected { kind: TheftKind::RecentPrev, .. }));
        assert_eq!(s.revoked_at.map(Timestamp::unix_millis), Some(30_011));
        // The legitimate holder is now refused too: the family is revoked.
        let (changed, outcome) = apply_refresh(&mut s, &request("t1", Some("t0"), "t2", 30_012));
        assert!(!changed);
        assert_eq!(outcome, RefreshOutcome::Unauthorised(UnauthorisedReason::Revoked));
    }

    #[test]
    fn displaced_grace_sibling_is_an_orphaned_branch() {
        let mut s = session();
        apply_refresh(&mut s, &request("t0", None, "t1", 10));
        apply_refresh(&mut s, &request("t0", None, "t1b", 20));
        apply_refresh(&mut s, &request("t1", Some("t0"), "t2", 40));
        apply_refresh(&mut s, &request("t2", Some("t1"), "t3", 50));
        // t1b's parent is t0, which is no longer previous: stale. A sibling of the *current* previous is
        // an orphaned branch.
        let mut s2 = session();
        apply_refresh(&mut s2, &request("t0", None, "t1", 10));
        apply_refresh(&mut s2, &request("t1", Some("t0"), "t2", 20));
        let (_, outcome) = apply_refresh(&mut s2, &request("t2b", Some("t1"), "z", 100_000));
        assert!(
            matches!(outcome, RefreshOutcome::TheftDetected { kind: TheftKind::OrphanedBranch, .. }),
            "{outcome:?}"
        );
        let (_, outcome) = apply_refresh(&mut s, &request("t1b", Some("t0"), "z", 60));
        assert!(matches!(outcome, RefreshOutcome::TheftDetected { kind: TheftKind::StaleLineage, .. }));
    }

    #[test]
    fn expired_and_revoked_sessions_are_unauthorised_and_unchanged() {
        let mut s = session();
        let (changed, outcome) = apply_refresh(&mut s, &request("t0", None, "t1", 1_000_000));
        assert!(!changed);
        assert_eq!(outcome, RefreshOutcome::Unauthorised(UnauthorisedReason::Expired));
        s.revoked_at = Some(Timestamp::from_unix_millis(5));
        let before = s.clone();
        let (changed, _) = apply_refresh(&mut s, &request("t0", None, "t1", 10));
        assert!(!changed);
        assert_eq!(s, before);
    }

    #[test]
    fn another_organization_cannot_refresh_or_disturb_the_session() {
        let mut s = session();
        let mut foreign = request("t0", None, "t1", 10);
        foreign.organization_id = Some("other".to_owned());
        let before = s.clone();
        assert_eq!(apply_refresh(&mut s, &foreign), (false, RefreshOutcome::Unauthorised(UnauthorisedReason::Missing)));
        assert_eq!(s, before);
    }

    #[test]
    fn zero_grace_is_strict_rotation() {
        let mut s = session();
        apply_refresh(&mut s, &request("t0", None, "t1", 10));
        let mut strict = request("t0", None, "t1b", 10);
        strict.grace_millis = 0;
        assert!(matches!(apply_refresh(&mut s, &strict).1, RefreshOutcome::TheftDetected { .. }));
    }
}
