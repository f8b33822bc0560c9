//! Fixed-window rate limits. Each hit increments a counter row keyed by bucket and window start, in one
//! atomic statement, so several instances on one database count together.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::store::Store;
use crate::{Error, ErrorCode};

/// A limit: at most `max` hits per `window`. `max == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Hits allowed per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

impl RateLimit {
    /// `max` hits per minute.
    #[must_use]
    pub const fn per_minute(max: u32) -> Self {
        Self { max, window: Duration::from_secs(60) }
    }

    /// `max` hits per hour.
    #[must_use]
    pub const fn per_hour(max: u32) -> Self {
        Self { max, window: Duration::from_secs(3600) }
    }

    /// The start of the window `now` falls in, and the seconds until it ends (at least 1).
    #[must_use]
    pub fn window_at(&self, now: Timestamp) -> (Timestamp, u64) {
        let length = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX).max(1);
        let start = now.unix_millis() - now.unix_millis().rem_euclid(length);
        let left_ms = start + length - now.unix_millis();
        (Timestamp::from_unix_millis(start), u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1))
    }
}

/// Counts hits and refuses those over a limit with `tooManyRequests` and `Retry-After`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    /// A limiter on `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Counts one hit on `bucket` (e.g. `login-ip:203.0.113.7`).
    ///
    /// # Errors
    /// `tooManyRequests` with the seconds until the window ends, or a store failure.
    pub async fn hit(&self, bucket: &str, limit: RateLimit) -> Result<(), Error> {
        if limit.max == 0 {
            return Ok(());
        }
        let (start, retry_after) = limit.window_at(self.clock.now());
        let key = format!("{bucket}@{}", limit.window.as_secs());
        let count = self.store.hit_rate_limit(&key, start).await?;
        if count > limit.max {
            return Err(Error::new(ErrorCode::TooManyRequests)
                .with_message(format!("Too many requests. Please try again in {retry_after} seconds."))
                .with_retry_after(retry_after)
                .with_internal(format!("rate limit {bucket}: {count} > {} per {:?}", limit.max, limit.window)));
        }
        Ok(())
    }

    /// Counts one hit on `bucket` in the current `window` and returns the window's count, without a
    /// limit (for escalation).
    ///
    /// # Errors
    /// Store failures.
    pub async fn count(&self, bucket: &str, window: Duration) -> Result<u32, Error> {
        let (start, _) = RateLimit { max: 0, window }.window_at(self.clock.now());
        Ok(self.store.hit_rate_limit(&format!("{bucket}@{}", window.as_secs()), start).await?)
    }

    /// The hits counted so far on `bucket` in the current `window`, without counting one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn peek(&self, bucket: &str, window: Duration) -> Result<u32, Error> {
        let (start, _) = RateLimit { max: 0, window }.window_at(self.clock.now());
        Ok(self.store.rate_limit_hits(&format!("{bucket}@{}", window.as_secs()), start).await?)
    }

    /// Forgets windows that ended over an hour ago, and expired captcha solutions.
    ///
    /// # Errors
    /// Store failures.
    pub async fn prune(&self) -> Result<u64, Error> {
        let before = Timestamp::from_unix_millis(self.clock.now().unix_millis() - 2 * 3_600_000);
        Ok(self.store.prune_abuse_records(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_and_count_down() {
        let limit = RateLimit::per_minute(5);
        let (start, left) = limit.window_at(Timestamp::from_unix_millis(125_500));
        assert_eq!((start, left), (Timestamp::from_unix_millis(120_000), 55));
        let (start, left) = limit.window_at(Timestamp::from_unix_millis(179_999));
        assert_eq!((start, left), (Timestamp::from_unix_millis(120_000), 1));
        let (start, _) = RateLimit::per_hour(5).window_at(Timestamp::from_unix_millis(3_700_000));
        assert_eq!(start, Timestamp::from_unix_millis(3_600_000));
    }
}
