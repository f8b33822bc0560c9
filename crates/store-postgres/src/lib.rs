//! Shared Portcullis storage on PostgreSQL: many stateless instances on one database. Every
//! precondition is a single conditional statement, safe under READ COMMITTED across instances.

mod abuse;
mod app_users;
mod connectors;
mod events;
mod login;
mod migrations;
mod passkeys;
mod sessions;
mod storage;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use portcullis_core::clock::Timestamp;
use portcullis_core::events::Event;
use portcullis_core::keys::SigningAlgorithm;
use portcullis_core::organization::Organization;
use portcullis_core::store::{KeyOwner, OrganizationStore, SigningKeyRecord, SigningKeyStore, Store, StoreError};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

/// Options of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// A `postgres://` URL or a libpq key=value string.
    pub url: String,
    /// Largest number of pooled connections.
    pub pool_size: usize,
    /// How long a request waits for a connection.
    pub connect_timeout: Duration,
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the connection pool; connections are made on first use.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL is invalid.
    pub fn connect(options: &PostgresOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        config.application_name("portcullis");
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {e}")))?;
        Ok(Self { pool })
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => store_error(&e),
            other => StoreError::Unavailable(other.to_string()),
        })
    }
}

/// Maps a PostgreSQL error: unique violations are conflicts, lost connections and a server that is going
/// away or starting are unavailability.
pub(crate) fn store_error(err: &tokio_postgres::Error) -> StoreError {
    match err.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::Conflict(err.to_string())
        }
        Some(code) if is_unavailability(code) => StoreError::Unavailable(err.to_string()),
        Some(_) => StoreError::Backend(err.to_string()),
        None if err.is_closed() || err.as_db_error().is_none() => StoreError::Unavailable(err.to_string()),
        None => StoreError::Backend(err.to_string()),
    }
}

/// SQLSTATEs of a server that cannot serve now: connection exceptions (class 08), operator intervention
/// (57P01 shutdown, 57P02 crash shutdown, 57P03 starting up or shutting down, 57P04 database dropped) and
/// too many connections (53300). A restart answers in-flight queries and new connections with these.
fn is_unavailability(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// `whitelist` and `settings`, kept together as the `config` JSONB column.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct OrganizationConfig {
    whitelist: Vec<String>,
    settings: portcullis_core::organization::OrganizationSettings,
}

pub(crate) fn organization_config(org: &Organization) -> Result<serde_json::Value, StoreError> {
    let config = OrganizationConfig { whitelist: org.whitelist.clone(), settings: org.settings.clone() };
    serde_json::to_value(config).map_err(|e| StoreError::Backend(e.to_string()))
}

fn organization_from_row(row: &Row) -> Result<Organization, StoreError> {
    let config: serde_json::Value = row.try_get(3).map_err(|e| decode(&e))?;
    let config: OrganizationConfig = serde_json::from_value(config).map_err(|e| StoreError::Decode(e.to_string()))?;
    Ok(Organization {
        id: row.try_get(0).map_err(|e| decode(&e))?,
        name: row.try_get(1).map_err(|e| decode(&e))?,
        created: Timestamp::from_unix_millis(row.try_get(2).map_err(|e| decode(&e))?),
        whitelist: config.whitelist,
        settings: config.settings,
    })
}

fn key_from_row(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    let algorithm: String = row.try_get(1).map_err(|e| decode(&e))?;
    Ok(SigningKeyRecord {
        kid: row.try_get(0).map_err(|e| decode(&e))?,
        algorithm: SigningAlgorithm::from_str(&algorithm).map_err(|e| StoreError::Decode(e.to_string()))?,
        public_jwk: row.try_get(2).map_err(|e| decode(&e))?,
        sealed_private_key: row.try_get(3).map_err(|e| decode(&e))?,
        created_at: Timestamp::from_unix_millis(row.try_get(4).map_err(|e| decode(&e))?),
        signs_from: Timestamp::from_unix_millis(row.try_get(5).map_err(|e| decode(&e))?),
    })
}

pub(crate) fn decode(err: &tokio_postgres::Error) -> StoreError {
    StoreError::Decode(err.to_string())
}

