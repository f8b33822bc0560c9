//! Structured logs with `tracing`: pretty for people, JSON for collectors. Every line of a request
//! carries its request id through the request span.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogConfig, LogFormat};

/// Installs the global subscriber; logs go to standard error. `RUST_LOG` overrides `log.level`.
///
/// # Errors
/// A [`ConfigError`] when `log.level` is not a valid filter.
pub fn init_tracing(log: &LogConfig) -> Result<(), ConfigError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(value),
        _ => EnvFilter::try_new(&log.level),
    }
    .map_err(|e| ConfigError(format!("`log.level` is not a valid filter: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second call (tests, embedding programs) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    Ok(())
}
