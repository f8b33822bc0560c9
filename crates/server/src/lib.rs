//! The Portcullis server: every face over one core.
//!
//! - [`config`]: layered configuration.
//! - [`app::App`]: the store, the key ring and the operations faces share.
//! - [`http`]: error rendering, request ids, the router.
//! - [`event_delivery`]: the worker that sends organizations' events to their endpoints.
//! - [`serve()`]: the listener and graceful shutdown.
//! - [`api_description()`]: the OpenAPI description of every JSON API.

mod activity;
mod api_description;
pub mod app;
pub mod config;
pub mod event_delivery;
mod faces;
pub mod http;
pub mod local_secrets;
pub mod mail;
mod metrics;
mod serve;
mod storage;
mod telemetry;

use std::io;
use std::path::PathBuf;

pub use api_description::{api_description, api_description_json};
pub use serve::{bind, serve, shutdown_signal};
pub use telemetry::init_tracing;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A file or directory could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A secret file holds something unusable.
    #[error("{}: {reason}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] portcullis_core::store::StoreError),
    /// The key ring could not be opened.
    #[error("signing keys: {}", .0.internal().unwrap_or(.0.message()))]
    Keys(portcullis_core::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The failure.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("server: {source}")]
    Serve {
        /// The failure.
        source: io::Error,
    },
}

impl StartupError {
    /// The process exit code: 2 for configuration errors, 1 otherwise.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }
}
