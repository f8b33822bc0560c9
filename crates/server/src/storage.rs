//! Opens the configured store. This is the only place that knows which backend runs.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::store::Store;
use portcullis_store_postgres::{PostgresOptions, PostgresStore};
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::StartupError;
use crate::config::{Config, SqliteSynchronous, StoreBackend};
use crate::local_secrets::ensure_data_dir;

pub(crate) fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    match config.store.backend {
        StoreBackend::Sqlite => {
            let path = config.sqlite_path();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                ensure_data_dir(parent)?;
            }
            let options = SqliteOptions {
                path,
                readers: config.store.sqlite_readers,
                synchronous: match config.store.sqlite_synchronous {
                    SqliteSynchronous::Normal => Synchronous::Normal,
                    SqliteSynchronous::Full => Synchronous::Full,
                },
            };
            Ok(Arc::new(SqliteStore::open(&options)?))
        }
        StoreBackend::Postgres => {
            let options = PostgresOptions {
                url: config.store.postgres_url.expose().to_owned(),
                pool_size: config.store.postgres_pool_size,
                connect_timeout: Duration::from_secs(config.store.postgres_connect_timeout_secs),
            };
            Ok(Arc::new(PostgresStore::connect(&options)?))
        }
    }
}
