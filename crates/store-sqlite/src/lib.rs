//! Embedded Portcullis storage on SQLite: WAL mode, one writer connection, a few reader connections, and a
//! thread that checkpoints the WAL beside the writer.
//!
//! `synchronous = NORMAL` (the default) in WAL mode may lose the last commits on power loss but never
//! corrupts the database; `FULL` syncs every commit at about a third of the write rate.

mod abuse;
mod app_users;
mod checkpoint;
mod connections;
mod connectors;
mod events;
mod login;
mod migrations;
mod passkeys;
mod sessions;
mod storage;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::keys::SigningAlgorithm;
use portcullis_core::organization::Organization;
use portcullis_core::session::RefreshOutcome;
use portcullis_core::store::{KeyOwner, OrganizationStore, SigningKeyRecord, SigningKeyStore, Store, StoreError};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};

use crate::checkpoint::{BACKSTOP_PAGES, Checkpointer};
use crate::connections::{Group, Readers, Writer};

/// How SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Sync at checkpoints: fast; the last commits may be lost on power loss, never corrupted.
    #[default]
    Normal,
    /// Sync every commit.
    Full,
}

impl Synchronous {
    /// The value of SQLite's `PRAGMA synchronous` for this setting.
    #[must_use]
    pub const fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Options of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// Number of reader connections.
    pub readers: usize,
    /// Commit durability.
    pub synchronous: Synchronous,
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) writer: Writer,
    pub(crate) readers: Readers,
    /// Session rotations waiting to commit together.
    pub(crate) rotations: Group<Option<RefreshOutcome>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database. Call [`Store::migrate`] before use.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or configured.
    pub fn open(options: &SqliteOptions) -> Result<Self, StoreError> {
        let writer = open_connection(&options.path, false, options.synchronous)?;
        let checkpointer = Checkpointer::start(open_connection(&options.path, false, options.synchronous)?)?;
        let readers = (0..options.readers.max(1))
            .map(|_| open_connection(&options.path, true, options.synchronous))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            writer: Writer::new(writer, checkpointer),
            readers: Readers::new(readers),
            rotations: Group::new(),
            path: options.path.clone(),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_connection(path: &Path, read_only: bool, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable(format!("cannot open {}: {e}", path.display()));
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    let sync = synchronous.pragma();
    let pragmas = if read_only {
        format!("PRAGMA busy_timeout = 5000; PRAGMA synchronous = {sync};")
    } else {
        format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES};"
        )
    };
    connection.execute_batch(&pragmas).map_err(unavailable)?;
    Ok(connection)
}

/// Maps a SQLite error: constraint violations are conflicts, busy or locked files are unavailability.
impl SqliteStore {
    /// The one row `sql` selects with `?1` = an organization and `?2` = an id in it, read by `map`.
    pub(crate) async fn organization_row<T: Send + 'static>(
        &self,
        sql: String,
        organization_id: &str,
        id: &str,
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.readers
            .run(move |c| {
                let mut s = c.prepare_cached(&sql).map_err(store_error)?;
                let mut rows = s.query_map(params![org, id], map).map_err(store_error)?;
                rows.next().transpose().map_err(store_error)
            })
            .await
    }
}

pub(crate) fn store_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(err.to_string()),
        _ if matches!(err, rusqlite::Error::FromSqlConversionFailure(..)) => StoreError::Decode(err.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => {
            StoreError::Unavailable(err.to_string())
        }
        _ => StoreError::Backend(err.to_string()),
    }
}

/// `whitelist` and `settings`, kept together as the `config` JSON column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct OrganizationConfig {
    pub(crate) whitelist: Vec<String>,
    pub(crate) settings: portcullis_core::organization::OrganizationSettings,
}

pub(crate) fn organization_config(org: &Organization) -> Result<String, StoreError> {
    let config = OrganizationConfig { whitelist: org.whitelist.clone(), settings: org.settings.clone() };
    serde_json::to_string(&config).map_err(|e| StoreError::Backend(e.to_string()))
}

