//! Revoked sessions, polled from Portcullis, so a revoked session stops within the poll interval even
//! before its access token expires.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use portcullis_core::clock::{Clock, SystemClock};

use crate::client::Client;

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

    /// Fetches revocations since the last poll, and forgets those older than `keep` (the longest an access
    /// token lives: after that the token itself is expired).
    pub async fn poll(&self, client: &Client, keep: Duration) {
        let since = *self.cursor.read().unwrap_or_else(PoisonError::into_inner);
        match client.revoked_since(since).await {
            Ok(items) => {
                let now = SystemClock.now().unix_millis();
                let horizon = now - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
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
