//! Prometheus metrics: request counts and latency by route and status, error counts by code.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portcullis_core::ErrorCode;

const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once. `None` when the embedding program installed its own.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("portcullis_http_request_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Counts one finished request.
pub(crate) fn record_request(method: &Method, route: &str, status: u16, error: Option<ErrorCode>, elapsed: Duration) {
    crate::activity::record(error, elapsed);
    if handle().is_none() {
        return;
    }
    let labels = [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!("portcullis_http_requests_total", &labels).increment(1);
    metrics::histogram!("portcullis_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Some(code) = error {
        metrics::counter!("portcullis_errors_total", "code" => code.as_str()).increment(1);
    }
}

/// The Prometheus text exposition.
pub(crate) fn render() -> String {
    handle().map_or_else(String::new, |handle| {
        handle.run_upkeep();
        handle.render()
    })
}
