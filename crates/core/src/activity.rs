//! Process-wide counts of the events the admin console charts: logins (a login session opened) and
//! session refreshes (a rotation). Counted here, where each happens once; the server turns the totals
//! into per-minute series. Process-wide like any metrics recorder: every service of the process adds up.

use std::sync::atomic::{AtomicU64, Ordering};

static LOGINS: AtomicU64 = AtomicU64::new(0);
static REFRESHES: AtomicU64 = AtomicU64::new(0);

/// Totals since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityTotals {
    /// Login sessions opened (every login method and face).
    pub logins: u64,
    /// Sessions refreshed (rotations, grace-window answers included).
    pub refreshes: u64,
}

pub(crate) fn login_opened() {
    LOGINS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn session_refreshed() {
    REFRESHES.fetch_add(1, Ordering::Relaxed);
}

/// The totals now.
#[must_use]
pub fn totals() -> ActivityTotals {
    ActivityTotals { logins: LOGINS.load(Ordering::Relaxed), refreshes: REFRESHES.load(Ordering::Relaxed) }
}