#[async_trait]
impl OrganizationStore for PostgresStore {
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("INSERT INTO organizations (id, name, created_at, config) VALUES ($1, $2, $3, $4)")
            .await
            .map_err(|e| store_error(&e))?;
        let config = organization_config(organization)?;
        client
            .execute(&statement, &[&organization.id, &organization.name, &organization.created.unix_millis(), &config])
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, name, created_at, config FROM organizations WHERE id = $1")
            .await
            .map_err(|e| store_error(&e))?;
        let row = client.query_opt(&statement, &[&id]).await.map_err(|e| store_error(&e))?;
        row.as_ref().map(organization_from_row).transpose()
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, name, created_at, config FROM organizations ORDER BY created_at, id", &[])
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter().map(organization_from_row).collect()
    }
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self, owner: KeyOwner<'_>) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let client = self.client().await?;
        let columns = "kid, algorithm, public_jwk, sealed_private_key, created_at, signs_from";
        let rows = match owner {
            KeyOwner::Server => {
                client.query(&format!("SELECT {columns} FROM signing_keys ORDER BY signs_from, kid"), &[]).await
            }
            KeyOwner::Organization(organization) => {
                client
                    .query(
                        &format!(
                            "SELECT {columns} FROM organization_signing_keys WHERE organization_id = $1 \
                             ORDER BY signs_from, kid"
                        ),
                        &[&organization],
                    )
                    .await
            }
        }
        .map_err(|e| store_error(&e))?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert_signing_key(
        &self,
        owner: KeyOwner<'_>,
        key: &SigningKeyRecord,
        expected_newest: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        // A concurrent rotation blocks on the row lock, then re-checks the condition and matches nothing.
        let swapped = match (owner, expected_newest) {
            (KeyOwner::Server, _) => {
                tx.execute(
                    "UPDATE key_ring_head SET newest_kid = $1 WHERE id = 1 AND newest_kid IS NOT DISTINCT FROM $2",
                    &[&key.kid, &expected_newest],
                )
                .await
            }
            (KeyOwner::Organization(organization), None) => {
                tx.execute(
                    "INSERT INTO organization_key_ring_heads (organization_id, newest_kid) VALUES ($1, $2) \
                     ON CONFLICT (organization_id) DO NOTHING",
                    &[&organization, &key.kid],
                )
                .await
            }
            (KeyOwner::Organization(organization), Some(expected)) => {
                tx.execute(
                    "UPDATE organization_key_ring_heads SET newest_kid = $1 \
                     WHERE organization_id = $2 AND newest_kid = $3",
                    &[&key.kid, &organization, &expected],
                )
                .await
            }
        }
        .map_err(|e| store_error(&e))?;
        if swapped != 1 {
            return Err(StoreError::Conflict(format!(
                "the newest signing key is no longer {}",
                expected_newest.unwrap_or("(none)")
            )));
        }
        // After the head swap, which serializes the ring's inserts, so the answer cannot change under us.
        let family = match owner {
            KeyOwner::Server => {
                tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE algorithm = $1)",
                    &[&key.algorithm.as_str()],
                )
                .await
            }
            KeyOwner::Organization(organization) => {
                tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM organization_signing_keys \
                     WHERE organization_id = $1 AND algorithm = $2)",
                    &[&organization, &key.algorithm.as_str()],
                )
                .await
            }
        };
        let family_had_keys: bool = family.map_err(|e| store_error(&e))?.get(0);
        let fields: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &key.kid,
            &key.algorithm.as_str(),
            &key.public_jwk,
            &key.sealed_private_key,
            &key.created_at.unix_millis(),
            &key.signs_from.unix_millis(),
        ];
        match owner {
            KeyOwner::Server => {
                tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, public_jwk, sealed_private_key, created_at, signs_from) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &fields,
                )
                .await
            }
            KeyOwner::Organization(organization) => {
                let mut with_owner = fields.to_vec();
                with_owner.push(&organization);
                tx.execute(
                    "INSERT INTO organization_signing_keys \
                     (kid, algorithm, public_jwk, sealed_private_key, created_at, signs_from, organization_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &with_owner,
                )
                .await
            }
        }
        .map_err(|e| store_error(&e))?;
        if let Some(event) = Event::for_key_insert(owner, key, family_had_keys) {
            events::append_event(&tx, &event).await?;
        }
        tx.commit().await.map_err(|e| store_error(&e))
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        migrations::apply(&mut client).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1 FROM key_ring_head WHERE id = 1", &[]).await.map_err(|e| store_error(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_going_away_is_unavailability_not_a_failure() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(is_unavailability(&code), "{code:?}");
        }
        for code in [SqlState::SYNTAX_ERROR, SqlState::UNIQUE_VIOLATION, SqlState::T_R_SERIALIZATION_FAILURE] {
            assert!(!is_unavailability(&code), "{code:?}");
        }
    }
}