fn organization_from_row(row: &Row<'_>) -> rusqlite::Result<Organization> {
    let config: String = row.get(3)?;
    let config: OrganizationConfig = serde_json::from_str(&config)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e)))?;
    Ok(Organization {
        id: row.get(0)?,
        name: row.get(1)?,
        created: Timestamp::from_unix_millis(row.get(2)?),
        whitelist: config.whitelist,
        settings: config.settings,
    })
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    let algorithm: String = row.get(1)?;
    Ok(SigningKeyRecord {
        kid: row.get(0)?,
        algorithm: SigningAlgorithm::from_str(&algorithm)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e)))?,
        public_jwk: row.get(2)?,
        sealed_private_key: row.get(3)?,
        created_at: Timestamp::from_unix_millis(row.get(4)?),
        signs_from: Timestamp::from_unix_millis(row.get(5)?),
    })
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let org = organization.clone();
        let config = organization_config(&org)?;
        self.writer
            .run(move |c| {
                c.prepare_cached("INSERT INTO organizations (id, name, created_at, config) VALUES (?1, ?2, ?3, ?4)")
                    .and_then(|mut s| s.execute(params![org.id, org.name, org.created.unix_millis(), config]))
                    .map(|_| ())
                    .map_err(store_error)
            })
            .await
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let id = id.to_owned();
        self.readers
            .run(move |c| {
                c.prepare_cached("SELECT id, name, created_at, config FROM organizations WHERE id = ?1")
                    .and_then(|mut s| s.query_row([id], organization_from_row).optional())
                    .map_err(store_error)
            })
            .await
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        self.readers
            .scan(|c| {
                let mut statement = c
                    .prepare_cached("SELECT id, name, created_at, config FROM organizations ORDER BY created_at, id")
                    .map_err(store_error)?;
                let rows = statement.query_map([], organization_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self, owner: KeyOwner<'_>) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let organization = owned(owner);
        self.readers
            .run(move |c| {
                let columns = "kid, algorithm, public_jwk, sealed_private_key, created_at, signs_from";
                let rows = if let Some(organization) = organization {
                    let mut statement = c
                        .prepare_cached(&format!(
                            "SELECT {columns} FROM organization_signing_keys WHERE organization_id = ?1 \
                             ORDER BY signs_from, kid"
                        ))
                        .map_err(store_error)?;
                    let rows = statement.query_map([organization], key_from_row).map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                } else {
                    let mut statement = c
                        .prepare_cached(&format!("SELECT {columns} FROM signing_keys ORDER BY signs_from, kid"))
                        .map_err(store_error)?;
                    let rows = statement.query_map([], key_from_row).map_err(store_error)?;
                    rows.collect::<Result<Vec<_>, _>>()
                };
                rows.map_err(store_error)
            })
            .await
    }

    async fn insert_signing_key(
        &self,
        owner: KeyOwner<'_>,
        key: &SigningKeyRecord,
        expected_newest: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let expected = expected_newest.map(str::to_owned);
        let organization = owned(owner);
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let swapped = match (&organization, &expected) {
                    (None, _) => tx.execute(
                        "UPDATE key_ring_head SET newest_kid = ?1 WHERE id = 1 AND newest_kid IS ?2",
                        params![key.kid, expected],
                    ),
                    (Some(organization), None) => tx.execute(
                        "INSERT INTO organization_key_ring_heads (organization_id, newest_kid) VALUES (?1, ?2) \
                         ON CONFLICT (organization_id) DO NOTHING",
                        params![organization, key.kid],
                    ),
                    (Some(organization), Some(expected)) => tx.execute(
                        "UPDATE organization_key_ring_heads SET newest_kid = ?1 \
                         WHERE organization_id = ?2 AND newest_kid = ?3",
                        params![key.kid, organization, expected],
                    ),
                }
                .map_err(store_error)?;
                if swapped != 1 {
                    return Err(StoreError::Conflict(format!(
                        "the newest signing key is no longer {}",
                        expected.as_deref().unwrap_or("(none)")
                    )));
                }
                let family_had_keys: bool = match &organization {
                    None => tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE algorithm = ?1)",
                        params![key.algorithm.as_str()],
                        |row| row.get(0),
                    ),
                    Some(organization) => tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM organization_signing_keys \
                         WHERE organization_id = ?1 AND algorithm = ?2)",
                        params![organization, key.algorithm.as_str()],
                        |row| row.get(0),
                    ),
                }
                .map_err(store_error)?;
                let inserted = match &organization {
                    None => tx.execute(
                        "INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_private_key, created_at, signs_from) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            key.kid,
                            key.algorithm.as_str(),
                            key.public_jwk,
                            key.sealed_private_key,
                            key.created_at.unix_millis(),
                            key.signs_from.unix_millis()
                        ],
                    ),
                    Some(organization) => tx.execute(
                        "INSERT INTO organization_signing_keys (organization_id, kid, algorithm, public_jwk, \
                         sealed_private_key, created_at, signs_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            organization,
                            key.kid,
                            key.algorithm.as_str(),
                            key.public_jwk,
                            key.sealed_private_key,
                            key.created_at.unix_millis(),
                            key.signs_from.unix_millis()
                        ],
                    ),
                };
                inserted.map_err(store_error)?;
                let owner = organization.as_deref().map_or(KeyOwner::Server, KeyOwner::Organization);
                if let Some(event) = Event::for_key_insert(owner, &key, family_had_keys) {
                    events::append_event(&tx, &event)?;
                }
                tx.commit().map_err(store_error)
            })
            .await
    }
}

fn owned(owner: KeyOwner<'_>) -> Option<String> {
    match owner {
        KeyOwner::Server => None,
        KeyOwner::Organization(id) => Some(id.to_owned()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.writer.run(migrations::apply).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .run(|c| c.query_row("SELECT 1 FROM key_ring_head WHERE id = 1", [], |_| Ok(())).map_err(store_error))
            .await
    }
}
