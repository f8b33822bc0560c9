//! Rate limits shared by every instance through the store: configured send slots, 429 strikes and the block
//! list (`docs/connectors.md`, "Rate limits").

use std::time::Duration;

use portcullis_core::clock::Timestamp;
use portcullis_core::store::ConnectorAccountRecord;
use portcullis_core::{Error, ErrorCode};

use crate::definition::RateLimit;

use super::{ConnectorRuntime, Loaded};

/// Waits after repeated 429s without `Retry-After` (Cyclr: 60 s, then +1, 3, 7, 15, 30 min).
const RATE_LADDER_SECS: &[u64] = &[60, 60, 180, 420, 900, 1800];

/// `Retry-After` in seconds from now (seconds or an HTTP date).
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap, now: Timestamp) -> Option<u64> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(secs);
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    Some(u64::try_from(at.unix_timestamp() - now.unix_seconds()).unwrap_or(0))
}

impl ConnectorRuntime {
    /// Fails fast while a 429 blocks the account (on any instance: the block is stored with it).
    pub(super) fn rate_gate(&self, record: &ConnectorAccountRecord) -> Result<(), Error> {
        let now = self.clock.now();
        match record.rate_blocked_until {
            Some(until) if until > now => {
                let secs = u64::try_from((until.unix_millis() - now.unix_millis() + 999) / 1000).unwrap_or(1);
                Err(Error::new(ErrorCode::UpstreamRateLimited).with_retry_after(secs))
            }
            _ => Ok(()),
        }
    }

    /// Counts a 429 in the store and returns the wait. Blocks the account for every instance when the wait is
    /// not done inline.
    pub(super) async fn rate_strike(
        &self,
        org: &str,
        account: &str,
        retry_after: Option<u64>,
        final_strike: bool,
    ) -> Result<u64, Error> {
        let strikes = usize::try_from(self.store.strike_connector_rate(org, account).await?).unwrap_or(usize::MAX);
        let ladder = RATE_LADDER_SECS[strikes.clamp(1, RATE_LADDER_SECS.len()) - 1];
        let wait = retry_after.unwrap_or(ladder);
        if final_strike || wait > self.config.max_inline_rate_limit_wait.as_secs() {
            let until = self.clock.now().plus(Duration::from_secs(wait));
            self.store.block_connector_rate(org, account, until).await?;
        }
        Ok(wait)
    }

    /// Waits for this account's next send slot under a configured limit; excess requests queue. The slots
    /// are reserved in the store, so every instance sending for the account shares one schedule.
    pub(super) async fn pace(&self, loaded: &Loaded, limit: Option<&RateLimit>, method: &str) -> Result<(), Error> {
        let Some(interval) = limit.map(RateLimit::interval) else { return Ok(()) };
        let (org, account) = (&loaded.record.organization_id, &loaded.record.id);
        let now = self.clock.now();
        let wait = self.store.reserve_connector_send_slot(org, account, method, now, interval).await?;
        tokio::time::sleep(wait).await;
        Ok(())
    }
}
