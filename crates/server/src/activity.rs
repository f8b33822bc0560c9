//! The last hour of this process's own activity, per minute, for the console's overview: requests,
//! logins, refreshes, errors by catalog code, and the p99 latency. In memory and per process, like the
//! Prometheus registry beside it (`/metrics` has the same counts for a real monitoring system).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_core::ErrorCode;
use portcullis_core::activity::{ActivityTotals, totals};

/// Minutes kept.
pub(crate) const MINUTES: usize = 60;

/// Upper bounds of the latency buckets, in microseconds; the p99 is reported as its bucket's bound.
const LATENCY_BOUNDS_MICROS: [u64; 14] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 10_000_000];

/// One minute's counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Minute {
    /// Unix minute.
    pub(crate) minute: i64,
    pub(crate) requests: u64,
    pub(crate) logins: u64,
    pub(crate) refreshes: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    latency: [u64; LATENCY_BOUNDS_MICROS.len() + 1],
}

impl Minute {
    /// The 99th-percentile latency in milliseconds (its bucket's upper bound); 0 without requests.
    pub(crate) fn p99_millis(&self) -> f64 {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = total - total / 100;
        let mut seen = 0;
        for (bucket, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_MICROS.get(bucket).copied().unwrap_or(60_000_000);
                return bound as f64 / 1000.0;
            }
        }
        0.0
    }
}

#[derive(Debug, Default)]
struct Recent {
    minutes: VecDeque<Minute>,
    /// The core's totals when last read: each request adds what happened since.
    seen: ActivityTotals,
}

fn recent() -> &'static Mutex<Recent> {
    static RECENT: OnceLock<Mutex<Recent>> = OnceLock::new();
    RECENT.get_or_init(Mutex::default)
}

fn unix_minute(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs() / 60).unwrap_or(i64::MAX))
}

fn current(recent: &mut Recent, minute: i64) -> &mut Minute {
    if recent.minutes.back().is_none_or(|m| m.minute != minute) {
        recent.minutes.push_back(Minute { minute, ..Minute::default() });
        while recent.minutes.len() > MINUTES {
            recent.minutes.pop_front();
        }
    }
    let last = recent.minutes.len() - 1;
    &mut recent.minutes[last]
}

/// Counts one finished request; logins and refreshes counted by the core since the last request land in
/// this minute (they happen inside requests).
pub(crate) fn record(error: Option<ErrorCode>, elapsed: Duration) {
    let Ok(mut recent) = recent().lock() else { return };
    let now = totals();
    let (logins, refreshes) =
        (now.logins.saturating_sub(recent.seen.logins), now.refreshes.saturating_sub(recent.seen.refreshes));
    recent.seen = now;
    let minute = current(&mut recent, unix_minute(SystemTime::now()));
    minute.requests += 1;
    minute.logins += logins;
    minute.refreshes += refreshes;
    if let Some(code) = error {
        *minute.errors.entry(code.as_str()).or_default() += 1;
    }
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let bucket = LATENCY_BOUNDS_MICROS.iter().position(|&bound| micros <= bound).unwrap_or(LATENCY_BOUNDS_MICROS.len());
    minute.latency[bucket] += 1;
}

/// The last [`MINUTES`] minutes, oldest first, with empty minutes filled in.
pub(crate) fn last_hour() -> Vec<Minute> {
    let now = unix_minute(SystemTime::now());
    let kept: Vec<Minute> = recent().lock().map(|r| r.minutes.iter().cloned().collect()).unwrap_or_default();
    let first = now - i64::try_from(MINUTES).unwrap_or(60) + 1;
    (first..=now)
        .map(|minute| {
            kept.iter().find(|m| m.minute == minute).cloned().unwrap_or(Minute { minute, ..Minute::default() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bucket_bound_that_holds_the_99th_percentile() {
        let mut minute = Minute::default();
        assert!(minute.p99_millis().abs() < f64::EPSILON, "no requests, no latency");
        minute.latency[2] = 99; // ≤ 0.5 ms
        minute.latency[9] = 1; // ≤ 100 ms
        assert!((minute.p99_millis() - 0.5).abs() < 1e-9);
        minute.latency[9] = 2;
        assert!((minute.p99_millis() - 100.0).abs() < 1e-9);
    }
}
