//! One reading of the server every few seconds: its memory and open files from `/proc`, the size of its
//! data directory, and the latency of the requests answered since the last reading.

use std::path::Path;
use std::time::Duration;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Seconds since the traffic started.
    pub(super) at_secs: f64,
    pub(super) rss_kib: u64,
    pub(super) open_files: u64,
    /// `portcullis.db` with its WAL and shared-memory files.
    pub(super) db_bytes: u64,
    /// Logins completed since the traffic started.
    pub(super) logins: u64,
    pub(super) requests: usize,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

impl Sample {
    pub(super) fn read(
        pid: u32,
        data_dir: &Path,
        at_secs: f64,
        logins: u64,
        mut latencies: Vec<Duration>,
    ) -> Result<Self, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc: {e}"))?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or("no VmRSS in /proc/<pid>/status")?;
        let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| format!("/proc: {e}"))?.count();
        let db_bytes = std::fs::read_dir(data_dir)
            .map_err(|e| format!("{}: {e}", data_dir.display()))?
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("portcullis.db"))
            .filter_map(|entry| entry.metadata().ok())
            .map(|m| m.len())
            .sum();
        latencies.sort_unstable();
        Ok(Self {
            at_secs,
            rss_kib,
            open_files: u64::try_from(open_files).unwrap_or(u64::MAX),
            db_bytes,
            logins,
            requests: latencies.len(),
            p50_ms: quantile_ms(&latencies, 0.50),
            p99_ms: quantile_ms(&latencies, 0.99),
        })
    }

    pub(super) fn csv_header() -> &'static str {
        "seconds,rss_kib,open_files,db_bytes,logins,requests,p50_ms,p99_ms"
    }

    pub(super) fn csv_row(&self) -> String {
        format!(
            "{:.0},{},{},{},{},{},{:.2},{:.2}",
            self.at_secs,
            self.rss_kib,
            self.open_files,
            self.db_bytes,
            self.logins,
            self.requests,
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// The nearest-rank quantile of sorted latencies, in milliseconds; 0 when there are none.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((quantile_ms(&latencies, 0.99) - 99.0).abs() < 1e-9);
        assert!((quantile_ms(&latencies, 0.50) - 50.0).abs() < 1e-9);
        assert!((quantile_ms(&latencies[..1], 0.99) - 1.0).abs() < 1e-9);
        assert!(quantile_ms(&[], 0.99).abs() < 1e-9);
    }
}
