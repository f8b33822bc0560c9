//! What the database must look like after any kill: SQLite's own integrity check and foreign keys, and on
//! both backends no half-written row (a session without a current token or with a rotation time but no
//! previous token, a connector account without credentials or in an unknown state).

use std::path::PathBuf;

/// The store the server under test writes.
#[derive(Debug, Clone)]
pub(crate) enum StoreUnderTest {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Rows that no complete write produces; each query counts them.
const HALF_WRITTEN: [(&str, &str, &str); 2] = [
    (
        "sessions with no current token, more than four, or a rotation time without its previous token",
        "SELECT count(*) FROM sessions WHERE json_array_length(current_hashes) NOT BETWEEN 1 AND 4 \
         OR ((previous_hash IS NULL) <> (rotated_at IS NULL))",
        "SELECT count(*) FROM sessions WHERE cardinality(current_hashes) NOT BETWEEN 1 AND 4 \
         OR ((previous_hash IS NULL) <> (rotated_at IS NULL))",
    ),
    (
        "connector accounts without credentials or in an unknown state",
        "SELECT count(*) FROM connector_accounts WHERE length(sealed_credentials) = 0 \
         OR state NOT IN ('ok', 'needs_reauth') OR version < 1",
        "SELECT count(*) FROM connector_accounts WHERE length(sealed_credentials) = 0 \
         OR state NOT IN ('ok', 'needs_reauth') OR version < 1",
    ),
];

impl StoreUnderTest {
    /// Checks the store while the server is down; an error names what is wrong.
    pub(crate) async fn check(&self) -> Result<(), String> {
        match self {
            Self::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || check_sqlite(&path)).await.map_err(|e| e.to_string())?
            }
            Self::Postgres(url) => check_postgres(url).await,
        }
    }
}

fn check_sqlite(path: &std::path::Path) -> Result<(), String> {
    let connection = rusqlite::Connection::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let rows = |sql: &str| -> Result<Vec<String>, String> {
        let mut statement = connection.prepare(sql).map_err(|e| format!("{sql}: {e}"))?;
        let values = statement
            .query_map([], |row| row.get::<_, rusqlite::types::Value>(0))
            .map_err(|e| format!("{sql}: {e}"))?
            .map(|value| value.map(|v| format!("{v:?}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{sql}: {e}"))?;
        Ok(values)
    };
    let integrity = rows("PRAGMA integrity_check")?;
    if integrity != [format!("{:?}", rusqlite::types::Value::Text("ok".to_owned()))] {
        return Err(format!("PRAGMA integrity_check: {integrity:?}"));
    }
    let dangling = rows("PRAGMA foreign_key_check")?;
    if !dangling.is_empty() {
        return Err(format!("PRAGMA foreign_key_check: {} dangling references", dangling.len()));
    }
    for (what, sql, _) in HALF_WRITTEN {
        let count: i64 = connection.query_row(sql, [], |row| row.get(0)).map_err(|e| format!("{sql}: {e}"))?;
        if count != 0 {
            return Err(format!("{count} {what}"));
        }
    }
    Ok(())
}

async fn check_postgres(url: &str) -> Result<(), String> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(connection);
    for (what, _, sql) in HALF_WRITTEN {
        let count: i64 = client.query_one(sql, &[]).await.map_err(|e| format!("{sql}: {e}"))?.get(0);
        if count != 0 {
            return Err(format!("{count} {what}"));
        }
    }
    Ok(())
}
