//! Revoked sessions, polled from Portcullis, so a revoked session stops within the poll interval even
//! before its access token expires.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use portcullis_core::clock::{Clock, SystemClock};

use crate::client::Client;

/// How far behind the newest revocation seen each poll reaches back. A revocation's time is taken by the
/// instance that writes it, before its commit: one written by an instance whose clock runs behind, or one
/// that commits late, can carry a time older than revocations already seen. Asking again for this margin
/// finds it; entries seen twice are simply kept.
const LATE_REVOCATION_MARGIN_MS: i64 = 60_000;

/// Handles revoked recently, with when they were revoked.
#[derive(Debug, Default)]
pub struct DenyList {
    revoked: RwLock<HashMap<String, i64>>,
    cursor: RwLock<i64>,
}

impl DenyList {
    /// Whether this session was revoked.
    #[must_use]
    pub fn contains(&self, handle: &str) -> bool {
        self.revoked.read().unwrap_or_else(PoisonError::into_inner).contains_key(handle)
    }

    /// Records a revocation seen locally (sign-out through this app), before the next poll.
    pub fn insert(&self, handle: &str, at_millis: i64) {
        self.revoked.write().unwrap_or_else(PoisonError::into_inner).insert(handle.to_owned(), at_millis);
    }

    /// Fetches the revocations from a minute before the newest one seen (see
    /// [`LATE_REVOCATION_MARGIN_MS`]), and forgets those older than `keep` (the longest an access token
    /// lives: after that the token itself is expired).
    pub async fn poll(&self, client: &Client, keep: Duration) {
        let now = SystemClock.now().unix_millis();
        let horizon = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let newest_seen = *self.cursor.read().unwrap_or_else(PoisonError::into_inner);
        // Revocations older than the horizon concern only expired tokens: not even the first poll asks for them.
        let since = newest_seen.saturating_sub(LATE_REVOCATION_MARGIN_MS).max(horizon);
        match client.revoked_since(since).await {
            Ok(items) => {
                let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
                let mut cursor = self.cursor.write().unwrap_or_else(PoisonError::into_inner);
                for (handle, at) in items {
                    *cursor = (*cursor).max(at);
                    revoked.insert(handle, at);
                }
                revoked.retain(|_, at| *at >= horizon);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot poll revoked sessions; keeping the last list")
            }
        }
    }
}
